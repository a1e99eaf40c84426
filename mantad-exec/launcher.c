/* launcher: the privileged half of mantad-exec (launch.h). One thread, one
 * poll loop over its socket and a signalfd: each checked request forks a
 * child, whose pid and descriptors go back to mantad-exec; SIGCHLD reaps
 * them. Shims start their own session and outlive the launcher; the
 * launcher ends when mantad-exec closes its end, or dies (PDEATHSIG). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "imgstore.h"
#include "log.h"
#include "netns.h"

#include "launch.h"

#define ARGS_MAX	16
#define SHIMS_MAX	4096

/* fork(2), replaced by the unit test to see that a refusal forks nothing. */
static pid_t (*launch_fork)(void) = fork;

/* Own shims, for what their end is logged with. */
static pid_t shims[SHIMS_MAX];

static bool
digits(const char **p, size_t min, size_t max)
{
	size_t n = 0;

	while (**p >= '0' && **p <= '9' && n < max + 1) {
		(*p)++;
		n++;
	}
	return n >= min && n <= max;
}

static bool
hex(const char **p, size_t n)
{
	for (size_t i = 0; i < n; i++, (*p)++)
		if (!((**p >= '0' && **p <= '9') || (**p >= 'a' && **p <= 'f')))
			return false;
	return true;
}

static bool
dash(const char **p)
{
	if (**p != '-')
		return false;
	(*p)++;
	return true;
}

/* NUL-terminated within max bytes. */
static bool
bounded(const char *s, size_t max)
{
	return memchr(s, '\0', max) != NULL;
}

bool
launch_bundle_ok(const char *s, size_t max)
{
	const char *p = s;

	if (!bounded(s, max) || !hex(&p, 32) || !dash(&p) || !hex(&p, 32) ||
	    !dash(&p) || !digits(&p, 1, 10) || !dash(&p) || !digits(&p, 1, 10))
		return false;
	if (*p == '-') {
		p++;
		if (!digits(&p, 1, 19))
			return false;
	}
	return *p == '\0';
}

bool
launch_cid_ok(const char *s, size_t max)
{
	const char *p = s;

	if (!bounded(s, max) || strncmp(p, "manta-", 6) != 0)
		return false;
	p += 6;
	return hex(&p, 8) && dash(&p) && hex(&p, 12) && dash(&p) &&
	    digits(&p, 1, 19) && dash(&p) && digits(&p, 1, 10) && *p == '\0';
}

bool
launch_log_ok(const char *s, size_t max)
{
	const char *p = s;

	return bounded(s, max) && digits(&p, 1, 19) && strcmp(p, ".log") == 0;
}

bool
launch_image_ok(const char *s, size_t max)
{
	static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._/:@-";

	return bounded(s, max) && s[0] != '\0' && s[0] != '-' &&
	    s[strspn(s, ok)] == '\0' && strstr(s, "..") == NULL;
}

/* The fields of the kinds that carry more than a container id. */
static const char *
check_more(const struct launch_req *q)
{
	switch (q->kind) {
	case LAUNCH_SHIM:
		if (!launch_bundle_ok(q->bundle, sizeof(q->bundle)))
			return "bad bundle name";
		if (!launch_log_ok(q->log, sizeof(q->log)))
			return "bad log name";
		if (q->log_cap == 0 || q->timeout_ms < 0 ||
		    q->grace_ms < 0 || q->grace_ms > LAUNCH_GRACE_MAX)
			return "bad shim option";
		return NULL;
	case LAUNCH_PULL:
		if (!launch_image_ok(q->image, sizeof(q->image)))
			return "bad image reference";
		if (q->insecure > 1 || q->max_disk > 100)
			return "bad pull option";
		return NULL;
	case LAUNCH_NETNS_ADD:
	case LAUNCH_NETNS_LISTEN:
		if (q->port == 0 || q->port > 65535)
			return "bad port";
		return NULL;
	case LAUNCH_EXE:
		return q->pid > 0 ? NULL : "bad pid";
	default:
		return NULL;
	}
}

const char *
launch_check(const void *frame, size_t len, bool truncated,
    struct launch_req *out)
{
	if (truncated || len != sizeof(*out))
		return "frame of the wrong size";
	memcpy(out, frame, sizeof(*out));
	switch (out->kind) {
	case LAUNCH_SHIM:
	case LAUNCH_CLEAN:
	case LAUNCH_NETNS_ADD:
	case LAUNCH_NETNS_LISTEN:
	case LAUNCH_NETNS_DEL:
		if (!launch_cid_ok(out->cid, sizeof(out->cid)))
			return "bad container id";
		return check_more(out);
	case LAUNCH_PULL:
	case LAUNCH_EXE:
		return check_more(out);
	case LAUNCH_LIST:
	case LAUNCH_PULL_CLEAN:
		return NULL;
	default:
		return "unknown request kind";
	}
}

static int
reply(int sock, const struct launch_rep *rep, const int *fds, size_t nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * LAUNCH_FDS_MAX)];
	struct iovec iov = { (void *)(uintptr_t)rep, sizeof(*rep) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	ssize_t n;

	memset(cbuf, 0, sizeof(cbuf));
	if (nfds > 0) {
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	while ((n = sendmsg(sock, &mh, MSG_NOSIGNAL)) == -1 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(*rep)) {
		log_warn("unable to reply to mantad-exec");
		return -1;
	}
	return 0;
}

static int
refuse(int sock, uint32_t seq, int err, const char *why)
{
	struct launch_rep rep;

	memset(&rep, 0, sizeof(rep));
	rep.seq = seq;
	rep.err = err;
	snprintf(rep.msg, sizeof(rep.msg), "%s", why);
	return reply(sock, &rep, NULL, 0);
}

/* In a child: the default signal mask, stdin (and out, err when quiet) on
 * /dev/null, keep as the one descriptor above 2 (at 3; -1: none). */
static void
child_fds(int keep, int out)
{
	sigset_t none;
	int null;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if ((null = open("/dev/null", O_RDWR)) == -1 || dup2(null, 0) == -1)
		_exit(127);
	if (out != -2 && dup2(out >= 0 ? out : null, 1) == -1)
		_exit(127);
	if (out != -2 && dup2(null, 2) == -1)
		_exit(127);
	if (keep >= 0) {
		if (keep == 3)
			(void)fcntl(3, F_SETFD, 0);
		else if (dup2(keep, 3) == -1)
			_exit(127);
	}
	(void)syscall(SYS_close_range, keep >= 0 ? 4U : 3U, ~0U, 0U);
}

static void
run_wait(char *const argv[])
{
	pid_t pid;

	if ((pid = fork()) == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid > 0)
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
}

static void
remember_shim(pid_t pid)
{
	for (size_t i = 0; i < SHIMS_MAX; i++)
		if (shims[i] == 0) {
			shims[i] = pid;
			return;
		}
}

/* The shim's argv, in bufs; 0 or -1 (too long). */
static int
shim_argv(const struct launch_cfg *c, const struct launch_req *q,
    char bufs[6][4096], char *argv[ARGS_MAX])
{
	int n = 0;

	n |= snprintf(bufs[0], 4096, "%s/%s", c->tasks_dir, q->bundle) >= 4096;
	n |= snprintf(bufs[1], 4096, "%s/%s", c->logs_dir, q->log) >= 4096;
	n |= snprintf(bufs[2], 4096, "%s/manta/%s", c->cgroup2 ?
	    "/sys/fs/cgroup" : "/sys/fs/cgroup/memory", q->cid) >= 4096;
	snprintf(bufs[3], 4096, "%" PRIu64, q->log_cap);
	snprintf(bufs[4], 4096, "%" PRId64, q->timeout_ms);
	snprintf(bufs[5], 4096, "%" PRId64, q->grace_ms);
	argv[0] = (char *)"mantad-exec";
	argv[1] = (char *)"--shim";
	argv[2] = bufs[0];
	argv[3] = (char *)c->runtime;
	argv[4] = (char *)c->root;
	argv[5] = (char *)q->cid;
	argv[6] = bufs[1];
	argv[7] = bufs[3];
	argv[8] = bufs[4];
	argv[9] = bufs[5];
	argv[10] = bufs[2];
	argv[11] = NULL;
	return n ? -1 : 0;
}

static int
serve_shim(const struct launch_cfg *c, int sock, const struct launch_req *q)
{
	static char bufs[6][4096];
	char *argv[ARGS_MAX];
	struct launch_rep rep;
	int p[2], fds[2], rc;
	pid_t pid;

	if (shim_argv(c, q, bufs, argv) == -1)
		return refuse(sock, q->seq, ENAMETOOLONG, "path too long");
	if (pipe2(p, O_CLOEXEC) == -1)
		return refuse(sock, q->seq, errno, "pipe");
	if ((pid = launch_fork()) == -1) {
		rc = errno;
		close(p[0]);
		close(p[1]);
		return refuse(sock, q->seq, rc, "fork");
	}
	if (pid == 0) {
		child_fds(p[1], -2);
		execv("/proc/self/exe", argv);
		_exit(111);
	}
	close(p[1]);
	remember_shim(pid);
	memset(&rep, 0, sizeof(rep));
	rep.seq = q->seq;
	rep.pid = pid;
	fds[0] = p[0];
	fds[1] = (int)syscall(SYS_pidfd_open, pid, 0);
	rep.nfds = fds[1] >= 0 ? 2 : 1;
	rc = reply(sock, &rep, fds, rep.nfds);
	close(p[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	log_debug("container %s: shim %d", q->cid, (int)pid);
	return rc;
}

static int
serve_clean(const struct launch_cfg *c, int sock, const struct launch_req *q)
{
	char *kargv[] = { (char *)c->runtime, (char *)"--root", (char *)c->root,
	    (char *)"kill", (char *)q->cid, (char *)"KILL", NULL };
	char *dargv[] = { (char *)c->runtime, (char *)"--root", (char *)c->root,
	    (char *)"delete", (char *)"--force", (char *)q->cid, NULL };
	struct launch_rep rep;
	pid_t pid;

	if ((pid = launch_fork()) == -1)
		return refuse(sock, q->seq, errno, "fork");
	if (pid == 0) {
		child_fds(-1, -1);
		run_wait(kargv);
		run_wait(dargv);
		_exit(0);
	}
	log_debug("container %s: clean-up in process %d", q->cid, (int)pid);
	memset(&rep, 0, sizeof(rep));
	rep.seq = q->seq;
	rep.pid = pid;
	return reply(sock, &rep, NULL, 0);
}

static int
serve_list(const struct launch_cfg *c, int sock, const struct launch_req *q)
{
	char *argv[] = { (char *)c->runtime, (char *)"--root", (char *)c->root,
	    (char *)"list", (char *)"--quiet", NULL };
	struct launch_rep rep;
	int p[2], rc;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		return refuse(sock, q->seq, errno, "pipe");
	if ((pid = launch_fork()) == -1) {
		rc = errno;
		close(p[0]);
		close(p[1]);
		return refuse(sock, q->seq, rc, "fork");
	}
	if (pid == 0) {
		child_fds(-1, p[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	memset(&rep, 0, sizeof(rep));
	rep.seq = q->seq;
	rep.pid = pid;
	rep.nfds = 1;
	rc = reply(sock, &rep, &p[0], 1);
	close(p[0]);
	return rc;
}

static int
serve_pull(const struct launch_cfg *c, int sock, const struct launch_req *q,
    int authfd)
{
	char pct[16];
	const char *argv[] = { "mantad-exec", "--pull", c->image_dir,
	    c->tasks_dir, q->image, q->insecure ? "1" : "0", pct,
	    authfd >= 0 ? "/proc/self/fd/3" : "", NULL };
	struct launch_rep rep;
	int p[2], fds[2], rc;
	pid_t pid, parent = getpid();

	snprintf(pct, sizeof(pct), "%u", q->max_disk);
	if (pipe2(p, O_CLOEXEC) == -1)
		return refuse(sock, q->seq, errno, "pipe");
	if ((pid = launch_fork()) == -1) {
		rc = errno;
		close(p[0]);
		close(p[1]);
		return refuse(sock, q->seq, rc, "fork");
	}
	if (pid == 0) {
		/* Its own group, which mantad-exec kills at the deadline. */
		(void)setpgid(0, 0);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
			_exit(111);
		if (dup2(p[1], 1) == -1)
			_exit(111);
		child_fds(authfd, -2);
		execv("/proc/self/exe", (char *const *)(uintptr_t)argv);
		_exit(111);
	}
	close(p[1]);
	memset(&rep, 0, sizeof(rep));
	rep.seq = q->seq;
	rep.pid = pid;
	fds[0] = p[0];
	fds[1] = (int)syscall(SYS_pidfd_open, pid, 0);
	rep.nfds = fds[1] >= 0 ? 2 : 1;
	rc = reply(sock, &rep, fds, rep.nfds);
	close(p[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	log_debug("pull of %s: process %d", q->image, (int)pid);
	return rc;
}

static int
serve_pull_clean(const struct launch_cfg *c, int sock, const struct launch_req *q)
{
	struct imgstore st = { .image_dir = c->image_dir, .authfd = -1 };
	struct launch_rep rep;
	pid_t pid;

	if ((pid = launch_fork()) == -1)
		return refuse(sock, q->seq, errno, "fork");
	if (pid == 0) {
		child_fds(-1, -2);
		imgstore_clean(&st);
		_exit(0);
	}
	memset(&rep, 0, sizeof(rep));
	rep.seq = q->seq;
	rep.pid = pid;
	return reply(sock, &rep, NULL, 0);
}

/* Network namespaces: short, bounded work (netns.c waits for its own
 * child only until the namespace is made), done in line. */
static int
serve_netns(const struct launch_cfg *c, int sock, const struct launch_req *q)
{
	char path[4096];
	struct launch_rep rep;
	int lfd = -1, rc = 0;

	if (snprintf(path, sizeof(path), "%s/netns", c->run_dir) >= (int)sizeof(path))
		return refuse(sock, q->seq, ENAMETOOLONG, "path too long");
	if (q->kind == LAUNCH_NETNS_ADD && mkdir(path, 0700) == -1 && errno != EEXIST)
		return refuse(sock, q->seq, errno, "netns directory");
	if (snprintf(path, sizeof(path), "%s/netns/%s", c->run_dir, q->cid) >=
	    (int)sizeof(path))
		return refuse(sock, q->seq, ENAMETOOLONG, "path too long");
	switch (q->kind) {
	case LAUNCH_NETNS_ADD:
		(void)netns_remove(path);	/* a leftover of a crash */
		rc = netns_create(path, (uint16_t)q->port, &lfd);
		break;
	case LAUNCH_NETNS_LISTEN:
		rc = netns_listen(path, (uint16_t)q->port, &lfd);
		break;
	default:
		rc = netns_remove(path);
		break;
	}
	if (rc == -1)
		return refuse(sock, q->seq, errno, "network namespace");
	memset(&rep, 0, sizeof(rep));
	rep.seq = q->seq;
	rep.nfds = lfd >= 0 ? 1 : 0;
	rc = reply(sock, &rep, &lfd, rep.nfds);
	if (lfd >= 0)
		close(lfd);
	return rc;
}

/* The name of the file pid executed: reading another account's
 * /proc/PID/exe takes CAP_SYS_PTRACE, which mantad-exec no longer has. */
static int
serve_exe(int sock, const struct launch_req *q)
{
	char path[64], buf[4096];
	struct launch_rep rep;
	const char *base;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)q->pid);
	if ((n = readlink(path, buf, sizeof(buf) - 1)) == -1)
		return refuse(sock, q->seq, errno, "readlink");
	buf[n] = '\0';
	base = strrchr(buf, '/');
	memset(&rep, 0, sizeof(rep));
	rep.seq = q->seq;
	base = base != NULL ? base + 1 : buf;
	if (strlen(base) >= sizeof(rep.msg))
		return refuse(sock, q->seq, ENAMETOOLONG, "name too long");
	memcpy(rep.msg, base, strlen(base) + 1);
	return reply(sock, &rep, NULL, 0);
}

static int
serve(const struct launch_cfg *c, int sock, const struct launch_req *q, int fd)
{
	bool runtime = q->kind == LAUNCH_SHIM || q->kind == LAUNCH_CLEAN ||
	    q->kind == LAUNCH_LIST;

	if (runtime && c->runtime[0] == '\0')
		return refuse(sock, q->seq, ENOENT, "no OCI runtime");
	switch (q->kind) {
	case LAUNCH_SHIM:
		return serve_shim(c, sock, q);
	case LAUNCH_CLEAN:
		return serve_clean(c, sock, q);
	case LAUNCH_LIST:
		return serve_list(c, sock, q);
	case LAUNCH_PULL:
		return serve_pull(c, sock, q, fd);
	case LAUNCH_PULL_CLEAN:
		return serve_pull_clean(c, sock, q);
	case LAUNCH_EXE:
		return serve_exe(sock, q);
	default:
		return serve_netns(c, sock, q);
	}
}

int
launch_serve(const struct launch_cfg *c, int sock, const void *frame,
    size_t len, bool truncated, int fd)
{
	struct launch_req q;
	const char *why;
	int rc;

	memset(&q, 0, sizeof(q));
	if ((why = launch_check(frame, len, truncated, &q)) != NULL) {
		log_warnx("request refused: %s (kind %" PRIu32 ", %zu bytes)",
		    why, q.kind, len);
		rc = refuse(sock, q.seq, EINVAL, why);
	} else if (fd >= 0 && q.kind != LAUNCH_PULL) {
		log_warnx("request refused: a descriptor with kind %" PRIu32,
		    q.kind);
		rc = refuse(sock, q.seq, EINVAL, "unexpected descriptor");
	} else
		rc = serve(c, sock, &q, fd);
	if (fd >= 0)
		close(fd);
	return rc;
}

static void
reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		bool shim = false;

		for (size_t i = 0; i < SHIMS_MAX; i++)
			if (shims[i] == pid) {
				shims[i] = 0;
				shim = true;
				break;
			}
		if (shim && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
			log_warnx("shim %d ended with status %d", (int)pid,
			    WIFEXITED(status) ? WEXITSTATUS(status) :
			    128 + WTERMSIG(status));
	}
}

/* One packet from sock, and at most one descriptor with it (*fd). The
 * byte count (more than the buffer: truncated), 0 at the end, -1. */
static ssize_t
recv_req(int sock, void *buf, size_t len, int *fd)
{
	char cbuf[CMSG_SPACE(sizeof(int) * LAUNCH_FDS_MAX)];
	struct iovec iov = { buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	ssize_t n;

	*fd = -1;
	n = recvmsg(sock, &mh, MSG_TRUNC | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	for (cm = CMSG_FIRSTHDR(&mh); n >= 0 && cm != NULL;
	    cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < k; i++) {
			int f;

			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (*fd == -1 && i == 0)
				*fd = f;
			else
				close(f);	/* more than one: refused below */
		}
	}
	if (n > 0 && (mh.msg_flags & MSG_CTRUNC))
		n = (ssize_t)len + 1;
	return n;
}

/* Reads packets on both sockets until mantad-exec is gone. */
static void
loop(const struct launch_cfg *c, int sfd)
{
	union { struct launch_req q; char b[sizeof(struct launch_req) + 1]; } u;
	struct signalfd_siginfo si;
	struct pollfd pfd[3] = { { sfd, POLLIN, 0 }, { 3, POLLIN, 0 },
	    { 4, POLLIN, 0 } };
	ssize_t n;
	int fd;

	for (;;) {
		if (poll(pfd, 3, -1) == -1) {
			if (errno == EINTR)
				continue;
			log_fatal(1, "poll");
		}
		if (pfd[0].revents & POLLIN) {
			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				;
			reap();
		}
		for (int i = 1; i < 3; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = recv_req(pfd[i].fd, u.b, sizeof(u.b), &fd);
			if (n == -1 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0)
				return;
			if (launch_serve(c, pfd[i].fd, u.b, (size_t)n > sizeof(u.b) ?
			    sizeof(u.b) : (size_t)n, (size_t)n > sizeof(u.q),
			    fd) == -1)
				return;
		}
	}
}

void
launcher_main(int argc, char **argv)
{
	struct launch_cfg c;
	sigset_t set;
	int sfd, level;

	log_init("mantad-exec launcher", LOG_LVL_INFO);
	if (argc != 9)
		log_fatalx(2, "usage: mantad-exec --launcher RUNTIME ROOT TASKS"
		    " LOGS RUN_DIR IMAGE_DIR CGROUP2 LEVEL PARENT");
	/* Gone with mantad-exec, even if it died before we got here. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != (pid_t)strtol(argv[8], NULL, 10))
		_exit(0);
	c.runtime = argv[0];
	c.root = argv[1];
	c.tasks_dir = argv[2];
	c.logs_dir = argv[3];
	c.run_dir = argv[4];
	c.image_dir = argv[5];
	c.cgroup2 = strcmp(argv[6], "1") == 0;
	if ((level = log_level_parse(argv[7])) >= 0)
		log_set_level((enum log_level)level);
	signal(SIGPIPE, SIG_IGN);
	/* The node's stop is mantad-exec's to run: it may still need us. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* Nothing of mantad-exec's but the sockets, on fds 3 and 4. */
	(void)fcntl(3, F_SETFD, FD_CLOEXEC);
	(void)fcntl(4, F_SETFD, FD_CLOEXEC);
	(void)syscall(SYS_close_range, 5U, ~0U, 0U);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if ((sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		log_fatal(1, "signalfd");
	loop(&c, sfd);
	_exit(0);
}
