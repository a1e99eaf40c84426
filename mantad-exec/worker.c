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
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct item *head, *tail;
	bool stop;
	char *run_dir;
	char *dest;
	struct evq *q;
};

static void
cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

/* Waits up to ms unless stopped; lock held. */
static void
nap(pthread_cond_t *c, pthread_mutex_t *m, const bool *stop, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (!*stop && pthread_cond_timedwait(c, m, &ts) != ETIMEDOUT)
		;
}

static void
item_free(struct item *it)
{
	if (it != NULL) {
		free(it->msg);
		free(it);
	}
}

/* 1 acknowledged, 0 refused, -1 no answer, -2 refused for now (the peer's
 * outbox is full: IPC_CODE_BUSY). */
static int
deliver(struct sender *s, const struct item *it)
{
	char err[256];
	ipc_msg *m, *reply = NULL;
	int rc;

	if ((m = ipc_msg_decode(it->msg, it->len, err, sizeof(err))) == NULL) {
		log_warnx("outbox row %lld does not decode (%s): dropped",
		    (long long)it->seq, err);
		return 0;
	}
	if (ipc_call(s->run_dir, s->dest, m, &reply, CALL_MS) == -1)
		rc = -1;
	else if (reply->body_case == MANTA__IPC__MSG__BODY_REPLY &&
	    reply->reply->code == IPC_CODE_BUSY)
		rc = -2;
	else if (reply->body_case == MANTA__IPC__MSG__BODY_REPLY &&
	    reply->reply->code != 0) {
		log_warnx("%s refused outbox row %lld: %s", s->dest,
		    (long long)it->seq, reply->reply->error);
		rc = 0;
	} else
		rc = 1;
	ipc_msg_free(reply);
	ipc_msg_free(m);
	return rc;
}

static void *
sender_main(void *arg)
{
	struct sender *s = arg;
	int backoff = BACKOFF_MIN_MS, refusals = 0;
	bool warned = false;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct item *it;
		struct event *ev;
		int rc;

		while (!s->stop && s->head == NULL)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->stop)
			break;
		it = s->head;
		pthread_mutex_unlock(&s->lock);
		rc = deliver(s, it);
		pthread_mutex_lock(&s->lock);
		if (rc < 0) {
			if (!warned && rc == -1)
				log_warnx("no answer from %s: retrying (what is"
				    " not delivered stays in exec.db)", s->dest);
			else if (!warned)
				log_warnx("%s has no room for outbox row %lld:"
				    " retrying (it stays in exec.db)", s->dest,
				    (long long)it->seq);
			warned = true;
			nap(&s->cond, &s->lock, &s->stop, backoff);
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
			    backoff * 2;
			continue;
		}
		if (warned)
			log_info("%s answers again", s->dest);
		warned = false;
		backoff = BACKOFF_MIN_MS;
		if (rc == 0 && ++refusals < REFUSALS_MAX) {
			nap(&s->cond, &s->lock, &s->stop, BACKOFF_MAX_MS / 5);
			continue;
		}
		if (rc == 0)
			log_warnx("%s refused outbox row %lld %d times: giving"
			    " it up", s->dest, (long long)it->seq, refusals);
		refusals = 0;
		s->head = it->next;
		if (s->head == NULL)
			s->tail = NULL;
		if ((ev = event_new(rc == 1 ? EV_ACKED : EV_DROPPED)) != NULL) {
			ev->seq = it->seq;
			evq_push(s->q, ev);
		}
		item_free(it);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

struct sender *
sender_start(const char *run_dir, const char *dest, struct evq *q)
{
	struct sender *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->run_dir = strdup(run_dir);
	s->dest = strdup(dest);
	s->q = q;
	pthread_mutex_init(&s->lock, NULL);
	cond_init_mono(&s->cond);
	if (s->run_dir == NULL || s->dest == NULL ||
	    pthread_create(&s->th, NULL, sender_main, s) != 0) {
		log_warnx("unable to start the sender to %s", dest);
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->cond);
		free(s->run_dir);
		free(s->dest);
		free(s);
		return NULL;
	}
	return s;
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
	pthread_mutex_lock(&s->lock);
	if (s->tail != NULL)
		s->tail->next = it;
	else
		s->head = it;
	s->tail = it;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void
sender_stop(struct sender *s)
{
	struct item *it, *next;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->th, NULL);
	/* What is left stays in exec.db for the next start. */
	for (it = s->head; it != NULL; it = next) {
		next = it->next;
		item_free(it);
	}
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s->run_dir);
	free(s->dest);
	free(s);
}

/* ---- the job thread ---- */

struct jobs {
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, *tail;
	bool stop;
	char *run_dir;
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
do_frame(struct jobs *js, struct job *j)
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
do_capacity(struct jobs *js)
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
do_shutdown(struct jobs *js)
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

static void *
jobs_main(void *arg)
{
	struct jobs *js = arg;

	for (;;) {
		struct job *j;

		pthread_mutex_lock(&js->lock);
		while (!js->stop && js->head == NULL)
			pthread_cond_wait(&js->cond, &js->lock);
		if (js->stop) {
			pthread_mutex_unlock(&js->lock);
			break;
		}
		j = js->head;
		js->head = j->next;
		if (js->head == NULL)
			js->tail = NULL;
		pthread_mutex_unlock(&js->lock);
		switch (j->type) {
		case JOB_FRAME:
			do_frame(js, j);
			break;
		case JOB_CAPACITY:
			do_capacity(js);
			break;
		case JOB_SHUTDOWN:
			do_shutdown(js);
			break;
		}
		job_free(j);
	}
	return NULL;
}

struct jobs *
jobs_start(const char *run_dir, struct evq *q)
{
	struct jobs *js;

	if ((js = calloc(1, sizeof(*js))) == NULL)
		return NULL;
	js->q = q;
	pthread_mutex_init(&js->lock, NULL);
	pthread_cond_init(&js->cond, NULL);
	if ((js->run_dir = strdup(run_dir)) == NULL ||
	    pthread_create(&js->th, NULL, jobs_main, js) != 0) {
		log_warnx("unable to start the job thread");
		pthread_mutex_destroy(&js->lock);
		pthread_cond_destroy(&js->cond);
		free(js->run_dir);
		free(js);
		return NULL;
	}
	return js;
}

int
jobs_post(struct jobs *js, struct job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&js->lock);
	if (js->tail != NULL)
		js->tail->next = j;
	else
		js->head = j;
	js->tail = j;
	pthread_cond_signal(&js->cond);
	pthread_mutex_unlock(&js->lock);
	return 0;
}

void
jobs_stop(struct jobs *js)
{
	struct job *j, *next;

	if (js == NULL)
		return;
	pthread_mutex_lock(&js->lock);
	js->stop = true;
	pthread_cond_signal(&js->cond);
	pthread_mutex_unlock(&js->lock);
	pthread_join(js->th, NULL);
	for (j = js->head; j != NULL; j = next) {
		next = j->next;
		job_free(j);
	}
	pthread_mutex_destroy(&js->lock);
	pthread_cond_destroy(&js->cond);
	free(js->run_dir);
	free(js);
}
