/* manager: a small client of the manager's node.node_service.Node on
 * libgrpc's core C API. One channel, one completion queue, one unary call at
 * a time, from the link thread only (mgr_cancel excepted). Each call is one
 * batch of the six client ops with the JWT as `authorization` metadata and
 * a deadline; messages are packed and unpacked with protobuf-c.
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

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "log.h"
#include "secret.h"
#include "tlsprobe.h"
#include "register.h"

struct mgr {
	grpc_channel *ch;
	grpc_completion_queue *cq;
	char *target;
	char *token;
	/* for the words of a failed handshake (status_text) */
	bool tls, verify, has_ca, client_cert;
	bool key_sealed;		/* node.key.sbox rather than node.key */
	const unsigned char *skey;	/* the cfg's secret key, for the probe */
	char *host, *dir;
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

static char *
slurp(const char *dir, const char *name)
{
	char *path, *buf = NULL;
	long len;
	FILE *f;

	if ((path = path_join(dir, name)) == NULL)
		return NULL;
	if ((f = fopen(path, "re")) == NULL)
		goto out;
	if (fseek(f, 0, SEEK_END) == -1 || (len = ftell(f)) < 0 || len > (1 << 20) ||
	    fseek(f, 0, SEEK_SET) == -1 || (buf = calloc(1, (size_t)len + 1)) == NULL ||
	    fread(buf, 1, (size_t)len, f) != (size_t)len) {
		log_warn("unable to read %s", path);
		free(buf);
		buf = NULL;
	}
	fclose(f);
out:
	free(path);
	return buf;
}

static char *
expand_home(const char *p)
{
	const char *home = getenv("HOME");

	if (p[0] == '~' && (p[1] == '/' || p[1] == '\0') && home != NULL)
		return path_join(home, p[1] ? p + 2 : "");
	return strdup(p);
}

/* node.key.sbox (opened with the cfg's key: cfg_load checked it opens) or
 * node.key, into locked memory that secret_free wipes; NULL when neither. */
static char *
read_key(const struct manta_cfg *c, struct mgr *m, const char *dir)
{
	char path[PATH_MAX], why[700], *pem;
	int r = secret_pick(dir, "node.key", path, sizeof(path));

	if (r == -1)
		return NULL;
	m->key_sealed = r == 1;
	m->skey = c->secret_key;
	if ((pem = secret_file_read(c->secret_key, path, NULL, why, sizeof(why))) == NULL)
		log_warnx("unable to read the client key: %s", why);
	return pem;
}

/* TLS to the manager (WIRE.md section 2, INTERFACE.md): with use_tls the
 * files of cert_folder (ca.crt, else the system roots; node.crt + node.key
 * for mutual TLS when both exist); with port 443 alone the system roots. */
static grpc_channel_credentials *
make_creds(const struct manta_cfg *c, struct mgr *m)
{
	grpc_channel_credentials *creds = NULL;
	char *dir = NULL, *ca = NULL, *crt = NULL, *key = NULL;

	if (!c->use_tls && c->manager_port != 443)
		return grpc_insecure_credentials_create();
	m->tls = true;
	if (c->use_tls && c->cert_folder != NULL) {
		if ((dir = expand_home(c->cert_folder)) == NULL)
			return NULL;
		ca = slurp(dir, "ca.crt");
		crt = slurp(dir, "node.crt");
		key = read_key(c, m, dir);
		if ((crt == NULL) != (key == NULL))
			log_warnx("only one of node.crt and node.key in %s; no client certificate",
			    dir);
		if (crt == NULL || key == NULL) {
			free(crt);
			secret_free(key);
			crt = key = NULL;
		}
		log_info("TLS to the manager: %s, %s%s", ca ? "CA from ca.crt" :
		    "system CA roots", crt ? "client certificate node.crt" :
		    "no client certificate (no node.crt and node.key)",
		    crt && m->key_sealed ? " (key sealed in node.key.sbox)" : "");
	}
	m->has_ca = ca != NULL;
	m->client_cert = crt != NULL;
	m->verify = c->verify_ssl || !c->use_tls;
	if (c->use_tls && !c->verify_ssl) {
		/* The TLS credentials API can skip verification; the SSL one
		 * cannot. Like verify=False in the reference: say so loudly. */
		grpc_tls_credentials_options *o = grpc_tls_credentials_options_create();
		grpc_tls_identity_pairs *pairs = NULL;
		grpc_tls_certificate_provider *prov;
		grpc_tls_certificate_verifier *ver;

		log_warnx("security.verify_ssl = false: the manager's certificate is not checked");
		if (crt != NULL) {
			pairs = grpc_tls_identity_pairs_create();
			grpc_tls_identity_pairs_add_pair(pairs, key, crt);
		}
		/* A provider needs something to provide: without ca.crt and
		 * a client pair the system roots are used. */
		if (ca != NULL || pairs != NULL) {
			prov = grpc_tls_certificate_provider_static_data_create(ca, pairs);
			grpc_tls_credentials_options_set_certificate_provider(o, prov);
			if (ca != NULL)
				grpc_tls_credentials_options_watch_root_certs(o);
			if (pairs != NULL)
				grpc_tls_credentials_options_watch_identity_key_cert_pairs(o);
			grpc_tls_certificate_provider_release(prov);
		}
		grpc_tls_credentials_options_set_verify_server_cert(o, 0);
		grpc_tls_credentials_options_set_check_call_host(o, 0);
		ver = grpc_tls_certificate_verifier_no_op_create();
		grpc_tls_credentials_options_set_certificate_verifier(o, ver);
		creds = grpc_tls_credentials_create(o);
		grpc_tls_certificate_verifier_release(ver);
	} else {
		grpc_ssl_pem_key_cert_pair pair = { key, crt };

		creds = grpc_ssl_credentials_create(ca, crt ? &pair : NULL, NULL, NULL);
	}
	m->dir = dir;
	free(ca);
	free(crt);
	secret_free(key);	/* libgrpc keeps its own copy */
	return creds;
}

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
	    .cert_name = "node.crt", .alpn = "h2", .verify = m->verify,
	    .timeout_ms = TLS_PROBE_MS };

	if (m->tls && (strstr(d, "Ssl handshake failed") != NULL ||
	    strstr(d, "Peer name ") != NULL || strstr(d, "Socket closed") != NULL)) {
		if (m->has_ca) {
			snprintf(ca, sizeof(ca), "%s/ca.crt", m->dir);
			p.ca_file = ca;
		} else	/* libgrpc's roots, if it is told where they are */
			p.ca_file = getenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH");
		if (m->client_cert) {
			snprintf(crt, sizeof(crt), "%s/node.crt", m->dir);
			snprintf(key, sizeof(key), "%s/node.key%s", m->dir,
			    m->key_sealed ? SECRET_SUFFIX : "");
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
	m->watched = grpc_channel_check_connectivity_state(m->ch, 0);
	grpc_channel_watch_connectivity_state(m->ch, m->watched,
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
	/* No message size cap (WIRE.md section 2); keepalive as the reference;
	 * a short reconnect backoff so a manager that comes back is found
	 * within seconds (we keep our own, slower, retry schedule). Despite
	 * its name, MIN_RECONNECT_BACKOFF is how long one connection attempt
	 * (TCP, TLS, HTTP/2 settings) may take: at 500 ms a TLS handshake
	 * over a slow link (or under valgrind) never completed. */
	grpc_arg args[] = {
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = -1 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = -1 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = 30000 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 20000 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, .value.integer = 500 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, .value.integer = 20000 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, .value.integer = 2000 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ENABLE_RETRIES, .value.integer = 0 },
		{ .type = GRPC_ARG_STRING, .key = GRPC_ARG_PRIMARY_USER_AGENT_STRING,
		  .value.string = "manta-node/" PROG },
	};
	grpc_channel_args cargs = { sizeof(args) / sizeof(args[0]), args };
	grpc_channel_credentials *creds;
	struct mgr *m;
	size_t len;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	len = strlen(c->manager_host) + 16;
	if ((m->target = malloc(len)) == NULL || (m->token = strdup(c->secured_token)) == NULL ||
	    (m->host = strdup(c->manager_host)) == NULL)
		goto fail;
	m->port = c->manager_port;
	/* An IPv6 literal needs brackets before the port. */
	if (strchr(c->manager_host, ':') != NULL && c->manager_host[0] != '[')
		snprintf(m->target, len, "[%s]:%d", c->manager_host, c->manager_port);
	else
		snprintf(m->target, len, "%s:%d", c->manager_host, c->manager_port);
	if ((creds = make_creds(c, m)) == NULL) {
		log_warnx("unable to set up credentials for the manager");
		goto fail;
	}
	m->ch = grpc_channel_create(m->target, creds, &cargs);
	grpc_channel_credentials_release(creds);
	m->cq = grpc_completion_queue_create_for_next(NULL);
	if (m->ch == NULL || m->cq == NULL)
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
	if (m->ch != NULL)
		grpc_channel_destroy(m->ch);
	m->ch = NULL;
	if (m->cq != NULL) {
		grpc_completion_queue_shutdown(m->cq);
		while (grpc_completion_queue_next(m->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
		    NULL).type != GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(m->cq);
	}
	pthread_mutex_destroy(&m->lock);
	free(m->target);
	free(m->host);
	free(m->dir);
	if (m->token != NULL)
		explicit_bzero(m->token, strlen(m->token));
	free(m->token);
	free(m);
}

const char *
mgr_target(const struct mgr *m)
{
	return m->target;
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

int
mgr_call(struct mgr *m, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp,
    int timeout_ms, char *err, size_t errlen)
{
	grpc_metadata_array recv_md, trailing_md;
	grpc_byte_buffer *send_bb, *recv_bb = NULL;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice(), payload, msl;
	grpc_metadata auth;
	grpc_op ops[6];
	grpc_call *call;
	grpc_call_error ce;
	grpc_event ev;
	gpr_timespec deadline;
	uint8_t *buf;
	size_t len;
	int rc = -1, tag = 0;

	*resp = NULL;
	snprintf(err, errlen, "no answer");
	len = protobuf_c_message_get_packed_size(req);
	if ((buf = malloc(len ? len : 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	protobuf_c_message_pack(req, buf);
	payload = grpc_slice_from_copied_buffer((const char *)buf, len);
	free(buf);
	send_bb = grpc_raw_byte_buffer_create(&payload, 1);
	grpc_slice_unref(payload);

	deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	    gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
	pthread_mutex_lock(&m->lock);
	if (m->cancelled) {
		pthread_mutex_unlock(&m->lock);
		grpc_byte_buffer_destroy(send_bb);
		snprintf(err, errlen, "shutting down");
		return -1;
	}
	msl = grpc_slice_from_copied_string(method);
	call = grpc_channel_create_call(m->ch, NULL, GRPC_PROPAGATE_DEFAULTS, m->cq,
	    msl, NULL, deadline, NULL);
	grpc_slice_unref(msl);
	m->inflight = call;
	pthread_mutex_unlock(&m->lock);

	grpc_metadata_array_init(&recv_md);
	grpc_metadata_array_init(&trailing_md);
	memset(&auth, 0, sizeof(auth));
	auth.key = grpc_slice_from_static_string("authorization");
	auth.value = grpc_slice_from_copied_string(m->token);

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = 1;
	ops[0].data.send_initial_metadata.metadata = &auth;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send_bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &recv_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv_bb;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;

	if ((ce = grpc_call_start_batch(call, ops, 6, &tag, NULL)) != GRPC_CALL_OK) {
		snprintf(err, errlen, "unable to start the call (error %d%s)", (int)ce,
		    ce == GRPC_CALL_ERROR_INVALID_METADATA ?
		    ": identity.secured_token is not a valid header value" : "");
		goto out;
	}
	/* The call's deadline bounds this wait; the margin only guards
	 * against a lost completion. */
	for (;;) {
		ev = grpc_completion_queue_next(m->cq, gpr_time_add(deadline,
		    gpr_time_from_millis(5000, GPR_TIMESPAN)), NULL);
		if (ev.type == GRPC_OP_COMPLETE && ev.tag == &tag)
			break;
		if (ev.type == GRPC_OP_COMPLETE && ev.tag == &m->watch_tag) {
			watch_event(m, ev.success);
			continue;
		}
		if (ev.type == GRPC_QUEUE_TIMEOUT) {
			grpc_call_cancel(call, NULL);
			continue;
		}
		if (ev.type == GRPC_QUEUE_SHUTDOWN) {
			snprintf(err, errlen, "completion queue shut down");
			goto out;
		}
	}
	if (status != GRPC_STATUS_OK) {
		char *d = grpc_slice_to_c_string(details);

		status_text(m, d, (int)status, err, errlen);
		gpr_free(d);
		rc = (int)status;
	} else if (recv_bb == NULL || unpack_reply(recv_bb, rdesc, resp) == -1) {
		snprintf(err, errlen, "undecodable %s in the answer", rdesc->name);
		rc = -1;
	} else {
		snprintf(err, errlen, "ok");
		rc = 0;
	}
out:
	pthread_mutex_lock(&m->lock);
	m->inflight = NULL;
	grpc_call_unref(call);
	pthread_mutex_unlock(&m->lock);
	grpc_slice_unref(auth.value);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&recv_md);
	grpc_metadata_array_destroy(&trailing_md);
	grpc_byte_buffer_destroy(send_bb);
	if (recv_bb != NULL)
		grpc_byte_buffer_destroy(recv_bb);
	return rc;
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

/* One batch that lasts the whole call (initial metadata out; everything
 * the server sends back), then one batch per message, each awaited before
 * the next (one send at a time), the last one half-closing. */
int
mgr_call_stream(struct mgr *m, const char *method,
    const ProtobufCMessage *const *reqs, size_t n,
    const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp,
    int timeout_ms, char *err, size_t errlen)
{
	grpc_metadata_array recv_md, trailing_md;
	grpc_byte_buffer *recv_bb = NULL;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice(), msl;
	grpc_metadata auth;
	grpc_op ops[4];
	grpc_call *call;
	grpc_call_error ce;
	gpr_timespec deadline;
	bool end_done = false;
	int rc = -1, end_tag = 0, send_tag = 0, ok = 1;

	*resp = NULL;
	snprintf(err, errlen, "no answer");
	deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	    gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
	pthread_mutex_lock(&m->lock);
	if (m->cancelled) {
		pthread_mutex_unlock(&m->lock);
		snprintf(err, errlen, "shutting down");
		return -1;
	}
	msl = grpc_slice_from_copied_string(method);
	call = grpc_channel_create_call(m->ch, NULL, GRPC_PROPAGATE_DEFAULTS, m->cq,
	    msl, NULL, deadline, NULL);
	grpc_slice_unref(msl);
	m->inflight = call;
	pthread_mutex_unlock(&m->lock);

	grpc_metadata_array_init(&recv_md);
	grpc_metadata_array_init(&trailing_md);
	memset(&auth, 0, sizeof(auth));
	auth.key = grpc_slice_from_static_string("authorization");
	auth.value = grpc_slice_from_copied_string(m->token);

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = 1;
	ops[0].data.send_initial_metadata.metadata = &auth;
	ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[1].data.recv_initial_metadata.recv_initial_metadata = &recv_md;
	ops[2].op = GRPC_OP_RECV_MESSAGE;
	ops[2].data.recv_message.recv_message = &recv_bb;
	ops[3].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[3].data.recv_status_on_client.trailing_metadata = &trailing_md;
	ops[3].data.recv_status_on_client.status = &status;
	ops[3].data.recv_status_on_client.status_details = &details;
	if ((ce = grpc_call_start_batch(call, ops, 4, &end_tag, NULL)) != GRPC_CALL_OK) {
		snprintf(err, errlen, "unable to start the call (error %d%s)", (int)ce,
		    ce == GRPC_CALL_ERROR_INVALID_METADATA ?
		    ": identity.secured_token is not a valid header value" : "");
		goto out;
	}

	for (size_t i = 0; i <= n && ok == 1 && !end_done; i++) {
		grpc_byte_buffer *bb = NULL;
		size_t nops = 0;

		if (i == n && n > 0)
			break;		/* half-closed with the last message */
		memset(ops, 0, sizeof(ops));
		if (i < n) {
			bb = pack_bb(reqs[i]);
			ops[nops].op = GRPC_OP_SEND_MESSAGE;
			ops[nops++].data.send_message.send_message = bb;
		}
		if (i + 1 >= n)
			ops[nops++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
		if (grpc_call_start_batch(call, ops, nops, &send_tag, NULL) != GRPC_CALL_OK) {
			grpc_call_cancel(call, NULL);
			ok = 0;
		} else
			ok = wait_batch(m, call, &send_tag, &end_tag, &end_done, deadline);
		if (bb != NULL)
			grpc_byte_buffer_destroy(bb);
	}
	/* A failed send means the call is ending: its status says why. */
	if (ok == -1 || (!end_done && wait_batch(m, call, &end_tag, NULL, &end_done,
	    deadline) == -1)) {
		snprintf(err, errlen, "completion queue shut down");
		goto out;
	}
	if (status != GRPC_STATUS_OK) {
		char *d = grpc_slice_to_c_string(details);

		status_text(m, d, (int)status, err, errlen);
		gpr_free(d);
		rc = (int)status;
	} else if (recv_bb == NULL || unpack_reply(recv_bb, rdesc, resp) == -1) {
		snprintf(err, errlen, "undecodable %s in the answer", rdesc->name);
		rc = -1;
	} else {
		snprintf(err, errlen, "ok");
		rc = 0;
	}
out:
	pthread_mutex_lock(&m->lock);
	m->inflight = NULL;
	grpc_call_unref(call);
	pthread_mutex_unlock(&m->lock);
	grpc_slice_unref(auth.value);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&recv_md);
	grpc_metadata_array_destroy(&trailing_md);
	if (recv_bb != NULL)
		grpc_byte_buffer_destroy(recv_bb);
	return rc;
}
