/* test_launch: mantad-exec's launcher (issue 13, finding 4) refuses every
 * request that is not exactly what mantad-exec generates, and forks
 * nothing for it (mantad-exec/launcher.c, compiled in here, with fork(2)
 * replaced by a counter). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../mantad-exec/launcher.c"

#define TH "0123456789abcdef0123456789abcdef"
#define CID "manta-0123abcd-0123456789ab-42-1"

static int forks;

static pid_t
counting_fork(void)
{
	forks++;
	errno = EAGAIN;		/* and no child: the reply says so */
	return -1;
}

static const struct launch_cfg cfg = {
	.runtime = "/usr/sbin/runc", .root = "/nonexistent/root",
	.tasks_dir = "/nonexistent/tasks", .logs_dir = "/nonexistent/logs",
	.run_dir = "/nonexistent/run", .image_dir = "/nonexistent/images",
	.cgroup2 = true,
};

static void
good_shim(struct launch_req *q)
{
	memset(q, 0, sizeof(*q));
	q->kind = LAUNCH_SHIM;
	q->seq = 7;
	q->log_cap = 1 << 20;
	q->timeout_ms = 1000;
	q->grace_ms = 5000;
	strcpy(q->bundle, TH "-" TH "-3-0");
	strcpy(q->cid, CID);
	strcpy(q->log, "42.log");
}

/* Serves frame on one end of a socketpair; the reply's err. */
static int
serve_frame(const void *frame, size_t len, bool truncated, int fd)
{
	struct launch_rep rep;
	int sv[2];
	ssize_t n;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	assert_int_equal(launch_serve(&cfg, sv[0], frame, len, truncated, fd), 0);
	n = recv(sv[1], &rep, sizeof(rep), MSG_DONTWAIT);
	assert_int_equal(n, sizeof(rep));
	close(sv[0]);
	close(sv[1]);
	return rep.err;
}

static int
serve_req(const struct launch_req *q)
{
	return serve_frame(q, sizeof(*q), false, -1);
}

static void
test_bundle_names(void **state)
{
	char big[LAUNCH_BUNDLE_MAX];

	(void)state;
	assert_true(launch_bundle_ok(TH "-" TH "-0-0", 128));
	assert_true(launch_bundle_ok(TH "-" TH "-4294967295-12-9001", 128));
	assert_false(launch_bundle_ok("../x", 128));
	assert_false(launch_bundle_ok("/etc", 128));
	assert_false(launch_bundle_ok("", 128));
	assert_false(launch_bundle_ok(TH "-" TH "-0-0/..", 128));
	assert_false(launch_bundle_ok(TH "-" TH "-0-0-", 128));
	assert_false(launch_bundle_ok(TH "-" TH "-0", 128));
	assert_false(launch_bundle_ok(TH "-" TH "-00000000000-0", 128));
	assert_false(launch_bundle_ok("0123456789ABCDEF0123456789abcdef-" TH
	    "-0-0", 128));
	assert_false(launch_bundle_ok(TH "-" TH "-0-0 x", 128));
	/* no NUL within the field */
	memset(big, 'a', sizeof(big));
	assert_false(launch_bundle_ok(big, sizeof(big)));
}

static void
test_cids_logs_images(void **state)
{
	char big[LAUNCH_IMAGE_MAX];

	(void)state;
	assert_true(launch_cid_ok(CID, 96));
	assert_false(launch_cid_ok("manta-0123abcd-0123456789ab-42", 96));
	assert_false(launch_cid_ok("../manta-0123abcd-0123456789ab-42-1", 96));
	assert_false(launch_cid_ok("other-0123abcd-0123456789ab-42-1", 96));
	assert_false(launch_cid_ok(CID "/x", 96));
	assert_false(launch_cid_ok("--help", 96));
	assert_true(launch_log_ok("42.log", 32));
	assert_false(launch_log_ok("../42.log", 32));
	assert_false(launch_log_ok("42.log/x", 32));
	assert_false(launch_log_ok("/var/42.log", 32));
	assert_false(launch_log_ok(".log", 32));
	assert_true(launch_image_ok("docker.io/library/alpine:3.19", 256));
	assert_true(launch_image_ok("reg:5000/a/b@sha256:0123abcd", 256));
	assert_false(launch_image_ok("-oops", 256));
	assert_false(launch_image_ok("a/../../b", 256));
	assert_false(launch_image_ok("a b", 256));
	assert_false(launch_image_ok("a;b", 256));
	assert_false(launch_image_ok("", 256));
	memset(big, 'a', sizeof(big));
	assert_false(launch_image_ok(big, sizeof(big)));
}

/* Every malformed request: an error reply, and no fork. */
static void
test_refused_without_fork(void **state)
{
	struct launch_req q;
	char big[sizeof(q) + 16];

	(void)state;
	launch_fork = counting_fork;
	forks = 0;
	good_shim(&q);
	assert_int_equal(serve_frame(&q, 4, false, -1), EINVAL);	/* short */
	assert_int_equal(serve_frame(&q, sizeof(q) - 1, false, -1), EINVAL);
	memset(big, 0, sizeof(big));
	memcpy(big, &q, sizeof(q));
	assert_int_equal(serve_frame(big, sizeof(q) + 1, true, -1), EINVAL);
	q.kind = 99;
	assert_int_equal(serve_req(&q), EINVAL);
	q.kind = 0;
	assert_int_equal(serve_req(&q), EINVAL);
	good_shim(&q);
	strcpy(q.bundle, "../x");
	assert_int_equal(serve_req(&q), EINVAL);
	strcpy(q.bundle, "/etc");
	assert_int_equal(serve_req(&q), EINVAL);
	memset(q.bundle, 'a', sizeof(q.bundle));	/* no NUL */
	assert_int_equal(serve_req(&q), EINVAL);
	good_shim(&q);
	memcpy(q.bundle + 10, "\0/../../etc", 11);	/* NUL inside */
	assert_int_equal(serve_req(&q), EINVAL);
	good_shim(&q);
	strcpy(q.log, "../../etc/passwd");
	assert_int_equal(serve_req(&q), EINVAL);
	good_shim(&q);
	q.grace_ms = LAUNCH_GRACE_MAX + 1;
	assert_int_equal(serve_req(&q), EINVAL);
	good_shim(&q);
	q.kind = LAUNCH_CLEAN;
	strcpy(q.cid, "--all");
	assert_int_equal(serve_req(&q), EINVAL);
	q.kind = LAUNCH_NETNS_DEL;
	strcpy(q.cid, "../../../etc");
	assert_int_equal(serve_req(&q), EINVAL);
	good_shim(&q);
	q.kind = LAUNCH_NETNS_ADD;
	q.port = 0;
	assert_int_equal(serve_req(&q), EINVAL);
	memset(&q, 0, sizeof(q));
	q.kind = LAUNCH_PULL;
	strcpy(q.image, "--src-creds=x");
	assert_int_equal(serve_req(&q), EINVAL);
	strcpy(q.image, "alpine");
	q.max_disk = 101;
	assert_int_equal(serve_req(&q), EINVAL);
	memset(&q, 0, sizeof(q));
	q.kind = LAUNCH_EXE;
	q.pid = 0;
	assert_int_equal(serve_req(&q), EINVAL);
	q.pid = -1;
	assert_int_equal(serve_req(&q), EINVAL);
	/* a descriptor where none is expected: refused, and closed */
	good_shim(&q);
	assert_int_equal(serve_frame(&q, sizeof(q), false,
	    open("/dev/null", O_RDONLY | O_CLOEXEC)), EINVAL);
	assert_int_equal(forks, 0);
}

/* The same requests, well formed, do reach fork. */
static void
test_good_requests_fork(void **state)
{
	struct launch_req q;

	(void)state;
	launch_fork = counting_fork;
	forks = 0;
	good_shim(&q);
	assert_int_equal(serve_req(&q), EAGAIN);
	q.kind = LAUNCH_CLEAN;
	assert_int_equal(serve_req(&q), EAGAIN);
	memset(&q, 0, sizeof(q));
	q.kind = LAUNCH_PULL;
	strcpy(q.image, "docker.io/library/alpine:3.19");
	assert_int_equal(serve_req(&q), EAGAIN);
	assert_int_equal(forks, 3);
}

/* The launcher's loop itself, in a child, on real sockets at fds 3 and
 * 4: packets too long (MSG_TRUNC) or short, two descriptors at once, then
 * the end of mantad-exec. */
static void
send_fds(int sock, const void *buf, size_t len, int nfds)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { (void *)(uintptr_t)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	int fds[2];

	memset(cbuf, 0, sizeof(cbuf));
	if (nfds > 0) {
		fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		fds[1] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	assert_int_equal(sendmsg(sock, &mh, 0), (ssize_t)len);
	if (nfds > 0) {
		close(fds[0]);
		close(fds[1]);
	}
}

static int
reply_err(int sock)
{
	struct launch_rep rep;

	assert_int_equal(recv(sock, &rep, sizeof(rep), 0), sizeof(rep));
	return rep.err;
}

static void
test_loop_on_sockets(void **state)
{
	struct launch_cfg c = cfg;
	struct launch_req q;
	char big[sizeof(q) + 64];
	int a[2], b[2], st;
	pid_t pid;

	(void)state;
	c.runtime = "";
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, b), 0);
	if ((pid = fork()) == 0) {
		sigset_t set;
		int sfd;

		launch_fork = counting_fork;
		forks = 0;
		if ((a[1] = fcntl(a[1], F_DUPFD, 10)) == -1 ||
		    (b[1] = fcntl(b[1], F_DUPFD, 10)) == -1 ||
		    dup2(a[1], 3) == -1 || dup2(b[1], 4) == -1)
			_exit(3);
		sigemptyset(&set);
		sigaddset(&set, SIGCHLD);
		sigprocmask(SIG_BLOCK, &set, NULL);
		if ((sfd = signalfd(-1, &set, SFD_NONBLOCK)) == -1)
			_exit(3);
		loop(&c, sfd);
		_exit(forks == 0 ? 0 : 4);
	}
	close(a[1]);
	close(b[1]);
	good_shim(&q);
	memset(big, 'x', sizeof(big));
	memcpy(big, &q, sizeof(q));
	send_fds(a[0], big, sizeof(big), 0);	/* truncated */
	assert_int_equal(reply_err(a[0]), EINVAL);
	send_fds(b[0], &q, 8, 0);		/* short, on the pull socket */
	assert_int_equal(reply_err(b[0]), EINVAL);
	send_fds(a[0], &q, sizeof(q), 2);	/* two descriptors */
	assert_int_equal(reply_err(a[0]), EINVAL);
	memset(&q, 0, sizeof(q));
	q.kind = LAUNCH_PULL;
	strcpy(q.image, "../../etc");
	send_fds(b[0], &q, sizeof(q), 1);
	assert_int_equal(reply_err(b[0]), EINVAL);
	q.kind = LAUNCH_LIST;			/* well formed: no runtime */
	send_fds(a[0], &q, sizeof(q), 0);
	assert_int_equal(reply_err(a[0]), ENOENT);
	close(a[0]);				/* mantad-exec is gone */
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(b[0]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bundle_names),
		cmocka_unit_test(test_cids_logs_images),
		cmocka_unit_test(test_refused_without_fork),
		cmocka_unit_test(test_good_requests_fork),
		cmocka_unit_test(test_loop_on_sockets),
	};

	log_init("test_launch", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
