/* pull: images a deploy names that are not in the store (issue 12).
 *
 * A queued run whose image is missing stays QUEUED (so nothing about it is
 * published: no RUNNING before the image is there) while one pull per
 * image runs; every run of that image waits on the same pull. Pulls run
 * one at a time on a thread of their own, each as a child process of the
 * launcher (launch.h: a fresh exec of this binary, "--pull", in a process
 * group of its own) that fills the store through libcommon/imgstore.c
 * (skopeo, then umoci) and prints one line: "ok", or why not. The thread
 * kills the group when containers.pull_timeout passes or mantad-exec
 * stops, and has the launcher remove what the killed pull left. The
 * result comes back to the main loop as EV_PULLED: the waiting runs then
 * start, or end FAILED with SendError 18 and the registry's reason.
 *
 * Credentials (containers.registry_auth, sealed or not) reach skopeo as a
 * memfd on fd 3, never as a file name others could read. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image.h"
#include "imgstore.h"
#include "log.h"

#include "exec.h"

#define OUT_MAX		2048
#define POLL_MS		200
#define REAP_WAIT_MS	3000

struct pull_job {
	struct pull_job *next;
	char *image;
	bool insecure;
	int authfd;		/* -1: none */
	char *err;		/* set: fails at once with it */
	long long timeout_ms;
};

struct pulls {
	struct evq_worker *th;
	struct launch_chan *launcher;	/* this thread's (launch.h) */
	struct evq *q;
	const char *image_dir;	/* borrowed from the config */
	char *tasks_dir;
	int max_disk;
	atomic_bool stopping;
	/* main thread only: the images being pulled */
	char **inflight;
	size_t ninflight;
};

static void
job_destroy(void *p)
{
	struct pull_job *j = p;

	if (j == NULL)
		return;
	if (j->authfd >= 0)
		close(j->authfd);
	free(j->image);
	free(j->err);
	free(j);
}

static const struct evq_ops pull_ops = EVQ_OPS(struct pull_job, next, job_destroy);

static void
push_result(struct pulls *ps, const char *image, int code, const char *reason)
{
	struct event *ev;
	size_t a = strlen(image), b = strlen(reason);

	if ((ev = event_new(EV_PULLED)) == NULL ||
	    (ev->data = malloc(a + b + 2)) == NULL) {
		event_free(ev);
		log_warnx("out of memory: the pull of %s is lost", image);
		return;
	}
	memcpy(ev->data, image, a + 1);
	memcpy(ev->data + a + 1, reason, b + 1);
	ev->len = a + b + 2;
	ev->code = code;
	evq_push(ps->q, ev);
}

/* Waits (a while) for the pull to be gone (its pidfd readable), then has
 * the launcher remove what it left in the store. */
static void
cleanup_after(struct pulls *ps, int pidfd)
{
	struct pollfd pf = { pidfd, POLLIN, 0 };
	struct launch_req q;
	struct launch_rep rep;
	int fds[LAUNCH_FDS_MAX];

	if (pidfd >= 0)
		(void)poll(&pf, 1, REAP_WAIT_MS);
	memset(&q, 0, sizeof(q));
	q.kind = LAUNCH_PULL_CLEAN;
	if (launch_call(ps->launcher, &q, -1, &rep, fds) == -1)
		log_warn("unable to clean the image store after a pull");
	for (size_t i = 0; i < LAUNCH_FDS_MAX; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/*
 * Has the launcher start the pull child (mantad-exec --pull ..., in a
 * process group of its own) with its stdout on a pipe; returns its pid,
 * the read end in *rfd and a pidfd in *pidfd (-1: none), or -1 with *err
 * set.
 */
static pid_t
spawn_pull(struct pulls *ps, struct pull_job *j, int *rfd, int *pidfd,
    const char **err)
{
	struct launch_req q;
	struct launch_rep rep;
	int fds[LAUNCH_FDS_MAX];

	memset(&q, 0, sizeof(q));
	q.kind = LAUNCH_PULL;
	q.insecure = j->insecure ? 1 : 0;
	q.max_disk = ps->max_disk < 0 ? 0 : ps->max_disk > 100 ? 100 :
	    (uint32_t)ps->max_disk;
	if (strlen(j->image) >= sizeof(q.image)) {
		*err = "node error: image reference too long";
		return -1;
	}
	snprintf(q.image, sizeof(q.image), "%s", j->image);
	if (launch_call(ps->launcher, &q, j->authfd, &rep, fds) == -1) {
		log_warn("unable to start the pull of %s", j->image);
		*err = errno == EINVAL ? "node error: image reference refused" :
		    "node error: unable to start the pull";
		return -1;
	}
	if (fds[0] < 0) {
		if (fds[1] >= 0)
			close(fds[1]);
		*err = "node error: no output from the pull";
		return -1;
	}
	*rfd = fds[0];
	*pidfd = fds[1];
	return rep.pid;
}

/*
 * Reads the pull child's output into out (its end, when longer than
 * OUT_MAX) until it closes; kills its group when exec stops (*killed) or
 * at the deadline (*killed and *timed_out).  Returns the length read.
 */
static size_t
read_pull(struct pulls *ps, pid_t pid, int fd, long long deadline, char *out,
    bool *killed, bool *timed_out)
{
	size_t nout = 0;

	for (;;) {
		struct pollfd pf = { fd, POLLIN, 0 };
		ssize_t r;

		if (!*killed && atomic_load(&ps->stopping)) {
			(void)kill(-pid, SIGKILL);
			*killed = true;
		}
		if (!*killed && daemon_now_ms() >= deadline) {
			(void)kill(-pid, SIGKILL);
			*killed = *timed_out = true;
		}
		if (poll(&pf, 1, POLL_MS) <= 0)
			continue;
		if ((r = read(fd, out + nout, OUT_MAX - nout)) == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		nout += (size_t)r;
		if (nout == OUT_MAX)	/* keep the end: the result is last */
			nout = 0;
	}
	close(fd);
	out[nout] = '\0';
	return nout;
}

static void
run_pull(struct evq_worker *th, void *job, void *arg)
{
	struct pulls *ps = arg;
	struct pull_job *j = job;
	char out[OUT_MAX + 1], reason[OUT_MAX + 160], *nl;
	const char *err = NULL;
	size_t nout;
	long long deadline = daemon_now_ms() + j->timeout_ms;
	int fd = -1, pidfd = -1;
	bool timed_out = false, killed = false;
	pid_t pid;

	(void)th;
	if (j->err != NULL) {
		push_result(ps, j->image, -1, j->err);
		return;
	}
	if ((pid = spawn_pull(ps, j, &fd, &pidfd, &err)) == -1) {
		push_result(ps, j->image, -1, err);
		return;
	}
	log_info("pulling %s (pid %d)", j->image, (int)pid);
	nout = read_pull(ps, pid, fd, deadline, out, &killed, &timed_out);
	while (nout > 0 && out[nout - 1] == '\n')
		out[--nout] = '\0';
	nl = strrchr(out, '\n');
	if (killed) {
		cleanup_after(ps, pidfd);
		if (pidfd >= 0)
			close(pidfd);
		if (!timed_out)
			return;		/* stopping: the run stays QUEUED for the next start */
		snprintf(reason, sizeof(reason), "pull of %s timed out after %lld s"
		    " (containers.pull_timeout)", j->image, j->timeout_ms / 1000);
		push_result(ps, j->image, -1, reason);
		return;
	}
	if (strcmp(nl ? nl + 1 : out, "ok") == 0) {
		if (pidfd >= 0)
			close(pidfd);
		push_result(ps, j->image, 0, "");
		return;
	}
	if (nout == 0)
		cleanup_after(ps, pidfd);
	if (pidfd >= 0)
		close(pidfd);
	snprintf(reason, sizeof(reason), "pull of %s failed: %s", j->image,
	    nout ? (nl ? nl + 1 : out) : "the pull process ended without a result");
	push_result(ps, j->image, -1, reason);
}

struct pulls *
pulls_start(struct exec *x)
{
	struct pulls *ps;

	if ((ps = calloc(1, sizeof(*ps))) == NULL)
		return NULL;
	ps->q = x->q;
	ps->launcher = x->launcher_pull;
	ps->image_dir = x->cfg->image_dir;
	ps->tasks_dir = strdup(x->tasks_dir);
	ps->max_disk = x->cfg->max_disk_usage_percent;
	atomic_init(&ps->stopping, false);
	if (ps->tasks_dir == NULL ||
	    (ps->th = evq_worker_start("pull", &pull_ops, run_pull, ps)) == NULL) {
		free(ps->tasks_dir);
		free(ps);
		return NULL;
	}
	return ps;
}

void
pulls_stop(struct pulls *ps)
{
	if (ps == NULL)
		return;
	atomic_store(&ps->stopping, true);
	(void)evq_worker_stop(ps->th);
	for (size_t i = 0; i < ps->ninflight; i++)
		free(ps->inflight[i]);
	free(ps->inflight);
	free(ps->tasks_dir);
	free(ps);
}

static bool
rootfs_present(const struct exec *x, const char *image)
{
	char *rootfs = bundle_rootfs(x, image);
	struct stat st;
	bool ok = rootfs != NULL && stat(rootfs, &st) == 0 && S_ISDIR(st.st_mode);

	free(rootfs);
	return ok;
}

const char *
pull_refused(const struct exec *x, const char *image, char *buf, size_t len)
{
	char host[256];

	if (imgstore_registry(image, host, sizeof(host)) == -1) {
		snprintf(buf, len, "image \"%s\" is not in %s and is not a reference"
		    " to pull", image, x->cfg->image_dir);
		return buf;
	}
	if (x->cfg->registries.n > 0 && !imgstore_host_listed(host,
	    x->cfg->registries.v, x->cfg->registries.n)) {
		snprintf(buf, len, "image \"%s\" is not in %s and its registry %s"
		    " is not in containers.registries", image, x->cfg->image_dir, host);
		return buf;
	}
	return NULL;
}

bool
pull_wait(struct exec *x, struct run *r)
{
	struct pulls *ps = x->pulls;
	struct pull_job *j;
	char host[256], fdpath[64], err[1024], **v;
	const char *why;

	if (ps == NULL || rootfs_present(x, r->image))
		return false;
	for (size_t i = 0; i < ps->ninflight; i++)
		if (strcmp(ps->inflight[i], r->image) == 0)
			return true;
	if ((v = reallocarray(ps->inflight, ps->ninflight + 1, sizeof(*v))) == NULL)
		return false;	/* the runtime says what is missing */
	ps->inflight = v;
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->image = strdup(r->image)) == NULL ||
	    (v[ps->ninflight] = strdup(r->image)) == NULL) {
		if (j != NULL)
			free(j->image);
		free(j);
		return false;
	}
	ps->ninflight++;
	j->authfd = -1;
	j->timeout_ms = (long long)x->cfg->pull_timeout * 1000;
	/* Checked at deploy; again here, for runs queued before a reload. */
	if ((why = pull_refused(x, r->image, err, sizeof(err))) != NULL)
		j->err = strdup(why);
	else if ((j->authfd = imgstore_authfile(x->cfg, fdpath, sizeof(fdpath), err,
	    sizeof(err))) == -1)
		j->err = strdup(err);
	else if (imgstore_registry(r->image, host, sizeof(host)) == 0)
		j->insecure = imgstore_host_listed(host, x->cfg->insecure_registries.v,
		    x->cfg->insecure_registries.n);
	if (j->authfd < 0)
		j->authfd = -1;
	if (evq_worker_post(ps->th, j, SIZE_MAX) == -1) {
		/* Not waiting on a pull that will never come: the runtime
		 * then says what is missing. */
		log_warnx("unable to queue the pull of %s", r->image);
		free(ps->inflight[--ps->ninflight]);
		return false;
	}
	return true;
}

void
pull_done(struct exec *x, const struct event *ev)
{
	struct pulls *ps = x->pulls;
	const char *image = (const char *)ev->data;
	const char *reason = image + strlen(image) + 1;
	char buf[IMAGE_NAME_MAX + 64];
	struct run *r, *next;

	for (size_t i = 0; ps != NULL && i < ps->ninflight; i++)
		if (strcmp(ps->inflight[i], image) == 0) {
			free(ps->inflight[i]);
			ps->inflight[i] = ps->inflight[--ps->ninflight];
			break;
		}
	if (ev->code == 0 && rootfs_present(x, image)) {
		log_info("pulled %s", image);
	} else {
		/* Pulled yet gone: fail rather than pull again and again. */
		if (ev->code == 0) {
			snprintf(buf, sizeof(buf), "pull of %s: the pulled image is"
			    " not in the store", image);
			reason = buf;
		}
		log_warnx("%s", reason);
		for (r = TAILQ_FIRST(&x->queue); r != NULL; r = next) {
			next = TAILQ_NEXT(r, q);
			if (strcmp(r->image, image) != 0)
				continue;
			TAILQ_REMOVE(&x->queue, r, q);
			run_end_unlaunched(x, r, RS_FAILED, reason, ERR_DOCKER);
		}
	}
	queue_admit(x);
}

void
image_process(const struct exec *x, const struct run *r, json_t *p, json_t *env,
    bool *has_path, bool *has_home)
{
	static const char *const ours[] = {
		"TASK_ID=", "SWARM_ID=", "RPC_HOST=", "RPC_PORT=",
		"MANTA_TASK_TOKEN=", "PYTHONUNBUFFERED=",
	};
	json_t *meta = imgstore_meta(x->cfg->image_dir, r->image), *c, *v;
	const char *cwd;
	size_t i;

	imgstore_touch(x->cfg->image_dir, r->image);
	if ((c = json_object_get(meta, "config")) == NULL) {
		json_decref(meta);
		return;
	}
	json_array_foreach(json_object_get(c, "env"), i, v) {
		const char *e = json_string_value(v);
		bool skip = e == NULL;

		for (size_t k = 0; !skip && k < sizeof(ours) / sizeof(ours[0]); k++)
			skip = strncmp(e, ours[k], strlen(ours[k])) == 0;
		if (skip)
			continue;
		if (strncmp(e, "PATH=", 5) == 0)
			*has_path = true;
		if (strncmp(e, "HOME=", 5) == 0)
			*has_home = true;
		json_array_append(env, v);
	}
	if ((cwd = json_string_value(json_object_get(c, "cwd"))) != NULL)
		json_object_set_new(p, "cwd", json_string(cwd));
	if (json_is_integer(json_object_get(c, "uid")) &&
	    json_is_integer(json_object_get(c, "gid"))) {
		json_t *user = json_object_get(p, "user");

		json_object_set(user, "uid", json_object_get(c, "uid"));
		json_object_set(user, "gid", json_object_get(c, "gid"));
	}
	json_decref(meta);
}

void
pull_main(int argc, char **argv)
{
	struct imgstore s = { .authfd = -1 };
	char err[1024];
	int rc;

	/* IMAGE_DIR TASKS_DIR REF INSECURE MAX_DISK AUTHFILE */
	log_init(PROG, LOG_LVL_INFO);
	if (argc != 6) {
		printf("usage: " PROG " --pull IMAGE_DIR TASKS_DIR REF INSECURE MAX_DISK"
		    " AUTHFILE\n");
		exit(2);
	}
	umask(022);
	s.image_dir = argv[0];
	s.tasks_dir = argv[1];
	s.insecure = strcmp(argv[3], "1") == 0;
	s.max_disk_percent = atoi(argv[4]);
	if (argv[5][0] != '\0') {
		/* Never another file that happens to get fd 3. */
		if (fcntl(3, F_GETFD) == -1) {
			printf("node error: the registry credentials did not reach"
			    " the pull\n");
			exit(1);
		}
		s.authfile = argv[5];
		s.authfd = 3;
	}
	rc = imgstore_pull(&s, argv[2], NULL, err, sizeof(err));
	printf("%s\n", rc == 0 ? "ok" : err);
	exit(rc == 0 ? 0 : 1);
}
