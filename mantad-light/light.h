/* mantad-light: the Light service that running tasks call (WIRE.md
 * section 7): Local (datasets, from dirfds opened at start) and World
 * (proxied to the manager's Node service), each call checked against the
 * task it claims to come from. */
#ifndef MANTAD_LIGHT_H
#define MANTAD_LIGHT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <sqlite3.h>

#include "cfg.h"
#include "id.h"

#define PROG "mantad-light"

/* Chunk of GetBinaryData: one message in flight per call, so a stream
 * holds about this much of the file at a time. */
#define LIGHT_CHUNK		(128 * 1024)
/* ReadFileLines sends one message per line; longer lines are refused. */
#define LIGHT_LINE_MAX		(16 * 1024 * 1024)
/* A request to Local or the first fields of a World message (ids, tag). */
#define LIGHT_TAG_MAX		4096
#define LIGHT_REQ_MAX		(64 * 1024)
#define LIGHT_TOKEN_MAX		256
#define LIGHT_LISTDIR_MAX	100000
/* The node's own gRPC socket for tasks in their own network namespace
 * (containers.network = "none"), bind-mounted into the container. */
#define LIGHT_UNIX_SOCK		"light-grpc.sock"
#define LIGHT_PORT_FILE		"light.port"
#define LIGHT_FIRST_PORT	50051
#define LIGHT_LAST_PORT		50151

/* ---- paths.c: datasets and safe resolution beneath their dirfds ---- */
struct dataset {
	char *name;
	char *path;		/* absolute, as resolved at start */
	int fd;			/* O_PATH fd: the folder, or the parent of a file dataset */
	char *leaf;		/* file dataset: its name in fd; NULL for a folder */
};

struct datasets {
	struct dataset *v;
	size_t n;
	char *base;		/* datasets.base_path */
	int basefd;		/* O_PATH, -1 when base_path is missing */
};

/* Opens base_path and every mapping (relative paths under base_path). A
 * missing one is logged and tried again at its next use. 0 or -1. */
int datasets_open(struct datasets *d, const struct manta_cfg *c);
void datasets_close(struct datasets *d);
/* Lexical normalization of a path inside a dataset (os.path.normpath):
 * "" or "." -> "", "a/./b/../c" -> "a/c". A NUL byte, an absolute path or a
 * ".." that climbs above the start is refused (-1, reason in *why). */
int path_normalize(const char *in, size_t len, char *out, size_t outlen,
    const char **why);
/* Opens PATH (normalized) inside dataset NAME with oflags (O_RDONLY,
 * O_DIRECTORY, O_PATH...), beneath the dataset's fd: openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS. *isdir tells what the dataset is.
 * Returns a gRPC status (0 with *fd set), err filled otherwise. */
int paths_open(struct datasets *d, const char *name, const char *path, int oflags,
    int *fd, bool *root_is_file, char *err, size_t errlen);
/* For ListDir: is the entry rel (normalized, inside dataset name) a regular
 * file once resolved beneath the dataset? */
bool paths_is_file(struct datasets *d, const char *name, const char *rel);

/* ---- audit.c: <state_dir>/light.db, one row per call, and an entry per
 * call in the node's hash-chained <state_dir>/audit.log (audit.h):
 * dataset_access for Local, world_call for World ---- */
struct audit_rec {
	const char *method;		/* "Local/GetBinaryData" */
	struct manta_id swarm, task;
	const char *dataset;		/* or the tag of a World call; NULL */
	const char *path;		/* NULL */
	uint64_t bytes;			/* payload bytes sent or received */
	int status;			/* gRPC status code */
	bool token;			/* the call carried a task token */
	long long ms;			/* duration */
};

int light_audit_open(const char *state_dir);
void audit_record(const struct audit_rec *r);
void light_audit_close(void);

/* ---- ident.c: who is calling (mantad-exec answers TaskLookup) ---- */
struct ident {
	int err;		/* 0 answered; -1 mantad-exec did not answer */
	bool found, running, token_matched;
	struct manta_id swarm, task;
	uint32_t iteration, circular;
};

struct lcall;
int ident_start(const char *run_dir);
void ident_stop(void);
/* Looks the caller up: by token when token is not NULL, else by ids.
 * 1: answered from the cache (*out set); 0: a lookup is on its way and c
 * will be resumed with call_resume(); -1: out of memory. */
int ident_get(const char *token, struct manta_id swarm, struct manta_id task,
    struct lcall *c, struct ident *out);
/* Main thread, after the doorbell: hands finished lookups to their calls. */
void ident_dispatch(void);

/* ---- wire.c: protobuf wire format over gRPC slices, without copies ---- */
struct wbuf {			/* a received message: its slices, referenced */
	grpc_slice *s;
	size_t n;
	size_t total;
};

struct wfields {		/* the fields of one message we act on */
	struct manta_id id[2];	/* PairId fields, by wanted order */
	bool has_id[2];
	char tag[LIGHT_TAG_MAX + 1];
	size_t taglen;
	bool has_data;
	size_t data_off, data_len;
};

int wbuf_from(struct wbuf *b, grpc_byte_buffer *bb);
void wbuf_free(struct wbuf *b);
/* Reads the top-level fields: PairIds numbered idn[0], idn[1], a string
 * numbered tagn, bytes numbered datan (0: none). -1 when malformed, when
 * the tag is too long or carries a NUL. */
int wire_scan(const struct wbuf *b, const int idn[2], int tagn, int datan,
    struct wfields *f, char *err, size_t errlen);
/* A message to send: small head written here, large bytes referenced. */
struct wout {
	uint8_t head[256 + LIGHT_TAG_MAX];
	size_t len;
	grpc_slice *tail;	/* referenced slices, malloc'd */
	size_t ntail, cap;
	bool overflow;
};
void wout_init(struct wout *o);
void wout_pair(struct wout *o, int num, struct manta_id id);
void wout_varint_field(struct wout *o, int num, uint64_t v);
void wout_string(struct wout *o, int num, const char *s, size_t len);
/* Field num holding bytes [off, off+len) of b, referenced not copied. */
int wout_bytes_ref(struct wout *o, int num, const struct wbuf *b, size_t off, size_t len);
/* The byte buffer to send; NULL if the message did not fit (overflow). */
grpc_byte_buffer *wout_finish(struct wout *o);
/* Decodes a whole (small) message with protobuf-c after checking that no
 * string field, at any depth, holds a NUL byte (protobuf-c would cut the
 * string there). NULL with err filled. */
ProtobufCMessage *wire_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d,
    size_t max, char *err, size_t errlen);
/* The same, but a NUL byte in a string only sets *nul (for Exists, which
 * answers false rather than failing). */
ProtobufCMessage *wire_unpack_nul(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d,
    size_t max, bool *nul, char *err, size_t errlen);
/* Packs m into a byte buffer. NULL when out of memory. */
grpc_byte_buffer *wire_pack(const ProtobufCMessage *m);

/* ---- server.c: the gRPC server and its completion queue ---- */
enum mkind { M_UNARY, M_SERVER_STREAM, M_CLIENT_STREAM };

struct lcall;
typedef void (*step_fn)(struct lcall *c, bool ok);

struct ltag {
	struct lcall *c;
	step_fn fn;
};

struct method {
	const char *path;		/* "/node.light_service.Local/Exists" */
	const char *name;		/* "Local/Exists", for logs and audit */
	enum mkind kind;
	void (*start)(struct lcall *c);
	void *reg;			/* grpc_server_register_method */
};

struct lstats {			/* read by the IPC thread for StatusRequest */
	atomic_ullong calls;
	atomic_ullong active;
	atomic_ullong refused;		/* identity or path refusals */
	atomic_ullong failed;		/* other non-OK endings */
	atomic_ullong bytes_out;	/* to tasks */
	atomic_ullong bytes_in;		/* from tasks */
};
extern struct lstats light_stats;

struct lcall {
	const struct method *m;
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_byte_buffer *payload;	/* request of a unary or server-stream call */
	grpc_byte_buffer *recv;		/* RECV_MESSAGE target */
	int refs;			/* batches in flight + holds */
	bool md_sent, finishing, cancelled;
	bool admitted;			/* counted against its task's bound */
	int close_cancelled;		/* RECV_CLOSE_ON_SERVER's answer */
	struct ltag t_new, t_close, t_send, t_recv, t_fin, t_up, t_up2, t_up3;
	step_fn send_fn, recv_fn;
	grpc_byte_buffer *sending, *last;
	grpc_slice fin_details;
	bool has_details;
	long long start_ms;

	/* the caller */
	char token[LIGHT_TOKEN_MAX + 1];
	bool has_token, token_bad;
	struct manta_id swarm, task;	/* as the request names them */
	struct ident who;
	bool bound;			/* on a task's own endpoint (netep.c) */
	struct manta_id bswarm, btask;	/* that endpoint's task */
	step_fn resume;			/* after an identity lookup */
	struct lcall *wait_next;	/* ident.c's waiter list */

	/* audit */
	int status;
	uint64_t bytes;
	char *dataset, *path;

	/* the method's own state */
	void *st;
	void (*st_free)(struct lcall *c);
	void (*on_cancel)(struct lcall *c);

	struct lcall *prev, *next;	/* live calls */
};

/* Binds and starts: TCP on light_service_host:port (port 0: the one of
 * the last run if free, else the first free from 50051), and the unix
 * socket in run_dir. *port gets the TCP port. 0 or -1. */
int server_start(const struct manta_cfg *c, int *port);
/* Runs the completion queue until shutdown is complete. */
void server_run(void);
void server_free(void);
/* From any thread: wakes the loop (lookups done, stop asked). */
void server_ring(void);
/* From any thread: asks the loop to stop. */
void server_stop(void);

/* Batches on the task's call; each takes a reference released after fn. */
int call_send(struct lcall *c, grpc_byte_buffer *bb, step_fn fn);
int call_recv(struct lcall *c, step_fn fn);
/* Ends the call: optional last message, then the status. Safe to call
 * more than once (later calls are ignored). */
void call_finish(struct lcall *c, int code, grpc_byte_buffer *last, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void call_hold(struct lcall *c);
void call_release(struct lcall *c);
/* For a refusal the task does not see as an error (Exists answers false),
 * after call_finish: counted, logged and audited as PERMISSION_DENIED. */
void call_mark_refused(struct lcall *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Logs the summary of the refusals not logged, once their second is over;
 * returns the next time (ms) it wants to be called, or -1. */
long long log_sweep(long long now);
/* security.task_token_required, else true for containers.network "none". */
bool light_token_required(const struct manta_cfg *c);
/* Continues a call held for an identity lookup (ident.c). */
void call_resume(struct lcall *c);
/* Checks the caller (ids set in c->swarm/c->task) then runs next; on a
 * refusal the call is finished. */
void call_authorize(struct lcall *c, step_fn next);

/* netep.c: Light endpoints in tasks' own network namespaces, handed over
 * by mantad-exec on <run_dir>/light-netns.sock (issue 13). */
int netep_start(const char *run_dir, grpc_server *server);
void netep_stop(void);
/* 1 with the run's ids when peer (grpc_call_get_peer) is a connection
 * accepted on a task's endpoint, else 0. Any thread. */
int netep_who(const char *peer, struct manta_id *swarm, struct manta_id *task);
/* A token from the call's metadata, if any (sets c->token/has_token). */
void call_read_token(struct lcall *c);
void call_set_audit(struct lcall *c, const char *dataset, const char *path);
grpc_completion_queue *server_cq(void);
grpc_server *server_grpc(void);
grpc_call *call_parent(struct lcall *c);
long long light_now_ms(void);
/* pthread_create with every signal blocked in the new thread (they go to
 * the signalfd); pthread_create's answer. */
int light_thread(pthread_t *th, void *(*fn)(void *), void *arg);

/* ---- local.c: node.light_service.Local ---- */
/* d and c (datasets.permissions, mappings) are kept until exit. */
void local_init(struct datasets *d, const struct manta_cfg *c);
void local_exists(struct lcall *c);
void local_listdir(struct lcall *c);
void local_get_binary(struct lcall *c);
void local_read_lines(struct lcall *c);

/* ---- world.c: node.light_service.World, proxied to the manager ---- */
int world_open(const struct manta_cfg *c);
void world_close(void);
const char *world_target(void);
/* 1 when the node id is known (read from <state_dir>/identity). */
int world_node_id(struct manta_id *id);
/* Cancels calls to the manager that have made no progress for too long;
 * returns the next time (ms) it wants to be called, or -1. */
long long world_sweep(long long now);
void world_get_task_result(struct lcall *c);
void world_add_task_result(struct lcall *c);
void world_get_global(struct lcall *c);
void world_set_global(struct lcall *c);
void world_stop_swarm(struct lcall *c);
void world_schedule_task(struct lcall *c);

/* ---- sandbox.c: what the daemon keeps once serving ---- */
int sandbox_enter(void);

#endif
