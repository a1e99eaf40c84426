/* res.db: one row per periodic sample, pruned on insert to the last
 * STORE_KEEP_S seconds and at most max_rows rows. Statements are prepared
 * once and the page cache is kept small: the table is written, rarely read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "res.h"

static const char *const migrations[] = {
	"CREATE TABLE samples ("
	" id INTEGER PRIMARY KEY,"
	" ts INTEGER NOT NULL,"			/* ms since the epoch, UTC */
	" cpu REAL, cpu_user REAL, cpu_system REAL, cpu_idle REAL,"
	" per_cpu TEXT,"			/* "12.5,0.0,..." by CPU number */
	" mem_total INTEGER, mem_available INTEGER, mem_used INTEGER, mem_free INTEGER,"
	" swap_total INTEGER, swap_used INTEGER,"
	" state_mount TEXT, state_disk_used INTEGER, state_disk_free INTEGER,"
	" data_mount TEXT, data_disk_used INTEGER, data_disk_free INTEGER,"
	" net_bytes_sent INTEGER, net_bytes_recv INTEGER,"
	" net_packets_sent INTEGER, net_packets_recv INTEGER,"
	" gpu_usage REAL, gpu_mem_total INTEGER, gpu_mem_used INTEGER);"
	"CREATE INDEX samples_ts ON samples(ts);",
};

enum { ST_BEGIN, ST_COMMIT, ST_INSERT, ST_PRUNE, ST_N };

static const char *const stmt_sql[ST_N] = {
	"BEGIN",
	"COMMIT",
	"INSERT INTO samples (ts, cpu, cpu_user, cpu_system, cpu_idle, per_cpu,"
	" mem_total, mem_available, mem_used, mem_free, swap_total, swap_used,"
	" state_mount, state_disk_used, state_disk_free,"
	" data_mount, data_disk_used, data_disk_free,"
	" net_bytes_sent, net_bytes_recv, net_packets_sent, net_packets_recv,"
	" gpu_usage, gpu_mem_total, gpu_mem_used)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
	" ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
	"DELETE FROM samples WHERE ts < ?1 OR id <= ?2",
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[ST_N];
	long max_rows;
	uint64_t count;
};

static int
run(struct store *st, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_warnx("unable to write res.db: %s", sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
}

struct store *
store_open(const char *path, long max_rows)
{
	static const char *const pragmas[] = {
		/* 32 KiB of page cache: inserts touch the last pages only. */
		"PRAGMA cache_size = -32",
		"PRAGMA synchronous = NORMAL",
		"PRAGMA wal_autocheckpoint = 100",
		"PRAGMA journal_size_limit = 1048576",
		"PRAGMA temp_store = FILE",
	};
	struct store *st;
	sqlite3_stmt *s;

	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		log_error("unable to allocate the store");
		return NULL;
	}
	st->max_rows = max_rows > 0 ? max_rows : 1;
	st->db = db_open(path, migrations, (int)(sizeof(migrations) / sizeof(migrations[0])));
	if (st->db == NULL)
		goto fail;
	for (size_t i = 0; i < sizeof(pragmas) / sizeof(pragmas[0]); i++)
		if (db_exec(st->db, pragmas[i]) < 0)
			goto fail;
	for (int i = 0; i < ST_N; i++)
		if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &st->st[i], NULL) != SQLITE_OK) {
			log_errorx("unable to prepare a statement on %s: %s", path,
			    sqlite3_errmsg(st->db));
			goto fail;
		}
	if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM samples", -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			st->count = (uint64_t)sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	return st;
fail:
	store_close(st);
	return NULL;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	for (int i = 0; i < ST_N; i++)
		sqlite3_finalize(st->st[i]);
	if (st->db)
		db_close(st->db);
	free(st);
}

uint64_t
store_count(const struct store *st)
{
	return st ? st->count : 0;
}

static sqlite3_int64
i64(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static void
bind_disk(sqlite3_stmt *s, int col, const struct disk_info *d)
{
	if (d == NULL)
		return;		/* left NULL */
	sqlite3_bind_text(s, col, d->mount, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, col + 1, i64(d->used));
	sqlite3_bind_int64(s, col + 2, i64(d->free));
}

/* "12.5,0.0,...", malloc'd; NULL when there is nothing (or no memory). */
static char *
per_cpu_text(const float *v, size_t n)
{
	char *buf, *p;
	size_t len;

	if (n == 0)
		return NULL;
	len = n * 8 + 1;	/* "100.0," at most */
	if ((buf = malloc(len)) == NULL)
		return NULL;
	p = buf;
	*p = '\0';
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(p, len - (size_t)(p - buf), "%s%.1f", i ? "," : "", (double)v[i]);
		if (w < 0 || (size_t)w >= len - (size_t)(p - buf))
			break;
		p += w;
	}
	return buf;
}

int
store_insert(struct store *st, const struct sample *sm)
{
	sqlite3_stmt *s = st->st[ST_INSERT];
	sqlite3_int64 last;
	char *per = per_cpu_text(sm->per_cpu, sm->nper_cpu);
	int changes;

	if (run(st, st->st[ST_BEGIN]) < 0) {
		free(per);
		return -1;
	}
	sqlite3_bind_int64(s, 1, sm->ts_ms);
	sqlite3_bind_double(s, 2, sm->cpu.usage);
	sqlite3_bind_double(s, 3, sm->cpu.user);
	sqlite3_bind_double(s, 4, sm->cpu.system);
	sqlite3_bind_double(s, 5, sm->cpu.idle);
	if (per)
		sqlite3_bind_text(s, 6, per, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 7, i64(sm->mem.total));
	sqlite3_bind_int64(s, 8, i64(sm->mem.available));
	sqlite3_bind_int64(s, 9, i64(sm->mem.used));
	sqlite3_bind_int64(s, 10, i64(sm->mem.free));
	sqlite3_bind_int64(s, 11, i64(sm->mem.swap_total));
	sqlite3_bind_int64(s, 12, i64(sm->mem.swap_used));
	bind_disk(s, 13, sm->state_disk);
	bind_disk(s, 16, sm->data_disk);
	sqlite3_bind_int64(s, 19, i64(sm->net.bytes_sent));
	sqlite3_bind_int64(s, 20, i64(sm->net.bytes_recv));
	sqlite3_bind_int64(s, 21, i64(sm->net.packets_sent));
	sqlite3_bind_int64(s, 22, i64(sm->net.packets_recv));
	if (sm->gpu_usage >= 0)
		sqlite3_bind_double(s, 23, sm->gpu_usage);
	if (sm->gpu_mem_total) {
		sqlite3_bind_int64(s, 24, i64(sm->gpu_mem_total));
		sqlite3_bind_int64(s, 25, i64(sm->gpu_mem_used));
	}
	if (run(st, s) < 0)
		goto fail;
	free(per);
	per = NULL;
	last = sqlite3_last_insert_rowid(st->db);

	s = st->st[ST_PRUNE];
	sqlite3_bind_int64(s, 1, sm->ts_ms - (sqlite3_int64)STORE_KEEP_S * 1000);
	sqlite3_bind_int64(s, 2, last - st->max_rows);
	if (run(st, s) < 0)
		goto fail;
	changes = sqlite3_changes(st->db);
	if (run(st, st->st[ST_COMMIT]) < 0)
		goto fail;
	st->count++;
	st->count = (uint64_t)changes > st->count ? 0 : st->count - (uint64_t)changes;
	return 0;
fail:
	free(per);
	db_rollback(st->db);
	return -1;
}
