/* dispatch: what an MQTT command topic and payload mean to mantad-beat,
 * kept free of libcommon and paho so tests/unit/test_beat_dispatch.c can
 * include it alone. */
#ifndef MANTA_BEAT_DISPATCH_H
#define MANTA_BEAT_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum beat_cmd {
	CMD_UNKNOWN = 0,
	CMD_DEPLOY_TASK,
	CMD_STOP_TASK,
	CMD_STOP_SWARM,
	CMD_STOP_NODE,
	CMD_COLLECT_INFORMATION,
};

/* error_id values of common.system.Error (WIRE.md section 9): every
 * command refused here (unknown, unparsable, too large) is an MQTT error,
 * as the reference reports it. */
#define ERR_ID_NODE 19
#define ERR_ID_MQTT 22

/* Largest collect_information text we pass on. */
#define DISPATCH_MAX_TEXT 1024

struct dispatch {
	enum beat_cmd cmd;
	const char *name;	/* the command name, NULL when unknown */
	const char *dest;	/* IPC endpoint that gets it, NULL when refused */
	uint32_t error_id;	/* when refused */
	char reason[256];	/* when refused */
	/* ids read from the payload, for error reports; zero when unknown */
	uint64_t swarm_head, swarm_tail;
	uint64_t task_head, task_tail;
	uint32_t iteration, circular;
};

/* The last '/'-separated segment of topic (len bytes, not NUL-terminated). */
const char *dispatch_last_segment(const char *topic, size_t len, size_t *seglen);
/* Command by name; CMD_UNKNOWN when not one of ours. */
enum beat_cmd dispatch_lookup(const char *seg, size_t seglen);
/* Decides what to do with one message: 0 and d->dest set to forward it as
 * a Command, -1 with d->error_id and d->reason set to refuse it. max is the
 * largest payload accepted. */
int dispatch_classify(const char *topic, size_t topic_len,
    const uint8_t *payload, size_t len, size_t max, struct dispatch *d);

bool dispatch_utf8_valid(const uint8_t *s, size_t len);
/* A topic we may publish on: 1..65535 bytes of UTF-8, no NUL, no wildcard. */
bool dispatch_topic_publishable(const char *topic);
/* A topic filter we may subscribe to: 1..65535 bytes of UTF-8, no NUL,
 * '#' only as the whole last level, '+' only as a whole level. */
bool dispatch_filter_valid(const char *filter);
/* The MQTT client id: the node id in the reference's text form (WIRE.md
 * section 1): lowercase hex without leading zeros, then one "0" put in
 * front unless that makes 32 digits (id 0xcafe is "0cafe"). */
#define DISPATCH_CLIENT_ID_LEN 32
void dispatch_client_id(uint64_t head, uint64_t tail,
    char out[DISPATCH_CLIENT_ID_LEN + 1]);
/* Printable, truncated copy of a topic for logs (control bytes as '?'). */
void dispatch_printable(char *out, size_t outlen, const char *s, size_t len);

#endif
