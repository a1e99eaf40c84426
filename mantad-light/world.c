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
 * channel cannot connect (refused, unreachable). There is no deadline on a
 * call (the reference has none, and a 200 MB global over a slow link takes
 * what it takes); what is bounded is the absence of progress. While a call
 * waits on the manager, the bytes its connection has received and had
 * acknowledged (TCP_INFO of the socket libgrpc opened to the call's peer)
 * are sampled every second; when fewer than PROGRESS_MIN bytes moved in
 * network.light_stall_timeout seconds, or the link went silent, the call
 * is cancelled and the task gets UNAVAILABLE. A message completing counts
 * as progress too. The sample is per connection: calls sharing it with a
 * call that moves keep waiting. The channel and its credentials are
 * libcommon's mgrconn, as mantad-register's. */
#include <sys/resource.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/tcp.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* Progress: how often the manager's sockets are sampled, and how many
 * bytes make progress (more than the keepalive pings of a silent peer:
 * 17-byte frames, one per 30 s each way, plus TLS records). */
#define CHECK_MS	1000
#define PROGRESS_MIN	4096

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
	long long wait_since;		/* 0: not waiting on the manager */
	long long mark_ms;		/* last progress seen */
	unsigned long long mark_bytes;	/* the peer's byte count then */
	bool have_mark;			/* mark_bytes sampled */
	struct sockaddr_storage peer;	/* the manager's socket, once known */
	socklen_t peerlen;		/* 0: not known (yet) */
	struct wcall *prev, *next;
};

/* One socket of ours to a peer, as last sampled. */
struct psock {
	struct sockaddr_storage peer;
	socklen_t peerlen;
	unsigned long long bytes;	/* received + acknowledged */
};

static struct {
	struct mgrconn mc;
	char *state_dir;
	struct manta_id node;
	bool have_node;
	struct wcall *list;
	long long stall_ms;		/* 0: no bound */
	long long next_check;
	int maxfd;			/* RLIMIT_NOFILE, read before the sandbox */
	struct pollfd *pfd;
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
	 * 20 s): 5 s. */
	bool tls = c->use_tls || c->manager_port == 443;
	const struct mgrconn_opts o = { .prog = PROG, .connect_ms = tls ? 5000 : 500,
	    .max_recv = c->light_max_message_mb > 0 ? c->light_max_message_mb << 20 : 0 };
	struct rlimit rl;

	/* The descriptors sampled for progress: all that may be open. */
	W.stall_ms = (long long)c->light_stall_timeout * 1000;
	W.maxfd = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		W.maxfd = rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
	if ((W.pfd = calloc((size_t)W.maxfd, sizeof(*W.pfd))) == NULL)
		return -1;
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
	free(W.pfd);
	W.pfd = NULL;
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

/* Waiting on the manager starts (on) or ends. Each start is progress:
 * the message before it completed. */
static void
waiting(struct wcall *w, bool on)
{
	if (!on) {
		w->wait_since = 0;
		return;
	}
	w->wait_since = w->mark_ms = light_now_ms();
	w->have_mark = false;
}

/* "ipv4:10.0.0.1:50051", "ipv6:[::1]:50051" (or with %5B/%5D), as
 * grpc_call_get_peer writes it. 0, or -1 when it names no address. */
static int
parse_peer(const char *p, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *colon;
	char *end;
	long port;
	size_t n;
	bool v6 = strncmp(p, "ipv6:", 5) == 0;

	if (!v6 && strncmp(p, "ipv4:", 5) != 0)
		return -1;
	p += 5;
	if ((colon = strrchr(p, ':')) == NULL)
		return -1;
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port <= 0 || port > 65535)
		return -1;
	if (v6) {
		if (strncmp(p, "%5B", 3) == 0 || strncmp(p, "%5b", 3) == 0)
			p += 3;
		else if (*p == '[')
			p++;
		if (colon - p >= 3 && strncasecmp(colon - 3, "%5D", 3) == 0)
			n = (size_t)(colon - 3 - p);
		else if (colon > p && colon[-1] == ']')
			n = (size_t)(colon - 1 - p);
		else
			return -1;
	} else
		n = (size_t)(colon - p);
	if (n == 0 || n >= sizeof(host))
		return -1;
	memcpy(host, p, n);
	host[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -1;
		*len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -1;
		*len = sizeof(*a);
	}
	return 0;
}

/* An IPv4 address as libgrpc's dual-stack sockets hold it, ::ffff:a.b.c.d,
 * back to AF_INET. */
static void
unmap_v4(struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *a = (const void *)ss;
	struct sockaddr_in v4;

	if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
		return;
	memset(&v4, 0, sizeof(v4));
	v4.sin_family = AF_INET;
	v4.sin_port = a->sin6_port;
	memcpy(&v4.sin_addr, &a->sin6_addr.s6_addr[12], 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &v4, sizeof(v4));
}

static bool
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		    memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

/* Our TCP sockets with their peers and byte counts: one poll() tells the
 * open descriptors, getsockopt and getpeername the rest. The caller frees
 * *out. Returns how many, or -1. */
static int
sample_sockets(struct psock **out)
{
	struct psock *v = NULL;
	int n = 0, cap = 0;

	*out = NULL;
	for (int fd = 0; fd < W.maxfd; fd++) {
		W.pfd[fd].fd = fd;
		W.pfd[fd].events = 0;
		W.pfd[fd].revents = 0;
	}
	if (poll(W.pfd, (nfds_t)W.maxfd, 0) == -1)
		return -1;
	for (int fd = 0; fd < W.maxfd; fd++) {
		struct tcp_info ti;
		socklen_t tl = sizeof(ti), dl;
		int dom;

		if (W.pfd[fd].revents & POLLNVAL)
			continue;
		dl = sizeof(dom);
		if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &dl) == -1 ||
		    (dom != AF_INET && dom != AF_INET6))
			continue;
		memset(&ti, 0, sizeof(ti));
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == -1)
			continue;
		if (n == cap) {
			struct psock *nv = reallocarray(v, (size_t)(cap ? cap * 2 : 16), sizeof(*v));

			if (nv == NULL) {
				free(v);
				return -1;
			}
			v = nv;
			cap = cap ? cap * 2 : 16;
		}
		v[n].peerlen = sizeof(v[n].peer);
		if (getpeername(fd, (struct sockaddr *)&v[n].peer, &v[n].peerlen) == -1)
			continue;
		unmap_v4(&v[n].peer);
		v[n].bytes = ti.tcpi_bytes_received + ti.tcpi_bytes_acked;
		n++;
	}
	*out = v;
	return n;
}

/* Bytes moved so far on the sockets to w's peer; false when unknown. */
static bool
peer_bytes(struct wcall *w, const struct psock *v, int n, unsigned long long *bytes)
{
	bool found = false;

	if (w->peerlen == 0 && w->up != NULL) {
		char *p = grpc_call_get_peer(w->up);

		if (p != NULL && parse_peer(p, &w->peer, &w->peerlen) == -1)
			w->peerlen = 0;
		unmap_v4(&w->peer);
		gpr_free(p);
	}
	if (w->peerlen == 0)
		return false;
	*bytes = 0;
	for (int i = 0; i < n; i++)
		if (same_addr(&v[i].peer, &w->peer)) {
			*bytes += v[i].bytes;
			found = true;
		}
	return found;
}

long long
world_sweep(long long now)
{
	struct psock *v;
	bool any = false;
	int n;

	if (W.stall_ms <= 0)
		return -1;
	for (struct wcall *w = W.list; w != NULL && !any; w = w->next)
		any = w->wait_since != 0;
	if (!any)
		return -1;
	if (now < W.next_check)
		return W.next_check;
	W.next_check = now + CHECK_MS;
	if ((n = sample_sockets(&v)) == -1)
		n = 0;
	for (struct wcall *w = W.list; w != NULL; w = w->next) {
		unsigned long long b;

		if (w->wait_since == 0)
			continue;
		if (peer_bytes(w, v, n, &b)) {
			if (!w->have_mark) {
				w->have_mark = true;
				w->mark_bytes = b;
			} else if (b < w->mark_bytes || b - w->mark_bytes >= PROGRESS_MIN) {
				w->mark_bytes = b;
				w->mark_ms = now;
			}
		}
		if (now - w->mark_ms < W.stall_ms)
			continue;
		w->wait_since = 0;
		if (w->up != NULL) {
			char why[128];

			snprintf(why, sizeof(why), "no data moved to or from the manager for %lld s"
			    " (network.light_stall_timeout)", W.stall_ms / 1000);
			grpc_call_cancel_with_status(w->up, GRPC_STATUS_UNAVAILABLE, why, NULL);
		}
	}
	free(v);
	return W.next_check;
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

/* ResultQuery for the manager, written here rather than by protobuf-c:
 * the SDK's "all results" is size = -1 (int32), which the reference's
 * encoder writes into the uint32 field as any negative integer, sign
 * extended to 64 bits: a 10-byte varint of 2^64 - 1 (WIRE.md section 7).
 * Fields in number order, defaults left out, as both encoders do. */
static grpc_byte_buffer *
result_query(struct lcall *c, const Node__LightService__LightResultQuery *r,
    struct manta_id node)
{
	struct wout o;

	wout_init(&o);
	wout_pair(&o, 1, c->swarm);
	wout_pair(&o, 2, c->task);
	wout_pair(&o, 3, node);
	wout_varint_field(&o, 4, c->who.iteration);
	wout_string(&o, 5, r->tag, strlen(r->tag));
	wout_varint_field(&o, 6, (uint64_t)(int64_t)r->size);
	wout_varint_field(&o, 7, (uint64_t)(int64_t)r->method);
	return wout_finish(&o);
}

static void
get_result_go(struct lcall *c, bool ok)
{
	struct wcall *w = c->st;
	const Node__LightService__LightResultQuery *r = (const void *)w->req;
	struct manta_id node;

	if (!need_node(w, &node))
		return;
	ss_start(w, "/node.node_service.Node/GetTaskResult", result_query(c, r, node));
}

void
world_get_task_result(struct lcall *c)
{
	Node__LightService__LightResultQuery *r;

	if ((r = take_request(c, W_GET_RESULT,
	    &node__light_service__light_result_query__descriptor)) == NULL)
		return;
	if (strlen(r->tag) > LIGHT_TAG_MAX) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "tag longer than %d bytes",
		    LIGHT_TAG_MAX);
		return;
	}
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
