/* mantad-light: the Light service (WIRE.md section 7) for the tasks of
 * this node. The order is bgpd's: config, privileged opens (dataset
 * dirfds, the database, the listening sockets), confinement (no
 * capabilities before any thread starts; a seccomp allowlist without
 * execve before the loop), then the loop.
 *
 * Threads: main runs the gRPC completion queue (server.c); one thread
 * answers IPC (status) and takes signals; one asks mantad-exec who is
 * calling (ident.c). The last two wake main through server_ring(). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <zmq.h>

#include "confine.h"
#include "daemon.h"
#include "ipc.h"
#include "light.h"
#include "log.h"

struct ipc_thread {
	pthread_t th;
	struct ipc_server *srv;
	int sfd;
	int stopfd;		/* eventfd: main tells the thread to end */
	const struct manta_cfg *cfg;
	int port;
	char sock[4096];
	uint32_t ndatasets;
	bool token_required;
};

static void
answer_status(struct ipc_thread *t, struct ipc_req *req)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__StatusReply sr = MANTA__IPC__STATUS_REPLY__INIT;
	Manta__Ipc__LightStatus ls = MANTA__IPC__LIGHT_STATUS__INIT;

	ls.host = t->cfg->light_service_host;
	ls.port = (uint32_t)t->port;
	ls.unix_socket = t->sock;
	ls.calls = atomic_load(&light_stats.calls);
	ls.active = atomic_load(&light_stats.active);
	ls.refused = atomic_load(&light_stats.refused);
	ls.failed = atomic_load(&light_stats.failed);
	ls.bytes_out = atomic_load(&light_stats.bytes_out);
	ls.bytes_in = atomic_load(&light_stats.bytes_in);
	ls.manager = (char *)(uintptr_t)world_target();
	ls.datasets = t->ndatasets;
	ls.token_required = t->token_required;
	sr.light = &ls;
	m.body_case = MANTA__IPC__MSG__BODY_STATUS;
	m.status = &sr;
	ipc_reply(t->srv, req, &m);
}

static void *
ipc_main(void *arg)
{
	struct ipc_thread *t = arg;
	zmq_pollitem_t items[3];

	for (;;) {
		struct ipc_req *req;
		int sig;

		memset(items, 0, sizeof(items));
		items[0].socket = ipc_server_socket(t->srv);
		items[0].events = ZMQ_POLLIN;
		items[1].fd = t->sfd;
		items[1].events = ZMQ_POLLIN;
		items[2].fd = t->stopfd;
		items[2].events = ZMQ_POLLIN;
		if (zmq_poll(items, 3, -1) == -1) {
			if (errno == EINTR)
				continue;
			log_error("zmq_poll");
			server_stop();
			break;
		}
		if (items[2].revents & ZMQ_POLLIN)
			break;
		while ((sig = daemon_signal_read(t->sfd)) != 0) {
			switch (sig) {
			case SIGTERM:
			case SIGINT:
				log_info("stopping on signal %d", sig);
				server_stop();
				break;
			case SIGHUP:
				log_info("SIGHUP: nothing to reload; restart to read the config");
				break;
			default:
				break;
			}
		}
		while (ipc_server_recv(t->srv, &req) == 1) {
			if (ipc_req_msg(req)->body_case == MANTA__IPC__MSG__BODY_STATUS_REQ)
				answer_status(t, req);
			else
				ipc_reply_error(t->srv, req, 2, "unexpected request");
		}
	}
	return NULL;
}

/* <run_dir>/light.port: where mantad-exec learns RPC_PORT when the config
 * leaves light_service_port unset. Written whole, then renamed. */
static int
write_port(const char *run_dir, int port)
{
	char path[4096], tmp[4200], buf[16];
	int fd, n;

	snprintf(path, sizeof(path), "%s/%s", run_dir, LIGHT_PORT_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	n = snprintf(buf, sizeof(buf), "%d\n", port);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) == -1)
		return -1;
	if (write(fd, buf, (size_t)n) != n || close(fd) == -1 || rename(tmp, path) == -1) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Start-up as uid 0, before any thread: state and run dirs, the lock, the
 * datasets' dirfds and the audit trail. Fatal on failure. */
static void
open_privileged(struct manta_cfg *cfg, struct datasets *ds, struct confine_user *user)
{
	struct confine_user daemon = CONFINE_USER_ZERO;

	umask(077);
	if (confine_state_dir(cfg) == -1)
		log_fatalx(1, "unable to prepare state dir %s", cfg->state_dir);
	/* Its own account, in the daemons' group: the others tell it
	 * apart by its uid and accept next to nothing from it. */
	if (confine_accounts(cfg, &daemon, user) == -1)
		log_fatalx(1, "unable to find the node's accounts");
	if (confine_root_check(cfg, user, "security.light_user") == -1)
		exit(100);
	if (ipc_prepare_run_dir(cfg->run_dir, confine_user_group(user)) == -1)
		log_fatalx(1, "unable to prepare run dir %s", cfg->run_dir);
	daemon_lock(cfg, PROG, IPC_LIGHT);
	/* Privileged opens: whatever the datasets need is opened now. */
	if (datasets_open(ds, cfg) == -1)
		log_fatalx(1, "unable to set up the datasets");
	local_init(ds, cfg);
	if (light_audit_open(cfg->state_dir) == -1)
		log_fatalx(1, "unable to open the audit trail in %s", cfg->state_dir);
}

/* With the gRPC server up on port: the channel to the manager, light.port,
 * the light IPC endpoint, the identity and network endpoints, then the IPC
 * thread. 0, or -1 (logged) with the thread not started. */
static int
start_services(struct ipc_thread *it, struct manta_cfg *cfg, const struct datasets *ds,
    int port)
{
	static const struct ipc_rule allowed[] = {
		{ MANTA__IPC__MSG__BODY_STATUS_REQ, IPC_FROM_OWNER, NULL },
	};
	int e;

	if (world_open(cfg) == -1) {
		log_errorx("unable to set up a channel to the manager");
		return -1;
	}
	/* node.key.sbox is opened: the key goes before the seccomp filter,
	 * which would not let sodium_free unlock its pages at exit. */
	cfg_drop_secret_key(cfg);
	if (write_port(cfg->run_dir, port) == -1)
		log_warn("unable to write %s/%s", cfg->run_dir, LIGHT_PORT_FILE);
	if ((it->srv = ipc_server_open(cfg->run_dir, IPC_LIGHT, allowed, 1)) == NULL) {
		log_errorx("unable to bind the light endpoint in %s", cfg->run_dir);
		return -1;
	}
	if (ident_start(cfg->run_dir) == -1)
		return -1;
	if (netep_start(cfg->run_dir, server_grpc()) == -1)
		return -1;
	if ((it->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
		log_error("eventfd");
		return -1;
	}
	it->port = port;
	snprintf(it->sock, sizeof(it->sock), "%s/%s", cfg->run_dir, LIGHT_UNIX_SOCK);
	it->ndatasets = (uint32_t)ds->n;
	it->token_required = light_token_required(cfg);
	if ((e = light_thread(&it->th, ipc_main, it)) != 0) {
		log_errorx("unable to start the IPC thread: %s", strerror(e));
		return -1;
	}
	return 0;
}

/* Stops the IPC thread when it runs, and closes what start-up opened. */
static void
light_close(struct ipc_thread *it, struct datasets *ds, bool ipc_started)
{
	if (ipc_started) {
		uint64_t one = 1;

		if (write(it->stopfd, &one, sizeof(one)) != sizeof(one))
			log_warn("unable to stop the IPC thread");
		pthread_join(it->th, NULL);
	}
	netep_stop();
	ident_stop();
	server_free();
	grpc_shutdown_blocking();
	if (it->srv != NULL)
		ipc_server_close(it->srv);
	ipc_context_term();
	if (it->stopfd != -1)
		close(it->stopfd);
	if (it->sfd != -1)
		close(it->sfd);
	light_audit_close();
	datasets_close(ds);
}

int
main(int argc, char **argv)
{
	struct daemon_opts opts;
	struct manta_cfg *cfg;
	struct datasets ds;
	struct ipc_thread it;
	bool ipc_started = false;
	int port = 0, rc = 1;
	struct confine_user user = CONFINE_USER_ZERO;

	memset(&it, 0, sizeof(it));
	it.sfd = it.stopfd = -1;
	daemon_args(argc, argv, PROG, &opts);
	cfg = daemon_config(&opts);
	it.cfg = cfg;
	open_privileged(cfg, &ds, &user);

	/* No capability past this point, in any thread: drop them all while
	 * this is the only one (gRPC and ZeroMQ start theirs below). */
	if (confine_drop(&user) == -1)
		log_fatalx(1, "unable to drop capabilities");
	if ((it.sfd = daemon_signalfd()) == -1)
		log_fatal(1, "unable to set up signals");
	if (server_start(cfg, &port) == -1)
		log_fatalx(1, "unable to start the gRPC server");
	if (start_services(&it, cfg, &ds, port) == -1)
		goto out;
	ipc_started = true;

	/* The sockets are bound and light.port written: nothing left needs
	 * uid 0. Datasets are read beneath their dirfds as this user. */
	if (confine_user_enter(&user) == -1)
		goto out;
	if (sandbox_enter() == -1) {
		log_errorx("unable to load the seccomp filter");
		goto out;
	}
	daemon_ready(&opts.notify_fd);
	log_info("ready: Light service on %s:%d and %s; manager %s; %zu dataset(s)%s",
	    cfg->light_service_host, port, it.sock, world_target(), ds.n,
	    it.token_required ? "; task token required" : "");

	server_run();
	rc = 0;
out:
	light_close(&it, &ds, ipc_started);
	cfg_free(cfg);
	return rc;
}
