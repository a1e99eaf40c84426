/* worker: the threads that block so the main loop never does.
 *
 * A sender delivers the rows of exec.db's outbox to one daemon (beat or
 * register), strictly in order, each until that daemon acknowledges it:
 * the daemon stores before it answers, so an acknowledged row can go.
 * Unanswered calls are retried forever with backoff (the peer may be
 * restarting); a row the peer refuses many times is dropped, because a
 * refusal will not change.
 *
 * The job thread frames logs (zlib at level 9 takes a while on 10 MiB),
 * asks mantad-res for capacity and the supervisor for a shutdown. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#include "exec.h"

#define CALL_MS		2000
#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	5000
#define REFUSALS_MAX	20

struct item {
	struct item *next;
	int64_t seq;
	uint8_t *msg;
	size_t len;
};

struct sender {
	struct evq_worker *th;
	const char *run_dir;	/* borrowed, as is dest */
	const char *dest;
	struct evq *q;
	/* the sender's thread only */
	int backoff;
	bool warned;
};

static void
item_free(void *p)
{
	struct item *it = p;

	if (it != NULL) {
		free(it->msg);
		free(it);
	}
}

static const struct evq_ops item_ops = EVQ_OPS(struct item, next, item_free);

/* What became of one attempt to deliver a row. */
enum delivery {
	DLV_ACKED,		/* the peer stored it */
	DLV_REFUSED,		/* the peer refused it (or it does not decode) */
	DLV_NO_ANSWER,		/* no answer within CALL_MS */
	DLV_BUSY,		/* refused for now: the peer's outbox is full
				 * (IPC_CODE_BUSY) */
};

/* What became of a row after all attempts. */
enum delivered {
	DLVD_ACKED,		/* the peer stored it */
	DLVD_GIVEN_UP,		/* refused REFUSALS_MAX times */
	DLVD_STOPPED,		/* the sender was stopped meanwhile */
};

static enum delivery
deliver(struct sender *s, const struct item *it)
{
	char err[256];
	ipc_msg *m, *reply = NULL;
	enum delivery rc;

	if ((m = ipc_msg_decode(it->msg, it->len, err, sizeof(err))) == NULL) {
		log_warnx("outbox row %lld does not decode (%s): dropped",
		    (long long)it->seq, err);
		return DLV_REFUSED;
	}
	if (ipc_call(s->run_dir, s->dest, m, &reply, CALL_MS) == -1)
		rc = DLV_NO_ANSWER;
	else if (reply->body_case == MANTA__IPC__MSG__BODY_REPLY &&
	    reply->reply->code == IPC_CODE_BUSY)
		rc = DLV_BUSY;
	else if (reply->body_case == MANTA__IPC__MSG__BODY_REPLY &&
	    reply->reply->code != 0) {
		log_warnx("%s refused outbox row %lld: %s", s->dest,
		    (long long)it->seq, reply->reply->error);
		rc = DLV_REFUSED;
	} else
		rc = DLV_ACKED;
	ipc_msg_free(reply);
	ipc_msg_free(m);
	return rc;
}

/* Warns once per outage that the row waits; naps with backoff. False when
 * the sender was stopped meanwhile. */
static bool
deliver_wait(struct evq_worker *th, struct sender *s, const struct item *it,
    bool answered)
{
	if (!s->warned && !answered)
		log_warnx("no answer from %s: retrying (what is"
		    " not delivered stays in exec.db)", s->dest);
	else if (!s->warned)
		log_warnx("%s has no room for outbox row %lld:"
		    " retrying (it stays in exec.db)", s->dest,
		    (long long)it->seq);
	s->warned = true;
	if (!evq_worker_nap(th, s->backoff))
		return false;
	s->backoff = s->backoff * 2 > BACKOFF_MAX_MS ?
	    BACKOFF_MAX_MS : s->backoff * 2;
	return true;
}

/* The peer answered: the outage, if any, is over. */
static void
deliver_answered(struct sender *s)
{
	if (s->warned)
		log_info("%s answers again", s->dest);
	s->warned = false;
	s->backoff = BACKOFF_MIN_MS;
}

static enum delivered
deliver_until(struct evq_worker *th, struct sender *s, const struct item *it)
{
	int refusals = 0;

	for (;;) {
		switch (deliver(s, it)) {
		case DLV_NO_ANSWER:
			if (!deliver_wait(th, s, it, false))
				return DLVD_STOPPED;
			continue;
		case DLV_BUSY:
			if (!deliver_wait(th, s, it, true))
				return DLVD_STOPPED;
			continue;
		case DLV_ACKED:
			deliver_answered(s);
			return DLVD_ACKED;
		case DLV_REFUSED:
			deliver_answered(s);
			break;
		}
		if (++refusals == REFUSALS_MAX)
			return DLVD_GIVEN_UP;
		if (!evq_worker_nap(th, BACKOFF_MAX_MS / 5))
			return DLVD_STOPPED;
	}
}

static void
send_item(struct evq_worker *th, void *job, void *arg)
{
	struct sender *s = arg;
	const struct item *it = job;
	struct event *ev;
	enum ev_type type = EV_ACKED;

	switch (deliver_until(th, s, it)) {
	case DLVD_STOPPED:
		/* What is left stays in exec.db for the next start. */
		return;
	case DLVD_GIVEN_UP:
		log_warnx("%s refused outbox row %lld %d times: giving it up",
		    s->dest, (long long)it->seq, REFUSALS_MAX);
		type = EV_DROPPED;
		break;
	case DLVD_ACKED:
		break;
	}
	if ((ev = event_new(type)) != NULL) {
		ev->seq = it->seq;
		evq_push(s->q, ev);
	}
}

struct sender *
sender_start(const char *run_dir, const char *dest, struct evq *q)
{
	struct sender *s;

	if ((s = malloc(sizeof(*s))) == NULL) {
		log_warnx("unable to start the sender to %s: out of memory",
		    dest);
		return NULL;
	}
	*s = (struct sender){ .run_dir = run_dir, .dest = dest, .q = q,
	    .backoff = BACKOFF_MIN_MS };
	if ((s->th = evq_worker_start(dest, &item_ops, send_item, s)) != NULL)
		return s;
	free(s);
	return NULL;
}

int
sender_post(struct sender *s, int64_t seq, const uint8_t *msg, size_t len)
{
	struct item *it;

	if ((it = calloc(1, sizeof(*it))) == NULL ||
	    (it->msg = malloc(len ? len : 1)) == NULL) {
		free(it);
		log_warnx("out of memory: outbox row %lld waits for a restart",
		    (long long)seq);
		return -1;
	}
	memcpy(it->msg, msg, len);
	it->len = len;
	it->seq = seq;
	return evq_worker_post(s->th, it, SIZE_MAX);
}

void
sender_stop(struct sender *s)
{
	if (s == NULL)
		return;
	(void)evq_worker_stop(s->th);
	free(s);
}

/* ---- the job thread ---- */

struct jobs {
	struct evq_worker *th;
	const char *run_dir;	/* borrowed */
	struct evq *q;
};

struct job *
job_new(enum job_type type)
{
	struct job *j;

	if ((j = calloc(1, sizeof(*j))) != NULL)
		j->type = type;
	return j;
}

void
job_free(struct job *j)
{
	if (j != NULL) {
		free(j->path);
		free(j);
	}
}

static void
do_frame(struct jobs *js, const struct job *j)
{
	struct event *ev;
	uint64_t upto = j->from;
	size_t len = 0;
	uint8_t *frame;

	frame = logs_frame(j->header, j->path, j->from, j->final ? 0 : CHUNK_MAX,
	    &len, &upto);
	if ((ev = event_new(frame ? EV_FRAME : EV_FRAME_FAILED)) == NULL) {
		free(frame);
		return;
	}
	ev->run_id = j->run_id;
	ev->data = frame;
	ev->len = len;
	ev->upto = upto;
	ev->final = j->final;
	evq_push(js->q, ev);
}

static void
do_capacity(struct jobs *js, const struct job *j)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__CapacityRequest cr = MANTA__IPC__CAPACITY_REQUEST__INIT;
	ipc_msg *reply = NULL;
	struct event *ev;

	m.body_case = MANTA__IPC__MSG__BODY_CAPACITY_REQ;
	m.capacity_req = &cr;
	if (ipc_call(js->run_dir, IPC_RES, &m, &reply, 1000) == -1)
		return;
	if (reply->body_case == MANTA__IPC__MSG__BODY_CAPACITY &&
	    (ev = event_new(EV_CAPACITY)) != NULL) {
		ev->cpus = reply->capacity->cpu_count;
		ev->mem = reply->capacity->mem_total_bytes;
		evq_push(js->q, ev);
	}
	ipc_msg_free(reply);
}

static void
do_shutdown(struct jobs *js, const struct job *j)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__Shutdown sd = MANTA__IPC__SHUTDOWN__INIT;
	struct event *ev;

	m.body_case = MANTA__IPC__MSG__BODY_SHUTDOWN;
	m.shutdown = &sd;
	if ((ev = event_new(EV_SHUTDOWN)) == NULL)
		return;
	ev->code = ipc_call_ok(js->run_dir, IPC_SUPERVISE, &m, CALL_MS);
	evq_push(js->q, ev);
}

static void (*const do_job[])(struct jobs *, const struct job *) = {
	[JOB_FRAME] = do_frame,
	[JOB_CAPACITY] = do_capacity,
	[JOB_SHUTDOWN] = do_shutdown,
};

static void
run_job(struct evq_worker *th, void *job, void *arg)
{
	const struct job *j = job;

	do_job[j->type](arg, j);
}

static void
free_job(void *job)
{
	job_free(job);
}

static const struct evq_ops job_ops = EVQ_OPS(struct job, next, free_job);

struct jobs *
jobs_start(const char *run_dir, struct evq *q)
{
	struct jobs *js;

	if ((js = calloc(1, sizeof(*js))) == NULL) {
		log_warnx("unable to start the job thread: out of memory");
		return NULL;
	}
	js->run_dir = run_dir;
	js->q = q;
	if ((js->th = evq_worker_start("jobs", &job_ops, run_job, js)) == NULL) {
		free(js);
		js = NULL;
	}
	return js;
}

int
jobs_post(struct jobs *js, struct job *j)
{
	return evq_worker_post(js->th, j, SIZE_MAX);
}

void
jobs_stop(struct jobs *js)
{
	if (js == NULL)
		return;
	(void)evq_worker_stop(js->th);
	free(js);
}
