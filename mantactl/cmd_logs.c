/* mantactl logs [NODE] TASK_ID [-c FILE] [-f]: a task's captured output so
 * far, read from mantad-exec in chunks (LogsRequest from offset 0). With -f
 * it follows: when no new bytes are there it asks again after a short pause
 * (growing from 50 ms to 500 ms while nothing comes, back to 50 ms on data)
 * until the task has ended and everything was read (LogsChunk.finished).
 * Exit 1 for a task mantad-exec does not know, 3 when the node is not
 * running. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "id.h"
#include "ipc.h"
#include "log.h"
#include "mantactl.h"

#define LOGS_USAGE "logs [NODE] TASK_ID [-c FILE] [-f]"
#define ASK_MS 5000
#define CHUNK_MAX (1024 * 1024)
#define POLL_MIN_MS 50
#define POLL_MAX_MS 500

static void
pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int
write_all(const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, p, n);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* [NODE] TASK_ID (ctl_parse took the first positional as NODE): 0 with the
 * task id in hex, or the exit status of a usage error. */
static int
logs_args(int argc, char **argv, struct ctl_args *a, char *hex)
{
	struct manta_id id;
	const char *task;
	int rc;

	ctl_options_first(argc, argv);
	if ((rc = ctl_parse(argc, argv, LOGS_USAGE, 1, a)) != 0)
		return rc;
	if (a->npos == 1) {
		task = a->pos[0];
	} else if (a->name != NULL) {
		task = a->name;
		a->name = NULL;
	} else {
		fprintf(stderr, "usage: mantactl %s\n", LOGS_USAGE);
		return CTL_USAGE;
	}
	if (id_parse_hex(task, &id) == -1) {
		fprintf(stderr, "mantactl: %s: a task id is 32 hex digits\n", task);
		return CTL_USAGE;
	}
	id_to_hex(id, hex);
	return 0;
}

/* mantad-exec's answer to a LogsRequest at *offset: its bytes written out
 * and *offset moved past them (CTL_OK), or CTL_FAIL, said. */
static int
logs_chunk(const ipc_msg *rep, const char *hex, uint64_t *offset)
{
	const Manta__Ipc__LogsChunk *ch;

	if (rep->body_case == MANTA__IPC__MSG__BODY_REPLY) {
		fprintf(stderr, "mantactl: task %s: %s\n", hex,
		    rep->reply->error && *rep->reply->error ? rep->reply->error :
		    "unknown task");
		return CTL_FAIL;
	}
	if (rep->body_case != MANTA__IPC__MSG__BODY_LOGS) {
		fprintf(stderr, "mantactl: mantad-exec answered something else than logs\n");
		return CTL_FAIL;
	}
	ch = rep->logs;
	if (ch->data.len > 0 && write_all(ch->data.data, ch->data.len) == -1) {
		log_error("unable to write the logs");
		return CTL_FAIL;
	}
	if (ch->next_offset < *offset + ch->data.len) {
		/* A bad offset would loop forever. */
		fprintf(stderr, "mantactl: mantad-exec went back in the log of %s\n", hex);
		return CTL_FAIL;
	}
	*offset = ch->next_offset;
	return CTL_OK;
}

/* Asks mantad-exec for the task's output from offset 0 until all of it
 * is read, or with follow until the task has ended too. */
static int
logs_read(struct manta_cfg *c, char *hex, bool follow)
{
	ipc_msg req = MANTA__IPC__MSG__INIT, *rep = NULL;
	Manta__Ipc__LogsRequest lr = MANTA__IPC__LOGS_REQUEST__INIT;
	int rc, wait_ms = POLL_MIN_MS;

	lr.task_id = hex;
	lr.offset = 0;
	lr.max = CHUNK_MAX;
	req.body_case = MANTA__IPC__MSG__BODY_LOGS_REQ;
	req.logs_req = &lr;
	for (;;) {
		const Manta__Ipc__LogsChunk *ch;

		if (ipc_call(c->run_dir, IPC_EXEC, &req, &rep, ASK_MS) == -1)
			return ctl_exec_unreachable(c);
		if ((rc = logs_chunk(rep, hex, &lr.offset)) != CTL_OK)
			break;
		ch = rep->logs;
		if (ch->finished && ch->data.len == 0)
			break;
		if (ch->data.len > 0) {
			wait_ms = POLL_MIN_MS;
		} else if (!follow) {
			break;
		} else {
			pause_ms(wait_ms);
			wait_ms = wait_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : wait_ms * 2;
		}
		ipc_msg_free(rep);
		rep = NULL;
	}
	ipc_msg_free(rep);
	return rc;
}

int
cmd_logs(int argc, char **argv)
{
	struct ctl_args a;
	struct manta_cfg *c;
	char hex[ID_HEX_LEN + 1];
	int rc;

	if ((rc = logs_args(argc, argv, &a, hex)) != 0)
		return rc;
	if ((c = ctl_load_config(&a)) == NULL)
		return CTL_FAIL;
	if (ctl_running_pid(c) == 0)
		rc = ctl_exec_unreachable(c);
	else
		rc = logs_read(c, hex, a.follow);
	cfg_free(c);
	ipc_context_term();
	return rc;
}
