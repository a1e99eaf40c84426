/* ipc: requests between the node's programs over ZeroMQ ipc:// endpoints in
 * run_dir (mode 0700). Each daemon binds one ROUTER, "<run_dir>/<name>.sock",
 * and answers every request with one Msg. Every socket is capped with
 * ZMQ_MAXMSGSIZE; every message is decoded, then validated by the function
 * of its type (ipc_validate), then checked against the endpoint's allowlist. */
#ifndef MANTA_IPC_H
#define MANTA_IPC_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc.pb-c.h"

typedef Manta__Ipc__Msg ipc_msg;

/* Largest message any endpoint takes: a deploy_task payload plus slack. */
#define IPC_MAX_MSG (64 * 1024 * 1024)

/* Endpoint names, one per daemon. */
#define IPC_SUPERVISE "supervise"
#define IPC_RES "res"
#define IPC_REGISTER "register"
#define IPC_BEAT "beat"
#define IPC_EXEC "exec"
#define IPC_LIGHT "light"

/* The process-wide ZeroMQ context (created on first use, one I/O thread). */
void *ipc_context(void);
void ipc_context_term(void);

/* Creates run_dir (and parents) and sets it to mode 0700, or, with a
 * group ((gid_t)-1 for none: security.daemon_user unset), to root:group
 * 02710 with every parent searchable by the group. Refuses one that
 * belongs to another uid. 0 or -1 (logged). */
int ipc_prepare_run_dir(const char *run_dir, gid_t group);
/* "ipc://<run_dir>/<name>.sock" into buf; -1 if it does not fit (sun_path). */
int ipc_endpoint(char *buf, size_t len, const char *run_dir, const char *name);

struct ipc_server;
struct ipc_req;		/* one request being answered: routing id + decoded msg */

/* Binds "<run_dir>/<name>.sock". allowed: body cases this endpoint accepts
 * (status_req is always accepted). */
struct ipc_server *ipc_server_open(const char *run_dir, const char *name,
    const Manta__Ipc__Msg__BodyCase *allowed, size_t nallowed);
void ipc_server_close(struct ipc_server *s);
/* The zmq socket, for zmq_poll (ZMQ_POLLIN). */
void *ipc_server_socket(struct ipc_server *s);
/* Takes the next valid request: 1 with *req set, 0 when none is waiting.
 * Invalid, undecodable or disallowed requests are logged, answered with an
 * error Reply and dropped (0 is returned if nothing else waits). */
int ipc_server_recv(struct ipc_server *s, struct ipc_req **req);
const ipc_msg *ipc_req_msg(const struct ipc_req *req);
/* Answers and frees req. */
int ipc_reply(struct ipc_server *s, struct ipc_req *req, const ipc_msg *reply);
int ipc_reply_ok(struct ipc_server *s, struct ipc_req *req);
/* Reply code of a request refused for now (an outbox at its bound, a
 * database that refuses writes): the sender keeps it and retries later,
 * without ever giving it up (issue 6). */
#define IPC_CODE_BUSY 11
int ipc_reply_error(struct ipc_server *s, struct ipc_req *req, int code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Frees req without answering (the peer times out). */
void ipc_req_free(struct ipc_req *req);

/* One request to daemon NAME with a deadline. On success returns 0 and sets
 * *reply (free with ipc_msg_free). -1 on timeout, refusal or a bad reply.
 * Safe to call from any thread: each call uses its own socket. */
int ipc_call(const char *run_dir, const char *name, const ipc_msg *req,
    ipc_msg **reply, int timeout_ms);
/* Like ipc_call for requests answered by a Reply: 0 when code is 0. */
int ipc_call_ok(const char *run_dir, const char *name, const ipc_msg *req,
    int timeout_ms);

/* Decode + validate, exposed for tests and fuzzing: NULL with err filled. */
ipc_msg *ipc_msg_decode(const uint8_t *buf, size_t len, char *err, size_t errlen);
/* Packs m into a malloc'd buffer; returns length or -1. */
int ipc_msg_encode(const ipc_msg *m, uint8_t **out, size_t *outlen);
void ipc_msg_free(ipc_msg *m);

/* Per-type semantic checks: 0 ok, -1 with err filled (ipc_validate.c). */
int ipc_validate(const ipc_msg *m, char *err, size_t errlen);

#endif
