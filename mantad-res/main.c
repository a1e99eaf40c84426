/* mantad-res: samples the host (CPU, memory, disks, network, GPUs) into
 * res.db and answers snapshot, capacity and status requests on the "res"
 * endpoint. See mantad-res(8). */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zmq.h>

#include "cfg.h"
#include "confine.h"
#include "daemon.h"
#include "ipc.h"
#include "log.h"
#include "res.h"

#define PROG "mantad-res"

enum { PFD_IPC, PFD_SIG, PFD_N };

/* Requests answered per wake-up before the timers get a look. */
#define BATCH 64

/* This daemon idles most of its life: keep the heap and SQLite from
 * reserving what they would not use. Must run before sqlite3_initialize. */
static void
tune_memory(void)
{
	(void)mallopt(M_ARENA_MAX, 1);
	(void)sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0);
	(void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static long
max_rows(int interval_s)
{
	long n;

	if (interval_s < 1)
		interval_s = 1;
	n = STORE_KEEP_S / interval_s + 1;
	if (n > STORE_MAX_ROWS)
		n = STORE_MAX_ROWS;
	return n < 2 ? 2 : n;
}

static void
dispatch(struct res *r, struct ipc_server *srv)
{
	struct ipc_req *req;

	for (int i = 0; i < BATCH && ipc_server_recv(srv, &req) == 1; i++) {
		const ipc_msg *m = ipc_req_msg(req);

		switch (m->body_case) {
		case MANTA__IPC__MSG__BODY_SNAPSHOT_REQ:
			(void)answer_snapshot(r, srv, req);
			break;
		case MANTA__IPC__MSG__BODY_CAPACITY_REQ:
			(void)answer_capacity(r, srv, req);
			break;
		case MANTA__IPC__MSG__BODY_STATUS_REQ:
			(void)answer_status(r, srv, req);
			break;
		default:
			/* The allowlist keeps others out; answer anyway. */
			(void)ipc_reply_error(srv, req, 1, "request not handled by res");
			break;
		}
	}
}

/* SIGHUP reloads the config: the log level and resources.monitor_interval
 * apply at once (the retention of res.db at the next start). 1 on
 * SIGTERM/SIGINT, else 0. */
static int
handle_signals(int sfd, const struct daemon_opts *opts, struct manta_cfg *cfg,
    long long now, long long *interval, long long *next)
{
	int sig;

	while ((sig = daemon_signal_read(sfd)) > 0) {
		struct manta_cfg *n;

		if (sig == SIGTERM || sig == SIGINT) {
			log_info("stopping on signal %d", sig);
			return 1;
		}
		if (sig != SIGHUP || (n = daemon_reload(opts)) == NULL)
			continue;
		cfg->monitor_interval = n->monitor_interval;
		cfg_free(n);
		*interval = (long long)cfg->monitor_interval * 1000;
		if (*next > now + *interval)
			*next = now + *interval;
		log_info("SIGHUP: configuration reloaded: sampling"
		    " every %d s", cfg->monitor_interval);
	}
	return 0;
}

/* 0 on SIGTERM/SIGINT, 1 on a broken poll. */
static int
loop(struct res *r, struct ipc_server *srv, int sfd, const struct daemon_opts *opts,
    struct manta_cfg *cfg)
{
	long long interval = (long long)cfg->monitor_interval * 1000;
	/* The first row a second after start (sooner with a shorter
	 * interval): its CPU figure then covers a second, not the few
	 * ticks since res_init. */
	long long next = daemon_now_ms() + (interval < 1000 ? interval : 1000);
	zmq_pollitem_t pfd[PFD_N + 1 + SNAPSOCK_CLIENTS];

	for (;;) {
		long long now = daemon_now_ms();
		size_t nsnap;

		if (now >= next) {
			if (res_sample(r) < 0)
				log_warnx("sample not stored");
			next += interval;
			/* After a stall (suspend, a slow disk) skip the missed
			 * samples rather than take them back to back. */
			if (next <= now)
				next = now + interval;
			continue;
		}
		memset(pfd, 0, sizeof(pfd));
		pfd[PFD_IPC].socket = ipc_server_socket(srv);
		pfd[PFD_IPC].events = ZMQ_POLLIN;
		pfd[PFD_SIG].fd = sfd;
		pfd[PFD_SIG].events = ZMQ_POLLIN;
		nsnap = snapsock_pollitems(&r->ss, &pfd[PFD_N]);
		if (zmq_poll(pfd, (int)(PFD_N + nsnap), (long)(next - now)) == -1) {
			if (errno == EINTR)
				continue;
			log_errorx("unable to poll: %s", zmq_strerror(errno));
			return 1;
		}
		if ((pfd[PFD_SIG].revents & ZMQ_POLLIN) &&
		    handle_signals(sfd, opts, cfg, now, &interval, &next))
			return 0;
		if (pfd[PFD_IPC].revents & ZMQ_POLLIN)
			dispatch(r, srv);
		snapsock_handle(&r->ss, r, &pfd[PFD_N], nsnap);
	}
}

/* Checks and prepares the paths and accounts, takes the lock: 0, else
 * the exit status (logged). */
static int
prepare(struct manta_cfg *cfg, struct confine_user *user)
{
	struct confine_user light = CONFINE_USER_ZERO;

	if (cfg->state_dir == NULL || cfg->run_dir == NULL) {
		log_errorx("paths.state_dir and paths.run_dir must be set");
		return 1;
	}
	if (confine_state_dir(cfg) == -1) {
		log_errorx("unable to prepare %s", cfg->state_dir);
		return 1;
	}
	if (confine_accounts(cfg, user, &light) == -1)
		return 1;
	if (confine_root_check(cfg, user, "security.daemon_user") == -1)
		return 100;
	if (ipc_prepare_run_dir(cfg->run_dir, confine_user_group(user)) == -1)
		return 1;
	daemon_lock(cfg, PROG, IPC_RES);
	return 0;
}

/* Drops the privileges around binding the endpoint and mantad-beat's
 * snapshot socket (snapsock.c): the endpoint, or NULL (logged). */
static struct ipc_server *
open_confined(struct res *r, const struct manta_cfg *cfg, struct confine_user *user)
{
	/* Who may ask what (issue 13): snapshots for mantad-beat and
	 * mantad-register, capacity for mantad-exec; nothing for light. */
	static const struct ipc_rule allowed[] = {
		{ MANTA__IPC__MSG__BODY_STATUS_REQ, IPC_FROM_OWNER, NULL },
		{ MANTA__IPC__MSG__BODY_SNAPSHOT_REQ, IPC_FROM_OWNER | IPC_FROM_DAEMON, NULL },
		{ MANTA__IPC__MSG__BODY_CAPACITY_REQ, IPC_FROM_OWNER | IPC_FROM_DAEMON, NULL },
	};
	struct ipc_server *srv;

	/* Nothing left needs a privilege: /proc, /sys are readable as is,
	 * res.db and the disks are held open. Capabilities are per thread,
	 * and zmq starts its I/O thread with the first socket, so this comes
	 * first; only the uid switch, after the bind, keeps two of them. */
	if (confine_drop(user) == -1) {
		log_errorx("unable to drop capabilities");
		return NULL;
	}
	srv = ipc_server_open(cfg->run_dir, IPC_RES, allowed,
	    sizeof(allowed) / sizeof(allowed[0]));
	if (srv == NULL)
		return NULL;
	if (snapsock_open(&r->ss, cfg->run_dir) == -1)
		goto fail;
	/* Every thread exists (zmq's I/O thread): the switch and the filter
	 * cover them all. */
	if (confine_user_enter(user) == -1)
		goto fail;
	if (sandbox_enter() == -1) {
		log_errorx("unable to load the seccomp filter");
		goto fail;
	}
	return srv;
fail:
	snapsock_close(&r->ss);
	ipc_server_close(srv);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct daemon_opts opts;
	struct manta_cfg *cfg;
	struct ipc_server *srv = NULL;
	struct res r;
	char dbpath[PATH_MAX];
	struct confine_user user = CONFINE_USER_ZERO;
	int sfd, rc = 1;

	daemon_args(argc, argv, PROG, &opts);
	cfg = daemon_config(&opts);
	tune_memory();
	memset(&r, 0, sizeof(r));

	/* Before any thread exists, so that none takes these signals. */
	if ((sfd = daemon_signalfd()) == -1) {
		log_error("unable to set up signals");
		goto out;
	}
	if ((rc = prepare(cfg, &user)) != 0)
		goto out;
	rc = 1;
	if (res_init(&r, cfg->state_dir, cfg->base_path) == -1)
		goto out;
	if (snprintf(dbpath, sizeof(dbpath), "%s/res.db", cfg->state_dir) >= (int)sizeof(dbpath)) {
		log_errorx("state_dir too long: %s", cfg->state_dir);
		goto out;
	}
	if ((r.store = store_open(dbpath, max_rows(cfg->monitor_interval))) == NULL)
		goto out;
	if ((srv = open_confined(&r, cfg, &user)) == NULL)
		goto out;
	log_info("ready: sampling every %d s into %s", cfg->monitor_interval, dbpath);
	daemon_ready(&opts.notify_fd);
	rc = loop(&r, srv, sfd, &opts, cfg);
out:
	snapsock_close(&r.ss);
	ipc_server_close(srv);
	ipc_context_term();
	res_free(&r);
	if (sfd >= 0)
		close(sfd);
	cfg_free(cfg);
	return rc;
}
