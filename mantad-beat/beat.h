/* mantad-beat: the node's MQTT client. Internal interfaces between its files.
 *
 * Threads: paho runs its own (send, receive); worker.c runs two (commands,
 * background requests). None of them touches daemon state: each hands an
 * event (events.c) to the main loop through an evq, and main.c applies
 * it. Only main.c's loop changes state. The heartbeat's snapshot is asked
 * for by the main loop itself (heartbeat.c). */
#ifndef MANTA_BEAT_H
#define MANTA_BEAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon.h"
#include "evq.h"
#include "hist.h"
#include "id.h"
#include "ipc.h"
#include "tlsprobe.h"

#define PROG "mantad-beat"

#define TOPIC_SUMMARY "manager/set_system_summary"
#define TOPIC_NODE_STATUS "manager/set_node_status"
#define TOPIC_UPDATE_TASK "manager/update_task_status"

#define OUTBOX_MAX_ROWS 10000
#define OUTBOX_WINDOW 32	/* publications handed to paho at once */
#define RECONNECT_MAX_MS 60000
#define CONNECT_TIMEOUT_S 10
#define KEEPALIVE_S 60

#define CALL_CMD_MS 5000	/* one attempt to hand a Command to exec or register */
#define CMD_RETRY_MS 500	/* between attempts: until the daemon answers */
#define CMD_WINDOW 128		/* Commands handed to the command worker at once */
#define CMD_BACKLOG_MAX 10000	/* Commands waiting in the main loop beyond those */
#define CALL_REPORT_MS 1000	/* ReportError to register */
#define CALL_SNAPSHOT_MS 500	/* SnapshotRequest to res */
#define CALL_REGPOLL_MS 500	/* RegistrationRequest to register */
#define REGPOLL_MS 1000

/* Context value of the publication of NodeStatus at stop. */
#define SEQ_NODE_STATUS ((uint64_t)UINTPTR_MAX)

/* ---- events.c: thread -> main loop hand-off (evq.h) ---- */
enum ev_type {
	EV_CONNECTED,		/* gen */
	EV_CONNECT_FAILED,	/* gen, code, text */
	EV_CONN_LOST,		/* gen */
	EV_MESSAGE,		/* topic/topic_len, data/len (data NULL if too_big),
				 * seq: its inbox row, stored on arrival (0: none) */
	EV_SENT,		/* seq */
	EV_SEND_FAILED,		/* seq, code */
	EV_SUBSCRIBED,		/* gen, seq: the topic index */
	EV_SUBSCRIBE_FAILED,	/* gen, code */
	EV_DISCONNECTED,	/* gen */
	EV_REGISTRATION,	/* msg: a RegistrationNotice, or NULL when none */
	EV_CMD_DONE,		/* seq: the command worker finished a Command (its inbox row) */
};

struct event {
	struct event *next;
	enum ev_type type;
	unsigned gen;
	uint64_t seq;
	int code;
	bool too_big;
	char *topic;
	size_t topic_len;
	uint8_t *data;
	size_t len;
	char *text;
	ipc_msg *msg;
};

/* The queue's ops (evq.h): EV_MESSAGE events beyond its bounds are
 * dropped and counted by evq_push. */
extern const struct evq_ops event_ops;
struct event *event_new(enum ev_type type);
void event_free(struct event *ev);

/* ---- mqtt.c: one paho MQTTAsync client ---- */
struct mq_params {
	const char *host;
	int port;
	const char *client_id;
	bool tls;
	const char *ca_file;	/* NULL: system roots */
	const char *cert_file;	/* NULL: no client certificate */
	const char *key_file;	/* mqtt.key, or mqtt.key.sbox (secret.h) */
	const unsigned char *sbox_key;	/* opens a sealed key_file */
	bool verify;
	const char *state_dir;	/* beat.db: commands are stored on arrival */
};
struct mq;
/* Every callback of this client pushes to q with gen. */
struct mq *mq_new(const struct mq_params *p, struct evq *q, unsigned gen);
unsigned mq_gen(const struct mq *m);
int mq_connect(struct mq *m);
int mq_subscribe(struct mq *m, char *const *topics, size_t n);
int mq_unsubscribe(struct mq *m, char *const *topics, size_t n);
enum mq_publish {
	MQ_PUB_SENT,		/* accepted: EV_SENT/EV_SEND_FAILED with seq
				 * follow when track */
	MQ_PUB_LATER,		/* not now: disconnected, paho's queue full */
	MQ_PUB_NEVER,		/* paho refuses the message itself, for good */
};
enum mq_publish mq_publish(struct mq *m, const char *topic, const void *p,
    size_t len, int qos, bool track, uint64_t seq);
int mq_disconnect(struct mq *m, int timeout_ms);
/* An EV_MESSAGE the event queue dropped (full) on the receive thread: its
 * row stored on arrival goes too, as the message does (reported dropped,
 * never handed over). A no-op on any other thread: an event still queued
 * when the main loop exits keeps its row for the next start. */
void mq_forget_dropped(uint64_t seq);
void mq_free(struct mq *m);

/* ---- outbox.c: publications kept until the broker has them ---- */
struct outbox;
struct ob_row {
	uint64_t seq;
	char *topic;
	uint8_t *payload;
	size_t len;
	int qos;
};
struct outbox *outbox_open(const char *state_dir);
void outbox_close(struct outbox *ob);
enum ob_add {
	OB_STORED,		/* a new row */
	OB_DUPLICATE,		/* its key is stored or was delivered: nothing done */
	OB_FULL,		/* OUTBOX_MAX_ROWS rows wait: refused for now */
	OB_ERROR,		/* beat.db refused (logged) */
};
enum ob_add outbox_add(struct outbox *ob, const char *topic, const uint8_t *p,
    size_t len, int qos, const char *key);
/* The first row with seq > after: 1 found (free with ob_row_clear), 0 none, -1 error. */
int outbox_next(struct outbox *ob, uint64_t after, struct ob_row *row);
void ob_row_clear(struct ob_row *row);
/* Delivered: the row goes, its key is remembered. 0 or -1. */
int outbox_done(struct outbox *ob, uint64_t seq);
/* Refused for good by paho: the row goes. */
int outbox_drop(struct outbox *ob, uint64_t seq);
uint64_t outbox_count(const struct outbox *ob);
/* beat.db, for inbox.c (same thread: the main loop). */
struct sqlite3 *outbox_db(const struct outbox *ob);
/* A new connection to <state_dir>/beat.db (migrated, synchronous=FULL), for
 * a thread of its own; NULL on error (logged). */
struct sqlite3 *outbox_db_open(const char *state_dir);

/* ---- inbox.c: commands received, kept until handed over ---- */
struct inbox;
struct inbox *inbox_open(struct sqlite3 *db);
/* An inbox on a connection of its own to <state_dir>/beat.db, for the
 * MQTT receive thread (mqtt.c); inbox_close closes that connection. */
struct inbox *inbox_open_own(const char *state_dir);
void inbox_close(struct inbox *in);
/* Stores one command: its row number (> 0), or 0 when it could not be
 * stored (logged; the command still goes on, unkept). */
uint64_t inbox_add(struct inbox *in, const char *topic, const uint8_t *p, size_t len);
/* The Command.handoff id of row seq: this database's random name and the
 * row, the same on every attempt and after a restart; never again for
 * another command, even after beat.db is deleted. A command not kept
 * (seq 0) gets a random id of its own. */
#define HANDOFF_LEN (ID_HEX_LEN + 1 + 20)
void inbox_handoff(const struct inbox *in, uint64_t seq, char out[HANDOFF_LEN + 1]);
/* Handed over (or refused for good): the row goes. */
void inbox_done(struct inbox *in, uint64_t seq);
/* Calls fn for every row kept, oldest first; fn takes topic and payload
 * (malloc'd). Returns the number of rows, or -1. */
int inbox_replay(struct inbox *in, void (*fn)(void *arg, uint64_t seq,
    char *topic, uint8_t *p, size_t len), void *arg);

/* ---- worker.c: blocking IPC calls off the main loop ---- */
enum job_type {
	JOB_COMMAND,	/* Command{name, topic, payload} to dest; ReportError on failure */
	JOB_REPORT,	/* ReportError to register */
	JOB_REGPOLL,	/* RegistrationRequest to register -> EV_REGISTRATION */
	JOB_TLSPROBE,	/* after a failed TLS connection: log why (tlsprobe.c) */
};
struct job {
	struct job *next;
	enum job_type type;
	const char *dest;	/* static endpoint name */
	char *name;
	char *topic;
	uint8_t *data;
	size_t len;
	uint32_t error_id;
	char *content;
	struct manta_id node_id, swarm_id, task_id;
	uint32_t iteration, circular;
	uint64_t seq;		/* JOB_COMMAND: its inbox row, 0 if none */
	char handoff[HANDOFF_LEN + 1];	/* JOB_COMMAND: Command.handoff */
	struct beat_probe *probe;	/* JOB_TLSPROBE */
};
struct worker;
/* name and run_dir are borrowed: they must outlive the worker. */
struct worker *worker_start(const char *name, const char *run_dir,
    struct evq *q, size_t max_jobs);
/* Takes j. -1 (j freed) when the queue is full. */
int worker_post(struct worker *w, struct job *j);
/* Finishes the job in progress, drops the rest, joins. */
void worker_stop(struct worker *w);
struct job *job_new(enum job_type type);
void job_free(struct job *j);

/* ---- session.c: registration, connection, dispatch, outbox replay ---- */
enum conn_state {
	CONN_NONE,		/* no registration yet */
	CONN_WAITING,		/* until next_connect */
	CONN_CONNECTING,	/* MQTTAsync_connect in flight */
	CONN_CONNECTED,
};

/* session.c: reads ca.crt, mqtt.crt and mqtt.key (opened when sealed)
 * into memfds, for a daemon about to leave uid 0. 0 or -1 (logged). */
struct beat;
int session_hold_tls(struct beat *b);

struct beat {
	struct daemon_opts *opts;
	struct manta_cfg *cfg;
	struct ipc_server *srv;
	struct evq *q;
	struct worker *cmdw;	/* Commands and error reports, in order */
	struct worker *bgw;	/* snapshots and registration polls */
	struct outbox *ob;
	struct inbox *in;	/* commands received, until handed over */
	struct audit *audit;	/* <state_dir>/audit.log: commands received */

	/* the Registration in use */
	bool have_reg;
	struct manta_id node_id;
	char node_hex[ID_HEX_LEN + 1];
	char client_id[ID_HEX_LEN + 1];	/* the reference's text (dispatch.h) */
	char *host;
	int port;
	char **topics;
	size_t ntopics;
	size_t nsubscribed;	/* SUBACKs of this connection's subscriptions */
	uint64_t generation;
	char broker[300];	/* "host:port", "" before the first */
	bool regpoll_pending;
	long long next_regpoll;

	/* the MQTT session */
	struct mq *mq;
	unsigned gen;		/* of the newest client */
	enum conn_state state;
	int failures;		/* consecutive failed connection attempts */
	long long next_connect;
	long long connect_deadline;

	/* outbox replay: rows handed to paho in this connection */
	uint64_t sent_upto;
	uint64_t inflight[OUTBOX_WINDOW];
	size_t ninflight;
	bool replay;		/* a publication failed while connected */

	/* heartbeat (heartbeat.c) */
	long long next_beat;
	bool beat_pending;	/* a SnapshotRequest awaits its answer */
	uint64_t beat_t0_us;	/* hist_now_us() when the pending one was asked */
	long long snap_deadline;	/* of the pending one */
	int snap_fd;		/* to res's snapshot socket; -1 until needed */
	uint8_t *hb_buf;	/* the packed heartbeat, reused */
	size_t hb_cap;
	struct hist beat_latency;	/* tick -> handed to paho (mantactl metrics) */
	uint64_t heartbeats;
	uint64_t outbox_peak;	/* the most rows stored at once since start */
	uint64_t unstored;	/* published without beat.db (it refused writes) */

	/* Commands: at most CMD_WINDOW handed to the worker (so that a post
	 * never fails), the rest wait here in order, up to CMD_BACKLOG_MAX;
	 * beyond that a command is refused, visibly (session.c). */
	size_t cmd_handed;
	struct job *backlog, *backlog_tail;
	size_t nbacklog;
	size_t backlog_peak;
	uint64_t refused_busy;

	/* rate limit of the warnings about dropped messages */
	long long drop_sec;
	unsigned drop_logged;
	unsigned long drop_quiet;

	/* With security.daemon_user, the TLS files read at start into memfds
	 * (cert_folder is not ours to read once switched): "/proc/self/fd/N",
	 * else "" (absent file) or held false (read at each connection). */
	bool held;
	char held_ca[64], held_cert[64], held_key[64];

	/* stop */
	bool stopping;
	bool status_sent;	/* NodeStatus DISCONNECTED acknowledged */
	bool disconnected;
};

void session_timers(struct beat *b, long long now);
/* Milliseconds until the next timer, at most max. */
int session_timeout(const struct beat *b, long long now, int max);
void session_event(struct beat *b, struct event *ev);
/* RegistrationNotice from register (pushed or polled). 0, or -1 with err. */
int session_registration(struct beat *b, const Manta__Ipc__RegistrationNotice *n,
    bool pushed, char *err, size_t errlen);
/* n messages were dropped before the main loop saw them: logged, and
 * reported to the manager. */
void session_dropped(struct beat *b, unsigned n);
/* Frees the commands still waiting in the main loop: they stay in the
 * inbox for the next start. */
void session_backlog_free(struct beat *b);
/* At start: the inbox's commands (received by the last run, not handed
 * over) go first, in order. */
void session_replay(struct beat *b);
/* Sends pending outbox rows while connected. */
void session_pump(struct beat *b);
/* At stop: NodeStatus DISCONNECTED (QoS 1, up to wait_ms), disconnect, free. */
void session_close(struct beat *b, int wait_ms);

/* ---- a TLS probe job (session.c posts it, worker.c runs it) ---- */
struct beat_probe {
	struct tls_probe p;	/* its strings are the ones below */
	char *host, *ca_file, *cert_file, *key_file;
	bool first;		/* first failure since connected: always log */
};
void beat_probe_free(struct beat_probe *bp);

/* ---- heartbeat.c: res's Snapshot, asked for by the main loop ---- */
/* Sends a SnapshotRequest to res unless one is pending: 0, or -1 (this
 * heartbeat is skipped). */
int heartbeat_ask(struct beat *b, long long now);
/* The fd to poll (ZMQ_POLLIN) for the answer; -1 when none is due. */
int heartbeat_fd(const struct beat *b);
/* The socket is readable: publishes the heartbeat when connected. */
void heartbeat_answer(struct beat *b);
/* Gives up on an answer past its deadline. */
void heartbeat_timers(struct beat *b, long long now);
/* Closes the socket (before ipc_context_term) and frees the buffer. */
void heartbeat_close(struct beat *b);

/* ---- sandbox.c: the seccomp allowlist, loaded before the loop ---- */
int sandbox_enter(void);

#endif
