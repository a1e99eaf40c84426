/* session: the MQTT side of mantad-beat as one state machine driven by the
 * main loop: which broker (from register's RegistrationNotice), when to
 * (re)connect, what to subscribe, what to do with each command, and the
 * replay of the outbox. Every function here runs on the main thread. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common/informations.pb-c.h"
#include "common/tasks.pb-c.h"

#include "audit.h"
#include "log.h"
#include "secret.h"

#include "beat.h"
#include "dispatch.h"

#define MAX_TOPICS 256
#define MAX_HOST 253

/* ---- connection ---- */

static long long
retry_delay_ms(const struct beat *b)
{
	long long base = (long long)(b->cfg->reconnect_delay * 1000.0 + 0.5);
	long long d, cap;
	int extra;

	if (base < 100)
		base = 100;
	if (b->failures < b->cfg->reconnect_attempts)
		return base;
	/* Past reconnect_attempts: keep trying, but slower each time. */
	cap = base > RECONNECT_MAX_MS ? base : RECONNECT_MAX_MS;
	extra = b->failures - b->cfg->reconnect_attempts + 1;
	for (d = base; extra > 0 && d < cap; extra--)
		d *= 2;
	return d < cap ? d : cap;
}

static void
drop_client(struct beat *b)
{
	if (b->mq == NULL)
		return;
	if (b->state == CONN_CONNECTED)
		(void)mq_disconnect(b->mq, 0);
	mq_free(b->mq);
	b->mq = NULL;
	b->ninflight = 0;
	b->sent_upto = 0;
}

static void
connect_failed(struct beat *b, long long now)
{
	long long d;

	b->failures++;
	d = retry_delay_ms(b);
	if (b->failures == b->cfg->reconnect_attempts)
		log_warnx("%d consecutive connection failures to %s: retrying"
		    " less often, up to every %d s", b->failures, b->broker,
		    RECONNECT_MAX_MS / 1000);
	log_debug("next connection attempt to %s in %lld ms", b->broker, d);
	b->state = CONN_WAITING;
	b->next_connect = now + d;
}

/* One file into a memfd, named by the /proc/self/fd path that OpenSSL
 * will open; the fd lives as long as the daemon. Made by uid 0 and opened
 * again (by path) after the switch: 0444. Only /proc/<pid>/fd reaches it,
 * which takes ptrace access to a process that is not dumpable once it has
 * left uid 0. */
static int
hold_file(const struct beat *b, const char *path, bool secret, char *out, size_t len)
{
	char why[700];

	if (secret_file_memfd(secret ? b->cfg->secret_key : NULL, path, 0444, out, len,
	    NULL, why, sizeof(why)) == -1) {
		log_warnx("unable to read %s: %s", path, why);
		return -1;
	}
	return 0;
}

int
session_hold_tls(struct beat *b)
{
	const char *folder = b->cfg->cert_folder;
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];

	b->held = true;
	b->held_ca[0] = b->held_cert[0] = b->held_key[0] = '\0';
	if (!b->cfg->use_tls || folder == NULL)
		return 0;
	snprintf(ca, sizeof(ca), "%s/ca.crt", folder);
	snprintf(cert, sizeof(cert), "%s/mqtt.crt", folder);
	(void)secret_pick(folder, "mqtt.key", key, sizeof(key));
	if (access(ca, R_OK) == 0 &&
	    hold_file(b, ca, false, b->held_ca, sizeof(b->held_ca)) == -1)
		return -1;
	if (access(cert, R_OK) == 0 && access(key, R_OK) == 0 &&
	    (hold_file(b, cert, false, b->held_cert, sizeof(b->held_cert)) == -1 ||
	     hold_file(b, key, true, b->held_key, sizeof(b->held_key)) == -1))
		return -1;
	return 0;
}

/* WIRE.md 5: TLS with the node's certificates when use_tls, or with the
 * system roots on port 8883. ca, cert and key hold PATH_MAX bytes. */
static void
mq_params_fill(const struct beat *b, struct mq_params *p, char *ca, char *cert,
    char *key)
{
	const char *folder = b->cfg->cert_folder;

	memset(p, 0, sizeof(*p));
	p->host = b->host;
	p->port = b->port;
	p->client_id = b->client_id;
	p->state_dir = b->cfg->state_dir;
	p->verify = b->cfg->verify_ssl;
	p->tls = b->cfg->use_tls || b->port == 8883;
	if (b->held) {
		/* held at start: the memfds, opened already */
		if (b->held_ca[0] != '\0')
			p->ca_file = strcpy(ca, b->held_ca);
		if (b->held_cert[0] != '\0') {
			p->cert_file = strcpy(cert, b->held_cert);
			p->key_file = strcpy(key, b->held_key);
		}
	} else if (b->cfg->use_tls && folder != NULL) {
		snprintf(ca, PATH_MAX, "%s/ca.crt", folder);
		snprintf(cert, PATH_MAX, "%s/mqtt.crt", folder);
		/* mqtt.key.sbox before mqtt.key; mqtt.c opens it */
		(void)secret_pick(folder, "mqtt.key", key, PATH_MAX);
		if (access(ca, R_OK) == 0)
			p->ca_file = ca;
		if (access(cert, R_OK) == 0 && access(key, R_OK) == 0) {
			p->cert_file = cert;
			p->key_file = key;
			p->sbox_key = b->cfg->secret_key;
		}
	}
}

static char *
opt_dup(const char *s, bool *fail)
{
	char *d = s != NULL ? strdup(s) : NULL;

	if (s != NULL && d == NULL)
		*fail = true;
	return d;
}

/* After a failed TLS connection: the background worker finds out why. */
static void
post_tls_probe(struct beat *b)
{
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	struct mq_params p;
	struct beat_probe *bp;
	struct job *j;
	bool fail = false;

	mq_params_fill(b, &p, ca, cert, key);
	if (!p.tls || (j = job_new(JOB_TLSPROBE)) == NULL)
		return;
	if ((bp = j->probe = calloc(1, sizeof(*bp))) == NULL) {
		job_free(j);
		return;
	}
	bp->host = opt_dup(p.host, &fail);
	bp->ca_file = opt_dup(p.ca_file, &fail);
	bp->cert_file = opt_dup(p.cert_file, &fail);
	bp->key_file = opt_dup(p.key_file, &fail);
	bp->first = b->failures == 0;
	bp->p = (struct tls_probe){ .peer = "broker", .host = bp->host,
	    .port = p.port, .ca_file = bp->ca_file, .cert_file = bp->cert_file,
	    .key_file = bp->key_file, .sbox_key = p.sbox_key, .cert_name = "mqtt.crt",
	    .verify = p.verify, .timeout_ms = TLS_PROBE_MS };
	if (fail) {
		job_free(j);
		return;
	}
	(void)worker_post(b->bgw, j);
}

static void
start_connect(struct beat *b, long long now)
{
	struct mq_params p;
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];

	if (b->mq == NULL) {
		mq_params_fill(b, &p, ca, cert, key);
		if (p.tls)
			log_info("TLS to the broker %s: %s, %s%s", b->broker,
			    p.ca_file ? "CA from ca.crt" : "system CA roots",
			    p.cert_file ? "client certificate mqtt.crt" :
			    "no client certificate (no mqtt.crt and mqtt.key)",
			    p.cert_file && secret_path_sealed(p.key_file) ?
			    " (key sealed in mqtt.key.sbox)" : "");
		if (p.tls && !p.verify)
			log_warnx("security.verify_ssl = false: the broker's"
			    " certificate is not checked");
		b->mq = mq_new(&p, b->q, ++b->gen);
		if (b->mq == NULL) {
			connect_failed(b, now);
			return;
		}
	}
	log_debug("connecting to %s (attempt %d)", b->broker, b->failures + 1);
	if (mq_connect(b->mq) == -1) {
		/* The client may be wedged: start from a new one next time. */
		mq_free(b->mq);
		b->mq = NULL;
		connect_failed(b, now);
		return;
	}
	b->state = CONN_CONNECTING;
	/* paho gives up after CONNECT_TIMEOUT_S; this only guards against a
	 * callback that never comes. */
	b->connect_deadline = now + (CONNECT_TIMEOUT_S + 10) * 1000LL;
}

static void
on_connected(struct beat *b, long long now)
{
	log_info("connected to %s as %s, %zu topics, %" PRIu64 " in the outbox",
	    b->broker, b->client_id, b->ntopics, outbox_count(b->ob));
	b->state = CONN_CONNECTED;
	b->failures = 0;
	b->nsubscribed = 0;
	(void)mq_subscribe(b->mq, b->topics, b->ntopics);
	/* Replay everything still stored, in seq order. */
	b->sent_upto = 0;
	b->ninflight = 0;
	b->replay = false;
	session_pump(b);
	b->next_beat = now;
}

static void
on_lost(struct beat *b, long long now)
{
	b->ninflight = 0;
	b->sent_upto = 0;
	if (b->stopping) {
		b->state = CONN_WAITING;
		b->disconnected = true;
		return;
	}
	log_warnx("lost the connection to %s: reconnecting in %.1f s",
	    b->broker, (double)retry_delay_ms(b) / 1000.0);
	b->state = CONN_WAITING;
	b->failures = 0;
	b->next_connect = now + retry_delay_ms(b);
}

/* ---- registration ---- */

static void
free_topics(char **t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i]);
	free(t);
}

static bool
host_valid(const char *h)
{
	size_t len = strlen(h);

	if (len == 0 || len > MAX_HOST)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)h[i];

		if (c <= ' ' || c == '/' || c == '@' || c >= 0x7f)
			return false;
	}
	return true;
}

/* 0, or -1 with err when the notice cannot be used. */
static int
registration_check(const Manta__Ipc__RegistrationNotice *n, char *err,
    size_t errlen)
{
	if (n->node_id == NULL || id_is_zero(id_from_pair(n->node_id))) {
		snprintf(err, errlen, "registration without a node id");
		return -1;
	}
	if (n->broker_host == NULL || !host_valid(n->broker_host)) {
		snprintf(err, errlen, "bad broker host");
		return -1;
	}
	if (n->broker_port == 0 || n->broker_port > 65535) {
		snprintf(err, errlen, "bad broker port %u", n->broker_port);
		return -1;
	}
	if (n->n_topics > MAX_TOPICS) {
		snprintf(err, errlen, "too many topics (%zu)", n->n_topics);
		return -1;
	}
	for (size_t i = 0; i < n->n_topics; i++)
		if (!dispatch_filter_valid(n->topics[i])) {
			snprintf(err, errlen, "bad topic filter #%zu", i);
			return -1;
		}
	return 0;
}

int
session_registration(struct beat *b, const Manta__Ipc__RegistrationNotice *n,
    bool pushed, char *err, size_t errlen)
{
	struct manta_id id = id_from_pair(n->node_id);
	bool broker_changed, topics_changed;
	char *host = NULL, **topics = NULL;

	if (!pushed && b->have_reg)
		return 0;	/* a late poll answer: a push came first */
	if (registration_check(n, err, errlen) == -1)
		return -1;

	broker_changed = !b->have_reg || strcmp(b->host, n->broker_host) != 0 ||
	    b->port != (int)n->broker_port || !id_equal(b->node_id, id);
	topics_changed = !b->have_reg || b->ntopics != n->n_topics;
	for (size_t i = 0; !topics_changed && i < n->n_topics; i++)
		topics_changed = strcmp(b->topics[i], n->topics[i]) != 0;
	b->generation = n->generation;
	if (!broker_changed && !topics_changed) {
		log_debug("registration %" PRIu64 ": nothing changed",
		    n->generation);
		return 0;
	}

	if ((host = strdup(n->broker_host)) == NULL ||
	    (topics = calloc(n->n_topics + 1, sizeof(*topics))) == NULL)
		goto nomem;
	for (size_t i = 0; i < n->n_topics; i++)
		if ((topics[i] = strdup(n->topics[i])) == NULL)
			goto nomem;

	if (!broker_changed && b->state == CONN_CONNECTED)
		(void)mq_unsubscribe(b->mq, b->topics, b->ntopics);
	free(b->host);
	free_topics(b->topics, b->ntopics);
	b->host = host;
	b->port = (int)n->broker_port;
	b->topics = topics;
	b->ntopics = n->n_topics;
	b->node_id = id;
	id_to_hex(id, b->node_hex);
	dispatch_client_id(id.head, id.tail, b->client_id);
	snprintf(b->broker, sizeof(b->broker), "%s%s%s:%d",
	    strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
	    b->port);
	b->have_reg = true;
	log_info("registration %" PRIu64 " (%s): node %s, broker %s, %zu topics",
	    n->generation, pushed ? "pushed" : "polled", b->node_hex, b->broker,
	    b->ntopics);

	if (broker_changed) {
		drop_client(b);
		b->failures = 0;
		b->state = CONN_WAITING;
		b->next_connect = 0;	/* now */
	} else if (b->state == CONN_CONNECTED) {
		b->nsubscribed = 0;
		(void)mq_subscribe(b->mq, b->topics, b->ntopics);
	}
	return 0;
nomem:
	free(host);
	if (topics != NULL)
		free_topics(topics, n->n_topics);
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* ---- outbox ---- */

static void
inflight_remove(struct beat *b, uint64_t seq)
{
	for (size_t i = 0; i < b->ninflight; i++)
		if (b->inflight[i] == seq) {
			b->inflight[i] = b->inflight[--b->ninflight];
			return;
		}
}

void
session_pump(struct beat *b)
{
	struct ob_row r;

	while (b->state == CONN_CONNECTED && b->ninflight < OUTBOX_WINDOW) {
		if (outbox_next(b->ob, b->sent_upto, &r) != 1)
			break;
		switch (mq_publish(b->mq, r.topic, r.payload, r.len, r.qos,
		    true, r.seq)) {
		case MQ_PUB_LATER:	/* the next tick retries */
			ob_row_clear(&r);
			return;
		case MQ_PUB_NEVER:
			b->sent_upto = r.seq;
			log_warnx("dropping outbox row %" PRIu64 " (topic %s, %zu"
			    " bytes): refused by the MQTT library", r.seq,
			    r.topic, r.len);
			(void)outbox_drop(b->ob, r.seq);
			break;
		case MQ_PUB_SENT:
			b->sent_upto = r.seq;
			b->inflight[b->ninflight++] = r.seq;
			log_debug("publishing outbox row %" PRIu64 " on %s (QoS %d,"
			    " %zu bytes)", r.seq, r.topic, r.qos, r.len);
			break;
		}
		ob_row_clear(&r);
	}
}

/* ---- commands ---- */

static void
post_report(struct beat *b, const struct dispatch *d, const char *content)
{
	struct job *j;

	if ((j = job_new(JOB_REPORT)) == NULL ||
	    (j->content = strdup(content)) == NULL) {
		log_warnx("unable to queue an error report: out of memory");
		job_free(j);
		return;
	}
	j->error_id = d->error_id;
	j->node_id = b->node_id;
	j->swarm_id = (struct manta_id){ d->swarm_head, d->swarm_tail };
	j->task_id = (struct manta_id){ d->task_head, d->task_tail };
	j->iteration = d->iteration;
	j->circular = d->circular;
	(void)worker_post(b->cmdw, j);
}

/* At most DROP_LOG_MAX warnings a second about dropped messages; the rest
 * are counted and summed up in the next second. */
#define DROP_LOG_MAX 20

static void
drop_log_flush(struct beat *b, long long now)
{
	long long sec = now / 1000;

	if (sec == b->drop_sec)
		return;
	if (b->drop_quiet > 0)
		log_warnx("%lu more messages dropped (warnings suppressed)",
		    b->drop_quiet);
	b->drop_sec = sec;
	b->drop_logged = 0;
	b->drop_quiet = 0;
}

static bool
drop_log_ok(struct beat *b)
{
	drop_log_flush(b, daemon_now_ms());
	if (b->drop_logged < DROP_LOG_MAX) {
		b->drop_logged++;
		return true;
	}
	b->drop_quiet++;
	return false;
}

static void
audit_id(json_t *f, const char *key, uint64_t head, uint64_t tail)
{
	char hex[ID_HEX_LEN + 1];

	if (head == 0 && tail == 0)
		return;
	id_to_hex((struct manta_id){ head, tail }, hex);
	json_object_set_new(f, key, json_string(hex));
}

/* The audit trail's entry for one command received: its topic, a hash of
 * its payload, the ids it names and what became of it (dest, or refused). */
static void
audit_command(struct beat *b, const struct event *ev, const char *topic,
    const struct dispatch *d, const char *refused)
{
	unsigned char h[32];
	char hex[2 * sizeof(h) + 1];
	json_t *f, *t;

	if (b->audit == NULL || (f = json_object()) == NULL)
		return;
	/* not UTF-8 (a malformed topic): null */
	json_object_set_new(f, "topic", (t = json_string(topic)) ? t : json_null());
	json_object_set_new(f, "command", d != NULL && d->name != NULL ?
	    json_string(d->name) : json_null());
	json_object_set_new(f, "bytes", json_integer((json_int_t)ev->len));
	if (ev->data != NULL) {
		crypto_generichash(h, sizeof(h), ev->data, ev->len, NULL, 0);
		sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
		json_object_set_new(f, "payload_blake2b", json_string(hex));
	}
	if (d != NULL) {
		audit_id(f, "swarm_id", d->swarm_head, d->swarm_tail);
		audit_id(f, "task_id", d->task_head, d->task_tail);
	}
	if (refused != NULL)
		json_object_set_new(f, "refused", json_string(refused));
	else
		json_object_set_new(f, "dest", json_string(d->dest));
	(void)audit_append(b->audit, "command", f);
}

/* A command goes to the worker while fewer than CMD_WINDOW are there (the
 * worker's queue then always has room: nothing is dropped), else waits in
 * the backlog, in order. */
static void
hand_over(struct beat *b, struct job *j)
{
	if (b->cmd_handed < CMD_WINDOW && b->backlog == NULL) {
		if (worker_post(b->cmdw, j) == 0)
			b->cmd_handed++;
		return;
	}
	if (b->backlog_tail != NULL)
		b->backlog_tail->next = j;
	else
		b->backlog = j;
	b->backlog_tail = j;
	if (++b->nbacklog > b->backlog_peak)
		b->backlog_peak = b->nbacklog;
	if (b->nbacklog == 1 || b->nbacklog % 1000 == 0)
		log_info("%zu commands wait for the node's daemons", b->cmd_handed + b->nbacklog);
}

static void
backlog_pump(struct beat *b)
{
	struct job *j;

	while (b->cmd_handed < CMD_WINDOW && (j = b->backlog) != NULL) {
		if ((b->backlog = j->next) == NULL)
			b->backlog_tail = NULL;
		j->next = NULL;
		b->nbacklog--;
		if (worker_post(b->cmdw, j) == 0)
			b->cmd_handed++;
	}
}

void
session_dropped(struct beat *b, unsigned n)
{
	char why[128];

	snprintf(why, sizeof(why), "node busy: %u MQTT messages dropped, too many"
	    " waiting", n);
	log_warnx("%s", why);
	post_report(b, &(struct dispatch){ .error_id = ERR_ID_MQTT }, why);
}

void
session_backlog_free(struct beat *b)
{
	struct job *j;

	if (b->nbacklog > 0)
		log_info("stopping: %zu commands not handed over yet, kept in beat.db"
		    " for the next start", b->nbacklog);
	while ((j = b->backlog) != NULL) {
		b->backlog = j->next;
		job_free(j);
	}
	b->backlog_tail = NULL;
	b->nbacklog = 0;
}

/* Past CMD_BACKLOG_MAX: refused, and said so where the manager looks: a
 * deploy_task gets its FAILED TaskUpdate (through the outbox, which needs
 * no other daemon), every command a SendError (best effort), the audit
 * trail the reason. */
static void
refuse_busy(struct beat *b, const struct event *ev, const struct dispatch *d,
    const char *why)
{
	Common__Tasks__TaskUpdate u = COMMON__TASKS__TASK_UPDATE__INIT;
	Common__System__PairId sw = COMMON__SYSTEM__PAIR_ID__INIT;
	Common__System__PairId nd = COMMON__SYSTEM__PAIR_ID__INIT;
	Common__System__PairId tk = COMMON__SYSTEM__PAIR_ID__INIT;
	uint8_t buf[128];
	size_t len;

	if (b->refused_busy++ % 1000 == 0)
		log_warnx("%s (%" PRIu64 " refused so far)", why, b->refused_busy);
	audit_command(b, ev, ev->topic, d, why);
	if (d->cmd == CMD_DEPLOY_TASK) {
		id_to_pair((struct manta_id){ d->swarm_head, d->swarm_tail }, &sw);
		id_to_pair(b->node_id, &nd);
		id_to_pair((struct manta_id){ d->task_head, d->task_tail }, &tk);
		u.swarm_id = &sw;
		u.node_id = &nd;
		u.task_id = &tk;
		u.iteration = d->iteration;
		u.circular = d->circular;
		u.task_status = COMMON__TASKS__TASK_STATUS__FAILED;
		len = common__tasks__task_update__pack(&u, buf);
		if (outbox_add(b->ob, TOPIC_UPDATE_TASK, buf, len, 1, "") != 0)
			log_warnx("unable to store the FAILED update of a refused deploy_task");
		session_pump(b);
	}
	post_report(b, &(struct dispatch){ .error_id = ERR_ID_NODE,
	    .swarm_head = d->swarm_head, .swarm_tail = d->swarm_tail,
	    .task_head = d->task_head, .task_tail = d->task_tail,
	    .iteration = d->iteration, .circular = d->circular }, why);
}

/* A job for one classified command; takes topic and data. NULL (both
 * freed) when out of memory. */
static struct job *
command_job(const struct beat *b, char *topic, uint8_t *data, size_t len,
    const struct dispatch *d, uint64_t seq)
{
	struct job *j;

	if ((j = job_new(JOB_COMMAND)) == NULL || (j->name = strdup(d->name)) == NULL) {
		job_free(j);
		free(topic);
		free(data);
		return NULL;
	}
	j->dest = d->dest;
	j->topic = topic;
	j->data = data;
	j->len = len;
	j->seq = seq;
	inbox_handoff(b->in, seq, j->handoff);
	j->node_id = b->node_id;
	j->swarm_id = (struct manta_id){ d->swarm_head, d->swarm_tail };
	j->task_id = (struct manta_id){ d->task_head, d->task_tail };
	j->iteration = d->iteration;
	j->circular = d->circular;
	return j;
}

static void
on_message(struct beat *b, struct event *ev)
{
	struct dispatch d;
	struct job *j;
	uint64_t seq;
	char pt[160];

	dispatch_printable(pt, sizeof(pt), ev->topic, ev->topic_len);
	if (ev->topic_len != strlen(ev->topic) ||
	    !dispatch_utf8_valid((const uint8_t *)ev->topic, ev->topic_len)) {
		if (drop_log_ok(b))
			log_warnx("dropping a message on a malformed topic %s"
			    " (%zu bytes)", pt, ev->len);
		audit_command(b, ev, pt, NULL, "malformed topic");
		return;
	}
	if (b->stopping) {
		/* Acknowledged already: kept for the next start. */
		if (ev->seq == 0 && ev->data != NULL)
			ev->seq = inbox_add(b->in, ev->topic, ev->data, ev->len);
		if (ev->seq > 0)
			audit_command(b, ev, ev->topic, NULL,
			    "stopping: kept in beat.db for the next start");
		else
			audit_command(b, ev, ev->topic, NULL, "stopping");
		return;
	}
	if (dispatch_classify(ev->topic, ev->topic_len, ev->data, ev->len,
	    IPC_MAX_MSG, &d) == -1) {
		if (drop_log_ok(b))
			log_warnx("dropping a message on %s: %s", pt, d.reason);
		audit_command(b, ev, ev->topic, &d, d.reason);
		post_report(b, &d, d.reason);
		inbox_done(b->in, ev->seq);	/* stored on arrival, if it was */
		return;
	}
	if (b->cmd_handed >= CMD_WINDOW && b->nbacklog >= CMD_BACKLOG_MAX) {
		char why[160];

		snprintf(why, sizeof(why), "node busy: %zu commands wait for the"
		    " node's daemons; %s refused", b->cmd_handed + b->nbacklog, d.name);
		refuse_busy(b, ev, &d, why);
		inbox_done(b->in, ev->seq);
		return;
	}
	log_info("%s from %s (%zu bytes) to %s", d.name, pt, ev->len, d.dest);
	audit_command(b, ev, ev->topic, &d, NULL);
	/* mqtt.c stored it on arrival, unless beat.db refused there */
	seq = ev->seq > 0 ? ev->seq : inbox_add(b->in, ev->topic, ev->data, ev->len);
	j = command_job(b, ev->topic, ev->data, ev->len, &d, seq);
	ev->topic = NULL;
	ev->data = NULL;
	if (j == NULL) {
		log_warnx("unable to hand %s from %s over now: out of memory%s", d.name,
		    pt, seq > 0 ? "; kept for the next start" : "");
		return;
	}
	hand_over(b, j);
}

static void
replay_one(void *arg, uint64_t seq, char *topic, uint8_t *p, size_t len)
{
	struct beat *b = arg;
	struct dispatch d;
	struct job *j;

	if (dispatch_classify(topic, strlen(topic), p, len, IPC_MAX_MSG, &d) == -1) {
		log_warnx("inbox: dropping a command kept on %s: %s", topic, d.reason);
		inbox_done(b->in, seq);
		free(topic);
		free(p);
		return;
	}
	log_info("%s from %s (%zu bytes, received by the last run) to %s", d.name,
	    topic, len, d.dest);
	if ((j = command_job(b, topic, p, len, &d, seq)) != NULL)
		hand_over(b, j);
}

void
session_replay(struct beat *b)
{
	int n = inbox_replay(b->in, replay_one, b);

	if (n > 0)
		log_info("%d command%s received by the last run and not handed over:"
		    " handing %s over first", n, n == 1 ? "" : "s", n == 1 ? "it" : "them");
}

/* ---- events and timers ---- */

/* A publication's fate from paho: the outbox row goes, or stays for the
 * replay. */
static void
on_send_result(struct beat *b, const struct event *ev)
{
	if (ev->type == EV_SENT) {
		if (ev->seq == SEQ_NODE_STATUS) {
			b->status_sent = true;
			return;
		}
		inflight_remove(b, ev->seq);
		log_debug("outbox row %" PRIu64 " delivered", ev->seq);
		(void)outbox_done(b->ob, ev->seq);
		session_pump(b);
		return;
	}
	if (ev->seq == SEQ_NODE_STATUS)
		return;
	log_debug("outbox row %" PRIu64 " not delivered (paho %d): kept",
	    ev->seq, ev->code);
	inflight_remove(b, ev->seq);
	b->replay = true;
}

/* The SUBACK of the current client's topic ev->seq. Online (status) once
 * the broker has taken every subscription: a command published before
 * that would not reach us. */
static void
on_subscription(struct beat *b, const struct event *ev)
{
	if (ev->type == EV_SUBSCRIBE_FAILED) {
		log_warnx("the broker refused the subscription to %s (code %d)",
		    b->topics[ev->seq], ev->code);
		return;
	}
	if (b->state == CONN_CONNECTED && b->nsubscribed < b->ntopics) {
		b->nsubscribed++;
		log_debug("subscribed to %s", b->topics[ev->seq]);
	}
}

void
session_event(struct beat *b, struct event *ev)
{
	long long now = daemon_now_ms();
	bool current = b->mq != NULL && ev->gen == mq_gen(b->mq);

	switch (ev->type) {
	case EV_CONNECTED:
		if (current && b->state == CONN_CONNECTING && !b->stopping)
			on_connected(b, now);
		break;
	case EV_CONNECT_FAILED:
		if (current && b->state == CONN_CONNECTING) {
			log_warnx("unable to connect to %s: %s (paho %d,"
			    " attempt %d)", b->broker, ev->text ? ev->text :
			    "connection failed", ev->code, b->failures + 1);
			post_tls_probe(b);
			connect_failed(b, now);
		}
		break;
	case EV_CONN_LOST:
		if (current && b->state == CONN_CONNECTED)
			on_lost(b, now);
		break;
	case EV_MESSAGE:
		on_message(b, ev);
		break;
	case EV_SENT:
	case EV_SEND_FAILED:
		on_send_result(b, ev);
		break;
	case EV_SUBSCRIBED:
	case EV_SUBSCRIBE_FAILED:
		if (current && ev->seq < b->ntopics)
			on_subscription(b, ev);
		break;
	case EV_DISCONNECTED:
		if (current)
			b->disconnected = true;
		break;
	case EV_CMD_DONE:
		inbox_done(b->in, ev->seq);
		if (b->cmd_handed > 0)
			b->cmd_handed--;
		backlog_pump(b);
		break;
	case EV_REGISTRATION: {
		char err[128];

		b->regpoll_pending = false;
		if (ev->msg == NULL || b->stopping)
			break;
		if (session_registration(b, ev->msg->registration, false, err,
		    sizeof(err)) == -1)
			log_warnx("ignoring the registration from %s: %s",
			    IPC_REGISTER, err);
		break;
	}
	}
}

void
session_timers(struct beat *b, long long now)
{
	struct job *j;
	long long iv = (long long)b->cfg->ping_interval * 1000;

	if (b->stopping)
		return;
	drop_log_flush(b, now);
	heartbeat_timers(b, now);
	if (!b->have_reg && !b->regpoll_pending && now >= b->next_regpoll) {
		if ((j = job_new(JOB_REGPOLL)) != NULL &&
		    worker_post(b->bgw, j) == 0)
			b->regpoll_pending = true;
		b->next_regpoll = now + REGPOLL_MS;
	}
	if (b->state == CONN_WAITING && now >= b->next_connect)
		start_connect(b, now);
	if (b->state == CONN_CONNECTING && now >= b->connect_deadline) {
		log_warnx("no answer from the MQTT library connecting to %s:"
		    " starting over", b->broker);
		mq_free(b->mq);
		b->mq = NULL;
		connect_failed(b, now);
	}
	if (now >= b->next_beat) {
		b->next_beat += iv;
		if (b->next_beat <= now)
			b->next_beat = now + iv;
		if (b->state == CONN_CONNECTED) {
			(void)heartbeat_ask(b, now);
			if (b->replay && b->ninflight == 0) {
				b->replay = false;
				b->sent_upto = 0;
			}
			session_pump(b);
		}
	}
}

int
session_timeout(const struct beat *b, long long now, int max)
{
	long long next = now + max;

	if (b->stopping)
		return max;
	if (b->next_beat < next)
		next = b->next_beat;
	if (b->beat_pending && b->snap_deadline < next)
		next = b->snap_deadline;
	if (!b->have_reg && !b->regpoll_pending && b->next_regpoll < next)
		next = b->next_regpoll;
	if (b->state == CONN_WAITING && b->next_connect < next)
		next = b->next_connect;
	if (b->state == CONN_CONNECTING && b->connect_deadline < next)
		next = b->connect_deadline;
	return next <= now ? 0 : (int)(next - now);
}

/* ---- stop ---- */

static void
wait_for(struct beat *b, const bool *flag, int wait_ms)
{
	long long end = daemon_now_ms() + wait_ms;
	struct pollfd pfd = { .fd = evq_fd(b->q), .events = POLLIN };

	while (!*flag && b->state == CONN_CONNECTED) {
		long long left = end - daemon_now_ms();
		struct event *ev, *next;
		unsigned dropped;

		if (left <= 0)
			break;
		if (poll(&pfd, 1, (int)left) == -1 && errno != EINTR)
			break;
		for (ev = evq_take(b->q, &dropped); ev != NULL; ev = next) {
			next = ev->next;
			session_event(b, ev);
			event_free(ev);
		}
	}
}

void
session_close(struct beat *b, int wait_ms)
{
	Common__Informations__NodeStatus ns = COMMON__INFORMATIONS__NODE_STATUS__INIT;
	Common__System__PairId pair = COMMON__SYSTEM__PAIR_ID__INIT;
	uint8_t buf[64];
	size_t len;

	b->stopping = true;
	if (b->mq == NULL)
		return;
	if (b->state == CONN_CONNECTED) {
		id_to_pair(b->node_id, &pair);
		ns.node_id = &pair;
		ns.status = COMMON__INFORMATIONS__NODE_STATUS_ENUM__DISCONNECTED;
		len = common__informations__node_status__pack(&ns, buf);
		if (mq_publish(b->mq, TOPIC_NODE_STATUS, buf, len, 1, true,
		    SEQ_NODE_STATUS) == MQ_PUB_SENT) {
			wait_for(b, &b->status_sent, wait_ms);
			if (b->status_sent)
				log_info("told the manager this node is"
				    " disconnecting");
			else
				log_warnx("no acknowledgement of the node status"
				    " from %s", b->broker);
		}
		if (b->state == CONN_CONNECTED &&
		    mq_disconnect(b->mq, 200) == 0)
			wait_for(b, &b->disconnected, 1000);
	}
	mq_free(b->mq);
	b->mq = NULL;
	b->state = CONN_NONE;
}
