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
				run_to_running(x, r);
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
		run_to_running(x, r);
	if (exited || file_in(r, "result") || !shim_alive(r))
		runtime_finish(x, r);
}

void
runtime_finish(struct exec *x, struct run *r)
{
	if (r->status_fd >= 0) {
		close(r->status_fd);
		r->status_fd = -1;
	}
	if (r->pidfd >= 0) {
		close(r->pidfd);
		r->pidfd = -1;
	}
	r->shim = 0;
	run_shim_gone(x, r);
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
