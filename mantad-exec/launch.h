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
#define LAUNCH_FDS_MAX		2
#define LAUNCH_GRACE_MAX	600000	/* ms */

enum launch_kind {
	/* "mantad-exec --shim" for bundle, cid, log: status pipe, pidfd */
	LAUNCH_SHIM = 1,
	/* "runtime kill cid KILL; runtime delete --force cid": no fd */
	LAUNCH_CLEAN = 2,
	/* "runtime list --quiet": the read end of its stdout */
	LAUNCH_LIST = 3,
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
};

struct launch_rep {
	uint32_t seq;
	int32_t err;			/* 0, or an errno value */
	int32_t pid;			/* the child forked, 0 if none */
	uint32_t nfds;			/* descriptors passed with it */
	char msg[112];			/* why, when err != 0 */
};

/* What the launcher was started with (its argv). */
struct launch_cfg {
	const char *runtime;		/* absolute path, "" when none */
	const char *root;		/* the runtime's --root */
	const char *tasks_dir;
	const char *logs_dir;
	bool cgroup2;
};

/* The patterns mantad-exec generates: a bundle is
 * "<32 hex>-<32 hex>-<iteration>-<circular>[-<run id>]", a container
 * "manta-<8 hex>-<12 hex>-<run id>-<attempt>", a log "<run id>.log". */
bool launch_bundle_ok(const char *s, size_t max);
bool launch_cid_ok(const char *s, size_t max);
bool launch_log_ok(const char *s, size_t max);
/* Checks one packet of len bytes (truncated: it was longer) and copies it
 * to out. NULL when it may be served, else why not. */
const char *launch_check(const void *frame, size_t len, bool truncated,
    struct launch_req *out);
/* Serves one packet on sock: checks it, forks at most one child, replies.
 * 0, or -1 when the reply could not be sent. */
int launch_serve(const struct launch_cfg *c, int sock, const void *frame,
    size_t len, bool truncated);
/* argv after "--launcher": RUNTIME ROOT TASKS_DIR LOGS_DIR CGROUP2 LEVEL
 * PARENT (mantad-exec's pid), the socket on fd 3. Never returns. */
void launcher_main(int argc, char **argv) __attribute__((noreturn));

#endif
