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

#define ARGS_MAX 16

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

static char *
memcg_path(const struct exec *x, const char *cid)
{
	char *p;

	if (asprintf(&p, "%s/manta/%s", x->cgroup2 ? "/sys/fs/cgroup" :
	    "/sys/fs/cgroup/memory", cid) == -1)
		return NULL;
	return p;
}

/* Forks and executes "mantad-exec --shim" with argv, its fd 3 the write
 * end of a status pipe whose read end lands in p[0]. The shim's pid, or
 * -1 (logged). */
static pid_t
spawn_shim(char *const argv[], int p[2])
{
	pid_t pid;
	int null;

	if ((pid = fork_piped(p)) != 0)
		return pid;
	if (p[1] == 3)
		(void)fcntl(3, F_SETFD, 0);
	else if (dup2(p[1], 3) == -1)
		_exit(111);
	if ((null = open("/dev/null", O_RDONLY)) == -1 || dup2(null, 0) == -1)
		_exit(111);
	(void)syscall(SYS_close_range, 4U, ~0U, 0U);
	execv("/proc/self/exe", argv);
	_exit(111);
}

int
runtime_launch(struct exec *x, struct run *r)
{
	char th[ID_HEX_LEN + 1], cap[32], tmo[32], grace[32], err[512];
	char *memcg = NULL, *argv[ARGS_MAX];
	int p[2] = { -1, -1 };
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
	if ((memcg = memcg_path(x, r->cid)) == NULL)
		return -1;
	snprintf(cap, sizeof(cap), "%" PRIu64, x->cfg->log_max_size_bytes ?
	    x->cfg->log_max_size_bytes : (uint64_t)10 << 20);
	snprintf(tmo, sizeof(tmo), "%lld", (long long)x->cfg->task_timeout * 1000);
	snprintf(grace, sizeof(grace), "%d", STOP_GRACE_MS);
	argv[0] = (char *)PROG;
	argv[1] = (char *)"--shim";
	argv[2] = r->dir;
	argv[3] = x->runtime;
	argv[4] = x->runtime_root;
	argv[5] = r->cid;
	argv[6] = r->log;
	argv[7] = cap;
	argv[8] = tmo;
	argv[9] = grace;
	argv[10] = memcg;
	argv[11] = NULL;
	/* What an earlier attempt's shim left must not pass for ours. */
	for (size_t i = 0; i < 3; i++) {
		static const char *const stale[] = { "result", "started", "init.pid" };
		char *f = path_join(r->dir, stale[i]);

		if (f != NULL)
			(void)unlink(f);
		free(f);
	}
	pid = spawn_shim(argv, p);
	free(memcg);
	if (pid == -1)
		return -1;
	(void)fcntl(p[0], F_SETFL, O_NONBLOCK);
	r->status_fd = p[0];
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

void
runtime_reap(struct exec *x)
{
	int status;
	int64_t id;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct run *r;

		TAILQ_FOREACH(r, &x->runs, all)
			if (!r->adopted && r->shim == pid && !r->shim_done)
				break;
		if (r == NULL)
			continue;
		r->shim_done = true;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			log_warnx("shim %d of container %s ended with status %d",
			    (int)pid, r->cid, WIFEXITED(status) ?
			    WEXITSTATUS(status) : 128 + WTERMSIG(status));
		id = r->id;
		if (r->status_fd >= 0)
			runtime_status_input(x, r);
		/* Its "E" may have ended the run (even freed it) or started
		 * the next attempt: only a run still on this shim is ours. */
		TAILQ_FOREACH(r, &x->runs, all)
			if (r->id == id)
				break;
		if (r != NULL && r->shim == pid && !r->adopted)
			runtime_finish(x, r);
	}
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

void
runtime_finish(struct exec *x, struct run *r)
{
	struct result res;
	char reason[512], tail[300];

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
		log_tail(r->log, tail, sizeof(tail));
		if (!r->stop_requested && !x->stopping &&
		    r->attempts <= x->cfg->retry_attempts) {
			log_warnx("container %s did not start (%s, status %d):"
			    " retrying", r->cid, tail, res.runtime_code);
			if (runtime_launch(x, r) == 0)
				return;
		}
		if (r->stop_requested) {
			finish(x, r, RS_STOPPED, r->stop_reason, -1, 0);
			return;
		}
		snprintf(reason, sizeof(reason), "runtime %s could not start the"
		    " container (%d attempts): %s", x->runtime_name, r->attempts,
		    tail);
		finish(x, r, RS_FAILED, reason, -1, ERR_DOCKER);
		return;
	}
	if (res.started)
		mark_running(x, r);
	if (r->stop_requested)
		finish(x, r, RS_STOPPED, r->stop_reason,
		    res.exit >= 0 ? res.exit : res.sig ? 128 + res.sig : -1, 0);
	else if (res.timeout) {
		snprintf(reason, sizeof(reason), "timeout: still running after"
		    " tasks.task_timeout = %d s: stopped, reported FAILED",
		    x->cfg->task_timeout);
		/* The end of the run as far as the manager knows: say why in
		 * the logs it gets. */
		logs_note(r, reason);
		finish(x, r, RS_FAILED, reason, res.sig ? 128 + res.sig : res.exit,
		    ERR_TIMEOUT);
	} else if (res.exit == 0)
		finish(x, r, RS_COMPLETED, NULL, 0, 0);
	else if (res.oom > 0) {
		/* A task that lived through an OOM kill in its cgroup (of a
		 * child) and still exited 0 completed; otherwise the kill is
		 * the likely cause. */
		snprintf(reason, sizeof(reason), "oom: a process was killed for"
		    " lack of memory (limit %s)", x->cfg->default_memory_limit);
		finish(x, r, RS_FAILED, reason, res.sig ? 128 + res.sig : res.exit,
		    ERR_RESOURCE);
	}
	else if (res.exit > 0) {
		snprintf(reason, sizeof(reason), "exit status %d", res.exit);
		finish(x, r, RS_FAILED, reason, res.exit, 0);
	} else if (res.sig > 0) {
		snprintf(reason, sizeof(reason), "killed by signal %d", res.sig);
		finish(x, r, RS_FAILED, reason, 128 + res.sig, 0);
	} else
		finish(x, r, RS_FAILED, "exit status unknown", -1, ERR_NODE);
	/* The run's result and status buffers are freed by now: give the
	 * pages back before the idle that follows (issue 14). */
	daemon_trim();
}

/* In a child of the cleaner: runs argv and waits for it. Async-signal-safe
 * calls only (we were forked from a threaded process). */
static void
cleaner_run(char *const argv[])
{
	pid_t pid;

	if ((pid = fork()) == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid > 0)
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
}

void
runtime_cleanup_async(const struct exec *x, const char *cid)
{
	char *kargv[8], *dargv[8];
	sigset_t none;
	pid_t pid;
	int null;

	if (x->runtime == NULL)
		return;
	kargv[0] = dargv[0] = x->runtime;
	kargv[1] = dargv[1] = (char *)"--root";
	kargv[2] = dargv[2] = x->runtime_root;
	kargv[3] = (char *)"kill";
	kargv[4] = (char *)cid;
	kargv[5] = (char *)"KILL";
	kargv[6] = NULL;
	dargv[3] = (char *)"delete";
	dargv[4] = (char *)"--force";
	dargv[5] = (char *)cid;
	dargv[6] = NULL;
	if ((pid = fork()) == -1) {
		log_warn("unable to fork the clean-up of container %s", cid);
		return;
	}
	if (pid > 0) {
		log_debug("container %s: clean-up in process %d", cid, (int)pid);
		return;
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if ((null = open("/dev/null", O_RDWR)) == -1 || dup2(null, 0) == -1 ||
	    dup2(null, 1) == -1 || dup2(null, 2) == -1)
		_exit(127);
	(void)syscall(SYS_close_range, 3U, ~0U, 0U);
	cleaner_run(kargv);
	cleaner_run(dargv);
	_exit(0);
}

int
runtime_cmd(const struct exec *x, char *out, size_t outlen, ...)
{
	char *argv[ARGS_MAX];
	va_list ap;
	int argc = 0, p[2] = { -1, -1 }, status;
	size_t got = 0;
	pid_t pid;

	if (x->runtime == NULL)
		return -1;
	argv[argc++] = x->runtime;
	argv[argc++] = (char *)"--root";
	argv[argc++] = x->runtime_root;
	va_start(ap, outlen);
	for (char *a; (a = va_arg(ap, char *)) != NULL && argc < ARGS_MAX - 1;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	if (out != NULL && pipe2(p, O_CLOEXEC) == -1)
		return -1;
	if ((pid = fork()) == -1) {
		if (p[0] != -1) {
			close(p[0]);
			close(p[1]);
		}
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		int null = open("/dev/null", O_RDWR);

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (null == -1 || dup2(null, 0) == -1 ||
		    dup2(p[1] != -1 ? p[1] : null, 1) == -1 || dup2(null, 2) == -1)
			_exit(127);
		(void)syscall(SYS_close_range, 3U, ~0U, 0U);
		execv(argv[0], argv);
		_exit(127);
	}
	if (out != NULL) {
		close(p[1]);
		for (;;) {
			ssize_t n = read(p[0], out + got, outlen - 1 - got);
			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
			if (got == outlen - 1) {
				char sink[4096];
				while (read(p[0], sink, sizeof(sink)) > 0)
					;
				break;
			}
		}
		out[got] = '\0';
		close(p[0]);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
