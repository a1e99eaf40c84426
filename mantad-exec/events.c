/* events: the one way from the helper threads into the main loop. A
 * mutex-protected FIFO plus an eventfd that zmq_poll watches; the threads
 * never touch daemon state, the main loop applies each event itself. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "exec.h"

struct evq {
	pthread_mutex_t lock;
	struct event *head, *tail;
	int fd;
};

struct evq *
evq_new(void)
{
	struct evq *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	if ((q->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->lock, NULL);
	return q;
}

void
evq_free(struct evq *q)
{
	struct event *ev, *next;

	if (q == NULL)
		return;
	for (ev = q->head; ev != NULL; ev = next) {
		next = ev->next;
		event_free(ev);
	}
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
evq_push(struct evq *q, struct event *ev)
{
	uint64_t one = 1;

	ev->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->tail != NULL)
		q->tail->next = ev;
	else
		q->head = ev;
	q->tail = ev;
	pthread_mutex_unlock(&q->lock);
	/* Only fails when the counter would overflow: it is nonzero then. */
	while (write(q->fd, &one, sizeof(one)) == -1 && errno == EINTR)
		;
}

struct event *
evq_take(struct evq *q)
{
	struct event *list;
	uint64_t n;

	while (read(q->fd, &n, sizeof(n)) == -1 && errno == EINTR)
		;
	pthread_mutex_lock(&q->lock);
	list = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->lock);
	return list;
}

struct event *
event_new(enum ev_type type)
{
	struct event *ev;

	if ((ev = calloc(1, sizeof(*ev))) != NULL)
		ev->type = type;
	return ev;
}

void
event_free(struct event *ev)
{
	if (ev == NULL)
		return;
	free(ev->data);
	free(ev);
}
