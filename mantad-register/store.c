/* store: mantad-register's own database, <state_dir>/register.db: the last
 * Registration the manager gave (so beat can reach the broker while the
 * manager is away, DESIGN.md "Start"), a few facts about the identity, and
 * the outbox of task logs not yet acknowledged by the manager (AddTaskLogs).
 *
 * The main thread (IPC) and the link thread each have their own connection
 * (store_open twice): SQLite orders their transactions (BEGIN IMMEDIATE,
 * the busy timeout), and no connection is ever used by two threads. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "file.h"
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
	/* 2: task logs from mantad-exec, kept until the manager has them */
	"CREATE TABLE task_logs ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  key TEXT NOT NULL UNIQUE,"
	"  swarm_id TEXT NOT NULL,"
	"  task_id TEXT NOT NULL,"
	"  iteration INTEGER NOT NULL,"
	"  circular INTEGER NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  created_ms INTEGER NOT NULL,"	/* unix ms, UTC: the Logs timestamp */
	"  content BLOB NOT NULL);"
	/* keys already sent, so that exec retrying a TaskLogs whose
	 * acknowledgement it missed does not send it twice */
	"CREATE TABLE task_logs_sent ("
	"  key TEXT PRIMARY KEY,"
	"  sent_ms INTEGER NOT NULL);",
};

#define SENT_KEYS_KEEP_S	"10000"	/* remembered keys of sent logs */

sqlite3 *
store_open(const char *state_dir)
{
	char *path;
	sqlite3 *db;

	if ((path = path_join(state_dir, "register.db")) == NULL)
		return NULL;
	db = db_open(path, migrations, (int)(sizeof(migrations) / sizeof(migrations[0])));
	free(path);
	/* FULL: task logs acknowledged to mantad-exec survive a power loss. */
	if (db != NULL && db_durable(db) == -1) {
		db_close(db);
		return NULL;
	}
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
	int rc;

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
	rc = db_commit(db);
	return rc;
err:
	log_warnx("sqlite: saving the registration: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	db_rollback(db);
	return -1;
}

/* ---- the task log outbox ---- */

int
store_logs_add(sqlite3 *db, const struct logrow *r, uint64_t max_total,
    char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	sqlite3_int64 total = 0;
	int rc = -1, s;

	if (db_begin(db) == -1) {
		snprintf(err, errlen, "database busy");
		return -1;
	}
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM task_logs WHERE key = ?1"
	    " UNION ALL SELECT 1 FROM task_logs_sent WHERE key = ?1", -1, &st,
	    NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(st, 1, r->key, -1, SQLITE_STATIC);
	if ((s = sqlite3_step(st)) == SQLITE_ROW) {
		rc = 0;		/* a duplicate: acknowledged, dropped */
		goto done;
	}
	if (s != SQLITE_DONE)
		goto dberr;
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "SELECT COALESCE(SUM(size), 0) FROM task_logs", -1, &st,
	    NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		goto dberr;
	total = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if ((uint64_t)total + r->len > max_total) {
		snprintf(err, errlen, "task log outbox full (%lld bytes waiting for the"
		    " manager, at most %llu)", (long long)total,
		    (unsigned long long)max_total);
		goto fail;
	}
	if (sqlite3_prepare_v2(db, "INSERT INTO task_logs (key, swarm_id, task_id,"
	    " iteration, circular, size, created_ms, content)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(st, 1, r->key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->swarm_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->task_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, r->iteration);
	sqlite3_bind_int64(st, 5, r->circular);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)r->len);
	sqlite3_bind_int64(st, 7, r->created_ms);
	sqlite3_bind_blob64(st, 8, r->content, r->len, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto dberr;
	rc = 1;
done:
	sqlite3_finalize(st);
	if (db_commit(db) == -1) {
		snprintf(err, errlen, "unable to commit to register.db");
		db_rollback(db);
		rc = -1;
	}
	return rc;
dberr:
	log_warnx("sqlite: storing task logs: %s", sqlite3_errmsg(db));
	snprintf(err, errlen, "unable to store the logs: %s", sqlite3_errmsg(db));
fail:
	sqlite3_finalize(st);
	db_rollback(db);
	return -1;
}

void
logrow_free(struct logrow *r)
{
	free(r->key);
	free(r->swarm_id);
	free(r->task_id);
	free(r->content);
	memset(r, 0, sizeof(*r));
}

static char *
col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return strdup(t ? (const char *)t : "");
}

int
store_logs_next(sqlite3 *db, struct logrow *r)
{
	sqlite3_stmt *st = NULL;
	const void *blob;
	int rc = -1, s;

	memset(r, 0, sizeof(*r));
	if (sqlite3_prepare_v2(db, "SELECT seq, key, swarm_id, task_id, iteration, circular,"
	    " created_ms, content FROM task_logs ORDER BY seq LIMIT 1", -1, &st,
	    NULL) != SQLITE_OK)
		goto out;
	if ((s = sqlite3_step(st)) == SQLITE_DONE) {
		rc = 0;
		goto out;
	}
	if (s != SQLITE_ROW)
		goto out;
	r->seq = sqlite3_column_int64(st, 0);
	r->key = col_strdup(st, 1);
	r->swarm_id = col_strdup(st, 2);
	r->task_id = col_strdup(st, 3);
	r->iteration = (uint32_t)sqlite3_column_int64(st, 4);
	r->circular = (uint32_t)sqlite3_column_int64(st, 5);
	r->created_ms = sqlite3_column_int64(st, 6);
	blob = sqlite3_column_blob(st, 7);
	r->len = (size_t)sqlite3_column_bytes(st, 7);
	if ((r->content = malloc(r->len ? r->len : 1)) != NULL && r->len > 0)
		memcpy(r->content, blob, r->len);
	if (r->key == NULL || r->swarm_id == NULL || r->task_id == NULL ||
	    r->content == NULL) {
		logrow_free(r);
		goto out;
	}
	rc = 1;
out:
	if (rc == -1)
		log_warnx("sqlite: reading the task log outbox: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc;
}

int
store_logs_sent(sqlite3 *db, int64_t seq, int64_t now_ms)
{
	static const char *const sql[] = {
		"INSERT OR REPLACE INTO task_logs_sent (key, sent_ms)"
		" SELECT key, ?2 FROM task_logs WHERE seq = ?1",
		"DELETE FROM task_logs WHERE seq = ?1",
		"DELETE FROM task_logs_sent WHERE key IN (SELECT key FROM task_logs_sent"
		" ORDER BY sent_ms DESC LIMIT -1 OFFSET " SENT_KEYS_KEEP_S ")",
	};
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (db_begin(db) == -1)
		return -1;
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		if (sqlite3_prepare_v2(db, sql[i], -1, &st, NULL) != SQLITE_OK)
			goto out;
		if (sqlite3_bind_parameter_count(st) >= 1)
			sqlite3_bind_int64(st, 1, seq);
		if (sqlite3_bind_parameter_count(st) >= 2)
			sqlite3_bind_int64(st, 2, now_ms);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto out;
		sqlite3_finalize(st);
		st = NULL;
	}
	rc = db_commit(db);
out:
	if (rc == -1) {
		log_warnx("sqlite: marking task logs sent: %s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
		db_rollback(db);
	}
	return rc;
}

int
store_logs_count(sqlite3 *db, uint64_t *count, uint64_t *bytes)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	*count = *bytes = 0;
	if (sqlite3_prepare_v2(db, "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM task_logs",
	    -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		*count = (uint64_t)sqlite3_column_int64(st, 0);
		*bytes = (uint64_t)sqlite3_column_int64(st, 1);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---- register.ack: the last upload the manager answered OK ---- */

/* One record at offset 0, "<seq> <key length> <key>\n", rewritten with one
 * pwrite per answer. Not synced: it is there for a SIGKILL of the daemon
 * (the page cache keeps it), not for a power loss, after which the row goes
 * out again as before (at least once). */
#define ACK_MAX	(32 + 4096 + 2)

int
store_ack_open(const char *state_dir)
{
	char *path;
	int fd;

	if ((path = path_join(state_dir, "register.ack")) == NULL)
		return -1;
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1)
		log_warn("%s", path);
	free(path);
	return fd;
}

int
store_ack_write(int fd, int64_t seq, const char *key)
{
	static bool warned;	/* only the link thread writes */
	char buf[ACK_MAX];
	int n;

	n = snprintf(buf, sizeof(buf), "%" PRId64 " %zu %s\n", seq, strlen(key), key);
	if (fd == -1 || n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	if (pwrite(fd, buf, (size_t)n, 0) != n) {
		if (!warned)	/* once: a full disk would say it per upload */
			log_warn("register.ack (a kill may send a frame twice)");
		warned = true;
		return -1;
	}
	warned = false;
	return 0;
}

int
store_ack_read(int fd, int64_t *seq, char **key)
{
	char buf[ACK_MAX + 1], *p, *end;
	long long s;
	unsigned long klen;
	size_t avail;
	ssize_t n;

	*seq = 0;
	*key = NULL;
	if (fd == -1)
		return -1;
	if ((n = pread(fd, buf, sizeof(buf) - 1, 0)) <= 0)
		return n == 0 ? 0 : -1;
	buf[n] = '\0';
	errno = 0;
	s = strtoll(buf, &p, 10);
	if (errno != 0 || p == buf || *p != ' ' || s <= 0)
		return 0;
	klen = strtoul(p + 1, &end, 10);
	avail = (size_t)(buf + n - end);	/* " <key>\n" fits in it */
	if (end == p + 1 || *end != ' ' || klen == 0 || klen > avail || avail - klen < 2 ||
	    end[1 + klen] != '\n')
		return 0;	/* torn, or none yet: nothing to trust */
	if ((*key = strndup(end + 1, klen)) == NULL)
		return -1;
	*seq = s;
	return 1;
}
