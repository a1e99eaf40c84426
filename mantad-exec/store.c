/* store: mantad-exec's own database, <state_dir>/exec.db.
 *
 *   run         one row per round deployed here: its status, bundle,
 *               container, shim, log offsets, and the task token (never
 *               logged); one (swarm, task, iteration, circular) not
 *               forgotten (see store_run_insert) at most;
 *   transition  every status change of a run, in order;
 *   outbox      messages for beat (TaskUpdate) and register (ReportError,
 *               TaskLogs) not yet acknowledged, in order.
 *
 * A transition and its messages go in one transaction, before anyone is
 * told (DESIGN.md): after a crash, the outbox is replayed and nothing is
 * lost or told twice (beat drops a repeated key). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"

#include "exec.h"

static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE meta ("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL);"
	"CREATE TABLE run ("
	"  id INTEGER PRIMARY KEY,"
	"  swarm TEXT NOT NULL,"
	"  task TEXT NOT NULL,"
	"  iteration INTEGER NOT NULL,"
	"  circular INTEGER NOT NULL,"
	"  image TEXT NOT NULL,"
	"  alias TEXT NOT NULL,"
	"  gpu INTEGER NOT NULL,"
	"  script INTEGER NOT NULL,"
	"  status TEXT NOT NULL,"
	"  reason TEXT NOT NULL DEFAULT '',"
	"  exit_code INTEGER,"
	"  token TEXT NOT NULL,"
	"  cid TEXT NOT NULL DEFAULT '',"
	"  dir TEXT NOT NULL DEFAULT '',"
	"  log TEXT NOT NULL DEFAULT '',"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  shim_pid INTEGER NOT NULL DEFAULT 0,"
	"  shim_start INTEGER NOT NULL DEFAULT 0,"
	"  stop_reason TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  started_at INTEGER,"
	"  finished_at INTEGER,"
	"  log_sent INTEGER NOT NULL DEFAULT 0,"
	"  log_seq INTEGER NOT NULL DEFAULT 0,"
	"  logs_done INTEGER NOT NULL DEFAULT 0,"
	"  UNIQUE (swarm, task, iteration, circular));"
	"CREATE INDEX run_token ON run (token);"
	"CREATE INDEX run_task ON run (task);"
	"CREATE INDEX run_open ON run (logs_done, status);"
	"CREATE TABLE transition ("
	"  seq INTEGER PRIMARY KEY,"
	"  run INTEGER NOT NULL REFERENCES run (id) ON DELETE CASCADE,"
	"  status TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  announced INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX transition_run ON transition (run);"
	"CREATE TABLE outbox ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  dest TEXT NOT NULL,"
	"  key TEXT NOT NULL,"
	"  msg BLOB NOT NULL,"
	"  transition INTEGER);",
	/* 2: a round can be forgotten (stop_swarm, or FAILED before it ever
	 * ran): the reference's task table no longer has it, and the same
	 * round may come again. Only rounds not forgotten are unique. SQLite
	 * cannot drop a table constraint: rebuild run, and transition with it
	 * (dropping run would cascade into it). */
	"CREATE TABLE run2 ("
	"  id INTEGER PRIMARY KEY,"
	"  swarm TEXT NOT NULL,"
	"  task TEXT NOT NULL,"
	"  iteration INTEGER NOT NULL,"
	"  circular INTEGER NOT NULL,"
	"  image TEXT NOT NULL,"
	"  alias TEXT NOT NULL,"
	"  gpu INTEGER NOT NULL,"
	"  script INTEGER NOT NULL,"
	"  status TEXT NOT NULL,"
	"  reason TEXT NOT NULL DEFAULT '',"
	"  exit_code INTEGER,"
	"  token TEXT NOT NULL,"
	"  cid TEXT NOT NULL DEFAULT '',"
	"  dir TEXT NOT NULL DEFAULT '',"
	"  log TEXT NOT NULL DEFAULT '',"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  shim_pid INTEGER NOT NULL DEFAULT 0,"
	"  shim_start INTEGER NOT NULL DEFAULT 0,"
	"  stop_reason TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  started_at INTEGER,"
	"  finished_at INTEGER,"
	"  log_sent INTEGER NOT NULL DEFAULT 0,"
	"  log_seq INTEGER NOT NULL DEFAULT 0,"
	"  logs_done INTEGER NOT NULL DEFAULT 0,"
	"  forgotten INTEGER NOT NULL DEFAULT 0);"
	"INSERT INTO run2 SELECT *, 0 FROM run;"
	"CREATE TABLE transition2 ("
	"  seq INTEGER PRIMARY KEY,"
	"  run INTEGER NOT NULL REFERENCES run2 (id) ON DELETE CASCADE,"
	"  status TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  announced INTEGER NOT NULL DEFAULT 0);"
	"INSERT INTO transition2 SELECT * FROM transition;"
	"DROP TABLE transition;"
	"DROP TABLE run;"
	"ALTER TABLE run2 RENAME TO run;"
	"ALTER TABLE transition2 RENAME TO transition;"
	"CREATE UNIQUE INDEX run_round ON run (swarm, task, iteration,"
	"  circular) WHERE forgotten = 0;"
	"CREATE INDEX run_token ON run (token);"
	"CREATE INDEX run_task ON run (task);"
	"CREATE INDEX run_open ON run (logs_done, status);"
	"CREATE INDEX transition_run ON transition (run);",
};

#define SQLWARN(db, what) \
	log_warnx("sqlite: %s: %s", (what), sqlite3_errmsg(db))

sqlite3 *
store_open(const char *state_dir)
{
	char *path;
	sqlite3 *db;

	if ((path = path_join(state_dir, "exec.db")) == NULL)
		return NULL;
	db = db_open(path, migrations,
	    (int)(sizeof(migrations) / sizeof(migrations[0])));
	free(path);
	/* FULL: exec.db holds the outbox of task updates and logs. */
	if (db != NULL && db_durable(db) == -1) {
		db_close(db);
		return NULL;
	}
	return db;
}

static sqlite3_stmt *
prep(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		SQLWARN(db, sql);
		return NULL;
	}
	return st;
}

static int
step_done(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		SQLWARN(db, what);
		return -1;
	}
	return 0;
}

/* A round that ended FAILED before it ever ran (refused, its image not
 * got, its container not created) is forgotten: the reference never
 * records a deployment that failed, and runs it when it comes again.
 * 1 if one was, 0 if none, -1 on error. */
static int
forget_unstarted(sqlite3 *db, const char *swarm, const char *task,
    const struct run *r)
{
	sqlite3_stmt *st;

	if ((st = prep(db, "UPDATE run SET forgotten = 1 WHERE swarm = ? AND"
	    " task = ? AND iteration = ? AND circular = ? AND forgotten = 0"
	    " AND status = 'FAILED' AND started_at IS NULL")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, swarm, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, task, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, r->iteration);
	sqlite3_bind_int64(st, 4, r->circular);
	if (step_done(db, st, "forgetting a failed round") == -1)
		return -1;
	return sqlite3_changes(db) > 0;
}

/* Records a new round: 0, or 1 if the round is known already (the
 * reference's same-round refusal), -1 on error. Known: a row of the round
 * not forgotten (store_runs_forget, forget_unstarted); forgotten rows
 * stay for mantactl tasks until pruned. */
int
store_run_insert(sqlite3 *db, struct run *r, const char *status,
    const char *reason)
{
	char swarm[ID_HEX_LEN + 1], task[ID_HEX_LEN + 1];
	sqlite3_stmt *st;
	int rc, tries = 0;

	id_to_hex(r->swarm, swarm);
	id_to_hex(r->task, task);
again:
	if ((st = prep(db, "INSERT INTO run (swarm, task, iteration, circular,"
	    " image, alias, gpu, script, status, reason, token, created_at)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, swarm, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, task, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, r->iteration);
	sqlite3_bind_int64(st, 4, r->circular);
	sqlite3_bind_text(st, 5, r->image ? r->image : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, r->alias ? r->alias : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, r->gpu);
	sqlite3_bind_int(st, 8, r->script);
	sqlite3_bind_text(st, 9, status, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, reason ? reason : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, r->token, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 12, wall_ms());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT && tries++ == 0) {
		switch (forget_unstarted(db, swarm, task, r)) {
		case 1:
			goto again;
		case 0:
			return 1;
		default:
			return -1;
		}
	}
	if (rc == SQLITE_CONSTRAINT)
		return 1;
	if (rc != SQLITE_DONE) {
		SQLWARN(db, "inserting a run");
		return -1;
	}
	r->id = sqlite3_last_insert_rowid(db);
	return 0;
}

/* stop_swarm: the reference forgets the swarm's tasks, and runs any of
 * its rounds deployed again. The rows stay, marked. */
int
store_runs_forget(sqlite3 *db, const struct manta_id *swarm)
{
	char sh[ID_HEX_LEN + 1];
	sqlite3_stmt *st;

	id_to_hex(*swarm, sh);
	if ((st = prep(db, "UPDATE run SET forgotten = 1 WHERE swarm = ? AND"
	    " forgotten = 0")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, sh, -1, SQLITE_STATIC);
	return step_done(db, st, "forgetting a swarm's rounds");
}

int
store_run_delete(sqlite3 *db, int64_t id)
{
	sqlite3_stmt *st;

	if ((st = prep(db, "DELETE FROM run WHERE id = ?")) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return step_done(db, st, "deleting a run never prepared");
}

int
store_run_set(sqlite3 *db, const struct run *r)
{
	sqlite3_stmt *st;

	if ((st = prep(db, "UPDATE run SET cid = ?, dir = ?, log = ?,"
	    " attempts = ?, shim_pid = ?, shim_start = ?, stop_reason = ?,"
	    " log_sent = ?, log_seq = ?, logs_done = ? WHERE id = ?")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, r->cid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->dir ? r->dir : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->log ? r->log : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, r->attempts);
	sqlite3_bind_int64(st, 5, r->shim);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)r->shim_start);
	if (r->stop_reason != NULL)
		sqlite3_bind_text(st, 7, r->stop_reason, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 7);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)r->log_sent);
	sqlite3_bind_int64(st, 9, r->log_seq);
	sqlite3_bind_int(st, 10, r->logs_done);
	sqlite3_bind_int64(st, 11, r->id);
	return step_done(db, st, "updating a run");
}

int
store_run_reason(sqlite3 *db, const struct run *r, const char *reason)
{
	sqlite3_stmt *st;

	if ((st = prep(db, "UPDATE run SET reason = ? WHERE id = ?")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, r->id);
	return step_done(db, st, "updating a run's reason");
}

static char *
col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return strdup(t ? (const char *)t : "");
}

int
store_runs_load(struct exec *x)
{
	sqlite3_stmt *st;
	int rc, n = 0;

	if ((st = prep(x->db, "SELECT id, swarm, task, iteration, circular,"
	    " image, alias, gpu, script, status, token, cid, dir, log, attempts,"
	    " shim_pid, shim_start, stop_reason, started_at, log_sent, log_seq,"
	    " logs_done FROM run WHERE logs_done = 0 OR status IN"
	    " ('QUEUED', 'PENDING', 'RUNNING') ORDER BY id")) == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct run *r;
		const char *s;
		int state;

		if ((r = run_new()) == NULL) {
			sqlite3_finalize(st);
			return -1;
		}
		r->id = sqlite3_column_int64(st, 0);
		id_parse_hex((const char *)sqlite3_column_text(st, 1), &r->swarm);
		id_parse_hex((const char *)sqlite3_column_text(st, 2), &r->task);
		r->iteration = (uint32_t)sqlite3_column_int64(st, 3);
		r->circular = (uint32_t)sqlite3_column_int64(st, 4);
		r->image = col_dup(st, 5);
		r->alias = col_dup(st, 6);
		r->gpu = sqlite3_column_int(st, 7) != 0;
		r->script = sqlite3_column_int(st, 8) != 0;
		state = run_state_parse((const char *)sqlite3_column_text(st, 9));
		r->state = state < 0 ? RS_FAILED : (enum run_state)state;
		s = (const char *)sqlite3_column_text(st, 10);
		snprintf(r->token, sizeof(r->token), "%s", s ? s : "");
		s = (const char *)sqlite3_column_text(st, 11);
		snprintf(r->cid, sizeof(r->cid), "%s", s ? s : "");
		r->dir = col_dup(st, 12);
		r->log = col_dup(st, 13);
		r->attempts = sqlite3_column_int(st, 14);
		r->shim = (pid_t)sqlite3_column_int64(st, 15);
		r->shim_start = (unsigned long long)sqlite3_column_int64(st, 16);
		if (sqlite3_column_type(st, 17) != SQLITE_NULL)
			r->stop_reason = col_dup(st, 17);
		r->stop_requested = r->stop_reason != NULL;
		r->started_at = sqlite3_column_int64(st, 18);
		r->log_sent = (uint64_t)sqlite3_column_int64(st, 19);
		r->log_seq = (uint32_t)sqlite3_column_int64(st, 20);
		r->logs_done = sqlite3_column_int(st, 21) != 0;
		if (r->image == NULL || r->alias == NULL || r->dir == NULL ||
		    r->log == NULL) {
			run_free(r);
			sqlite3_finalize(st);
			return -1;
		}
		TAILQ_INSERT_TAIL(&x->runs, r, all);
		if (r->state == RS_QUEUED)
			TAILQ_INSERT_TAIL(&x->queue, r, q);
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		SQLWARN(x->db, "loading runs");
		return -1;
	}
	return n;
}

int
store_run_find(sqlite3 *db, const struct manta_id *swarm,
    const struct manta_id *task, const char *token, struct run_row *out)
{
	char sh[ID_HEX_LEN + 1], th[ID_HEX_LEN + 1];
	sqlite3_stmt *st;
	const char *sql;
	int rc;

	if (token != NULL)
		sql = "SELECT id, swarm, task, iteration, circular, status, log"
		    " FROM run WHERE token = ?1";
	else if (swarm != NULL)
		sql = "SELECT id, swarm, task, iteration, circular, status, log"
		    " FROM run WHERE swarm = ?1 AND task = ?2"
		    " ORDER BY id DESC LIMIT 1";
	else
		sql = "SELECT id, swarm, task, iteration, circular, status, log"
		    " FROM run WHERE task = ?2 ORDER BY id DESC LIMIT 1";
	if ((st = prep(db, sql)) == NULL)
		return -1;
	if (token != NULL)
		sqlite3_bind_text(st, 1, token, -1, SQLITE_STATIC);
	else {
		if (swarm != NULL) {
			id_to_hex(*swarm, sh);
			sqlite3_bind_text(st, 1, sh, -1, SQLITE_STATIC);
		}
		id_to_hex(*task, th);
		sqlite3_bind_text(st, 2, th, -1, SQLITE_STATIC);
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *s;

		out->id = sqlite3_column_int64(st, 0);
		id_parse_hex((const char *)sqlite3_column_text(st, 1), &out->swarm);
		id_parse_hex((const char *)sqlite3_column_text(st, 2), &out->task);
		out->iteration = (uint32_t)sqlite3_column_int64(st, 3);
		out->circular = (uint32_t)sqlite3_column_int64(st, 4);
		s = (const char *)sqlite3_column_text(st, 5);
		snprintf(out->status, sizeof(out->status), "%s", s ? s : "");
		s = (const char *)sqlite3_column_text(st, 6);
		snprintf(out->log, sizeof(out->log), "%s", s ? s : "");
		out->running = strcmp(out->status, "RUNNING") == 0;
		sqlite3_finalize(st);
		return 1;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	SQLWARN(db, "finding a run");
	return -1;
}

int
store_outbox_add(sqlite3 *db, const char *dest, const char *key,
    const uint8_t *msg, size_t len, int64_t transition, int64_t *seq)
{
	sqlite3_stmt *st;

	if ((st = prep(db, "INSERT INTO outbox (dest, key, msg, transition)"
	    " VALUES (?, ?, ?, ?)")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, dest, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key ? key : "", -1, SQLITE_STATIC);
	sqlite3_bind_blob64(st, 3, msg, len, SQLITE_STATIC);
	if (transition > 0)
		sqlite3_bind_int64(st, 4, transition);
	else
		sqlite3_bind_null(st, 4);
	if (step_done(db, st, "storing a message") == -1)
		return -1;
	*seq = sqlite3_last_insert_rowid(db);
	return 0;
}

int
store_outbox_done(sqlite3 *db, int64_t seq)
{
	sqlite3_stmt *st;

	if (db_begin(db) == -1)
		return -1;
	if ((st = prep(db, "UPDATE transition SET announced = 1 WHERE seq ="
	    " (SELECT transition FROM outbox WHERE seq = ?)")) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, seq);
	if (step_done(db, st, "marking a transition announced") == -1)
		goto fail;
	if ((st = prep(db, "DELETE FROM outbox WHERE seq = ?")) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, seq);
	if (step_done(db, st, "deleting a message") == -1)
		goto fail;
	return db_commit(db);
fail:
	db_rollback(db);
	return -1;
}

int
store_meta_get_int(sqlite3 *db, const char *key, int *value)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = prep(db, "SELECT value FROM meta WHERE key = ?")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*value = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int
store_meta_set_int(sqlite3 *db, const char *key, int value)
{
	sqlite3_stmt *st;

	if ((st = prep(db, "INSERT OR REPLACE INTO meta (key, value)"
	    " VALUES (?, ?)")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, value);
	return step_done(db, st, "writing meta");
}

int
store_counts(sqlite3 *db, unsigned counts[RS_COUNT])
{
	sqlite3_stmt *st;
	int rc;

	memset(counts, 0, sizeof(unsigned) * RS_COUNT);
	if ((st = prep(db, "SELECT status, count(*) FROM run GROUP BY status"))
	    == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int s = run_state_parse((const char *)sqlite3_column_text(st, 0));
		if (s >= 0)
			counts[s] = (unsigned)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static char *
rfc3339(sqlite3_stmt *st, int i)
{
	char buf[80];
	time_t t;
	struct tm tm;
	long long ms;

	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return strdup("");
	ms = sqlite3_column_int64(st, i);
	t = (time_t)(ms / 1000);
	gmtime_r(&t, &tm);
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (int)(ms % 1000));
	return strdup(buf);
}

int
store_task_list(sqlite3 *db, Manta__Ipc__TaskList *list)
{
	sqlite3_stmt *st;
	size_t cap = 0;
	int rc;

	manta__ipc__task_list__init(list);
	if ((st = prep(db, "SELECT swarm, task, status, iteration, circular,"
	    " image, exit_code, started_at, finished_at, reason FROM"
	    " (SELECT * FROM run ORDER BY id DESC LIMIT ?) ORDER BY id")) == NULL)
		return -1;
	sqlite3_bind_int(st, 1, TASKS_REPLY_MAX);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		Manta__Ipc__TaskInfo *ti;

		if (list->n_tasks == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			void *p = realloc(list->tasks, ncap * sizeof(*list->tasks));
			if (p == NULL)
				break;
			list->tasks = p;
			cap = ncap;
		}
		if ((ti = malloc(sizeof(*ti))) == NULL)
			break;
		manta__ipc__task_info__init(ti);
		ti->swarm_id = col_dup(st, 0);
		ti->task_id = col_dup(st, 1);
		ti->status = col_dup(st, 2);
		ti->iteration = (uint32_t)sqlite3_column_int64(st, 3);
		ti->circular = (uint32_t)sqlite3_column_int64(st, 4);
		ti->image = col_dup(st, 5);
		if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
			ti->has_exit_code = true;
			ti->exit_code = sqlite3_column_int(st, 6);
		}
		ti->started_at = rfc3339(st, 7);
		ti->finished_at = rfc3339(st, 8);
		ti->reason = col_dup(st, 9);
		list->tasks[list->n_tasks++] = ti;
	}
	sqlite3_finalize(st);
	return 0;
}

void
store_task_list_free(Manta__Ipc__TaskList *list)
{
	for (size_t i = 0; i < list->n_tasks; i++) {
		Manta__Ipc__TaskInfo *ti = list->tasks[i];

		free(ti->swarm_id);
		free(ti->task_id);
		free(ti->status);
		free(ti->image);
		free(ti->started_at);
		free(ti->finished_at);
		free(ti->reason);
		free(ti);
	}
	free(list->tasks);
	list->tasks = NULL;
	list->n_tasks = 0;
}

/* Forgets the oldest finished runs beyond KEEP_RUNS, with their logs;
 * never one with an unannounced transition. */
void
store_prune(sqlite3 *db)
{
	static const char sel[] = "SELECT id, log FROM run WHERE logs_done = 1"
	    " AND status IN ('COMPLETED', 'FAILED', 'STOPPED') AND NOT EXISTS"
	    " (SELECT 1 FROM transition t WHERE t.run = run.id AND"
	    " t.announced = 0) ORDER BY id DESC LIMIT -1 OFFSET ?";
	sqlite3_stmt *st, *del = NULL;
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;

	if ((st = prep(db, sel)) == NULL)
		return;
	sqlite3_bind_int(st, 1, KEEP_RUNS);
	/* Collect first: no deleting under a running SELECT. */
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *log = (const char *)sqlite3_column_text(st, 1);

		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 64;
			int64_t *p = realloc(ids, ncap * sizeof(*ids));
			if (p == NULL)
				break;
			ids = p;
			cap = ncap;
		}
		ids[n++] = sqlite3_column_int64(st, 0);
		if (log != NULL && log[0] != '\0')
			(void)unlink(log);
	}
	sqlite3_finalize(st);
	if (n == 0 || (del = prep(db, "DELETE FROM run WHERE id = ?")) == NULL ||
	    db_begin(db) == -1)
		goto out;
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(del, 1, ids[i]);
		(void)sqlite3_step(del);
		sqlite3_reset(del);
	}
	if (db_commit(db) == -1)
		db_rollback(db);
	else
		log_info("forgot the %zu oldest finished runs", n);
out:
	if (del != NULL)
		sqlite3_finalize(del);
	free(ids);
}
