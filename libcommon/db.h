/* db: each daemon's own SQLite file: WAL, busy timeout, schema migrations
 * tracked in PRAGMA user_version. */
#ifndef MANTA_DB_H
#define MANTA_DB_H

#include <sqlite3.h>

/* Opens (creating) path, sets WAL and a busy timeout, then applies
 * migrations[user_version .. n-1] each in its own transaction.
 * A file whose user_version is newer than n is refused. NULL on error (logged). */
sqlite3 *db_open(const char *path, const char *const *migrations, int n);
void db_close(sqlite3 *db);
/* synchronous=FULL for this connection: each commit syncs the WAL before
 * it returns, so that a power loss takes back nothing committed (for the
 * outboxes; costs a sync per commit, see bench/sync_bench.py). 0 or -1. */
int db_durable(sqlite3 *db);
/* Runs sql (no results); 0 or -1 (logged with the statement). */
int db_exec(sqlite3 *db, const char *sql);
int db_begin(sqlite3 *db);
int db_commit(sqlite3 *db);
void db_rollback(sqlite3 *db);
int db_user_version(sqlite3 *db);

#endif
