/* mantactl top [NAME] [-c FILE] [--once] [--minutes M]: the node's recent
 * resource history, read from mantad-res's res.db (opened read-only; WAL
 * lets a reader in beside the writer, and the history is there even when
 * the node is stopped), with the tasks that ran in each interval from
 * mantad-exec when the node runs. One row per interval over the last M
 * minutes (default 60): CPU and memory averages with a bar, tasks running.
 * On a terminal it redraws every 2 s until interrupted; with --once, or
 * when stdout is not a terminal, it prints once and exits. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ipc.h"
#include "mantactl.h"

#define TOP_USAGE "top [NAME] [-c FILE] [--once] [--minutes M]"
#define TOP_ROWS 30		/* intervals shown */
#define TOP_BAR 20		/* bar width, characters */
#define TOP_REDRAW_MS 2000

struct bucket {
	unsigned n;		/* samples */
	double cpu, mem_used, mem_total;
	unsigned tasks;		/* runs that were running in the interval */
};

struct window {
	long long from_ms, step_ms;
	struct bucket b[TOP_ROWS];
	unsigned samples;
};

static volatile sig_atomic_t top_stop;

static void
on_int(int sig)
{
	(void)sig;
	top_stop = 1;
}

/* Takes --once and --minutes M out of argv (ctl_parse does not know them);
 * the rest stays for ctl_parse. -1 on a bad --minutes. */
static int
take_own_options(int *argc, char **argv, bool *once, long *minutes)
{
	int i, j = 1;
	char *end;

	for (i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--once") == 0) {
			*once = true;
		} else if (strcmp(argv[i], "--minutes") == 0 ||
		    strncmp(argv[i], "--minutes=", 10) == 0) {
			const char *v = argv[i][9] == '=' ? argv[i] + 10 :
			    (i + 1 < *argc ? argv[++i] : "");

			errno = 0;
			*minutes = strtol(v, &end, 10);
			if (errno || *v == '\0' || *end != '\0' || *minutes < 1 ||
			    *minutes > 7 * 24 * 60)
				return -1;
		} else {
			argv[j++] = argv[i];
		}
	}
	argv[j] = NULL;
	*argc = j;
	return 0;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* res.db rows since w->from_ms into the buckets. -1 when res.db cannot be
 * read (message printed). */
static int
read_samples(const char *path, struct window *w)
{
	static const char sql[] = "SELECT ts, cpu, mem_used, mem_total FROM samples"
	    " WHERE ts >= ?1 ORDER BY ts";
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, 1000) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "mantactl: fatal: unable to read %s: %s\n", path,
		    db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_bind_int64(st, 1, w->from_ms);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		long long i = (sqlite3_column_int64(st, 0) - w->from_ms) / w->step_ms;
		struct bucket *b;

		if (i < 0 || i >= TOP_ROWS)
			continue;
		b = &w->b[i];
		b->n++;
		b->cpu += sqlite3_column_double(st, 1);
		b->mem_used += sqlite3_column_double(st, 2);
		b->mem_total += sqlite3_column_double(st, 3);
		w->samples++;
	}
	if (rc != SQLITE_DONE)
		fprintf(stderr, "mantactl: warning: reading %s: %s\n", path,
		    sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return 0;
}

/* "2026-12-07T17:21:04.123Z" (mantad-exec's form) -> ms; -1 if empty. */
static long long
parse_time(const char *s)
{
	struct tm tm;
	const char *p;
	long ms = 0;

	if (s == NULL || *s == '\0')
		return -1;
	memset(&tm, 0, sizeof(tm));
	if ((p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return -1;
	if (*p == '.')
		ms = strtol(p + 1, NULL, 10);
	return (long long)timegm(&tm) * 1000 + ms;
}

/* Counts each run in every interval it overlaps (running ones up to now).
 * Returns false when mantad-exec does not answer. */
static bool
read_tasks(const char *run_dir, struct window *w, long long now)
{
	ipc_msg req = MANTA__IPC__MSG__INIT, *rep;
	Manta__Ipc__TasksRequest tr = MANTA__IPC__TASKS_REQUEST__INIT;

	req.body_case = MANTA__IPC__MSG__BODY_TASKS_REQ;
	req.tasks_req = &tr;
	if ((rep = ctl_call(run_dir, IPC_EXEC, &req, MANTA__IPC__MSG__BODY_TASKS, 2000)) == NULL)
		return false;
	for (size_t k = 0; k < rep->tasks->n_tasks; k++) {
		const Manta__Ipc__TaskInfo *t = rep->tasks->tasks[k];
		long long s = parse_time(t->started_at), e = parse_time(t->finished_at);
		long long i0, i1;

		if (s < 0)
			continue;
		if (e < 0)
			e = now;
		if (e < w->from_ms)
			continue;
		i0 = s < w->from_ms ? 0 : (s - w->from_ms) / w->step_ms;
		i1 = (e - w->from_ms) / w->step_ms;
		for (long long i = i0; i <= i1 && i < TOP_ROWS; i++)
			w->b[i].tasks++;
	}
	ipc_msg_free(rep);
	return true;
}

static void
bar(char *out, double ratio)
{
	int n = (int)(ratio * TOP_BAR + 0.5);

	n = n < 0 ? 0 : n > TOP_BAR ? TOP_BAR : n;
	memset(out, '#', (size_t)n);
	memset(out + n, '.', (size_t)(TOP_BAR - n));
	out[TOP_BAR] = '\0';
}

static void
print_window(const struct manta_cfg *c, const struct window *w, bool tasks)
{
	char when[16], cb[TOP_BAR + 1], mb[TOP_BAR + 1];

	printf("node %s: %u samples in the last %lld min, %lld s per row%s\n",
	    c->instance, w->samples, w->step_ms * TOP_ROWS / 60000, w->step_ms / 1000,
	    tasks ? "" : " (tasks: the node is not running)");
	printf("%-8s %6s %-*s %6s %10s %-*s %5s\n", "TIME", "CPU%", TOP_BAR, "",
	    "MEM%", "MEM_USED", TOP_BAR, "", "TASKS");
	for (int i = 0; i < TOP_ROWS; i++) {
		const struct bucket *b = &w->b[i];
		time_t t = (time_t)((w->from_ms + (long long)i * w->step_ms) / 1000);
		struct tm tm;
		double cpu, mem;

		localtime_r(&t, &tm);
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
		if (b->n == 0) {
			printf("%-8s %6s %-*s %6s %10s %-*s %5s\n", when, "-", TOP_BAR, "",
			    "-", "-", TOP_BAR, "", tasks ? "-" : "");
			continue;
		}
		cpu = b->cpu / b->n;
		mem = b->mem_total > 0 ? 100.0 * b->mem_used / b->mem_total : 0;
		bar(cb, cpu / 100.0);
		bar(mb, mem / 100.0);
		printf("%-8s %6.1f %s %6.1f %6.0f MiB %s", when, cpu, cb, mem,
		    b->mem_used / b->n / 1048576.0, mb);
		if (tasks)
			printf(" %5u", b->tasks);
		putchar('\n');
	}
}

static int
show(const struct manta_cfg *c, const char *db, long minutes)
{
	struct window w;
	long long now = now_ms();
	bool tasks;

	memset(&w, 0, sizeof(w));
	w.step_ms = minutes * 60000 / TOP_ROWS;
	w.from_ms = now - w.step_ms * TOP_ROWS;
	if (read_samples(db, &w) == -1)
		return CTL_FAIL;
	tasks = ctl_running_pid(c) > 0 && read_tasks(c->run_dir, &w, now);
	print_window(c, &w, tasks);
	return fflush(stdout) == 0 ? CTL_OK : CTL_FAIL;
}

int
cmd_top(int argc, char **argv)
{
	struct ctl_args a;
	struct manta_cfg *c;
	struct stat sb;
	char *db = NULL;
	bool once = false;
	long minutes = 60;
	int rc;

	if (take_own_options(&argc, argv, &once, &minutes) == -1) {
		fprintf(stderr, "mantactl: --minutes takes 1 to 10080\nusage: mantactl %s\n",
		    TOP_USAGE);
		return CTL_USAGE;
	}
	if ((rc = ctl_parse(argc, argv, TOP_USAGE, 0, &a)) != 0)
		return rc;
	if ((c = ctl_load_config(&a)) == NULL)
		return CTL_FAIL;
	if (asprintf(&db, "%s/res.db", c->state_dir) == -1) {
		rc = CTL_FAIL;
		goto out;
	}
	if (stat(db, &sb) == -1) {
		/* No history at all: never started, or another state_dir. */
		fprintf(stderr, "mantactl: node %s has no resource history (%s: %s)\n",
		    c->instance, db, strerror(errno));
		rc = ctl_running_pid(c) > 0 ? CTL_FAIL : CTL_NOT_RUNNING;
		goto out;
	}
	if (once || !isatty(STDOUT_FILENO)) {
		rc = show(c, db, minutes);
		goto out;
	}
	signal(SIGINT, on_int);
	signal(SIGTERM, on_int);
	while (!top_stop) {
		fputs("\033[H\033[2J", stdout);
		if ((rc = show(c, db, minutes)) != CTL_OK)
			break;
		/* Wake for the next redraw or a signal, not before. */
		(void)poll(NULL, 0, TOP_REDRAW_MS);
	}
out:
	free(db);
	cfg_free(c);
	ipc_context_term();
	return rc;
}
