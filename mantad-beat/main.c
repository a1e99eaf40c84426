/* mantad-beat: the node's only MQTT client. See mantad-beat(8).
 *
 * One zmq_poll loop over the IPC ROUTER socket ("beat"), the signalfd and
 * the eventfd of events.c, with a deadline for the timers of session.c.
 * paho's threads and the two workers only queue events; this loop owns all
 * state. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "audit.h"
#include "confine.h"
#include "daemon.h"
#include "log.h"

#include "beat.h"
#include "dispatch.h"

#define IPC_BATCH 64		/* requests taken per wake-up */
#define MAX_KEY 256
#define CMD_QUEUE 256		/* commands waiting for exec/register */
#define BG_QUEUE 8
#define STOP_WAIT_MS 2000	/* for the NodeStatus PUBACK at stop */

/* Who may ask what (issue 13): publications come from mantad-exec's
 * outbox, the registration from mantad-register. */
static const struct ipc_rule allowed[] = {
	{ MANTA__IPC__MSG__BODY_STATUS_REQ, IPC_FROM_OWNER, NULL },
	{ MANTA__IPC__MSG__BODY_PUBLISH, IPC_FROM_OWNER, NULL },
	{ MANTA__IPC__MSG__BODY_REGISTRATION, IPC_FROM_OWNER | IPC_FROM_DAEMON, NULL },
};

static void
reply_status(struct beat *b, struct ipc_req *req)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__StatusReply sr;
	Manta__Ipc__BeatStatus bs;
	Manta__Ipc__Histogram lat;
	struct hist_proto hp;

	manta__ipc__status_reply__init(&sr);
	manta__ipc__beat_status__init(&bs);
	bs.broker = b->broker;
	/* Connected, and every topic's SUBACK in: commands can reach us. */
	bs.connected = b->state == CONN_CONNECTED && b->nsubscribed >= b->ntopics;
	bs.outbox = outbox_count(b->ob);
	bs.heartbeats = b->heartbeats;
	bs.outbox_peak = b->outbox_peak;
	hist_to_proto(&b->beat_latency, &hp, &lat);
	bs.heartbeat_latency = &lat;
	bs.commands_waiting = b->cmd_handed + b->nbacklog;
	bs.commands_refused = b->refused_busy;
	sr.beat = &bs;
	m.body_case = MANTA__IPC__MSG__BODY_STATUS;
	m.status = &sr;
	(void)ipc_reply(b->srv, req, &m);
}

static void
handle_publish(struct beat *b, struct ipc_req *req, const Manta__Ipc__Publish *p)
{
	const char *key = p->key != NULL ? p->key : "";
	enum ob_add rc;

	if (p->topic == NULL || !dispatch_topic_publishable(p->topic)) {
		(void)ipc_reply_error(b->srv, req, 1, "bad topic");
		return;
	}
	if (p->qos > 1) {
		(void)ipc_reply_error(b->srv, req, 1, "bad QoS %u", p->qos);
		return;
	}
	if (strlen(key) > MAX_KEY) {
		(void)ipc_reply_error(b->srv, req, 1, "key too long");
		return;
	}
	/* Stored before it is acknowledged: a crash after the reply loses
	 * nothing. */
	rc = outbox_add(b->ob, p->topic, p->payload.data, p->payload.len,
	    (int)p->qos, key);
	switch (rc) {
	case OB_STORED:
		log_debug("stored a publication on %s (%zu bytes, key %s)",
		    p->topic, p->payload.len, key);
		if (outbox_count(b->ob) > b->outbox_peak)
			b->outbox_peak = outbox_count(b->ob);
		(void)ipc_reply_ok(b->srv, req);
		session_pump(b);
		break;
	case OB_DUPLICATE:
		log_debug("duplicate publication on %s (key %s): dropped",
		    p->topic, key);
		(void)ipc_reply_ok(b->srv, req);
		break;
	case OB_FULL:
		log_warnx("outbox full (%d rows): refusing a publication on %s",
		    OUTBOX_MAX_ROWS, p->topic);
		/* The sender keeps it and tries again: never dropped. */
		(void)ipc_reply_error(b->srv, req, IPC_CODE_BUSY,
		    "outbox full (%d rows)", OUTBOX_MAX_ROWS);
		break;
	case OB_ERROR:
		/* beat.db refuses writes (disk full, read-only file system):
		 * rather than lose it, publish it now, unstored, if the
		 * broker is there; else the sender keeps it and retries. */
		if (b->state == CONN_CONNECTED && mq_publish(b->mq, p->topic,
		    p->payload.data, p->payload.len, (int)p->qos, false, 0) ==
		    MQ_PUB_SENT) {
			b->unstored++;
			log_warnx("beat.db refuses writes: published on %s"
			    " without storing it (key %s)", p->topic, key);
			(void)ipc_reply_ok(b->srv, req);
			break;
		}
		(void)ipc_reply_error(b->srv, req, IPC_CODE_BUSY, "unable to store");
		break;
	}
}

static void
on_status(void *arg, struct ipc_req *req, const ipc_msg *m)
{
	(void)m;
	reply_status(arg, req);
}

static void
on_publish(void *arg, struct ipc_req *req, const ipc_msg *m)
{
	handle_publish(arg, req, m->publish);
}

static void
on_registration(void *arg, struct ipc_req *req, const ipc_msg *m)
{
	struct beat *b = arg;
	char err[128];

	if (session_registration(b, m->registration, true, err,
	    sizeof(err)) == -1) {
		log_warnx("refusing a registration: %s", err);
		(void)ipc_reply_error(b->srv, req, 1, "%s", err);
	} else
		(void)ipc_reply_ok(b->srv, req);
}

/* What each type that allowed[] lets through does. */
static const struct ipc_handler handlers[] = {
	{ MANTA__IPC__MSG__BODY_STATUS_REQ, on_status },
	{ MANTA__IPC__MSG__BODY_PUBLISH, on_publish },
	{ MANTA__IPC__MSG__BODY_REGISTRATION, on_registration },
};

static void
handle_ipc(struct beat *b)
{
	(void)ipc_server_dispatch(b->srv, IPC_BATCH, handlers,
	    sizeof(handlers) / sizeof(handlers[0]), b);
}

static void
apply_event(void *arg, void *ev)
{
	session_event(arg, ev);
}

static void
handle_events(struct beat *b)
{
	unsigned dropped = evq_run(b->q, apply_event, b);

	if (dropped > 0)
		session_dropped(b, dropped);
}

/* SIGHUP: the log level and the mqtt timers apply at once; the rest
 * (paths, TLS, broker, which comes from the Registration) at a restart. */
static void
reload(struct beat *b)
{
	struct manta_cfg *n;
	long long now = daemon_now_ms();

	if ((n = daemon_reload(b->opts)) == NULL)
		return;
	b->cfg->ping_interval = n->ping_interval;
	b->cfg->reconnect_attempts = n->reconnect_attempts;
	b->cfg->reconnect_delay = n->reconnect_delay;
	cfg_free(n);
	if (b->next_beat > now + (long long)b->cfg->ping_interval * 1000)
		b->next_beat = now + (long long)b->cfg->ping_interval * 1000;
	log_info("SIGHUP: configuration reloaded: heartbeat every %d s",
	    b->cfg->ping_interval);
}

static bool
handle_signals(struct beat *b, int sfd)
{
	int sig;
	bool stop = false;

	while ((sig = daemon_signal_read(sfd)) > 0) {
		switch (sig) {
		case SIGTERM:
		case SIGINT:
			stop = true;
			break;
		case SIGHUP:
			reload(b);
			break;
		default:
			break;
		}
	}
	return stop;
}

/* From root to a confined daemon, its files open, its endpoint bound, its
 * workers started: the signalfd, or exits on any failure. */
static int
setup(struct beat *b, struct confine_user *user)
{
	struct confine_user light = CONFINE_USER_ZERO;
	int sfd;

	if (confine_accounts(b->cfg, user, &light) == -1)
		log_fatalx(1, "unable to find the node's accounts");
	if (confine_root_check(b->cfg, user, "security.daemon_user") == -1)
		exit(100);
	if ((sfd = daemon_signalfd()) == -1)
		log_fatal(1, "unable to set up signals");
	if (ipc_prepare_run_dir(b->cfg->run_dir, confine_user_group(user)) == -1)
		log_fatalx(1, "unable to prepare %s", b->cfg->run_dir);
	if (confine_state_dir(b->cfg) == -1)
		log_fatalx(1, "unable to prepare %s", b->cfg->state_dir);
	daemon_lock(b->cfg, PROG, IPC_BEAT);
	/* Nothing below needs a capability; drop them before zmq, paho and
	 * the workers start their threads (capabilities are per thread).
	 * The files are ours (uid 0) and opened before the uid switch. */
	if (confine_drop(user) == -1)
		log_fatalx(1, "unable to drop capabilities");
	if ((b->ob = outbox_open(b->cfg->state_dir)) == NULL)
		log_fatalx(1, "unable to open %s/beat.db", b->cfg->state_dir);
	if ((b->in = inbox_open(outbox_db(b->ob))) == NULL)
		log_fatalx(1, "unable to open the inbox in %s/beat.db", b->cfg->state_dir);
	if ((b->audit = audit_open(b->cfg->state_dir)) == NULL)
		log_fatalx(1, "unable to open %s/%s", b->cfg->state_dir, AUDIT_FILE);
	if ((b->q = evq_new(&event_ops)) == NULL)
		log_fatal(1, "unable to create the event queue");
	b->srv = ipc_server_open(b->cfg->run_dir, IPC_BEAT, allowed,
	    sizeof(allowed) / sizeof(allowed[0]));
	if (b->srv == NULL)
		log_fatalx(1, "unable to bind the %s endpoint in %s", IPC_BEAT,
		    b->cfg->run_dir);
	b->cmdw = worker_start("command", b->cfg->run_dir, b->q, CMD_QUEUE);
	b->bgw = worker_start("background", b->cfg->run_dir, b->q, BG_QUEUE);
	if (b->cmdw == NULL || b->bgw == NULL)
		log_fatalx(1, "unable to start the workers");
	if (user->set && session_hold_tls(b) == -1)
		log_fatalx(1, "unable to read the TLS files in %s", b->cfg->cert_folder);
	/* For every thread, those of paho to come included (they inherit
	 * both): the uid switch, then the filter. */
	if (confine_user_enter(user) == -1)
		log_fatalx(1, "unable to switch to user %s", user->name);
	if (sandbox_enter() == -1)
		log_fatalx(1, "unable to load the seccomp filter");
	return sfd;
}

/* Until a stop signal (0) or a broken poll (1). */
static int
run(struct beat *b, int sfd)
{
	for (;;) {
		zmq_pollitem_t items[4] = {
			{ ipc_server_socket(b->srv), 0, ZMQ_POLLIN, 0 },
			{ NULL, sfd, ZMQ_POLLIN, 0 },
			{ NULL, evq_fd(b->q), ZMQ_POLLIN, 0 },
			{ NULL, -1, ZMQ_POLLIN, 0 },
		};
		long long now = daemon_now_ms();

		session_timers(b, now);
		/* The heartbeat's socket while an answer is due (heartbeat.c). */
		items[3].fd = heartbeat_fd(b);
		if (zmq_poll(items, items[3].fd != -1 ? 4 : 3,
		    session_timeout(b, now, 60000)) == -1) {
			if (errno == EINTR)
				continue;
			log_warn("zmq_poll");
			return 1;
		}
		if ((items[1].revents & ZMQ_POLLIN) && handle_signals(b, sfd))
			return 0;
		if (items[2].revents & ZMQ_POLLIN)
			handle_events(b);
		if (items[0].revents & ZMQ_POLLIN)
			handle_ipc(b);
		if (items[3].revents & (ZMQ_POLLIN | ZMQ_POLLERR))
			heartbeat_answer(b);
	}
}

static void
teardown(struct beat *b)
{
	session_close(b, STOP_WAIT_MS);
	session_backlog_free(b);
	worker_stop(b->cmdw);
	worker_stop(b->bgw);
	handle_events(b);	/* frees what the workers queued last */
	heartbeat_close(b);
	ipc_server_close(b->srv);
	ipc_context_term();
	evq_free(b->q);
	inbox_close(b->in);
	outbox_close(b->ob);
	audit_close(b->audit);
	free(b->host);
	for (size_t i = 0; i < b->ntopics; i++)
		free(b->topics[i]);
	free(b->topics);
}

int
main(int argc, char **argv)
{
	struct daemon_opts opts;
	struct confine_user user = CONFINE_USER_ZERO;
	struct beat b;
	int sfd, rc;

	memset(&b, 0, sizeof(b));
	b.snap_fd = -1;
	log_init(PROG, LOG_LVL_INFO);
	daemon_args(argc, argv, PROG, &opts);
	b.opts = &opts;
	b.cfg = daemon_config(&opts);
	if (opts.verbose)
		log_set_level(LOG_LVL_DEBUG);
	sfd = setup(&b, &user);
	b.state = CONN_NONE;
	session_replay(&b);
	b.next_beat = daemon_now_ms();
	b.outbox_peak = outbox_count(b.ob);
	log_info("ready: %" PRIu64 " publications in the outbox, waiting for"
	    " the registration from %s", outbox_count(b.ob), IPC_REGISTER);
	daemon_ready(&opts.notify_fd);

	rc = run(&b, sfd);

	log_info("stopping");
	teardown(&b);
	close(sfd);
	cfg_free(b.cfg);
	return rc;
}
