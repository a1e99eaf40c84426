/* inbox: every command received, stored in beat.db (table inbox) before it
 * is handed to its daemon and deleted once that daemon answered. The MQTT
 * library acknowledges a QoS 1 message as it arrives, so from then on the
 * command is ours to keep: a stop, a crash or SIGKILL before the hand-off
 * leaves it here, and the next start hands it over first (session.c). A
 * command stored and handed over but not yet deleted when beat dies is
 * handed over twice; mantad-exec takes a known round as the same command. */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"

#include "beat.h"

struct inbox {
	sqlite3 *db;
	sqlite3_stmt *st_add, *st_del;
};

static void
warn(const struct inbox *in, const char *what)
{
	log_warnx("inbox: unable to %s: %s", what, sqlite3_errmsg(in->db));
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
	return in;
}

void
inbox_close(struct inbox *in)
{
	if (in == NULL)
		return;
	sqlite3_finalize(in->st_add);
	sqlite3_finalize(in->st_del);
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
