/* Unit tests of libcommon/netns.c (issue 13): a task's own network
 * namespace, kept by a file, whose lo is up and whose listening socket is
 * reachable from inside that namespace and from nowhere else. Needs root
 * (CAP_SYS_ADMIN); skipped without it. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "netns.h"

#define NSFS_MAGIC_ 0x6e736673

static char dir[] = "/tmp/manta-netns-XXXXXX";

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return rmdir(dir);
}

/* A host socket listening on 127.0.0.1 (port chosen by the kernel). */
static int
host_listener(uint16_t *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(s != -1);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(s, 8), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return s;
}

/* In a child that joined the namespace at path (or stayed on the host's
 * when path is NULL): connect to 127.0.0.1:port; the child's exit status is
 * 0 when connected, else the errno. */
static int
connect_from(const char *path, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	pid_t pid;
	int st, fd, s;

	if ((pid = fork()) == 0) {
		if (path != NULL) {
			if ((fd = open(path, O_RDONLY)) == -1 ||
			    setns(fd, CLONE_NEWNET) == -1)
				_exit(200);
		}
		s = socket(AF_INET, SOCK_STREAM, 0);
		sin.sin_port = htons(port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		_exit(connect(s, (struct sockaddr *)&sin, sizeof(sin)) == 0 ?
		    0 : errno);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static int
pending(int lfd, int ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	return poll(&p, 1, ms);
}

static void
test_netns_isolated(void **state)
{
	char path[64];
	struct statfs sf;
	uint16_t port, other;
	int hs, hs2, lfd = -1, c;

	(void)state;
	if (geteuid() != 0)
		skip();
	/* A host listener on the port the namespace will use, and another. */
	hs = host_listener(&port);
	hs2 = host_listener(&other);
	snprintf(path, sizeof(path), "%s/net", dir);
	assert_int_equal(netns_create(path, port, &lfd), 0);
	assert_true(lfd != -1);
	assert_int_equal(statfs(path, &sf), 0);
	assert_int_equal((unsigned long)sf.f_type, NSFS_MAGIC_);

	/* Inside: lo is up and the endpoint is there. */
	assert_int_equal(connect_from(path, port), 0);
	assert_int_equal(pending(lfd, 5000), 1);
	c = accept(lfd, NULL, NULL);
	assert_true(c != -1);
	close(c);
	/* Inside: nothing of the host's loopback. */
	assert_int_equal(connect_from(path, other), ECONNREFUSED);
	/* Outside: the same port is the host's listener, not the endpoint. */
	assert_int_equal(connect_from(NULL, port), 0);
	c = accept(hs, NULL, NULL);
	assert_true(c != -1);
	close(c);
	assert_int_equal(pending(lfd, 0), 0);

	/* A new endpoint in the kept namespace (an adopted run): not while
	 * the first listens, then in the same namespace. */
	assert_int_equal(netns_listen(path, port, &c), -1);
	assert_int_equal(errno, EADDRINUSE);
	close(lfd);
	assert_int_equal(netns_listen(path, port, &lfd), 0);
	assert_int_equal(connect_from(path, port), 0);
	assert_int_equal(pending(lfd, 5000), 1);
	assert_int_equal(connect_from(path, other), ECONNREFUSED);

	/* A second namespace on the same path is refused, the first kept. */
	assert_int_equal(netns_create(path, port, NULL), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(connect_from(path, port), 0);

	assert_int_equal(netns_remove(path), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(netns_remove(path), 0);
	close(lfd);
	close(hs);
	close(hs2);
}

static void
test_netns_bad_path(void **state)
{
	char path[64];
	int lfd = 7, st;

	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(path, sizeof(path), "%s/missing/net", dir);
	assert_int_equal(netns_create(path, 1, &lfd), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(lfd, -1);
	assert_int_equal(netns_listen(path, 1, &lfd), -1);
	assert_int_equal(errno, ENOENT);
	/* Not a namespace: setns fails in the child, which is reaped. */
	snprintf(path, sizeof(path), "%s", dir);
	assert_int_equal(netns_listen(path, 1, &lfd), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(lfd, -1);
	/* The helper child was reaped. */
	assert_int_equal(waitpid(-1, &st, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void
test_fd_pass(void **state)
{
	int sp[2], p[2], fd, two[2];
	char buf[8];
	union {
		char b[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp), 0);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fd_send(sp[0], p[1], "hello", 5), 0);
	assert_int_equal(fd_recv(sp[1], &fd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_true(fd != -1 && fd != p[1]);
	assert_int_equal(write(fd, "z", 1), 1);
	assert_int_equal(read(p[0], buf, 1), 1);
	assert_int_equal(buf[0], 'z');
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	close(fd);

	/* Two descriptors where one fits: refused, none kept. */
	memset(&u, 0, sizeof(u));
	mh.msg_control = u.b;
	mh.msg_controllen = sizeof(u.b);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
	two[0] = p[0];
	two[1] = p[1];
	memcpy(CMSG_DATA(cm), two, sizeof(two));
	assert_int_equal(sendmsg(sp[0], &mh, 0), 1);
	assert_int_equal(fd_recv(sp[1], &fd, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(fd, -1);

	/* No descriptor: the bytes, fd -1. */
	assert_int_equal(write(sp[0], "ab", 2), 2);
	assert_int_equal(fd_recv(sp[1], &fd, buf, sizeof(buf)), 2);
	assert_int_equal(fd, -1);
	close(sp[0]);
	assert_int_equal(fd_recv(sp[1], &fd, buf, sizeof(buf)), 0);
	close(sp[1]);
	close(p[0]);
	close(p[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_netns_isolated),
		cmocka_unit_test(test_netns_bad_path),
		cmocka_unit_test(test_fd_pass),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
