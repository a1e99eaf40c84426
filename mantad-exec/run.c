/* The lifecycle of a run, in one place: every state change a run makes
 * is asked for here, checked against one table, announced (announce.c)
 * and, for a final state, followed by the one cleanup that fits how far
 * the run got. Nobody else calls announce_transition. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "daemon.h"
#include "file.h"
#include "log.h"
#include "exec.h"

/* The lifecycle of a run (WIRE.md section 6, plus our QUEUED):
 *
 *   QUEUED  -> PENDING (admitted), FAILED (refused), STOPPED
 *   PENDING -> RUNNING, FAILED (could not start), STOPPED
 *   RUNNING -> COMPLETED, FAILED, STOPPED
 *
 * Anything else is a bug, refused: this is what keeps the final update
 * single. */
static const bool moves[RS_COUNT][RS_COUNT] = {
	[RS_QUEUED] = { [RS_PENDING] = true, [RS_FAILED] = true,
	    [RS_STOPPED] = true },
	[RS_PENDING] = { [RS_RUNNING] = true, [RS_FAILED] = true,
	    [RS_STOPPED] = true },
	[RS_RUNNING] = { [RS_COMPLETED] = true, [RS_FAILED] = true,
	    [RS_STOPPED] = true },
};

bool
run_move_ok(enum run_state from, enum run_state to)
{
	return (unsigned)from < RS_COUNT && (unsigned)to < RS_COUNT &&
	    moves[from][to];
}

/* 1: refused (illegal, logged, nothing announced); else announce's 0/-1. */
static int
move(struct exec *x, struct run *r, enum run_state st, const char *reason,
    int code, uint32_t error_id)
{
	if (!run_move_ok(r->state, st)) {
		log_warnx("run %lld: no move from %s to %s: refused",
		    (long long)r->id, run_state_name(r->state),
		    run_state_name(st));
		return 1;
	}
	return announce_transition(x, r, st, reason, code, error_id);
}

int
run_to_pending(struct exec *x, struct run *r)
{
	return move(x, r, RS_PENDING, NULL, -1, 0) == 0 ? 0 : -1;
}

void
run_to_running(struct exec *x, struct run *r)
{
	/* "R", the started file and the result may each say so: once. */
	if (r->state == RS_PENDING)
		(void)move(x, r, RS_RUNNING, NULL, -1, 0);
}

/* Announces the end of r: false when r ended already (a second end: its
 * cleanup is done) or st is not an end. Any other refused move is logged
 * by move() and the cleanup still runs, as it always did. */
static bool
ending(struct exec *x, struct run *r, enum run_state st, const char *reason,
    int code, uint32_t error_id)
{
	if (!run_state_final(st)) {
		log_warnx("run %lld: %s is not an end", (long long)r->id,
		    run_state_name(st));
		return false;
	}
	return move(x, r, st, reason, code, error_id) != 1 ||
	    !run_state_final(r->state);
}

/* A run that had a shim: its slot, its network namespace, its bundle
 * (kept after a failure unless tasks.cleanup_on_failure), its logs (sent
 * once, at a natural end), then the queue moves. */
void
run_end(struct exec *x, struct run *r, enum run_state st, const char *reason,
    int code, uint32_t error_id)
{
	bool keep = st == RS_FAILED && !x->cfg->cleanup_on_failure;

	if (!ending(x, r, st, reason, code, error_id))
		return;
	queue_release(x, r);
	netep_run_end(x, r);
	if (!keep)
		bundle_remove(x, r);
	logs_end(x, r);
	queue_admit(x);		/* a slot is free */
	run_maybe_forget(x, r);
}

/* A run never started (no shim: queued, or its launch failed) that is in
 * x->runs, and out of x->queue by now: it printed nothing. The queue does
 * not move here: the callers are queue_admit's loop or move it after. */
void
run_end_unlaunched(struct exec *x, struct run *r, enum run_state st,
    const char *reason, uint32_t error_id)
{
	if (!ending(x, r, st, reason, -1, error_id))
		return;
	queue_release(x, r);	/* held from admission, if it got that far */
	bundle_remove(x, r);
	r->logs_done = true;
	(void)store_run_set(x->db, r);
	run_maybe_forget(x, r);
}

/* A run refused at deploy, not in x->runs (the caller frees it): 0, or
 * -1 when the end could not be stored (the caller tells anyway). */
int
run_end_unlisted(struct exec *x, struct run *r, enum run_state st,
    const char *reason, uint32_t error_id)
{
	int rc;

	if (!run_state_final(st) ||
	    (rc = move(x, r, st, reason, -1, error_id)) == 1)
		return 0;
	bundle_remove(x, r);
	r->logs_done = true;
	(void)store_run_set(x->db, r);
	return rc;
}

/* The last line of the log that says something: the runtime's complaint. */
static void
log_tail(const char *path, char *out, size_t len)
{
	char buf[1024];
	int fd;
	off_t size;
	ssize_t n;
	char *end, *start;

	snprintf(out, len, "no message");
	if (path == NULL || (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size > (off_t)sizeof(buf) - 1)
		(void)lseek(fd, size - (off_t)sizeof(buf) + 1, SEEK_SET);
	else
		(void)lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (end = buf + n; end > buf && (end[-1] == '\n' || end[-1] == ' ');)
		*--end = '\0';
	start = strrchr(buf, '\n');
	start = start ? start + 1 : buf;
	for (char *p = start; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	if (*start) {
		size_t l = strlen(start);

		if (l >= len)
			l = len - 1;
		memcpy(out, start, l);
		out[l] = '\0';
	}
}

struct result {
	int started, exit, sig, timeout, stopped, runtime_error, runtime_code;
	unsigned long oom;
};

static int
read_result(const struct run *r, struct result *res)
{
	char buf[512], *path = path_join(r->dir, "result");
	ssize_t n = path ? read_small(path, buf, sizeof(buf)) : -1;

	free(path);
	memset(res, 0, sizeof(*res));
	res->exit = -1;
	if (n <= 0)
		return -1;
	if (sscanf(buf, "started=%d exit=%d signal=%d oom=%lu timeout=%d"
	    " stopped=%d runtime_error=%d runtime_code=%d", &res->started,
	    &res->exit, &res->sig, &res->oom, &res->timeout, &res->stopped,
	    &res->runtime_error, &res->runtime_code) != 8)
		return -1;
	return 0;
}

/* The runtime could not start the container: another attempt while
 * tasks.retry_attempts allows, else the run ends. */
static void
end_not_started(struct exec *x, struct run *r, const struct result *res)
{
	char reason[512], tail[300];

	log_tail(r->log, tail, sizeof(tail));
	if (!r->stop_requested && !x->stopping &&
	    r->attempts <= x->cfg->retry_attempts) {
		log_warnx("container %s did not start (%s, status %d):"
		    " retrying", r->cid, tail, res->runtime_code);
		if (runtime_launch(x, r) == 0)
			return;
	}
	if (r->stop_requested) {
		run_end(x, r, RS_STOPPED, r->stop_reason, -1, 0);
		return;
	}
	snprintf(reason, sizeof(reason), "runtime %s could not start the"
	    " container (%d attempts): %s", x->runtime_name, r->attempts, tail);
	run_end(x, r, RS_FAILED, reason, -1, ERR_DOCKER);
}

/* The container ran and ended: how, in the order a manager must hear it
 * (a stop asked for, the timeout, success, OOM, exit status, signal). */
static void
end_ran(struct exec *x, struct run *r, const struct result *res)
{
	char reason[512];

	if (r->stop_requested)
		run_end(x, r, RS_STOPPED, r->stop_reason,
		    res->exit >= 0 ? res->exit : res->sig ? 128 + res->sig : -1, 0);
	else if (res->timeout) {
		snprintf(reason, sizeof(reason), "timeout: still running after"
		    " tasks.task_timeout = %d s: stopped, reported FAILED",
		    x->cfg->task_timeout);
		/* The end of the run as far as the manager knows: say why in
		 * the logs it gets. */
		logs_note(r, reason);
		run_end(x, r, RS_FAILED, reason, res->sig ? 128 + res->sig :
		    res->exit, ERR_TIMEOUT);
	} else if (res->exit == 0)
		run_end(x, r, RS_COMPLETED, NULL, 0, 0);
	else if (res->oom > 0) {
		/* A task that lived through an OOM kill in its cgroup (of a
		 * child) and still exited 0 completed; otherwise the kill is
		 * the likely cause. */
		snprintf(reason, sizeof(reason), "oom: a process was killed for"
		    " lack of memory (limit %s)", x->cfg->default_memory_limit);
		run_end(x, r, RS_FAILED, reason, res->sig ? 128 + res->sig :
		    res->exit, ERR_RESOURCE);
	} else if (res->exit > 0) {
		snprintf(reason, sizeof(reason), "exit status %d", res->exit);
		run_end(x, r, RS_FAILED, reason, res->exit, 0);
	} else if (res->sig > 0) {
		snprintf(reason, sizeof(reason), "killed by signal %d", res->sig);
		run_end(x, r, RS_FAILED, reason, 128 + res->sig, 0);
	} else
		run_end(x, r, RS_FAILED, "exit status unknown", -1, ERR_NODE);
}

void
run_shim_gone(struct exec *x, struct run *r)
{
	struct result res;

	if (run_state_final(r->state))
		return;
	if (read_result(r, &res) == -1) {
		/* The shim died without a word (killed): the container may
		 * still run, unwatched. Nothing of it may stay. */
		log_warnx("container %s lost its shim: deleting it", r->cid);
		runtime_cleanup_async(x, r->cid);
		if (r->stop_requested)
			run_end(x, r, RS_STOPPED, r->stop_reason, -1, 0);
		else
			run_end(x, r, RS_FAILED, "lost: the container's shim"
			    " died", -1, ERR_NODE);
		return;
	}
	if (res.runtime_error && !res.started) {
		end_not_started(x, r, &res);
		return;
	}
	if (res.started)
		run_to_running(x, r);
	end_ran(x, r, &res);
	/* The run's result and status buffers are freed by now: give the
	 * pages back before the idle that follows (issue 14). */
	daemon_trim();
}
