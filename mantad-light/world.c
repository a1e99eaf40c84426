/* world: node.light_service.World, each call proxied to the manager's
 * node.node_service.Node (WIRE.md section 7) with the calling task's ids
 * and the node's JWT. The manager's call is a child of the task's (the
 * task's deadline and cancellation reach the manager), and runs on the
 * same completion queue: a proxied call is two state machines in step.
 *
 * Flow control: one message in flight per direction. A message from the
 * task is read, rewritten (ids filled in, its data passed on by reference)
 * and sent to the manager; only when the manager's side has taken it is
 * the next one read, and the same the other way. Memory per call is one
 * message plus HTTP/2's windows.
 *
 * A manager that does not answer: libgrpc fails a call at once when the
 * channel cannot connect (refused, unreachable); for one that accepts and
 * then says nothing, each wait on the manager is bounded (MGR_WAIT_MS) and
 * the task gets UNAVAILABLE. The channel and its credentials are
 * libcommon's mgrconn, as mantad-register's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <grpc/status.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "light.h"
#include "log.h"
#include "mgrconn.h"
#include "common/results.pb-c.h"
#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "node/light_service.pb-c.h"

#define MGR_WAIT_MS	10000

enum wkind { W_GET_RESULT, W_ADD_RESULT, W_GET_GLOBAL, W_SET_GLOBAL, W_STOP, W_SCHEDULE };

struct wcall {
	struct lcall *c;
	enum wkind kind;
	grpc_call *up;
	struct mgrconn_reply rep;	/* from the manager */
	grpc_byte_buffer *up_send;	/* to the manager, in flight */
	bool md_sent, status_done, eof, down_busy, closed;
	ProtobufCMessage *req;
	struct wbuf cur;		/* client stream: the message in hand */
	struct wfields f;
	long long wait_until;		/* 0: not waiting on the manager */
	struct wcall *prev, *next;
};

static struct {
	struct mgrconn mc;
	char *state_dir;
	struct manta_id node;
	bool have_node;
	struct wcall *list;
} W;

/* ---- the channel ---- */

static int
load_node_id(void)
{
	char path[4096], buf[64];
	FILE *f;

	if (W.have_node)
		return 1;
	snprintf(path, sizeof(path), "%s/identity", W.state_dir);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) != NULL) {
		buf[strcspn(buf, "\r\n")] = '\0';
		if (id_parse_hex(buf, &W.node) == 0)
			W.have_node = true;
	}
	fclose(f);
	return W.have_node ? 1 : 0;
}

int
world_node_id(struct manta_id *id)
{
	if (load_node_id() != 1)
		return 0;
	*id = W.node;
	return 1;
}

int
world_open(const struct manta_cfg *c)
{
	/* One connection attempt may take 500 ms in plain text: a task's
	 * call fails fast and the task decides whether to try again. A TLS
	 * handshake over a slow link takes longer (mantad-register allows
	 * 20 s): 5 s, still within a call's 10 s deadline. */
	bool tls = c->use_tls || c->manager_port == 443;
	const struct mgrconn_opts o = { .prog = PROG, .connect_ms = tls ? 5000 : 500 };

	if ((W.state_dir = strdup(c->state_dir)) == NULL || mgrconn_open(&W.mc, c, &o) == -1)
		return -1;
	if (!grpc_header_nonbin_value_is_legal(W.mc.auth.value))
		log_warnx("identity.secured_token is not a valid header value: World calls will fail");
	if (load_node_id() != 1)
		log_warnx("no node identity in %s yet (mantad-register writes it)", c->state_dir);
	return 0;
}

void
world_close(void)
{
	mgrconn_close(&W.mc);
	free(W.state_dir);
	W.state_dir = NULL;
}

const char *
world_target(void)
{
	return W.mc.target ? W.mc.target : "";
}

/* ---- per call ---- */

static void
wcall_free(struct lcall *c)
{
	struct wcall *w = c->st;

	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		W.list = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	if (w->up != NULL)
		grpc_call_unref(w->up);
	mgrconn_reply_free(&w->rep);
	if (w->up_send != NULL)
		grpc_byte_buffer_destroy(w->up_send);
	if (w->req != NULL)
		protobuf_c_message_free_unpacked(w->req, NULL);
	wbuf_free(&w->cur);
	free(w);
	c->st = NULL;
}

static void
wcall_cancel(struct lcall *c)
{
	struct wcall *w = c->st;

	if (w != NULL && w->up != NULL)
		grpc_call_cancel(w->up, NULL);
}

static struct wcall *
wcall_new(struct lcall *c, enum wkind kind)
{
	struct wcall *w = calloc(1, sizeof(*w));

	if (w == NULL) {
		call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, "out of memory");
		return NULL;
	}
	w->c = c;
	w->kind = kind;
	mgrconn_reply_init(&w->rep);
	w->next = W.list;
	if (W.list != NULL)
		W.list->prev = w;
	W.list = w;
	c->st = w;
	c->st_free = wcall_free;
	c->on_cancel = wcall_cancel;
	return w;
}

static void
waiting(struct wcall *w, bool on)
{
	w->wait_until = on ? light_now_ms() + MGR_WAIT_MS : 0;
}

long long
world_sweep(long long now)
{
	long long next = -1;

	for (struct wcall *w = W.list; w != NULL; w = w->next) {
		if (w->wait_until == 0)
			continue;
		if (w->wait_until <= now) {
			w->wait_until = 0;
			if (w->up != NULL)
				grpc_call_cancel_with_status(w->up, GRPC_STATUS_UNAVAILABLE,
				    "the manager did not answer in time", NULL);
			continue;
		}
		if (next == -1 || w->wait_until < next)
			next = w->wait_until;
	}
	return next;
}

static int
up_batch(struct wcall *w, const grpc_op *ops, size_t n, struct ltag *t, step_fn fn)
{
	grpc_call_error e;

	t->c = w->c;
	t->fn = fn;
	if ((e = grpc_call_start_batch(w->up, ops, n, t, NULL)) != GRPC_CALL_OK) {
		log_warnx("%s: unable to start a batch to the manager: %s", w->c->m->name,
		    grpc_call_error_to_string(e));
		return -1;
	}
	call_hold(w->c);
	return 0;
}

/* A batch whose failure ends the task's call. */
static int
up_batch_or_end(struct wcall *w, const grpc_op *ops, size_t n, struct ltag *t, step_fn fn)
{
	if (up_batch(w, ops, n, t, fn) == 0)
		return 0;
	grpc_call_cancel(w->up, NULL);
	call_finish(w->c, GRPC_STATUS_INTERNAL, NULL, "unable to call the manager");
	return -1;
}

static int
up_create(struct wcall *w, const char *method)
{
	grpc_slice m = grpc_slice_from_static_string(method);

	w->up = grpc_channel_create_call(W.mc.ch, call_parent(w->c), GRPC_PROPAGATE_DEFAULTS,
	    server_cq(), m, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
	grpc_slice_unref(m);
	if (w->up == NULL) {
		call_finish(w->c, GRPC_STATUS_INTERNAL, NULL, "unable to call the manager");
		return -1;
	}
	return 0;
}

/* The call to the manager with bb (taken; NULL: out of memory) its
 * request message. */
static int
up_start(struct wcall *w, const char *method, grpc_byte_buffer *bb)
{
	if (bb == NULL) {
		call_finish(w->c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, "out of memory");
		return -1;
	}
	if (up_create(w, method) == -1) {
		grpc_byte_buffer_destroy(bb);
		return -1;
	}
	w->up_send = bb;
	return 0;
}

/* Ends the task's call with what the manager said. */
static void
relay_status(struct wcall *w, grpc_byte_buffer *last)
{
	char *d;

	if (w->rep.status == GRPC_STATUS_OK) {
		call_finish(w->c, GRPC_STATUS_OK, last, NULL);
		return;
	}
	if (last != NULL)
		grpc_byte_buffer_destroy(last);
	d = grpc_slice_to_c_string(w->rep.details);
	call_finish(w->c, w->rep.status, NULL, "manager: %s", d[0] ? d : "call failed");
	gpr_free(d);
}

/* The manager has taken the message in flight. */
static void
up_sent(struct wcall *w)
{
	if (w->up_send != NULL)
		grpc_byte_buffer_destroy(w->up_send);
	w->up_send = NULL;
}

/* The manager's status is in: no more waiting on it. */
static struct wcall *
status_in(struct lcall *c)
{
	struct wcall *w = c->st;

	w->status_done = true;
	waiting(w, false);
	return w;
}

/* relay_status for a call that answers with one message. */
static void
relay_answer(struct wcall *w)
{
	grpc_byte_buffer *bb = w->rep.msg;

	w->rep.msg = NULL;
	if (w->rep.status == GRPC_STATUS_OK && bb == NULL) {
		w->rep.status = GRPC_STATUS_INTERNAL;
		grpc_slice_unref(w->rep.details);
		w->rep.details = grpc_slice_from_static_string("no answer message");
	}
	relay_status(w, bb);
}

static bool
need_node(struct wcall *w, struct manta_id *node)
{
	if (world_node_id(node) == 1)
		return true;
	call_finish(w->c, GRPC_STATUS_UNAVAILABLE, NULL, "the node has no identity yet");
	return false;
}

/* The ids of a message to the manager: the calling task's and the node's. */
struct ids {
	Common__System__PairId swarm, task, node;
};

static bool
task_ids(struct wcall *w, struct ids *p)
{
	struct manta_id node;

	if (!need_node(w, &node))
		return false;
	p->swarm = p->task = p->node = (Common__System__PairId)COMMON__SYSTEM__PAIR_ID__INIT;
	id_to_pair(w->c->swarm, &p->swarm);
	id_to_pair(w->c->task, &p->task);
	id_to_pair(node, &p->node);
	return true;
}

/* The task's request, unpacked into w->req; NULL when that ended the call. */
static void *
take_request(struct lcall *c, enum wkind kind, const ProtobufCMessageDescriptor *desc)
{
	struct wcall *w;
	char err[256];

	if ((w = wcall_new(c, kind)) == NULL)
		return NULL;
	if ((w->req = wire_unpack(c->payload, desc, LIGHT_REQ_MAX, err, sizeof(err))) == NULL)
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "%s", err);
	return w->req;
}

/* Goes on with go once the task the request names is the caller; tag
 * (NULL: none) is what the audit trail records. */
static void
authorize(struct lcall *c, const Common__System__PairId *swarm,
    const Common__System__PairId *task, const char *tag, step_fn go)
{
	c->swarm = id_from_pair(swarm);
	c->task = id_from_pair(task);
	if (tag != NULL)
		call_set_audit(c, tag, NULL);
	call_authorize(c, go);
}

/* ---- unary: StopSwarm, ScheduleTask ---- */

static void
unary_done(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;

	waiting(w, false);
	relay_answer(w);
}

static void
unary_start(struct wcall *w, const char *method, grpc_byte_buffer *bb)
{
	grpc_op ops[6];
	size_t n;

	if (up_start(w, method, bb) == -1)
		return;
	n = mgrconn_ops_send(ops, &W.mc.auth, bb, true);
	n += mgrconn_ops_recv(ops + n, &w->rep, MGRCONN_RECV_ALL);
	if (up_batch_or_end(w, ops, n, &w->c->t_up, unary_done) == 0)
		waiting(w, true);
}

static void
stop_go(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;
	Common__Tasks__TaskUpdate tu = COMMON__TASKS__TASK_UPDATE__INIT;
	struct ids p;

	if (!task_ids(w, &p))
		return;
	/* The task's current TaskUpdate (WIRE.md section 7): it is running. */
	tu.swarm_id = &p.swarm;
	tu.task_id = &p.task;
	tu.node_id = &p.node;
	tu.iteration = c->who.iteration;
	tu.circular = c->who.circular;
	tu.task_status = COMMON__TASKS__TASK_STATUS__RUNNING;
	unary_start(w, "/node.node_service.Node/StopSwarm", wire_pack(&tu.base));
}

void
world_stop_swarm(struct lcall *c)
{
	Common__System__EnvId *r;

	if ((r = take_request(c, W_STOP, &common__system__env_id__descriptor)) != NULL)
		authorize(c, r->swarm_id, r->task_id, NULL, stop_go);
}

static void
schedule_go(struct lcall *c, bool ok)
{
	/* Passed on unchanged (WIRE.md section 7). */
	unary_start(c->st, "/node.node_service.Node/ScheduleTask", grpc_byte_buffer_copy(c->payload));
}

void
world_schedule_task(struct lcall *c)
{
	Common__Tasks__TaskScheduling *r;

	/* The scheduling task names itself; the one to start is by alias. */
	if ((r = take_request(c, W_SCHEDULE, &common__tasks__task_scheduling__descriptor)) != NULL)
		authorize(c, r->swarm_id, r->task_id, r->task_to_schedule_alias, schedule_go);
}

/* ---- server streams: GetTaskResult, GetGlobal ---- */

static void ss_recv(struct wcall *w);

static void
ss_maybe_finish(struct wcall *w)
{
	if (!w->status_done || w->down_busy)
		return;
	if (w->rep.status == GRPC_STATUS_OK && !w->eof)
		return;
	relay_status(w, NULL);
}

static void
ss_status(struct lcall *c, bool ok)
{
	ss_maybe_finish(status_in(c));
}

static void
ss_down_sent(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;

	w->down_busy = false;
	if (!ok) {
		grpc_call_cancel(w->up, NULL);
		return;
	}
	if (w->status_done && w->rep.status != GRPC_STATUS_OK)
		ss_maybe_finish(w);
	else
		ss_recv(w);
}

static void
ss_msg(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;
	grpc_byte_buffer *bb = w->rep.msg;

	w->rep.msg = NULL;
	if (bb == NULL) {
		w->eof = true;
		waiting(w, w->status_done ? false : true);
		ss_maybe_finish(w);
		return;
	}
	waiting(w, false);
	/* Passed on as it came: same message type on both services. */
	w->down_busy = true;
	if (call_send(c, bb, ss_down_sent) == -1) {
		w->down_busy = false;
		grpc_call_cancel(w->up, NULL);
	}
}

static void
ss_recv(struct wcall *w)
{
	grpc_op ops[2];
	size_t n;

	/* The first read takes the initial metadata with it. */
	n = mgrconn_ops_recv(ops, &w->rep,
	    (w->md_sent ? 0 : MGRCONN_RECV_MD) | MGRCONN_RECV_MSG);
	w->md_sent = true;
	if (up_batch(w, ops, n, &w->c->t_up3, ss_msg) == -1) {
		grpc_call_cancel(w->up, NULL);
		return;
	}
	waiting(w, true);
}

static void
ss_req_sent(struct lcall *c, bool ok)
{
	up_sent(c->st);
}

static void
ss_start(struct wcall *w, const char *method, grpc_byte_buffer *bb)
{
	grpc_op ops[3];
	size_t n;

	if (up_start(w, method, bb) == -1)
		return;
	n = mgrconn_ops_send(ops, &W.mc.auth, bb, true);
	if (up_batch_or_end(w, ops, n, &w->c->t_up, ss_req_sent) == -1)
		return;
	n = mgrconn_ops_recv(ops, &w->rep, MGRCONN_RECV_STATUS);
	if (up_batch_or_end(w, ops, n, &w->c->t_up2, ss_status) == -1)
		return;
	ss_recv(w);
}

static void
get_result_go(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;
	const Node__LightService__LightResultQuery *r = (const void *)w->req;
	Common__Results__ResultQuery q = COMMON__RESULTS__RESULT_QUERY__INIT;
	struct ids p;

	if (!task_ids(w, &p))
		return;
	q.swarm_id = &p.swarm;
	q.task_id = &p.task;
	q.node_id = &p.node;
	q.iteration = c->who.iteration;
	q.tag = r->tag;
	q.size = r->size < 0 ? 0 : (uint32_t)r->size;
	q.method = r->method;
	ss_start(w, "/node.node_service.Node/GetTaskResult", wire_pack(&q.base));
}

void
world_get_task_result(struct lcall *c)
{
	Node__LightService__LightResultQuery *r;

	if ((r = take_request(c, W_GET_RESULT,
	    &node__light_service__light_result_query__descriptor)) != NULL)
		authorize(c, r->swarm_id, r->task_id, r->tag, get_result_go);
}

static void
get_global_go(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;
	const Node__LightService__GetGlobalRequest *r = (const void *)w->req;
	Common__Results__GlobalTag t = COMMON__RESULTS__GLOBAL_TAG__INIT;
	Common__System__PairId sw = COMMON__SYSTEM__PAIR_ID__INIT;

	id_to_pair(c->swarm, &sw);
	t.swarm_id = &sw;
	t.tag = r->tag;
	ss_start(w, "/node.node_service.Node/GetGlobal", wire_pack(&t.base));
}

void
world_get_global(struct lcall *c)
{
	Node__LightService__GetGlobalRequest *r;

	if ((r = take_request(c, W_GET_GLOBAL,
	    &node__light_service__get_global_request__descriptor)) != NULL)
		authorize(c, r->swarm_id, r->task_id, r->tag, get_global_go);
}

/* ---- client streams: AddTaskResult, SetGlobal ---- */

/* Field numbers of the task's message: {task, swarm} ids, tag, data. */
static const int LR_IDS[2] = { 2, 1 };	/* LightResult: swarm_id = 2, task_id = 1 */
static const int SG_IDS[2] = { 1, 2 };	/* SetGlobalRequest: swarm_id = 1, task_id = 2 */

static void cs_next(struct lcall *c, bool ok);

/* Takes c->recv into w->cur and reads its fields. 0, -1 (call finished). */
static int
cs_take(struct wcall *w)
{
	struct lcall *c = w->c;
	char err[256];
	int rc;

	wbuf_free(&w->cur);
	rc = wbuf_from(&w->cur, c->recv);
	grpc_byte_buffer_destroy(c->recv);
	c->recv = NULL;
	if (rc == -1) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "unreadable message");
		return -1;
	}
	/* Both messages have the tag in field 3 and the data in field 4. */
	if (wire_scan(&w->cur, w->kind == W_ADD_RESULT ? LR_IDS : SG_IDS, 3, 4, &w->f,
	    err, sizeof(err)) == -1) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "%s", err);
		return -1;
	}
	return 0;
}

/* The task's message rewritten for the manager. */
static grpc_byte_buffer *
cs_rewrite(struct wcall *w)
{
	struct lcall *c = w->c;
	struct wout o;
	struct manta_id node;

	wout_init(&o);
	if (w->kind == W_ADD_RESULT) {
		/* Result { swarm 1, task 2, node 3, iteration 4, tag 5, data 6 } */
		if (!need_node(w, &node))
			return NULL;
		wout_pair(&o, 1, c->swarm);
		wout_pair(&o, 2, c->task);
		wout_pair(&o, 3, node);
		wout_varint_field(&o, 4, c->who.iteration);
		wout_string(&o, 5, w->f.tag, w->f.taglen);
		if (w->f.has_data)
			wout_bytes_ref(&o, 6, &w->cur, w->f.data_off, w->f.data_len);
	} else {
		/* GlobalUpdate { swarm 1, tag 2, data 3 } */
		wout_pair(&o, 1, c->swarm);
		wout_string(&o, 2, w->f.tag, w->f.taglen);
		if (w->f.has_data)
			wout_bytes_ref(&o, 3, &w->cur, w->f.data_off, w->f.data_len);
	}
	return wout_finish(&o);
}

static void
cs_status(struct lcall *c, bool ok)
{
	relay_answer(status_in(c));
}

static void
cs_sent(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;

	up_sent(w);
	waiting(w, w->closed);
	/* Not taken: the manager's status (cs_status) says why. */
	if (!ok || w->closed || w->status_done)
		return;
	if (call_recv(c, cs_next) == -1)
		grpc_call_cancel(w->up, NULL);
}

static void
cs_forward(struct wcall *w)
{
	grpc_op ops[2];
	size_t n;

	if ((w->up_send = cs_rewrite(w)) == NULL) {
		if (!w->c->finishing)
			call_finish(w->c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL,
			    "unable to build the message for the manager");
		grpc_call_cancel(w->up, NULL);
		return;
	}
	wbuf_free(&w->cur);
	n = mgrconn_ops_send(ops, w->md_sent ? NULL : &W.mc.auth, w->up_send, false);
	w->md_sent = true;
	if (up_batch(w, ops, n, &w->c->t_up, cs_sent) == -1) {
		grpc_call_cancel(w->up, NULL);
		return;
	}
	waiting(w, true);
}

static void
cs_next(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;

	if (!ok) {
		grpc_call_cancel(w->up, NULL);
		return;
	}
	if (c->finishing || w->status_done)
		return;		/* the manager has ended the call */
	if (c->recv == NULL) {
		/* The task is done sending: so are we. */
		grpc_op op;

		mgrconn_ops_send(&op, NULL, NULL, true);
		w->closed = true;
		if (up_batch(w, &op, 1, &c->t_up, cs_sent) == -1)
			grpc_call_cancel(w->up, NULL);
		else
			waiting(w, true);
		return;
	}
	if (cs_take(w) == -1) {
		grpc_call_cancel(w->up, NULL);
		return;
	}
	/* Every message of the stream speaks for the same task. */
	if ((w->f.has_id[0] && !id_equal(w->f.id[0], c->swarm)) ||
	    (w->f.has_id[1] && !id_equal(w->f.id[1], c->task))) {
		call_finish(c, GRPC_STATUS_PERMISSION_DENIED, NULL,
		    "a message of the stream names another task");
		grpc_call_cancel(w->up, NULL);
		return;
	}
	cs_forward(w);
}

static void
cs_go(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;
	grpc_op ops[3];
	struct manta_id node;
	size_t n;

	if (w->kind == W_ADD_RESULT && !need_node(w, &node))
		return;
	if (up_create(w, w->kind == W_ADD_RESULT ? "/node.node_service.Node/AddTaskResult" :
	    "/node.node_service.Node/SetGlobal") == -1)
		return;
	n = mgrconn_ops_recv(ops, &w->rep, MGRCONN_RECV_ALL);
	if (up_batch_or_end(w, ops, n, &c->t_up2, cs_status) == 0)
		cs_forward(w);
}

static void
cs_first(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;

	if (!ok)
		return;
	if (c->recv == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "empty stream");
		return;
	}
	if (cs_take(w) == -1)
		return;
	c->swarm = w->f.id[0];
	c->task = w->f.id[1];
	call_set_audit(c, w->f.tag, NULL);
	call_authorize(c, cs_go);
}

static void
client_stream(struct lcall *c, enum wkind kind)
{
	if (wcall_new(c, kind) == NULL)
		return;
	if (call_recv(c, cs_first) == -1)
		call_finish(c, GRPC_STATUS_INTERNAL, NULL, "unable to read the stream");
}

void
world_add_task_result(struct lcall *c)
{
	client_stream(c, W_ADD_RESULT);
}

void
world_set_global(struct lcall *c)
{
	client_stream(c, W_SET_GLOBAL);
}
