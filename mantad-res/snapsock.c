/* snapsock: mantad-beat's own way to the heartbeat's Snapshot (issue 14).
 *
 * A request over the ZeroMQ endpoint wakes, besides the two threads that
 * do the work, each daemon's ZeroMQ I/O thread once each way: at
 * mqtt.ping_interval 1 those four wake-ups were a fifth of a heartbeat's
 * CPU. This is a SOCK_SEQPACKET unix socket beside the endpoint,
 * "<run_dir>/res-snap.sock", served by the main loop itself: one packet
 * in (a packed Msg holding a SnapshotRequest), one packet out (a packed
 * Msg holding the Snapshot, or a Reply with an error). The Snapshot holds
 * what a heartbeat carries, its MetricsSnapshot, and nothing else is read
 * for it: no disks, network or GPUs (CapacityRequest and the endpoint's
 * SnapshotRequest have those).
 *
 * The policy is the endpoint's for a SnapshotRequest: the connecting
 * process (SO_PEERCRED, recorded by the kernel at connect) must be uid 0,
 * the run dir's owner or security.daemon_user (ipc_caller_kind); the
 * socket file gets the endpoint's mode; every packet is decoded and
 * validated (ipc_msg_decode) and anything but a SnapshotRequest, or a
 * packet too long for one, closes the connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <zmq.h>

#include "ipc.h"
#include "log.h"
#include "res.h"

/* A SnapshotRequest is a few bytes. */
#define REQ_MAX 256

static void
drop_client(struct snapsock *ss, size_t i)
{
	close(ss->cfd[i]);
	ss->cfd[i] = -1;
}

int
snapsock_open(struct snapsock *ss, const char *run_dir)
{
	struct sockaddr_un sa;
	struct stat st;

	memset(ss, 0, sizeof(*ss));
	for (size_t i = 0; i < SNAPSOCK_CLIENTS; i++)
		ss->cfd[i] = -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", run_dir,
	    SNAPSOCK_NAME) >= (int)sizeof(sa.sun_path)) {
		log_warnx("run dir path too long for a unix socket: %s", run_dir);
		return -1;
	}
	snprintf(ss->path, sizeof(ss->path), "%s", sa.sun_path);
	ss->owner = stat(run_dir, &st) == 0 ? st.st_uid : geteuid();
	ss->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ss->lfd == -1) {
		log_warn("unable to create %s", ss->path);
		return -1;
	}
	/* A stale file from a killed predecessor: the daemon's lock, taken
	 * first, guarantees no live owner. */
	(void)unlink(ss->path);
	if (bind(ss->lfd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    listen(ss->lfd, SNAPSOCK_CLIENTS) == -1) {
		log_warn("unable to bind %s", ss->path);
		close(ss->lfd);
		return -1;
	}
	ss->open = 1;
	/* As the endpoint (ipc_server_open): group-writable in a run dir
	 * shared with the daemon group, connect(2) needing write permission. */
	(void)chmod(ss->path, stat(run_dir, &st) == 0 && (st.st_mode & S_IXGRP) ? 0660 : 0600);
	return 0;
}

void
snapsock_close(struct snapsock *ss)
{
	if (!ss->open)
		return;
	for (size_t i = 0; i < SNAPSOCK_CLIENTS; i++)
		if (ss->cfd[i] != -1)
			drop_client(ss, i);
	close(ss->lfd);
	(void)unlink(ss->path);
	ss->open = 0;
}

size_t
snapsock_pollitems(const struct snapsock *ss, zmq_pollitem_t *items)
{
	size_t n = 0;

	if (!ss->open)
		return 0;
	items[n++] = (zmq_pollitem_t){ NULL, ss->lfd, ZMQ_POLLIN, 0 };
	for (size_t i = 0; i < SNAPSOCK_CLIENTS; i++)
		if (ss->cfd[i] != -1)
			items[n++] = (zmq_pollitem_t){ NULL, ss->cfd[i], ZMQ_POLLIN, 0 };
	return n;
}

/* A caller the endpoint would let ask for a Snapshot, or none. */
static void
accept_one(struct snapsock *ss)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	size_t i;
	int fd;

	if ((fd = accept4(ss->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == -1 ||
	    !(ipc_caller_kind(cr.uid, ss->owner) & (IPC_FROM_OWNER | IPC_FROM_DAEMON))) {
		log_warnx("%s: refused a caller of uid %d", ss->path,
		    len == sizeof(cr) ? (int)cr.uid : -1);
		close(fd);
		return;
	}
	for (i = 0; i < SNAPSOCK_CLIENTS && ss->cfd[i] != -1; i++)
		;
	if (i == SNAPSOCK_CLIENTS) {
		log_warnx("%s: more than %d callers at once: refused one", ss->path,
		    SNAPSOCK_CLIENTS);
		close(fd);
		return;
	}
	ss->cfd[i] = fd;
}

/* The answer, packed into a buffer kept from one to the next. */
static int
send_msg(void *arg, const ipc_msg *m)
{
	static uint8_t *buf;
	static size_t cap;
	int fd = *(int *)arg;
	size_t len = manta__ipc__msg__get_packed_size(m);

	if (len > cap) {
		uint8_t *p = realloc(buf, len);

		if (p == NULL)
			return -1;
		buf = p;
		cap = len;
	}
	len = manta__ipc__msg__pack(m, buf);
	return send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

static int
send_error(int fd, const char *why)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__Reply rep = MANTA__IPC__REPLY__INIT;

	rep.code = 1;
	rep.error = (char *)why;
	m.body_case = MANTA__IPC__MSG__BODY_REPLY;
	m.reply = &rep;
	return send_msg(&fd, &m);
}

/* One request from client i: answered, or the connection closed. */
static void
serve_one(struct snapsock *ss, struct res *r, size_t i)
{
	uint8_t req[REQ_MAX];
	char err[128];
	ipc_msg *m;
	ssize_t n;
	int fd = ss->cfd[i], rc;

	n = recv(fd, req, sizeof(req), MSG_DONTWAIT | MSG_TRUNC);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 || (size_t)n > sizeof(req)) {
		if (n > 0)
			log_warnx("%s: a request of %zd bytes: closed", ss->path, n);
		drop_client(ss, i);	/* gone, or not a SnapshotRequest */
		return;
	}
	if ((m = ipc_msg_decode(req, (size_t)n, err, sizeof(err))) == NULL ||
	    m->body_case != MANTA__IPC__MSG__BODY_SNAPSHOT_REQ) {
		log_warnx("%s: %s: closed", ss->path, m == NULL ? err :
		    "not a SnapshotRequest");
		if (m != NULL)
			ipc_msg_free(m);
		drop_client(ss, i);
		return;
	}
	ipc_msg_free(m);
	/* The heartbeat's: its MetricsSnapshot alone. */
	if ((rc = snapshot_build(r, 0, send_msg, &fd)) == SNAPSHOT_UNREAD)
		rc = send_error(fd, "unable to read /proc");
	if (rc == -1)
		drop_client(ss, i);
}

void
snapsock_handle(struct snapsock *ss, struct res *r, const zmq_pollitem_t *items,
    size_t n)
{
	for (size_t k = 0; k < n; k++) {
		if (!(items[k].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
			continue;
		if (items[k].fd == ss->lfd) {
			accept_one(ss);
			continue;
		}
		for (size_t i = 0; i < SNAPSOCK_CLIENTS; i++)
			if (ss->cfd[i] == items[k].fd) {
				serve_one(ss, r, i);
				break;
			}
	}
}
