/* launch_client: mantad-exec's end of the launcher (launch.h). The
 * launcher is started before any thread; after that every runtime, shim
 * and clean-up is one request to it, answered at once (it forks and
 * replies; it never waits for what it started). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

#include "exec.h"

#define LAUNCH_REPLY_MS 10000

_Static_assert(LAUNCH_CID_MAX == CID_MAX, "container id sizes differ");

static void
exec_launcher(const struct exec *x, int fd3, int fd4, pid_t parent)
{
	char pid[24];
	char *argv[] = { (char *)PROG, (char *)"--launcher",
	    x->runtime ? x->runtime : (char *)"", x->runtime_root, x->tasks_dir,
	    x->logs_dir, x->cfg->run_dir, x->cfg->image_dir,
	    (char *)(x->cgroup2 ? "1" : "0"),
	    (char *)(x->opts->verbose ? "DEBUG" : "INFO"), pid, NULL };
	sigset_t none;

	snprintf(pid, sizeof(pid), "%d", (int)parent);
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Out of the way of 3 and 4 first, then there. */
	if ((fd3 = fcntl(fd3, F_DUPFD, 10)) == -1 ||
	    (fd4 = fcntl(fd4, F_DUPFD, 10)) == -1 ||
	    dup2(fd3, 3) == -1 || dup2(fd4, 4) == -1)
		_exit(111);
	(void)syscall(SYS_close_range, 5U, ~0U, 0U);
	execv("/proc/self/exe", argv);
	_exit(111);
}

static struct launch_chan *
chan_new(int fd, pid_t pid)
{
	struct launch_chan *ch = calloc(1, sizeof(*ch));

	if (ch == NULL)
		log_fatalx(1, "out of memory");
	ch->fd = fd;
	ch->pid = pid;
	return ch;
}

static void
close_fds(int fds[LAUNCH_FDS_MAX])
{
	for (size_t i = 0; i < LAUNCH_FDS_MAX; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* The main loop's channel, for ipc.c's question below (main thread). */
static struct launch_chan *exe_chan;

static ssize_t
exe_of(long pid, char *buf, size_t len)
{
	struct launch_req q;
	struct launch_rep rep;
	int fds[LAUNCH_FDS_MAX];
	size_t n;

	memset(&q, 0, sizeof(q));
	q.kind = LAUNCH_EXE;
	q.pid = (int32_t)pid;
	if (exe_chan == NULL || pid <= 0 || pid > INT32_MAX ||
	    launch_call(exe_chan, &q, -1, &rep, fds) == -1)
		return -1;
	close_fds(fds);
	rep.msg[sizeof(rep.msg) - 1] = '\0';
	if ((n = strlen(rep.msg)) > len)
		n = len;
	memcpy(buf, rep.msg, n);
	return (ssize_t)n;
}

int
launch_start(struct exec *x)
{
	pid_t parent = getpid(), pid;
	int a[2], b[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, a) == -1 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, b) == -1) {
		log_warn("socketpair");
		return -1;
	}
	if ((pid = fork()) == -1) {
		log_warn("fork");
		return -1;
	}
	if (pid == 0)
		exec_launcher(x, a[1], b[1], parent);
	close(a[1]);
	close(b[1]);
	x->launcher = chan_new(a[0], pid);
	x->launcher_pull = chan_new(b[0], pid);
	exe_chan = x->launcher;
	ipc_set_exe_reader(exe_of);
	log_info("launcher: process %d starts the runtime; this one parses",
	    (int)pid);
	return 0;
}

void
launch_close(struct exec *x)
{
	struct launch_chan *ch[2] = { x->launcher, x->launcher_pull };

	for (size_t i = 0; i < 2; i++)
		if (ch[i] != NULL) {
			close(ch[i]->fd);
			free(ch[i]);
		}
	x->launcher = x->launcher_pull = NULL;
	exe_chan = NULL;
	ipc_set_exe_reader(NULL);
}

int
launch_fd(const struct exec *x)
{
	return x->launcher->fd;
}

/* One packet: the reply and its descriptors. 1, 0 at EOF, -1. */
static int
recv_reply(int sock, struct launch_rep *rep, int fds[LAUNCH_FDS_MAX])
{
	char cbuf[CMSG_SPACE(sizeof(int) * LAUNCH_FDS_MAX)];
	struct iovec iov = { rep, sizeof(*rep) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	ssize_t n;

	for (size_t i = 0; i < LAUNCH_FDS_MAX; i++)
		fds[i] = -1;
	while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT)) == -1 &&
	    errno == EINTR)
		;
	if (n == 0)
		return 0;
	if (n == -1)
		return errno == EAGAIN ? -1 : 0;
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (i < LAUNCH_FDS_MAX)
				fds[i] = fd;
			else
				close(fd);
		}
	}
	if (n != (ssize_t)sizeof(*rep) || (mh.msg_flags & MSG_CTRUNC)) {
		log_warnx("launcher: a reply of %zd bytes", n);
		return -1;
	}
	return 1;
}

static void __attribute__((noreturn))
launcher_gone(const struct launch_chan *ch)
{
	log_fatalx(1, "launcher (process %d) gone: every task would fail;"
	    " exiting for the supervisor to restart us", (int)ch->pid);
}

static ssize_t
send_req(int sock, const struct launch_req *q, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { (void *)(uintptr_t)q, sizeof(*q) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	ssize_t n;

	memset(cbuf, 0, sizeof(cbuf));
	if (fd >= 0) {
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	while ((n = sendmsg(sock, &mh, MSG_NOSIGNAL)) == -1 && errno == EINTR)
		;
	return n;
}

int
launch_call(struct launch_chan *ch, struct launch_req *q, int fd,
    struct launch_rep *rep, int fds[LAUNCH_FDS_MAX])
{
	long long end = daemon_now_ms() + LAUNCH_REPLY_MS;
	struct pollfd pfd = { ch->fd, POLLIN, 0 };
	int rc;

	q->seq = ++ch->seq;
	if (send_req(ch->fd, q, fd) != (ssize_t)sizeof(*q))
		launcher_gone(ch);
	for (;;) {
		long long left = end - daemon_now_ms();

		if (left <= 0) {
			log_warnx("launcher: no reply in %d ms", LAUNCH_REPLY_MS);
			errno = ETIMEDOUT;
			return -1;
		}
		if (poll(&pfd, 1, (int)left) == -1 && errno != EINTR)
			return -1;
		if ((rc = recv_reply(ch->fd, rep, fds)) == 0)
			launcher_gone(ch);
		if (rc == 1 && rep->seq == q->seq)
			break;
		close_fds(fds);		/* a late reply to an earlier call */
	}
	if (rep->err != 0) {
		rep->msg[sizeof(rep->msg) - 1] = '\0';
		log_debug("launcher: %s: %s", rep->msg, strerror(rep->err));
		close_fds(fds);
		errno = rep->err;
		return -1;
	}
	return 0;
}

void
launch_input(struct exec *x)
{
	struct launch_rep rep;
	int fds[LAUNCH_FDS_MAX], rc;

	/* Nothing is expected between calls: a late reply, or the end. */
	while ((rc = recv_reply(x->launcher->fd, &rep, fds)) == 1)
		close_fds(fds);
	close_fds(fds);
	if (rc == 0)
		launcher_gone(x->launcher);
}

/* A request with a container id (and nothing else): 0 or -1. */
static int
cid_call(struct exec *x, enum launch_kind kind, const char *cid,
    struct launch_rep *rep, int fds[LAUNCH_FDS_MAX])
{
	struct launch_req q;

	memset(&q, 0, sizeof(q));
	q.kind = kind;
	if (cid != NULL)
		snprintf(q.cid, sizeof(q.cid), "%s", cid);
	return launch_call(x->launcher, &q, -1, rep, fds);
}

void
runtime_cleanup_async(struct exec *x, const char *cid)
{
	struct launch_rep rep;
	int fds[LAUNCH_FDS_MAX];

	if (x->runtime == NULL)
		return;
	if (cid_call(x, LAUNCH_CLEAN, cid, &rep, fds) == -1)
		log_warn("container %s: no clean-up", cid);
	else
		log_debug("container %s: clean-up in process %d", cid,
		    (int)rep.pid);
}

int
runtime_list(struct exec *x, char *out, size_t outlen)
{
	struct launch_rep rep;
	int fds[LAUNCH_FDS_MAX];
	size_t got = 0;

	if (x->runtime == NULL)
		return -1;
	if (cid_call(x, LAUNCH_LIST, NULL, &rep, fds) == -1) {
		log_warn("unable to list the runtime's containers");
		return -1;
	}
	if (fds[0] < 0)
		return -1;
	/* Recovery only, before the loop: read it to the end. */
	for (;;) {
		ssize_t n = read(fds[0], out + got, outlen - 1 - got);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0 || (got += (size_t)n) == outlen - 1)
			break;
	}
	out[got] = '\0';
	/* Cut short: the last id may be a part of one. */
	if (got == outlen - 1 && strrchr(out, '\n') != NULL)
		strrchr(out, '\n')[1] = '\0';
	close_fds(fds);
	return 0;
}
