/* logs: TaskLogs from mantad-exec, the IPC side of AddTaskLogs. Each
 * TaskLogs is one framed message (WIRE.md section 8: a 52-byte header of
 * little-endian swarm, node and task ids, iteration and circular as uint16,
 * then zlib). It is checked against the message's own ids, stored in the
 * outbox of register.db and only then acknowledged; link.c sends it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "register.h"

#define HDR_LEN 52

static uint64_t
le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void
put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)(v & 0xff);
}

static uint16_t
le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

enum logs_accept
logs_accept(sqlite3 *db, struct manta_id node, const Manta__Ipc__TaskLogs *tl,
    char *err, size_t errlen)
{
	struct manta_id swarm = id_from_pair(tl->swarm_id), task = id_from_pair(tl->task_id);
	struct manta_id hswarm, hnode, htask;
	char swarm_hex[ID_HEX_LEN + 1], task_hex[ID_HEX_LEN + 1], hex[ID_HEX_LEN + 1];
	const uint8_t *c = tl->content.data;
	uint8_t *copy = NULL;
	struct logrow r;
	struct timespec now;
	int rc;

	/* ipc_validate checked ids present, the 52 bytes and the key. */
	hswarm.head = le64(c);
	hswarm.tail = le64(c + 8);
	hnode.head = le64(c + 16);
	hnode.tail = le64(c + 24);
	htask.head = le64(c + 32);
	htask.tail = le64(c + 40);
	if (!id_equal(hswarm, swarm) || !id_equal(htask, task)) {
		snprintf(err, errlen, "task_logs: the frame's header names another task");
		return LOGS_REFUSED;
	}
	if (le16(c + 48) != (tl->iteration & 0xffff) || le16(c + 50) != (tl->circular & 0xffff)) {
		snprintf(err, errlen, "task_logs: the frame's header names another round");
		return LOGS_REFUSED;
	}
	if (!id_is_zero(hnode) && !id_equal(hnode, node)) {
		id_to_hex(hnode, hex);
		snprintf(err, errlen, "task_logs: the frame names node %s, not this one", hex);
		return LOGS_REFUSED;
	}
	if (id_is_zero(hnode)) {
		/* exec may not know the node id: it is ours to fill in. */
		if ((copy = malloc(tl->content.len)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return LOGS_REFUSED;
		}
		memcpy(copy, c, tl->content.len);
		put_le64(copy + 16, node.head);
		put_le64(copy + 24, node.tail);
		c = copy;
	}
	id_to_hex(swarm, swarm_hex);
	id_to_hex(task, task_hex);
	clock_gettime(CLOCK_REALTIME, &now);
	memset(&r, 0, sizeof(r));
	r.key = tl->key;
	r.swarm_id = swarm_hex;
	r.task_id = task_hex;
	r.iteration = tl->iteration;
	r.circular = tl->circular;
	r.created_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	r.content = (uint8_t *)(uintptr_t)c;
	r.len = tl->content.len;
	rc = store_logs_add(db, &r, LOGS_OUTBOX_MAX, err, errlen);
	free(copy);
	if (rc == -1)
		return LOGS_BUSY;	/* full, or the database: not the frame's fault */
	if (rc == 0) {
		log_debug("task %s: logs %s already queued or sent", task_hex, tl->key);
		return LOGS_DUPLICATE;
	}
	log_debug("task %s: %zu bytes of logs queued for the manager (%s)", task_hex,
	    r.len, tl->key);
	return LOGS_STORED;
}
