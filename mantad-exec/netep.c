/* netep: each run with containers.network = "none" gets a network
 * namespace of its own, made here before the runtime starts (issue 13):
 * lo up and a socket listening on 127.0.0.1:RPC_PORT inside it
 * (libcommon/netns.c), kept at <run_dir>/netns/<cid>, which config.json
 * names (bundle.c). The socket goes to mantad-light over
 * <run_dir>/light-netns.sock with "add SWARM TASK"; "del SWARM TASK" when
 * the run ends. Light keeps an endpoint while this connection lives:
 * when Light restarts, the connection ends and every live run's socket is
 * sent again on the next one (netep_tick, each second).
 *
 * With containers.userns too: the namespace made here belongs to the
 * initial user namespace, where the task's user namespace may not mount a
 * sysfs, so such a task gets the host's /sys bound read-only, as on the
 * host's network (bundle.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "netns.h"

#include "exec.h"

#define NETEP_SOCK	"light-netns.sock"
#define NETEP_DIR	"netns"
#define RECONNECT_MS	1000

bool
netep_wanted(const struct exec *x)
{
	return strcmp(x->cfg->network ? x->cfg->network : "host", "none") == 0;
}

static int
send_one(struct exec *x, const struct run *r, bool add)
{
	char msg[80], sh[ID_HEX_LEN + 1], th[ID_HEX_LEN + 1];
	int n;

	id_to_hex(r->swarm, sh);
	id_to_hex(r->task, th);
	n = snprintf(msg, sizeof(msg), "%s %s %s", add ? "add" : "del", sh, th);
	if (add)
		return fd_send(x->light_ep, r->netns_lfd, msg, (size_t)n);
	return send(x->light_ep, msg, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

/* A namespace request to the launcher for the one at path (named after
 * its container): its listening socket in *lfd when lfd is not NULL. 0,
 * or -1 with errno set. */
static int
ns_call(struct exec *x, enum launch_kind kind, const char *path, int *lfd)
{
	const char *cid = strrchr(path, '/');
	struct launch_req q;
	struct launch_rep rep;
	int fds[LAUNCH_FDS_MAX];

	memset(&q, 0, sizeof(q));
	q.kind = kind;
	q.port = (uint32_t)bundle_rpc_port(x);
	snprintf(q.cid, sizeof(q.cid), "%s", cid ? cid + 1 : path);
	if (launch_call(x->launcher, &q, -1, &rep, fds) == -1)
		return -1;
	if (lfd != NULL) {
		*lfd = fds[0];
		fds[0] = -1;
		if (*lfd < 0) {
			errno = EPROTO;
			return -1;
		}
	}
	for (size_t i = 0; i < LAUNCH_FDS_MAX; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return 0;
}

static void
disconnect(struct exec *x)
{
	if (x->light_ep != -1)
		close(x->light_ep);
	x->light_ep = -1;
}

/* Connects and sends every live endpoint. 0 or -1 (not connected). */
static int
connect_light(struct exec *x)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct run *r;

	if (x->light_ep != -1)
		return 0;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s",
	    x->cfg->run_dir, NETEP_SOCK) >= sizeof(sun.sun_path))
		return -1;
	if ((x->light_ep = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(x->light_ep, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		disconnect(x);
		return -1;
	}
	TAILQ_FOREACH(r, &x->runs, all)
		if (r->netns_lfd != -1 && send_one(x, r, true) == -1) {
			log_warn("unable to hand task endpoints to mantad-light");
			disconnect(x);
			return -1;
		}
	return 0;
}

int
netep_run_begin(struct exec *x, struct run *r)
{
	char *dir, name[CID_MAX + 1];

	if (!netep_wanted(x) || r->netns != NULL)
		return 0;
	if ((dir = path_join(x->cfg->run_dir, NETEP_DIR)) == NULL)
		return -1;
	snprintf(name, sizeof(name), "%s", r->cid);
	r->netns = path_join(dir, name);
	free(dir);
	if (r->netns == NULL)
		return -1;
	/* The launcher removes a leftover of a crash first. */
	if (ns_call(x, LAUNCH_NETNS_ADD, r->netns, &r->netns_lfd) == -1) {
		log_warn("unable to create the network namespace %s", r->netns);
		free(r->netns);
		r->netns = NULL;
		return -1;
	}
	/* Light may be down now: it gets the endpoint when it is back. */
	if (x->light_ep == -1)
		(void)connect_light(x);
	else if (send_one(x, r, true) == -1)
		disconnect(x);
	return 0;
}

void
netep_run_end(struct exec *x, struct run *r)
{
	if (r->netns_lfd != -1) {
		if (x->light_ep != -1 && send_one(x, r, false) == -1)
			disconnect(x);
		close(r->netns_lfd);
		r->netns_lfd = -1;
	}
	if (r->netns != NULL) {
		if (ns_call(x, LAUNCH_NETNS_DEL, r->netns, NULL) == -1)
			log_warn("unable to remove %s", r->netns);
		free(r->netns);
		r->netns = NULL;
	}
}

int
netep_fd(const struct exec *x)
{
	return x->light_ep;
}

void
netep_input(struct exec *x)
{
	char c;

	/* Light says nothing: readable means it went away. */
	if (recv(x->light_ep, &c, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN)
		return;
	disconnect(x);
	x->next_netep = 0;
}

bool
netep_pending(const struct exec *x)
{
	const struct run *r;

	TAILQ_FOREACH(r, &x->runs, all)
		if ((r->netns_lfd != -1 && x->light_ep == -1) ||
		    (r->netns != NULL && r->netns_lfd == -1))
			return true;
	return false;
}

/* An adopted run's endpoint: a new socket in its namespace, once the one
 * the earlier exec made is closed (Light closes it when that exec's
 * connection ends). */
static void
relisten(struct exec *x, struct run *r)
{
	if (ns_call(x, LAUNCH_NETNS_LISTEN, r->netns, &r->netns_lfd) == -1) {
		if (errno != EADDRINUSE)
			log_warn("unable to listen in %s", r->netns);
		return;
	}
	if (x->light_ep != -1 && send_one(x, r, true) == -1)
		disconnect(x);
}

void
netep_tick(struct exec *x, long long now)
{
	struct run *r;

	if (now < x->next_netep || !netep_pending(x))
		return;
	TAILQ_FOREACH(r, &x->runs, all)
		if (r->netns != NULL && r->netns_lfd == -1)
			relisten(x, r);
	(void)connect_light(x);
	x->next_netep = now + RECONNECT_MS;
}

/* At start: namespaces of runs an earlier life left go. Adopted runs keep
 * theirs and get a new endpoint in it (netep_tick). */
void
netep_sweep(struct exec *x)
{
	char *dir, *p;
	struct dirent *de;
	struct run *r;
	DIR *d;

	if ((dir = path_join(x->cfg->run_dir, NETEP_DIR)) == NULL)
		return;
	if ((d = opendir(dir)) == NULL) {
		free(dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		TAILQ_FOREACH(r, &x->runs, all)
			if (strcmp(r->cid, de->d_name) == 0)
				break;
		if ((p = path_join(dir, de->d_name)) == NULL)
			continue;
		if (r != NULL && r->netns == NULL) {
			r->netns = p;	/* its endpoint: netep_tick */
			continue;
		}
		if (ns_call(x, LAUNCH_NETNS_DEL, p, NULL) == -1)
			log_warn("unable to remove %s", p);
		free(p);
	}
	closedir(d);
	free(dir);
}

void
netep_close(struct exec *x)
{
	disconnect(x);
}
