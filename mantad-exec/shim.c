/* shim: one small process per container, between mantad-exec and the OCI
 * runtime, as conmon is for CRI-O. mantad-exec forks and executes itself
 * as "mantad-exec --shim ...", and the shim:
 *
 *   - makes itself a child subreaper and runs "RUNTIME run --detach": the
 *     runtime exits once the container runs, and the container's init is
 *     reparented to the shim, which alone can then wait for it and learn
 *     its exit status (a detached container has no parent otherwise, and
 *     runc and crun keep no exit code);
 *   - relays the container's stdout and stderr (one pipe) to the task's
 *     log file, up to its size cap, so a chatty task can neither fill the
 *     disk nor block on a full pipe;
 *   - enforces tasks.task_timeout, and on SIGTERM (stop_task, stop_swarm,
 *     node stop) sends the container SIGTERM, then SIGKILL after the grace
 *     period;
 *   - reads the container cgroup's OOM kill counter, deletes the container
 *     (and so its cgroup) with "RUNTIME delete --force", and writes the
 *     outcome to <bundle>/result (atomically) before it exits.
 *
 * It runs in its own session, so it outlives mantad-exec: a killed or
 * restarted mantad-exec finds the result file, or a live shim to watch
 * (recover.c). It reports "R" on fd 3 (a pipe to mantad-exec, gone after
 * a restart) once the container runs, and "E" once the result is
 * written; the files "started" and "result" say the same to a later
 * mantad-exec. The container is deleted after "E". */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

#include "exec.h"

#define START_TIMEOUT_MS 60000	/* for "runtime run --detach" */
#define DRAIN_MS 1000		/* output after the init exited */
#define EXITS_MAX 64
#define INIT_CHECK_MS 1000	/* is the init still there? */

struct shim {
	const char *dir, *runtime, *root, *cid, *log, *memcg;
	unsigned long long cap;
	long long timeout_ms, grace_ms;

	int logfd;
	unsigned long long logsize;
	bool truncated;
	int out;		/* read end of the output pipe, -1 at EOF */
	int sfd;

	pid_t rt;		/* "runtime run --detach", 0 once reaped */
	int rt_status;
	pid_t init;		/* the container's init, 0 before known */
	bool init_done;
	int init_status;
	bool init_status_known;
	bool started;
	bool runtime_failed;
	int runtime_code;

	bool stop_req;
	bool timed_out;
	bool killed_term, killed_kill;
	long long start_deadline, timeout_at, kill_at, drain_at, check_at;

	struct { pid_t pid; int status; } exits[EXITS_MAX];
	size_t nexits;
};

static void
status_note(const char *s)
{
	/* fd 3 goes to mantad-exec; gone after it restarted (EPIPE). */
	(void)!write(3, s, strlen(s));
}

static pid_t
spawn(const struct shim *sh, char *const argv[], int out)
{
	sigset_t none;
	pid_t pid;
	int null;

	if ((null = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1)
		return -1;
	if ((pid = fork()) == -1) {
		close(null);
		return -1;
	}
	if (pid == 0) {
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(null, 0) == -1 || dup2(out >= 0 ? out : null, 1) == -1 ||
		    dup2(out >= 0 ? out : null, 2) == -1)
			_exit(127);
		(void)syscall(SYS_close_range, 3U, ~0U, 0U);
		execv(argv[0], argv);
		_exit(127);
	}
	(void)sh;
	close(null);
	return pid;
}

/* Runs "runtime --root R VERB [ARG] cid", waiting for it; output dropped. */
static int
runtime_simple(struct shim *sh, const char *verb, const char *arg)
{
	char *argv[8];
	int i = 0, status;
	pid_t pid;

	argv[i++] = (char *)sh->runtime;
	argv[i++] = (char *)"--root";
	argv[i++] = (char *)sh->root;
	argv[i++] = (char *)verb;
	if (arg != NULL)
		argv[i++] = (char *)arg;
	argv[i++] = (char *)sh->cid;
	argv[i] = NULL;
	if ((pid = spawn(sh, argv, -1)) == -1)
		return -1;
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void
relay(struct shim *sh)
{
	char buf[65536];
	ssize_t n;

	for (int rounds = 0; rounds < 16; rounds++) {
		size_t w;

		n = read(sh->out, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close(sh->out);
			sh->out = -1;
			return;
		}
		w = (size_t)n;
		if (sh->logsize >= sh->cap)
			w = 0;
		else if (sh->logsize + w > sh->cap)
			w = (size_t)(sh->cap - sh->logsize);
		if (w > 0 && write(sh->logfd, buf, w) == (ssize_t)w)
			sh->logsize += w;
		if (w < (size_t)n && !sh->truncated) {
			char note[128];
			int len = snprintf(note, sizeof(note),
			    "\n[mantad-exec: output cut at %llu bytes]\n",
			    sh->cap);

			(void)!write(sh->logfd, note, (size_t)len);
			sh->truncated = true;
		}
	}
}

static void
kill_init(struct shim *sh, int sig)
{
	if (sh->init <= 0 || sh->init_done)
		return;
	/* Our child (we are its subreaper): its pid cannot be reused before
	 * we reap it. */
	if (kill(sh->init, sig) == -1 && errno != ESRCH)
		log_warn("unable to signal container %s", sh->cid);
	if (sig == SIGTERM) {
		sh->killed_term = true;
		sh->kill_at = daemon_now_ms() + sh->grace_ms;
	} else
		sh->killed_kill = true;
}

static void
begin_stop(struct shim *sh)
{
	if (sh->killed_term || sh->killed_kill)
		return;
	kill_init(sh, SIGTERM);
}

static void
init_exited(struct shim *sh, int status, bool known)
{
	sh->init_done = true;
	sh->init_status = status;
	sh->init_status_known = known;
	sh->drain_at = daemon_now_ms() + DRAIN_MS;
}

static void
runtime_exited(struct shim *sh, int status)
{
	char buf[32], note[64];
	long v;

	sh->rt = 0;
	sh->rt_status = status;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		sh->runtime_failed = true;
		sh->runtime_code = WIFEXITED(status) ? WEXITSTATUS(status) :
		    128 + WTERMSIG(status);
		return;
	}
	if (read_small("init.pid", buf, sizeof(buf)) <= 0 ||
	    (v = strtol(buf, NULL, 10)) <= 0) {
		log_warnx("%s: the runtime left no init pid", sh->cid);
		sh->runtime_failed = true;
		sh->runtime_code = 0;
		return;
	}
	sh->init = (pid_t)v;
	sh->started = true;
	snprintf(note, sizeof(note), "%d\n", (int)sh->init);
	(void)write_file_atomic("started", note, strlen(note), 0600);
	status_note("R\n");
	/* Did it end before we knew its pid? */
	for (size_t i = 0; i < sh->nexits; i++)
		if (sh->exits[i].pid == sh->init) {
			init_exited(sh, sh->exits[i].status, true);
			return;
		}
	if (sh->timeout_ms > 0)
		sh->timeout_at = daemon_now_ms() + sh->timeout_ms;
	if (sh->stop_req)
		begin_stop(sh);
	/* The runtime's processes that stand between us and the init exit
	 * soon after it; the init is then reparented to us, its subreaper.
	 * If it is already gone and we did not reap it, we will not learn how
	 * it ended: check now and then (timers). */
	sh->check_at = daemon_now_ms() + INIT_CHECK_MS;
}

static void
reap(struct shim *sh)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == sh->rt)
			runtime_exited(sh, status);
		else if (sh->init > 0 && pid == sh->init)
			init_exited(sh, status, true);
		else if (sh->nexits < EXITS_MAX) {
			sh->exits[sh->nexits].pid = pid;
			sh->exits[sh->nexits].status = status;
			sh->nexits++;
		}
	}
}

static void
signals(struct shim *sh)
{
	struct signalfd_siginfo si;

	while (read(sh->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(sh);
			break;
		case SIGTERM:
		case SIGINT:
			sh->stop_req = true;
			if (sh->started)
				begin_stop(sh);
			break;
		default:
			break;
		}
	}
	reap(sh);
}

static bool
done(const struct shim *sh)
{
	if (sh->runtime_failed)
		return sh->rt == 0;
	if (!sh->init_done)
		return false;
	return sh->out == -1 || daemon_now_ms() >= sh->drain_at;
}

static int
next_timeout(const struct shim *sh, long long now)
{
	long long next = now + 60000;

	if (sh->rt != 0 && sh->start_deadline < next)
		next = sh->start_deadline;
	if (sh->started && !sh->init_done) {
		if (sh->timeout_at > 0 && !sh->timed_out && sh->timeout_at < next)
			next = sh->timeout_at;
		if (sh->killed_term && !sh->killed_kill && sh->kill_at < next)
			next = sh->kill_at;
		if (sh->check_at < next)
			next = sh->check_at;
	}
	if (sh->init_done && sh->drain_at < next)
		next = sh->drain_at;
	return next <= now ? 0 : (int)(next - now);
}

static void
timers(struct shim *sh)
{
	long long now = daemon_now_ms();

	if (sh->rt != 0 && now >= sh->start_deadline) {
		log_warnx("%s: the runtime did not start the container in %d s",
		    sh->cid, START_TIMEOUT_MS / 1000);
		kill(sh->rt, SIGKILL);
		sh->start_deadline = now + 60000;
	}
	if (!sh->started || sh->init_done)
		return;
	if (sh->timeout_at > 0 && !sh->timed_out && now >= sh->timeout_at) {
		sh->timed_out = true;
		begin_stop(sh);
	}
	if (sh->killed_term && !sh->killed_kill && now >= sh->kill_at)
		kill_init(sh, SIGKILL);
	if (now >= sh->check_at) {
		reap(sh);
		if (!sh->init_done && proc_start_time(sh->init, NULL) == 0) {
			log_warnx("%s: container init %d ended without us",
			    sh->cid, (int)sh->init);
			init_exited(sh, 0, false);
		}
		sh->check_at = now + INIT_CHECK_MS;
	}
}

/* The "oom_kill N" counter of the container's memory cgroup (v2
 * memory.events, v1 memory.oom_control). */
static unsigned long
oom_kills(const struct shim *sh)
{
	static const char *const files[] = { "memory.events", "memory.oom_control" };
	char path[4096], buf[1024], *p;

	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", sh->memcg, files[i]);
		if (read_small(path, buf, sizeof(buf)) <= 0)
			continue;
		for (p = buf; p != NULL && *p; p = strchr(p, '\n')) {
			if (*p == '\n')
				p++;
			if (strncmp(p, "oom_kill ", 9) == 0)
				return strtoul(p + 9, NULL, 10);
		}
	}
	return 0;
}

static void
write_result(struct shim *sh, unsigned long ooms)
{
	char buf[256];
	int code = -1, sig = 0;

	if (sh->init_status_known) {
		if (WIFEXITED(sh->init_status))
			code = WEXITSTATUS(sh->init_status);
		else if (WIFSIGNALED(sh->init_status))
			sig = WTERMSIG(sh->init_status);
	}
	snprintf(buf, sizeof(buf), "started=%d exit=%d signal=%d oom=%lu"
	    " timeout=%d stopped=%d runtime_error=%d runtime_code=%d\n",
	    sh->started, code, sig, ooms, sh->timed_out, sh->stop_req,
	    sh->runtime_failed, sh->runtime_code);
	if (write_file_atomic("result", buf, strlen(buf), 0600) == -1)
		log_warn("%s: unable to write the result", sh->cid);
}

/* The shim's own set-up: its session, a subreaper, its signals, the
 * bundle as its working directory (the last attempt's notes removed),
 * shim.pid and the log. */
static void
shim_setup(struct shim *sh)
{
	struct stat st;
	sigset_t set;
	char pidnote[64];

	(void)setsid();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == -1)
		log_warn("unable to become a subreaper");
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if ((sh->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		log_fatal(1, "signalfd");
	if (chdir(sh->dir) == -1)
		log_fatal(1, "unable to enter %s", sh->dir);
	(void)unlink("result");
	(void)unlink("started");
	(void)unlink("init.pid");
	snprintf(pidnote, sizeof(pidnote), "%d %llu\n", (int)getpid(),
	    proc_start_time(getpid(), NULL));
	(void)write_file_atomic("shim.pid", pidnote, strlen(pidnote), 0600);

	sh->logfd = open(sh->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (sh->logfd == -1)
		log_fatal(1, "unable to open %s", sh->log);
	if (fstat(sh->logfd, &st) == 0)
		sh->logsize = (unsigned long long)st.st_size;
}

/* "runtime run --detach", its output on a pipe the loop relays. */
static void
start_runtime(struct shim *sh)
{
	char *rargv[12];
	int p[2];

	if (pipe2(p, O_CLOEXEC) == -1)
		log_fatal(1, "pipe");
	sh->out = p[0];
	(void)fcntl(sh->out, F_SETFL, O_NONBLOCK);

	rargv[0] = (char *)sh->runtime;
	rargv[1] = (char *)"--root";
	rargv[2] = (char *)sh->root;
	rargv[3] = (char *)"run";
	rargv[4] = (char *)"--detach";
	rargv[5] = (char *)"--pid-file";
	rargv[6] = (char *)"init.pid";
	rargv[7] = (char *)"--bundle";
	rargv[8] = (char *)sh->dir;
	rargv[9] = (char *)sh->cid;
	rargv[10] = NULL;
	sh->start_deadline = daemon_now_ms() + START_TIMEOUT_MS;
	if ((sh->rt = spawn(sh, rargv, p[1])) == -1) {
		log_warn("unable to run %s", sh->runtime);
		sh->rt = 0;
		sh->runtime_failed = true;
		sh->runtime_code = 127;
	}
	close(p[1]);
}

/* Until the container and the runtime are gone: signals, output, timers. */
static void
shim_loop(struct shim *sh)
{
	while (!done(sh)) {
		struct pollfd pfd[2];
		int n = 0, iout = -1;

		pfd[n].fd = sh->sfd;
		pfd[n++].events = POLLIN;
		if (sh->out >= 0) {
			iout = n;
			pfd[n].fd = sh->out;
			pfd[n++].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)n, next_timeout(sh, daemon_now_ms())) == -1 &&
		    errno != EINTR)
			log_fatal(1, "poll");
		if (pfd[0].revents & POLLIN)
			signals(sh);
		if (iout >= 0 && (pfd[iout].revents & (POLLIN | POLLHUP | POLLERR)))
			relay(sh);
		timers(sh);
	}
	if (sh->out >= 0)
		relay(sh);
}

void
shim_main(int argc, char **argv)
{
	struct shim sh;
	unsigned long ooms = 0;

	log_init(PROG " shim", LOG_LVL_INFO);
	if (argc != 9)
		log_fatalx(2, "usage: " PROG " --shim DIR RUNTIME ROOT ID LOG CAP"
		    " TIMEOUT_MS GRACE_MS MEMCG");
	memset(&sh, 0, sizeof(sh));
	sh.dir = argv[0];
	sh.runtime = argv[1];
	sh.root = argv[2];
	sh.cid = argv[3];
	sh.log = argv[4];
	sh.cap = strtoull(argv[5], NULL, 10);
	sh.timeout_ms = strtoll(argv[6], NULL, 10);
	sh.grace_ms = strtoll(argv[7], NULL, 10);
	sh.memcg = argv[8];

	shim_setup(&sh);
	start_runtime(&sh);
	shim_loop(&sh);

	if (sh.started)
		ooms = oom_kills(&sh);
	close(sh.logfd);
	/* The outcome first, so the task is reported without waiting for
	 * the clean-up (a runtime call of its own). */
	write_result(&sh, ooms);
	status_note("E\n");
	/* Gone or never there: either way no container and no cgroup may be
	 * left. A failed start may have left one "created". */
	if (runtime_simple(&sh, "delete", "--force") != 0 && sh.started)
		log_warnx("%s: unable to delete the container", sh.cid);
	if (access(sh.memcg, F_OK) == 0 && rmdir(sh.memcg) == -1 &&
	    errno != ENOENT)
		log_warn("%s: unable to remove cgroup %s", sh.cid, sh.memcg);
	_exit(0);
}
