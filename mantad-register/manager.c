/* manager: a small client of the manager's node.node_service.Node on
 * libgrpc's core C API. One channel, one completion queue, one unary call at
 * a time, from the link thread only (mgr_cancel excepted). Each call has
 * the JWT as `authorization` metadata and a deadline; messages are packed
 * and unpacked with protobuf-c. The channel and its credentials are
 * libcommon's mgrconn, shared with mantad-light.
 *
 * A connectivity watch on the same queue counts the times the channel left
 * READY: a manager that restarts between two probes answers the next probe
 * as if nothing happened, but it cost us the connection, and it no longer
 * knows the node (mgr_losses). */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "log.h"
#include "mgrconn.h"
#include "secret.h"
#include "tlsprobe.h"
#include "register.h"

struct mgr {
	struct mgrconn mc;
	grpc_completion_queue *cq;
	/* for the words of a failed handshake (status_text) */
	const unsigned char *skey;	/* the cfg's secret key, for the probe */
	/* security.daemon_user: cert_folder's files read before the switch,
	 * "/proc/self/fd/N" each (mgr_hold_tls), "" when absent */
	bool held;
	int held_fd[3];
	char held_path[3][32];
	char *host;
	int port;
	pthread_mutex_t lock;	/* guards inflight and cancelled */
	grpc_call *inflight;
	bool cancelled;
	/* the link thread's own */
	grpc_connectivity_state watched;
	bool watching;
	unsigned long losses;
	int watch_tag;
};

#define WATCH_MS	(3600 * 1000)

/* The words for a failed call. libgrpc says "Ssl handshake failed: ...
 * certificate verify failed" whatever was wrong with the manager's
 * certificate, and "Socket closed" when the manager refused ours: one
 * handshake of our own (tlsprobe.h) says what. */
static void
status_text(const struct mgr *m, const char *d, int status, char *err, size_t errlen)
{
	char why[400], ca[PATH_MAX], crt[PATH_MAX], key[PATH_MAX];
	struct tls_probe p = { .peer = "manager", .host = m->host, .port = m->port,
	    .cert_name = "node.crt", .alpn = "h2", .verify = m->mc.tls.verify,
	    .timeout_ms = TLS_PROBE_MS };

	if (m->mc.tls.on && (strstr(d, "Ssl handshake failed") != NULL ||
	    strstr(d, "Peer name ") != NULL || strstr(d, "Socket closed") != NULL)) {
		if (m->held) {
			/* cert_folder is not ours to read any more */
			p.ca_file = m->held_path[0][0] ? m->held_path[0] :
			    getenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH");
			if (m->held_path[1][0]) {
				p.cert_file = m->held_path[1];
				p.key_file = m->held_path[2];
			}
		} else if (m->mc.tls.has_ca) {
			snprintf(ca, sizeof(ca), "%s/ca.crt", m->mc.tls.dir);
			p.ca_file = ca;
		} else	/* libgrpc's roots, if it is told where they are */
			p.ca_file = getenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH");
		if (!m->held && m->mc.tls.client_cert) {
			snprintf(crt, sizeof(crt), "%s/node.crt", m->mc.tls.dir);
			snprintf(key, sizeof(key), "%s/node.key%s", m->mc.tls.dir,
			    m->mc.tls.key_sealed ? SECRET_SUFFIX : "");
			p.cert_file = crt;
			p.key_file = key;
			p.sbox_key = m->skey;
		}
		if (tls_probe(&p, why, sizeof(why)) == 1) {
			snprintf(err, errlen, "TLS: %s (status %d)", why, status);
			return;
		}
	}
	snprintf(err, errlen, "%s (status %d)", d[0] ? d : "call failed", status);
}

static void
grpc_log(gpr_log_func_args *a)
{
	if (a->severity == GPR_LOG_SEVERITY_ERROR)
		log_debug("grpc: %s", a->message);
	else
		log_debug("grpc: %s:%d: %s", a->file, a->line, a->message);
}

void
mgr_init(void)
{
	gpr_set_log_function(grpc_log);
	grpc_init();
}

static void
watch(struct mgr *m)
{
	m->watched = grpc_channel_check_connectivity_state(m->mc.ch, 0);
	grpc_channel_watch_connectivity_state(m->mc.ch, m->watched,
	    gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	    gpr_time_from_millis(WATCH_MS, GPR_TIMESPAN)), m->cq, &m->watch_tag);
	m->watching = true;
}

/* The watch fired: the state changed (success) or the watch expired. */
static void
watch_event(struct mgr *m, int success)
{
	bool stopping;

	m->watching = false;
	if (success && m->watched == GRPC_CHANNEL_READY) {
		m->losses++;
		log_debug("the connection to the manager closed");
	}
	pthread_mutex_lock(&m->lock);
	stopping = m->cancelled;
	pthread_mutex_unlock(&m->lock);
	if (!stopping)
		watch(m);
}

unsigned long
mgr_losses(struct mgr *m)
{
	grpc_event ev;

	/* Take the watch events already queued, without waiting. */
	for (;;) {
		ev = grpc_completion_queue_next(m->cq, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		if (ev.tag == &m->watch_tag)
			watch_event(m, ev.success);
	}
	return m->losses;
}

struct mgr *
mgr_open(const struct manta_cfg *c)
{
	/* We keep our own, slower, retry schedule. One connection attempt
	 * may take 20 s: at 500 ms a TLS handshake over a slow link (or under
	 * valgrind) never completed. */
	const struct mgrconn_opts o = { .prog = PROG, .connect_ms = 20000, .announce = true };
	struct mgr *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	for (int i = 0; i < 3; i++)
		m->held_fd[i] = -1;
	if ((m->host = strdup(c->manager_host)) == NULL)
		goto fail;
	m->port = c->manager_port;
	m->skey = c->secret_key;
	if (mgrconn_open(&m->mc, c, &o) == -1)
		goto fail;
	if ((m->cq = grpc_completion_queue_create_for_next(NULL)) == NULL)
		goto fail;
	watch(m);
	return m;
fail:
	mgr_close(m);
	return NULL;
}

void
mgr_close(struct mgr *m)
{
	if (m == NULL)
		return;
	m->cancelled = true;	/* no new watch */
	/* Destroying the channel ends the watch; then the queue drains. */
	mgrconn_close(&m->mc);
	if (m->cq != NULL) {
		grpc_completion_queue_shutdown(m->cq);
		while (grpc_completion_queue_next(m->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
		    NULL).type != GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(m->cq);
	}
	pthread_mutex_destroy(&m->lock);
	for (int i = 0; i < 3; i++)
		if (m->held_fd[i] != -1)
			close(m->held_fd[i]);
	free(m->host);
	free(m);
}

/* One of cert_folder's files into a memfd: 0444, since it is made by uid 0
 * and opened by path after the switch; only /proc/<pid>/fd reaches it,
 * which takes ptrace access to a process no longer dumpable. */
static int
hold_file(struct mgr *m, int i, const char *name, const unsigned char *skey)
{
	char path[PATH_MAX], why[700];

	snprintf(path, sizeof(path), "%s/%s", m->mc.tls.dir, name);
	if ((m->held_fd[i] = secret_file_memfd(skey, path, 0444, m->held_path[i],
	    sizeof(m->held_path[i]), NULL, why, sizeof(why))) == -1) {
		log_warnx("unable to read %s: %s", path, why);
		return -1;
	}
	return 0;
}

int
mgr_hold_tls(struct mgr *m)
{
	m->held = true;
	if (!m->mc.tls.on || m->mc.tls.dir == NULL)
		return 0;
	if (m->mc.tls.has_ca && hold_file(m, 0, "ca.crt", NULL) == -1)
		return -1;
	if (m->mc.tls.client_cert &&
	    (hold_file(m, 1, "node.crt", NULL) == -1 ||
	     hold_file(m, 2, m->mc.tls.key_sealed ? "node.key" SECRET_SUFFIX : "node.key",
	     m->skey) == -1))
		return -1;
	return 0;
}

const char *
mgr_target(const struct mgr *m)
{
	return m->mc.target;
}

void
mgr_cancel(struct mgr *m)
{
	pthread_mutex_lock(&m->lock);
	m->cancelled = true;
	if (m->inflight != NULL)
		grpc_call_cancel(m->inflight, NULL);
	pthread_mutex_unlock(&m->lock);
}

static int
unpack_reply(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *rdesc,
    ProtobufCMessage **resp)
{
	grpc_byte_buffer_reader r;
	grpc_slice all;

	if (!grpc_byte_buffer_reader_init(&r, bb))
		return -1;
	all = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	*resp = protobuf_c_message_unpack(rdesc, NULL, GRPC_SLICE_LENGTH(all),
	    GRPC_SLICE_START_PTR(all));
	grpc_slice_unref(all);
	return *resp == NULL ? -1 : 0;
}

/* Waits for the batch tagged want; the end batch (tagged end) may complete
 * first, when the server ends the call early. ev.success of want, or -1
 * when the queue shut down. */
static int
wait_batch(struct mgr *m, grpc_call *call, void *want, void *end, bool *end_done,
    gpr_timespec deadline)
{
	grpc_event ev;

	for (;;) {
		ev = grpc_completion_queue_next(m->cq, gpr_time_add(deadline,
		    gpr_time_from_millis(5000, GPR_TIMESPAN)), NULL);
		if (ev.type == GRPC_OP_COMPLETE && ev.tag == want)
			return ev.success;
		if (ev.type == GRPC_OP_COMPLETE && ev.tag == end) {
			*end_done = true;
			continue;
		}
		if (ev.type == GRPC_OP_COMPLETE && ev.tag == &m->watch_tag) {
			watch_event(m, ev.success);
			continue;
		}
		if (ev.type == GRPC_QUEUE_TIMEOUT) {
			grpc_call_cancel(call, NULL);
			continue;
		}
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			return -1;
	}
}

static grpc_byte_buffer *
pack_bb(const ProtobufCMessage *msg)
{
	grpc_byte_buffer *bb;
	grpc_slice s;
	size_t len = protobuf_c_message_get_packed_size(msg);

	s = grpc_slice_malloc(len);
	protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

/* A call of method on m's channel, in flight for mgr_cancel: 0 with *callp,
 * or -1 when m is cancelled (shutting down). */
static int
call_open(struct mgr *m, const char *method, gpr_timespec deadline, grpc_call **callp)
{
	grpc_slice msl;

	pthread_mutex_lock(&m->lock);
	if (m->cancelled) {
		pthread_mutex_unlock(&m->lock);
		return -1;
	}
	msl = grpc_slice_from_copied_string(method);
	*callp = grpc_channel_create_call(m->mc.ch, NULL, GRPC_PROPAGATE_DEFAULTS, m->cq,
	    msl, NULL, deadline, NULL);
	grpc_slice_unref(msl);
	m->inflight = *callp;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* One batch per message, each awaited before the next, the last one
 * half-closing; no message at all is one batch that only half-closes.
 * Stops when the server ends the call first (*end_done). 1 when all went,
 * 0 when a send failed, -1 when the queue shut down. */
static int
send_all(struct mgr *m, grpc_call *call, const ProtobufCMessage *const *reqs, size_t n,
    void *end_tag, bool *end_done, gpr_timespec deadline)
{
	grpc_op ops[6];
	size_t nops;
	int send_tag = 0, ok = 1;

	for (size_t i = 0; i < (n > 0 ? n : 1) && ok == 1 && !*end_done; i++) {
		grpc_byte_buffer *bb = i < n ? pack_bb(reqs[i]) : NULL;

		nops = mgrconn_ops_send(ops, NULL, bb, i + 1 >= n);
		if (grpc_call_start_batch(call, ops, nops, &send_tag, NULL) != GRPC_CALL_OK) {
			grpc_call_cancel(call, NULL);
			ok = 0;
		} else
			ok = wait_batch(m, call, &send_tag, end_tag, end_done, deadline);
		if (bb != NULL)
			grpc_byte_buffer_destroy(bb);
	}
	return ok;
}

/* What an ended call gave: 0 with *resp, the gRPC status code, or -1 when
 * the answer does not decode; err says which. */
static int
call_result(struct mgr *m, const struct mgrconn_reply *rep,
    const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp, char *err,
    size_t errlen)
{
	if (rep->status != GRPC_STATUS_OK) {
		char *d = grpc_slice_to_c_string(rep->details);

		status_text(m, d, (int)rep->status, err, errlen);
		gpr_free(d);
		return (int)rep->status;
	}
	if (rep->msg == NULL || unpack_reply(rep->msg, rdesc, resp) == -1) {
		snprintf(err, errlen, "undecodable %s in the answer", rdesc->name);
		return -1;
	}
	snprintf(err, errlen, "ok");
	return 0;
}

/* One batch that lasts the whole call (initial metadata out; everything
 * the server sends back), then one batch per message, each awaited before
 * the next (one send at a time), the last one half-closing. */
int
mgr_call_stream(struct mgr *m, const char *method,
    const ProtobufCMessage *const *reqs, size_t n,
    const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp,
    int timeout_ms, char *err, size_t errlen)
{
	struct mgrconn_reply rep;
	grpc_op ops[6];
	grpc_call *call;
	grpc_call_error ce;
	gpr_timespec deadline;
	bool end_done = false;
	size_t nops;
	int rc = -1, end_tag = 0, ok;

	*resp = NULL;
	snprintf(err, errlen, "no answer");
	deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	    gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
	if (call_open(m, method, deadline, &call) == -1) {
		snprintf(err, errlen, "shutting down");
		return -1;
	}
	mgrconn_reply_init(&rep);
	nops = mgrconn_ops_send(ops, &m->mc.auth, NULL, false);
	nops += mgrconn_ops_recv(ops + nops, &rep, MGRCONN_RECV_ALL);
	if ((ce = grpc_call_start_batch(call, ops, nops, &end_tag, NULL)) != GRPC_CALL_OK) {
		snprintf(err, errlen, "unable to start the call (error %d%s)", (int)ce,
		    ce == GRPC_CALL_ERROR_INVALID_METADATA ?
		    ": identity.secured_token is not a valid header value" : "");
		goto out;
	}
	ok = send_all(m, call, reqs, n, &end_tag, &end_done, deadline);
	/* A failed send means the call is ending: its status says why. */
	if (ok == -1 || (!end_done && wait_batch(m, call, &end_tag, NULL, &end_done,
	    deadline) == -1)) {
		snprintf(err, errlen, "completion queue shut down");
		goto out;
	}
	rc = call_result(m, &rep, rdesc, resp, err, errlen);
out:
	pthread_mutex_lock(&m->lock);
	m->inflight = NULL;
	grpc_call_unref(call);
	pthread_mutex_unlock(&m->lock);
	mgrconn_reply_free(&rep);
	return rc;
}

/* A unary call is a client stream of one message, on the wire too. */
int
mgr_call(struct mgr *m, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp,
    int timeout_ms, char *err, size_t errlen)
{
	return mgr_call_stream(m, method, &req, 1, rdesc, resp, timeout_ms, err, errlen);
}
