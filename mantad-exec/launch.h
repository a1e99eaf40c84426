/* launch: the small privileged launcher of mantad-exec (issue 13, finding
 * 4) and the fixed-format frames the daemon sends it.
 *
 * mantad-exec forks and executes "mantad-exec --launcher ..." before any
 * thread, connected by a SOCK_SEQPACKET socketpair (its fd 3). The
 * launcher keeps the capabilities the OCI runtime needs and loads no
 * seccomp filter (the containers would inherit it); it parses nothing but
 * struct launch_req, one per packet, of exactly that size, each field
 * checked against the one pattern mantad-exec generates. Anything else is
 * refused with an error reply, and logged, before any fork. Each request
 * that passes forks one child; the reply carries its pid and, over
 * SCM_RIGHTS, the descriptors the daemon watches instead of waiting for a
 * child of its own. */
#ifndef MANTA_EXEC_LAUNCH_H
#define MANTA_EXEC_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LAUNCH_BUNDLE_MAX	128	/* a bundle's name in <state_dir>/tasks */
#define LAUNCH_CID_MAX		96	/* CID_MAX */
#define LAUNCH_LOG_MAX		32	/* a log's name in <state_dir>/logs */
#define LAUNCH_IMAGE_MAX	256	/* an image reference */
#define LAUNCH_FDS_MAX		2
#define LAUNCH_GRACE_MAX	600000	/* ms */

enum launch_kind {
	/* "mantad-exec --shim" for bundle, cid, log: status pipe, pidfd */
	LAUNCH_SHIM = 1,
	/* "runtime kill cid KILL; runtime delete --force cid": no fd */
	LAUNCH_CLEAN = 2,
	/* "runtime list --quiet": the read end of its stdout */
	LAUNCH_LIST = 3,
	/* "mantad-exec --pull" of image (its own process group), with the
	 * credentials' memfd passed along, if any: its stdout, a pidfd */
	LAUNCH_PULL = 4,
	/* imgstore_clean of the image store, after a pull was killed */
	LAUNCH_PULL_CLEAN = 5,
	/* a network namespace at <run_dir>/netns/<cid>, lo up: a socket
	 * listening on 127.0.0.1:port inside it */
	LAUNCH_NETNS_ADD = 6,
	/* a new listening socket in the namespace of cid */
	LAUNCH_NETNS_LISTEN = 7,
	/* unmounts and removes the namespace of cid */
	LAUNCH_NETNS_DEL = 8,
	/* the last component of /proc/<pid>/exe, in the reply's msg: who
	 * called mantad-exec's endpoint (libcommon/ipc.c); no fork */
	LAUNCH_EXE = 9,
};

struct launch_req {
	uint32_t kind;
	uint32_t seq;
	uint64_t log_cap;		/* LAUNCH_SHIM: bytes of output kept */
	int64_t timeout_ms;		/* LAUNCH_SHIM: 0 = none */
	int64_t grace_ms;		/* LAUNCH_SHIM: SIGTERM -> SIGKILL */
	char bundle[LAUNCH_BUNDLE_MAX];	/* LAUNCH_SHIM */
	char cid[LAUNCH_CID_MAX];	/* LAUNCH_SHIM, LAUNCH_CLEAN */
	char log[LAUNCH_LOG_MAX];	/* LAUNCH_SHIM */
	char image[LAUNCH_IMAGE_MAX];	/* LAUNCH_PULL */
	uint32_t insecure;		/* LAUNCH_PULL: 0 or 1 */
	uint32_t max_disk;		/* LAUNCH_PULL: percent, 0..100 */
	uint32_t port;			/* LAUNCH_NETNS_ADD, _LISTEN */
	int32_t pid;			/* LAUNCH_EXE */
};

struct launch_rep {
	uint32_t seq;
	int32_t err;			/* 0, or an errno value */
	int32_t pid;			/* the child forked, 0 if none */
	uint32_t nfds;			/* descriptors passed with it */
	char msg[272];			/* why, when err != 0; LAUNCH_EXE's name */
};

/* What the launcher was started with (its argv). */
struct launch_cfg {
	const char *runtime;		/* absolute path, "" when none */
	const char *root;		/* the runtime's --root */
	const char *tasks_dir;
	const char *logs_dir;
	const char *run_dir;
	const char *image_dir;
	bool cgroup2;
};

/* The patterns mantad-exec generates: a bundle is
 * "<32 hex>-<32 hex>-<iteration>-<circular>[-<run id>]", a container
 * "manta-<8 hex>-<12 hex>-<run id>-<attempt>", a log "<run id>.log". */
bool launch_bundle_ok(const char *s, size_t max);
bool launch_cid_ok(const char *s, size_t max);
bool launch_log_ok(const char *s, size_t max);
/* An image reference: [A-Za-z0-9._/:@-], no "..", not starting with '-'. */
bool launch_image_ok(const char *s, size_t max);
/* Checks one packet of len bytes (truncated: it was longer) and copies it
 * to out. NULL when it may be served, else why not. */
const char *launch_check(const void *frame, size_t len, bool truncated,
    struct launch_req *out);
/* Serves one packet on sock: checks it, forks at most one child, replies.
 * fd: a descriptor that came with it (-1: none), the launcher's to close.
 * 0, or -1 when the reply could not be sent. */
int launch_serve(const struct launch_cfg *c, int sock, const void *frame,
    size_t len, bool truncated, int fd);
/* argv after "--launcher": RUNTIME ROOT TASKS_DIR LOGS_DIR RUN_DIR
 * IMAGE_DIR CGROUP2 LEVEL PARENT (mantad-exec's pid); the sockets on fd 3
 * (the main loop's) and 4 (the pull thread's). Never returns. */
void launcher_main(int argc, char **argv) __attribute__((noreturn));

#endif
