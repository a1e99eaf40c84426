/* ipc_validate: the semantic checks of every IPC message type, one function
 * per type. protobuf-c only refuses malformed bytes; lengths, ranges and
 * character sets are checked here, before any daemon acts on a message. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ipc.h"

#define ERR(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

#define MAX_NAME 64
#define MAX_TOPIC 1024
#define MAX_TOPICS 64
#define MAX_TEXT 4096
#define MAX_HOST 255
#define MAX_GPUS 64
#define MAX_DAEMONS 16

static int
text_ok(const char *s, size_t max)
{
	size_t n;

	if (s == NULL)
		return 1;
	n = strnlen(s, max + 1);
	if (n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
			return 0;
	return 1;
}

static int
v_reply(const Manta__Ipc__Reply *r, char *err, size_t errlen)
{
	if (!text_ok(r->error, MAX_TEXT))
		ERR("reply: error text too long or with control bytes");
	return 0;
}

static int
v_gpus(size_t n, Common__Informations__GpuDevice **g, char *err, size_t errlen)
{
	if (n > MAX_GPUS)
		ERR("too many gpus: %zu", n);
	for (size_t i = 0; i < n; i++)
		if (!text_ok(g[i]->name, MAX_TEXT) || !text_ok(g[i]->uuid, MAX_TEXT))
			ERR("gpu %zu: bad name or uuid", i);
	return 0;
}

/* Issue 14's latency histograms: absent, or one count per bucket plus
 * +Inf over increasing bounds. */
static bool
hist_ok(const Manta__Ipc__Histogram *h)
{
	if (h == NULL)
		return true;
	if (h->n_bounds_us > 64 || h->n_counts != h->n_bounds_us + 1)
		return false;
	for (size_t i = 1; i < h->n_bounds_us; i++)
		if (h->bounds_us[i] <= h->bounds_us[i - 1])
			return false;
	return true;
}

static int
v_status(const Manta__Ipc__StatusReply *s, char *err, size_t errlen)
{
	if (s->supervisor) {
		if (s->supervisor->n_daemons > MAX_DAEMONS)
			ERR("status: too many daemons");
		for (size_t i = 0; i < s->supervisor->n_daemons; i++) {
			const Manta__Ipc__DaemonState *d = s->supervisor->daemons[i];
			if (!text_ok(d->name, MAX_NAME) || !text_ok(d->state, MAX_NAME))
				ERR("status: bad daemon entry %zu", i);
		}
	}
	if (s->register_) {
		const Manta__Ipc__RegisterStatus *r = s->register_;

		if (!text_ok(r->node_id, 32) || !text_ok(r->alias, MAX_TEXT) ||
		    !text_ok(r->manager_host, MAX_HOST) || r->manager_port > 65535 ||
		    !text_ok(r->link, MAX_NAME) || !text_ok(r->broker, MAX_HOST + 8) ||
		    !text_ok(r->cpu_model, MAX_TEXT))
			ERR("status: bad register part");
		if (v_gpus(r->n_gpus, r->gpus, err, errlen) == -1)
			return -1;
	}
	if (s->beat && !text_ok(s->beat->broker, MAX_HOST + 8))
		ERR("status: bad broker");
	if ((s->beat && !hist_ok(s->beat->heartbeat_latency)) ||
	    (s->exec && !hist_ok(s->exec->launch_latency)))
		ERR("status: bad histogram");
	if (s->res && v_gpus(s->res->n_gpus, s->res->gpus, err, errlen) == -1)
		return -1;
	return 0;
}

static int
v_capacity(const Manta__Ipc__Capacity *c, char *err, size_t errlen)
{
	if (!text_ok(c->cpu_model, MAX_TEXT))
		ERR("capacity: bad cpu model");
	return v_gpus(c->n_gpus, c->gpus, err, errlen);
}

static int
v_command(const Manta__Ipc__Command *c, char *err, size_t errlen)
{
	static const char *const names[] = {
		"deploy_task", "stop_task", "stop_swarm", "stop_node", "collect_information",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (c->name && strcmp(c->name, names[i]) == 0)
			break;
	if (i == sizeof(names) / sizeof(names[0]))
		ERR("command: unknown name");
	if (!text_ok(c->topic, MAX_TOPIC))
		ERR("command: bad topic");
	if (!text_ok(c->handoff, MAX_NAME))
		ERR("command: bad handoff");
	return 0;
}

static int
v_publish(const Manta__Ipc__Publish *p, char *err, size_t errlen)
{
	if (p->topic == NULL || p->topic[0] == '\0' || !text_ok(p->topic, MAX_TOPIC) ||
	    strpbrk(p->topic, "+#") != NULL)
		ERR("publish: bad topic");
	if (p->qos > 1)
		ERR("publish: qos %u not supported", p->qos);
	if (!text_ok(p->key, MAX_TEXT))
		ERR("publish: bad key");
	return 0;
}

static int
v_registration(const Manta__Ipc__RegistrationNotice *r, char *err, size_t errlen)
{
	if (r->broker_host == NULL || r->broker_host[0] == '\0' ||
	    !text_ok(r->broker_host, MAX_HOST))
		ERR("registration: bad broker host");
	if (r->broker_port == 0 || r->broker_port > 65535)
		ERR("registration: bad broker port %u", r->broker_port);
	if (r->n_topics > MAX_TOPICS)
		ERR("registration: too many topics");
	for (size_t i = 0; i < r->n_topics; i++)
		if (r->topics[i][0] == '\0' || !text_ok(r->topics[i], MAX_TOPIC))
			ERR("registration: bad topic %zu", i);
	return 0;
}

static int
v_report_error(const Manta__Ipc__ReportError *r, char *err, size_t errlen)
{
	if (r->error == NULL)
		ERR("report_error: no error");
	if (strnlen(r->error->content, MAX_TEXT + 1) > MAX_TEXT)
		ERR("report_error: content too long");
	if (r->error->error_id > 25)
		ERR("report_error: unknown error_id %u", r->error->error_id);
	return 0;
}

static int
hex32_ok(const char *s)
{
	if (s == NULL || strlen(s) != 32)
		return 0;
	return strspn(s, "0123456789abcdef") == 32;
}

static int
v_tasks(const Manta__Ipc__TaskList *t, char *err, size_t errlen)
{
	if (t->n_tasks > 100000)
		ERR("tasks: too many");
	for (size_t i = 0; i < t->n_tasks; i++) {
		const Manta__Ipc__TaskInfo *x = t->tasks[i];
		if (!hex32_ok(x->swarm_id) || !hex32_ok(x->task_id) || !text_ok(x->status, MAX_NAME) ||
		    !text_ok(x->image, MAX_TEXT) || !text_ok(x->started_at, MAX_NAME) ||
		    !text_ok(x->finished_at, MAX_NAME) || !text_ok(x->reason, MAX_TEXT))
			ERR("tasks: bad entry %zu", i);
	}
	return 0;
}

static int
v_logs_req(const Manta__Ipc__LogsRequest *l, char *err, size_t errlen)
{
	if (!hex32_ok(l->task_id))
		ERR("logs: task id must be 32 lowercase hex digits");
	return 0;
}

static int
v_task_logs(const Manta__Ipc__TaskLogs *l, char *err, size_t errlen)
{
	if (l->swarm_id == NULL || l->task_id == NULL)
		ERR("task_logs: ids missing");
	if (l->content.len < 52)
		ERR("task_logs: content shorter than the 52-byte header");
	if (l->key == NULL || l->key[0] == '\0' || !text_ok(l->key, MAX_TEXT))
		ERR("task_logs: bad key");
	return 0;
}

static int
v_task_lookup(const Manta__Ipc__TaskLookup *l, char *err, size_t errlen)
{
	if (!text_ok(l->token, 256))
		ERR("task_lookup: bad token");
	if ((l->token == NULL || l->token[0] == '\0') && (l->swarm_id == NULL || l->task_id == NULL))
		ERR("task_lookup: neither token nor ids");
	return 0;
}

int
ipc_validate(const ipc_msg *m, char *err, size_t errlen)
{
	switch (m->body_case) {
	case MANTA__IPC__MSG__BODY_REPLY:
		return v_reply(m->reply, err, errlen);
	case MANTA__IPC__MSG__BODY_STATUS:
		return v_status(m->status, err, errlen);
	case MANTA__IPC__MSG__BODY_CAPACITY:
		return v_capacity(m->capacity, err, errlen);
	case MANTA__IPC__MSG__BODY_COMMAND:
		return v_command(m->command, err, errlen);
	case MANTA__IPC__MSG__BODY_PUBLISH:
		return v_publish(m->publish, err, errlen);
	case MANTA__IPC__MSG__BODY_REGISTRATION:
		return v_registration(m->registration, err, errlen);
	case MANTA__IPC__MSG__BODY_REPORT_ERROR:
		return v_report_error(m->report_error, err, errlen);
	case MANTA__IPC__MSG__BODY_TASKS:
		return v_tasks(m->tasks, err, errlen);
	case MANTA__IPC__MSG__BODY_LOGS_REQ:
		return v_logs_req(m->logs_req, err, errlen);
	case MANTA__IPC__MSG__BODY_TASK_LOGS:
		return v_task_logs(m->task_logs, err, errlen);
	case MANTA__IPC__MSG__BODY_TASK_LOOKUP:
		return v_task_lookup(m->task_lookup, err, errlen);
	case MANTA__IPC__MSG__BODY_TASKS_REQ:
	case MANTA__IPC__MSG__BODY_LOGS:
	case MANTA__IPC__MSG__BODY_DRAIN:
	case MANTA__IPC__MSG__BODY_TASK_IDENTITY:
	case MANTA__IPC__MSG__BODY_STATUS_REQ:
	case MANTA__IPC__MSG__BODY_SNAPSHOT_REQ:
	case MANTA__IPC__MSG__BODY_SNAPSHOT:
	case MANTA__IPC__MSG__BODY_CAPACITY_REQ:
	case MANTA__IPC__MSG__BODY_REGISTRATION_REQ:
	case MANTA__IPC__MSG__BODY_SHUTDOWN:
		return 0;	/* no fields to check (numbers only, any value is valid) */
	case MANTA__IPC__MSG__BODY__NOT_SET:
	default:
		ERR("message with no body");
	}
}
