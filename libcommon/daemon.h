/* daemon: what every mantad-* does the same way: options, config,
 * readiness notification, signals. */
#ifndef MANTA_DAEMON_H
#define MANTA_DAEMON_H

#include <stdbool.h>

#include "cfg.h"

struct daemon_opts {
	const char *config;	/* -c FILE (else $MANTA_CONFIG, else default.toml) */
	int notify_fd;		/* -r FD: write "\n" there once ready (s6 style); -1 none */
	bool check_only;	/* -n: check the config and exit */
	bool verbose;		/* -v: with -n, print the effective config; else debug logs */
};

/* Parses "-c FILE -r FD -n -v -h" for prog; exits 2 on bad usage. Also
 * reads $MANTA_NOTIFY_FD when -r is absent. */
void daemon_args(int argc, char **argv, const char *prog, struct daemon_opts *o);
/* Loads the config named by o (exits 1 naming file, line and key on error;
 * with -n exits 0 after a good check). Sets the log level from it. */
struct manta_cfg *daemon_config(const struct daemon_opts *o);
/* SIGHUP: loads the config named by o again, whole, and returns it with
 * the log level set from it; on any error logs "FILE:LINE: KEY: reason",
 * changes nothing and returns NULL: the caller keeps its config. Each
 * daemon then copies what it can apply while running (see its man page). */
struct manta_cfg *daemon_reload(const struct daemon_opts *o);
/* Blocks SIGTERM, SIGINT, SIGHUP, SIGCHLD (and ignores SIGPIPE) and returns a
 * signalfd for them (non-blocking, close-on-exec), for the poll loop. */
int daemon_signalfd(void);
/* Reads one pending signal from the signalfd: its number, 0 if none. */
int daemon_signal_read(int sfd);
/* After a burst of work: gives the pages malloc holds free back to the
 * system (malloc_trim) when they exceed 128 KiB, at most once a second.
 * daemon_ready and daemon_signal_read call it; a daemon may call it when
 * it has finished something large (a task, a stream). From the main
 * thread only. */
void daemon_trim(void);
/* Tells the supervisor we are ready and closes the fd; no-op for -1. */
void daemon_ready(int *notify_fd);
/* Monotonic milliseconds. */
long long daemon_now_ms(void);
/* One copy per state: takes an exclusive lock (flock) on
 * <state_dir>/<name>.lock and <run_dir>/<name>.lock (both directories must
 * exist), kept until the process exits (close-on-exec: programs it starts
 * do not hold it), and writes our pid there. Another process of the same
 * name holding either: logs "another PROG (pid N) holds PATH" and exits 1,
 * before anything of the state (database, socket) was touched. */
void daemon_lock(const struct manta_cfg *c, const char *prog, const char *name);
/* mkdir -p with mode (each created component). 0 or -1. */
int daemon_mkdirs(const char *path, int mode);

#endif
