/* heartbeat: one SetSystemSummaryRequest per mqtt.ping_interval, from
 * res's Snapshot. The main loop asks res itself, on a DEALER socket of its
 * own that it polls with the others: no worker thread and no event queue
 * between the tick and paho (issue 14: each hand-off is a wake-up and a
 * few context switches, every second). The socket stays connected from
 * one heartbeat to the next; one that timed out is closed, so that a late
 * answer never passes for the next one. A missed heartbeat is not worth
 * keeping: nothing here retries. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include <zmq.h>

#include "common/informations.pb-c.h"

#include "log.h"

#include "beat.h"

/* A Snapshot is a few hundred bytes; anything near this is not one. */
#define SNAPSHOT_MAX (1024 * 1024)

static void
close_socket(struct beat *b)
{
	if (b->snap_sock != NULL)
		zmq_close(b->snap_sock);
	b->snap_sock = NULL;
}

static void *
open_socket(const struct beat *b)
{
	char ep[256];
	int64_t max = SNAPSHOT_MAX;
	int linger = 0;
	void *s;

	if (ipc_endpoint(ep, sizeof(ep), b->cfg->run_dir, IPC_RES) == -1 ||
	    (s = zmq_socket(ipc_context(), ZMQ_DEALER)) == NULL)
		return NULL;
	if (zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max)) == -1 ||
	    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger)) == -1 ||
	    zmq_connect(s, ep) == -1) {
		zmq_close(s);
		return NULL;
	}
	return s;
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
	if (request_bytes(&req, &len) == -1 ||
	    (b->snap_sock == NULL && (b->snap_sock = open_socket(b)) == NULL)) {
		log_warnx("unable to ask %s for a snapshot: %s", IPC_RES,
		    zmq_strerror(errno));
		return -1;
	}
	if (zmq_send(b->snap_sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1 ||
	    zmq_send(b->snap_sock, req, len, ZMQ_DONTWAIT) == -1) {
		log_debug("unable to ask %s for a snapshot: %s", IPC_RES,
		    zmq_strerror(errno));
		close_socket(b);
		return -1;
	}
	b->beat_pending = true;
	b->beat_t0_us = hist_now_us();
	b->snap_deadline = now + CALL_SNAPSHOT_MS;
	return 0;
}

void *
heartbeat_socket(const struct beat *b)
{
	return b->beat_pending ? b->snap_sock : NULL;
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

/* The answer: an empty delimiter, then the Msg. 1 with *out set to a
 * Snapshot with metrics, 0 when nothing is there yet, -1 for anything
 * else (logged). */
static int
receive(struct beat *b, ipc_msg **out)
{
	zmq_msg_t part[2];
	ipc_msg *m = NULL;
	char err[256];
	int n = 0, more = 1;
	size_t sz = sizeof(more);

	*out = NULL;
	zmq_msg_init(&part[0]);
	zmq_msg_init(&part[1]);
	while (more && n < 2 && zmq_msg_recv(&part[n], b->snap_sock, ZMQ_DONTWAIT) != -1) {
		n++;
		if (zmq_getsockopt(b->snap_sock, ZMQ_RCVMORE, &more, &sz) == -1)
			more = 0;
	}
	if (n == 0 && errno == EAGAIN) {
		zmq_msg_close(&part[0]);
		zmq_msg_close(&part[1]);
		return 0;
	}
	if (n == 2 && !more && zmq_msg_size(&part[0]) == 0)
		m = ipc_msg_decode(zmq_msg_data(&part[1]), zmq_msg_size(&part[1]),
		    err, sizeof(err));
	else
		snprintf(err, sizeof(err), "not one answer");
	zmq_msg_close(&part[0]);
	zmq_msg_close(&part[1]);
	if (m == NULL) {
		log_warnx("bad answer from %s: %s", IPC_RES, err);
		close_socket(b);	/* whatever is left of it goes too */
	} else if (m->body_case != MANTA__IPC__MSG__BODY_SNAPSHOT ||
	    m->snapshot->metrics == NULL) {
		log_debug("%s sent no metrics: skipping this heartbeat", IPC_RES);
		ipc_msg_free(m);
		m = NULL;
	}
	*out = m;
	return m != NULL ? 1 : -1;
}

void
heartbeat_answer(struct beat *b)
{
	ipc_msg *m;
	int rc;

	if (!b->beat_pending || b->snap_sock == NULL ||
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
