/* dispatch: MQTT command topic -> Command for another daemon (WIRE.md
 * section 5). The payload is decoded here only to refuse garbage early and
 * to name the task in error reports; the owner decodes it again. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"

#include "dispatch.h"

static const struct {
	const char *name;
	enum beat_cmd cmd;
	const char *dest;
} commands[] = {
	{ "deploy_task", CMD_DEPLOY_TASK, "exec" },
	{ "stop_task", CMD_STOP_TASK, "exec" },
	{ "stop_swarm", CMD_STOP_SWARM, "exec" },
	{ "stop_node", CMD_STOP_NODE, "exec" },
	{ "collect_information", CMD_COLLECT_INFORMATION, "register" },
};

const char *
dispatch_last_segment(const char *topic, size_t len, size_t *seglen)
{
	size_t i = len;

	while (i > 0 && topic[i - 1] != '/')
		i--;
	*seglen = len - i;
	return topic + i;
}

enum beat_cmd
dispatch_lookup(const char *seg, size_t seglen)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strlen(commands[i].name) == seglen &&
		    memcmp(commands[i].name, seg, seglen) == 0)
			return commands[i].cmd;
	return CMD_UNKNOWN;
}

bool
dispatch_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else
			return false;
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

bool
dispatch_topic_publishable(const char *topic)
{
	size_t len = strlen(topic);

	if (len == 0 || len > 65535)
		return false;
	if (strpbrk(topic, "+#") != NULL)
		return false;
	return dispatch_utf8_valid((const uint8_t *)topic, len);
}

bool
dispatch_filter_valid(const char *filter)
{
	size_t len = strlen(filter);

	if (len == 0 || len > 65535)
		return false;
	if (!dispatch_utf8_valid((const uint8_t *)filter, len))
		return false;
	for (size_t i = 0; i < len; i++) {
		bool starts = i == 0 || filter[i - 1] == '/';
		bool ends = i + 1 == len || filter[i + 1] == '/';

		if (filter[i] == '+' && !(starts && ends))
			return false;
		if (filter[i] == '#' && !(starts && i + 1 == len))
			return false;
	}
	return true;
}

void
dispatch_printable(char *out, size_t outlen, const char *s, size_t len)
{
	size_t n = 0;

	if (outlen == 0)
		return;
	for (size_t i = 0; i < len && n + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];

		out[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (n + 1 == outlen && len > n && outlen > 4)
		memcpy(out + outlen - 4, "...", 3), n = outlen - 1;
	out[n] = '\0';
}

void
dispatch_client_id(uint64_t head, uint64_t tail, char out[DISPATCH_CLIENT_ID_LEN + 1])
{
	char hex[33];
	const char *p = hex;
	size_t n;

	snprintf(hex, sizeof(hex), "%016llx%016llx", (unsigned long long)head,
	    (unsigned long long)tail);
	while (*p == '0' && p[1] != '\0')
		p++;
	/* Python's f"{n:x}", then "0" + it when len != 32. */
	n = strlen(p);
	if (n < 32)
		*out++ = '0';
	memcpy(out, p, n + 1);
}

static bool
pair_set(const Common__System__PairId *p, uint64_t *head, uint64_t *tail)
{
	if (p == NULL)
		return false;
	*head = p->head;
	*tail = p->tail;
	return p->head != 0 || p->tail != 0;
}

static int refuse(struct dispatch *, uint32_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static int
refuse(struct dispatch *d, uint32_t error_id, const char *fmt, ...)
{
	va_list ap;

	d->dest = NULL;
	d->error_id = error_id;
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
	return -1;
}

static int
check_payload(struct dispatch *d, const uint8_t *p, size_t len)
{
	switch (d->cmd) {
	case CMD_DEPLOY_TASK: {
		Common__Tasks__MqttTask *t;
		bool ok;

		t = common__tasks__mqtt_task__unpack(NULL, len, p);
		if (t == NULL)
			return refuse(d, ERR_ID_MQTT,
			    "%s payload (%zu bytes) is not a common.tasks.MqttTask",
			    d->name, len);
		ok = pair_set(t->swarm_id, &d->swarm_head, &d->swarm_tail);
		ok = pair_set(t->task_id, &d->task_head, &d->task_tail) && ok;
		d->iteration = t->iteration;
		d->circular = t->circular;
		common__tasks__mqtt_task__free_unpacked(t, NULL);
		if (!ok)
			return refuse(d, ERR_ID_MQTT,
			    "%s payload (%zu bytes) lacks swarm_id or task_id",
			    d->name, len);
		return 0;
	}
	case CMD_STOP_TASK: {
		Common__System__EnvId *e;
		bool ok;

		e = common__system__env_id__unpack(NULL, len, p);
		if (e == NULL)
			return refuse(d, ERR_ID_MQTT,
			    "%s payload (%zu bytes) is not a common.system.EnvId",
			    d->name, len);
		ok = pair_set(e->swarm_id, &d->swarm_head, &d->swarm_tail);
		ok = pair_set(e->task_id, &d->task_head, &d->task_tail) && ok;
		common__system__env_id__free_unpacked(e, NULL);
		if (!ok)
			return refuse(d, ERR_ID_MQTT,
			    "%s payload (%zu bytes) lacks swarm_id or task_id",
			    d->name, len);
		return 0;
	}
	case CMD_STOP_SWARM: {
		Common__System__PairId *s;
		bool ok;

		s = common__system__pair_id__unpack(NULL, len, p);
		if (s == NULL)
			return refuse(d, ERR_ID_MQTT,
			    "%s payload (%zu bytes) is not a common.system.PairId",
			    d->name, len);
		ok = pair_set(s, &d->swarm_head, &d->swarm_tail);
		common__system__pair_id__free_unpacked(s, NULL);
		if (!ok)
			return refuse(d, ERR_ID_MQTT,
			    "%s payload (%zu bytes) names swarm 0", d->name, len);
		return 0;
	}
	case CMD_STOP_NODE:
		/* The payload is ignored, as by the reference. */
		return 0;
	case CMD_COLLECT_INFORMATION:
		if (len == 0 || len > DISPATCH_MAX_TEXT ||
		    memchr(p, '\0', len) != NULL || !dispatch_utf8_valid(p, len))
			return refuse(d, ERR_ID_MQTT,
			    "%s payload (%zu bytes) is not a short UTF-8 text",
			    d->name, len);
		return 0;
	case CMD_UNKNOWN:
		break;
	}
	return -1;
}

int
dispatch_classify(const char *topic, size_t topic_len, const uint8_t *payload,
    size_t len, size_t max, struct dispatch *d)
{
	const char *seg;
	size_t seglen;
	char ps[64], pt[128];

	memset(d, 0, sizeof(*d));
	seg = dispatch_last_segment(topic, topic_len, &seglen);
	d->cmd = dispatch_lookup(seg, seglen);
	if (d->cmd == CMD_UNKNOWN) {
		/* The reference's words (WIRE.md section 5), then ours. */
		dispatch_printable(ps, sizeof(ps), seg, seglen);
		dispatch_printable(pt, sizeof(pt), topic, topic_len);
		return refuse(d, ERR_ID_MQTT, "Not allowed method: %s (topic %s)", ps, pt);
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].cmd == d->cmd) {
			d->name = commands[i].name;
			d->dest = commands[i].dest;
		}
	if (len > max)
		return refuse(d, ERR_ID_MQTT,
		    "%s payload too large (%zu bytes)", d->name, len);
	if (payload == NULL && len > 0)
		return refuse(d, ERR_ID_MQTT,
		    "%s payload missing (%zu bytes)", d->name, len);
	return check_payload(d, payload, len);
}
