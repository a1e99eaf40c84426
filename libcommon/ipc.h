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

/* Who is calling (issue 13): the kind of the peer, told apart by the uid
 * the kernel recorded when it connected (SO_PEERCRED, which libzmq puts in
 * every message's "Peer-Address" property as "host:uid:gid:pid"). */
#define IPC_FROM_OWNER	0x1	/* uid 0 or the run dir's owner: mantactl, the
				 * supervisor, mantad-exec */
#define IPC_FROM_DAEMON	0x2	/* security.daemon_user: mantad-res, -register, -beat */
#define IPC_FROM_LIGHT	0x4	/* security.light_user: mantad-light */

/* One row of an endpoint's allowlist: a message type and the kinds of
 * caller that may send it. The table passed to ipc_server_open is the
 * whole policy: a type it lacks, or a caller not named for it, is refused
 * (Reply code 3) before the daemon sees the message. StatusRequest is
 * always accepted from IPC_FROM_OWNER. With prog, a caller that is not
 * the owner must also be that program (the name of /proc/PID/exe of the
 * process that connected): among the daemons sharing an account, only
 * that one. Reading another account's /proc/PID/exe takes root: for
 * mantad-exec's endpoint. */
struct ipc_rule {
	Manta__Ipc__Msg__BodyCase body;
	unsigned from;
	const char *prog;
};

/* The uids of the two accounts ((uid_t)-1: none; those daemons are then
 * uid 0 and count as IPC_FROM_OWNER). Call before ipc_server_open; a
 * caller of any other uid is refused everything. */
void ipc_set_accounts(uid_t daemon, uid_t light);
/* Reads what /proc/PID/exe names into buf (at most len bytes, no NUL):
 * the length, or -1. readlink(2) unless set: a process that may not read
 * another account's /proc/PID/exe (mantad-exec without capabilities, issue
 * 13) asks one that may. Its last component is what counts. */
typedef ssize_t (*ipc_exe_reader)(long pid, char *buf, size_t len);
void ipc_set_exe_reader(ipc_exe_reader fn);
/* IPC_FROM_OWNER, IPC_FROM_DAEMON, IPC_FROM_LIGHT, or 0: the kind of
 * a caller of uid, owner being the run dir's. */
unsigned ipc_caller_kind(uid_t uid, uid_t owner);

/* Binds "<run_dir>/<name>.sock" with the allowlist rules. */
struct ipc_server *ipc_server_open(const char *run_dir, const char *name,
    const struct ipc_rule *rules, size_t nrules);
void ipc_server_close(struct ipc_server *s);
/* The zmq socket, for zmq_poll (ZMQ_POLLIN). */
void *ipc_server_socket(struct ipc_server *s);
/* Takes the next valid request: 1 with *req set, 0 when none is waiting.
 * Invalid, undecodable or disallowed requests are logged, answered with an
 * error Reply and dropped (0 is returned if nothing else waits). */
int ipc_server_recv(struct ipc_server *s, struct ipc_req **req);
const ipc_msg *ipc_req_msg(const struct ipc_req *req);
/* One row of a daemon's handlers: the function ipc_server_dispatch calls
 * for a message type. It answers req (ipc_reply*) or frees it. */
struct ipc_handler {
	Manta__Ipc__Msg__BodyCase body;
	void (*fn)(void *arg, struct ipc_req *req, const ipc_msg *m);
};
/* Takes up to max requests from ipc_server_recv (so past the allowlist)
 * and calls the handler of each one's type with arg; a type the table
 * lacks is answered with an error Reply (code 1, "not accepted here").
 * Returns how many were taken, or -1 when receiving failed. */
int ipc_server_dispatch(struct ipc_server *s, int max,
    const struct ipc_handler *handlers, size_t nhandlers, void *arg);
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
