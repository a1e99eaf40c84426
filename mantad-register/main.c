/* mantad-register: owns the node's identity and its registration with the
 * manager. The main thread answers IPC on "register"; link.c's thread does
 * every gRPC call, so a slow or absent manager never delays an answer. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <zmq.h>

#include "confine.h"
#include "daemon.h"
#include "db.h"
#include "ipc.h"
#include "log.h"
#include "register.h"

struct state {
	const struct manta_cfg *cfg;
	const struct daemon_opts *opts;
	sqlite3 *db;
	struct manta_id id;
	char hex[ID_HEX_LEN + 1];
	struct platform plat;
	struct link *link;
};

static int
answer_status(const struct state *st, struct ipc_server *srv, struct ipc_req *req)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__StatusReply sr = MANTA__IPC__STATUS_REPLY__INIT;
	Manta__Ipc__RegisterStatus rs = MANTA__IPC__REGISTER_STATUS__INIT;
	Common__Informations__PlatformInfo pi;
	Common__Informations__GpuDevice *gpus = NULL, **gp = NULL;
	struct link_status ls;
	int rc;

	link_status(st->link, &ls);
	rs.node_id = (char *)(uintptr_t)st->hex;
	rs.alias = (char *)(uintptr_t)cfg_alias(st->cfg);
	rs.manager_host = st->cfg->manager_host;
	rs.manager_port = (uint32_t)st->cfg->manager_port;
	rs.registered = ls.registered;
	rs.link = (char *)(uintptr_t)ls.state;
	rs.generation = ls.generation;
	rs.broker = ls.broker;
	platform_to_proto(&st->plat, &pi);
	rs.platform = &pi;
	rs.cpu_count = st->plat.cpu_count;
	rs.cpu_model = (char *)(uintptr_t)st->plat.cpu_model;
	rs.mem_total_bytes = st->plat.mem_total;
	rs.disk_total_bytes = st->plat.disk_total;
	(void)store_logs_count(st->db, &rs.outbox, &rs.outbox_bytes);
	rs.draining = ls.draining;
	if (st->plat.ngpus > 0) {
		gpus = calloc(st->plat.ngpus, sizeof(*gpus));
		gp = calloc(st->plat.ngpus, sizeof(*gp));
		if (gpus != NULL && gp != NULL) {
			for (size_t i = 0; i < st->plat.ngpus; i++) {
				common__informations__gpu_device__init(&gpus[i]);
				gpus[i].name = (char *)(uintptr_t)st->plat.gpus[i].name;
				gpus[i].uuid = (char *)(uintptr_t)st->plat.gpus[i].uuid;
				gp[i] = &gpus[i];
			}
			rs.n_gpus = st->plat.ngpus;
			rs.gpus = gp;
		}
	}
	sr.register_ = &rs;
	m.body_case = MANTA__IPC__MSG__BODY_STATUS;
	m.status = &sr;
	rc = ipc_reply(srv, req, &m);
	free(gpus);
	free(gp);
	return rc;
}

static int
answer_registration(const struct state *st, struct ipc_server *srv, struct ipc_req *req)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__RegistrationNotice n;
	Common__System__PairId pid;
	struct reg r;
	int rc;

	if (link_registration(st->link, &r) != 1)
		return ipc_reply_error(srv, req, 1, "not registered");
	reg_to_notice(&r, &n, &pid);
	m.body_case = MANTA__IPC__MSG__BODY_REGISTRATION;
	m.registration = &n;
	rc = ipc_reply(srv, req, &m);
	reg_free(&r);
	return rc;
}

static void
handle(struct state *st, struct ipc_server *srv, struct ipc_req *req)
{
	const ipc_msg *m = ipc_req_msg(req);

	switch (m->body_case) {
	case MANTA__IPC__MSG__BODY_STATUS_REQ:
		answer_status(st, srv, req);
		break;
	case MANTA__IPC__MSG__BODY_REGISTRATION_REQ:
		answer_registration(st, srv, req);
		break;
	case MANTA__IPC__MSG__BODY_COMMAND:
		if (strcmp(m->command->name, "collect_information") != 0) {
			ipc_reply_error(srv, req, 2, "%s: not a command for mantad-register",
			    m->command->name);
			break;
		}
		/* Accepted once queued; the manager learns of a bad request
		 * through SendError, as the reference does. */
		link_collect(st->link, m->command->payload.data, m->command->payload.len);
		ipc_reply_ok(srv, req);
		break;
	case MANTA__IPC__MSG__BODY_REPORT_ERROR:
		link_report(st->link, m->report_error->error);
		ipc_reply_ok(srv, req);
		break;
	case MANTA__IPC__MSG__BODY_DRAIN: {
		/* From mantad-exec (issue 6): kept unless transient (a stop's
		 * drain), so that the manager is told again after a restart. */
		bool on = !m->drain->undrain;

		if (!(on && m->drain->transient))
			(void)store_meta_set(st->db, "draining", on ? "1" : "0");
		link_drain(st->link, on);
		ipc_reply_ok(srv, req);
		break;
	}
	case MANTA__IPC__MSG__BODY_TASK_LOGS: {
		char err[256];

		/* Acknowledged once stored: from then on it is ours to deliver. */
		switch (logs_accept(st->db, st->id, m->task_logs, err, sizeof(err))) {
		case LOGS_STORED:
			link_logs_notify(st->link);
			ipc_reply_ok(srv, req);
			break;
		case LOGS_DUPLICATE:
			ipc_reply_ok(srv, req);
			break;
		case LOGS_REFUSED:
			log_warnx("refusing task logs %s: %s", m->task_logs->key, err);
			ipc_reply_error(srv, req, 1, "%s", err);
			break;
		case LOGS_BUSY:
			log_warnx("refusing task logs %s for now: %s", m->task_logs->key,
			    err);
			/* mantad-exec keeps the frame and tries again. */
			ipc_reply_error(srv, req, IPC_CODE_BUSY, "%s", err);
			break;
		}
		break;
	}
	default:
		/* ipc_server_recv enforces the allowlist; never here. */
		ipc_reply_error(srv, req, 2, "unexpected request");
		break;
	}
}

/* SIGTERM: requests keep being served while the calls queued last go
 * out (link_close), since the drain of a graceful stop reaches us from
 * mantad-exec while the supervisor signals every daemon; we exit once the
 * link is flushed and no request came for STOP_QUIET_MS, or after
 * STOP_FLUSH_MS. SIGINT, or a second signal: at once. */
#define STOP_FLUSH_MS	3000
#define STOP_QUIET_MS	300

static int
serve(struct state *st, struct ipc_server *srv, int sfd)
{
	zmq_pollitem_t items[2];
	long long closing_end = -1, quiet_end = -1;

	for (;;) {
		struct ipc_req *req;
		long long now = daemon_now_ms();
		int sig, timeout = -1;

		if (closing_end >= 0) {
			if (now >= closing_end || (now >= quiet_end && link_flushed(st->link)))
				return 0;
			timeout = (int)((now < quiet_end ? quiet_end : closing_end) - now);
			if (now >= quiet_end)
				timeout = 50;	/* polling the link's flush */
		}
		memset(items, 0, sizeof(items));
		items[0].socket = ipc_server_socket(srv);
		items[0].events = ZMQ_POLLIN;
		items[1].fd = sfd;
		items[1].events = ZMQ_POLLIN;
		if (zmq_poll(items, 2, timeout) == -1) {
			if (errno == EINTR)
				continue;
			log_error("zmq_poll");
			return 1;
		}
		while ((sig = daemon_signal_read(sfd)) != 0) {
			switch (sig) {
			case SIGTERM:
			case SIGINT:
				log_info("stopping on signal %d", sig);
				if (sig == SIGINT || closing_end >= 0)
					return 0;
				link_close(st->link);
				now = daemon_now_ms();
				closing_end = now + STOP_FLUSH_MS;
				quiet_end = now + STOP_QUIET_MS;
				break;
			case SIGHUP: {
				/* Only the log level applies while running. */
				struct manta_cfg *n = daemon_reload(st->opts);

				if (n != NULL) {
					log_info("SIGHUP: log level %s; other keys"
					    " need a restart", n->log_level ?
					    n->log_level : "INFO");
					cfg_free(n);
				}
				break;
			}
			default:
				break;
			}
		}
		while (ipc_server_recv(srv, &req) == 1) {
			handle(st, srv, req);
			if (closing_end >= 0)
				quiet_end = daemon_now_ms() + STOP_QUIET_MS;
		}
		/* After a burst of calls (a large status or log batch): give
		 * freed pages back (issue 14; at most once a second). */
		daemon_trim();
	}
}

/* Start-up as uid 0: the accounts, state and run dirs, the lock; then every
 * capability dropped, before any thread. Fatal on failure. */
static void
open_privileged(struct manta_cfg *cfg, struct confine_user *user)
{
	struct confine_user light = CONFINE_USER_ZERO;

	if (confine_accounts(cfg, user, &light) == -1)
		log_fatalx(1, "unable to find the node's accounts");
	if (confine_root_check(cfg, user, "security.daemon_user") == -1)
		exit(100);
	umask(077);
	if (confine_state_dir(cfg) == -1)
		log_fatalx(1, "unable to prepare state dir %s", cfg->state_dir);
	if (ipc_prepare_run_dir(cfg->run_dir, confine_user_group(user)) == -1)
		log_fatalx(1, "unable to prepare run dir %s", cfg->run_dir);
	daemon_lock(cfg, PROG, IPC_REGISTER);
	/* No capability is needed past this point (our files are uid 0's and
	 * opened before the uid switch), and none may reach the threads
	 * ZeroMQ and gRPC start: drop them all first. */
	if (confine_drop(user) == -1)
		log_fatalx(1, "unable to drop capabilities");
}

/* register.db, the node's identity and platform into st, and the last
 * registration into *stored: 1 when there is one. Fatal on failure. */
static int
load_state(struct state *st, struct reg *stored)
{
	const char *how = "";
	uint64_t nlogs, bytes;
	int have_stored;

	if ((st->db = store_open(st->cfg->state_dir)) == NULL)
		log_fatalx(1, "unable to open %s/register.db", st->cfg->state_dir);
	if (store_logs_count(st->db, &nlogs, &bytes) == 0 && nlogs > 0)
		log_info("%llu task log message%s (%llu bytes) waiting for the manager",
		    (unsigned long long)nlogs, nlogs == 1 ? "" : "s",
		    (unsigned long long)bytes);
	if (identity_load(st->cfg, &st->id, &how) == -1)
		log_fatalx(1, "unable to load or create the node identity in %s",
		    st->cfg->state_dir);
	id_to_hex(st->id, st->hex);
	log_info("node id %s (%s)", st->hex, how);
	if (platform_discover(&st->plat, st->cfg->state_dir) == -1)
		log_fatalx(1, "unable to read this machine's platform");
	platform_log(&st->plat);
	if ((have_stored = store_reg_load(st->db, stored)) == 1)
		log_debug("last registration: broker %s:%u, generation %llu",
		    stored->broker_host, stored->broker_port,
		    (unsigned long long)stored->generation);
	return have_stored;
}

/* The register endpoint. Fatal on failure. */
static struct ipc_server *
open_endpoint(const struct manta_cfg *cfg)
{
	/* Who may ask what (issue 13): mantad-beat asks for the
	 * registration and hands over collect_information and errors;
	 * task logs, errors and drains come from mantad-exec. */
	static const struct ipc_rule allowed[] = {
		{ MANTA__IPC__MSG__BODY_STATUS_REQ, IPC_FROM_OWNER, NULL },
		{ MANTA__IPC__MSG__BODY_REGISTRATION_REQ, IPC_FROM_OWNER | IPC_FROM_DAEMON, NULL },
		{ MANTA__IPC__MSG__BODY_COMMAND, IPC_FROM_OWNER | IPC_FROM_DAEMON, NULL },
		{ MANTA__IPC__MSG__BODY_REPORT_ERROR, IPC_FROM_OWNER | IPC_FROM_DAEMON, NULL },
		{ MANTA__IPC__MSG__BODY_TASK_LOGS, IPC_FROM_OWNER, NULL },
		{ MANTA__IPC__MSG__BODY_DRAIN, IPC_FROM_OWNER, NULL },
	};
	struct ipc_server *srv;

	if ((srv = ipc_server_open(cfg->run_dir, IPC_REGISTER, allowed,
	    sizeof(allowed) / sizeof(allowed[0]))) == NULL)
		log_fatalx(1, "unable to bind the register endpoint in %s", cfg->run_dir);
	return srv;
}

/* The link to the manager, from the last registration when there is one
 * (stored, freed here); draining again when a drain was on at the last
 * stop. 0, or -1. */
static int
start_link(struct state *st, struct mgr *mgr, struct reg *stored)
{
	char v[8];

	st->link = link_start(st->cfg, mgr, st->id, &st->plat, stored);
	if (stored != NULL)
		reg_free(stored);
	if (st->link == NULL)
		return -1;
	/* A drain (mantactl drain) outlives a restart of ours. */
	if (store_meta_get(st->db, "draining", v, sizeof(v)) == 1 && strcmp(v, "1") == 0)
		link_drain(st->link, true);
	return 0;
}

int
main(int argc, char **argv)
{
	struct daemon_opts opts;
	struct manta_cfg *cfg;
	struct state st;
	struct ipc_server *srv = NULL;
	struct mgr *mgr = NULL;
	struct reg stored;
	int sfd = -1, have_stored, linked, rc = 1;
	struct confine_user user = CONFINE_USER_ZERO;

	memset(&st, 0, sizeof(st));
	daemon_args(argc, argv, PROG, &opts);
	cfg = daemon_config(&opts);
	st.cfg = cfg;
	st.opts = &opts;
	open_privileged(cfg, &user);
	have_stored = load_state(&st, &stored);

	/* Signals blocked before any thread starts, so that all inherit it. */
	if ((sfd = daemon_signalfd()) == -1)
		log_fatal(1, "unable to set up signals");
	srv = open_endpoint(cfg);
	mgr_init();
	if ((mgr = mgr_open(cfg)) == NULL) {
		log_errorx("unable to set up a channel to the manager");
		goto out;
	}
	linked = start_link(&st, mgr, have_stored == 1 ? &stored : NULL);
	have_stored = 0;	/* freed there */
	if (linked == -1)
		goto out;
	/* For every thread (gRPC's, the link's, zmq's) and those to come;
	 * the credentials are in memory already (mgr_open). */
	if (user.set && mgr_hold_tls(mgr) == -1)
		goto out;
	if (confine_user_enter(&user) == -1)
		goto out;
	if (sandbox_enter() == -1) {
		log_errorx("unable to load the seccomp filter");
		goto out;
	}
	daemon_ready(&opts.notify_fd);
	log_info("ready; manager %s", mgr_target(mgr));

	rc = serve(&st, srv, sfd);
out:
	if (have_stored == 1)
		reg_free(&stored);
	link_stop(st.link, STOP_FLUSH_MS / 3);
	mgr_close(mgr);
	grpc_shutdown_blocking();
	if (srv != NULL)
		ipc_server_close(srv);
	ipc_context_term();
	if (sfd != -1)
		close(sfd);
	db_close(st.db);
	platform_free(&st.plat);
	cfg_free(cfg);
	return rc;
}
