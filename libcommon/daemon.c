#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

static void
usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-nv] [-c FILE] [-r FD]\n", prog);
	exit(2);
}

static int
parse_fd(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < 0 || v > 1024)
		return -2;
	return (int)v;
}

/* daemon_trim: at most once a second, and only when malloc holds this much free. */
#define TRIM_EVERY_MS 1000
#define TRIM_FREE_BYTES (128 * 1024)

/* Every daemon idles most of its life between small bursts of work, and
 * what glibc keeps after a burst counts as the daemon's own memory (issue
 * 14, measured with make bench):
 * - one arena: each thread that mallocs (gRPC, ZeroMQ, paho threads) would
 *   otherwise get its own 64 MiB arena whose freed pages stay dirty;
 * - fixed thresholds: glibc raises the mmap threshold after a large block
 *   is freed (a 128 KiB stream chunk, a big SQLite read), so later ones
 *   stay in the heap; fixed, large blocks are mmap'd and given back at
 *   free, and a free top of the heap is trimmed past 128 KiB.
 * Runs first in main, before any library starts a thread. */
static void
tune_malloc(void)
{
	(void)mallopt(M_ARENA_MAX, 1);
	(void)mallopt(M_MMAP_THRESHOLD, 64 * 1024);
	(void)mallopt(M_TRIM_THRESHOLD, 128 * 1024);
}

void
daemon_args(int argc, char **argv, const char *prog, struct daemon_opts *o)
{
	const char *env;
	int ch;

	tune_malloc();
	memset(o, 0, sizeof(*o));
	o->notify_fd = -1;
	log_init(prog, LOG_LVL_INFO);
	while ((ch = getopt(argc, argv, "c:r:nvh")) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case 'r':
			if ((o->notify_fd = parse_fd(optarg)) < 0)
				usage(prog);
			break;
		case 'n':
			o->check_only = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		default:
			usage(prog);
		}
	}
	if (optind != argc)
		usage(prog);
	if (o->notify_fd == -1 && (env = getenv("MANTA_NOTIFY_FD")) != NULL) {
		if ((o->notify_fd = parse_fd(env)) < 0)
			o->notify_fd = -1;
	}
	/* Do not leak the readiness fd into programs we start. */
	if (o->notify_fd >= 0 && fcntl(o->notify_fd, F_SETFD, FD_CLOEXEC) == -1) {
		log_warn("readiness fd %d is not open; ignoring -r", o->notify_fd);
		o->notify_fd = -1;
	}
}

struct manta_cfg *
daemon_config(const struct daemon_opts *o)
{
	struct cfg_error err;
	struct manta_cfg *c;
	char *path, line[1200];
	int lvl;

	if ((path = cfg_resolve_path(o->config, NULL)) == NULL)
		log_fatalx(1, "unable to find a config file");
	memset(&err, 0, sizeof(err));
	c = cfg_load(path, &err);
	if (c == NULL) {
		cfg_error_format(&err, line, sizeof(line));
		free(path);
		/* 100: permanent failure, supervisors stop retrying (s6). */
		log_fatalx(o->check_only ? 1 : 100, "bad config: %s", line);
	}
	free(path);
	if (o->check_only) {
		if (o->verbose)
			cfg_print(stdout, c, true);
		cfg_free(c);
		exit(0);
	}
	lvl = log_level_parse(c->log_level ? c->log_level : "INFO");
	if (o->verbose)
		lvl = LOG_LVL_DEBUG;
	log_set_level(lvl < 0 ? LOG_LVL_INFO : (enum log_level)lvl);
	return c;
}

struct manta_cfg *
daemon_reload(const struct daemon_opts *o)
{
	struct cfg_error err;
	struct manta_cfg *c;
	char *path, line[1200];
	int lvl;

	if ((path = cfg_resolve_path(o->config, NULL)) == NULL) {
		log_warnx("SIGHUP: unable to find the config file; keeping the"
		    " current configuration");
		return NULL;
	}
	memset(&err, 0, sizeof(err));
	/* Sealed values stay sealed: a reload takes scalar keys only, and a
	 * daemon running as security.daemon_user cannot read the secret key. */
	c = cfg_load_flags(path, CFG_LOAD_SEALED, &err);
	free(path);
	if (c == NULL) {
		cfg_error_format(&err, line, sizeof(line));
		log_warnx("SIGHUP: bad config: %s; keeping the current"
		    " configuration", line);
		return NULL;
	}
	lvl = log_level_parse(c->log_level ? c->log_level : "INFO");
	if (o->verbose)
		lvl = LOG_LVL_DEBUG;
	log_set_level(lvl < 0 ? LOG_LVL_INFO : (enum log_level)lvl);
	return c;
}

int
daemon_signalfd(void)
{
	sigset_t set;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		return -1;
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd;
}

void
daemon_trim(void)
{
	static long long last;
	long long now = daemon_now_ms();
	struct mallinfo2 mi;

	if (now - last < TRIM_EVERY_MS)
		return;
	last = now;
	mi = mallinfo2();
	if (mi.fordblks >= TRIM_FREE_BYTES)
		(void)malloc_trim(0);
}

int
daemon_signal_read(int sfd)
{
	struct signalfd_siginfo si;
	ssize_t n = read(sfd, &si, sizeof(si));

	if (n != (ssize_t)sizeof(si))
		return 0;
	/* A signal ends a piece of work (SIGCHLD: a task's runtime or shim
	 * exited in mantad-exec; SIGHUP: a reload): a good time to give
	 * freed pages back. */
	daemon_trim();
	return (int)si.ssi_signo;
}

void
daemon_ready(int *notify_fd)
{
	/* What start-up parsed and loaded (the config, schemas) is freed by
	 * now: give those pages back before the long idle. */
	(void)malloc_trim(0);
	if (*notify_fd < 0)
		return;
	if (write(*notify_fd, "\n", 1) != 1)
		log_warn("unable to signal readiness on fd %d", *notify_fd);
	close(*notify_fd);
	*notify_fd = -1;
}

long long
daemon_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
daemon_mkdirs(const char *path, int mode)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(buf, (mode_t)mode) == -1 && errno != EEXIST)
				return -1;
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

/* The pid written in a lock file by its holder, 0 if unreadable. */
static int
lock_holder(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return atoi(buf);
}

/* Locks dir/name.lock; returns its fd, or exits 1 naming the holder. */
static int
lock_one(const char *prog, const char *dir, const char *name, int other)
{
	struct stat a, b;
	char path[4096], pid[32];
	int fd, n;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s.lock", dir, name) >= sizeof(path))
		log_fatalx(1, "path too long: %s/%s.lock", dir, name);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) == -1)
		log_fatal(1, "unable to open %s", path);
	/* state_dir and run_dir may be one directory: one lock then. */
	if (other >= 0 && fstat(fd, &a) == 0 && fstat(other, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
		close(fd);
		return -1;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			log_fatalx(1, "another %s (pid %d) holds %s: refusing to share"
			    " its state; not starting", prog, lock_holder(fd), path);
		log_fatal(1, "unable to lock %s", path);
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("unable to write our pid to %s", path);
	return fd;
}

void
daemon_lock(const struct manta_cfg *c, const char *prog, const char *name)
{
	static int fds[2] = { -1, -1 };

	if (fds[0] != -1)
		return;
	fds[0] = lock_one(prog, c->state_dir, name, -1);
	fds[1] = lock_one(prog, c->run_dir, name, fds[0]);
}
