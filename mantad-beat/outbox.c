/* outbox: publications other daemons handed to beat, kept in
 * <state_dir>/beat.db until the broker has them (PUBACK for QoS 1), then
 * forgotten. The keys of delivered rows are remembered a while so that a
 * sender retrying after a lost acknowledgement does not publish twice. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"

#include "beat.h"

#define DELIVERED_KEEP 10000	/* keys of delivered rows remembered */

static const char *const migrations[] = {
	"CREATE TABLE outbox ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" topic TEXT NOT NULL,"
	" payload BLOB NOT NULL,"
	" qos INTEGER NOT NULL,"
	" key TEXT UNIQUE,"
	" created INTEGER NOT NULL);"
	"CREATE TABLE delivered ("
	" key TEXT PRIMARY KEY,"
	" seq INTEGER NOT NULL);"
	"CREATE INDEX delivered_seq ON delivered(seq);",
	/* inbox.c: commands received and not yet handed over */
	"CREATE TABLE inbox ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" topic TEXT NOT NULL,"
	" payload BLOB NOT NULL);",
	/* inbox.c: this database's random name, the prefix of hand-off ids */
	"CREATE TABLE inbox_name (name TEXT NOT NULL);",
};

struct outbox {
	sqlite3 *db;
	sqlite3_stmt *st_dup, *st_add, *st_next, *st_key, *st_del,
	    *st_remember, *st_trim;
	uint64_t count;
	/* The highest seq stored so far (AUTOINCREMENT: never reused): no row
	 * lies past it, so outbox_next asks SQLite nothing beyond it. The
	 * heartbeat's tick pumps the outbox every second (issue 14). */
	uint64_t last_seq;
};

static int
prep(struct outbox *ob, sqlite3_stmt **st, const char *sql)
{
	if (sqlite3_prepare_v3(ob->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
	    NULL) != SQLITE_OK) {
		log_warnx("unable to prepare \"%s\": %s", sql,
		    sqlite3_errmsg(ob->db));
		return -1;
	}
	return 0;
}

sqlite3 *
outbox_db_open(const char *state_dir)
{
	sqlite3 *db;
	char *path = NULL;

	if (asprintf(&path, "%s/beat.db", state_dir) < 0) {
		log_warnx("unable to open %s/beat.db: out of memory", state_dir);
		return NULL;
	}
	db = db_open(path, migrations,
	    (int)(sizeof(migrations) / sizeof(migrations[0])));
	free(path);
	/* FULL: a publication acknowledged to its sender, or a command the
	 * broker has our PUBACK for, survives a power loss too (NORMAL may
	 * take the last commits back). */
	if (db != NULL && db_durable(db) == -1) {
		db_close(db);
		db = NULL;
	}
	return db;
}

struct outbox *
outbox_open(const char *state_dir)
{
	struct outbox *ob;
	sqlite3_stmt *st = NULL;

	if ((ob = calloc(1, sizeof(*ob))) == NULL) {
		log_warnx("unable to open the outbox: out of memory");
		return NULL;
	}
	if ((ob->db = outbox_db_open(state_dir)) == NULL)
		goto fail;
	if (prep(ob, &ob->st_dup,
	    "SELECT 1 FROM outbox WHERE key = ?1"
	    " UNION ALL SELECT 1 FROM delivered WHERE key = ?1") == -1 ||
	    prep(ob, &ob->st_add, "INSERT INTO outbox(topic, payload, qos, key,"
	    " created) VALUES (?, ?, ?, ?, strftime('%s','now'))") == -1 ||
	    prep(ob, &ob->st_next, "SELECT seq, topic, payload, qos FROM outbox"
	    " WHERE seq > ? ORDER BY seq LIMIT 1") == -1 ||
	    prep(ob, &ob->st_key, "SELECT key FROM outbox WHERE seq = ?") == -1 ||
	    prep(ob, &ob->st_del, "DELETE FROM outbox WHERE seq = ?") == -1 ||
	    prep(ob, &ob->st_remember, "INSERT OR REPLACE INTO delivered(key, seq)"
	    " VALUES (?, ?)") == -1 ||
	    prep(ob, &ob->st_trim, "DELETE FROM delivered WHERE seq <="
	    " (SELECT seq FROM delivered ORDER BY seq DESC LIMIT 1 OFFSET ?)") == -1 ||
	    prep(ob, &st, "SELECT count(*), coalesce(max(seq), 0) FROM outbox") == -1)
		goto fail;
	if (sqlite3_step(st) != SQLITE_ROW) {
		log_warnx("unable to count the outbox: %s", sqlite3_errmsg(ob->db));
		goto fail;
	}
	ob->count = (uint64_t)sqlite3_column_int64(st, 0);
	ob->last_seq = (uint64_t)sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	return ob;
fail:
	sqlite3_finalize(st);
	outbox_close(ob);
	return NULL;
}

void
outbox_close(struct outbox *ob)
{
	if (ob == NULL)
		return;
	sqlite3_finalize(ob->st_dup);
	sqlite3_finalize(ob->st_add);
	sqlite3_finalize(ob->st_next);
	sqlite3_finalize(ob->st_key);
	sqlite3_finalize(ob->st_del);
	sqlite3_finalize(ob->st_remember);
	sqlite3_finalize(ob->st_trim);
	if (ob->db != NULL)
		db_close(ob->db);
	free(ob);
}

static void
step_warn(struct outbox *ob, const char *what)
{
	log_warnx("unable to %s: %s", what, sqlite3_errmsg(ob->db));
}

enum ob_add
outbox_add(struct outbox *ob, const char *topic, const uint8_t *p, size_t len,
    int qos, const char *key)
{
	bool keyed = key != NULL && key[0] != '\0';
	int rc;

	if (keyed) {
		sqlite3_bind_text(ob->st_dup, 1, key, -1, SQLITE_STATIC);
		rc = sqlite3_step(ob->st_dup);
		sqlite3_reset(ob->st_dup);
		sqlite3_clear_bindings(ob->st_dup);
		if (rc == SQLITE_ROW)
			return OB_DUPLICATE;
		if (rc != SQLITE_DONE) {
			step_warn(ob, "look the outbox up");
			return OB_ERROR;
		}
	}
	if (ob->count >= OUTBOX_MAX_ROWS)
		return OB_FULL;
	sqlite3_bind_text(ob->st_add, 1, topic, -1, SQLITE_STATIC);
	/* A zero-length blob, not NULL: the column is NOT NULL. */
	sqlite3_bind_blob64(ob->st_add, 2, len > 0 ? (const void *)p : "", len,
	    SQLITE_STATIC);
	sqlite3_bind_int(ob->st_add, 3, qos);
	if (keyed)
		sqlite3_bind_text(ob->st_add, 4, key, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(ob->st_add, 4);
	rc = sqlite3_step(ob->st_add);
	sqlite3_reset(ob->st_add);
	sqlite3_clear_bindings(ob->st_add);
	if (rc != SQLITE_DONE) {
		step_warn(ob, "store a publication in the outbox");
		return OB_ERROR;
	}
	ob->count++;
	ob->last_seq = (uint64_t)sqlite3_last_insert_rowid(ob->db);
	return OB_STORED;
}

void
ob_row_clear(struct ob_row *row)
{
	free(row->topic);
	free(row->payload);
	memset(row, 0, sizeof(*row));
}

int
outbox_next(struct outbox *ob, uint64_t after, struct ob_row *row)
{
	int rc, ret = -1;

	memset(row, 0, sizeof(*row));
	if (ob->count == 0 || after >= ob->last_seq)
		return 0;
	sqlite3_bind_int64(ob->st_next, 1, (sqlite3_int64)after);
	rc = sqlite3_step(ob->st_next);
	if (rc == SQLITE_DONE)
		ret = 0;
	else if (rc != SQLITE_ROW)
		step_warn(ob, "read the outbox");
	else {
		const void *blob = sqlite3_column_blob(ob->st_next, 2);
		const unsigned char *t = sqlite3_column_text(ob->st_next, 1);

		row->seq = (uint64_t)sqlite3_column_int64(ob->st_next, 0);
		row->len = (size_t)sqlite3_column_bytes(ob->st_next, 2);
		row->qos = sqlite3_column_int(ob->st_next, 3);
		row->topic = strdup(t != NULL ? (const char *)t : "");
		row->payload = malloc(row->len > 0 ? row->len : 1);
		if (row->topic == NULL || row->payload == NULL) {
			log_warnx("unable to read the outbox: out of memory");
			ob_row_clear(row);
		} else {
			if (row->len > 0)
				memcpy(row->payload, blob, row->len);
			ret = 1;
		}
	}
	sqlite3_reset(ob->st_next);
	sqlite3_clear_bindings(ob->st_next);
	return ret;
}

/* 1 deleted, 0 no such row, -1 error. */
static int
delete_row(struct outbox *ob, uint64_t seq)
{
	int rc;

	sqlite3_bind_int64(ob->st_del, 1, (sqlite3_int64)seq);
	rc = sqlite3_step(ob->st_del);
	sqlite3_reset(ob->st_del);
	sqlite3_clear_bindings(ob->st_del);
	if (rc != SQLITE_DONE) {
		step_warn(ob, "delete from the outbox");
		return -1;
	}
	return sqlite3_changes(ob->db) > 0;
}

/* count is what outbox_next trusts: lowered only once the row is gone for
 * good (its transaction committed). */
static void
count_gone(struct outbox *ob, int deleted)
{
	if (deleted > 0 && ob->count > 0)
		ob->count--;
}

int
outbox_done(struct outbox *ob, uint64_t seq)
{
	char *key = NULL;
	int rc, ret = 0, deleted = 0;

	if (db_begin(ob->db) == -1)
		return -1;
	sqlite3_bind_int64(ob->st_key, 1, (sqlite3_int64)seq);
	rc = sqlite3_step(ob->st_key);
	if (rc == SQLITE_ROW && sqlite3_column_type(ob->st_key, 0) == SQLITE_TEXT)
		key = strdup((const char *)sqlite3_column_text(ob->st_key, 0));
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		step_warn(ob, "read the outbox");
		ret = -1;
	}
	sqlite3_reset(ob->st_key);
	sqlite3_clear_bindings(ob->st_key);
	if (ret == 0 && key != NULL) {
		sqlite3_bind_text(ob->st_remember, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ob->st_remember, 2, (sqlite3_int64)seq);
		if (sqlite3_step(ob->st_remember) != SQLITE_DONE) {
			step_warn(ob, "remember a delivered key");
			ret = -1;
		}
		sqlite3_reset(ob->st_remember);
		sqlite3_clear_bindings(ob->st_remember);
		sqlite3_bind_int(ob->st_trim, 1, DELIVERED_KEEP);
		if (ret == 0 && sqlite3_step(ob->st_trim) != SQLITE_DONE) {
			step_warn(ob, "trim the delivered keys");
			ret = -1;
		}
		sqlite3_reset(ob->st_trim);
		sqlite3_clear_bindings(ob->st_trim);
	}
	free(key);
	if (ret == 0)
		ret = deleted = delete_row(ob, seq);
	if (ret >= 0 && (ret = db_commit(ob->db)) == 0)
		count_gone(ob, deleted);
	else if (ret < 0)
		db_rollback(ob->db);
	return ret;
}

int
outbox_drop(struct outbox *ob, uint64_t seq)
{
	int deleted = delete_row(ob, seq);

	count_gone(ob, deleted);
	return deleted < 0 ? -1 : 0;
}

sqlite3 *
outbox_db(const struct outbox *ob)
{
	return ob->db;
}

uint64_t
outbox_count(const struct outbox *ob)
{
	return ob->count;
}
