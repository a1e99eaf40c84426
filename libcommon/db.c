#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "confine.h"
#include "db.h"
#include "log.h"

/* One connection, one thread (issue 15): connections are opened
 * SQLITE_OPEN_NOMUTEX, so two threads on one of them corrupt each other's
 * statements and transactions. ThreadSanitizer cannot see that (SQLite is
 * not instrumented, and its global mutexes order every call), so each
 * connection checks it. The thread that opened it may use it until
 * another thread does: that one owns it from then on (a connection opened
 * for a worker thread), and any other thread's statement is logged once as
 * an error ("used by two threads"), which the tests look for. */
struct db_owner {
	pthread_t opener;
	pthread_t thread;
	int bound;		/* atomic: 0 not yet, 1 being set, 2 thread set */
	int told;		/* atomic */
	char path[];
};

static int
owner_trace(unsigned type, void *ctx, void *p, void *x)
{
	struct db_owner *o = ctx;
	pthread_t self = pthread_self();
	int expected = 0;

	if (type == SQLITE_TRACE_CLOSE) {
		free(o);
		return 0;
	}
	if (__atomic_load_n(&o->bound, __ATOMIC_ACQUIRE) == 0) {
		if (pthread_equal(self, o->opener))
			return 0;
		if (__atomic_compare_exchange_n(&o->bound, &expected, 1, false,
		    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			o->thread = self;
			__atomic_store_n(&o->bound, 2, __ATOMIC_RELEASE);
			return 0;
		}
	}
	while (__atomic_load_n(&o->bound, __ATOMIC_ACQUIRE) != 2)
		;
	if (!pthread_equal(o->thread, self) &&
	    __atomic_exchange_n(&o->told, 1, __ATOMIC_ACQ_REL) == 0)
		log_errorx("database %s: one connection used by two threads",
		    o->path);
	return 0;
}

static void
owner_watch(sqlite3 *db, const char *path)
{
	size_t len = strlen(path) + 1;
	struct db_owner *o = calloc(1, sizeof(*o) + len);

	if (o == NULL)
		return;
	o->opener = pthread_self();
	memcpy(o->path, path, len);
	sqlite3_trace_v2(db, SQLITE_TRACE_STMT | SQLITE_TRACE_CLOSE, owner_trace, o);
}

int
db_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_warnx("sqlite: %s: %s", msg ? msg : sqlite3_errmsg(db), sql);
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int
db_begin(sqlite3 *db)
{
	return db_exec(db, "BEGIN IMMEDIATE");
}

int
db_commit(sqlite3 *db)
{
	return db_exec(db, "COMMIT");
}

void
db_rollback(sqlite3 *db)
{
	(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

int
db_user_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

sqlite3 *
db_open(const char *path, const char *const *migrations, int n)
{
	sqlite3 *db = NULL;
	int v, fd;

	/* A new database is made owner-only before SQLite sees it (an empty
	 * file is an empty database), whatever the umask. */
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) != -1)
		close(fd);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		log_warnx("unable to open database %s: %s", path,
		    db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	/* Task tokens, registrations, the audit: never for other users,
	 * whatever the umask of whoever created the file (issue 13). Before
	 * WAL mode: SQLite gives the -wal and -shm files the database's mode. */
	if (confine_private_file(path) == -1)
		goto fail;
	sqlite3_busy_timeout(db, 5000);
	/* No lookaside: its slots (about 120 KiB a connection) are dirtied by
	 * the first statements and kept for the connection's life (issue 14). */
	(void)sqlite3_db_config(db, SQLITE_DBCONFIG_LOOKASIDE, NULL, 0, 0);
	/* WAL: readers never block the owner. synchronous=NORMAL: a crash of
	 * the program loses no commit, a power loss may take back the last
	 * ones (the WAL is synced at checkpoints only); outboxes, which
	 * promise that nothing acknowledged is lost, call db_durable. A small
	 * cache keeps daemons small:
	 * the files are small and the OS page cache holds them anyway, so 64
	 * KiB (down from 256) costs reads that never reach the disk. */
	if (db_exec(db, "PRAGMA journal_mode=WAL") == -1 ||
	    db_exec(db, "PRAGMA synchronous=NORMAL") == -1 ||
	    db_exec(db, "PRAGMA cache_size=-64") == -1 ||
	    db_exec(db, "PRAGMA foreign_keys=ON") == -1)
		goto fail;
	if ((v = db_user_version(db)) < 0)
		goto fail;
	if (v > n) {
		log_warnx("database %s has schema version %d, newer than this program's %d",
		    path, v, n);
		goto fail;
	}
	for (; v < n; v++) {
		char pragma[64];

		snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%d", v + 1);
		if (db_begin(db) == -1)
			goto fail;
		if (db_exec(db, migrations[v]) == -1 || db_exec(db, pragma) == -1) {
			db_rollback(db);
			log_warnx("database %s: migration to version %d failed", path, v + 1);
			goto fail;
		}
		if (db_commit(db) == -1)
			goto fail;
	}
	owner_watch(db, path);
	return db;
fail:
	sqlite3_close(db);
	return NULL;
}

int
db_durable(sqlite3 *db)
{
	return db_exec(db, "PRAGMA synchronous=FULL");
}

void
db_close(sqlite3 *db)
{
	if (db != NULL)
		sqlite3_close(db);
}
