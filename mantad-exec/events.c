/* events: what the helper threads hand to the main loop, through the queue
 * of libcommon/evq.h. The threads never touch daemon state; the main loop
 * applies each event itself. */
#include <stdlib.h>

#include "exec.h"

static void
free_item(void *item)
{
	event_free(item);
}

/* Every event is small and must arrive: the queue is not bounded. */
const struct evq_ops event_ops = EVQ_OPS(struct event, next, free_item);

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
