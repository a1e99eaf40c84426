/* server: the gRPC server on libgrpc's core API. One completion queue and
 * one thread (main) drive every call: each call is a small state machine
 * (struct lcall) whose batches carry tags naming the step to run when they
 * complete, so no thread is spent per call and one slow task cannot hold
 * another's call.
 *
 * The completion queue is the daemon's poll loop: it cannot be polled
 * together with file descriptors, so the other two sources of events, the
 * IPC thread (signals, status) and the identity lookups (ident.c), ring a
 * doorbell instead. The doorbell is a connectivity watch on an idle channel
 * that never connects, armed with a state it is not in and a deadline of
 * now: libgrpc then posts the tag at once, from any thread, with the public
 * API only. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "light.h"
#include "log.h"

struct lstats light_stats;

#define ARMED_PER_METHOD 2
/* Memory freed by ended calls goes back to the system (malloc_trim) after
 * a call that moved this much, after this many calls, and when the last
 * call in progress ends after a few: 1000 streams left idle must not keep
 * the daemon at their peak once they are gone. A trim costs about 0.2 ms
 * (a quarter of a small call's time here): not after every call. */
#define TRIM_BYTES (8 << 20)
#define TRIM_CALLS 128
#define TRIM_IDLE_CALLS 16
/* And once the daemon has been quiet this long after a call ended:
 * libgrpc frees a connection's buffers after the call's own end, so a
 * trim at the end alone can miss them. */
#define TRIM_QUIET_MS 250
/* Calls refused or failed are logged, at most this many lines a second:
 * a task in a loop must not fill the log. The rest are counted and summed
 * up once the second is over; light.db keeps every one. */
#define LOG_ENDS_PER_SEC 10

static struct method methods[] = {
	{ "/node.light_service.Local/GetBinaryData", "Local/GetBinaryData",
	  M_SERVER_STREAM, local_get_binary, NULL },
	{ "/node.light_service.Local/ListDir", "Local/ListDir", M_UNARY, local_listdir, NULL },
	{ "/node.light_service.Local/ReadFileLines", "Local/ReadFileLines",
	  M_SERVER_STREAM, local_read_lines, NULL },
	{ "/node.light_service.Local/Exists", "Local/Exists", M_UNARY, local_exists, NULL },
	{ "/node.light_service.World/GetTaskResult", "World/GetTaskResult",
	  M_SERVER_STREAM, world_get_task_result, NULL },
	{ "/node.light_service.World/AddTaskResult", "World/AddTaskResult",
	  M_CLIENT_STREAM, world_add_task_result, NULL },
	{ "/node.light_service.World/GetGlobal", "World/GetGlobal",
	  M_SERVER_STREAM, world_get_global, NULL },
	{ "/node.light_service.World/SetGlobal", "World/SetGlobal",
	  M_CLIENT_STREAM, world_set_global, NULL },
	{ "/node.light_service.World/StopSwarm", "World/StopSwarm", M_UNARY, world_stop_swarm, NULL },
	{ "/node.light_service.World/ScheduleTask", "World/ScheduleTask",
	  M_UNARY, world_schedule_task, NULL },
};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

static struct {
	grpc_server *server;
	grpc_completion_queue *cq;
	grpc_channel *bell_ch;
	atomic_bool bell_armed;
	atomic_bool stop_asked;
	int bell_tag, shutdown_tag;
	bool stopping, shutdown_done;
	bool token_required;
	struct lcall *live;
	size_t nlive, narmed;
	size_t max_calls, max_per_task;	/* network.light_max_calls(_per_task) */
	unsigned untrimmed;		/* calls ended since the last trim */
	long long trim_at;		/* quiet trim due then (ms), 0: none */
} S;

static struct {
	long long since;		/* start of the current second */
	unsigned n;			/* lines logged in it */
	unsigned long long dropped;	/* not logged since then */
} R;

long long
light_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

grpc_completion_queue *
server_cq(void)
{
	return S.cq;
}

int
light_thread(pthread_t *th, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(th, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

grpc_server *
server_grpc(void)
{
	return S.server;
}

grpc_call *
call_parent(struct lcall *c)
{
	return c->call;
}

bool
light_token_required(const struct manta_cfg *c)
{
	/* Unset: compatibility mode, except for tasks without a network. */
	if (c->task_token_required_set)
		return c->task_token_required;
	return c->network != NULL && strcmp(c->network, "none") == 0;
}

/* ---- logging of refused and failed calls, rate-limited ---- */

static void
ends_flush(long long now)
{
	if (R.dropped > 0)
		log_info("%llu more refused or failed call(s) in the last %lld ms not logged"
		    " (all are in light.db)", R.dropped, now - R.since);
	R.dropped = 0;
	R.since = now;
	R.n = 0;
}

static void
log_end(const struct lcall *c, int code, const char *msg)
{
	char sw[ID_HEX_LEN + 1], tk[ID_HEX_LEN + 1];
	long long now = light_now_ms();

	if (now - R.since >= 1000)
		ends_flush(now);
	if (R.n >= LOG_ENDS_PER_SEC) {
		R.dropped++;
		return;
	}
	R.n++;
	id_to_hex(c->swarm, sw);
	id_to_hex(c->task, tk);
	log_info("%s from swarm %s task %s: %s (status %d)", c->m->name, sw, tk, msg, code);
}

long long
log_sweep(long long now)
{
	if (R.dropped == 0)
		return -1;
	if (now - R.since >= 1000) {
		ends_flush(now);
		return -1;
	}
	return R.since + 1000;
}

void
call_mark_refused(struct lcall *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->status = GRPC_STATUS_PERMISSION_DENIED;
	atomic_fetch_add(&light_stats.refused, 1);
	log_end(c, c->status, msg);
}

/* ---- references ---- */

static void
call_free(struct lcall *c)
{
	if (c->call != NULL) {
		struct audit_rec r;

		memset(&r, 0, sizeof(r));
		r.method = c->m->name;
		r.swarm = c->swarm;
		r.task = c->task;
		r.dataset = c->dataset;
		r.path = c->path;
		r.bytes = c->bytes;
		r.status = c->cancelled && !c->finishing ? GRPC_STATUS_CANCELLED : c->status;
		r.token = c->has_token;
		r.ms = light_now_ms() - c->start_ms;
		audit_record(&r);
		if (c->prev != NULL)
			c->prev->next = c->next;
		else
			S.live = c->next;
		if (c->next != NULL)
			c->next->prev = c->prev;
		S.nlive--;
		atomic_fetch_sub(&light_stats.active, 1);
		grpc_call_unref(c->call);
	} else
		S.narmed--;
	if (c->st_free != NULL)
		c->st_free(c);
	grpc_metadata_array_destroy(&c->md);
	if (c->payload != NULL)
		grpc_byte_buffer_destroy(c->payload);
	if (c->recv != NULL)
		grpc_byte_buffer_destroy(c->recv);
	if (c->sending != NULL)
		grpc_byte_buffer_destroy(c->sending);
	if (c->last != NULL)
		grpc_byte_buffer_destroy(c->last);
	if (c->has_details)
		grpc_slice_unref(c->fin_details);
	explicit_bzero(c->token, sizeof(c->token));
	free(c->dataset);
	free(c->path);
	/* A large message, or many calls, leave their pages in malloc's
	 * free lists, which would count as ours until reused: give them
	 * back now. */
	if (c->call != NULL) {
		bool trim;

		S.untrimmed++;
		trim = c->bytes >= TRIM_BYTES || S.untrimmed >= TRIM_CALLS ||
		    (S.nlive == 0 && S.untrimmed >= TRIM_IDLE_CALLS);

		free(c);
		if (trim) {
			S.untrimmed = 0;
			malloc_trim(0);
		}
		S.trim_at = light_now_ms() + TRIM_QUIET_MS;
		return;
	}
	free(c);
}

void
call_hold(struct lcall *c)
{
	c->refs++;
}

void
call_release(struct lcall *c)
{
	if (--c->refs == 0)
		call_free(c);
}

static int
start_batch(struct lcall *c, const grpc_op *ops, size_t n, struct ltag *t, step_fn fn)
{
	grpc_call_error e;

	t->c = c;
	t->fn = fn;
	if ((e = grpc_call_start_batch(c->call, ops, n, t, NULL)) != GRPC_CALL_OK) {
		log_warnx("%s: unable to start a batch: %s", c->m->name,
		    grpc_call_error_to_string(e));
		return -1;
	}
	c->refs++;
	return 0;
}

/* ---- batches on the task's call ---- */

static void
send_done(struct lcall *c, bool ok)
{
	if (c->sending != NULL)
		grpc_byte_buffer_destroy(c->sending);
	c->sending = NULL;
	if (!ok)
		c->cancelled = true;
	c->send_fn(c, ok && !c->cancelled);
}

int
call_send(struct lcall *c, grpc_byte_buffer *bb, step_fn fn)
{
	grpc_op ops[2];
	size_t n = 0;
	uint64_t len;

	if (c->cancelled || c->finishing || c->sending != NULL) {
		grpc_byte_buffer_destroy(bb);
		return -1;
	}
	memset(ops, 0, sizeof(ops));
	if (!c->md_sent) {
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		c->md_sent = true;
	}
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n++].data.send_message.send_message = bb;
	len = grpc_byte_buffer_length(bb);
	c->sending = bb;
	c->send_fn = fn;
	if (start_batch(c, ops, n, &c->t_send, send_done) == -1) {
		grpc_byte_buffer_destroy(bb);
		c->sending = NULL;
		return -1;
	}
	c->bytes += len;
	atomic_fetch_add(&light_stats.bytes_out, len);
	return 0;
}

static void
recv_done(struct lcall *c, bool ok)
{
	if (!ok)
		c->cancelled = true;
	if (c->recv != NULL) {
		uint64_t len = grpc_byte_buffer_length(c->recv);

		c->bytes += len;
		atomic_fetch_add(&light_stats.bytes_in, len);
	}
	c->recv_fn(c, ok && !c->cancelled);
}

int
call_recv(struct lcall *c, step_fn fn)
{
	grpc_op op;

	if (c->cancelled || c->finishing)
		return -1;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	if (c->recv != NULL)
		grpc_byte_buffer_destroy(c->recv);
	c->recv = NULL;
	op.data.recv_message.recv_message = &c->recv;
	c->recv_fn = fn;
	return start_batch(c, &op, 1, &c->t_recv, recv_done);
}

static void
fin_done(struct lcall *c, bool ok)
{
	if (c->last != NULL)
		grpc_byte_buffer_destroy(c->last);
	c->last = NULL;
}

void
call_finish(struct lcall *c, int code, grpc_byte_buffer *last, const char *fmt, ...)
{
	char msg[512] = "";
	grpc_op ops[3];
	size_t n = 0;
	va_list ap;

	if (c->finishing) {
		if (last != NULL)
			grpc_byte_buffer_destroy(last);
		return;
	}
	c->finishing = true;
	c->status = code;
	if (code == GRPC_STATUS_PERMISSION_DENIED || code == GRPC_STATUS_UNAUTHENTICATED)
		atomic_fetch_add(&light_stats.refused, 1);
	else if (code != GRPC_STATUS_OK)
		atomic_fetch_add(&light_stats.failed, 1);
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	if (code != GRPC_STATUS_OK)
		log_end(c, code, msg);
	if (c->cancelled) {
		if (last != NULL)
			grpc_byte_buffer_destroy(last);
		return;
	}
	memset(ops, 0, sizeof(ops));
	if (!c->md_sent) {
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		c->md_sent = true;
	}
	if (last != NULL) {
		uint64_t len = grpc_byte_buffer_length(last);

		c->last = last;
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = last;
		c->bytes += len;
		atomic_fetch_add(&light_stats.bytes_out, len);
	}
	c->fin_details = grpc_slice_from_copied_string(msg);
	c->has_details = true;
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)code;
	ops[n++].data.send_status_from_server.status_details = fmt ? &c->fin_details : NULL;
	if (start_batch(c, ops, n, &c->t_fin, fin_done) == -1) {
		if (c->last != NULL)
			grpc_byte_buffer_destroy(c->last);
		c->last = NULL;
		grpc_call_cancel(c->call, NULL);
	}
}

void
call_set_audit(struct lcall *c, const char *dataset, const char *path)
{
	free(c->dataset);
	free(c->path);
	c->dataset = dataset ? strndup(dataset, 512) : NULL;
	c->path = path ? strndup(path, 4096) : NULL;
}

/* ---- the caller ---- */

void
call_read_token(struct lcall *c)
{
	for (size_t i = 0; i < c->md.count; i++) {
		const grpc_metadata *m = &c->md.metadata[i];
		size_t len = GRPC_SLICE_LENGTH(m->value);
		const uint8_t *v = GRPC_SLICE_START_PTR(m->value);

		if (grpc_slice_str_cmp(m->key, "manta-task-token") != 0)
			continue;
		c->has_token = true;
		c->token_bad = len == 0 || len > LIGHT_TOKEN_MAX;
		for (size_t j = 0; j < len && !c->token_bad; j++)
			if (v[j] <= 0x20 || v[j] >= 0x7f)
				c->token_bad = true;
		if (!c->token_bad) {
			memcpy(c->token, v, len);
			c->token[len] = '\0';
		}
		return;
	}
}

/* Calls of c's task admitted and not yet ended. */
static size_t
task_calls(const struct lcall *c)
{
	size_t n = 0;

	for (const struct lcall *o = S.live; o != NULL; o = o->next)
		if (o->admitted && !o->finishing && id_equal(o->swarm, c->swarm) &&
		    id_equal(o->task, c->task))
			n++;
	return n;
}

static void
decide(struct lcall *c)
{
	const struct ident *w = &c->who;
	char sw[ID_HEX_LEN + 1], tk[ID_HEX_LEN + 1];
	step_fn next = c->resume;

	c->resume = NULL;
	id_to_hex(c->swarm, sw);
	id_to_hex(c->task, tk);
	if (w->err != 0) {
		call_finish(c, GRPC_STATUS_UNAVAILABLE, NULL,
		    "unable to identify the calling task: mantad-exec is not answering");
		return;
	}
	if (c->has_token) {
		if (!w->found || !w->token_matched || !w->running) {
			call_finish(c, GRPC_STATUS_UNAUTHENTICATED, NULL,
			    "unknown task token (or its task is not running)");
			return;
		}
		if (!id_equal(w->swarm, c->swarm) || !id_equal(w->task, c->task)) {
			call_finish(c, GRPC_STATUS_PERMISSION_DENIED, NULL,
			    "the request names swarm %s task %s, not the task of its token",
			    sw, tk);
			return;
		}
	} else if (!w->found || !w->running) {
		call_finish(c, GRPC_STATUS_PERMISSION_DENIED, NULL,
		    "no task swarm %s task %s is running on this node", sw, tk);
		return;
	}
	if (task_calls(c) >= S.max_per_task) {
		call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL,
		    "task swarm %s task %s has %zu Light calls in progress"
		    " (network.light_max_calls_per_task)", sw, tk, S.max_per_task);
		return;
	}
	c->admitted = true;
	next(c, true);
}

void
call_authorize(struct lcall *c, step_fn next)
{
	struct manta_id zero = MANTA_ID_ZERO;
	int rc;

	if (c->has_token && c->token_bad) {
		call_finish(c, GRPC_STATUS_UNAUTHENTICATED, NULL, "malformed task token");
		return;
	}
	if (c->bound) {
		/* Only its task reaches its endpoint: the caller is that task. */
		struct manta_id none = MANTA_ID_ZERO;
		char sw[ID_HEX_LEN + 1], tk[ID_HEX_LEN + 1];

		if (id_equal(c->task, none) && id_equal(c->swarm, c->bswarm))
			c->task = c->btask;
		if (!id_equal(c->swarm, c->bswarm) || !id_equal(c->task, c->btask)) {
			id_to_hex(c->swarm, sw);
			id_to_hex(c->task, tk);
			call_finish(c, GRPC_STATUS_PERMISSION_DENIED, NULL,
			    "the request names swarm %s task %s, not the task of this endpoint",
			    sw, tk);
			return;
		}
	}
	if (!c->has_token && S.token_required && !c->bound) {
		call_finish(c, GRPC_STATUS_UNAUTHENTICATED, NULL,
		    "this node requires a task token (manta-task-token metadata)");
		return;
	}
	c->resume = next;
	if (c->has_token)
		rc = ident_get(c->token, zero, zero, c, &c->who);
	else
		rc = ident_get(NULL, c->swarm, c->task, c, &c->who);
	if (rc == -1) {
		c->resume = NULL;
		call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, "out of memory");
	} else if (rc == 1)
		decide(c);
	else
		call_hold(c);	/* released by call_resume */
}

void
call_resume(struct lcall *c)
{
	if (c->cancelled || c->finishing)
		c->resume = NULL;
	else
		decide(c);
	call_release(c);
}

/* ---- new calls ---- */

static void call_closed(struct lcall *c, bool ok);
static void call_new(struct lcall *c, bool ok);

static int
arm(struct method *m)
{
	struct lcall *c;
	grpc_call_error e;

	if (S.stopping)
		return 0;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	c->m = m;
	grpc_metadata_array_init(&c->md);
	c->t_new.c = c;
	c->t_new.fn = call_new;
	e = grpc_server_request_registered_call(S.server, m->reg, &c->call, &c->deadline,
	    &c->md, m->kind == M_CLIENT_STREAM ? NULL : &c->payload, S.cq, S.cq, &c->t_new);
	if (e != GRPC_CALL_OK) {
		log_warnx("unable to wait for %s calls: %s", m->name, grpc_call_error_to_string(e));
		grpc_metadata_array_destroy(&c->md);
		free(c);
		return -1;
	}
	c->refs = 1;
	S.narmed++;
	return 0;
}

static void
call_closed(struct lcall *c, bool ok)
{
	if (c->close_cancelled || !ok) {
		c->cancelled = true;
		if (c->on_cancel != NULL)
			c->on_cancel(c);
	}
}

static void
call_new(struct lcall *c, bool ok)
{
	grpc_op op;
	char *peer;

	if (!ok || c->call == NULL) {
		/* The server is shutting down: this slot is done. */
		c->call = NULL;
		return;
	}
	S.narmed--;
	c->start_ms = light_now_ms();
	c->status = GRPC_STATUS_OK;
	c->next = S.live;
	if (S.live != NULL)
		S.live->prev = c;
	S.live = c;
	S.nlive++;
	atomic_fetch_add(&light_stats.calls, 1);
	atomic_fetch_add(&light_stats.active, 1);
	arm((struct method *)(uintptr_t)c->m);

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->close_cancelled;
	if (start_batch(c, &op, 1, &c->t_close, call_closed) == -1) {
		grpc_call_cancel(c->call, NULL);
		return;
	}
	call_read_token(c);
	if ((peer = grpc_call_get_peer(c->call)) != NULL) {
		c->bound = netep_who(peer, &c->bswarm, &c->btask) == 1;
		gpr_free(peer);
	}
	if (S.nlive > S.max_calls) {
		call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL,
		    "%zu Light calls in progress (network.light_max_calls)", S.max_calls);
		return;
	}
	c->m->start(c);
}

/* ---- the loop ---- */

void
server_ring(void)
{
	if (atomic_exchange(&S.bell_armed, true))
		return;
	grpc_channel_watch_connectivity_state(S.bell_ch, GRPC_CHANNEL_SHUTDOWN,
	    gpr_now(GPR_CLOCK_MONOTONIC), S.cq, &S.bell_tag);
}

void
server_stop(void)
{
	atomic_store(&S.stop_asked, true);
	server_ring();
}

static void
begin_shutdown(void)
{
	if (S.stopping)
		return;
	S.stopping = true;
	log_info("stopping: %zu call(s) in progress are cancelled", S.nlive);
	grpc_server_shutdown_and_notify(S.server, S.cq, &S.shutdown_tag);
	/* Our calls to the manager are children of these: cancelled too. */
	grpc_server_cancel_all_calls(S.server);
}

void
server_run(void)
{
	for (;;) {
		long long now = light_now_ms(), next, lnext;
		gpr_timespec dl;
		grpc_event ev;

		if (S.stopping && S.shutdown_done && S.nlive == 0 && S.narmed == 0)
			break;
		next = world_sweep(now);
		lnext = log_sweep(now);
		if (lnext >= 0 && (next < 0 || lnext < next))
			next = lnext;
		if (S.trim_at != 0 && now >= S.trim_at && S.nlive == 0) {
			S.trim_at = 0;
			S.untrimmed = 0;
			malloc_trim(0);
		}
		if (S.trim_at != 0 && S.nlive == 0 && (next < 0 || S.trim_at < next))
			next = S.trim_at;
		if (next < 0)
			dl = gpr_inf_future(GPR_CLOCK_MONOTONIC);
		else
			dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
			    gpr_time_from_millis(next > now ? next - now : 0, GPR_TIMESPAN));
		ev = grpc_completion_queue_next(S.cq, dl, NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		if (ev.tag == &S.bell_tag) {
			atomic_store(&S.bell_armed, false);
			ident_dispatch();
			if (atomic_load(&S.stop_asked))
				begin_shutdown();
			continue;
		}
		if (ev.tag == &S.shutdown_tag) {
			S.shutdown_done = true;
			continue;
		}
		{
			struct ltag *t = ev.tag;
			struct lcall *c = t->c;

			t->fn(c, ev.success != 0);
			call_release(c);
		}
	}
}

/* libgrpc's messages at debug level (see mantad-register). */
static void
grpc_log(gpr_log_func_args *a)
{
	log_debug("grpc: %s:%d: %s", a->file, a->line, a->message);
}

static int
read_port_file(const char *run_dir)
{
	char path[4096], buf[32];
	ssize_t n;
	int fd, port = 0;

	snprintf(path, sizeof(path), "%s/%s", run_dir, LIGHT_PORT_FILE);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	if ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		port = atoi(buf);
	}
	close(fd);
	return port >= 1024 && port <= 65535 ? port : 0;
}

static int
add_port(const char *host, int port)
{
	grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
	char addr[300];
	int got;

	if (strchr(host, ':') != NULL && host[0] != '[')
		snprintf(addr, sizeof(addr), "[%s]:%d", host, port);
	else
		snprintf(addr, sizeof(addr), "%s:%d", host, port);
	got = grpc_server_add_http2_port(S.server, addr, creds);
	grpc_server_credentials_release(creds);
	return got;
}

/* The gRPC server and its completion queue, each method registered. */
static int
server_create(const struct manta_cfg *c)
{
	/* Globals and results come as one message however large (WIRE.md
	 * section 2): the cap is network.light_max_message_mb (one message
	 * in flight per direction is what a call holds), over it the call
	 * ends RESOURCE_EXHAUSTED; 0 lifts it as the reference. No SO_REUSEPORT, or two nodes
	 * on one machine would share a port. Tasks' keepalive pings (30 s in
	 * the reference's channels) are welcome. */
	int max_msg = c->light_max_message_mb > 0 ? c->light_max_message_mb << 20 : -1;
	grpc_arg args[] = {
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = max_msg },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = max_msg },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
		  .value.integer = 10000 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, .value.integer = 1 },
	};
	grpc_channel_args cargs = { sizeof(args) / sizeof(args[0]), args };

	gpr_set_log_function(grpc_log);
	grpc_init();
	S.cq = grpc_completion_queue_create_for_next(NULL);
	S.server = grpc_server_create(&cargs, NULL);
	grpc_server_register_completion_queue(S.server, S.cq, NULL);
	for (size_t i = 0; i < NMETHODS; i++) {
		methods[i].reg = grpc_server_register_method(S.server, methods[i].path, NULL,
		    methods[i].kind == M_CLIENT_STREAM ? GRPC_SRM_PAYLOAD_NONE :
		    GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
		if (methods[i].reg == NULL) {
			log_warnx("unable to register %s", methods[i].path);
			return -1;
		}
	}
	return 0;
}

/* The TCP port: network.light_service_port, else the last run's, else the
 * first free one from LIGHT_FIRST_PORT. 0 (logged) when none is bound. */
static int
bind_tcp(const struct manta_cfg *c)
{
	int got = 0, last;

	if (c->light_service_port != 0) {
		got = add_port(c->light_service_host, c->light_service_port);
		if (got == 0)
			log_warnx("unable to bind %s:%d", c->light_service_host,
			    c->light_service_port);
		return got;
	}
	/* The port of the last run first: tasks still running were
	 * given it in RPC_PORT. */
	if ((last = read_port_file(c->run_dir)) != 0)
		got = add_port(c->light_service_host, last);
	for (int p = LIGHT_FIRST_PORT; got == 0 && p <= LIGHT_LAST_PORT; p++)
		got = add_port(c->light_service_host, p);
	if (got == 0)
		log_warnx("no free port on %s from %d to %d", c->light_service_host,
		    LIGHT_FIRST_PORT, LIGHT_LAST_PORT);
	return got;
}

/* The unix socket for tasks without a network (containers.network =
 * "none"): exec bind-mounts it into their container. Its path in sock. */
static void
bind_unix(const struct manta_cfg *c, char *sock, size_t len)
{
	grpc_server_credentials *creds;
	char addr[4200];

	snprintf(sock, len, "%s/%s", c->run_dir, LIGHT_UNIX_SOCK);
	if (unlink(sock) == -1 && errno != ENOENT)
		log_warn("unable to remove %s", sock);
	snprintf(addr, sizeof(addr), "unix:%s", sock);
	creds = grpc_insecure_server_credentials_create();
	if (grpc_server_add_http2_port(S.server, addr, creds) == 0)
		log_warnx("unable to bind %s", sock);
	grpc_server_credentials_release(creds);
}

/* The doorbell: a channel that is never used for a call. Then each
 * method's calls armed. */
static int
open_bell(const struct manta_cfg *c)
{
	grpc_channel_credentials *ic;
	char bell[4200];

	snprintf(bell, sizeof(bell), "unix:%s/light-bell.invalid", c->run_dir);
	ic = grpc_insecure_credentials_create();
	S.bell_ch = grpc_channel_create(bell, ic, NULL);
	grpc_channel_credentials_release(ic);
	if (S.bell_ch == NULL)
		return -1;
	for (size_t i = 0; i < NMETHODS; i++)
		for (int k = 0; k < ARMED_PER_METHOD; k++)
			if (arm(&methods[i]) == -1)
				return -1;
	return 0;
}

int
server_start(const struct manta_cfg *c, int *port)
{
	char sock[4096];
	int got;

	S.token_required = light_token_required(c);
	S.max_calls = (size_t)c->light_max_calls;
	S.max_per_task = (size_t)c->light_max_calls_per_task;
	if (server_create(c) == -1)
		return -1;
	if ((got = bind_tcp(c)) == 0)
		return -1;
	*port = got;
	bind_unix(c, sock, sizeof(sock));
	grpc_server_start(S.server);
	/* Containers run as their own users: anyone who can reach the socket
	 * may connect, and who they are is checked per call. */
	(void)chmod(sock, 0666);
	return open_bell(c);
}

void
server_free(void)
{
	if (S.server != NULL) {
		if (!S.stopping) {
			grpc_server_shutdown_and_notify(S.server, S.cq, &S.shutdown_tag);
			grpc_server_cancel_all_calls(S.server);
		}
		/* Drain whatever the shutdown still posts (armed slots). */
		while (!S.shutdown_done || S.narmed > 0 || S.nlive > 0) {
			grpc_event ev = grpc_completion_queue_next(S.cq,
			    gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
			    gpr_time_from_millis(5000, GPR_TIMESPAN)), NULL);

			if (ev.type != GRPC_OP_COMPLETE)
				break;
			if (ev.tag == &S.shutdown_tag)
				S.shutdown_done = true;
			else if (ev.tag == &S.bell_tag)
				atomic_store(&S.bell_armed, false);
			else {
				struct ltag *t = ev.tag;
				struct lcall *c = t->c;

				t->fn(c, ev.success != 0);
				call_release(c);
			}
		}
		grpc_server_destroy(S.server);
		S.server = NULL;
	}
	ends_flush(light_now_ms());
	if (S.bell_ch != NULL)
		grpc_channel_destroy(S.bell_ch);
	S.bell_ch = NULL;
	world_close();
	if (S.cq != NULL) {
		grpc_completion_queue_shutdown(S.cq);
		while (grpc_completion_queue_next(S.cq, gpr_inf_future(GPR_CLOCK_REALTIME),
		    NULL).type != GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(S.cq);
		S.cq = NULL;
	}
}
