/* fuzz_mqtt: every MQTT command a broker can hand mantad-beat, on any
 * topic: dispatch_classify (mantad-beat/dispatch.c, as session.c calls
 * it), the protobuf-c unpack of each command payload type (MqttTask for
 * deploy_task, EnvId for stop_task, PairId for stop_swarm), the text of
 * collect_information as mantad-register cleans it (utf8_clean), and the
 * id parsers (libcommon/id.c) on the ids and text those carry.
 *
 * Input: byte 0 picks the case, the rest is the payload.
 *   bits 0-2: 0-4 the command of that index on a node topic, 5 and 7 a
 *             topic read from the input up to its first '\n', 6 id text;
 *   bit 7:    a 64-byte payload limit instead of IPC_MAX_MSG. */
#include <stdbool.h>
#include <string.h>

#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "dispatch.h"
#include "fuzz.h"
#include "id.h"
#include "log.h"
#include "register.h"

#define MAX_PAYLOAD (64 * 1024 * 1024)	/* IPC_MAX_MSG, what session.c passes */

static const char *const cmds[] = {
	"deploy_task", "stop_task", "stop_swarm", "stop_node", "collect_information",
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz_mqtt", LOG_LVL_ERROR);
	return 0;
}

/* Well-formed UTF-8 by the Unicode standard's table 3-7, written apart
 * from the two validators under test. */
static bool
ref_utf8(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i], lo = 0x80, hi = 0xbf;
		size_t k;

		if (c <= 0x7f) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1;
		else if (c == 0xe0)
			k = 2, lo = 0xa0;
		else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
			k = 2;
		else if (c == 0xed)
			k = 2, hi = 0x9f;
		else if (c == 0xf0)
			k = 3, lo = 0x90;
		else if (c >= 0xf1 && c <= 0xf3)
			k = 3;
		else if (c == 0xf4)
			k = 3, hi = 0x8f;
		else
			return false;
		if (n - i - 1 < k || s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t j = 2; j <= k; j++)
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
		i += k + 1;
	}
	return true;
}

static void
check_pair(const Common__System__PairId *p)
{
	struct manta_id id = id_from_pair(p), back;
	char hex[ID_HEX_LEN + 1];

	id_to_hex(id, hex);
	FUZZ_ASSERT(strlen(hex) == ID_HEX_LEN);
	FUZZ_ASSERT(id_parse_hex(hex, &back) == 0 && id_equal(id, back));
	id_from_string(hex, &back);
	FUZZ_ASSERT(id_equal(id, back));
}

/* protobuf-c takes field number 0 written in two bytes ("\x80\x00") and
 * keeps it as an unknown field that it packs again as the single byte 0,
 * which it then refuses (libcommon/ipc.c refuses such IPC messages). A
 * payload is only forwarded as received, never re-packed, so here that is
 * noted, not a failure. */
static bool
has_field_zero(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;

	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return true;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const ProtobufCMessage *sub;

		/* No repeated or oneof message fields in these three types. */
		if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
			continue;
		sub = *(const ProtobufCMessage *const *)(const void *)(base + f->offset);
		if (sub != NULL && has_field_zero(sub))
			return true;
	}
	return false;
}

/* Each payload type as its owner decodes it; what decodes re-encodes to
 * something that decodes to the same. */
static void
unpack_all(const uint8_t *p, size_t len)
{
	Common__Tasks__MqttTask *t;
	Common__System__EnvId *e;
	Common__System__PairId *s;
	uint8_t *buf;
	size_t n;

	if ((t = common__tasks__mqtt_task__unpack(NULL, len, p)) != NULL) {
		check_pair(t->swarm_id);
		check_pair(t->task_id);
		if (has_field_zero(&t->base)) {
			FUZZ_SAY("MqttTask with field number 0: not re-packed\n");
			common__tasks__mqtt_task__free_unpacked(t, NULL);
			t = NULL;
		}
	}
	if (t != NULL) {
		n = common__tasks__mqtt_task__get_packed_size(t);
		FUZZ_ASSERT((buf = malloc(n ? n : 1)) != NULL);
		FUZZ_ASSERT(common__tasks__mqtt_task__pack(t, buf) == n);
		{
			Common__Tasks__MqttTask *t2 = common__tasks__mqtt_task__unpack(NULL, n, buf);

			FUZZ_ASSERT(t2 != NULL);
			FUZZ_ASSERT(t2->iteration == t->iteration && t2->circular == t->circular);
			FUZZ_ASSERT(t2->payload.len == t->payload.len);
			FUZZ_ASSERT(strcmp(t2->image, t->image) == 0);
			common__tasks__mqtt_task__free_unpacked(t2, NULL);
		}
		free(buf);
		common__tasks__mqtt_task__free_unpacked(t, NULL);
	}
	if ((e = common__system__env_id__unpack(NULL, len, p)) != NULL) {
		check_pair(e->swarm_id);
		check_pair(e->task_id);
		common__system__env_id__free_unpacked(e, NULL);
	}
	if ((s = common__system__pair_id__unpack(NULL, len, p)) != NULL) {
		check_pair(s);
		common__system__pair_id__free_unpacked(s, NULL);
	}
}

/* collect_information's text, from beat's check to register's cleaning. */
static void
check_text(const uint8_t *p, size_t len)
{
	size_t max = 200, n = len < max ? len : max;
	char *out = utf8_clean((const char *)p, len, max);
	bool plain = true;

	FUZZ_ASSERT(out != NULL);
	/* One byte out for each byte in: a '?' for each that is refused. */
	FUZZ_ASSERT(strlen(out) == n);
	FUZZ_ASSERT(ref_utf8((const uint8_t *)out, n));
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		FUZZ_ASSERT(c >= 0x20 || c == '\t' || c == '\n');
		if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n')
			plain = false;
	}
	if (plain && ref_utf8(p, n))
		FUZZ_ASSERT(memcmp(out, p, n) == 0);
	free(out);
}

static void
check_ids(const uint8_t *p, size_t len)
{
	char *s = malloc(len + 1), hex[ID_HEX_LEN + 1];
	struct manta_id id, id2;

	FUZZ_ASSERT(s != NULL);
	memcpy(s, p, len);
	s[len] = '\0';
	if (id_parse_hex(s, &id) == 0) {
		FUZZ_ASSERT(strlen(s) == ID_HEX_LEN);
		id_to_hex(id, hex);
		FUZZ_ASSERT(strcasecmp(hex, s) == 0);
		/* 32 hex digits are an id by the WIRE rule too. */
		id_from_string(s, &id2);
		FUZZ_ASSERT(id_equal(id, id2));
	} else {
		size_t n = strlen(s);

		FUZZ_ASSERT(n != ID_HEX_LEN || strspn(s, "0123456789abcdefABCDEF") != n);
	}
	id_from_string(s, &id);
	id_to_hex(id, hex);
	FUZZ_ASSERT(id_parse_hex(hex, &id2) == 0 && id_equal(id, id2));
	free(s);
}

static void
check_dispatch(const char *topic, size_t tlen, const uint8_t *p, size_t len, size_t max)
{
	struct dispatch d;
	const char *seg;
	size_t seglen;
	char pt[160], small[5];
	int rc;

	seg = dispatch_last_segment(topic, tlen, &seglen);
	FUZZ_ASSERT(seg >= topic && seg + seglen == topic + tlen);
	FUZZ_ASSERT(memchr(seg, '/', seglen) == NULL);

	dispatch_printable(pt, sizeof(pt), topic, tlen);
	FUZZ_ASSERT(strlen(pt) < sizeof(pt));
	for (const char *q = pt; *q; q++)
		FUZZ_ASSERT((unsigned char)*q >= 0x20 && *q != 0x7f);
	dispatch_printable(small, sizeof(small), topic, tlen);
	FUZZ_ASSERT(strlen(small) < sizeof(small));

	FUZZ_ASSERT(dispatch_utf8_valid((const uint8_t *)topic, tlen) ==
	    ref_utf8((const uint8_t *)topic, tlen));
	FUZZ_ASSERT(dispatch_utf8_valid(p, len) == ref_utf8(p, len));

	rc = dispatch_classify(topic, tlen, p, len, max, &d);
	FUZZ_SAY("%s: %s\n", rc == 0 ? d.dest : "refused", rc == 0 ? d.name : d.reason);
	FUZZ_ASSERT(memchr(d.reason, '\0', sizeof(d.reason)) != NULL);
	FUZZ_ASSERT(d.cmd == dispatch_lookup(seg, seglen));
	if (rc == 0) {
		FUZZ_ASSERT(d.cmd != CMD_UNKNOWN && d.name != NULL && d.dest != NULL);
		FUZZ_ASSERT(len <= max);
		switch (d.cmd) {
		case CMD_DEPLOY_TASK:
		case CMD_STOP_TASK:
			FUZZ_ASSERT(d.swarm_head || d.swarm_tail);
			FUZZ_ASSERT(d.task_head || d.task_tail);
			break;
		case CMD_STOP_SWARM:
			FUZZ_ASSERT(d.swarm_head || d.swarm_tail);
			break;
		case CMD_COLLECT_INFORMATION:
			FUZZ_ASSERT(len > 0 && len <= DISPATCH_MAX_TEXT);
			FUZZ_ASSERT(memchr(p, '\0', len) == NULL && ref_utf8(p, len));
			break;
		default:
			break;
		}
	} else {
		FUZZ_ASSERT(rc == -1 && d.dest == NULL && d.reason[0] != '\0');
		/* Every refusal is an MQTT error, as the reference's. */
		FUZZ_ASSERT(d.error_id == ERR_ID_MQTT);
		FUZZ_ASSERT(d.cmd != CMD_UNKNOWN ||
		    strncmp(d.reason, "Not allowed method: ", 20) == 0);
	}
	if (d.cmd == CMD_COLLECT_INFORMATION && rc == 0)
		check_text(p, len);

	/* The same bytes as a topic to publish on or to subscribe to. */
	if (memchr(topic, '\0', tlen) == NULL) {
		char *z = strndup(topic, tlen);
		bool pub, filt;

		FUZZ_ASSERT(z != NULL);
		pub = dispatch_topic_publishable(z);
		filt = dispatch_filter_valid(z);
		if (pub)
			FUZZ_ASSERT(filt && tlen > 0 && strpbrk(z, "+#") == NULL &&
			    ref_utf8((const uint8_t *)z, tlen));
		if (filt)
			FUZZ_ASSERT(tlen > 0 && ref_utf8((const uint8_t *)z, tlen));
		free(z);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p;
	size_t len, max;
	unsigned sel;
	char *topic;
	size_t tlen;

	if (size == 0)
		return 0;
	sel = data[0];
	p = data + 1;
	len = size - 1;
	max = (sel & 0x80) ? 64 : MAX_PAYLOAD;
	sel &= 7;

	if (sel == 6) {
		check_ids(p, len);
		check_text(p, len);
		return 0;
	}
	if (sel < 5) {
		tlen = (size_t)asprintf(&topic, "manta/node/0123456789abcdef0123456789abcdef/%s",
		    cmds[sel]);
		FUZZ_ASSERT(topic != NULL);
	} else {
		const uint8_t *nl = memchr(p, '\n', len);

		tlen = nl ? (size_t)(nl - p) : len;
		/* An exact-size copy, not NUL-terminated: paho gives a length. */
		FUZZ_ASSERT((topic = malloc(tlen ? tlen : 1)) != NULL);
		memcpy(topic, p, tlen);
		p += nl ? tlen + 1 : tlen;
		len -= nl ? tlen + 1 : tlen;
	}
	/* The payload as its own buffer too, for the same reason. */
	{
		uint8_t *pl = malloc(len ? len : 1);

		FUZZ_ASSERT(pl != NULL);
		memcpy(pl, p, len);
		check_dispatch(topic, tlen, len ? pl : NULL, len, max);
		unpack_all(pl, len);
		free(pl);
	}
	free(topic);
	return 0;
}
