/* evq: hand-offs between a daemon's main loop and its helper threads.
 *
 * An evq carries results from any thread to the main loop: a FIFO behind
 * a mutex plus an eventfd for zmq_poll, so that threads never touch daemon
 * state and the loop applies each item itself (skalibs selfpipe, for
 * threads). An evq_worker runs jobs from the main loop on one thread of
 * its own, one at a time and in order, so that blocking calls never stall
 * the loop.
 *
 * Both queue the daemon's own structs without copying them: each has a
 * `T *next` member, named by offset in struct evq_ops, which the queue
 * owns while the item is queued. Items and jobs are freed with ops->free
 * when dropped or left over. */
#ifndef MANTA_EVQ_H
#define MANTA_EVQ_H

#include <stdbool.h>
#include <stddef.h>

struct evq_ops {
	size_t next;			/* offsetof(T, next), a T * */
	void (*free)(void *item);
	/* evq only, optional: items it returns true for may be dropped (and
	 * counted) while max_items of them or max_bytes (*bytes each) wait;
	 * the others are always taken. */
	bool (*bounded)(const void *item, size_t *bytes);
	size_t max_items;
	size_t max_bytes;
};
#define EVQ_OPS(type, member, free_fn) \
	{ offsetof(type, member), (free_fn), NULL, 0, 0 }

/* ---- to the main loop ---- */
struct evq;
/* NULL (errno set) on failure. ops must outlive the queue. */
struct evq *evq_new(const struct evq_ops *ops);
/* Frees what is still queued. */
void evq_free(struct evq *q);
/* Readable while items wait. */
int evq_fd(const struct evq *q);
/* Appends item (taking it) and wakes the main loop; any thread. A bounded
 * item over the bounds is freed and counted instead. */
void evq_push(struct evq *q, void *item);
/* Everything queued, oldest first, linked by next; main loop only. When
 * dropped is not NULL it gets the count of items dropped since the last
 * call. */
void *evq_take(struct evq *q, unsigned *dropped);
/* evq_take, then apply(arg, item) and ops->free for each. Returns the
 * count of items dropped since the last take. */
unsigned evq_run(struct evq *q, void (*apply)(void *arg, void *item),
    void *arg);

/* ---- to one helper thread ---- */
struct evq_worker;
typedef void evq_job_fn(struct evq_worker *w, void *job, void *arg);
/* Starts a thread that calls run(w, job, arg) for each job posted, then
 * ops->free(job). name is for the logs. NULL (logged) on failure. */
struct evq_worker *evq_worker_start(const char *name,
    const struct evq_ops *ops, evq_job_fn *run, void *arg);
/* Takes job. -1 (job freed) when limit jobs or more wait already. */
int evq_worker_post(struct evq_worker *w, void *job, size_t limit);
/* For a job that retries: waits up to ms, unless the worker is stopping.
 * false when it is: give up the job. Worker thread only. */
bool evq_worker_nap(struct evq_worker *w, int ms);
/* Lets the job in progress finish (evq_worker_nap returns false), frees
 * those not started and joins. Returns how many were not started. */
size_t evq_worker_stop(struct evq_worker *w);

#endif
