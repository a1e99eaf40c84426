/* netep: Light endpoints inside tasks' own network namespaces (issue 13).
 *
 * mantad-exec creates, for each run with containers.network = "none", a
 * network namespace with a socket listening on 127.0.0.1:RPC_PORT inside it
 * (libcommon/netns.c), and hands that socket over <run_dir>/light-netns.sock
 * (SOCK_SEQPACKET, peers of uid 0 or ours only) with one message
 * "add SWARMHEX TASKHEX"; "del SWARMHEX TASKHEX" when the run ends. The
 * endpoints belong to the connection that brought them: when exec goes
 * away they close, and exec sends them all again when it connects anew
 * (as it does when this daemon restarts).
 *
 * One thread of its own accepts on those sockets and hands every accepted
 * connection to libgrpc (grpc_server_add_channel_from_fd), whose calls
 * then have the peer "fd:N": netep_who() maps N to the run. Only that
 * task's processes can reach its namespace, so such a call is that task's
 * call, without a token. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>

#include "log.h"
#include "netns.h"

#include "light.h"

#define NETEP_SOCK	"light-netns.sock"
#define MAX_CONN	4
#define MAX_EP		1024

struct ep {
	int lfd, conn;			/* conn: index in N.conn */
	struct manta_id swarm, task;
};

struct peer {
	bool set;
	struct manta_id swarm, task;
};

static struct {
	pthread_t th;
	bool started;
	int stopfd, sock;
	int conn[MAX_CONN];
	struct ep ep[MAX_EP];
	size_t nep;
	grpc_server *server;
	pthread_mutex_t lock;		/* peers */
	struct peer *peers;		/* indexed by accepted fd */
	size_t npeers;
} N = { .stopfd = -1, .sock = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

static void
peer_set(int fd, const struct ep *e)
{
	pthread_mutex_lock(&N.lock);
	if ((size_t)fd >= N.npeers) {
		size_t n = (size_t)fd * 2 + 16;
		struct peer *p = realloc(N.peers, n * sizeof(*p));

		if (p == NULL) {
			pthread_mutex_unlock(&N.lock);
			return;
		}
		memset(p + N.npeers, 0, (n - N.npeers) * sizeof(*p));
		N.peers = p;
		N.npeers = n;
	}
	N.peers[fd].set = true;
	N.peers[fd].swarm = e->swarm;
	N.peers[fd].task = e->task;
	pthread_mutex_unlock(&N.lock);
}

int
netep_who(const char *peer, struct manta_id *swarm, struct manta_id *task)
{
	char *end;
	long fd;
	int found = 0;

	if (peer == NULL || strncmp(peer, "fd:", 3) != 0)
		return 0;
	errno = 0;
	fd = strtol(peer + 3, &end, 10);
	if (errno != 0 || *end != '\0' || fd < 0)
		return 0;
	pthread_mutex_lock(&N.lock);
	if ((size_t)fd < N.npeers && N.peers[fd].set) {
		*swarm = N.peers[fd].swarm;
		*task = N.peers[fd].task;
		found = 1;
	}
	pthread_mutex_unlock(&N.lock);
	return found;
}

static void
ep_drop(size_t i)
{
	close(N.ep[i].lfd);
	N.ep[i] = N.ep[--N.nep];
}

static void
conn_close(int ci)
{
	for (size_t i = 0; i < N.nep; )
		if (N.ep[i].conn == ci)
			ep_drop(i);
		else
			i++;
	close(N.conn[ci]);
	N.conn[ci] = -1;
}

static void
conn_accept(void)
{
	struct ucred cr;
	socklen_t sl = sizeof(cr);
	int fd, ci;

	if ((fd = accept4(N.sock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) == -1)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &sl) == -1 ||
	    (cr.uid != 0 && cr.uid != geteuid())) {
		log_warnx("refused a task endpoint connection from uid %ld",
		    (long)cr.uid);
		close(fd);
		return;
	}
	for (ci = 0; ci < MAX_CONN && N.conn[ci] != -1; ci++)
		;
	if (ci == MAX_CONN) {
		log_warnx("refused a task endpoint connection: %d already",
		    MAX_CONN);
		close(fd);
		return;
	}
	N.conn[ci] = fd;
}

/* "add SWARM TASK" with a listening socket, or "del SWARM TASK". */
static void
conn_read(int ci)
{
	char buf[80], sw[ID_HEX_LEN + 1], tk[ID_HEX_LEN + 1], verb[4];
	struct manta_id s, t;
	ssize_t n;
	int fd = -1, type = 0;
	socklen_t sl = sizeof(type);

	n = fd_recv(N.conn[ci], &fd, buf, sizeof(buf) - 1);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (n == -1)
			log_warn("task endpoint connection");
		conn_close(ci);
		return;
	}
	buf[n] = '\0';
	if (sscanf(buf, "%3s %32s %32s", verb, sw, tk) != 3 ||
	    id_parse_hex(sw, &s) == -1 || id_parse_hex(tk, &t) == -1) {
		log_warnx("refused a task endpoint message: not \"add|del SWARM TASK\"");
		goto out;
	}
	for (size_t i = 0; i < N.nep; i++)
		if (id_equal(N.ep[i].swarm, s) && id_equal(N.ep[i].task, t)) {
			ep_drop(i);
			break;
		}
	if (strcmp(verb, "del") == 0)
		goto out;
	if (strcmp(verb, "add") != 0 || fd == -1 ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) == -1 ||
	    type != SOCK_STREAM) {
		log_warnx("refused a task endpoint for task %s: no listening socket", tk);
		goto out;
	}
	if (N.nep == MAX_EP) {
		log_warnx("refused a task endpoint for task %s: %d already", tk, MAX_EP);
		goto out;
	}
	N.ep[N.nep++] = (struct ep){ .lfd = fd, .conn = ci, .swarm = s, .task = t };
	fd = -1;
out:
	if (fd != -1)
		close(fd);
}

static void
ep_accept(size_t i)
{
	grpc_server_credentials *creds;
	int fd;

	if ((fd = accept4(N.ep[i].lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) == -1) {
		if (errno != EAGAIN && errno != ECONNABORTED && errno != EINTR)
			log_warn("unable to accept on a task endpoint");
		return;
	}
	peer_set(fd, &N.ep[i]);
	creds = grpc_insecure_server_credentials_create();
	grpc_server_add_channel_from_fd(N.server, fd, creds);
	grpc_server_credentials_release(creds);
}

static void *
netep_main(void *arg)
{
	struct pollfd p[2 + MAX_CONN + MAX_EP];
	size_t n, base;

	(void)arg;
	for (;;) {
		n = 0;
		p[n++] = (struct pollfd){ .fd = N.stopfd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = N.sock, .events = POLLIN };
		for (int ci = 0; ci < MAX_CONN; ci++)
			p[n++] = (struct pollfd){ .fd = N.conn[ci], .events = POLLIN };
		base = n;
		for (size_t i = 0; i < N.nep; i++)
			p[n++] = (struct pollfd){ .fd = N.ep[i].lfd, .events = POLLIN };
		if (poll(p, n, -1) == -1) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			return NULL;
		}
		if (p[0].revents)
			return NULL;
		/* Endpoints first: the indices move when messages drop some. */
		for (size_t i = N.nep; i-- > 0; )
			if (p[base + i].revents)
				ep_accept(i);
		for (int ci = 0; ci < MAX_CONN; ci++)
			if (N.conn[ci] != -1 && p[2 + ci].revents)
				conn_read(ci);
		if (p[1].revents)
			conn_accept();
	}
}

int
netep_start(const char *run_dir, grpc_server *server)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int rc;

	for (int ci = 0; ci < MAX_CONN; ci++)
		N.conn[ci] = -1;
	N.server = server;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", run_dir,
	    NETEP_SOCK) >= sizeof(sun.sun_path)) {
		log_warnx("%s/%s: path too long", run_dir, NETEP_SOCK);
		return -1;
	}
	(void)unlink(sun.sun_path);
	if ((N.sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1 || bind(N.sock, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(sun.sun_path, 0600) == -1 || listen(N.sock, 8) == -1) {
		log_warn("unable to bind %s", sun.sun_path);
		return -1;
	}
	if ((N.stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
		log_warn("eventfd");
		return -1;
	}
	if ((rc = light_thread(&N.th, netep_main, NULL)) != 0) {
		log_warnx("unable to start the task endpoint thread: %s", strerror(rc));
		return -1;
	}
	N.started = true;
	return 0;
}

void
netep_stop(void)
{
	uint64_t one = 1;

	if (N.started) {
		if (write(N.stopfd, &one, sizeof(one)) != sizeof(one))
			log_warn("unable to stop the task endpoint thread");
		pthread_join(N.th, NULL);
		N.started = false;
	}
	while (N.nep > 0)
		ep_drop(N.nep - 1);
	for (int ci = 0; ci < MAX_CONN; ci++)
		if (N.conn[ci] != -1) {
			close(N.conn[ci]);
			N.conn[ci] = -1;
		}
	if (N.sock != -1)
		close(N.sock);
	if (N.stopfd != -1)
		close(N.stopfd);
	N.sock = N.stopfd = -1;
	free(N.peers);
	N.peers = NULL;
	N.npeers = 0;
}
