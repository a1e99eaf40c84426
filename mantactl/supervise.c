/* The supervisor: starts res, register, beat, exec and light (all five
 * required: a missing one starts none) in that order, each once the previous one signalled readiness on
 * a pipe (s6's notification-fd), restarts a daemon that dies with exponential
 * backoff, answers status over IPC and stops everything on SIGTERM.
 *
 * A stop (SIGTERM, a Shutdown request from mantactl stop or mantad-exec's
 * stop_node) is graceful: mantad-exec is drained first (a transient
 * DrainRequest), and polled until no task is left or the drain timeout
 * passes; then the daemons get SIGTERM. SIGINT, or SIGTERM during the
 * drain, skips it. SIGHUP: the file is parsed whole, and only if it is
 * good are the daemons told to reload (SIGHUP). SIGUSR2 stops for a
 * restart that keeps the tasks (a package upgrade): no drain, and
 * mantad-exec gets SIGKILL, not SIGTERM, which would stop its containers;
 * the next mantad-exec adopts them (recover.c). Exit status 75 then says
 * "start me again" (manta-node@.service: RestartForceExitStatus=75).
 *
 * Under systemd (Type=notify), READY=1 goes to $NOTIFY_SOCKET once every
 * daemon is up and STOPPING=1 when a stop begins (notify.c).
 *
 * Each daemon is a small state machine (DOWN, STARTING, UP, BACKOFF, FAILED)
 * driven by events from one zmq_poll loop: readiness byte, child exit,
 * deadline. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "confine.h"
#include "daemon.h"
#include "ipc.h"
#include "log.h"
#include "mantactl.h"
#include "notify.h"
#include "supervise.h"

#define READY_TIMEOUT_MS 15000
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define STABLE_MS 30000		/* up this long: the next death restarts at once */
#define STOP_GRACE_MS 10000
#define DRAIN_DEFAULT_S 30	/* a stop waits this long for running tasks */
#define DRAIN_POLL_MS 250
#define DRAIN_CALL_MS 1000
#define EXIT_PERMANENT 100	/* a daemon's "do not restart me" (bad config) */
#define EXIT_RESTART 75		/* after SIGUSR2: "start me again" (EX_TEMPFAIL) */

enum sv_state { SV_DOWN, SV_STARTING, SV_UP, SV_BACKOFF, SV_FAILED };
static const char *const sv_names[] = { "down", "starting", "up", "backoff", "down" };

struct svc {
	const char *name;
	char *path;
	enum sv_state state;
	pid_t pid;
	int ready_fd;
	unsigned restarts;
	long long since_ms;		/* start of the current state */
	long long deadline_ms;		/* ready timeout or backoff end */
	int backoff_ms;
	int started_once;
};

struct sv {
	struct manta_cfg *cfg;
	const char *cfg_path;
	struct svc svcs[5];
	size_t nsvcs;
	int stopping;
	long long stop_deadline;
	int draining;			/* the drain before a stop (issue 6) */
	long long drain_start, drain_deadline, next_drain_poll;
	int ready_fd;			/* to the "mantactl start -d" parent */
	int all_up_told;
	int keep_tasks;			/* SIGUSR2: a restart leaves the containers */
	struct ipc_server *ipc;
};

static void
set_state(struct svc *s, enum sv_state st)
{
	s->state = st;
	s->since_ms = daemon_now_ms();
}

static int
spawn(struct sv *sv, struct svc *s)
{
	pid_t pid, parent = getpid();
	sigset_t none;
	int p[2];

	if (pipe2(p, O_CLOEXEC) == -1) {
		log_warn("unable to create a readiness pipe for %s", s->name);
		return -1;
	}
	pid = fork();
	if (pid == -1) {
		log_warn("unable to fork for %s", s->name);
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		/* Child: only async-signal-safe calls until execv. */
		char *argv[] = { (char *)s->path, "-c", (char *)sv->cfg_path, "-r", "3", NULL };

		/* The daemons die with us (SIGKILL, as in a crash of the
		 * whole node: the next start re-adopts the containers), never
		 * left running beside the daemons of a new supervisor. We may
		 * have died before the prctl: then we are no longer the parent. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
			_exit(111);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (p[1] == 3) {
			fcntl(3, F_SETFD, 0);
		} else if (dup2(p[1], 3) == -1) {
			_exit(111);
		}
		execv(s->path, argv);
		_exit(111);
	}
	close(p[1]);
	s->pid = pid;
	s->ready_fd = p[0];
	s->deadline_ms = daemon_now_ms() + READY_TIMEOUT_MS;
	if (s->started_once)
		s->restarts++;
	s->started_once = 1;
	set_state(s, SV_STARTING);
	log_info("started %s (pid %d)", s->name, (int)pid);
	return 0;
}

static void
close_ready(struct svc *s)
{
	if (s->ready_fd >= 0)
		close(s->ready_fd);
	s->ready_fd = -1;
}

/* The next daemon to start in the initial, ordered start: the first one
 * that never started, once every one before it is up. */
static void
start_next(struct sv *sv)
{
	for (size_t i = 0; i < sv->nsvcs; i++) {
		struct svc *s = &sv->svcs[i];

		if (s->started_once && s->state == SV_UP)
			continue;
		if (!s->started_once && s->state == SV_DOWN) {
			if (spawn(sv, s) == -1) {
				s->backoff_ms = BACKOFF_MIN_MS;
				s->deadline_ms = daemon_now_ms() + s->backoff_ms;
				set_state(s, SV_BACKOFF);
			}
		}
		return;
	}
	if (!sv->all_up_told) {
		sv->all_up_told = 1;
		log_info("all daemons up");
		notify_send("READY=1\nSTATUS=node %s: all %zu daemons up",
		    sv->cfg->instance, sv->nsvcs);
		if (sv->ready_fd >= 0) {
			(void)!write(sv->ready_fd, "\n", 1);
			close(sv->ready_fd);
			sv->ready_fd = -1;
		}
	}
}

/* "<what> <name>\n" to the parent of "mantactl start -d", once. */
static void
tell_parent_failure(struct sv *sv, const char *what, const char *name)
{
	char buf[256];
	int n;

	if (sv->ready_fd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "%s %s\n", what, name);
	if (n > 0)
		(void)!write(sv->ready_fd, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
	close(sv->ready_fd);
	sv->ready_fd = -1;
}

static void
on_exit_status(struct sv *sv, struct svc *s, int status)
{
	long long now = daemon_now_ms();
	long long ran = now - s->since_ms;
	int permanent = WIFEXITED(status) && WEXITSTATUS(status) == EXIT_PERMANENT;

	if (WIFSIGNALED(status))
		log_warnx("%s (pid %d) killed by signal %d", s->name, (int)s->pid, WTERMSIG(status));
	else if (!sv->stopping || WEXITSTATUS(status) != 0)
		log_warnx("%s (pid %d) exited with status %d", s->name, (int)s->pid,
		    WEXITSTATUS(status));
	s->pid = 0;
	close_ready(s);
	if (sv->stopping) {
		set_state(s, SV_DOWN);
		return;
	}
	if (permanent) {
		log_errorx("%s failed permanently (exit %d); not restarting it", s->name,
		    EXIT_PERMANENT);
		set_state(s, SV_FAILED);
		tell_parent_failure(sv, "failed permanently (bad config?):", s->name);
		return;
	}
	/* Exponential backoff, reset after a stable run. */
	if (s->state == SV_UP && ran >= STABLE_MS)
		s->backoff_ms = 0;
	else if (s->backoff_ms == 0)
		s->backoff_ms = BACKOFF_MIN_MS;
	else if ((s->backoff_ms *= 2) > BACKOFF_MAX_MS)
		s->backoff_ms = BACKOFF_MAX_MS;
	s->deadline_ms = now + s->backoff_ms;
	set_state(s, SV_BACKOFF);
	if (s->backoff_ms > 0)
		log_info("restarting %s in %d ms", s->name, s->backoff_ms);
}

static void
reap(struct sv *sv)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (size_t i = 0; i < sv->nsvcs; i++)
			if (sv->svcs[i].pid == pid)
				on_exit_status(sv, &sv->svcs[i], status);
	}
}

static void
on_ready_fd(struct sv *sv, struct svc *s)
{
	char buf[64];
	ssize_t n = read(s->ready_fd, buf, sizeof(buf));

	if (n > 0 && memchr(buf, '\n', (size_t)n) != NULL) {
		close_ready(s);
		set_state(s, SV_UP);
		log_info("%s is up", s->name);
		start_next(sv);
	} else if (n == 0) {
		/* Closed without a word: it will exit; reap() will tell. */
		close_ready(s);
	}
}

static void
begin_stop(struct sv *sv)
{
	if (sv->stopping)
		return;
	sv->draining = 0;
	sv->stopping = 1;
	sv->stop_deadline = daemon_now_ms() + STOP_GRACE_MS;
	log_info(sv->keep_tasks ? "stopping for a restart; running tasks stay" : "stopping");
	notify_send("STOPPING=1\nSTATUS=stopping the daemons");
	/* Reverse order: beat says goodbye to the manager before the rest go. */
	for (size_t i = sv->nsvcs; i-- > 0;) {
		struct svc *s = &sv->svcs[i];
		if (s->pid > 0)
			kill(s->pid, sv->keep_tasks && strcmp(s->name, "mantad-exec") == 0 ?
			    SIGKILL : SIGTERM);
		else
			set_state(s, SV_DOWN);
	}
}

static struct svc *
find_svc(struct sv *sv, const char *name)
{
	for (size_t i = 0; i < sv->nsvcs; i++)
		if (strcmp(sv->svcs[i].name, name) == 0)
			return &sv->svcs[i];
	return NULL;
}

/* Asks mantad-exec: 1 when no task is queued, pending or running, 0 when
 * some are, -1 without an answer. A DrainRequest (drain) or a plain
 * StatusRequest. */
static int
exec_idle(struct sv *sv, bool drain, unsigned *left)
{
	ipc_msg req = MANTA__IPC__MSG__INIT, *rep = NULL;
	Manta__Ipc__DrainRequest dr = MANTA__IPC__DRAIN_REQUEST__INIT;
	Manta__Ipc__StatusRequest sr = MANTA__IPC__STATUS_REQUEST__INIT;
	const Manta__Ipc__ExecStatus *es;
	int rc = -1;

	if (drain) {
		dr.transient = true;	/* the next start takes tasks again */
		req.body_case = MANTA__IPC__MSG__BODY_DRAIN;
		req.drain = &dr;
	} else {
		req.body_case = MANTA__IPC__MSG__BODY_STATUS_REQ;
		req.status_req = &sr;
	}
	if (ipc_call(sv->cfg->run_dir, IPC_EXEC, &req, &rep, DRAIN_CALL_MS) == -1)
		return -1;
	if (rep->body_case == MANTA__IPC__MSG__BODY_STATUS && rep->status->exec != NULL) {
		es = rep->status->exec;
		*left = es->queued + es->pending + es->running;
		rc = *left == 0;
	}
	ipc_msg_free(rep);
	return rc;
}

/* A graceful stop (mantactl stop, SIGTERM, stop_node): mantad-exec takes
 * no new task, the running ones get up to timeout_s to finish, then the
 * daemons are stopped (mantad-exec stops what still runs). */
static void
begin_drain(struct sv *sv, unsigned timeout_s)
{
	struct svc *ex = find_svc(sv, "mantad-exec");
	long long now = daemon_now_ms();
	unsigned left = 0;
	int rc;

	if (sv->stopping || sv->draining)
		return;
	if (ex == NULL || ex->pid <= 0 || ex->state != SV_UP ||
	    (rc = exec_idle(sv, true, &left)) == -1) {
		if (ex != NULL)
			log_info("stopping without a drain: mantad-exec does not"
			    " answer");
		begin_stop(sv);
		return;
	}
	if (rc == 1) {
		log_info("no task runs: stopping");
		begin_stop(sv);
		return;
	}
	sv->draining = 1;
	sv->drain_start = now;
	sv->drain_deadline = now + (long long)timeout_s * 1000;
	sv->next_drain_poll = now + DRAIN_POLL_MS;
	log_info("draining before the stop: %u task%s to finish, at most %u s",
	    left, left == 1 ? "" : "s", timeout_s);
	notify_send("STOPPING=1\nSTATUS=draining: %u task%s to finish, at most %u s",
	    left, left == 1 ? "" : "s", timeout_s);
}

static void
drain_tick(struct sv *sv, long long now)
{
	unsigned left = 0;
	int rc;

	if (!sv->draining || now < sv->next_drain_poll)
		return;
	rc = exec_idle(sv, false, &left);
	now = daemon_now_ms();
	sv->next_drain_poll = now + DRAIN_POLL_MS;
	if (rc == 1) {
		log_info("drained in %lld ms: stopping", now - sv->drain_start);
		begin_stop(sv);
	} else if (now >= sv->drain_deadline) {
		if (rc == 0)
			log_warnx("drain timeout: %u task%s still running, stopped"
			    " now", left, left == 1 ? "" : "s");
		else
			log_warnx("drain timeout: mantad-exec does not answer;"
			    " stopping");
		begin_stop(sv);
	}
}

/* SIGHUP: the whole file is parsed first; on any error nothing changes.
 * Else each daemon gets SIGHUP and reloads what it can (its man page). */
static void
reload(struct sv *sv)
{
	struct cfg_error err;
	struct manta_cfg *n;
	char line[1200];
	int lvl, told = 0;

	memset(&err, 0, sizeof(err));
	if ((n = cfg_load(sv->cfg_path, &err)) == NULL) {
		cfg_error_format(&err, line, sizeof(line));
		log_warnx("SIGHUP: bad config: %s; keeping the current"
		    " configuration, nothing reloaded", line);
		return;
	}
	if (strcmp(n->run_dir, sv->cfg->run_dir) != 0 ||
	    strcmp(n->state_dir, sv->cfg->state_dir) != 0)
		log_warnx("SIGHUP: paths.run_dir and paths.state_dir change only"
		    " at the next start");
	lvl = log_level_parse(n->log_level ? n->log_level : "INFO");
	log_set_level(lvl < 0 ? LOG_LVL_INFO : (enum log_level)lvl);
	cfg_free(n);
	for (size_t i = 0; i < sv->nsvcs; i++)
		if (sv->svcs[i].pid > 0 && kill(sv->svcs[i].pid, SIGHUP) == 0)
			told++;
	log_info("SIGHUP: %s parsed; %d daemon%s told to reload", sv->cfg_path,
	    told, told == 1 ? "" : "s");
}

/* SIGUSR2 joins the signals daemon_signalfd() reads. */
static int
watch_sigusr2(int sfd)
{
	sigset_t set;

	if (sigprocmask(SIG_BLOCK, NULL, &set) == -1 || sigaddset(&set, SIGUSR2) == -1 ||
	    sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		return -1;
	return signalfd(sfd, &set, SFD_NONBLOCK | SFD_CLOEXEC) == -1 ? -1 : 0;
}

static int
all_down(const struct sv *sv)
{
	for (size_t i = 0; i < sv->nsvcs; i++)
		if (sv->svcs[i].pid > 0)
			return 0;
	return 1;
}

static void
answer(struct sv *sv, struct ipc_req *req)
{
	const ipc_msg *m = ipc_req_msg(req);
	long long now = daemon_now_ms();

	if (m->body_case == MANTA__IPC__MSG__BODY_SHUTDOWN) {
		unsigned t = m->shutdown->drain_timeout_s;
		bool now_ = m->shutdown->now;

		ipc_reply_ok(sv->ipc, req);
		if (now_)
			begin_stop(sv);
		else
			begin_drain(sv, t > 0 ? t : DRAIN_DEFAULT_S);
		return;
	}
	if (m->body_case == MANTA__IPC__MSG__BODY_STATUS_REQ) {
		Manta__Ipc__Msg rep = MANTA__IPC__MSG__INIT;
		Manta__Ipc__StatusReply st = MANTA__IPC__STATUS_REPLY__INIT;
		Manta__Ipc__SupervisorStatus sup = MANTA__IPC__SUPERVISOR_STATUS__INIT;
		Manta__Ipc__DaemonState ds[5], *dp[5];

		for (size_t i = 0; i < sv->nsvcs; i++) {
			const struct svc *s = &sv->svcs[i];

			manta__ipc__daemon_state__init(&ds[i]);
			ds[i].name = (char *)s->name;
			ds[i].pid = s->pid;
			ds[i].state = (char *)sv_names[s->state];
			ds[i].restarts = s->restarts;
			ds[i].uptime_s = s->state == SV_UP ? (uint64_t)(now - s->since_ms) / 1000 : 0;
			dp[i] = &ds[i];
		}
		sup.n_daemons = sv->nsvcs;
		sup.daemons = dp;
		sup.stopping = sv->stopping || sv->draining;
		sup.config_path = (char *)sv->cfg_path;
		sup.seccomp = (char *)confine_mode_name(confine_mode_parse(sv->cfg->seccomp));
		sup.allow_root_daemons = sv->cfg->allow_root_daemons;
		st.supervisor = &sup;
		rep.body_case = MANTA__IPC__MSG__BODY_STATUS;
		rep.status = &st;
		ipc_reply(sv->ipc, req, &rep);
		return;
	}
	ipc_reply_error(sv->ipc, req, 3, "not handled");
}

/* Every daemon is required: a node without mantad-exec or mantad-light
 * would register and then fail each deploy. -1 (logged) when the program
 * is not there to run. */
static int
add_svc(struct sv *sv, const char *bindir, const char *name)
{
	struct svc *s = &sv->svcs[sv->nsvcs];

	memset(s, 0, sizeof(*s));
	s->name = name;
	s->ready_fd = -1;
	if (asprintf(&s->path, "%s/%s", bindir, name) == -1)
		log_fatalx(1, "out of memory");
	sv->nsvcs++;
	if (access(s->path, X_OK) == -1) {
		log_error("%s is required and cannot be run (%s)", name, s->path);
		return -1;
	}
	return 0;
}

/* Each daemon's program, all required: 0, or -1 once the parent was told
 * which one is missing. */
static int
add_daemons(struct sv *sv)
{
	static const char *const daemons[] = { "mantad-res", "mantad-register",
	    "mantad-beat", "mantad-exec", "mantad-light" };
	const char *missing = NULL;
	char *bindir = ctl_bin_dir();

	for (size_t i = 0; i < sizeof(daemons) / sizeof(daemons[0]); i++)
		if (add_svc(sv, bindir, daemons[i]) == -1)
			missing = daemons[i];
	free(bindir);
	if (missing == NULL)
		return 0;
	log_errorx("not starting: every daemon is required");
	tell_parent_failure(sv, "missing program", missing);
	for (size_t i = 0; i < sv->nsvcs; i++)
		free(sv->svcs[i].path);
	return -1;
}

/* Acts on the deadlines now past (a stop grace: kill what outlived it; a
 * readiness timeout: kill; an end of backoff: start again) and gives the
 * next one, LLONG_MAX when none. */
static long long
next_deadline(struct sv *sv, long long now)
{
	long long next = LLONG_MAX;

	if (sv->stopping && now >= sv->stop_deadline) {
		for (size_t i = 0; i < sv->nsvcs; i++)
			if (sv->svcs[i].pid > 0) {
				log_warnx("%s did not stop in time; killing it", sv->svcs[i].name);
				kill(sv->svcs[i].pid, SIGKILL);
			}
		sv->stop_deadline = now + STOP_GRACE_MS;
	}
	if (sv->stopping)
		next = sv->stop_deadline;
	drain_tick(sv, now);
	if (sv->draining && sv->next_drain_poll < next)
		next = sv->next_drain_poll;
	/* Deadlines: readiness timeouts and ends of backoff. */
	for (size_t i = 0; i < sv->nsvcs && !sv->stopping; i++) {
		struct svc *s = &sv->svcs[i];

		if (s->state == SV_STARTING && now >= s->deadline_ms && s->pid > 0) {
			log_warnx("%s not ready after %d ms; killing it", s->name, READY_TIMEOUT_MS);
			kill(s->pid, SIGKILL);
			s->deadline_ms = now + READY_TIMEOUT_MS;
		} else if (s->state == SV_BACKOFF && now >= s->deadline_ms) {
			if (spawn(sv, s) == -1) {
				s->deadline_ms = now + BACKOFF_MAX_MS;
			}
		}
		if ((s->state == SV_STARTING || s->state == SV_BACKOFF) && s->deadline_ms < next)
			next = s->deadline_ms;
	}
	return next;
}

/* The poll set: requests, signals, then the readiness pipes of the daemons
 * in idx (*nready of them). Its size. */
static int
poll_set(struct sv *sv, int sfd, zmq_pollitem_t *items, struct svc **idx, int *nready)
{
	int n = 0;

	*nready = 0;
	items[n++] = (zmq_pollitem_t){ .socket = ipc_server_socket(sv->ipc), .events = ZMQ_POLLIN };
	items[n++] = (zmq_pollitem_t){ .fd = sfd, .events = ZMQ_POLLIN };
	for (size_t i = 0; i < sv->nsvcs; i++)
		if (sv->svcs[i].ready_fd >= 0) {
			idx[(*nready)++] = &sv->svcs[i];
			items[n++] = (zmq_pollitem_t){ .fd = sv->svcs[i].ready_fd, .events = ZMQ_POLLIN };
		}
	return n;
}

/* What each signal read from sfd asks for. */
static void
on_signals(struct sv *sv, int sfd)
{
	int sig;

	while ((sig = daemon_signal_read(sfd)) > 0) {
		/* SIGTERM drains first; SIGINT, or a second
		 * SIGTERM during the drain, stops at once. */
		if (sig == SIGTERM && !sv->draining)
			begin_drain(sv, DRAIN_DEFAULT_S);
		else if (sig == SIGTERM || sig == SIGINT)
			begin_stop(sv);
		else if (sig == SIGHUP)
			reload(sv);
		else if (sig == SIGUSR2 && !sv->stopping) {
			sv->keep_tasks = 1;
			begin_stop(sv);
		}
		else if (sig == SIGCHLD)
			reap(sv);
	}
}

/* A daemon failed before all were up: start-up fails, stopping the rest. */
static int
startup_failed(struct sv *sv)
{
	int failed = 0;

	if (sv->stopping || sv->all_up_told)
		return 0;
	for (size_t i = 0; i < sv->nsvcs; i++)
		failed |= sv->svcs[i].state == SV_FAILED;
	if (!failed)
		return 0;
	log_errorx("start-up failed; stopping");
	begin_stop(sv);
	return 1;
}

/* Until every daemon is down after a stop: 0, or 1 when start-up failed
 * or polling did. */
static int
supervise_loop(struct sv *sv, int sfd)
{
	int rc = 0;

	for (;;) {
		zmq_pollitem_t items[2 + 5];
		struct svc *idx[5];
		/* No periodic wake-up (issue 14): SIGCHLD, readiness and
		 * requests come through the poll set; only a deadline due
		 * (stop grace, drain poll, ready timeout, backoff end) sets a
		 * timeout. */
		long long now = daemon_now_ms(), next;
		long timeout;
		int n, nready;

		if (sv->stopping && all_down(sv))
			break;
		next = next_deadline(sv, now);
		n = poll_set(sv, sfd, items, idx, &nready);
		if (next == LLONG_MAX)
			timeout = -1;
		else
			timeout = next > now ? (long)(next - now) : 0;
		if (zmq_poll(items, n, timeout) == -1 && errno != EINTR) {
			log_warnx("poll: %s", zmq_strerror(errno));
			rc = 1;
			break;
		}
		if (items[1].revents & ZMQ_POLLIN)
			on_signals(sv, sfd);
		for (int i = 0; i < nready; i++)
			if (items[2 + i].revents & (ZMQ_POLLIN | ZMQ_POLLERR))
				on_ready_fd(sv, idx[i]);
		if (items[0].revents & ZMQ_POLLIN) {
			struct ipc_req *req;
			while (ipc_server_recv(sv->ipc, &req) == 1)
				answer(sv, req);
		}
		/* A child may have exited between polls without a SIGCHLD read yet. */
		reap(sv);
		if (startup_failed(sv))
			rc = 1;
	}
	return rc;
}

int
supervise_run(struct manta_cfg *cfg, const char *cfg_path, int lock_fd, int ready_fd)
{
	/* Only mantactl stop and mantad-exec's stop_node (issue 13). */
	static const struct ipc_rule allowed[] = {
		{ MANTA__IPC__MSG__BODY_SHUTDOWN, IPC_FROM_OWNER, NULL },
	};
	struct sv sv;
	int sfd, rc;

	(void)lock_fd;
	memset(&sv, 0, sizeof(sv));
	sv.cfg = cfg;
	sv.cfg_path = cfg_path;
	sv.ready_fd = ready_fd;
	if (add_daemons(&sv) == -1)
		return 1;

	/* The daemons and the runtime mantad-exec starts can never hold more
	 * than this (the bounding set is inherited). Before zmq's thread. */
	if (confine_runtime() == -1)
		log_fatalx(1, "unable to drop the capabilities no daemon needs");
	if ((sfd = daemon_signalfd()) == -1 || watch_sigusr2(sfd) == -1)
		log_fatal(1, "unable to set up signals");
	(void)notify_init();
	sv.ipc = ipc_server_open(cfg->run_dir, IPC_SUPERVISE, allowed, 1);
	if (sv.ipc == NULL) {
		tell_parent_failure(&sv, "unable to bind the socket", IPC_SUPERVISE);
		close(sfd);
		return 1;
	}
	log_info("supervising node %s (config %s)", cfg->instance, cfg_path);
	start_next(&sv);
	rc = supervise_loop(&sv, sfd);
	log_info("stopped");
	if (sv.keep_tasks && rc == 0)
		rc = EXIT_RESTART;
	for (size_t i = 0; i < sv.nsvcs; i++) {
		close_ready(&sv.svcs[i]);
		free(sv.svcs[i].path);
	}
	if (sv.ready_fd >= 0)
		close(sv.ready_fd);
	ipc_server_close(sv.ipc);
	ipc_context_term();
	close(sfd);
	return rc;
}
