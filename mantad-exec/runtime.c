/* runtime: starting shims (shim.c), telling them to stop, and turning what
 * they leave behind into a run's final state. Also the few direct calls to
 * the OCI runtime that recovery needs. Never a shell: fork and execv. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <linux/magic.h>

#include "log.h"

#include "exec.h"

static int
executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    access(path, X_OK) == 0;
}

int
runtime_resolve(struct exec *x)
{
	const char *name = x->cfg->runtime && *x->cfg->runtime ?
	    x->cfg->runtime : "runc";
	const char *path = getenv("PATH");
	char *dirs, *save = NULL;

	free(x->runtime);
	x->runtime = NULL;
	if ((x->runtime_name = strdup(name)) == NULL)
		return -1;
	if (strchr(name, '/') != NULL) {
		if (executable(name))
			x->runtime = realpath(name, NULL);
		goto out;
	}
	/* Supervisors often give a short PATH; the runtimes live in sbin. */
	if (asprintf(&dirs, "%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:"
	    "/usr/bin:/sbin:/bin", path ? path : "") == -1)
		return -1;
	for (char *d = strtok_r(dirs, ":", &save); d != NULL;
	    d = strtok_r(NULL, ":", &save)) {
		char *cand;

		if (*d != '/' || (cand = path_join(d, name)) == NULL)
			continue;
		if (executable(cand)) {
			x->runtime = cand;
			break;
		}
		free(cand);
	}
	free(dirs);
out:
	if (x->runtime == NULL) {
		log_warnx("OCI runtime %s not found: every task will fail until"
		    " it is installed and mantad-exec restarted", name);
		return -1;
	}
	log_info("OCI runtime %s", x->runtime);
	return 0;
}

void
runtime_probe_cgroups(struct exec *x)
{
	struct statfs sf;
	char buf[8192], *p;
	DIR *d;
	struct dirent *de;

	x->cgroup2 = statfs("/sys/fs/cgroup", &sf) == 0 &&
	    sf.f_type == CGROUP2_SUPER_MAGIC;
	if (x->cgroup2) {
		/* memory.swap.max exists only with swap accounting, which
		 * matters only with swap. */
		x->swap_limit = false;
		if (read_small("/proc/meminfo", buf, sizeof(buf)) > 0 &&
		    (p = strstr(buf, "SwapTotal:")) != NULL)
			x->swap_limit = strtoull(p + 10, NULL, 10) > 0;
	} else
		x->swap_limit = access("/sys/fs/cgroup/memory/"
		    "memory.memsw.limit_in_bytes", F_OK) == 0;
	x->gpus = 0;
	if (x->cfg->gpu_enabled != 0 && (d = opendir("/dev")) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (strncmp(de->d_name, "nvidia", 6) == 0 &&
			    de->d_name[6] >= '0' && de->d_name[6] <= '9')
				x->gpus++;
		closedir(d);
	}
	log_info("cgroup %s, swap limit %s, %u NVIDIA GPUs",
	    x->cgroup2 ? "v2" : "v1", x->swap_limit ? "on" : "off", x->gpus);
}

/* Asks the launcher for a shim watching r: its pid, the read end of its
 * status pipe in fds[0] and a pidfd in fds[1] (-1 if none), or -1. */
static pid_t
spawn_shim(struct exec *x, const struct run *r, int fds[LAUNCH_FDS_MAX])
{
	struct launch_req q;
	struct launch_rep rep;
	const char *base = strrchr(r->dir, '/'), *log = strrchr(r->log, '/');

	memset(&q, 0, sizeof(q));
	q.kind = LAUNCH_SHIM;
	q.log_cap = x->cfg->log_max_size_bytes ? x->cfg->log_max_size_bytes :
	    (uint64_t)10 << 20;
	q.timeout_ms = (int64_t)x->cfg->task_timeout * 1000;
	q.grace_ms = STOP_GRACE_MS;
	snprintf(q.bundle, sizeof(q.bundle), "%s", base ? base + 1 : r->dir);
	snprintf(q.cid, sizeof(q.cid), "%s", r->cid);
	snprintf(q.log, sizeof(q.log), "%s", log ? log + 1 : r->log);
	if (launch_call(x->launcher, &q, -1, &rep, fds) == -1) {
		log_warn("container %s: unable to start its shim", r->cid);
		return -1;
	}
	if (fds[0] < 0) {
		log_warnx("launcher: shim %d without its status pipe", (int)rep.pid);
		if (fds[1] >= 0)
			close(fds[1]);
		return -1;
	}
	return rep.pid;
}

int
runtime_launch(struct exec *x, struct run *r)
{
	char th[ID_HEX_LEN + 1], err[512];
	int fds[LAUNCH_FDS_MAX];
	pid_t pid;

	if (x->runtime == NULL) {
		errno = ENOENT;
		log_warnx("no OCI runtime (%s)", x->runtime_name);
		return -1;
	}
	id_to_hex(r->task, th);
	r->attempts++;
	snprintf(r->cid, sizeof(r->cid), "manta-%s-%.12s-%" PRId64 "-%d",
	    x->inst, th, r->id, r->attempts);
	/* A namespace per attempt, named after its container. */
	netep_run_end(x, r);
	if (netep_run_begin(x, r) == -1)
		return -1;
	if (bundle_write_config(x, r, err, sizeof(err)) == -1) {
		log_warnx("task %s: %s", th, err);
		return -1;
	}
	/* What an earlier attempt's shim left must not pass for ours. */
	for (size_t i = 0; i < 3; i++) {
		static const char *const stale[] = { "result", "started", "init.pid" };
		char *f = path_join(r->dir, stale[i]);

		if (f != NULL)
			(void)unlink(f);
		free(f);
	}
	if ((pid = spawn_shim(x, r, fds)) == -1)
		return -1;
	(void)fcntl(fds[0], F_SETFL, O_NONBLOCK);
	r->status_fd = fds[0];
	r->pidfd = fds[1];
	r->slen = 0;
	r->shim = pid;
	r->shim_start = proc_start_time(pid, NULL);
	r->adopted = false;
	r->shim_done = false;
	if (store_run_set(x->db, r) == -1)
		log_warnx("task %s: shim %d not recorded", th, (int)pid);
	log_debug("task %s: container %s, shim %d", th, r->cid, (int)pid);
	return 0;
}

static bool
shim_alive(const struct run *r)
{
	if (r->shim <= 0)
		return false;
	if (!r->adopted)
		return !r->shim_done;
	return r->shim_start != 0 && proc_start_time(r->shim, NULL) == r->shim_start;
}

void
runtime_signal_stop(struct exec *x, struct run *r)
{
	(void)x;
	if (shim_alive(r) && kill(r->shim, SIGTERM) == -1 && errno != ESRCH)
		log_warn("unable to signal shim %d", (int)r->shim);
}

static void
mark_running(struct exec *x, struct run *r)
{
	if (r->state == RS_PENDING)
		(void)announce_transition(x, r, RS_RUNNING, NULL, -1, 0);
}

void
runtime_status_input(struct exec *x, struct run *r)
{
	for (;;) {
		ssize_t n;
		char *nl;

		if (r->slen >= sizeof(r->sbuf) - 1)
			r->slen = 0;
		n = read(r->status_fd, r->sbuf + r->slen,
		    sizeof(r->sbuf) - 1 - r->slen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close(r->status_fd);
			r->status_fd = -1;
			return;
		}
		r->slen += (size_t)n;
		r->sbuf[r->slen] = '\0';
		while ((nl = strchr(r->sbuf, '\n')) != NULL) {
			*nl = '\0';
			if (strcmp(r->sbuf, "R") == 0)
				mark_running(x, r);
			else if (strcmp(r->sbuf, "E") == 0) {
				/* The result is written; the shim still
				 * deletes the container, unwatched. */
				runtime_finish(x, r);
				return;
			}
			memmove(r->sbuf, nl + 1, r->slen - (size_t)(nl + 1 - r->sbuf) + 1);
			r->slen -= (size_t)(nl + 1 - r->sbuf);
		}
	}
}

/* The launcher is this process's one child (its socket's end says when
 * it is gone): shims, runtime calls and pulls are the launcher's. */
void
runtime_reap(struct exec *x)
{
	(void)x;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static bool
file_in(const struct run *r, const char *name)
{
	char *p = path_join(r->dir, name);
	bool ok = p != NULL && access(p, F_OK) == 0;

	free(p);
	return ok;
}

void
runtime_check_adopted(struct exec *x, struct run *r, bool exited)
{
	if (r->shim <= 0)
		return;
	if (r->state == RS_PENDING && file_in(r, "started"))
		mark_running(x, r);
	if (exited || file_in(r, "result") || !shim_alive(r))
		runtime_finish(x, r);
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
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
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

static void
finish(struct exec *x, struct run *r, enum run_state st, const char *reason,
    int code, uint32_t error_id)
{
	bool keep = st == RS_FAILED && !x->cfg->cleanup_on_failure;

	(void)announce_transition(x, r, st, reason, code, error_id);
	queue_release(x, r);
	netep_run_end(x, r);
	if (!keep)
		bundle_remove(x, r);
	logs_end(x, r);
	queue_admit(x);		/* a slot is free */
	run_maybe_forget(x, r);
}

/* The runtime could not start the container: another attempt while
 * tasks.retry_attempts allows, else the run ends. */
static void
finish_not_started(struct exec *x, struct run *r, const struct result *res)
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
		finish(x, r, RS_STOPPED, r->stop_reason, -1, 0);
		return;
	}
	snprintf(reason, sizeof(reason), "runtime %s could not start the"
	    " container (%d attempts): %s", x->runtime_name, r->attempts, tail);
	finish(x, r, RS_FAILED, reason, -1, ERR_DOCKER);
}

/* The container ran and ended: how, in the order a manager must hear it
 * (a stop asked for, the timeout, success, OOM, exit status, signal). */
static void
finish_ended(struct exec *x, struct run *r, const struct result *res)
{
	char reason[512];

	if (r->stop_requested)
		finish(x, r, RS_STOPPED, r->stop_reason,
		    res->exit >= 0 ? res->exit : res->sig ? 128 + res->sig : -1, 0);
	else if (res->timeout) {
		snprintf(reason, sizeof(reason), "timeout: still running after"
		    " tasks.task_timeout = %d s: stopped, reported FAILED",
		    x->cfg->task_timeout);
		/* The end of the run as far as the manager knows: say why in
		 * the logs it gets. */
		logs_note(r, reason);
		finish(x, r, RS_FAILED, reason, res->sig ? 128 + res->sig : res->exit,
		    ERR_TIMEOUT);
	} else if (res->exit == 0)
		finish(x, r, RS_COMPLETED, NULL, 0, 0);
	else if (res->oom > 0) {
		/* A task that lived through an OOM kill in its cgroup (of a
		 * child) and still exited 0 completed; otherwise the kill is
		 * the likely cause. */
		snprintf(reason, sizeof(reason), "oom: a process was killed for"
		    " lack of memory (limit %s)", x->cfg->default_memory_limit);
		finish(x, r, RS_FAILED, reason, res->sig ? 128 + res->sig : res->exit,
		    ERR_RESOURCE);
	} else if (res->exit > 0) {
		snprintf(reason, sizeof(reason), "exit status %d", res->exit);
		finish(x, r, RS_FAILED, reason, res->exit, 0);
	} else if (res->sig > 0) {
		snprintf(reason, sizeof(reason), "killed by signal %d", res->sig);
		finish(x, r, RS_FAILED, reason, 128 + res->sig, 0);
	} else
		finish(x, r, RS_FAILED, "exit status unknown", -1, ERR_NODE);
}

void
runtime_finish(struct exec *x, struct run *r)
{
	struct result res;

	if (r->status_fd >= 0) {
		close(r->status_fd);
		r->status_fd = -1;
	}
	if (r->pidfd >= 0) {
		close(r->pidfd);
		r->pidfd = -1;
	}
	r->shim = 0;
	if (run_state_final(r->state))
		return;
	if (read_result(r, &res) == -1) {
		/* The shim died without a word (killed): the container may
		 * still run, unwatched. Nothing of it may stay. */
		log_warnx("container %s lost its shim: deleting it", r->cid);
		runtime_cleanup_async(x, r->cid);
		if (r->stop_requested)
			finish(x, r, RS_STOPPED, r->stop_reason, -1, 0);
		else
			finish(x, r, RS_FAILED, "lost: the container's shim"
			    " died", -1, ERR_NODE);
		return;
	}
	if (res.runtime_error && !res.started) {
		finish_not_started(x, r, &res);
		return;
	}
	if (res.started)
		mark_running(x, r);
	finish_ended(x, r, &res);
	/* The run's result and status buffers are freed by now: give the
	 * pages back before the idle that follows (issue 14). */
	daemon_trim();
}

void
runtime_pidfd_input(struct exec *x, struct run *r)
{
	/* Our own shims are the launcher's children: their pidfd says when
	 * they end, as an adopted one's does. */
	if (!r->adopted)
		r->shim_done = true;
	runtime_check_adopted(x, r, true);
}
