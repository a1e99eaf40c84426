/* link: one worker thread owns every gRPC call to the manager, so the IPC
 * loop in main.c never waits on the network. Its life is a small state
 * machine:
 *
 *   REGISTERING --IsAvailable+RegisterNode ok--> ONLINE
 *        ^   \__ failure: retry after 0.5 s, doubling to 10 s
 *        |
 *   ONLINE --IsAvailable probe (5 s) or a call fails as unreachable--> OFFLINE
 *   ONLINE --the connection was lost and made again since RegisterNode
 *            (a manager restarted between two probes)--> OFFLINE
 *   OFFLINE behaves as REGISTERING (a new generation on success).
 *
 * After each successful RegisterNode the Registration is stored in
 * register.db, then handed to mantad-beat (retried every second until beat
 * acknowledges). Calls asked for over IPC (collect_information, ReportError)
 * wait in a bounded queue and go out while ONLINE. Task logs wait in
 * register.db's outbox (logs.c stores them) and go out while ONLINE, oldest
 * first, one AddTaskLogs call each; a row leaves the outbox once the
 * manager answers OK, so logs written while the manager is away are sent
 * after the next registration. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "db.h"
#include "ipc.h"
#include "log.h"
#include "register.h"
#include "google/protobuf/timestamp.pb-c.h"

#define CALL_TIMEOUT_MS		5000
#define PROBE_MS		5000
#define BACKOFF_MIN_MS		500
#define BACKOFF_MAX_MS		10000
#define PUSH_RETRY_MS		1000
#define PUSH_TIMEOUT_MS		1000
#define RES_TIMEOUT_MS		2000
#define MAX_JOBS		256
#define MAX_TOPICS		64	/* what ipc_validate lets through */
#define MAX_TOPIC_LEN		1024
#define MAX_ERROR_TEXT		4096

#define M_IS_AVAILABLE		"/node.node_service.Node/IsAvailable"
#define M_REGISTER_NODE		"/node.node_service.Node/RegisterNode"
#define M_SET_NODE_STATUS	"/node.node_service.Node/SetNodeStatus"
#define M_SET_SYSTEM_SUMMARY	"/node.node_service.Node/SetSystemSummary"
#define M_SET_OVERVIEWS		"/node.node_service.Node/SetOverviews"
#define M_SEND_ERROR		"/node.node_service.Node/SendError"
#define M_ADD_TASK_LOGS		"/node.node_service.Node/AddTaskLogs"

#define LOGS_RETRY_MS		1000	/* after a local failure */
#define LOGS_REFUSED_MAX	5	/* refusals before a frame is dropped */
#define LOGS_MS_PER_MIB		1000	/* call deadline: CALL_TIMEOUT_MS + this per MiB */

/* WIRE.md section 9 */
#define ERROR_ID_RESOURCE	12
#define ERROR_ID_MQTT		22	/* a bad collect_information text, as the reference */

enum job_kind { JOB_NODE_STATUS, JOB_SUMMARY, JOB_OVERVIEWS, JOB_ERROR };

struct job {
	enum job_kind kind;
	uint8_t *buf;		/* JOB_ERROR: a packed common.system.Error */
	size_t len;
	struct job *next;
};

struct link {
	const struct manta_cfg *cfg;
	sqlite3 *db;
	struct mgr *mgr;
	struct manta_id id;
	const struct platform *plat;
	pthread_t thread;

	pthread_mutex_t lock;	/* guards everything down to the jobs */
	pthread_cond_t cond;
	pthread_cond_t flushed_cond;
	bool closing;		/* link_stop: send what is queued, nothing new */
	bool flushed;		/* ... and that is done */
	bool stop;
	bool registered;
	bool ever_registered;
	bool have_reg;
	struct reg reg;		/* the last Registration, stored or new */
	struct job *head, *tail;
	size_t njobs;
	bool logs_pending;	/* the outbox may hold rows */
	bool draining;		/* SetNodeStatus says DISCONNECTED (issue 6) */
	uint64_t logs_gen;	/* bumped by each link_logs_notify */

	/* the worker's own */
	long long next_register, next_probe, next_push;
	int backoff_ms;
	bool push_pending, push_failing;
	bool failing;
	int fail_code;
	uint64_t generation;
	unsigned long losses;	/* mgr_losses() when last registered */
	long long next_logs;
	int64_t logs_refused_seq;	/* the row the manager refused, and how often */
	int logs_refused;
	int ack_fd;		/* register.ack, or -1 */
	int64_t acked_seq;	/* the row last answered OK (0 none) ... */
	char *acked_key;	/* ... and its key */
};

static void
now_ts(Google__Protobuf__Timestamp *ts)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	google__protobuf__timestamp__init(ts);
	ts->seconds = t.tv_sec;
	ts->nanos = (int32_t)t.tv_nsec;
}

void
reg_to_notice(const struct reg *r, Manta__Ipc__RegistrationNotice *n,
    Common__System__PairId *pid)
{
	manta__ipc__registration_notice__init(n);
	id_to_pair(r->node_id, pid);
	n->node_id = pid;
	n->broker_host = r->broker_host;
	n->broker_port = r->broker_port;
	n->n_topics = r->ntopics;
	n->topics = r->topics;
	n->generation = r->generation;
}

/* ---- the queue ---- */

static void
job_free(struct job *j)
{
	free(j->buf);
	free(j);
}

/* Called with the lock held. Status, summary and overview requests carry
 * no data: one queued of each kind is enough. */
static void
enqueue(struct link *l, enum job_kind kind, uint8_t *buf, size_t len)
{
	struct job *j;

	if (kind != JOB_ERROR)
		for (j = l->head; j != NULL; j = j->next)
			if (j->kind == kind) {
				free(buf);
				return;
			}
	if (l->njobs >= MAX_JOBS) {
		struct job *old = l->head;

		log_warnx("manager queue full; dropping the oldest request");
		l->head = old->next;
		if (l->head == NULL)
			l->tail = NULL;
		l->njobs--;
		job_free(old);
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		log_warn("unable to queue a manager request");
		free(buf);
		return;
	}
	j->kind = kind;
	j->buf = buf;
	j->len = len;
	l->flushed = false;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
	l->njobs++;
	pthread_cond_signal(&l->cond);
}

static void
queue_error(struct link *l, const Common__System__Error *e)
{
	size_t len = protobuf_c_message_get_packed_size(&e->base);
	uint8_t *buf = malloc(len ? len : 1);

	if (buf == NULL) {
		log_warn("unable to queue an error report");
		return;
	}
	protobuf_c_message_pack(&e->base, buf);
	pthread_mutex_lock(&l->lock);
	enqueue(l, JOB_ERROR, buf, len);
	pthread_mutex_unlock(&l->lock);
}

void
link_report(struct link *l, const Common__System__Error *in)
{
	Common__System__Error e = *in;
	Common__System__PairId node, zswarm, ztask;
	Google__Protobuf__Timestamp ts;
	struct manta_id zero = MANTA_ID_ZERO;
	char *content;

	/* WIRE.md section 9: ids of the context where known, zero otherwise. */
	if (e.node_id == NULL || id_is_zero(id_from_pair(e.node_id))) {
		id_to_pair(l->id, &node);
		e.node_id = &node;
	}
	if (e.swarm_id == NULL) {
		id_to_pair(zero, &zswarm);
		e.swarm_id = &zswarm;
	}
	if (e.task_id == NULL) {
		id_to_pair(zero, &ztask);
		e.task_id = &ztask;
	}
	if (e.timestamp == NULL || (e.timestamp->seconds == 0 && e.timestamp->nanos == 0)) {
		now_ts(&ts);
		e.timestamp = &ts;
	}
	if (e.error_id == 0)
		e.error_id = 1;		/* UNKNOWN */
	content = utf8_clean(in->content ? in->content : "",
	    in->content ? strlen(in->content) : 0, MAX_ERROR_TEXT);
	if (content == NULL)
		return;
	e.content = content;
	queue_error(l, &e);
	free(content);
}

static void
report_local(struct link *l, uint32_t error_id, const char *text)
{
	Common__System__Error e = COMMON__SYSTEM__ERROR__INIT;

	e.error_id = error_id;
	e.content = (char *)(uintptr_t)text;
	link_report(l, &e);
}

void
link_collect(struct link *l, const uint8_t *payload, size_t len)
{
	static const struct { const char *name; enum job_kind kind; } reqs[] = {
		{ "set_node_status", JOB_NODE_STATUS },
		{ "set_system_summary", JOB_SUMMARY },
		{ "set_overviews", JOB_OVERVIEWS },
	};
	char *text, *s, *e, msg[256];

	if ((text = utf8_clean((const char *)payload, len, 200)) == NULL)
		return;
	for (s = text; *s == ' ' || *s == '\t' || *s == '\n'; s++)
		;
	for (e = s + strlen(s); e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n'); )
		*--e = '\0';
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
		if (strcmp(s, reqs[i].name) == 0) {
			log_debug("collect_information: %s", s);
			pthread_mutex_lock(&l->lock);
			enqueue(l, reqs[i].kind, NULL, 0);
			pthread_mutex_unlock(&l->lock);
			free(text);
			return;
		}
	snprintf(msg, sizeof(msg), "collect_information: unknown request \"%s\"", s);
	log_warnx("%s", msg);
	report_local(l, ERROR_ID_MQTT, msg);
	free(text);
}

/* ---- calls ---- */

static void
call_failed(struct link *l, const char *what, int code, const char *err)
{
	/* Once per change of cause, not once per retry. */
	if (!l->failing || code != l->fail_code)
		log_warnx("manager %s: %s: %s", mgr_target(l->mgr), what, err);
	else
		log_debug("manager %s: %s: %s", mgr_target(l->mgr), what, err);
	l->failing = true;
	l->fail_code = code;
}

static void
call_ok(struct link *l)
{
	if (l->failing)
		log_info("manager %s answers again", mgr_target(l->mgr));
	l->failing = false;
}

static int
call(struct link *l, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp,
    char *err, size_t errlen)
{
	int rc = mgr_call(l->mgr, method, req, rdesc, resp, CALL_TIMEOUT_MS, err, errlen);

	if (rc == 0)
		log_debug("%s: ok", method);
	return rc;
}

/* A failure that says the manager is away (UNAVAILABLE, DEADLINE_EXCEEDED),
 * as opposed to one request it did not like (any other status), which is
 * dropped rather than retried forever. */
static bool
unreachable(int code)
{
	return code == 14 || code == 4;
}

static void
go_offline(struct link *l, long long now)
{
	pthread_mutex_lock(&l->lock);
	l->registered = false;
	pthread_mutex_unlock(&l->lock);
	l->next_register = now;
	l->backoff_ms = BACKOFF_MIN_MS;
}

static void
retry_later(struct link *l, long long now)
{
	l->next_register = now + l->backoff_ms;
	l->backoff_ms *= 2;
	if (l->backoff_ms > BACKOFF_MAX_MS)
		l->backoff_ms = BACKOFF_MAX_MS;
}

static bool
topic_ok(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > MAX_TOPIC_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x20)
			return false;
	return true;
}

/* The manager's Registration as ours; mqtt.* from the config fill in what
 * it leaves out (WIRE.md section 4: it overwrites them). */
static int
reg_from_reply(struct link *l, const Common__Informations__Registration *r,
    struct reg *out, char *err, size_t errlen)
{
	const char *host = r->mqtt_broker_host;
	uint32_t port = r->mqtt_broker_port;

	memset(out, 0, sizeof(*out));
	if ((host == NULL || host[0] == '\0') && l->cfg->broker_host != NULL)
		host = l->cfg->broker_host;
	if (port == 0 && l->cfg->broker_port > 0)
		port = (uint32_t)l->cfg->broker_port;
	if (host == NULL || host[0] == '\0' || strlen(host) > 255 || port == 0 || port > 65535) {
		snprintf(err, errlen, "the Registration names no usable MQTT broker");
		return -1;
	}
	out->node_id = l->id;
	out->broker_port = port;
	if ((out->broker_host = strdup(host)) == NULL ||
	    (r->n_mqtt_topics > 0 &&
	    (out->topics = calloc(r->n_mqtt_topics, sizeof(char *))) == NULL))
		goto nomem;
	for (size_t i = 0; i < r->n_mqtt_topics; i++) {
		if (!topic_ok(r->mqtt_topics[i])) {
			log_warnx("ignoring an empty, long or binary topic in the Registration");
			continue;
		}
		if (out->ntopics == MAX_TOPICS) {
			log_warnx("the Registration names %zu topics; keeping the first %d",
			    r->n_mqtt_topics, MAX_TOPICS);
			break;
		}
		if ((out->topics[out->ntopics] = strdup(r->mqtt_topics[i])) == NULL)
			goto nomem;
		out->ntopics++;
	}
	return 0;
nomem:
	reg_free(out);
	snprintf(err, errlen, "out of memory");
	return -1;
}

static void
do_register(struct link *l)
{
	Common__System__Empty empty = COMMON__SYSTEM__EMPTY__INIT;
	Common__Informations__NodeOverview ov = COMMON__INFORMATIONS__NODE_OVERVIEW__INIT;
	Common__Informations__PlatformInfo pi;
	Common__System__PairId pid;
	ProtobufCMessage *resp = NULL;
	struct reg nr;
	char err[512], hex[ID_HEX_LEN + 1];
	long long now;
	int rc;

	rc = call(l, M_IS_AVAILABLE, &empty.base, &common__system__ok__descriptor, &resp,
	    err, sizeof(err));
	now = daemon_now_ms();
	if (rc != 0) {
		call_failed(l, "IsAvailable", rc, err);
		retry_later(l, now);
		return;
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	resp = NULL;

	id_to_pair(l->id, &pid);
	platform_to_proto(l->plat, &pi);
	ov.node_id = &pid;
	ov.platform_info = &pi;
	if ((ov.dataset_overviews = overviews_build(l->cfg)) == NULL) {
		retry_later(l, now);
		return;
	}
	rc = call(l, M_REGISTER_NODE, &ov.base, &common__informations__registration__descriptor,
	    &resp, err, sizeof(err));
	overviews_free(ov.dataset_overviews);
	now = daemon_now_ms();
	if (rc != 0) {
		call_failed(l, "RegisterNode", rc, err);
		retry_later(l, now);
		return;
	}
	rc = reg_from_reply(l, (const Common__Informations__Registration *)resp, &nr,
	    err, sizeof(err));
	protobuf_c_message_free_unpacked(resp, NULL);
	if (rc == -1) {
		call_failed(l, "RegisterNode", -2, err);
		retry_later(l, now);
		return;
	}
	call_ok(l);
	l->losses = mgr_losses(l->mgr);
	nr.generation = ++l->generation;
	nr.registered_at = (int64_t)time(NULL);
	/* Stored before anyone is told (DESIGN.md); a failure to store costs
	 * only the offline start after a restart. */
	(void)store_reg_save(l->db, &nr);

	id_to_hex(l->id, hex);
	log_info("registered %s with manager %s: broker %s:%u, %zu topic%s (generation %llu)",
	    hex, mgr_target(l->mgr), nr.broker_host, nr.broker_port, nr.ntopics,
	    nr.ntopics == 1 ? "" : "s", (unsigned long long)nr.generation);
	pthread_mutex_lock(&l->lock);
	reg_free(&l->reg);
	l->reg = nr;
	l->have_reg = true;
	l->registered = true;
	l->ever_registered = true;
	/* A manager that registers us again thinks us connected. */
	if (l->draining)
		enqueue(l, JOB_NODE_STATUS, NULL, 0);
	pthread_mutex_unlock(&l->lock);
	l->backoff_ms = BACKOFF_MIN_MS;
	l->next_probe = now + PROBE_MS;
	l->push_pending = true;
	l->next_push = now;
}

static void
do_probe(struct link *l)
{
	Common__System__Empty empty = COMMON__SYSTEM__EMPTY__INIT;
	ProtobufCMessage *resp = NULL;
	char err[512];
	int rc;

	rc = call(l, M_IS_AVAILABLE, &empty.base, &common__system__ok__descriptor, &resp,
	    err, sizeof(err));
	if (rc == 0 && mgr_losses(l->mgr) != l->losses) {
		protobuf_c_message_free_unpacked(resp, NULL);
		log_info("the connection to the manager was reset; registering again");
		go_offline(l, daemon_now_ms());
		return;
	}
	if (rc == 0) {
		protobuf_c_message_free_unpacked(resp, NULL);
		l->next_probe = daemon_now_ms() + PROBE_MS;
		return;
	}
	call_failed(l, "IsAvailable", rc, err);
	log_warnx("lost the manager; registering again when it answers");
	go_offline(l, daemon_now_ms());
}

static void
do_push(struct link *l)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__RegistrationNotice n;
	Common__System__PairId pid;
	struct reg r;
	int rc;

	pthread_mutex_lock(&l->lock);
	rc = reg_copy(&r, &l->reg);
	pthread_mutex_unlock(&l->lock);
	if (rc == -1) {
		l->next_push = daemon_now_ms() + PUSH_RETRY_MS;
		return;
	}
	reg_to_notice(&r, &n, &pid);
	m.body_case = MANTA__IPC__MSG__BODY_REGISTRATION;
	m.registration = &n;
	if (ipc_call_ok(l->cfg->run_dir, IPC_BEAT, &m, PUSH_TIMEOUT_MS) == 0) {
		if (l->push_failing)
			log_info("mantad-beat took the registration (generation %llu)",
			    (unsigned long long)r.generation);
		else
			log_debug("mantad-beat took the registration (generation %llu)",
			    (unsigned long long)r.generation);
		l->push_pending = false;
		l->push_failing = false;
	} else {
		if (!l->push_failing)
			log_warnx("unable to hand the registration to mantad-beat;"
			    " retrying every second");
		l->push_failing = true;
		l->next_push = daemon_now_ms() + PUSH_RETRY_MS;
	}
	reg_free(&r);
}

/* SetSystemSummary needs a fresh sample from mantad-res. */
static int
summary_call(struct link *l, Common__System__PairId *pid, char *err, size_t errlen)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT, *rep = NULL;
	Manta__Ipc__SnapshotRequest sr = MANTA__IPC__SNAPSHOT_REQUEST__INIT;
	Common__Informations__SetSystemSummaryRequest req =
	    COMMON__INFORMATIONS__SET_SYSTEM_SUMMARY_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	int rc;

	sr.fresh = true;
	m.body_case = MANTA__IPC__MSG__BODY_SNAPSHOT_REQ;
	m.snapshot_req = &sr;
	if (ipc_call(l->cfg->run_dir, IPC_RES, &m, &rep, RES_TIMEOUT_MS) == -1 ||
	    rep->body_case != MANTA__IPC__MSG__BODY_SNAPSHOT || rep->snapshot->metrics == NULL) {
		if (rep != NULL)
			ipc_msg_free(rep);
		log_warnx("set_system_summary: no snapshot from mantad-res");
		report_local(l, ERROR_ID_RESOURCE,
		    "set_system_summary: the node's resource monitor did not answer");
		return -3;	/* handled: nothing to retry */
	}
	req.node_id = pid;
	req.metrics_snapshot = rep->snapshot->metrics;
	rc = call(l, M_SET_SYSTEM_SUMMARY, &req.base, &common__system__ok__descriptor, &resp,
	    err, errlen);
	ipc_msg_free(rep);
	if (resp != NULL)
		protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

static int
run_job(struct link *l, const struct job *j, const char **what, char *err, size_t errlen)
{
	Common__System__PairId pid;
	ProtobufCMessage *resp = NULL, *req = NULL;
	int rc = -1;

	id_to_pair(l->id, &pid);
	switch (j->kind) {
	case JOB_NODE_STATUS: {
		Common__Informations__NodeStatus ns = COMMON__INFORMATIONS__NODE_STATUS__INIT;

		*what = "SetNodeStatus";
		ns.node_id = &pid;
		/* A drained node takes no task: the manager hears it as
		 * DISCONNECTED until the drain ends (its heartbeats go on). */
		pthread_mutex_lock(&l->lock);
		ns.status = l->draining ?
		    COMMON__INFORMATIONS__NODE_STATUS_ENUM__DISCONNECTED :
		    COMMON__INFORMATIONS__NODE_STATUS_ENUM__CONNECTED;
		pthread_mutex_unlock(&l->lock);
		log_info("SetNodeStatus: %s", ns.status ==
		    COMMON__INFORMATIONS__NODE_STATUS_ENUM__DISCONNECTED ?
		    "DISCONNECTED (draining)" : "CONNECTED");
		rc = call(l, M_SET_NODE_STATUS, &ns.base, &common__system__ok__descriptor,
		    &resp, err, errlen);
		break;
	}
	case JOB_SUMMARY:
		*what = "SetSystemSummary";
		return summary_call(l, &pid, err, errlen);
	case JOB_OVERVIEWS: {
		Common__Informations__DatasetOverviews d =
		    COMMON__INFORMATIONS__DATASET_OVERVIEWS__INIT;

		*what = "SetOverviews";
		d.node_id = &pid;
		if ((d.content = overviews_build(l->cfg)) == NULL)
			return -3;
		rc = call(l, M_SET_OVERVIEWS, &d.base, &common__system__ok__descriptor,
		    &resp, err, errlen);
		overviews_free(d.content);
		break;
	}
	case JOB_ERROR:
		*what = "SendError";
		req = protobuf_c_message_unpack(&common__system__error__descriptor, NULL,
		    j->len, j->buf);
		if (req == NULL)
			return -3;
		rc = call(l, M_SEND_ERROR, req, &common__system__ok__descriptor, &resp,
		    err, errlen);
		protobuf_c_message_free_unpacked(req, NULL);
		break;
	}
	if (resp != NULL)
		protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

static void
do_job(struct link *l, struct job *j)
{
	const char *what = "call";
	char err[512];
	bool stopping;
	int rc;

	rc = run_job(l, j, &what, err, sizeof(err));
	if (rc == 0 || rc == -3) {
		if (rc == 0)
			call_ok(l);
		job_free(j);
		return;
	}
	if (unreachable(rc)) {
		/* Keep it for when the manager is back. */
		pthread_mutex_lock(&l->lock);
		j->next = l->head;
		l->head = j;
		if (l->tail == NULL)
			l->tail = j;
		l->njobs++;
		pthread_mutex_unlock(&l->lock);
		call_failed(l, what, rc, err);
		log_warnx("lost the manager; registering again when it answers");
		go_offline(l, daemon_now_ms());
		return;
	}
	pthread_mutex_lock(&l->lock);
	stopping = l->stop;
	pthread_mutex_unlock(&l->lock);
	if (rc == 1 && stopping)	/* CANCELLED: ours, by link_stop */
		log_info("%s cancelled: stopping", what);
	else
		log_warnx("manager refused %s: %s; dropping it", what, err);
	job_free(j);
}

void
link_logs_notify(struct link *l)
{
	pthread_mutex_lock(&l->lock);
	l->logs_pending = true;
	l->logs_gen++;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

/* The manager answered OK for r (do_logs noted it in register.ack as soon
 * as the answer came: a kill after that does not send it again): the row
 * leaves the outbox. A database too busy to take it now is retried from
 * the note in memory, never by sending the row again. */
static void
logs_answered(struct link *l, const struct logrow *r)
{
	char *key;

	if (l->acked_seq != r->seq && (key = strdup(r->key)) != NULL) {
		free(l->acked_key);
		l->acked_key = key;
		l->acked_seq = r->seq;
	}
	if (store_logs_sent(l->db, r->seq, (int64_t)time(NULL) * 1000) == -1)
		l->next_logs = daemon_now_ms() + LOGS_RETRY_MS;
	l->logs_refused = 0;
}

/* Whether the manager already answered OK for r (in this run, or before a
 * restart, as register.ack says): then it is not sent again. */
static bool
logs_known(const struct link *l, const struct logrow *r)
{
	return l->acked_seq == r->seq && l->acked_key != NULL &&
	    strcmp(l->acked_key, r->key) == 0;
}

static void
logs_refused(struct link *l, const struct logrow *r, const char *err, long long now)
{
	if (l->logs_refused_seq != r->seq) {
		l->logs_refused_seq = r->seq;
		l->logs_refused = 0;
	}
	if (++l->logs_refused >= LOGS_REFUSED_MAX) {
		log_warnx("manager refused the logs of task %s %d times (%s); dropping"
		    " them", r->task_id, l->logs_refused, err);
		(void)store_logs_sent(l->db, r->seq, (int64_t)time(NULL) * 1000);
		l->logs_refused = 0;
	} else {
		log_warnx("manager refused the logs of task %s: %s; retrying", r->task_id,
		    err);
		l->next_logs = now + ((long long)LOGS_RETRY_MS << l->logs_refused);
	}
}

/* Sends the oldest row of the log outbox with AddTaskLogs: one
 * common.system.Logs{content, timestamp} per call. */
static void
do_logs(struct link *l)
{
	Common__System__Logs lg = COMMON__SYSTEM__LOGS__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	const ProtobufCMessage *msgs[1];
	ProtobufCMessage *resp = NULL;
	struct logrow r;
	char err[512];
	uint64_t gen;
	long long now;
	int rc, timeout;

	pthread_mutex_lock(&l->lock);
	gen = l->logs_gen;
	pthread_mutex_unlock(&l->lock);
	if ((rc = store_logs_next(l->db, &r)) != 1) {
		if (rc == -1) {
			l->next_logs = daemon_now_ms() + LOGS_RETRY_MS;
			return;
		}
		pthread_mutex_lock(&l->lock);
		if (l->logs_gen == gen)
			l->logs_pending = false;
		pthread_mutex_unlock(&l->lock);
		return;
	}
	if (logs_known(l, &r)) {
		log_info("task %s: logs %s were answered OK before: not sent again",
		    r.task_id, r.key);
		logs_answered(l, &r);
		logrow_free(&r);
		return;
	}
	lg.content.data = r.content;
	lg.content.len = r.len;
	ts.seconds = r.created_ms / 1000;
	ts.nanos = (int32_t)(r.created_ms % 1000) * 1000000;
	lg.timestamp = &ts;
	msgs[0] = &lg.base;
	timeout = CALL_TIMEOUT_MS + (int)(r.len >> 20) * LOGS_MS_PER_MIB;
	rc = mgr_call_stream(l->mgr, M_ADD_TASK_LOGS, msgs, 1, &common__system__ok__descriptor,
	    &resp, timeout, err, sizeof(err));
	if (rc == 0)
		(void)store_ack_write(l->ack_fd, r.seq, r.key);	/* first of all */
	if (resp != NULL)
		protobuf_c_message_free_unpacked(resp, NULL);
	now = daemon_now_ms();
	if (rc == 0) {
		call_ok(l);
		log_info("task %s: logs sent to the manager (%zu bytes, %s)", r.task_id, r.len,
		    r.key);
		logs_answered(l, &r);
	} else if (unreachable(rc)) {
		call_failed(l, "AddTaskLogs", rc, err);
		log_warnx("lost the manager; task logs kept until it answers");
		go_offline(l, now);
	} else if (rc == -1 || rc == 1) {
		/* A local failure, or CANCELLED: we are stopping. */
		log_debug("AddTaskLogs: %s", err);
		l->next_logs = now + LOGS_RETRY_MS;
	} else {
		logs_refused(l, &r, err, now);
	}
	logrow_free(&r);
}

static void
wait_until(struct link *l, long long deadline)
{
	struct timespec ts;

	if (deadline < 0) {
		pthread_cond_wait(&l->cond, &l->lock);
		return;
	}
	ts.tv_sec = (time_t)(deadline / 1000);
	ts.tv_nsec = (long)(deadline % 1000) * 1000000;
	(void)pthread_cond_timedwait(&l->cond, &l->lock, &ts);
}

static long long
earliest(long long a, long long b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

static void *
worker(void *arg)
{
	struct link *l = arg;

	pthread_mutex_lock(&l->lock);
	while (!l->stop) {
		long long now = daemon_now_ms(), next = -1;

		if (l->closing && !(l->registered && l->head != NULL)) {
			/* Queued calls sent (or no manager to send them to):
			 * nothing new starts, link_stop may cancel. */
			l->flushed = true;
			pthread_cond_broadcast(&l->flushed_cond);
			pthread_cond_wait(&l->cond, &l->lock);
			continue;
		}
		if (l->registered && l->head != NULL) {
			struct job *j = l->head;

			l->head = j->next;
			if (l->head == NULL)
				l->tail = NULL;
			l->njobs--;
			j->next = NULL;
			pthread_mutex_unlock(&l->lock);
			do_job(l, j);
			pthread_mutex_lock(&l->lock);
			continue;
		}
		if (l->registered && l->logs_pending && now >= l->next_logs) {
			pthread_mutex_unlock(&l->lock);
			do_logs(l);
			pthread_mutex_lock(&l->lock);
			continue;
		}
		if (!l->registered && now >= l->next_register) {
			pthread_mutex_unlock(&l->lock);
			do_register(l);
			pthread_mutex_lock(&l->lock);
			continue;
		}
		if (l->push_pending && now >= l->next_push) {
			pthread_mutex_unlock(&l->lock);
			do_push(l);
			pthread_mutex_lock(&l->lock);
			continue;
		}
		if (l->registered && now >= l->next_probe) {
			pthread_mutex_unlock(&l->lock);
			do_probe(l);
			pthread_mutex_lock(&l->lock);
			continue;
		}
		next = l->registered ? l->next_probe : l->next_register;
		if (l->push_pending)
			next = earliest(next, l->next_push);
		if (l->registered && l->logs_pending)
			next = earliest(next, l->next_logs);
		wait_until(l, next);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

static void
link_ack_close(struct link *l)
{
	if (l->ack_fd != -1)
		(void)close(l->ack_fd);
	free(l->acked_key);
}

struct link *
link_start(const struct manta_cfg *c, struct mgr *m,
    struct manta_id id, const struct platform *p, const struct reg *stored)
{
	pthread_condattr_t ca;
	struct link *l;
	int e;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->cfg = c;
	/* The thread's own connection: a SQLite connection is used by one
	 * thread at a time (SQLITE_OPEN_NOMUTEX), and each keeps its own
	 * transactions; the main thread has another. */
	if ((l->db = store_open(c->state_dir)) == NULL) {
		free(l);
		return NULL;
	}
	l->mgr = m;
	l->id = id;
	l->plat = p;
	l->backoff_ms = BACKOFF_MIN_MS;
	l->next_register = daemon_now_ms();
	l->logs_pending = true;		/* rows left from an earlier run */
	/* The row the manager answered before a kill (if it is still in the
	 * outbox, it is marked sent, not sent again). */
	l->ack_fd = store_ack_open(c->state_dir);
	(void)store_ack_read(l->ack_fd, &l->acked_seq, &l->acked_key);
	if (stored != NULL) {
		/* Generations keep increasing across restarts. */
		l->generation = stored->generation;
		if (id_equal(stored->node_id, id) && reg_copy(&l->reg, stored) == 0)
			l->have_reg = true;
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_cond_init(&l->flushed_cond, &ca);
	pthread_condattr_destroy(&ca);
	if ((e = pthread_create(&l->thread, NULL, worker, l)) != 0) {
		errno = e;
		log_warn("unable to start the manager thread");
		pthread_cond_destroy(&l->cond);
		pthread_cond_destroy(&l->flushed_cond);
		pthread_mutex_destroy(&l->lock);
		reg_free(&l->reg);
		db_close(l->db);
		link_ack_close(l);
		free(l);
		return NULL;
	}
	return l;
}

/* The calls queued last (the DISCONNECTED of a stop's drain, an error
 * report) still go out; nothing new starts (registration, probes, logs):
 * cancelling them would leave the manager without the node's last word. */
void
link_close(struct link *l)
{
	pthread_mutex_lock(&l->lock);
	l->closing = true;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

bool
link_flushed(struct link *l)
{
	bool f;

	pthread_mutex_lock(&l->lock);
	f = l->flushed;
	pthread_mutex_unlock(&l->lock);
	return f;
}

void
link_stop(struct link *l, int wait_ms)
{
	struct job *j;
	long long end;

	if (l == NULL)
		return;
	link_close(l);
	pthread_mutex_lock(&l->lock);
	end = daemon_now_ms() + (long long)wait_ms;
	while (!l->flushed && daemon_now_ms() < end) {
		struct timespec ts = { (time_t)(end / 1000), (long)(end % 1000) * 1000000 };

		(void)pthread_cond_timedwait(&l->flushed_cond, &l->lock, &ts);
	}
	if (!l->flushed)
		log_warnx("the manager did not take the last call%s in time: cancelling",
		    l->njobs > 1 ? "s" : "");
	l->stop = true;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
	mgr_cancel(l->mgr);
	pthread_join(l->thread, NULL);
	if (l->njobs > 0)
		log_info("dropping %zu unsent manager request%s", l->njobs,
		    l->njobs == 1 ? "" : "s");
	while ((j = l->head) != NULL) {
		l->head = j->next;
		job_free(j);
	}
	reg_free(&l->reg);
	db_close(l->db);
	link_ack_close(l);
	pthread_cond_destroy(&l->cond);
	pthread_cond_destroy(&l->flushed_cond);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

void
link_drain(struct link *l, bool on)
{
	pthread_mutex_lock(&l->lock);
	l->draining = on;
	enqueue(l, JOB_NODE_STATUS, NULL, 0);
	pthread_mutex_unlock(&l->lock);
}

void
link_status(struct link *l, struct link_status *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&l->lock);
	st->registered = l->registered;
	st->draining = l->draining;
	st->state = l->registered ? "online" : l->ever_registered ? "offline" : "registering";
	if (l->have_reg) {
		st->generation = l->reg.generation;
		snprintf(st->broker, sizeof(st->broker), "%s:%u", l->reg.broker_host,
		    l->reg.broker_port);
	}
	pthread_mutex_unlock(&l->lock);
}

int
link_registration(struct link *l, struct reg *out)
{
	int rc = 0;

	pthread_mutex_lock(&l->lock);
	if (l->have_reg)
		rc = reg_copy(out, &l->reg) == 0 ? 1 : 0;
	pthread_mutex_unlock(&l->lock);
	return rc;
}
