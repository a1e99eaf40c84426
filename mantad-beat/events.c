/* events: what paho's and the workers' threads hand to the main loop,
 * through the queue of libcommon/evq.h. The threads never touch daemon
 * state; the main loop applies each event itself. */
#include <stdlib.h>

#include "beat.h"

/* Bounds on commands waiting for the main loop: a flood from the broker
 * must not eat the node's memory. Only messages are dropped (and reported
 * to the manager, main.c); completions are small and must all arrive. The
 * main loop takes them all at each wake-up, and a burst the broker sends
 * faster than that waits in session.c's backlog, not here. */
#define EVQ_MAX_MESSAGES CMD_BACKLOG_MAX
#define EVQ_MAX_BYTES ((size_t)IPC_MAX_MSG * 4)

static bool
droppable(const void *item, size_t *bytes)
{
	const struct event *ev = item;

	*bytes = ev->len;
	return ev->type == EV_MESSAGE;
}

/* Called for an item evq_push drops (on the pushing thread) and for
 * every item the main loop is done with. */
static void
free_item(void *item)
{
	struct event *ev = item;

	if (ev->type == EV_MESSAGE)
		mq_forget_dropped(ev->seq);
	event_free(item);
}

const struct evq_ops event_ops = {
	.next = offsetof(struct event, next),
	.free = free_item,
	.bounded = droppable,
	.max_items = EVQ_MAX_MESSAGES,
	.max_bytes = EVQ_MAX_BYTES,
};

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
