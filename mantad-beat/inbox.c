/* inbox: every command received, stored in beat.db (table inbox) before it
 * is handed to its daemon and deleted once that daemon answered. The MQTT
 * library acknowledges a QoS 1 message as it arrives, so from then on the
 * command is ours to keep: a stop, a crash or SIGKILL before the hand-off
 * leaves it here, and the next start hands it over first (session.c). A
 * command stored and handed over but not yet deleted when beat dies is
 * handed over twice: each hand-off carries an id (Command.handoff) made of
 * this database's random name and the row, the same on every attempt and
 * after a restart, and mantad-exec takes an id it has seen as done. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "db.h"
#include "log.h"

#include "beat.h"

struct inbox {
	sqlite3 *db;
	bool own;		/* db is ours to close (inbox_open_own) */
	sqlite3_stmt *st_add, *st_del;
	char name[ID_HEX_LEN + 1];	/* table inbox_name: hand-off id prefix */
};

static void
warn(const struct inbox *in, const char *what)
{
	log_warnx("inbox: unable to %s: %s", what, sqlite3_errmsg(in->db));
}

/* The database's name, made once: a new beat.db (state deleted) starts its
 * rows at 1 again, under a new name, so its ids never meet the old ones. */
static int
load_name(struct inbox *in)
{
	sqlite3_stmt *st = NULL;
	struct manta_id id;
	int rc = -1;

	if (sqlite3_prepare_v2(in->db, "SELECT name FROM inbox_name", -1, &st,
	    NULL) != SQLITE_OK)
		goto out;
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *n = (const char *)sqlite3_column_text(st, 0);

		if (n == NULL || strlen(n) != ID_HEX_LEN)
			goto out;
		memcpy(in->name, n, ID_HEX_LEN + 1);
		rc = 0;
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (id_random(&id) == -1) {
		log_warn("inbox: unable to make a name");
		return -1;
	}
	id_to_hex(id, in->name);
	if (sqlite3_prepare_v2(in->db, "INSERT INTO inbox_name(name) VALUES (?)",
	    -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(st, 1, in->name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
out:
	if (rc == -1)
		warn(in, "read or store its name");
	sqlite3_finalize(st);
	return rc;
}

struct inbox *
inbox_open(sqlite3 *db)
{
	struct inbox *in;

	if ((in = calloc(1, sizeof(*in))) == NULL)
		return NULL;
	in->db = db;
	if (sqlite3_prepare_v3(db, "INSERT INTO inbox(topic, payload) VALUES (?, ?)",
	    -1, SQLITE_PREPARE_PERSISTENT, &in->st_add, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db, "DELETE FROM inbox WHERE seq = ?", -1,
	    SQLITE_PREPARE_PERSISTENT, &in->st_del, NULL) != SQLITE_OK) {
		warn(in, "prepare");
		inbox_close(in);
		return NULL;
	}
	if (load_name(in) == -1) {
		inbox_close(in);
		return NULL;
	}
	return in;
}

struct inbox *
inbox_open_own(const char *state_dir)
{
	struct inbox *in;
	sqlite3 *db;

	if ((db = outbox_db_open(state_dir)) == NULL)
		return NULL;
	if ((in = inbox_open(db)) == NULL) {
		db_close(db);
		return NULL;
	}
	in->own = true;
	return in;
}

void
inbox_close(struct inbox *in)
{
	if (in == NULL)
		return;
	sqlite3_finalize(in->st_add);
	sqlite3_finalize(in->st_del);
	if (in->own)
		db_close(in->db);
	free(in);
}

uint64_t
inbox_add(struct inbox *in, const char *topic, const uint8_t *p, size_t len)
{
	uint64_t seq = 0;

	sqlite3_bind_text(in->st_add, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_blob(in->st_add, 2, len > 0 ? (const void *)p : "", (int)len,
	    SQLITE_STATIC);
	if (sqlite3_step(in->st_add) == SQLITE_DONE)
		seq = (uint64_t)sqlite3_last_insert_rowid(in->db);
	else
		warn(in, "store a command");
	sqlite3_reset(in->st_add);
	sqlite3_clear_bindings(in->st_add);
	return seq;
}

void
inbox_handoff(const struct inbox *in, uint64_t seq, char out[HANDOFF_LEN + 1])
{
	struct manta_id id;

	if (seq > 0) {
		snprintf(out, HANDOFF_LEN + 1, "%s-%" PRIu64, in->name, seq);
		return;
	}
	/* Not kept: unique to this command, retried in this run only. */
	if (id_random(&id) == -1) {
		out[0] = '\0';		/* none: each attempt is a new command */
		return;
	}
	id_to_hex(id, out);
}

void
inbox_done(struct inbox *in, uint64_t seq)
{
	if (seq == 0)
		return;
	sqlite3_bind_int64(in->st_del, 1, (sqlite3_int64)seq);
	if (sqlite3_step(in->st_del) != SQLITE_DONE)
		warn(in, "forget a command handed over");
	sqlite3_reset(in->st_del);
}

int
inbox_replay(struct inbox *in, void (*fn)(void *, uint64_t, char *, uint8_t *,
    size_t), void *arg)
{
	sqlite3_stmt *st;
	int n = 0, rc;

	if (sqlite3_prepare_v2(in->db, "SELECT seq, topic, payload FROM inbox"
	    " ORDER BY seq", -1, &st, NULL) != SQLITE_OK) {
		warn(in, "read");
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *blob = sqlite3_column_blob(st, 2);
		size_t len = (size_t)sqlite3_column_bytes(st, 2);
		char *topic = strdup((const char *)sqlite3_column_text(st, 1));
		uint8_t *p = malloc(len > 0 ? len : 1);

		if (topic == NULL || p == NULL) {
			free(topic);
			free(p);
			rc = SQLITE_NOMEM;
			break;
		}
		if (len > 0)
			memcpy(p, blob, len);
		fn(arg, (uint64_t)sqlite3_column_int64(st, 0), topic, p, len);
		n++;
	}
	if (rc != SQLITE_DONE)
		warn(in, "read");
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? n : -1;
}
