/* evq: the FIFOs between a daemon's main loop and its helper threads. One
 * list core serves both directions; only the wake-up differs (an eventfd
 * for zmq_poll, a condition variable for a worker). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "evq.h"
#include "log.h"

struct fifo {
	const struct evq_ops *ops;
	void *head, *tail;
	size_t n;
};

/* The next member is a T * of the caller's type: copied as bytes, so that
 * no T * is ever read through a void * lvalue. */
static void *
next_of(const struct evq_ops *ops, const void *item)
{
	void *next;

	memcpy(&next, (const char *)item + ops->next, sizeof(next));
	return next;
}

static void
set_next(const struct evq_ops *ops, void *item, void *next)
{
	memcpy((char *)item + ops->next, &next, sizeof(next));
}

static void
fifo_append(struct fifo *f, void *item)
{
	set_next(f->ops, item, NULL);
	if (f->tail != NULL)
		set_next(f->ops, f->tail, item);
	else
		f->head = item;
	f->tail = item;
	f->n++;
}

static void *
fifo_pop(struct fifo *f)
{
	void *item = f->head;

	if (item == NULL)
		return NULL;
	if ((f->head = next_of(f->ops, item)) == NULL)
		f->tail = NULL;
	f->n--;
	return item;
}

static void
fifo_clear(struct fifo *f)
{
	void *item;

	while ((item = fifo_pop(f)) != NULL)
		f->ops->free(item);
}

/* ---- to the main loop ---- */

struct evq {
	pthread_mutex_t lock;
	struct fifo f;
	size_t bounded;		/* items of f counted against the bounds */
	size_t bytes;
	unsigned dropped;
	int fd;
};

struct evq *
evq_new(const struct evq_ops *ops)
{
	struct evq *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	if ((q->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		free(q);
		return NULL;
	}
	q->f.ops = ops;
	pthread_mutex_init(&q->lock, NULL);
	return q;
}

void
evq_free(struct evq *q)
{
	if (q == NULL)
		return;
	fifo_clear(&q->f);
	close(q->fd);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

int
evq_fd(const struct evq *q)
{
	return q->fd;
}

void
evq_push(struct evq *q, void *item)
{
	const struct evq_ops *ops = q->f.ops;
	uint64_t one = 1;
	size_t bytes = 0;

	pthread_mutex_lock(&q->lock);
	if (ops->bounded != NULL && ops->bounded(item, &bytes)) {
		if (q->bounded >= ops->max_items ||
		    bytes > ops->max_bytes - q->bytes) {
			q->dropped++;
			pthread_mutex_unlock(&q->lock);
			ops->free(item);
			return;
		}
		q->bounded++;
		q->bytes += bytes;
	}
	fifo_append(&q->f, item);
	pthread_mutex_unlock(&q->lock);
	/* Only fails when the counter would overflow: it is nonzero then. */
	while (write(q->fd, &one, sizeof(one)) == -1 && errno == EINTR)
		;
}

void *
evq_take(struct evq *q, unsigned *dropped)
{
	void *list;
	uint64_t n;

	while (read(q->fd, &n, sizeof(n)) == -1 && errno == EINTR)
		;
	pthread_mutex_lock(&q->lock);
	list = q->f.head;
	q->f.head = q->f.tail = NULL;
	q->f.n = 0;
	q->bounded = 0;
	q->bytes = 0;
	if (dropped != NULL)
		*dropped = q->dropped;
	q->dropped = 0;
	pthread_mutex_unlock(&q->lock);
	return list;
}

unsigned
evq_run(struct evq *q, void (*apply)(void *arg, void *item), void *arg)
{
	void *item, *next;
	unsigned dropped;

	for (item = evq_take(q, &dropped); item != NULL; item = next) {
		next = next_of(q->f.ops, item);
		apply(arg, item);
		q->f.ops->free(item);
	}
	return dropped;
}

/* ---- to one helper thread ---- */

struct evq_worker {
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* on CLOCK_MONOTONIC, for naps */
	struct fifo jobs;
	bool stop;
	evq_job_fn *run;
	void *arg;
};

static void *
worker_main(void *arg)
{
	struct evq_worker *w = arg;
	void *job;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->stop && w->jobs.head == NULL)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->stop)
			break;
		job = fifo_pop(&w->jobs);
		pthread_mutex_unlock(&w->lock);
		w->run(w, job, w->arg);
		w->jobs.ops->free(job);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Frees the jobs not started too. */
static void
worker_free(struct evq_worker *w)
{
	fifo_clear(&w->jobs);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}

struct evq_worker *
evq_worker_start(const char *name, const struct evq_ops *ops,
    evq_job_fn *run, void *arg)
{
	struct evq_worker *w;
	pthread_condattr_t ca;
	int rc;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		log_warnx("unable to start a thread (%s): out of memory", name);
		return NULL;
	}
	w->jobs.ops = ops;
	w->run = run;
	w->arg = arg;
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	if ((rc = pthread_create(&w->th, NULL, worker_main, w)) != 0) {
		log_warnx("unable to start a thread (%s): %s", name,
		    strerror(rc));
		worker_free(w);
		return NULL;
	}
	return w;
}

int
evq_worker_post(struct evq_worker *w, void *job, size_t limit)
{
	pthread_mutex_lock(&w->lock);
	if (w->jobs.n >= limit) {
		pthread_mutex_unlock(&w->lock);
		w->jobs.ops->free(job);
		return -1;
	}
	fifo_append(&w->jobs, job);
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

bool
evq_worker_nap(struct evq_worker *w, int ms)
{
	struct timespec ts;
	bool go_on;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->lock);
	/* A post signals too: only the deadline or a stop ends the nap. */
	while (!w->stop && pthread_cond_timedwait(&w->cond, &w->lock, &ts) !=
	    ETIMEDOUT)
		;
	go_on = !w->stop;
	pthread_mutex_unlock(&w->lock);
	return go_on;
}

size_t
evq_worker_stop(struct evq_worker *w)
{
	size_t left;

	if (w == NULL)
		return 0;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->th, NULL);
	left = w->jobs.n;
	worker_free(w);
	return left;
}
