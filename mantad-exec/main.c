/* mantad-exec: runs the node's tasks as confined OCI containers. See
 * mantad-exec(8).
 *
 * One zmq_poll loop over the IPC ROUTER socket ("exec"), the signalfd,
 * the helper threads' eventfd, the launcher's socket, and one fd per
 * watched shim (its status pipe, then its pidfd), with a deadline for the
 * timers (log streaming, capacity refresh). Only this loop changes state:
 * startup, then poll_round until a stop, then teardown.
 *
 * Two processes (issue 13): the OCI runtime needs root to make namespaces
 * and cgroups and to mount the rootfs, and would inherit any seccomp
 * filter. So before any thread a launcher (launcher.c, launch.h) is
 * forked with the runtime's capabilities and no filter: it takes fixed
 * frames only, checked field by field, and starts every shim, runtime
 * call, pull and network namespace. This process, which parses what
 * others send, then drops every capability and, once set up, loads a
 * seccomp allowlist (sandbox.c). The containers get nothing: no
 * capabilities, no new privileges, a seccomp allowlist. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "audit.h"
#include "blake3.h"
#include "confine.h"
#include "daemon.h"
#include "db.h"
#include "log.h"

#include "exec.h"

#define IPC_BATCH 64
#define STOP_WAIT_MS (STOP_GRACE_MS + 2500)	/* the supervisor waits 10 s */
#define FLUSH_MS 1000				/* outbox, at stop */
#define IDENTITY_WAIT_MS 10000
#define MAX_FDS 1024

/* Who may ask what (issue 13): the manager's commands come through
 * mantad-beat; lists, logs and drains from mantactl and the supervisor;
 * mantad-light may only ask who a caller is. */
static const struct ipc_rule allowed[] = {
	{ MANTA__IPC__MSG__BODY_STATUS_REQ, IPC_FROM_OWNER, NULL },
	{ MANTA__IPC__MSG__BODY_COMMAND, IPC_FROM_OWNER | IPC_FROM_DAEMON, "mantad-beat" },
	{ MANTA__IPC__MSG__BODY_TASKS_REQ, IPC_FROM_OWNER, NULL },
	{ MANTA__IPC__MSG__BODY_LOGS_REQ, IPC_FROM_OWNER, NULL },
	{ MANTA__IPC__MSG__BODY_DRAIN, IPC_FROM_OWNER, NULL },
	{ MANTA__IPC__MSG__BODY_TASK_LOOKUP, IPC_FROM_OWNER | IPC_FROM_LIGHT, NULL },
};

static void
reply_status(struct exec *x, struct ipc_req *req)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__StatusReply sr = MANTA__IPC__STATUS_REPLY__INIT;
	Manta__Ipc__ExecStatus es = MANTA__IPC__EXEC_STATUS__INIT;
	Manta__Ipc__Histogram launch;
	struct hist_proto hp;
	unsigned c[RS_COUNT];
	char why[512];
	uint32_t error_id;
	const char *refusing = drain_refusing(x, &error_id, why, sizeof(why));

	if (store_counts(x->db, c) == -1) {
		(void)ipc_reply_error(x->srv, req, 1, "database error");
		return;
	}
	es.queued = c[RS_QUEUED];
	es.pending = c[RS_PENDING];
	es.running = c[RS_RUNNING];
	es.completed = c[RS_COMPLETED];
	es.failed = c[RS_FAILED];
	es.stopped = c[RS_STOPPED];
	es.draining = x->draining;
	es.refusing = (char *)(refusing != NULL ? refusing : "");
	es.outbox = x->unacked;
	hist_to_proto(&x->launch, &hp, &launch);
	es.launch_latency = &launch;
	es.waiting = (char *)(queue_waiting(x) ? queue_waiting(x) : "");
	sr.exec = &es;
	m.body_case = MANTA__IPC__MSG__BODY_STATUS;
	m.status = &sr;
	(void)ipc_reply(x->srv, req, &m);
}

static void
reply_tasks(struct exec *x, struct ipc_req *req)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__TaskList tl;

	if (store_task_list(x->db, &tl) == -1) {
		(void)ipc_reply_error(x->srv, req, 1, "database error");
		return;
	}
	m.body_case = MANTA__IPC__MSG__BODY_TASKS;
	m.tasks = &tl;
	(void)ipc_reply(x->srv, req, &m);
	store_task_list_free(&tl);
}

static void
reply_logs(struct exec *x, struct ipc_req *req, const Manta__Ipc__LogsRequest *l)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__LogsChunk lc;

	if (logs_read(x, l, &lc) == -1) {
		(void)ipc_reply_error(x->srv, req, 1, "no task %s here", l->task_id);
		return;
	}
	m.body_case = MANTA__IPC__MSG__BODY_LOGS;
	m.logs = &lc;
	(void)ipc_reply(x->srv, req, &m);
	free(lc.data.data);
}

static void
reply_lookup(struct exec *x, struct ipc_req *req, const Manta__Ipc__TaskLookup *l)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__TaskIdentity ti = MANTA__IPC__TASK_IDENTITY__INIT;
	Common__System__PairId swarm = COMMON__SYSTEM__PAIR_ID__INIT;
	Common__System__PairId task = COMMON__SYSTEM__PAIR_ID__INIT;
	struct manta_id s = id_from_pair(l->swarm_id), t = id_from_pair(l->task_id);
	bool by_token = l->token != NULL && l->token[0] != '\0';
	struct run_row row;
	int rc;

	if (by_token)
		rc = store_run_find(x->db, NULL, NULL, l->token, &row);
	else
		rc = store_run_find(x->db, &s, &t, NULL, &row);
	if (rc == -1) {
		(void)ipc_reply_error(x->srv, req, 1, "database error");
		return;
	}
	if (rc == 1) {
		ti.found = true;
		id_to_pair(row.swarm, &swarm);
		id_to_pair(row.task, &task);
		ti.swarm_id = &swarm;
		ti.task_id = &task;
		ti.iteration = row.iteration;
		ti.circular = row.circular;
		ti.running = row.running;
		/* A token names one run; ids sent with it must be its own. */
		ti.token_matched = by_token && (l->swarm_id == NULL ||
		    l->task_id == NULL || (id_equal(s, row.swarm) &&
		    id_equal(t, row.task)));
	}
	m.body_case = MANTA__IPC__MSG__BODY_TASK_IDENTITY;
	m.task_identity = &ti;
	(void)ipc_reply(x->srv, req, &m);
}

static void
on_status(void *arg, struct ipc_req *req, const ipc_msg *m)
{
	(void)m;
	reply_status(arg, req);
}

static void
on_command(void *arg, struct ipc_req *req, const ipc_msg *m)
{
	struct exec *x = arg;
	char err[256];

	if (command_handle(x, m->command, err, sizeof(err)) == -1)
		(void)ipc_reply_error(x->srv, req, 1, "%s", err);
	else
		(void)ipc_reply_ok(x->srv, req);
}

static void
on_tasks(void *arg, struct ipc_req *req, const ipc_msg *m)
{
	(void)m;
	reply_tasks(arg, req);
}

static void
on_logs(void *arg, struct ipc_req *req, const ipc_msg *m)
{
	reply_logs(arg, req, m->logs_req);
}

static void
on_drain(void *arg, struct ipc_req *req, const ipc_msg *m)
{
	drain_set(arg, !m->drain->undrain, m->drain->transient);
	reply_status(arg, req);
}

static void
on_lookup(void *arg, struct ipc_req *req, const ipc_msg *m)
{
	reply_lookup(arg, req, m->task_lookup);
}

/* What each type that allowed[] lets through does. */
static const struct ipc_handler handlers[] = {
	{ MANTA__IPC__MSG__BODY_STATUS_REQ, on_status },
	{ MANTA__IPC__MSG__BODY_COMMAND, on_command },
	{ MANTA__IPC__MSG__BODY_TASKS_REQ, on_tasks },
	{ MANTA__IPC__MSG__BODY_LOGS_REQ, on_logs },
	{ MANTA__IPC__MSG__BODY_DRAIN, on_drain },
	{ MANTA__IPC__MSG__BODY_TASK_LOOKUP, on_lookup },
};

static void
handle_ipc(struct exec *x)
{
	(void)ipc_server_dispatch(x->srv, IPC_BATCH, handlers,
	    sizeof(handlers) / sizeof(handlers[0]), x);
}

/* What the keys a reference node ignores do here (cfg_notes.c). */
static void
log_note(void *arg, const char *text)
{
	(void)arg;
	log_info("config: %s", text);
}

static void
begin_stop(struct exec *x)
{
	struct run *r, *next;

	if (x->stopping)
		return;
	log_info("stopping: every task is stopped first");
	x->stopping = true;
	for (r = TAILQ_FIRST(&x->runs); r != NULL; r = next) {
		next = TAILQ_NEXT(r, all);
		run_stop(x, r, "node stopping");
	}
}

static void
apply_event(void *arg, void *item)
{
	struct exec *x = arg;
	struct event *ev = item;

	switch (ev->type) {
	case EV_ACKED:
	case EV_DROPPED:
		announce_acked(x, ev->seq);
		break;
	case EV_FRAME:
	case EV_FRAME_FAILED:
		logs_frame_done(x, ev);
		break;
	case EV_CAPACITY:
		queue_set_capacity(x, ev->cpus, ev->mem);
		queue_admit(x);
		break;
	case EV_PULLED:
		pull_done(x, ev);
		break;
	case EV_SHUTDOWN:
		if (ev->code != 0) {
			log_info("stop_node: no supervisor: stopping mantad-exec"
			    " alone");
			begin_stop(x);
		}
		break;
	}
}

/* SIGHUP: what can change while tasks run; the rest needs a restart. */
static void
reload(struct exec *x)
{
	struct manta_cfg *n, *c = x->cfg;

	if ((n = daemon_reload(x->opts)) == NULL)
		return;
	c->max_concurrent = n->max_concurrent;
	c->task_timeout = n->task_timeout;
	c->retry_attempts = n->retry_attempts;
	c->cleanup_on_failure = n->cleanup_on_failure;
	c->stream_logs = n->stream_logs;
	c->live_logs_to_manager = n->live_logs_to_manager;
	c->reserve_cpu = n->reserve_cpu;
	c->reserve_cpu_percent = n->reserve_cpu_percent;
	c->reserve_memory_mb = n->reserve_memory_mb;
	c->max_disk_usage_percent = n->max_disk_usage_percent;
	cfg_free(n);
	log_info("SIGHUP: configuration reloaded: at most %d tasks at once,"
	    " task timeout %d s (paths, runtime, limits and network need a"
	    " restart)", c->max_concurrent, c->task_timeout);
	/* New reserves apply at the next capacity figures: ask now. */
	x->next_capacity = 0;
	queue_admit(x);
}

static bool
handle_signals(struct exec *x, int sfd)
{
	int sig;
	bool stop = false;

	while ((sig = daemon_signal_read(sfd)) > 0) {
		switch (sig) {
		case SIGTERM:
		case SIGINT:
			stop = true;
			break;
		case SIGCHLD:
			runtime_reap(x);
			break;
		case SIGHUP:
			reload(x);
			break;
		default:
			break;
		}
	}
	return stop;
}

static void
timers(struct exec *x, long long now)
{
	struct run *r, *next;
	struct job *j;

	if (now >= x->next_stream) {
		logs_stream_tick(x);
		x->next_stream = now + STREAM_MS;
	}
	if (now >= x->next_capacity) {
		if ((j = job_new(JOB_CAPACITY)) != NULL)
			(void)jobs_post(x->jobs, j);
		x->next_capacity = now + CAPACITY_MS;
	}
	if (now >= x->next_adopt_poll) {
		for (r = TAILQ_FIRST(&x->runs); r != NULL; r = next) {
			next = TAILQ_NEXT(r, all);
			if (r->adopted && r->shim > 0)
				runtime_check_adopted(x, r, false);
		}
		x->next_adopt_poll = now + ADOPT_POLL_MS;
	}
	netep_tick(x, now);
}

/* A run whose output logs_stream_tick would send (live_logs_to_manager). */
static bool
streaming(const struct exec *x)
{
	const struct run *r;

	if (!x->cfg->live_logs_to_manager)
		return false;
	TAILQ_FOREACH(r, &x->runs, all)
		if (r->state == RS_RUNNING)
			return true;
	return false;
}

static bool
adopted_left(const struct exec *x)
{
	const struct run *r;

	TAILQ_FOREACH(r, &x->runs, all)
		if (r->adopted && r->shim > 0)
			return true;
	return false;
}

static bool
shims_left(const struct exec *x)
{
	const struct run *r;

	TAILQ_FOREACH(r, &x->runs, all)
		if (r->shim > 0)
			return true;
	return false;
}

static int
read_identity(struct exec *x)
{
	char buf[64], *path = path_join(x->cfg->state_dir, "identity");
	long long end = daemon_now_ms() + IDENTITY_WAIT_MS;
	int rc = -1;

	/* mantad-register writes it before it is ready, and the supervisor
	 * starts it first; standalone, give it a moment. */
	while (path != NULL) {
		if (read_small(path, buf, sizeof(buf)) > 0) {
			buf[strcspn(buf, "\r\n")] = '\0';
			if (id_parse_hex(buf, &x->node_id) == 0) {
				rc = 0;
				break;
			}
		}
		if (daemon_now_ms() >= end)
			break;
		usleep(100000);
	}
	free(path);
	if (rc == 0)
		id_to_hex(x->node_id, x->node_hex);
	return rc;
}

static void
setup_dirs(struct exec *x)
{
	const struct manta_cfg *c = x->cfg;
	uint8_t h[4];
	char *real;

	struct confine_user u, light;

	/* The run dir is shared with security.daemon_user's group: the
	 * unprivileged daemons connect to exec.sock. */
	if (confine_accounts(c, &u, &light) == -1)
		log_fatalx(1, "unable to find the node's accounts");
	if (ipc_prepare_run_dir(c->run_dir, confine_user_group(&u)) == -1)
		log_fatalx(1, "unable to prepare %s", c->run_dir);
	if (confine_state_dir(c) == -1)
		log_fatalx(1, "unable to prepare %s", c->state_dir);
	if ((x->tasks_dir = path_join(c->state_dir, "tasks")) == NULL ||
	    (x->logs_dir = path_join(c->state_dir, "logs")) == NULL ||
	    (x->runtime_root = path_join(c->state_dir, "runtime-root")) == NULL)
		log_fatalx(1, "out of memory");
	if (daemon_mkdirs(x->tasks_dir, 0700) == -1 ||
	    daemon_mkdirs(x->logs_dir, 0700) == -1 ||
	    daemon_mkdirs(x->runtime_root, 0700) == -1)
		log_fatal(1, "unable to create the directories in %s", c->state_dir);
	/* Container ids and cgroups are machine-wide: the instance's hash in
	 * them keeps two nodes on one machine apart. */
	real = realpath(c->state_dir, NULL);
	blake3_hash(real ? real : c->state_dir, strlen(real ? real : c->state_dir),
	    h, sizeof(h));
	free(real);
	snprintf(x->inst, sizeof(x->inst), "%02x%02x%02x%02x", h[0], h[1], h[2],
	    h[3]);
}

static void
free_all(struct exec *x)
{
	struct run *r;

	while ((r = TAILQ_FIRST(&x->runs)) != NULL) {
		TAILQ_REMOVE(&x->runs, r, all);
		run_free(r);
	}
	command_free(x);
	json_decref(x->seccomp);
	free(x->runtime);
	free(x->runtime_name);
	free(x->runtime_root);
	free(x->tasks_dir);
	free(x->logs_dir);
}

/* Everything before the loop, in order: the bounding set before any
 * thread, the directories and the lock, the runtime, the databases, the
 * helper threads, the runs of the last life, and the endpoint. */
static void
startup(struct exec *x, struct daemon_opts *opts)
{
	char err[512];
	int v = 0;

	x->opts = opts;
	x->cfg = daemon_config(opts);
	if (opts->verbose)
		log_set_level(LOG_LVL_DEBUG);

	/* Before any thread: what the runtime does not need leaves the
	 * bounding set, for us, the shims, runc or crun and their hooks.
	 * No seccomp filter here: every container would inherit it. */
	if (confine_runtime() == -1)
		log_fatalx(1, "unable to drop the capabilities the runtime does not need");
	/* The allowlist is part of the build: a bad one is permanent. */
	if ((x->seccomp = seccomp_profile(err, sizeof(err))) == NULL)
		log_fatalx(100, "%s", err);
	if ((x->sfd = daemon_signalfd()) == -1)
		log_fatal(1, "unable to set up signals");
	setup_dirs(x);
	daemon_lock(x->cfg, PROG, IPC_EXEC);
	(void)runtime_resolve(x);
	runtime_probe_cgroups(x);
	userns_init(x);
	/* Still one thread: the launcher keeps the runtime's privileges,
	 * and starts every shim, runtime call, pull and network namespace
	 * from now on. This process, which parses what the manager and the
	 * other daemons send, keeps no capability (it stays uid 0: its
	 * state is root's, and so are the shims it signals). */
	if (launch_start(x) == -1)
		log_fatalx(1, "unable to start the launcher");
	if (confine_caps(NULL, 0) == -1)
		log_fatalx(1, "unable to drop every capability");
	if ((x->audit = audit_open(x->cfg->state_dir)) == NULL)
		log_fatalx(1, "unable to open %s/%s", x->cfg->state_dir, AUDIT_FILE);
	if ((x->db = store_open(x->cfg->state_dir)) == NULL)
		log_fatalx(1, "unable to open %s/exec.db", x->cfg->state_dir);
	if (store_meta_get_int(x->db, "draining", &v) == 1)
		x->draining = v != 0;
	if (read_identity(x) == -1)
		log_fatalx(1, "no node identity in %s/identity (mantad-register"
		    " writes it)", x->cfg->state_dir);
	if ((x->q = evq_new(&event_ops)) == NULL)
		log_fatal(1, "unable to create the event queue");
	x->to_beat = sender_start(x->cfg->run_dir, IPC_BEAT, x->q);
	x->to_register = sender_start(x->cfg->run_dir, IPC_REGISTER, x->q);
	x->jobs = jobs_start(x->cfg->run_dir, x->q);
	if ((x->pulls = pulls_start(x)) == NULL)
		log_fatalx(1, "unable to start the pull thread");
	if (x->to_beat == NULL || x->to_register == NULL || x->jobs == NULL)
		log_fatalx(1, "unable to start the helper threads");
	queue_init_capacity(x);

	if (store_runs_load(x) == -1)
		log_fatalx(1, "unable to load the tasks from exec.db");
	(void)announce_replay(x);
	recover_runs(x);
	netep_sweep(x);
	store_prune(x->db);
	logstore_init(x);
	x->srv = ipc_server_open(x->cfg->run_dir, IPC_EXEC, allowed,
	    sizeof(allowed) / sizeof(allowed[0]));
	if (x->srv == NULL)
		log_fatalx(1, "unable to bind the %s endpoint in %s", IPC_EXEC,
		    x->cfg->run_dir);
	/* Every thread exists: the filter covers them all (TSYNC). */
	if (sandbox_enter() == -1)
		log_fatalx(1, "unable to load the seccomp filter");
}

/* The poll items of one round: the endpoint, the signalfd, the event
 * queue, then one fd per watched shim (owner[i] is its run). */
static int
poll_items(struct exec *x, zmq_pollitem_t *items, struct run **owner)
{
	struct run *r;
	int n = 0;

	items[n++] = (zmq_pollitem_t){ ipc_server_socket(x->srv), 0, ZMQ_POLLIN, 0 };
	items[n++] = (zmq_pollitem_t){ NULL, x->sfd, ZMQ_POLLIN, 0 };
	items[n++] = (zmq_pollitem_t){ NULL, evq_fd(x->q), ZMQ_POLLIN, 0 };
	/* mantad-light's end of the task endpoints (-1: none, ignored). */
	items[n++] = (zmq_pollitem_t){ NULL, netep_fd(x), netep_fd(x) == -1 ?
	    0 : ZMQ_POLLIN, 0 };
	items[n++] = (zmq_pollitem_t){ NULL, launch_fd(x), ZMQ_POLLIN, 0 };
	TAILQ_FOREACH(r, &x->runs, all) {
		int fd = r->status_fd >= 0 ? r->status_fd : r->pidfd;

		if (fd < 0 || n == MAX_FDS)
			continue;
		owner[n] = r;
		items[n++] = (zmq_pollitem_t){ NULL, fd, ZMQ_POLLIN, 0 };
	}
	return n;
}

/* One round of the loop: poll until the next timer, then serve what is
 * ready. -1 when zmq_poll fails for good (logged). */
static int
poll_round(struct exec *x, long long now)
{
	static zmq_pollitem_t items[MAX_FDS];
	static struct run *owner[MAX_FDS];
	struct run *r;
	long long wake;
	int n, timeout;

	n = poll_items(x, items, owner);
	/* Only timers with work due set the timeout (issue 14): the log
	 * stream's tick while a run can stream, capacity, the adopted
	 * shims' poll. */
	wake = x->next_capacity;
	if (streaming(x) && x->next_stream < wake)
		wake = x->next_stream;
	if (adopted_left(x) && x->next_adopt_poll < wake)
		wake = x->next_adopt_poll;
	if (netep_pending(x) && x->next_netep < wake)
		wake = x->next_netep;
	timeout = wake - now > INT_MAX ? INT_MAX : (int)(wake - now);
	if (x->stopping && timeout > 100)
		timeout = 100;
	if (timeout < 0)
		timeout = 0;
	if (zmq_poll(items, n, timeout) == -1) {
		if (errno == EINTR)
			return 0;
		log_warn("zmq_poll");
		return -1;
	}
	if ((items[1].revents & ZMQ_POLLIN) && handle_signals(x, x->sfd))
		begin_stop(x);
	if (items[2].revents & ZMQ_POLLIN)
		(void)evq_run(x->q, apply_event, x);
	if (items[3].revents && items[3].fd == netep_fd(x))
		netep_input(x);
	if (items[4].revents)
		launch_input(x);
	for (int i = 5; i < n; i++) {
		if (!(items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
			continue;
		/* The run may have ended in this round: look it up. */
		TAILQ_FOREACH(r, &x->runs, all)
			if (r == owner[i])
				break;
		if (r == NULL)
			continue;
		if (items[i].fd == r->status_fd)
			runtime_status_input(x, r);
		else if (items[i].fd == r->pidfd)
			runtime_pidfd_input(x, r);
	}
	if (items[0].revents & ZMQ_POLLIN)
		handle_ipc(x);
	return 0;
}

/* After the loop: the helper threads finish, then what they reported is
 * applied before everything is closed. */
static void
teardown(struct exec *x)
{
	if (shims_left(x))
		log_warnx("leaving with containers still stopping: their shims"
		    " finish the job, the next start reports them");
	log_info("stopping");
	sender_stop(x->to_beat);
	sender_stop(x->to_register);
	netep_close(x);
	jobs_stop(x->jobs);
	pulls_stop(x->pulls);
	(void)evq_run(x->q, apply_event, x);
	ipc_server_close(x->srv);
	ipc_context_term();
	evq_free(x->q);
	free_all(x);
	db_close(x->db);
	close(x->sfd);
	launch_close(x);
	audit_close(x->audit);
	cfg_free(x->cfg);
}

int
main(int argc, char **argv)
{
	struct daemon_opts opts;
	struct exec x;
	int rc = 0;
	long long stop_deadline = 0, flush_deadline = 0;

	if (argc >= 2 && strcmp(argv[1], "--shim") == 0)
		shim_main(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "--pull") == 0)
		pull_main(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "--launcher") == 0)
		launcher_main(argc - 2, argv + 2);

	memset(&x, 0, sizeof(x));
	x.light_ep = -1;
	TAILQ_INIT(&x.runs);
	TAILQ_INIT(&x.queue);
	log_init(PROG, LOG_LVL_INFO);
	daemon_args(argc, argv, PROG, &opts);
	startup(&x, &opts);
	log_info("ready: node %s, runtime %s, at most %d tasks at once%s",
	    x.node_hex, x.runtime ? x.runtime : "(none)", x.cfg->max_concurrent,
	    x.draining ? ", draining" : "");
	(void)cfg_reference_notes(x.cfg, log_note, NULL);
	daemon_ready(&opts.notify_fd);
	queue_admit(&x);

	for (;;) {
		long long now = daemon_now_ms();

		if (x.stopping) {
			if (stop_deadline == 0)
				stop_deadline = now + STOP_WAIT_MS;
			if (!shims_left(&x) || now >= stop_deadline) {
				if (flush_deadline == 0)
					flush_deadline = now + FLUSH_MS;
				if (x.unacked == 0 || now >= flush_deadline)
					break;
			}
		}
		timers(&x, now);
		if (poll_round(&x, now) == -1) {
			rc = 1;
			break;
		}
	}
	teardown(&x);
	return rc;
}
