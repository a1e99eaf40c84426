/* announce: a run's transitions and what they tell the other daemons.
 * Everything is stored in exec.db first (store.c), in one transaction,
 * and only then handed to the senders (worker.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "db.h"
#include "json.h"
#include "log.h"

#include "exec.h"

#define TOPIC_UPDATE "manager/update_task_status"
#define CONTENT_MAX 4000

static const char *const state_names[RS_COUNT] = {
	"QUEUED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "STOPPED",
};

const char *
run_state_name(enum run_state s)
{
	return (unsigned)s < RS_COUNT ? state_names[s] : "UNKNOWN";
}

int
run_state_parse(const char *s)
{
	for (int i = 0; s != NULL && i < RS_COUNT; i++)
		if (strcmp(s, state_names[i]) == 0)
			return i;
	return -1;
}

bool
run_state_final(enum run_state s)
{
	return s == RS_COMPLETED || s == RS_FAILED || s == RS_STOPPED;
}

static Common__Tasks__TaskStatus
wire_status(enum run_state s)
{
	switch (s) {
	case RS_QUEUED:
	case RS_PENDING:
		return COMMON__TASKS__TASK_STATUS__PENDING;
	case RS_RUNNING:
		return COMMON__TASKS__TASK_STATUS__RUNNING;
	case RS_COMPLETED:
		return COMMON__TASKS__TASK_STATUS__COMPLETED;
	case RS_FAILED:
		return COMMON__TASKS__TASK_STATUS__FAILED;
	case RS_STOPPED:
		return COMMON__TASKS__TASK_STATUS__STOPPED;
	default:
		return COMMON__TASKS__TASK_STATUS__UNSPECIFIED;
	}
}

/* Packs m into a malloc'd buffer. */
static uint8_t *
pack_msg(const ipc_msg *m, size_t *len)
{
	uint8_t *buf = NULL;

	if (ipc_msg_encode(m, &buf, len) == -1)
		return NULL;
	return buf;
}

static uint8_t *
pack_update(const struct exec *x, const struct run *r, enum run_state st,
    char *key, size_t keylen, size_t *len)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__Publish p = MANTA__IPC__PUBLISH__INIT;
	Common__Tasks__TaskUpdate u = COMMON__TASKS__TASK_UPDATE__INIT;
	Common__System__PairId swarm = COMMON__SYSTEM__PAIR_ID__INIT;
	Common__System__PairId node = COMMON__SYSTEM__PAIR_ID__INIT;
	Common__System__PairId task = COMMON__SYSTEM__PAIR_ID__INIT;
	char sh[ID_HEX_LEN + 1], th[ID_HEX_LEN + 1];
	uint8_t *payload, *out;

	id_to_pair(r->swarm, &swarm);
	id_to_pair(x->node_id, &node);
	id_to_pair(r->task, &task);
	u.swarm_id = &swarm;
	u.node_id = &node;
	u.task_id = &task;
	u.iteration = r->iteration;
	u.circular = r->circular;
	u.task_status = wire_status(st);
	if ((payload = malloc(common__tasks__task_update__get_packed_size(&u) + 1))
	    == NULL)
		return NULL;
	p.payload.len = common__tasks__task_update__pack(&u, payload);
	p.payload.data = payload;
	p.topic = (char *)TOPIC_UPDATE;
	p.qos = 1;
	/* The senders' peers drop a repeated key: name the swarm too, and
	 * the run (a forgotten round deployed again is another run). */
	id_to_hex(r->swarm, sh);
	id_to_hex(r->task, th);
	snprintf(key, keylen, "%s:%s:%u:%u:%lld:%s", sh, th, r->iteration,
	    r->circular, (long long)r->id, run_state_name(st));
	p.key = key;
	m.body_case = MANTA__IPC__MSG__BODY_PUBLISH;
	m.publish = &p;
	out = pack_msg(&m, len);
	free(payload);
	return out;
}

static uint8_t *
pack_error(const struct exec *x, const struct manta_id *swarm,
    const struct manta_id *task, uint32_t iteration, uint32_t circular,
    uint32_t error_id, const char *content, size_t *len)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__ReportError re = MANTA__IPC__REPORT_ERROR__INIT;
	Common__System__Error e = COMMON__SYSTEM__ERROR__INIT;
	Common__System__PairId ps = COMMON__SYSTEM__PAIR_ID__INIT;
	Common__System__PairId pn = COMMON__SYSTEM__PAIR_ID__INIT;
	Common__System__PairId pt = COMMON__SYSTEM__PAIR_ID__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	struct timespec now;
	char text[CONTENT_MAX + 1];

	snprintf(text, sizeof(text), "%s", content);
	id_to_pair(*swarm, &ps);
	id_to_pair(x->node_id, &pn);
	id_to_pair(*task, &pt);
	clock_gettime(CLOCK_REALTIME, &now);
	ts.seconds = now.tv_sec;
	ts.nanos = (int32_t)now.tv_nsec;
	e.swarm_id = &ps;
	e.node_id = &pn;
	e.task_id = &pt;
	e.iteration = iteration;
	e.circular = circular;
	e.timestamp = &ts;
	e.error_id = error_id;
	e.content = text;
	re.error = &e;
	m.body_case = MANTA__IPC__MSG__BODY_REPORT_ERROR;
	m.report_error = &re;
	return pack_msg(&m, len);
}

static void
post(struct exec *x, const char *dest, int64_t seq, const uint8_t *msg,
    size_t len)
{
	struct sender *s = strcmp(dest, IPC_BEAT) == 0 ? x->to_beat :
	    x->to_register;

	if (s != NULL && sender_post(s, seq, msg, len) == 0)
		x->unacked++;
}

static int
set_status(sqlite3 *db, const struct run *r, enum run_state st,
    const char *reason, int exit_code, int64_t *tseq)
{
	sqlite3_stmt *s;
	long long now = wall_ms();
	int rc;

	if (sqlite3_prepare_v2(db, "UPDATE run SET status = ?, reason = ?,"
	    " exit_code = ?, started_at = CASE WHEN ? THEN ? ELSE started_at END,"
	    " finished_at = CASE WHEN ? THEN ? ELSE finished_at END"
	    " WHERE id = ?", -1, &s, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(s, 1, run_state_name(st), -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, reason ? reason : "", -1, SQLITE_STATIC);
	if (exit_code >= 0)
		sqlite3_bind_int(s, 3, exit_code);
	else
		sqlite3_bind_null(s, 3);
	sqlite3_bind_int(s, 4, st == RS_RUNNING);
	sqlite3_bind_int64(s, 5, now);
	sqlite3_bind_int(s, 6, run_state_final(st));
	sqlite3_bind_int64(s, 7, now);
	sqlite3_bind_int64(s, 8, r->id);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		goto fail;
	if (sqlite3_prepare_v2(db, "INSERT INTO transition (run, status, at)"
	    " VALUES (?, ?, ?)", -1, &s, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(s, 1, r->id);
	sqlite3_bind_text(s, 2, run_state_name(st), -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, now);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		goto fail;
	*tseq = sqlite3_last_insert_rowid(db);
	return 0;
fail:
	log_warnx("sqlite: recording a transition: %s", sqlite3_errmsg(db));
	return -1;
}

/* The audit trail (audit.h): task_started when a run is RUNNING,
 * task_ended at its final state, with how and why it ended. */
static void
audit_transition(struct exec *x, const struct run *r, enum run_state st,
    const char *reason, int exit_code, uint32_t error_id)
{
	char sh[ID_HEX_LEN + 1], th[ID_HEX_LEN + 1];
	json_t *f;

	if (x->audit == NULL || (st != RS_RUNNING && !run_state_final(st)))
		return;
	id_to_hex(r->swarm, sh);
	id_to_hex(r->task, th);
	if ((f = json_pack("{sssssIsI}", "swarm_id", sh, "task_id", th,
	    "iteration", (json_int_t)r->iteration, "circular",
	    (json_int_t)r->circular)) == NULL)
		return;
	if (st == RS_RUNNING) {
		json_object_set_new(f, "image", json_str_lossy(r->image));
		json_object_set_new(f, "container", json_str_lossy(r->cid));
		json_object_set_new(f, "runtime", json_str_lossy(x->runtime_name));
		json_object_set_new(f, "userns", json_boolean(x->userns));
		if (x->userns)
			json_object_set_new(f, "host_uid",
			    json_integer((json_int_t)x->userns_uid));
		(void)audit_append(x->audit, "task_started", f);
		return;
	}
	json_object_set_new(f, "status", json_string(run_state_name(st)));
	json_object_set_new(f, "exit_code", exit_code >= 0 ?
	    json_integer(exit_code) : json_null());
	json_object_set_new(f, "reason", reason && *reason ?
	    json_str_lossy(reason) : json_null());
	if (error_id != 0)
		json_object_set_new(f, "error_id", json_integer(error_id));
	(void)audit_append(x->audit, "task_ended", f);
}

int
announce_transition(struct exec *x, struct run *r, enum run_state st,
    const char *reason, int exit_code, uint32_t error_id)
{
	char key[160], th[ID_HEX_LEN + 1], content[CONTENT_MAX + 1];
	uint8_t *upd = NULL, *err = NULL;
	size_t ulen = 0, elen = 0;
	int64_t tseq = 0, useq = 0, eseq = 0;
	bool publish = st == RS_RUNNING || run_state_final(st);

	/* run.c asks first; this keeps a bug from announcing twice. */
	if (!run_move_ok(r->state, st)) {
		log_warnx("run %lld: no move from %s to %s", (long long)r->id,
		    run_state_name(r->state), run_state_name(st));
		return -1;
	}
	id_to_hex(r->task, th);
	if (publish && (upd = pack_update(x, r, st, key, sizeof(key), &ulen))
	    == NULL)
		goto oom;
	if (error_id != 0) {
		snprintf(content, sizeof(content), "task %s iteration %u circular"
		    " %u: %s", th, r->iteration, r->circular,
		    reason && *reason ? reason : run_state_name(st));
		if ((err = pack_error(x, &r->swarm, &r->task, r->iteration,
		    r->circular, error_id, content, &elen)) == NULL)
			goto oom;
	}
	if (db_begin(x->db) == -1)
		goto fail;
	if (set_status(x->db, r, st, reason, exit_code, &tseq) == -1 ||
	    (upd != NULL && store_outbox_add(x->db, IPC_BEAT, key, upd, ulen,
	    tseq, &useq) == -1) ||
	    (err != NULL && store_outbox_add(x->db, IPC_REGISTER, "", err, elen,
	    0, &eseq) == -1) ||
	    db_commit(x->db) == -1) {
		db_rollback(x->db);
		goto fail;
	}
	log_info("task %s iteration %u circular %u: %s -> %s%s%s", th,
	    r->iteration, r->circular, run_state_name(r->state),
	    run_state_name(st), reason && *reason ? ": " : "",
	    reason ? reason : "");
	r->state = st;
	if (st == RS_PENDING)
		r->pending_us = hist_now_us();
	else if (st == RS_RUNNING && r->pending_us != 0)
		hist_observe(&x->launch, hist_now_us() - r->pending_us);
	if (st == RS_RUNNING)
		r->started_at = wall_ms();
	if (upd != NULL)
		post(x, IPC_BEAT, useq, upd, ulen);
	if (err != NULL)
		post(x, IPC_REGISTER, eseq, err, elen);
	audit_transition(x, r, st, reason, exit_code, error_id);
	free(upd);
	free(err);
	return 0;
oom:
	log_warnx("out of memory announcing task %s", th);
fail:
	free(upd);
	free(err);
	return -1;
}

void
announce_error(struct exec *x, const struct manta_id *swarm,
    const struct manta_id *task, uint32_t iteration, uint32_t circular,
    uint32_t error_id, const char *fmt, ...)
{
	char content[CONTENT_MAX + 1];
	uint8_t *msg;
	size_t len = 0;
	int64_t seq;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(content, sizeof(content), fmt, ap);
	va_end(ap);
	log_warnx("%s", content);
	if ((msg = pack_error(x, swarm, task, iteration, circular, error_id,
	    content, &len)) == NULL)
		return;
	if (store_outbox_add(x->db, IPC_REGISTER, "", msg, len, 0, &seq) == 0)
		post(x, IPC_REGISTER, seq, msg, len);
	free(msg);
}

int
announce_logs(struct exec *x, struct run *r, const uint8_t *frame, size_t len,
    uint64_t upto, bool final)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__TaskLogs tl = MANTA__IPC__TASK_LOGS__INIT;
	Common__System__PairId swarm = COMMON__SYSTEM__PAIR_ID__INIT;
	Common__System__PairId task = COMMON__SYSTEM__PAIR_ID__INIT;
	char key[160], sh[ID_HEX_LEN + 1], th[ID_HEX_LEN + 1];
	uint8_t *msg = NULL;
	size_t mlen = 0;
	int64_t seq = 0;
	uint64_t old_sent = r->log_sent;
	uint32_t old_seq = r->log_seq;
	bool old_done = r->logs_done;

	id_to_hex(r->swarm, sh);
	id_to_hex(r->task, th);
	if (final)
		snprintf(key, sizeof(key), "%s:%s:%u:%u:%lld:final", sh, th,
		    r->iteration, r->circular, (long long)r->id);
	else
		snprintf(key, sizeof(key), "%s:%s:%u:%u:%lld:%u", sh, th,
		    r->iteration, r->circular, (long long)r->id, r->log_seq);
	id_to_pair(r->swarm, &swarm);
	id_to_pair(r->task, &task);
	tl.swarm_id = &swarm;
	tl.task_id = &task;
	tl.iteration = r->iteration;
	tl.circular = r->circular;
	tl.content.data = (uint8_t *)frame;
	tl.content.len = len;
	tl.key = key;
	m.body_case = MANTA__IPC__MSG__BODY_TASK_LOGS;
	m.task_logs = &tl;
	/* No frame: a final with nothing left to say (all streamed). */
	if (frame != NULL && (msg = pack_msg(&m, &mlen)) == NULL)
		return -1;
	r->log_sent = upto;
	if (!final)
		r->log_seq++;
	else
		r->logs_done = true;
	if (db_begin(x->db) == -1)
		goto fail;
	if ((msg != NULL && store_outbox_add(x->db, IPC_REGISTER, key, msg,
	    mlen, 0, &seq) == -1) || store_run_set(x->db, r) == -1 ||
	    db_commit(x->db) == -1) {
		db_rollback(x->db);
		goto fail;
	}
	if (msg != NULL)
		post(x, IPC_REGISTER, seq, msg, mlen);
	free(msg);
	if (final)
		logstore_done(x, r);
	return 0;
fail:
	r->log_sent = old_sent;
	r->log_seq = old_seq;
	r->logs_done = old_done;
	free(msg);
	return -1;
}

int
announce_replay(struct exec *x)
{
	sqlite3_stmt *st;
	int n = 0, rc;

	if (sqlite3_prepare_v2(x->db, "SELECT seq, dest, msg FROM outbox"
	    " ORDER BY seq", -1, &st, NULL) != SQLITE_OK) {
		log_warnx("sqlite: %s", sqlite3_errmsg(x->db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *dest = (const char *)sqlite3_column_text(st, 1);

		post(x, dest != NULL ? dest : IPC_REGISTER,
		    sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 2),
		    (size_t)sqlite3_column_bytes(st, 2));
		n++;
	}
	sqlite3_finalize(st);
	if (n > 0)
		log_info("%d stored messages to deliver again", n);
	return rc == SQLITE_DONE ? n : -1;
}

void
announce_acked(struct exec *x, int64_t seq)
{
	if (x->unacked > 0)
		x->unacked--;
	if (seq > 0)		/* <= 0: never stored (announce_unstored) */
		(void)store_outbox_done(x->db, seq);
}

void
announce_unstored(struct exec *x, const struct run *r, enum run_state st,
    const char *reason, uint32_t error_id)
{
	char key[160], th[ID_HEX_LEN + 1], content[CONTENT_MAX + 1];
	uint8_t *msg;
	size_t len = 0;

	id_to_hex(r->task, th);
	log_warnx("task %s iteration %u circular %u: %s (%s; told without"
	    " being stored: exec.db refuses writes)", th, r->iteration,
	    r->circular, run_state_name(st), reason ? reason : "");
	if ((msg = pack_update(x, r, st, key, sizeof(key), &len)) != NULL) {
		post(x, IPC_BEAT, -1, msg, len);
		free(msg);
	}
	if (error_id == 0)
		return;
	snprintf(content, sizeof(content), "task %s iteration %u circular %u:"
	    " %s", th, r->iteration, r->circular, reason && *reason ? reason :
	    run_state_name(st));
	if ((msg = pack_error(x, &r->swarm, &r->task, r->iteration,
	    r->circular, error_id, content, &len)) != NULL) {
		post(x, IPC_REGISTER, -1, msg, len);
		free(msg);
	}
}
