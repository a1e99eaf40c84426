/* heartbeat: one SetSystemSummaryRequest per mqtt.ping_interval, from
 * res's Snapshot. The main loop asks res itself, on res's snapshot socket
 * (mantad-res/snapsock.c: SOCK_SEQPACKET, a packed Msg each way), which it
 * polls with the others: no worker thread, no event queue and no ZeroMQ
 * I/O thread between the tick and paho (issue 14: each hand-off is a
 * wake-up and a few context switches, every second). The connection stays
 * open from one heartbeat to the next; one that timed out is closed, so
 * that a late answer never passes for the next one. A missed heartbeat is
 * not worth keeping: nothing here retries. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>


#include "common/informations.pb-c.h"

#include "log.h"

#include "beat.h"

/* mantad-res's socket (mantad-res/snapsock.c). */
#define SNAP_SOCK "res-snap.sock"
/* A Snapshot is a few hundred bytes, some more per CPU; a packet longer
 * than this is refused. */
#define SNAPSHOT_MAX (256 * 1024)

static void
close_socket(struct beat *b)
{
	if (b->snap_fd != -1)
		close(b->snap_fd);
	b->snap_fd = -1;
}

static int
open_socket(const struct beat *b)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", b->cfg->run_dir,
	    SNAP_SOCK) >= (int)sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* The request, packed once: it never changes. */
static uint8_t *snap_req;
static size_t snap_reqlen;

static int
request_bytes(uint8_t **buf, size_t *len)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__SnapshotRequest sr = MANTA__IPC__SNAPSHOT_REQUEST__INIT;

	if (snap_req == NULL) {
		/* res keeps its last sample current (mqtt.ping_interval is
		 * about a second); a fresh one would cost a sampling
		 * interval here. */
		sr.fresh = false;
		m.body_case = MANTA__IPC__MSG__BODY_SNAPSHOT_REQ;
		m.snapshot_req = &sr;
		if (ipc_msg_encode(&m, &snap_req, &snap_reqlen) == -1)
			return -1;
	}
	*buf = snap_req;
	*len = snap_reqlen;
	return 0;
}

int
heartbeat_ask(struct beat *b, long long now)
{
	uint8_t *req;
	size_t len;

	if (b->beat_pending)
		return 0;
	if (request_bytes(&req, &len) == -1) {
		log_warnx("unable to ask %s for a snapshot: out of memory", IPC_RES);
		return -1;
	}
	/* A connection res closed since (a restart) gets one new try; res
	 * not there (yet, or restarting): skipped, as a late answer. */
	for (int fresh = b->snap_fd == -1;; fresh = 1) {
		if (b->snap_fd == -1 && (b->snap_fd = open_socket(b)) == -1) {
			log_debug("no snapshot from %s: %s: skipping this heartbeat",
			    IPC_RES, strerror(errno));
			return -1;
		}
		if (send(b->snap_fd, req, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len)
			break;
		log_debug("unable to ask %s for a snapshot: %s%s", IPC_RES,
		    strerror(errno), fresh ? ": skipping this heartbeat" : "");
		close_socket(b);
		if (fresh)
			return -1;
	}
	b->beat_pending = true;
	b->beat_t0_us = hist_now_us();
	b->snap_deadline = now + CALL_SNAPSHOT_MS;
	return 0;
}

int
heartbeat_fd(const struct beat *b)
{
	return b->beat_pending ? b->snap_fd : -1;
}

/* Packs the heartbeat into b's buffer, grown as needed: its length, or 0. */
static size_t
pack(struct beat *b, const Manta__Ipc__Snapshot *snap)
{
	Common__Informations__SetSystemSummaryRequest sum =
	    COMMON__INFORMATIONS__SET_SYSTEM_SUMMARY_REQUEST__INIT;
	Common__System__PairId pair = COMMON__SYSTEM__PAIR_ID__INIT;
	size_t len;

	id_to_pair(b->node_id, &pair);
	sum.node_id = &pair;
	sum.metrics_snapshot = snap->metrics;
	len = common__informations__set_system_summary_request__get_packed_size(&sum);
	if (len > b->hb_cap) {
		uint8_t *p = realloc(b->hb_buf, len);

		if (p == NULL) {
			log_warnx("unable to build a heartbeat: out of memory");
			return 0;
		}
		b->hb_buf = p;
		b->hb_cap = len;
	}
	return common__informations__set_system_summary_request__pack(&sum, b->hb_buf);
}

static void
publish(struct beat *b, const Manta__Ipc__Snapshot *snap)
{
	size_t len;

	if (b->state != CONN_CONNECTED || b->stopping || (len = pack(b, snap)) == 0)
		return;
	if (mq_publish(b->mq, TOPIC_SUMMARY, b->hb_buf, len, 0, false, 0) !=
	    MQ_PUB_SENT)
		return;
	b->heartbeats++;
	hist_observe(&b->beat_latency, hist_now_us() - b->beat_t0_us);
	log_debug("heartbeat %" PRIu64 " (%zu bytes)", b->heartbeats, len);
}

/* The answer: one packet holding a Msg. 1 with *out set to a Snapshot
 * with metrics, 0 when nothing is there yet, -1 for anything else (logged
 * when it is not res gone or refusing). */
static int
receive(struct beat *b, ipc_msg **out)
{
	static uint8_t buf[SNAPSHOT_MAX];
	ipc_msg *m;
	char err[256];
	ssize_t n;

	*out = NULL;
	n = recv(b->snap_fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		/* res went away (a restart): connect again next time */
		log_debug("no snapshot from %s: %s: skipping this heartbeat", IPC_RES,
		    n == 0 ? "connection closed" : strerror(errno));
		close_socket(b);
		return -1;
	}
	if ((size_t)n > sizeof(buf))
		snprintf(err, sizeof(err), "%zd bytes", n);
	if ((size_t)n > sizeof(buf) ||
	    (m = ipc_msg_decode(buf, (size_t)n, err, sizeof(err))) == NULL) {
		log_warnx("bad answer from %s: %s", IPC_RES, err);
		close_socket(b);
		return -1;
	}
	if (m->body_case != MANTA__IPC__MSG__BODY_SNAPSHOT ||
	    m->snapshot->metrics == NULL) {
		log_debug("%s sent no metrics: skipping this heartbeat", IPC_RES);
		ipc_msg_free(m);
		return -1;
	}
	*out = m;
	return 1;
}

void
heartbeat_answer(struct beat *b)
{
	ipc_msg *m;
	int rc;

	if (!b->beat_pending || b->snap_fd == -1 ||
	    (rc = receive(b, &m)) == 0)
		return;
	b->beat_pending = false;
	if (rc == 1) {
		publish(b, m->snapshot);
		ipc_msg_free(m);
	}
}

void
heartbeat_timers(struct beat *b, long long now)
{
	if (!b->beat_pending || now < b->snap_deadline)
		return;
	log_debug("no snapshot from %s: skipping this heartbeat", IPC_RES);
	b->beat_pending = false;
	close_socket(b);
}

void
heartbeat_close(struct beat *b)
{
	close_socket(b);
	b->beat_pending = false;
	free(b->hb_buf);
	b->hb_buf = NULL;
	b->hb_cap = 0;
	free(snap_req);
	snap_req = NULL;
}
