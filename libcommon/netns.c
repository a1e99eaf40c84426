/* netns: a task's own network namespace with a listening loopback socket.
 *
 * A short child unshares the network namespace, brings lo up (a new
 * namespace's lo is down), binds and listens on 127.0.0.1:port there and
 * sends that socket back over a socketpair; the parent bind-mounts
 * /proc/CHILD/ns/net onto path while the child still lives, then lets it
 * go. The socket stays in the namespace it was created in: whoever accepts
 * on it serves that namespace, and only it. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netns.h"

/* The child: async-signal-safe calls only (the parent may have threads). */
static void __attribute__((noreturn))
child(int sp, uint16_t port, int want_listen, int nsfd)
{
	struct sockaddr_in sin;
	struct ifreq ifr;
	int s = -1, one = 1, e = 0;
	char c = 0;

	/* An existing namespace (nsfd) already has its lo up. */
	if (nsfd != -1) {
		if (setns(nsfd, CLONE_NEWNET) == -1)
			goto fail;
		goto listen;
	}
	if (unshare(CLONE_NEWNET) == -1)
		goto fail;
	if ((s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == -1)
		goto fail;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) == -1)
		goto fail;
	close(s);
	s = -1;
listen:
	if (want_listen) {
		if ((s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0)) == -1)
			goto fail;
		(void)setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(s, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
		    listen(s, 64) == -1)
			goto fail;
		if (fd_send(sp, s, &c, 1) == -1)
			_exit(1);
	} else if (write(sp, &c, 1) != 1)
		_exit(1);
	/* Alive until the parent has mounted our namespace and closed its
	 * end. */
	while (read(sp, &c, 1) == -1 && errno == EINTR)
		continue;
	_exit(0);
fail:
	e = errno;
	if (write(sp, &e, sizeof(e)) != (ssize_t)sizeof(e))
		_exit(2);
	_exit(1);
}

static void
reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
}

/* Starts the child; once it has answered, *pid (alive until a byte on
 * *sp), *sp and, when want_listen, *fd. 0, or -1 with errno set and the
 * child gone. */
static int
spawn(uint16_t port, int want_listen, int nsfd, pid_t *pid, int *sp, int *fd)
{
	char buf[sizeof(int)];
	int p[2], e = 0;
	ssize_t n;

	*fd = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p) == -1)
		return -1;
	if ((*pid = fork()) == -1) {
		e = errno;
		close(p[0]);
		close(p[1]);
		errno = e;
		return -1;
	}
	if (*pid == 0) {
		close(p[0]);
		child(p[1], port, want_listen, nsfd);
	}
	close(p[1]);
	memset(buf, 0, sizeof(buf));
	n = fd_recv(p[0], fd, buf, sizeof(buf));
	if (n == (ssize_t)sizeof(int))
		memcpy(&e, buf, sizeof(e));
	else if (n != 1 || (want_listen && *fd == -1))
		e = n == -1 ? errno : EPROTO;
	if (e != 0) {
		if (*fd != -1)
			close(*fd);
		*fd = -1;
		close(p[0]);
		(void)kill(*pid, SIGKILL);
		reap(*pid);
		errno = e;
		return -1;
	}
	*sp = p[0];
	return 0;
}

int
netns_listen(const char *path, uint16_t port, int *lfd)
{
	int nsfd, sp, e;
	pid_t pid;

	*lfd = -1;
	if ((nsfd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (spawn(port, 1, nsfd, &pid, &sp, lfd) == -1) {
		e = errno;
		close(nsfd);
		errno = e;
		return -1;
	}
	close(nsfd);
	close(sp);		/* the child's read ends: it exits */
	reap(pid);
	return 0;
}

int
netns_create(const char *path, uint16_t port, int *lfd)
{
	char nspath[64];
	int sp, fd = -1, tfd = -1, e = 0;
	pid_t pid;

	if (lfd != NULL)
		*lfd = -1;
	if (spawn(port, lfd != NULL, -1, &pid, &sp, &fd) == -1)
		return -1;
	snprintf(nspath, sizeof(nspath), "/proc/%ld/ns/net", (long)pid);
	if ((tfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0400)) == -1) {
		e = errno;
		goto fail;
	}
	close(tfd);
	if (mount(nspath, path, NULL, MS_BIND, NULL) == -1) {
		e = errno;
		(void)unlink(path);
		goto fail;
	}
	close(sp);		/* the child's read ends: it exits */
	reap(pid);
	if (lfd != NULL)
		*lfd = fd;
	return 0;
fail:
	if (fd != -1)
		close(fd);
	close(sp);
	(void)kill(pid, SIGKILL);
	reap(pid);
	errno = e ? e : EIO;
	return -1;
}

int
netns_remove(const char *path)
{
	if (umount2(path, MNT_DETACH) == -1 && errno != EINVAL &&
	    errno != ENOENT)
		return -1;
	if (unlink(path) == -1 && errno != ENOENT)
		return -1;
	return 0;
}

int
fd_send(int sock, int fd, const void *buf, size_t len)
{
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)(uintptr_t)buf, .iov_len = len };
	struct msghdr mh;
	struct cmsghdr *cm;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	memset(&u, 0, sizeof(u));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.b;
	mh.msg_controllen = sizeof(u.b);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if ((size_t)n != len) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

ssize_t
fd_recv(int sock, int *fd, void *buf, size_t len)
{
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh;
	struct cmsghdr *cm;
	size_t got;
	bool extra = false;
	ssize_t n;
	int one;

	*fd = -1;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.b;
	mh.msg_controllen = sizeof(u.b);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		got = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < got; i++) {
			memcpy(&one, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (*fd == -1)
				*fd = one;
			else {
				close(one);
				extra = true;
			}
		}
	}
	if (extra || (mh.msg_flags & MSG_CTRUNC)) {
		/* More than one descriptor came: keep none of them. */
		if (*fd != -1)
			close(*fd);
		*fd = -1;
		errno = EPROTO;
		return -1;
	}
	return n;
}
