/* mantad-exec: the node's task runner. Internal interfaces between its
 * files; the design is in mantad-exec(8).
 *
 * One main thread owns every piece of state (runs, exec.db, the IPC
 * socket). Three helper threads (worker.c) make the blocking calls: one
 * sender per destination daemon (beat, register) that retries each stored
 * message until acknowledged, and one job thread (log frames, capacity,
 * shutdown). They hand results back through an evq (evq.h). Each container
 * is watched by its own shim process (shim.c), a fresh exec of this binary
 * by the launcher (launch.h), that outlives mantad-exec if it has to. */
#ifndef MANTA_EXEC_H
#define MANTA_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <jansson.h>
#include <sqlite3.h>

#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"

#include "cfg.h"
#include "daemon.h"
#include "evq.h"
#include "file.h"
#include "hist.h"
#include "id.h"
#include "ipc.h"

#include "launch.h"

#define PROG "mantad-exec"

#define PAYLOAD_MAX	(16u << 20)	/* bytes of a deploy_task payload */
#define ALIAS_MAX	255
#define TOKEN_BYTES	32		/* MANTA_TASK_TOKEN: 256 random bits */
#define TOKEN_HEX	(2 * TOKEN_BYTES)
#define CID_MAX		96
#define PIDS_MAX	512		/* pids.limit per container */
#define STOP_GRACE_MS	5000		/* SIGTERM -> SIGKILL */
#define STREAM_MS	1000		/* log chunk period with tasks.live_logs_to_manager */
#define CHUNK_MAX	(1u << 20)	/* raw bytes per streamed chunk */
#define LOGS_REPLY_MAX	(1u << 20)	/* bytes per LogsChunk */
#define CAPACITY_MS	60000		/* capacity refresh from mantad-res */
#define ADOPT_POLL_MS	250		/* files of shims we did not start */
#define KEEP_RUNS	5000		/* finished runs kept in exec.db */
#define TASKS_REPLY_MAX	5000
#define HANDOFFS	1024		/* Command.handoff ids remembered */

/* Error ids of common.system.Error (WIRE.md section 9). */
#define ERR_VALIDATION	9
#define ERR_TIMEOUT	11
#define ERR_RESOURCE	12
#define ERR_DOCKER	18	/* a deployment failed */
#define ERR_NODE	19	/* a redeploy refused, an unknown stop_task */
#define ERR_MQTT	22	/* a command payload that does not decode */

enum run_state {
	RS_QUEUED,	/* waiting for a slot (ours; not on the wire) */
	RS_PENDING,	/* admitted, shim started, container not yet running */
	RS_RUNNING,
	RS_COMPLETED,
	RS_FAILED,
	RS_STOPPED,
	RS_COUNT
};
const char *run_state_name(enum run_state s);
int run_state_parse(const char *s);	/* -1 if unknown */
bool run_state_final(enum run_state s);

/* One round of one task: (swarm, task, iteration, circular). In memory
 * while active, and after the end until its final log frame is stored. */
struct run {
	TAILQ_ENTRY(run) all;
	TAILQ_ENTRY(run) q;		/* the admission queue, QUEUED only */
	int64_t id;			/* exec.db run.id */
	struct manta_id swarm, task;
	uint32_t iteration, circular;
	char *image;
	char *alias;
	bool gpu;
	bool script;			/* payload starts with "#!" */
	enum run_state state;
	char token[TOKEN_HEX + 1];
	char cid[CID_MAX];
	char *dir;			/* the bundle */
	char *log;			/* raw output, kept after the end */
	int attempts;			/* runtime starts tried */

	/* the shim watching the container */
	pid_t shim;			/* 0: none */
	unsigned long long shim_start;	/* /proc starttime, against pid reuse */
	bool adopted;			/* started by an earlier mantad-exec */
	int status_fd;			/* own shim: its status pipe, else -1 */
	int pidfd;			/* adopted shim: pidfd, else -1 */
	char *netns;			/* own network namespace (netep.c) */
	int netns_lfd;			/* its Light endpoint, else -1 */
	char sbuf[64];
	size_t slen;
	bool shim_done;			/* own shim reaped */

	bool stop_requested;
	char *stop_reason;
	char *waiting;			/* QUEUED: why, as stored in run.reason */
	bool reserved;			/* counted in admitted, cpu/mem used */
	double cpu;			/* reserved while PENDING/RUNNING */
	uint64_t mem;
	long long started_at;		/* unix ms, 0 before RUNNING */
	uint64_t pending_us;		/* hist_now_us() at PENDING, 0 else */

	/* logs */
	uint64_t log_sent;		/* raw bytes already framed */
	uint32_t log_seq;		/* chunks framed */
	bool log_busy;			/* a frame job is out */
	bool want_final;		/* ended: frame the rest when not busy */
	bool logs_done;
};
TAILQ_HEAD(run_list, run);

struct audit;
struct sender;
struct jobs;

struct exec {
	struct daemon_opts *opts;
	struct manta_cfg *cfg;
	sqlite3 *db;
	struct ipc_server *srv;
	struct evq *q;
	int sfd;			/* signalfd */
	struct sender *to_beat;
	struct sender *to_register;
	struct jobs *jobs;

	struct manta_id node_id;
	char node_hex[ID_HEX_LEN + 1];
	char inst[9];			/* hash of state_dir, in container ids */
	char *runtime;			/* absolute path; NULL when not found */
	char *runtime_name;		/* as configured */
	char *runtime_root;		/* --root, per instance */
	char *tasks_dir;
	char *logs_dir;
	json_t *seccomp;		/* the linux.seccomp object of config.json */
	bool cgroup2;			/* unified hierarchy */
	bool swap_limit;		/* memory.swap can be set */
	char rpc_host[256];
	char rpc_port[8];

	struct run_list runs;		/* every run in memory */
	struct run_list queue;		/* QUEUED, oldest first */
	unsigned admitted;		/* PENDING + RUNNING */
	double cpu_used, cpu_budget;
	uint64_t mem_used, mem_budget;
	uint64_t mem_total;		/* the node's memory, 0 before known */
	uint64_t log_bytes;		/* logs of finished runs (logstore.c) */
	unsigned gpus;			/* NVIDIA devices seen at start */
	bool userns;			/* containers.userns (userns.c) */
	uint32_t userns_uid, userns_uid_size;	/* host ids of container 0.. */
	uint32_t userns_gid, userns_gid_size;
	struct audit *audit;		/* <state_dir>/audit.log */
	struct pulls *pulls;		/* pull.c */

	unsigned unacked;		/* messages the senders still hold */
	bool draining;
	bool stopping;			/* SIGTERM: stop every task, then exit */
	bool recovering;		/* recover_runs: admit nothing yet */
	bool shutdown_asked;		/* stop_node: asked the supervisor */
	char *handoffs[HANDOFFS];	/* the last Command.handoff ids seen */
	unsigned handoff_next;
	long long next_stream;
	long long next_capacity;
	long long next_adopt_poll;
	int light_ep;			/* to mantad-light's task endpoints */
	long long next_netep;
	struct hist launch;		/* PENDING -> RUNNING (mantactl metrics) */
	struct launch_chan *launcher;	/* the main loop's, to the launcher */
	struct launch_chan *launcher_pull;	/* the pull thread's */
};

/* ---- events.c: helper threads -> main loop (evq.h) ---- */
enum ev_type {
	EV_ACKED,	/* seq: an outbox row was acknowledged */
	EV_DROPPED,	/* seq: refused for good */
	EV_FRAME,	/* run_id, data/len: a log frame; upto, final */
	EV_FRAME_FAILED,/* run_id, final */
	EV_CAPACITY,	/* cpus, mem */
	EV_SHUTDOWN,	/* code: 0 the supervisor took it, -1 not there */
	EV_PULLED,	/* data: "image\0reason\0"; code 0 pulled, -1 failed */
};
struct event {
	struct event *next;
	enum ev_type type;
	int64_t seq;
	int64_t run_id;
	uint8_t *data;
	size_t len;
	uint64_t upto;
	bool final;
	int code;
	unsigned cpus;
	uint64_t mem;
};
extern const struct evq_ops event_ops;	/* for evq_new */
struct event *event_new(enum ev_type type);
void event_free(struct event *ev);

/* ---- worker.c: senders and the job thread ---- */
/* Delivers stored messages to daemon dest in order, each until it is
 * acknowledged (Reply code 0): EV_ACKED. A message refused many times
 * (code != 0) is given up: EV_DROPPED. */
struct sender *sender_start(const char *run_dir, const char *dest,
    struct evq *q);	/* run_dir and dest are borrowed */
/* Takes a copy of the packed Msg. */
int sender_post(struct sender *s, int64_t seq, const uint8_t *msg, size_t len);
void sender_stop(struct sender *s);

enum job_type { JOB_FRAME, JOB_CAPACITY, JOB_SHUTDOWN };
struct job {
	struct job *next;
	enum job_type type;
	int64_t run_id;
	char *path;		/* JOB_FRAME: the raw log */
	uint64_t from;
	bool final;
	uint8_t header[52];
};
struct jobs *jobs_start(const char *run_dir, struct evq *q);	/* borrows run_dir */
int jobs_post(struct jobs *j, struct job *job);	/* takes job */
void jobs_stop(struct jobs *j);
struct job *job_new(enum job_type type);
void job_free(struct job *job);

/* ---- store.c: exec.db ---- */
sqlite3 *store_open(const char *state_dir);
/* Inserts r (QUEUED, or directly final for a refused deploy) and sets r->id.
 * 0, 1 when (swarm, task, iteration, circular) is known already (a row not
 * forgotten, and not one FAILED before it ran), -1. */
int store_run_insert(sqlite3 *db, struct run *r, const char *status,
    const char *reason);
/* Marks every round of the swarm forgotten (stop_swarm): 0, -1. */
int store_runs_forget(sqlite3 *db, const struct manta_id *swarm);
int store_run_set(sqlite3 *db, const struct run *r);	/* cid, dir, shim... */
/* Deletes run id (recover.c: one deploy never finished preparing): 0, -1. */
int store_run_delete(sqlite3 *db, int64_t id);
/* run.reason of a run that waits (QUEUED): why. */
int store_run_reason(sqlite3 *db, const struct run *r, const char *reason);
/* Loads every run that is not final or whose logs are not done. */
int store_runs_load(struct exec *x);
/* The newest run of (swarm, task) or by token: 1 found, 0, -1. */
struct run_row {
	int64_t id;
	struct manta_id swarm, task;
	uint32_t iteration, circular;
	char status[16];
	char log[4096];
	bool running;
};
int store_run_find(sqlite3 *db, const struct manta_id *swarm,
    const struct manta_id *task, const char *token, struct run_row *out);
int store_outbox_add(sqlite3 *db, const char *dest, const char *key,
    const uint8_t *msg, size_t len, int64_t transition, int64_t *seq);
int store_outbox_done(sqlite3 *db, int64_t seq);
int store_meta_get_int(sqlite3 *db, const char *key, int *value);
int store_meta_set_int(sqlite3 *db, const char *key, int value);
int store_counts(sqlite3 *db, unsigned counts[RS_COUNT]);
int store_task_list(sqlite3 *db, Manta__Ipc__TaskList *list);
void store_task_list_free(Manta__Ipc__TaskList *list);
void store_prune(sqlite3 *db);

/* ---- announce.c: transitions, updates, errors, outbox ---- */
/* Moves r to state st: one transaction stores the new status, the
 * transition, its TaskUpdate (RUNNING and final states) for beat and, when
 * error_id is set, a ReportError for register; then hands them to the
 * senders. exit_code < 0: none. 0 or -1 (nothing changed). */
int announce_transition(struct exec *x, struct run *r, enum run_state st,
    const char *reason, int exit_code, uint32_t error_id);
/* A ReportError with no run (a payload that does not decode). */
void announce_error(struct exec *x, const struct manta_id *swarm,
    const struct manta_id *task, uint32_t iteration, uint32_t circular,
    uint32_t error_id, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* A log frame for register; marks the run's log offset. 0 or -1. */
int announce_logs(struct exec *x, struct run *r, const uint8_t *frame,
    size_t len, uint64_t upto, bool final);
/* Posts every stored outbox row (at start). */
int announce_replay(struct exec *x);
void announce_acked(struct exec *x, int64_t seq);
/* When exec.db refuses writes (disk full, read-only): r's final update and
 * the error, handed to the senders without being stored (told once, at
 * most; not again after a restart). */
void announce_unstored(struct exec *x, const struct run *r, enum run_state st,
    const char *reason, uint32_t error_id);

/* ---- validate.c ---- */
/* Checks every field of a deploy; NULL if fine, else the reason. error_id
 * gets the error class. */
const char *validate_task(const struct exec *x, const Common__Tasks__MqttTask *t,
    uint32_t *error_id, char *buf, size_t len);
/* The hostname for alias: [A-Za-z0-9.-], at most 63 bytes. */
void validate_hostname(const char *alias, const struct manta_id *task,
    char *out, size_t len);

/* ---- command.c: deploy_task, stop_task, stop_swarm, stop_node ---- */
/* 0 taken, -1 refused (err filled). A Command.handoff seen already is the
 * same command again: 0, nothing done. */
int command_handle(struct exec *x, const Manta__Ipc__Command *c, char *err,
    size_t errlen);
void command_free(struct exec *x);	/* the hand-off ids */
/* Asks r to stop with reason; a queued run ends STOPPED at once. */
void run_stop(struct exec *x, struct run *r, const char *reason);
struct run *run_new(void);
void run_free(struct run *r);
/* Unlinks and frees r when it is final and its logs are done. */
void run_maybe_forget(struct exec *x, struct run *r);

/* ---- queue.c: admission ---- */
void queue_init_capacity(struct exec *x);
void queue_set_capacity(struct exec *x, unsigned cpus, uint64_t mem);
/* Starts queued runs, oldest first, while a slot and the memory fit; fails
 * those that never can. */
void queue_admit(struct exec *x);
void queue_release(struct exec *x, struct run *r);
/* Why the oldest queued run waits, NULL when none does. */
const char *queue_waiting(const struct exec *x);
/* Recovery: a run found PENDING or RUNNING holds its reservation. */
void queue_hold(struct exec *x, struct run *r);

/* ---- bundle.c ---- */
/* <tasks_dir>/<task>-<iteration>-<circular>: created, payload written. */
int bundle_prepare(struct exec *x, struct run *r, const uint8_t *payload,
    size_t len);
/* config.json for r. 0, or -1 with err. */
int bundle_write_config(struct exec *x, struct run *r, char *err, size_t errlen);
void bundle_remove(struct exec *x, struct run *r);
/* RPC_PORT: light.service_port, else the port mantad-light wrote. */
int bundle_rpc_port(const struct exec *x);

/* netep.c: a network namespace of its own per run, with its Light
 * endpoint (containers.network = "none", issue 13). */
bool netep_wanted(const struct exec *x);
int netep_run_begin(struct exec *x, struct run *r);
void netep_run_end(struct exec *x, struct run *r);
int netep_fd(const struct exec *x);
void netep_input(struct exec *x);
bool netep_pending(const struct exec *x);
void netep_tick(struct exec *x, long long now);
void netep_sweep(struct exec *x);
void netep_close(struct exec *x);
/* The image's rootfs, malloc'd; NULL if the name is refused. */
char *bundle_rootfs(const struct exec *x, const char *image);

/* ---- pull.c: images pulled on deploy (issue 12) ---- */
struct pulls;
struct pulls *pulls_start(struct exec *x);
void pulls_stop(struct pulls *p);	/* kills the pulls in flight */
/* Whether r must wait for its image: true while a pull of it (started
 * here when none is in flight) runs. Main thread only. */
bool pull_wait(struct exec *x, struct run *r);
/* EV_PULLED: starts the runs waiting for ev's image, or fails them. */
void pull_done(struct exec *x, const struct event *ev);
/* Why r's image cannot be pulled here (containers.registries), NULL if
 * it can. */
const char *pull_refused(const struct exec *x, const char *image, char *buf,
    size_t len);
/* The image config of r's image in process p: uid, gid, cwd and its Env
 * first in env, less the variables the node sets. */
void image_process(const struct exec *x, const struct run *r, json_t *p,
    json_t *env, bool *has_path, bool *has_home);
/* argv after "--pull". Never returns. */
void pull_main(int argc, char **argv) __attribute__((noreturn));

/* ---- userns.c: containers.userns ---- */
/* The host id ranges (config, /etc/subuid and /etc/subgid, 100000). */
void userns_init(struct exec *x);
/* The first directory down to path (itself included) that others
 * cannot search, malloc'd; NULL when the mapped users reach path. */
char *userns_unreachable(const char *path);
/* Adds the user namespace and its id maps to config.json's linux. */
void userns_linux(const struct exec *x, json_t *linux_obj);
/* Makes the file mount point /DIR/NAME (NAME NULL: the directory /DIR)
 * in rootfs when missing (the runtime cannot, as the mapped root). 0 or
 * -1 with err. */
int userns_mountpoint(const char *rootfs, const char *dir, const char *name,
    char *err, size_t errlen);

/* ---- sandbox.c: this process's own filter, once set up ---- */
int sandbox_enter(void);

/* ---- seccomp.c ---- */
/* Compiles the built-in allowlist with libseccomp (an unknown name is an
 * error naming it) and returns the config.json seccomp object. */
json_t *seccomp_profile(char *err, size_t errlen);

/* ---- runtime.c: shims and the runtime binary ---- */
int runtime_resolve(struct exec *x);	/* x->runtime from the config */
void runtime_probe_cgroups(struct exec *x);
/* Starts a shim for r (PENDING). 0 or -1 (logged). */
int runtime_launch(struct exec *x, struct run *r);
/* SIGTERM to r's shim: stop the container (grace, then SIGKILL). */
void runtime_signal_stop(struct exec *x, struct run *r);
/* Children that exited (SIGCHLD): the launcher only. */
void runtime_reap(struct exec *x);
/* The pidfd of r's shim is readable: it exited. */
void runtime_pidfd_input(struct exec *x, struct run *r);
/* Status pipe readable. */
void runtime_status_input(struct exec *x, struct run *r);
/* Adopted shim exited (pidfd) or poll tick. */
void runtime_check_adopted(struct exec *x, struct run *r, bool exited);
/* The shim of r is gone: read its result and end the run. */
void runtime_finish(struct exec *x, struct run *r);
/* ---- run.c: the lifecycle of a run, its one table of moves ---- */
/* Whether a run may move from one state to another. */
bool run_move_ok(enum run_state from, enum run_state to);
/* QUEUED -> PENDING (admitted). 0 or -1 (refused or not stored). */
int run_to_pending(struct exec *x, struct run *r);
/* PENDING -> RUNNING; nothing if r is not PENDING. */
void run_to_running(struct exec *x, struct run *r);
/* Final state st for a run that had a shim, then its whole cleanup:
 * slot, network namespace, bundle, logs, queue, forget. An illegal move
 * (r already final) is logged and does nothing. */
void run_end(struct exec *x, struct run *r, enum run_state st,
    const char *reason, int code, uint32_t error_id);
/* The same for a run in x->runs that never had a shim (queued, launch
 * failed), already out of x->queue: no logs, the queue does not move. */
void run_end_unlaunched(struct exec *x, struct run *r, enum run_state st,
    const char *reason, uint32_t error_id);
/* The same for a run refused at deploy, not in x->runs (the caller frees
 * it). 0, or -1 when the end could not be stored. */
int run_end_unlisted(struct exec *x, struct run *r, enum run_state st,
    const char *reason, uint32_t error_id);
/* r's shim is gone (its descriptors closed): read its result and end the
 * run, or launch it again (tasks.retry_attempts). */
void run_shim_gone(struct exec *x, struct run *r);
/* ---- launch_client.c: the launcher (launch.h) ---- */
/* One socket to the launcher, used by one thread. */
struct launch_chan {
	int fd;
	pid_t pid;			/* the launcher's */
	uint32_t seq;
};
/* Forks and executes the launcher, before any thread. 0 or -1 (logged). */
int launch_start(struct exec *x);
void launch_close(struct exec *x);
int launch_fd(const struct exec *x);
/* Sends q (its seq set here; with descriptor fd unless -1) and waits for
 * its reply, which the launcher sends at once: 0 with rep and fds (-1
 * where none), or -1 (logged, no fd left open). A launcher gone ends
 * mantad-exec. */
int launch_call(struct launch_chan *ch, struct launch_req *q, int fd,
    struct launch_rep *rep, int fds[LAUNCH_FDS_MAX]);
/* The launcher's socket is readable between calls: a late reply, or EOF. */
void launch_input(struct exec *x);
/* Kills and deletes container cid in a child of the launcher, without
 * waiting: the main loop never waits for the runtime. */
void runtime_cleanup_async(struct exec *x, const char *cid);
/* "runtime list --quiet" into out (recovery only). 0 or -1. */
int runtime_list(struct exec *x, char *out, size_t outlen);

/* ---- shim.c ---- */
/* argv after "--shim". Never returns. */
void shim_main(int argc, char **argv) __attribute__((noreturn));

/* ---- recover.c ---- */
/* After a restart: re-adopts the shims of runs that were PENDING/RUNNING,
 * ends those whose shim finished or vanished, frames logs not yet sent. */
void recover_runs(struct exec *x);

/* ---- drain.c: taking new tasks or not (issue 6) ---- */
/* Drains (on) or undrains; kept in exec.db unless transient (a stop's
 * drain), and handed to mantad-register, which tells the manager. */
void drain_set(struct exec *x, bool on, bool transient);
/* Why a deploy_task is refused now (stopping, draining, state_dir
 * read-only or too full), NULL when tasks are taken; error_id gets the
 * SendError class. */
const char *drain_refusing(struct exec *x, uint32_t *error_id, char *buf,
    size_t len);

/* ---- logs.c ---- */
/* The 52-byte WIRE.md section 8 header. */
void logs_header(uint8_t out[52], struct manta_id swarm, struct manta_id node,
    struct manta_id task, uint32_t iteration, uint32_t circular);
/* header + zlib(level 9) of the file's bytes [from, from + max) (all of
 * them when max is 0). Returns a malloc'd frame, *upto the end offset. */
uint8_t *logs_frame(const uint8_t header[52], const char *path, uint64_t from,
    uint64_t max, size_t *len, uint64_t *upto);
/* Posts a frame job for r if one is due (streaming) or final. */
void logs_kick(struct exec *x, struct run *r);
/* r reached its final state: its one upload when it ended by itself
 * (logs_kick), else none (logs done). */
void logs_end(struct exec *x, struct run *r);
/* Appends "[mantad-exec: text]" to r's output (a timeout's reason). */
void logs_note(const struct run *r, const char *text);
void logs_stream_tick(struct exec *x);
void logs_frame_done(struct exec *x, const struct event *ev);
/* Answers a LogsRequest. */
int logs_read(struct exec *x, const Manta__Ipc__LogsRequest *req,
    Manta__Ipc__LogsChunk *out);

/* ---- logstore.c: tasks.log_store_max_size ---- */
/* Counts the logs of finished runs (at start) and trims them. */
void logstore_init(struct exec *x);
/* r's logs are done: counts its file, removes the oldest over the bound. */
void logstore_done(struct exec *x, const struct run *r);

/* ---- util ---- */
int write_file_atomic(const char *path, const void *data, size_t len, int mode);
long long wall_ms(void);
int rm_rf(const char *path);

#endif
