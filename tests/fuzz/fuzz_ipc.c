/* fuzz_ipc: every IPC message, as each daemon's ROUTER socket takes it:
 * ipc_msg_decode (the size cap, protobuf-c unpack, then ipc_validate).
 * Beyond "no crash, no leak", what passes must be what the daemons rely
 * on (ids that parse, known command names, publishable topics), and a
 * message that passes must pass again once re-encoded, to the same bytes. */
#include <string.h>

#include "fuzz.h"
#include "id.h"
#include "ipc.h"
#include "log.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz_ipc", LOG_LVL_ERROR);
	return 0;
}

static void
check_hex_id(const char *s)
{
	struct manta_id id;
	char hex[ID_HEX_LEN + 1];

	FUZZ_ASSERT(id_parse_hex(s, &id) == 0);
	id_to_hex(id, hex);
	FUZZ_ASSERT(strcmp(hex, s) == 0);
}

static void
check_text(const char *s)
{
	/* Validated text: no control bytes but tab (logs and JSON output). */
	if (s == NULL)
		return;
	for (; *s; s++)
		FUZZ_ASSERT((unsigned char)*s >= 0x20 || *s == '\t');
}

/* What passed ipc_validate, as the receiving daemon uses it. */
static void
check_valid(const ipc_msg *m)
{
	switch (m->body_case) {
	case MANTA__IPC__MSG__BODY_COMMAND:
		FUZZ_ASSERT(m->command->name != NULL);
		FUZZ_ASSERT(strcmp(m->command->name, "deploy_task") == 0 ||
		    strcmp(m->command->name, "stop_task") == 0 ||
		    strcmp(m->command->name, "stop_swarm") == 0 ||
		    strcmp(m->command->name, "stop_node") == 0 ||
		    strcmp(m->command->name, "collect_information") == 0);
		check_text(m->command->topic);
		break;
	case MANTA__IPC__MSG__BODY_PUBLISH:
		FUZZ_ASSERT(m->publish->topic != NULL && m->publish->topic[0] != '\0');
		FUZZ_ASSERT(strpbrk(m->publish->topic, "+#") == NULL);
		FUZZ_ASSERT(m->publish->qos <= 1);
		check_text(m->publish->topic);
		check_text(m->publish->key);
		break;
	case MANTA__IPC__MSG__BODY_REGISTRATION:
		FUZZ_ASSERT(m->registration->broker_host != NULL &&
		    m->registration->broker_host[0] != '\0');
		FUZZ_ASSERT(m->registration->broker_port >= 1 &&
		    m->registration->broker_port <= 65535);
		check_text(m->registration->broker_host);
		for (size_t i = 0; i < m->registration->n_topics; i++) {
			FUZZ_ASSERT(m->registration->topics[i][0] != '\0');
			check_text(m->registration->topics[i]);
		}
		break;
	case MANTA__IPC__MSG__BODY_REPORT_ERROR:
		FUZZ_ASSERT(m->report_error->error != NULL);
		FUZZ_ASSERT(m->report_error->error->content != NULL);
		FUZZ_ASSERT(strlen(m->report_error->error->content) <= 4096);
		break;
	case MANTA__IPC__MSG__BODY_TASKS:
		for (size_t i = 0; i < m->tasks->n_tasks; i++) {
			check_hex_id(m->tasks->tasks[i]->swarm_id);
			check_hex_id(m->tasks->tasks[i]->task_id);
			check_text(m->tasks->tasks[i]->status);
			check_text(m->tasks->tasks[i]->reason);
		}
		break;
	case MANTA__IPC__MSG__BODY_LOGS_REQ:
		check_hex_id(m->logs_req->task_id);
		break;
	case MANTA__IPC__MSG__BODY_TASK_LOGS:
		FUZZ_ASSERT(m->task_logs->swarm_id != NULL && m->task_logs->task_id != NULL);
		FUZZ_ASSERT(m->task_logs->content.len >= 52);
		FUZZ_ASSERT(m->task_logs->key != NULL && m->task_logs->key[0] != '\0');
		break;
	case MANTA__IPC__MSG__BODY_TASK_LOOKUP:
		FUZZ_ASSERT((m->task_lookup->token != NULL && m->task_lookup->token[0] != '\0') ||
		    (m->task_lookup->swarm_id != NULL && m->task_lookup->task_id != NULL));
		break;
	case MANTA__IPC__MSG__BODY_REPLY:
		check_text(m->reply->error);
		break;
	case MANTA__IPC__MSG__BODY__NOT_SET:
		FUZZ_ASSERT(!"a message without a body passed");
		break;
	default:
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	ipc_msg *m, *m2;
	uint8_t *buf, *buf2;
	size_t len, len2;

	err[0] = '\0';
	m = ipc_msg_decode(data, size, err, sizeof(err));
	if (m == NULL) {
		/* Refused: the reason goes to the log and back to the peer. */
		FUZZ_ASSERT(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
		FUZZ_SAY("refused: %s\n", err);
		return 0;
	}
	FUZZ_SAY("accepted: body %d\n", (int)m->body_case);
	check_valid(m);

	/* What passed must pass again as ipc_reply or ipc_call sends it. */
	FUZZ_ASSERT(ipc_msg_encode(m, &buf, &len) == 0);
	m2 = ipc_msg_decode(buf, len, err, sizeof(err));
	if (m2 == NULL)
		fprintf(stderr, "re-encoded message refused: %s\n", err);
	FUZZ_ASSERT(m2 != NULL);
	FUZZ_ASSERT(m2->body_case == m->body_case);
	FUZZ_ASSERT(ipc_msg_encode(m2, &buf2, &len2) == 0);
	FUZZ_ASSERT(len2 == len && memcmp(buf, buf2, len) == 0);
	free(buf);
	free(buf2);
	ipc_msg_free(m2);
	ipc_msg_free(m);
	return 0;
}
