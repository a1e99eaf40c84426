#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "confine.h"
#include "db.h"
#include "log.h"

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
	/* WAL: a crash mid-write loses at most the last transaction, and
	 * readers never block the owner. A small cache keeps daemons small. */
	if (db_exec(db, "PRAGMA journal_mode=WAL") == -1 ||
	    db_exec(db, "PRAGMA synchronous=NORMAL") == -1 ||
	    db_exec(db, "PRAGMA cache_size=-256") == -1 ||
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
	return db;
fail:
	sqlite3_close(db);
	return NULL;
}

void
db_close(sqlite3 *db)
{
	if (db != NULL)
		sqlite3_close(db);
}
