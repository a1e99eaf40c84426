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
 * the task gets UNAVAILABLE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/status.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "light.h"
#include "log.h"
#include "secret.h"
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
	grpc_metadata_array imd, tmd;
	grpc_status_code status;
	grpc_slice details;
	grpc_byte_buffer *up_send;	/* to the manager, in flight */
	grpc_byte_buffer *up_recv;	/* from the manager */
	bool md_sent, status_done, eof, down_busy, closed;
	ProtobufCMessage *req;
	struct wbuf cur;		/* client stream: the message in hand */
	struct wfields f;
	long long wait_until;		/* 0: not waiting on the manager */
	struct wcall *prev, *next;
};

static struct {
	grpc_channel *ch;
	char *target;
	grpc_metadata auth;
	char *state_dir;
	struct manta_id node;
	bool have_node;
	struct wcall *list;
} W;

/* ---- the channel ---- */

static char *
slurp(const char *dir, const char *name, size_t max)
{
	char path[4096], *buf = NULL;
	long len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "re")) == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && (size_t)len <= max &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = calloc(1, (size_t)len + 1)) != NULL &&
	    fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* node.key.sbox, opened with the cfg's key (cfg_load checked that it
 * opens), or node.key: in locked memory that secret_free wipes. Before the
 * seccomp filter (sodium_malloc locks and guards pages). */
static char *
read_key(const struct manta_cfg *c, const char *dir)
{
	char path[4096], why[700], *pem;

	if (secret_pick(dir, "node.key", path, sizeof(path)) == -1)
		return NULL;
	if ((pem = secret_file_read(c->secret_key, path, NULL, why, sizeof(why))) == NULL)
		log_warnx("unable to read the client key: %s", why);
	return pem;
}

/* As mantad-register's: TLS with use_tls (cert_folder's ca.crt, node.crt,
 * node.key) or port 443; plaintext otherwise. */
static grpc_channel_credentials *
make_creds(const struct manta_cfg *c)
{
	grpc_channel_credentials *creds;
	char dir[4096], *ca = NULL, *crt = NULL, *key = NULL;
	const char *home = getenv("HOME");

	if (!c->use_tls && c->manager_port != 443)
		return grpc_insecure_credentials_create();
	if (c->use_tls && c->cert_folder != NULL) {
		if (c->cert_folder[0] == '~' && home != NULL)
			snprintf(dir, sizeof(dir), "%s%s", home, c->cert_folder + 1);
		else
			snprintf(dir, sizeof(dir), "%s", c->cert_folder);
		ca = slurp(dir, "ca.crt", 1 << 20);
		crt = slurp(dir, "node.crt", 1 << 20);
		key = read_key(c, dir);
		if (crt == NULL || key == NULL) {
			free(crt);
			secret_free(key);
			crt = key = NULL;
		}
	}
	if (c->use_tls && !c->verify_ssl) {
		grpc_tls_credentials_options *o = grpc_tls_credentials_options_create();
		grpc_tls_identity_pairs *pairs = NULL;
		grpc_tls_certificate_verifier *ver;

		log_warnx("security.verify_ssl = false: the manager's certificate is not checked");
		if (crt != NULL) {
			pairs = grpc_tls_identity_pairs_create();
			grpc_tls_identity_pairs_add_pair(pairs, key, crt);
		}
		if (ca != NULL || pairs != NULL) {
			grpc_tls_certificate_provider *prov =
			    grpc_tls_certificate_provider_static_data_create(ca, pairs);

			grpc_tls_credentials_options_set_certificate_provider(o, prov);
			if (ca != NULL)
				grpc_tls_credentials_options_watch_root_certs(o);
			if (pairs != NULL)
				grpc_tls_credentials_options_watch_identity_key_cert_pairs(o);
			grpc_tls_certificate_provider_release(prov);
		}
		grpc_tls_credentials_options_set_verify_server_cert(o, 0);
		grpc_tls_credentials_options_set_check_call_host(o, 0);
		ver = grpc_tls_certificate_verifier_no_op_create();
		grpc_tls_credentials_options_set_certificate_verifier(o, ver);
		creds = grpc_tls_credentials_create(o);
		grpc_tls_certificate_verifier_release(ver);
	} else {
		grpc_ssl_pem_key_cert_pair pair = { key, crt };

		creds = grpc_ssl_credentials_create(ca, crt ? &pair : NULL, NULL, NULL);
	}
	free(ca);
	free(crt);
	secret_free(key);	/* wiped; libgrpc keeps its own copy */
	return creds;
}

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
	/* No message size cap (WIRE.md section 2), keepalive and windows as
	 * the reference's channel, short reconnect backoff, no retries: the
	 * task decides whether to try again. */
	grpc_arg args[] = {
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = -1 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = -1 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = 30000 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 20000 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, .value.integer = 500 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, .value.integer = 500 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, .value.integer = 2000 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ENABLE_RETRIES, .value.integer = 0 },
		{ .type = GRPC_ARG_STRING, .key = GRPC_ARG_PRIMARY_USER_AGENT_STRING,
		  .value.string = "manta-node/" PROG },
	};
	grpc_channel_args cargs = { sizeof(args) / sizeof(args[0]), args };
	grpc_channel_credentials *creds;
	size_t len = strlen(c->manager_host) + 16;

	if ((W.target = malloc(len)) == NULL || (W.state_dir = strdup(c->state_dir)) == NULL)
		return -1;
	if (strchr(c->manager_host, ':') != NULL && c->manager_host[0] != '[')
		snprintf(W.target, len, "[%s]:%d", c->manager_host, c->manager_port);
	else
		snprintf(W.target, len, "%s:%d", c->manager_host, c->manager_port);
	if ((creds = make_creds(c)) == NULL) {
		log_warnx("unable to set up credentials for the manager");
		return -1;
	}
	W.ch = grpc_channel_create(W.target, creds, &cargs);
	grpc_channel_credentials_release(creds);
	if (W.ch == NULL)
		return -1;
	W.auth.key = grpc_slice_from_static_string("authorization");
	W.auth.value = grpc_slice_from_copied_string(c->secured_token);
	if (!grpc_header_nonbin_value_is_legal(W.auth.value))
		log_warnx("identity.secured_token is not a valid header value: World calls will fail");
	if (load_node_id() != 1)
		log_warnx("no node identity in %s yet (mantad-register writes it)", c->state_dir);
	return 0;
}

void
world_close(void)
{
	if (W.ch != NULL)
		grpc_channel_destroy(W.ch);
	W.ch = NULL;
	if (W.target != NULL) {
		grpc_slice_unref(W.auth.value);
		free(W.target);
		W.target = NULL;
	}
	free(W.state_dir);
	W.state_dir = NULL;
}

const char *
world_target(void)
{
	return W.target ? W.target : "";
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
	grpc_metadata_array_destroy(&w->imd);
	grpc_metadata_array_destroy(&w->tmd);
	grpc_slice_unref(w->details);
	if (w->up_send != NULL)
		grpc_byte_buffer_destroy(w->up_send);
	if (w->up_recv != NULL)
		grpc_byte_buffer_destroy(w->up_recv);
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
	grpc_metadata_array_init(&w->imd);
	grpc_metadata_array_init(&w->tmd);
	w->details = grpc_empty_slice();
	w->status = GRPC_STATUS_UNKNOWN;
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

static int
up_create(struct wcall *w, const char *method)
{
	grpc_slice m = grpc_slice_from_static_string(method);

	w->up = grpc_channel_create_call(W.ch, call_parent(w->c), GRPC_PROPAGATE_DEFAULTS,
	    server_cq(), m, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
	grpc_slice_unref(m);
	if (w->up == NULL) {
		call_finish(w->c, GRPC_STATUS_INTERNAL, NULL, "unable to call the manager");
		return -1;
	}
	return 0;
}

/* Ends the task's call with what the manager said. */
static void
relay_status(struct wcall *w, grpc_byte_buffer *last)
{
	char *d;

	if (w->status == GRPC_STATUS_OK) {
		call_finish(w->c, GRPC_STATUS_OK, last, NULL);
		return;
	}
	if (last != NULL)
		grpc_byte_buffer_destroy(last);
	d = grpc_slice_to_c_string(w->details);
	call_finish(w->c, w->status, NULL, "manager: %s", d[0] ? d : "call failed");
	gpr_free(d);
}

static bool
need_node(struct wcall *w, struct manta_id *node)
{
	if (world_node_id(node) == 1)
		return true;
	call_finish(w->c, GRPC_STATUS_UNAVAILABLE, NULL, "the node has no identity yet");
	return false;
}

/* ---- unary: StopSwarm, ScheduleTask ---- */

static void
unary_done(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;
	grpc_byte_buffer *bb = w->up_recv;

	waiting(w, false);
	w->up_recv = NULL;
	if (w->status == GRPC_STATUS_OK && bb == NULL) {
		w->status = GRPC_STATUS_INTERNAL;
		grpc_slice_unref(w->details);
		w->details = grpc_slice_from_static_string("no answer message");
	}
	relay_status(w, bb);
}

static void
unary_start(struct wcall *w, const char *method, grpc_byte_buffer *bb)
{
	grpc_op ops[6];

	if (bb == NULL) {
		call_finish(w->c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, "out of memory");
		return;
	}
	if (up_create(w, method) == -1) {
		grpc_byte_buffer_destroy(bb);
		return;
	}
	w->up_send = bb;
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = 1;
	ops[0].data.send_initial_metadata.metadata = &W.auth;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &w->imd;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &w->up_recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &w->tmd;
	ops[5].data.recv_status_on_client.status = &w->status;
	ops[5].data.recv_status_on_client.status_details = &w->details;
	if (up_batch(w, ops, 6, &w->c->t_up, unary_done) == -1) {
		call_finish(w->c, GRPC_STATUS_INTERNAL, NULL, "unable to call the manager");
		return;
	}
	waiting(w, true);
}

static void
stop_go(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;
	Common__Tasks__TaskUpdate tu = COMMON__TASKS__TASK_UPDATE__INIT;
	Common__System__PairId sw = COMMON__SYSTEM__PAIR_ID__INIT, tk = COMMON__SYSTEM__PAIR_ID__INIT,
	    nd = COMMON__SYSTEM__PAIR_ID__INIT;
	struct manta_id node;

	if (!need_node(w, &node))
		return;
	/* The task's current TaskUpdate (WIRE.md section 7): it is running. */
	id_to_pair(c->swarm, &sw);
	id_to_pair(c->task, &tk);
	id_to_pair(node, &nd);
	tu.swarm_id = &sw;
	tu.task_id = &tk;
	tu.node_id = &nd;
	tu.iteration = c->who.iteration;
	tu.circular = c->who.circular;
	tu.task_status = COMMON__TASKS__TASK_STATUS__RUNNING;
	unary_start(w, "/node.node_service.Node/StopSwarm", wire_pack(&tu.base));
}

void
world_stop_swarm(struct lcall *c)
{
	Common__System__EnvId *r;
	struct wcall *w;
	char err[256];

	if ((w = wcall_new(c, W_STOP)) == NULL)
		return;
	r = (Common__System__EnvId *)wire_unpack(c->payload, &common__system__env_id__descriptor,
	    LIGHT_REQ_MAX, err, sizeof(err));
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "%s", err);
		return;
	}
	w->req = &r->base;
	c->swarm = id_from_pair(r->swarm_id);
	c->task = id_from_pair(r->task_id);
	call_authorize(c, stop_go);
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
	struct wcall *w;
	char err[256];

	if ((w = wcall_new(c, W_SCHEDULE)) == NULL)
		return;
	r = (Common__Tasks__TaskScheduling *)wire_unpack(c->payload,
	    &common__tasks__task_scheduling__descriptor, LIGHT_REQ_MAX, err, sizeof(err));
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "%s", err);
		return;
	}
	w->req = &r->base;
	/* The scheduling task names itself; the one to start is by alias. */
	c->swarm = id_from_pair(r->swarm_id);
	c->task = id_from_pair(r->task_id);
	call_set_audit(c, r->task_to_schedule_alias, NULL);
	call_authorize(c, schedule_go);
}

/* ---- server streams: GetTaskResult, GetGlobal ---- */

static void ss_recv(struct wcall *w);

static void
ss_maybe_finish(struct wcall *w)
{
	if (!w->status_done || w->down_busy)
		return;
	if (w->status == GRPC_STATUS_OK && !w->eof)
		return;
	relay_status(w, NULL);
}

static void
ss_status(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;

	w->status_done = true;
	waiting(w, false);
	ss_maybe_finish(w);
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
	if (w->status_done && w->status != GRPC_STATUS_OK)
		ss_maybe_finish(w);
	else
		ss_recv(w);
}

static void
ss_msg(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;
	grpc_byte_buffer *bb = w->up_recv;

	w->up_recv = NULL;
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
	size_t n = 0;

	memset(ops, 0, sizeof(ops));
	if (!w->md_sent) {
		/* The first read takes the initial metadata with it. */
		ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
		ops[n++].data.recv_initial_metadata.recv_initial_metadata = &w->imd;
		w->md_sent = true;
	}
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n++].data.recv_message.recv_message = &w->up_recv;
	if (up_batch(w, ops, n, &w->c->t_up3, ss_msg) == -1) {
		grpc_call_cancel(w->up, NULL);
		return;
	}
	waiting(w, true);
}

static void
ss_req_sent(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;

	if (w->up_send != NULL)
		grpc_byte_buffer_destroy(w->up_send);
	w->up_send = NULL;
}

static void
ss_start(struct wcall *w, const char *method, grpc_byte_buffer *bb)
{
	grpc_op ops[3];

	if (bb == NULL) {
		call_finish(w->c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, "out of memory");
		return;
	}
	if (up_create(w, method) == -1) {
		grpc_byte_buffer_destroy(bb);
		return;
	}
	w->up_send = bb;
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = 1;
	ops[0].data.send_initial_metadata.metadata = &W.auth;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	if (up_batch(w, ops, 3, &w->c->t_up, ss_req_sent) == -1) {
		grpc_call_cancel(w->up, NULL);
		call_finish(w->c, GRPC_STATUS_INTERNAL, NULL, "unable to call the manager");
		return;
	}
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &w->tmd;
	ops[0].data.recv_status_on_client.status = &w->status;
	ops[0].data.recv_status_on_client.status_details = &w->details;
	if (up_batch(w, ops, 1, &w->c->t_up2, ss_status) == -1) {
		grpc_call_cancel(w->up, NULL);
		call_finish(w->c, GRPC_STATUS_INTERNAL, NULL, "unable to call the manager");
		return;
	}
	ss_recv(w);
}

static void
get_result_go(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;
	const Node__LightService__LightResultQuery *r = (const void *)w->req;
	Common__Results__ResultQuery q = COMMON__RESULTS__RESULT_QUERY__INIT;
	Common__System__PairId sw = COMMON__SYSTEM__PAIR_ID__INIT, tk = COMMON__SYSTEM__PAIR_ID__INIT,
	    nd = COMMON__SYSTEM__PAIR_ID__INIT;
	struct manta_id node;

	if (!need_node(w, &node))
		return;
	id_to_pair(c->swarm, &sw);
	id_to_pair(c->task, &tk);
	id_to_pair(node, &nd);
	q.swarm_id = &sw;
	q.task_id = &tk;
	q.node_id = &nd;
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
	struct wcall *w;
	char err[256];

	if ((w = wcall_new(c, W_GET_RESULT)) == NULL)
		return;
	r = (Node__LightService__LightResultQuery *)wire_unpack(c->payload,
	    &node__light_service__light_result_query__descriptor, LIGHT_REQ_MAX, err, sizeof(err));
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "%s", err);
		return;
	}
	w->req = &r->base;
	c->swarm = id_from_pair(r->swarm_id);
	c->task = id_from_pair(r->task_id);
	call_set_audit(c, r->tag, NULL);
	call_authorize(c, get_result_go);
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
	struct wcall *w;
	char err[256];

	if ((w = wcall_new(c, W_GET_GLOBAL)) == NULL)
		return;
	r = (Node__LightService__GetGlobalRequest *)wire_unpack(c->payload,
	    &node__light_service__get_global_request__descriptor, LIGHT_REQ_MAX, err, sizeof(err));
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "%s", err);
		return;
	}
	w->req = &r->base;
	c->swarm = id_from_pair(r->swarm_id);
	c->task = id_from_pair(r->task_id);
	call_set_audit(c, r->tag, NULL);
	call_authorize(c, get_global_go);
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
	struct wcall *w = c->st;
	grpc_byte_buffer *bb = w->up_recv;

	w->status_done = true;
	waiting(w, false);
	w->up_recv = NULL;
	if (w->status == GRPC_STATUS_OK && bb == NULL) {
		w->status = GRPC_STATUS_INTERNAL;
		grpc_slice_unref(w->details);
		w->details = grpc_slice_from_static_string("no answer message");
	}
	relay_status(w, bb);
}

static void
cs_sent(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;

	if (w->up_send != NULL)
		grpc_byte_buffer_destroy(w->up_send);
	w->up_send = NULL;
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
	size_t n = 0;

	if ((w->up_send = cs_rewrite(w)) == NULL) {
		if (!w->c->finishing)
			call_finish(w->c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL,
			    "unable to build the message for the manager");
		grpc_call_cancel(w->up, NULL);
		return;
	}
	wbuf_free(&w->cur);
	memset(ops, 0, sizeof(ops));
	if (!w->md_sent) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		ops[n].data.send_initial_metadata.count = 1;
		ops[n++].data.send_initial_metadata.metadata = &W.auth;
		w->md_sent = true;
	}
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n++].data.send_message.send_message = w->up_send;
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

		memset(&op, 0, sizeof(op));
		op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
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

	if (w->kind == W_ADD_RESULT && !need_node(w, &node))
		return;
	if (up_create(w, w->kind == W_ADD_RESULT ? "/node.node_service.Node/AddTaskResult" :
	    "/node.node_service.Node/SetGlobal") == -1)
		return;
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[0].data.recv_initial_metadata.recv_initial_metadata = &w->imd;
	ops[1].op = GRPC_OP_RECV_MESSAGE;
	ops[1].data.recv_message.recv_message = &w->up_recv;
	ops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[2].data.recv_status_on_client.trailing_metadata = &w->tmd;
	ops[2].data.recv_status_on_client.status = &w->status;
	ops[2].data.recv_status_on_client.status_details = &w->details;
	if (up_batch(w, ops, 3, &c->t_up2, cs_status) == -1) {
		grpc_call_cancel(w->up, NULL);
		call_finish(c, GRPC_STATUS_INTERNAL, NULL, "unable to call the manager");
		return;
	}
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
