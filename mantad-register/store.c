/* store: mantad-register's own database, <state_dir>/register.db: the last
 * Registration the manager gave (so beat can reach the broker while the
 * manager is away, DESIGN.md "Start") and a few facts about the identity. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "register.h"

static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE meta ("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL);"
	"CREATE TABLE registration ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  node_id TEXT NOT NULL,"
	"  broker_host TEXT NOT NULL,"
	"  broker_port INTEGER NOT NULL,"
	"  generation INTEGER NOT NULL,"
	"  registered_at INTEGER NOT NULL);"
	"CREATE TABLE registration_topic ("
	"  pos INTEGER PRIMARY KEY,"
	"  topic TEXT NOT NULL);",
};

sqlite3 *
store_open(const char *state_dir)
{
	char *path;
	sqlite3 *db;

	if ((path = path_join(state_dir, "register.db")) == NULL)
		return NULL;
	db = db_open(path, migrations, (int)(sizeof(migrations) / sizeof(migrations[0])));
	free(path);
	return db;
}

int
store_meta_get(sqlite3 *db, const char *key, char *buf, size_t len)
{
	sqlite3_stmt *st;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &st,
	    NULL) != SQLITE_OK) {
		log_warnx("sqlite: %s", sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
		rc = 1;
		break;
	case SQLITE_DONE:
		rc = 0;
		break;
	default:
		log_warnx("sqlite: reading meta %s: %s", key, sqlite3_errmsg(db));
	}
	sqlite3_finalize(st);
	return rc;
}

int
store_meta_set(sqlite3 *db, const char *key, const char *value)
{
	sqlite3_stmt *st;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
	    -1, &st, NULL) != SQLITE_OK) {
		log_warnx("sqlite: %s", sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
	else
		log_warnx("sqlite: writing meta %s: %s", key, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc;
}

void
reg_free(struct reg *r)
{
	free(r->broker_host);
	for (size_t i = 0; i < r->ntopics; i++)
		free(r->topics[i]);
	free(r->topics);
	memset(r, 0, sizeof(*r));
}

int
reg_copy(struct reg *dst, const struct reg *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->node_id = src->node_id;
	dst->broker_port = src->broker_port;
	dst->generation = src->generation;
	dst->registered_at = src->registered_at;
	if ((dst->broker_host = strdup(src->broker_host ? src->broker_host : "")) == NULL)
		return -1;
	if (src->ntopics > 0 &&
	    (dst->topics = calloc(src->ntopics, sizeof(char *))) == NULL) {
		reg_free(dst);
		return -1;
	}
	for (size_t i = 0; i < src->ntopics; i++) {
		if ((dst->topics[i] = strdup(src->topics[i])) == NULL) {
			reg_free(dst);
			return -1;
		}
		dst->ntopics++;
	}
	return 0;
}

int
store_reg_load(sqlite3 *db, struct reg *r)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, s;

	memset(r, 0, sizeof(*r));
	if (sqlite3_prepare_v2(db, "SELECT node_id, broker_host, broker_port, generation,"
	    " registered_at FROM registration WHERE id = 1", -1, &st, NULL) != SQLITE_OK)
		goto err;
	if ((s = sqlite3_step(st)) == SQLITE_DONE) {
		sqlite3_finalize(st);
		return 0;
	}
	if (s != SQLITE_ROW)
		goto err;
	if (id_parse_hex((const char *)sqlite3_column_text(st, 0), &r->node_id) == -1) {
		log_warnx("register.db: bad node id in the stored registration; ignoring it");
		sqlite3_finalize(st);
		return 0;
	}
	r->broker_host = strdup((const char *)sqlite3_column_text(st, 1));
	r->broker_port = (uint32_t)sqlite3_column_int(st, 2);
	r->generation = (uint64_t)sqlite3_column_int64(st, 3);
	r->registered_at = sqlite3_column_int64(st, 4);
	sqlite3_finalize(st);
	st = NULL;
	if (r->broker_host == NULL)
		goto err;

	if (sqlite3_prepare_v2(db, "SELECT topic FROM registration_topic ORDER BY pos",
	    -1, &st, NULL) != SQLITE_OK)
		goto err;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		char **t = realloc(r->topics, (r->ntopics + 1) * sizeof(char *));

		if (t == NULL)
			goto err;
		r->topics = t;
		if ((t[r->ntopics] = strdup((const char *)sqlite3_column_text(st, 0))) == NULL)
			goto err;
		r->ntopics++;
	}
	if (s != SQLITE_DONE)
		goto err;
	rc = 1;
err:
	if (rc == -1) {
		log_warnx("sqlite: loading the registration: %s", sqlite3_errmsg(db));
		reg_free(r);
	}
	sqlite3_finalize(st);
	return rc;
}

int
store_reg_save(sqlite3 *db, const struct reg *r)
{
	sqlite3_stmt *st = NULL;
	char hex[ID_HEX_LEN + 1];

	id_to_hex(r->node_id, hex);
	if (db_begin(db) == -1)
		return -1;
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO registration (id, node_id,"
	    " broker_host, broker_port, generation, registered_at)"
	    " VALUES (1, ?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		goto err;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->broker_host, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)r->broker_port);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)r->generation);
	sqlite3_bind_int64(st, 5, r->registered_at);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto err;
	sqlite3_finalize(st);
	st = NULL;
	if (db_exec(db, "DELETE FROM registration_topic") == -1)
		goto err;
	if (sqlite3_prepare_v2(db, "INSERT INTO registration_topic (pos, topic) VALUES (?, ?)",
	    -1, &st, NULL) != SQLITE_OK)
		goto err;
	for (size_t i = 0; i < r->ntopics; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int(st, 1, (int)i);
		sqlite3_bind_text(st, 2, r->topics[i], -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto err;
	}
	sqlite3_finalize(st);
	return db_commit(db);
err:
	log_warnx("sqlite: saving the registration: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	db_rollback(db);
	return -1;
}
