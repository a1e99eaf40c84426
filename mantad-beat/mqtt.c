/* mqtt: a thin layer over one paho MQTTAsync client. Every callback runs on
 * a paho thread and does nothing but copy what it got into an event for the
 * main loop (events.c); a command is stored in beat.db's inbox first (see
 * on_message). Callback contexts are plain integers (the client's
 * generation, or a publication's outbox seq), never pointers: a callback
 * may still be running while the main loop destroys an old client. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "log.h"
#include "secret.h"

#include "beat.h"
#include "dispatch.h"

struct mq {
	MQTTAsync h;
	unsigned gen;
	char *uri;
	char *host;
	char *ca_file, *cert_file, *key_file;
	int key_fd;		/* memfd of an opened mqtt.key.sbox, else -1 */
	size_t key_len;
	bool tls, verify;
};

/* Shared by every client's callbacks; set by mq_new, lives as long as main. */
static struct evq *cb_q;
static char *cb_state_dir;

/* The inbox of the thread running on_message, on its own connection to
 * beat.db (libcommon/db.c: one connection, one thread). paho may start a
 * new receive thread for a new client: each gets its own, closed as the
 * thread ends. */
static pthread_key_t cb_in_key;
static pthread_once_t cb_in_once = PTHREAD_ONCE_INIT;
static bool cb_in_keyed;

static void
cb_in_close(void *in)
{
	inbox_close(in);
}

static void
cb_in_init(void)
{
	cb_in_keyed = pthread_key_create(&cb_in_key, cb_in_close) == 0;
}

static struct inbox *
cb_inbox(void)
{
	struct inbox *in;

	if (pthread_once(&cb_in_once, cb_in_init) != 0 || !cb_in_keyed ||
	    cb_state_dir == NULL)
		return NULL;
	if ((in = pthread_getspecific(cb_in_key)) != NULL)
		return in;
	if ((in = inbox_open_own(cb_state_dir)) == NULL)
		return NULL;
	if (pthread_setspecific(cb_in_key, in) != 0) {
		inbox_close(in);
		return NULL;
	}
	return in;
}

void
mq_forget_dropped(uint64_t seq)
{
	struct inbox *in;

	if (seq == 0 || !cb_in_keyed || (in = pthread_getspecific(cb_in_key)) == NULL)
		return;
	inbox_done(in, seq);
}

/* paho has sent the PUBACK of a QoS 1 message before it calls on_message
 * (paho.mqtt.c issue #522): the broker forgets the command, so it is
 * committed to the inbox here, before on_message returns, and a SIGKILL
 * before the main loop took it loses nothing (the next start hands it
 * over: session_replay). Stored as the main loop would: a command it
 * could read (not too big, on a well-formed topic); the main loop deletes
 * the row of one it refuses. 0 when not stored. */
static uint64_t
store_arrived(const struct event *ev)
{
	struct inbox *in;

	if (ev->data == NULL || ev->topic_len != strlen(ev->topic) ||
	    !dispatch_utf8_valid((const uint8_t *)ev->topic, ev->topic_len))
		return 0;
	if ((in = cb_inbox()) == NULL) {
		log_warnx("inbox: unable to store a command on arrival:"
		    " the main loop will");
		return 0;
	}
	return inbox_add(in, ev->topic, ev->data, ev->len);
}

#define CTX(v) ((void *)(uintptr_t)(v))
#define CTX_GEN(c) ((unsigned)((uintptr_t)(c) & 0xffffffffu))

static void
push_simple(enum ev_type type, unsigned gen, uint64_t seq, int code,
    const char *text)
{
	struct event *ev;

	if ((ev = event_new(type)) == NULL) {
		log_warnx("unable to queue an MQTT event: out of memory");
		return;
	}
	ev->gen = gen;
	ev->seq = seq;
	ev->code = code;
	if (text != NULL)
		ev->text = strdup(text);
	evq_push(cb_q, ev);
}

static void
on_conn_lost(void *ctx, char *cause)
{
	push_simple(EV_CONN_LOST, CTX_GEN(ctx), 0, 0, cause);
}

static int
on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct event *ev;
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;

	if ((ev = event_new(EV_MESSAGE)) == NULL)
		goto out;
	ev->gen = CTX_GEN(ctx);
	ev->len = len;
	ev->topic_len = tlen;
	if ((ev->topic = malloc(tlen + 1)) == NULL)
		goto fail;
	memcpy(ev->topic, topic, tlen);
	ev->topic[tlen] = '\0';
	if (len > IPC_MAX_MSG)
		ev->too_big = true;	/* main loop reports it; bytes not kept */
	else {
		if ((ev->data = malloc(len > 0 ? len : 1)) == NULL)
			goto fail;
		if (len > 0)
			memcpy(ev->data, msg->payload, len);
	}
	ev->seq = store_arrived(ev);
	evq_push(cb_q, ev);
	ev = NULL;
fail:
	if (ev != NULL) {
		log_warnx("dropping a message of %zu bytes: out of memory", len);
		event_free(ev);
	}
out:
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;	/* handled, whatever happened: never redelivered */
}

static void
on_connect_ok(void *ctx, MQTTAsync_successData *r)
{
	push_simple(EV_CONNECTED, CTX_GEN(ctx), 0, 0, NULL);
}

static void
on_connect_fail(void *ctx, MQTTAsync_failureData *r)
{
	push_simple(EV_CONNECT_FAILED, CTX_GEN(ctx), 0, r ? r->code : -1,
	    r ? r->message : NULL);
}

static void
on_sent(void *ctx, MQTTAsync_successData *r)
{
	push_simple(EV_SENT, 0, (uint64_t)(uintptr_t)ctx, 0, NULL);
}

static void
on_send_fail(void *ctx, MQTTAsync_failureData *r)
{
	push_simple(EV_SEND_FAILED, 0, (uint64_t)(uintptr_t)ctx,
	    r ? r->code : -1, r ? r->message : NULL);
}

/* Subscription contexts: generation in the low 32 bits, topic index above. */
static void
on_sub_ok(void *ctx, MQTTAsync_successData *r)
{
	/* MQTT 3.1.1 SUBACK return code 0x80: refused. */
	if (r != NULL && r->alt.qos == 0x80)
		push_simple(EV_SUBSCRIBE_FAILED, CTX_GEN(ctx),
		    (uint64_t)(uintptr_t)ctx >> 32, 0x80, NULL);
	else
		push_simple(EV_SUBSCRIBED, CTX_GEN(ctx),
		    (uint64_t)(uintptr_t)ctx >> 32, 0, NULL);
}

static void
on_sub_fail(void *ctx, MQTTAsync_failureData *r)
{
	push_simple(EV_SUBSCRIBE_FAILED, CTX_GEN(ctx),
	    (uint64_t)(uintptr_t)ctx >> 32, r ? r->code : -1,
	    r ? r->message : NULL);
}

static void
on_disc_ok(void *ctx, MQTTAsync_successData *r)
{
	push_simple(EV_DISCONNECTED, CTX_GEN(ctx), 0, 0, NULL);
}

static void
on_disc_fail(void *ctx, MQTTAsync_failureData *r)
{
	push_simple(EV_DISCONNECTED, CTX_GEN(ctx), 0, r ? r->code : -1, NULL);
}

static char *
opt_strdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* paho wants a file name for the client key (MQTTAsync_SSLOptions
 * privateKey, which OpenSSL reads at every connect). A sealed key is opened
 * into a memfd named as /proc/self/fd/N: no file system holds it, no
 * directory lists it, and another process reaches it only through
 * /proc/<pid>/fd, which takes ptrace access to this one (what reading its
 * memory takes anyway). It lives as long as the client, since paho reads it
 * again at each reconnection, and is overwritten with zeros before it is
 * closed (mq_free). An O_TMPFILE in the run dir would do the same on disk
 * where the run dir is not a tmpfs. */
static int
key_memfd(struct mq *m, const struct mq_params *p)
{
	char why[700], name[32], *dup;
	size_t n;
	int fd;

	if ((fd = secret_file_memfd(p->sbox_key, p->key_file, 0400, name, sizeof(name), &n,
	    why, sizeof(why))) == -1) {
		log_warnx("unable to read the client key: %s", why);
		return -1;
	}
	if ((dup = strdup(name)) == NULL) {
		close(fd);
		return -1;
	}
	free(m->key_file);
	m->key_file = dup;
	m->key_fd = fd;
	m->key_len = n;
	return 0;
}

static void
key_memfd_close(struct mq *m)
{
	static const char zeros[512];
	size_t off = 0;

	if (m->key_fd == -1)
		return;
	while (off < m->key_len) {
		size_t k = m->key_len - off < sizeof(zeros) ? m->key_len - off : sizeof(zeros);
		ssize_t r = pwrite(m->key_fd, zeros, k, (off_t)off);

		if (r <= 0)
			break;
		off += (size_t)r;
	}
	close(m->key_fd);
	m->key_fd = -1;
}

struct mq *
mq_new(const struct mq_params *p, struct evq *q, unsigned gen)
{
	struct mq *m;
	char *client_id = NULL;
	int rc, len;
	bool v6 = strchr(p->host, ':') != NULL && p->host[0] != '[';

	cb_q = q;
	if (cb_state_dir == NULL && p->state_dir != NULL &&
	    (cb_state_dir = strdup(p->state_dir)) == NULL) {
		log_warnx("unable to create an MQTT client: out of memory");
		return NULL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL)
		goto nomem;
	m->key_fd = -1;
	m->gen = gen;
	m->tls = p->tls;
	m->verify = p->verify;
	m->host = strdup(p->host);
	m->ca_file = opt_strdup(p->ca_file);
	m->cert_file = opt_strdup(p->cert_file);
	m->key_file = opt_strdup(p->key_file);
	len = asprintf(&m->uri, "%s://%s%s%s:%d", p->tls ? "ssl" : "tcp",
	    v6 ? "[" : "", p->host, v6 ? "]" : "", p->port);
	if (len < 0) {
		m->uri = NULL;
		goto nomem;
	}
	if (m->host == NULL || (p->ca_file && !m->ca_file) ||
	    (p->cert_file && !m->cert_file) || (p->key_file && !m->key_file) ||
	    (client_id = strdup(p->client_id)) == NULL)
		goto nomem;
	if (m->key_file != NULL && secret_path_sealed(m->key_file) && key_memfd(m, p) == -1) {
		free(client_id);
		mq_free(m);
		return NULL;
	}
	rc = MQTTAsync_create(&m->h, m->uri, client_id,
	    MQTTCLIENT_PERSISTENCE_NONE, NULL);
	free(client_id);
	if (rc != MQTTASYNC_SUCCESS) {
		log_warnx("unable to create an MQTT client for %s: paho error %d",
		    m->uri, rc);
		m->h = NULL;
		mq_free(m);
		return NULL;
	}
	rc = MQTTAsync_setCallbacks(m->h, CTX(gen), on_conn_lost, on_message,
	    NULL);
	if (rc != MQTTASYNC_SUCCESS) {
		log_warnx("unable to set MQTT callbacks: paho error %d", rc);
		mq_free(m);
		return NULL;
	}
	return m;
nomem:
	log_warnx("unable to create an MQTT client: out of memory");
	mq_free(m);
	return NULL;
}

unsigned
mq_gen(const struct mq *m)
{
	return m->gen;
}

int
mq_connect(struct mq *m)
{
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	int rc;

	o.keepAliveInterval = KEEPALIVE_S;
	/* A persistent session (issue 15): with QoS 1 subscriptions the
	 * broker keeps the commands published while we are away (a restart,
	 * a lost connection) and delivers them when we are back. The
	 * reference connects with a clean session; the client id and the
	 * topics are the same. */
	o.cleansession = 0;
	o.MQTTVersion = MQTTVERSION_3_1_1;
	o.connectTimeout = CONNECT_TIMEOUT_S;
	o.retryInterval = 0;
	o.automaticReconnect = 0;	/* main.c paces reconnection itself */
	o.onSuccess = on_connect_ok;
	o.onFailure = on_connect_fail;
	o.context = CTX(m->gen);
	if (m->tls) {
		/* No ca_file: paho loads OpenSSL's default verify paths. */
		ssl.trustStore = m->ca_file;
		ssl.keyStore = m->cert_file;
		ssl.privateKey = m->key_file;
		ssl.enableServerCertAuth = m->verify;
		ssl.verify = m->verify;
		o.ssl = &ssl;
	}
	rc = MQTTAsync_connect(m->h, &o);
	if (rc != MQTTASYNC_SUCCESS) {
		log_warnx("unable to start connecting to %s: paho error %d",
		    m->uri, rc);
		return -1;
	}
	return 0;
}

int
mq_subscribe(struct mq *m, char *const *topics, size_t n)
{
	int ret = 0;

	for (size_t i = 0; i < n; i++) {
		MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
		int rc;

		r.onSuccess = on_sub_ok;
		r.onFailure = on_sub_fail;
		r.context = CTX(((uint64_t)i << 32) | m->gen);
		rc = MQTTAsync_subscribe(m->h, topics[i], 1, &r);
		if (rc != MQTTASYNC_SUCCESS) {
			log_warnx("unable to subscribe to %s: paho error %d",
			    topics[i], rc);
			ret = -1;
		} else
			log_debug("subscribing to %s", topics[i]);
	}
	return ret;
}

int
mq_unsubscribe(struct mq *m, char *const *topics, size_t n)
{
	int ret = 0;

	for (size_t i = 0; i < n; i++) {
		int rc = MQTTAsync_unsubscribe(m->h, topics[i], NULL);

		if (rc != MQTTASYNC_SUCCESS) {
			log_warnx("unable to unsubscribe from %s: paho error %d",
			    topics[i], rc);
			ret = -1;
		}
	}
	return ret;
}

enum mq_publish
mq_publish(struct mq *m, const char *topic, const void *p, size_t len, int qos,
    bool track, uint64_t seq)
{
	MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
	int rc;

	if (len > (size_t)IPC_MAX_MSG)
		return MQ_PUB_NEVER;
	if (track) {
		r.onSuccess = on_sent;
		r.onFailure = on_send_fail;
		r.context = CTX(seq);
	}
	rc = MQTTAsync_send(m->h, topic, (int)len, p, qos, 0, &r);
	switch (rc) {
	case MQTTASYNC_SUCCESS:
		return MQ_PUB_SENT;
	case MQTTASYNC_BAD_UTF8_STRING:
	case MQTTASYNC_NULL_PARAMETER:
	case MQTTASYNC_TOPICNAME_TRUNCATED:
	case MQTTASYNC_BAD_QOS:
		log_warnx("paho refuses a publication on %s: error %d", topic,
		    rc);
		return MQ_PUB_NEVER;
	default:
		log_debug("unable to publish on %s now: paho error %d", topic,
		    rc);
		return MQ_PUB_LATER;
	}
}

int
mq_disconnect(struct mq *m, int timeout_ms)
{
	MQTTAsync_disconnectOptions o = MQTTAsync_disconnectOptions_initializer;

	o.timeout = timeout_ms;
	o.onSuccess = on_disc_ok;
	o.onFailure = on_disc_fail;
	o.context = CTX(m->gen);
	return MQTTAsync_disconnect(m->h, &o) == MQTTASYNC_SUCCESS ? 0 : -1;
}

void
mq_free(struct mq *m)
{
	if (m == NULL)
		return;
	if (m->h != NULL)
		MQTTAsync_destroy(&m->h);
	key_memfd_close(m);
	free(m->uri);
	free(m->host);
	free(m->ca_file);
	free(m->cert_file);
	free(m->key_file);
	free(m);
}
