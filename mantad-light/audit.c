/* audit: who read what, and when: one row per Light call in
 * <state_dir>/light.db (WAL, autocommit: a row is in the file when the
 * call's record is written, and a crash loses none that were). The table
 * keeps the last AUDIT_KEEP rows; older ones are deleted in batches.
 *
 * Each call is also appended to the node's hash-chained audit trail,
 * <state_dir>/audit.log (libcommon/audit.h, mantactl(8) AUDIT), which
 * mantad-beat and mantad-exec share: "dataset_access" for Local methods
 * (dataset, path), "world_call" for World ones (tag), both with the
 * method, the caller's ids, the bytes and the gRPC status. The file is
 * opened before the seccomp filter; appending needs flock, fstat,
 * newfstatat, pread64 and write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "audit.h"
#include "db.h"
#include "light.h"
#include "json.h"
#include "log.h"

#define AUDIT_KEEP	200000
#define AUDIT_PRUNE	1000	/* rows between two prunes */

static const char *const migrations[] = {
	"CREATE TABLE access ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" time TEXT NOT NULL,"		/* RFC 3339 UTC, milliseconds */
	" swarm_id TEXT NOT NULL,"
	" task_id TEXT NOT NULL,"
	" method TEXT NOT NULL,"	/* Local/GetBinaryData, World/SetGlobal... */
	" dataset TEXT,"		/* Local: dataset; World: tag or alias */
	" path TEXT,"
	" bytes INTEGER NOT NULL,"	/* payload bytes, both ways */
	" status INTEGER NOT NULL,"	/* gRPC status code */
	" token INTEGER NOT NULL,"	/* the call carried a task token */
	" ms INTEGER NOT NULL);"
	"CREATE INDEX access_task ON access(swarm_id, task_id);",
};

static struct {
	sqlite3 *db;
	sqlite3_stmt *ins, *prune;
	unsigned since_prune;
	struct audit *chain;
} A;

int
light_audit_open(const char *state_dir)
{
	char path[4096];

	/* jansson seeds its hash tables once, from /dev/urandom: now,
	 * before the filter, rather than at the first entry. */
	json_object_seed(0);
	if ((A.chain = audit_open(state_dir)) == NULL)
		return -1;

	snprintf(path, sizeof(path), "%s/light.db", state_dir);
	if ((A.db = db_open(path, migrations, sizeof(migrations) / sizeof(migrations[0]))) == NULL) {
		light_audit_close();
		return -1;
	}
	if (sqlite3_prepare_v2(A.db,
	    "INSERT INTO access(time, swarm_id, task_id, method, dataset, path, bytes,"
	    " status, token, ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &A.ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(A.db,
	    "DELETE FROM access WHERE id <= (SELECT max(id) FROM access) - ?", -1, &A.prune,
	    NULL) != SQLITE_OK) {
		log_warnx("%s: %s", path, sqlite3_errmsg(A.db));
		light_audit_close();
		return -1;
	}
	return 0;
}

static void
chain_append(const struct audit_rec *r, const char *sw, const char *tk)
{
	bool local = strncmp(r->method, "Local/", 6) == 0;
	json_t *f;

	if (A.chain == NULL || (f = json_object()) == NULL)
		return;
	json_object_set_new(f, "method", json_str_lossy(r->method));
	json_object_set_new(f, "swarm_id", json_string(sw));
	json_object_set_new(f, "task_id", json_string(tk));
	if (local) {
		json_object_set_new(f, "dataset", json_str_lossy(r->dataset));
		json_object_set_new(f, "path", json_str_lossy(r->path));
	} else
		json_object_set_new(f, "tag", json_str_lossy(r->dataset));
	json_object_set_new(f, "bytes", json_integer((json_int_t)r->bytes));
	json_object_set_new(f, "status", json_integer(r->status));
	json_object_set_new(f, "token", json_boolean(r->token));
	(void)audit_append(A.chain, local ? "dataset_access" : "world_call", f);
}

void
audit_record(const struct audit_rec *r)
{
	char sw[ID_HEX_LEN + 1], tk[ID_HEX_LEN + 1], when[96];
	struct timespec ts;
	struct tm tm;

	if (A.ins == NULL)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    (long)(ts.tv_nsec / 1000000) % 1000);
	id_to_hex(r->swarm, sw);
	id_to_hex(r->task, tk);
	chain_append(r, sw, tk);
	sqlite3_bind_text(A.ins, 1, when, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(A.ins, 2, sw, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(A.ins, 3, tk, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(A.ins, 4, r->method, -1, SQLITE_STATIC);
	if (r->dataset != NULL)
		sqlite3_bind_text(A.ins, 5, r->dataset, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(A.ins, 5);
	if (r->path != NULL)
		sqlite3_bind_text(A.ins, 6, r->path, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(A.ins, 6);
	sqlite3_bind_int64(A.ins, 7, (sqlite3_int64)r->bytes);
	sqlite3_bind_int(A.ins, 8, r->status);
	sqlite3_bind_int(A.ins, 9, r->token ? 1 : 0);
	sqlite3_bind_int64(A.ins, 10, r->ms);
	if (sqlite3_step(A.ins) != SQLITE_DONE)
		log_warnx("audit: unable to record a %s call: %s", r->method, sqlite3_errmsg(A.db));
	sqlite3_reset(A.ins);
	sqlite3_clear_bindings(A.ins);
	if (++A.since_prune >= AUDIT_PRUNE) {
		A.since_prune = 0;
		sqlite3_bind_int(A.prune, 1, AUDIT_KEEP);
		if (sqlite3_step(A.prune) != SQLITE_DONE)
			log_warnx("audit: unable to prune: %s", sqlite3_errmsg(A.db));
		sqlite3_reset(A.prune);
	}
}

void
light_audit_close(void)
{
	if (A.ins != NULL)
		sqlite3_finalize(A.ins);
	if (A.prune != NULL)
		sqlite3_finalize(A.prune);
	A.ins = A.prune = NULL;
	if (A.db != NULL)
		db_close(A.db);
	A.db = NULL;
	audit_close(A.chain);
	A.chain = NULL;
}
