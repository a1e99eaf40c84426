/* mantactl start [NAME] [-c FILE] [-d]: check the config, take the
 * instance lock in run_dir, then supervise in the foreground, or with -d in
 * a detached child that reports back once every daemon is up. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "confine.h"
#include "daemon.h"
#include "ipc.h"
#include "log.h"
#include "mantactl.h"
#include "supervise.h"

#define START_USAGE "start [NAME] [-c FILE] [-d]"

static int
take_lock(const struct manta_cfg *c)
{
	char *path = ctl_lock_path(c), pid[32];
	int fd, n;

	if (path == NULL)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1) {
		log_warn("unable to open %s", path);
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		int other = ctl_running_pid(c);
		log_errorx("node %s is already running (supervisor pid %d, lock %s)",
		    c->instance, other, path);
		free(path);
		close(fd);
		return -1;
	}
	free(path);
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("unable to write the supervisor pid");
	return fd;
}

/* logging.filename as the reference reads it (WIRE.md section 10): its
 * default "manta_node.log" stands for ~/.manta/logs/nodes/<alias, else
 * metadata.name unless "default", else "node">.log, every character other
 * than an ASCII letter, digit, '-' or '_' made '_'. */
static char *
log_path(const struct manta_cfg *c)
{
	const char *home = getenv("HOME"), *who;
	struct passwd *pw;
	char *p, *name;
	int r;

	if (strcmp(c->log_filename, "manta_node.log") != 0)
		return strdup(c->log_filename);
	if ((home == NULL || home[0] != '/') &&
	    ((pw = getpwuid(getuid())) == NULL || (home = pw->pw_dir) == NULL)) {
		log_warnx("no home directory for the default log file");
		return NULL;
	}
	who = c->alias != NULL ? c->alias : c->meta_name_set &&
	    strcmp(c->meta_name, "default") != 0 ? c->meta_name : "node";
	if ((name = strdup(who)) == NULL)
		return NULL;
	for (char *q = name; *q != '\0'; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
		    (*q >= '0' && *q <= '9') || *q == '-' || *q == '_'))
			*q = '_';
	r = asprintf(&p, "%s/.manta/logs/nodes/%s.log", home, name);
	free(name);
	return r == -1 ? NULL : p;
}

/* The node's log file, emptied (the reference truncates it at each
 * start), its directory made; -1 (logged) on failure. */
static int
open_log(const char *path)
{
	char *dir = strdup(path), *slash;
	int fd;

	if (dir != NULL && (slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (daemon_mkdirs(dir, 0700) == -1)
			log_warn("unable to create %s", dir);
	}
	free(dir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600)) == -1)
		log_warn("unable to open the log file %s", path);
	return fd;
}

/* stdout and stderr (the supervisor's, and so every daemon's) to fd. */
static void
redirect(int fd)
{
	dup2(fd, 1);
	dup2(fd, 2);
	close(fd);
}

/* Foreground with both log_to_file and log_to_console: tee(1) -i (it
 * outlives a ^C and ends with the last writer) copies everything to the
 * terminal and appends it to the file. */
static int
tee_to(const char *path)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1) {
		log_warn("pipe");
		return -1;
	}
	if ((pid = fork()) == -1) {
		log_warn("fork");
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(p[0], 0);
		dup2(2, 1);
		execlp("tee", "tee", "-i", "-a", path, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	redirect(p[1]);
	return 0;
}

/* Foreground: logging.log_to_file and log_to_console as the reference
 * has them; neither leaves the terminal as it is. */
static void
foreground_log(const struct manta_cfg *c)
{
	char *path;
	int fd;

	if (!c->log_to_file)
		return;
	if ((path = log_path(c)) == NULL || (fd = open_log(path)) == -1) {
		free(path);
		return;
	}
	fprintf(stderr, "mantactl: logging to %s%s\n", path,
	    c->log_to_console ? " and here" : "");
	if (!c->log_to_console)
		redirect(fd);
	else {
		close(fd);
		(void)tee_to(path);
	}
	free(path);
}

static int
prepare_dirs(const struct manta_cfg *c)
{
	struct confine_user u, light;

	/* A daemon that would stay root without its account: refused
	 * unless security.allow_root_daemons (issue 13), before anything
	 * is created. */
	if (confine_accounts(c, &u, &light) == -1 ||
	    confine_root_check(c, &u, "security.daemon_user") == -1 ||
	    confine_root_check(c, &light, "security.light_user") == -1 ||
	    ipc_prepare_run_dir(c->run_dir, confine_user_group(&u)) == -1)
		return -1;
	if (confine_state_dir(c) == -1)
		return -1;
	return 0;
}

/* -d: the child detaches and supervises; the parent waits for its word. */
static int
detach(struct manta_cfg *c, const char *cfg_path)
{
	int p[2], lock, logfd = -1, status = 0;
	char *logpath = NULL, buf[512];
	ssize_t n, got = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		log_fatal(CTL_FAIL, "pipe");
	if ((pid = fork()) == -1)
		log_fatal(CTL_FAIL, "fork");
	if (pid > 0) {
		close(p[1]);
		while ((n = read(p[0], buf + got, sizeof(buf) - 1 - (size_t)got)) > 0) {
			got += n;
			if (memchr(buf, '\n', (size_t)got) || (size_t)got >= sizeof(buf) - 1)
				break;
		}
		buf[got > 0 ? got : 0] = '\0';
		close(p[0]);
		if (strcmp(buf, "\n") == 0) {
			printf("node %s started (supervisor pid %d)\n", c->instance, (int)pid);
			if ((logpath = c->log_to_file ? log_path(c) : NULL) != NULL)
				printf("log: %s\n", logpath);
			else
				printf("log: none (logging.log_to_file = false)\n");
			free(logpath);
			status = CTL_OK;
		} else {
			fprintf(stderr, "mantactl: fatal: node %s did not start: %s%s", c->instance,
			    got > 0 ? buf : "the supervisor exited\n",
			    got > 0 && buf[got - 1] != '\n' ? "\n" : "");
			status = CTL_FAIL;
			/* Nothing of the node is left once we say so: the
			 * supervisor stops what it started, then exits. */
			while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
				continue;
		}
		cfg_free(c);
		free((char *)cfg_path);
		return status;
	}
	close(p[0]);
	if (setsid() == -1)
		_exit(CTL_FAIL);
	/* The lock first: a second start must not empty the log of the
	 * running one. */
	if ((lock = take_lock(c)) == -1) {
		(void)!write(p[1], "already running\n", 16);
		_exit(CTL_FAIL);
	}
	/* Detached, the console is gone: the file, or nowhere. */
	if (c->log_to_file && (logpath = log_path(c)) != NULL)
		logfd = open_log(logpath);
	free(logpath);
	if (logfd == -1)
		logfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (logfd >= 0) {
		int devnull = open("/dev/null", O_RDONLY);

		dup2(devnull, 0);
		if (devnull > 2)
			close(devnull);
		redirect(logfd);
	}
	status = supervise_run(c, cfg_path, lock, p[1]);
	cfg_free(c);
	free((char *)cfg_path);
	_exit(status);
}

int
cmd_start(int argc, char **argv)
{
	struct ctl_args a;
	struct manta_cfg *c;
	char *path, *abs;
	int rc, lock;

	if ((rc = ctl_parse(argc, argv, START_USAGE, 0, &a)) != 0)
		return rc;
	if ((c = ctl_load_config(&a)) == NULL)
		return CTL_FAIL;
	path = cfg_resolve_path(a.config, a.name);
	abs = path ? realpath(path, NULL) : NULL;
	free(path);
	if (abs == NULL) {
		cfg_free(c);
		return CTL_FAIL;
	}
	if (prepare_dirs(c) == -1) {
		rc = CTL_FAIL;
		goto out;
	}
	if (ctl_flag(&a, 'd'))
		return detach(c, abs);
	if ((lock = take_lock(c)) == -1) {
		rc = CTL_FAIL;
		goto out;
	}
	log_set_level(LOG_LVL_INFO);
	foreground_log(c);
	rc = supervise_run(c, abs, lock, -1);
	close(lock);
out:
	cfg_free(c);
	free(abs);
	return rc;
}
