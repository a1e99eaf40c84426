/* mantad-register: the node's identity and its link to the manager's Node
 * service (WIRE.md sections 1, 2, 4, 5 collect_information, 9). */
#ifndef MANTAD_REGISTER_H
#define MANTAD_REGISTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>
#include <sqlite3.h>

#include "cfg.h"
#include "file.h"
#include "id.h"
#include "common/informations.pb-c.h"
#include "common/system.pb-c.h"
#include "ipc.pb-c.h"

#define PROG "mantad-register"

/* ---- platform.c: what this machine is (for RegisterNode and status) ---- */
struct gpu_info {
	char pci[32];		/* 0000:3b:00.0 */
	char name[128];
	char uuid[96];
};

struct platform {
	/* PlatformInfo, as Python's platform.uname() fills it */
	char system[32];
	char release[65];
	char version[65];
	char machine[65];
	char processor[256];
	char hostname[65];

	unsigned cpu_count;
	char cpu_model[256];
	uint64_t mem_total;		/* bytes */
	uint64_t disk_total;		/* bytes, file system of state_dir */
	uint64_t disk_free;
	struct gpu_info *gpus;
	size_t ngpus;
};

int platform_discover(struct platform *p, const char *state_dir);
void platform_free(struct platform *p);
void platform_log(const struct platform *p);
/* Points pi's strings into p: p must outlive pi. */
void platform_to_proto(const struct platform *p, Common__Informations__PlatformInfo *pi);

/* ---- overview.c: datasets.mappings as Overviews (WIRE.md section 7) ---- */
Common__Informations__Overviews *overviews_build(const struct manta_cfg *c);
void overviews_free(Common__Informations__Overviews *o);
/* dtype by file suffix; "folder" for directories. */
const char *overview_dtype(const char *path, bool is_dir);

/* ---- store.c: <state_dir>/register.db ---- */
struct reg {
	struct manta_id node_id;
	char *broker_host;
	uint32_t broker_port;
	char **topics;
	size_t ntopics;
	uint64_t generation;
	int64_t registered_at;	/* unix seconds */
};

sqlite3 *store_open(const char *state_dir);
/* 1 with the value copied into buf, 0 when absent, -1 on error. */
int store_meta_get(sqlite3 *db, const char *key, char *buf, size_t len);
int store_meta_set(sqlite3 *db, const char *key, const char *value);
/* The last Registration: 1 when one is stored (r filled), 0 none, -1 error. */
int store_reg_load(sqlite3 *db, struct reg *r);
int store_reg_save(sqlite3 *db, const struct reg *r);
void reg_free(struct reg *r);
int reg_copy(struct reg *dst, const struct reg *src);

/* The task log outbox: one row per TaskLogs from mantad-exec, oldest first. */
#define LOGS_OUTBOX_MAX		(64ULL * 1024 * 1024)	/* bytes of content */
struct logrow {
	int64_t seq;
	char *key;		/* idempotence key from exec */
	char *swarm_id;		/* 32 hex, for logs */
	char *task_id;
	uint32_t iteration;
	uint32_t circular;
	int64_t created_ms;	/* unix ms when accepted: the Logs timestamp */
	uint8_t *content;	/* one framed message (WIRE.md section 8) */
	size_t len;
};
/* 1 stored, 0 a duplicate key (nothing stored), -1 refused (full, or a
 * database error) with err filled. */
int store_logs_add(sqlite3 *db, const struct logrow *r, uint64_t max_total,
    char *err, size_t errlen);
/* The oldest row: 1 (r filled; logrow_free it), 0 none, -1 error. */
int store_logs_next(sqlite3 *db, struct logrow *r);
/* The manager has row seq: it leaves the outbox, its key is remembered
 * (the last 10000) so that a late duplicate is still recognized. Also used
 * to drop a row the manager keeps refusing. */
int store_logs_sent(sqlite3 *db, int64_t seq, int64_t now_ms);
int store_logs_count(sqlite3 *db, uint64_t *count, uint64_t *bytes);
/* register.ack: the row the manager answered OK last, noted (one write, no
 * sync) before register.db is touched, so that a kill or a busy database
 * between the answer and store_logs_sent does not send the row again.
 * store_ack_open: the fd, or -1 (logged; nothing is noted then).
 * store_ack_read: 1 with *seq and *key (free it), 0 none, -1 error. */
int store_ack_open(const char *state_dir);
int store_ack_write(int fd, int64_t seq, const char *key);
int store_ack_read(int fd, int64_t *seq, char **key);
void logrow_free(struct logrow *r);

/* ---- logs.c: TaskLogs from mantad-exec (IPC side) ---- */
/* Checks the frame's header against the message (ids; a zero node id is
 * filled in with ours), then stores it. */
enum logs_accept {
	LOGS_STORED,		/* in the outbox: the link thread sends it */
	LOGS_DUPLICATE,		/* its key is queued or was sent: nothing done */
	LOGS_REFUSED,		/* a bad frame, for good (err filled) */
	LOGS_BUSY,		/* the outbox full, the database: exec retries (err) */
};
enum logs_accept logs_accept(sqlite3 *db, struct manta_id node,
    const Manta__Ipc__TaskLogs *tl, char *err, size_t errlen);

/* ---- identity.c: WIRE.md section 1, written to <state_dir>/identity ---- */
/* The node id from cfg_alias(c); *how names its source, for logs. */
int identity_load(const struct manta_cfg *c, struct manta_id *id, const char **how);

/* ---- manager.c: gRPC client of node.node_service.Node (libgrpc core) ---- */
struct mgr;

/* grpc_init() with libgrpc's log lines routed to ours. */
void mgr_init(void);
/* mgr_init() must have been called. NULL on error (logged). */
struct mgr *mgr_open(const struct manta_cfg *c);
void mgr_close(struct mgr *m);
/* Before switching to security.daemon_user: copies cert_folder's files
 * into memfds, for the probe that explains a refused handshake. 0 or -1. */
int mgr_hold_tls(struct mgr *m);
/* One unary call: packs req, sends it with the JWT, waits at most
 * timeout_ms, unpacks the answer as rdesc into *resp (free with
 * protobuf_c_message_free_unpacked). Returns the gRPC status code (0 OK),
 * or -1 for a local failure; err says what happened either way. */
int mgr_call(struct mgr *m, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp,
    int timeout_ms, char *err, size_t errlen);
/* From any thread: cancels the call in flight and refuses later ones. */
void mgr_cancel(struct mgr *m);
/* A client-streaming call: sends the n messages of reqs, half-closes, and
 * takes the one answer, as mgr_call does. */
int mgr_call_stream(struct mgr *m, const char *method,
    const ProtobufCMessage *const *reqs, size_t n,
    const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp,
    int timeout_ms, char *err, size_t errlen);
const char *mgr_target(const struct mgr *m);
/* How many times the connection to the manager was lost since start. */
unsigned long mgr_losses(struct mgr *m);

/* ---- link.c: the worker thread that registers, probes and sends ---- */
struct link;

struct link_status {
	bool registered;
	bool draining;
	const char *state;	/* registering, online, offline */
	uint64_t generation;
	char broker[300];	/* host:port, empty before any Registration */
};

/* Starts the link thread with its own connection to register.db (the
 * caller keeps its own: one connection per thread). NULL on error. */
struct link *link_start(const struct manta_cfg *c, struct mgr *m,
    struct manta_id id, const struct platform *p, const struct reg *stored);
/* At stop: calls already queued go out, nothing new starts. */
void link_close(struct link *l);
/* Closing, and nothing queued is left to send (or no manager to take it). */
bool link_flushed(struct link *l);
/* Waits up to wait_ms for link_flushed, then cancels what is in flight. */
void link_stop(struct link *l, int wait_ms);
void link_status(struct link *l, struct link_status *st);
/* Deep copy of the last Registration: 1 when there is one, 0 none. */
int link_registration(struct link *l, struct reg *out);
/* collect_information payload (WIRE.md section 5): queued for the worker. */
void link_collect(struct link *l, const uint8_t *payload, size_t len);
/* A drain began (on) or ended: SetNodeStatus DISCONNECTED or CONNECTED,
 * now and after each registration while it lasts (issue 6). */
void link_drain(struct link *l, bool on);
/* New rows in the task log outbox: send them while online. */
void link_logs_notify(struct link *l);
/* A ReportError: node_id and timestamp are filled in when absent. */
void link_report(struct link *l, const Common__System__Error *e);
/* n's strings and pid point into r. */
void reg_to_notice(const struct reg *r, Manta__Ipc__RegistrationNotice *n,
    Common__System__PairId *pid);

/* ---- util.c ---- */
/* Copies s into a malloc'd string that is valid UTF-8 without control
 * bytes other than tab and newline (invalid bytes become '?'), at most max
 * bytes long. Python's protobuf refuses strings that are not UTF-8. */
char *utf8_clean(const char *s, size_t len, size_t max);

/* ---- sandbox.c: the seccomp allowlist, loaded before the loop ---- */
int sandbox_enter(void);

#endif
