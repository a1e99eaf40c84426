/* recover: what a restarted mantad-exec (after kill -9, a crash, an
 * upgrade) does before it answers anyone. exec.db says which runs were
 * PENDING or RUNNING; each one's shim says the rest:
 *
 *   - a live shim (pid and start time match): adopted. It still watches its
 *     container; we watch the shim through a pidfd, and its files;
 *   - a finished shim left <bundle>/result: the run ends now, with the
 *     exit status the shim saw (this is how exit codes survive us);
 *   - no shim, no result (it was killed too): the container, if any, is
 *     killed and deleted, and the run FAILED ("lost");
 *   - a run admitted but never given a shim: started now.
 *
 * A final state reached here is announced like any other: stored, then
 * sent, once. A run stored final whose bundle is still there (killed
 * between the two) loses its bundle now. Containers in our runtime root that no run owns (left by an
 * older crash) are killed and deleted. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

#include "exec.h"

static void
read_shim_pid(struct run *r)
{
	char buf[64], *path = path_join(r->dir, "shim.pid");
	long pid = 0;
	unsigned long long start = 0;

	if (path != NULL && read_small(path, buf, sizeof(buf)) > 0 &&
	    sscanf(buf, "%ld %llu", &pid, &start) == 2 && pid > 0) {
		r->shim = (pid_t)pid;
		r->shim_start = start;
	}
	free(path);
}

static bool
owned(const struct exec *x, const char *cid)
{
	const struct run *r;

	TAILQ_FOREACH(r, &x->runs, all)
		if (r->shim != 0 && strcmp(r->cid, cid) == 0)
			return true;
	return false;
}

static void
sweep_orphans(struct exec *x)
{
	char out[16384], *save = NULL;

	if (x->runtime == NULL || runtime_list(x, out, sizeof(out)) == -1)
		return;
	for (char *id = strtok_r(out, "\n", &save); id != NULL;
	    id = strtok_r(NULL, "\n", &save)) {
		if (strncmp(id, "manta-", 6) != 0 || owned(x, id))
			continue;
		log_warnx("container %s belongs to no task: deleting it", id);
		runtime_cleanup_async(x, id);
	}
}

/* A QUEUED run without a bundle: exec was killed inside deploy, after
 * exec.db had the run and before the bundle was written. Nothing about it
 * left the node, and beat, never answered, hands the deploy over again:
 * the run is deleted so that this deploy runs once, instead of failing
 * now (no bundle to start) and running again as a failed round deployed
 * anew (issue 15: two terminal updates). True when it was. */
static bool
unprepared(struct exec *x, struct run *r)
{
	char th[ID_HEX_LEN + 1];

	if (r->dir != NULL && r->dir[0] != '\0')
		return false;
	id_to_hex(r->task, th);
	log_info("task %s iteration %u circular %u: deploy interrupted before its"
	    " bundle was written: forgotten, to be handed over again", th,
	    r->iteration, r->circular);
	if (store_run_delete(x->db, r->id) == -1)
		return false;
	TAILQ_REMOVE(&x->queue, r, q);
	TAILQ_REMOVE(&x->runs, r, all);
	run_free(r);
	return true;
}

void
recover_runs(struct exec *x)
{
	struct run *r, *next;
	unsigned adopted = 0, ended = 0, queued = 0;

	x->recovering = true;
	for (r = TAILQ_FIRST(&x->runs); r != NULL; r = next) {
		next = TAILQ_NEXT(r, all);
		if (r->state == RS_PENDING || r->state == RS_RUNNING) {
			queue_hold(x, r);
			read_shim_pid(r);
			if (r->shim > 0 && r->shim_start != 0 &&
			    proc_start_time(r->shim, NULL) == r->shim_start) {
				r->adopted = true;
				r->pidfd = (int)syscall(SYS_pidfd_open, r->shim, 0);
				adopted++;
			}
		}
	}
	/* With the adopted ones known, anything else in our root is stray. */
	sweep_orphans(x);
	for (r = TAILQ_FIRST(&x->runs); r != NULL; r = next) {
		next = TAILQ_NEXT(r, all);
		switch (r->state) {
		case RS_QUEUED:
			if (unprepared(x, r))
				break;
			queued++;
			break;
		case RS_PENDING:
		case RS_RUNNING:
			if (r->adopted) {
				runtime_check_adopted(x, r, false);
				break;
			}
			ended++;
			if (r->shim == 0 && r->state == RS_PENDING) {
				/* Admitted, never started. */
				if (runtime_launch(x, r) == 0)
					break;
			}
			runtime_finish(x, r);
			break;
		default:
			/* Stored final, but killed before its bundle was
			 * removed: remove it now, unless kept on purpose. */
			if (r->state != RS_FAILED || x->cfg->cleanup_on_failure)
				bundle_remove(x, r);
			logs_end(x, r);
			run_maybe_forget(x, r);
			break;
		}
	}
	x->recovering = false;	/* main() admits the queue once ready */
	if (adopted + ended + queued > 0)
		log_info("recovered: %u containers adopted, %u ended meanwhile,"
		    " %u tasks queued", adopted, ended, queued);
}
