/* logstore: keeps the output of finished runs in <state_dir>/logs under
 * tasks.log_store_max_size bytes, removing the oldest runs' files first.
 *
 * Only a run whose logs are done is counted and may lose its file: its one
 * upload (a complete frame) is in exec.db's outbox or already with
 * mantad-register, or it sends none (stopped, never started). The output
 * of a run still going, or not yet framed, is never removed; it is capped
 * per run by containers.log_config max-size. A removed run keeps its row:
 * `mantactl logs` then shows nothing for it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#include "exec.h"

static uint64_t
size_of(const char *path)
{
	struct stat st;

	return path != NULL && *path && stat(path, &st) == 0 ?
	    (uint64_t)st.st_size : 0;
}

static void
trim(struct exec *x)
{
	static const char sel[] = "SELECT id, log FROM run WHERE logs_done = 1"
	    " AND log != '' AND status IN ('COMPLETED', 'FAILED', 'STOPPED')"
	    " ORDER BY id";
	uint64_t max = x->cfg->log_store_max_bytes;
	sqlite3_stmt *st, *clear = NULL;
	unsigned n = 0;

	if (max == 0 || x->log_bytes <= max)
		return;
	if (sqlite3_prepare_v2(x->db, sel, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(x->db, "UPDATE run SET log = '' WHERE id = ?", -1,
	    &clear, NULL) != SQLITE_OK) {
		log_warnx("sqlite: trimming the logs: %s", sqlite3_errmsg(x->db));
		sqlite3_finalize(st);
		return;
	}
	while (x->log_bytes > max && sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		const char *path = (const char *)sqlite3_column_text(st, 1);
		const struct run *r;
		uint64_t sz = size_of(path);

		/* A run still in memory may still be framed: keep it. */
		TAILQ_FOREACH(r, &x->runs, all)
			if (r->id == id)
				break;
		if (r != NULL && !r->logs_done)
			continue;
		if (path != NULL && unlink(path) == -1 && errno != ENOENT) {
			log_warn("unable to remove %s", path);
			continue;
		}
		sqlite3_reset(clear);
		sqlite3_bind_int64(clear, 1, id);
		(void)sqlite3_step(clear);
		x->log_bytes = x->log_bytes > sz ? x->log_bytes - sz : 0;
		n++;
	}
	sqlite3_finalize(st);
	sqlite3_finalize(clear);
	if (n > 0)
		log_info("logs: removed the output of the %u oldest finished"
		    " task%s (tasks.log_store_max_size = %s)", n, n == 1 ? "" : "s",
		    x->cfg->log_store_max_size);
}

void
logstore_init(struct exec *x)
{
	sqlite3_stmt *st;

	x->log_bytes = 0;
	if (sqlite3_prepare_v2(x->db, "SELECT log FROM run WHERE logs_done = 1"
	    " AND log != ''", -1, &st, NULL) != SQLITE_OK) {
		log_warnx("sqlite: %s", sqlite3_errmsg(x->db));
		return;
	}
	while (sqlite3_step(st) == SQLITE_ROW)
		x->log_bytes += size_of((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	trim(x);
}

void
logstore_done(struct exec *x, const struct run *r)
{
	x->log_bytes += size_of(r->log);
	trim(x);
}
