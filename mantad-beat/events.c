/* events: the one way from paho's and the workers' threads into the main
 * loop. A mutex-protected FIFO plus an eventfd that zmq_poll watches; the
 * threads never touch daemon state, the main loop drains the queue and
 * applies each event itself. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

#include "beat.h"

/* Bounds on commands waiting for the main loop: a flood from the broker
 * must not eat the node's memory. Only messages are dropped; completions
 * are small and must all arrive. */
#define EVQ_MAX_MESSAGES 1000
#define EVQ_MAX_BYTES ((size_t)IPC_MAX_MSG * 4)

struct evq {
	pthread_mutex_t lock;
	struct event *head, *tail;
	size_t messages;
	size_t bytes;
	unsigned dropped;
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
	if (ev->type == EV_MESSAGE) {
		if (q->messages >= EVQ_MAX_MESSAGES ||
		    q->bytes + ev->len > EVQ_MAX_BYTES) {
			q->dropped++;
			pthread_mutex_unlock(&q->lock);
			event_free(ev);
			return;
		}
		q->messages++;
		q->bytes += ev->len;
	}
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
evq_take(struct evq *q, unsigned *dropped)
{
	struct event *list;
	uint64_t n;

	while (read(q->fd, &n, sizeof(n)) == -1 && errno == EINTR)
		;
	pthread_mutex_lock(&q->lock);
	list = q->head;
	q->head = q->tail = NULL;
	q->messages = 0;
	q->bytes = 0;
	*dropped = q->dropped;
	q->dropped = 0;
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
	free(ev->topic);
	free(ev->data);
	free(ev->text);
	if (ev->msg != NULL)
		ipc_msg_free(ev->msg);
	free(ev);
}
