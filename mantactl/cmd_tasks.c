/* mantactl tasks [NODE] [-c FILE] [--json]: the node's tasks as mantad-exec
 * knows them (TasksRequest), one JSON array with the INTERFACE.md keys when
 * --json is given or stdout is not a terminal, a table otherwise.
 * Exit 3 when the node is not running. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "json.h"
#include "log.h"
#include "mantactl.h"

#define TASKS_USAGE "tasks [NODE] [-c FILE] [--json]"
#define ASK_MS 5000

static json_t *
task_json(const Manta__Ipc__TaskInfo *t)
{
	json_t *o = json_object();

	json_object_set_new(o, "swarm_id", json_string(t->swarm_id));
	json_object_set_new(o, "task_id", json_string(t->task_id));
	json_object_set_new(o, "status", json_string(t->status));
	json_object_set_new(o, "iteration", json_integer(t->iteration));
	json_object_set_new(o, "circular", json_integer(t->circular));
	json_object_set_new(o, "image", json_string(t->image));
	json_object_set_new(o, "exit_code", t->has_exit_code ?
	    json_integer(t->exit_code) : json_null());
	json_object_set_new(o, "started_at", t->started_at && *t->started_at ?
	    json_string(t->started_at) : json_null());
	json_object_set_new(o, "finished_at", t->finished_at && *t->finished_at ?
	    json_string(t->finished_at) : json_null());
	/* Additive: why it ended FAILED/STOPPED, or why it waits QUEUED. */
	json_object_set_new(o, "reason", t->reason && *t->reason ?
	    json_string(t->reason) : json_null());
	return o;
}

static void
print_human(const Manta__Ipc__TaskList *l)
{
	printf("%-32s %-32s %-9s %5s %5s %-16s %4s  %s\n", "SWARM", "TASK", "STATUS",
	    "ITER", "CIRC", "IMAGE", "EXIT", "STARTED");
	for (size_t i = 0; i < l->n_tasks; i++) {
		const Manta__Ipc__TaskInfo *t = l->tasks[i];
		char code[16] = "-";

		if (t->has_exit_code)
			snprintf(code, sizeof(code), "%d", t->exit_code);
		printf("%-32s %-32s %-9s %5u %5u %-16s %4s  %s\n", t->swarm_id, t->task_id,
		    t->status, t->iteration, t->circular, t->image, code,
		    t->started_at && *t->started_at ? t->started_at : "-");
		if (t->reason && *t->reason)
			printf("    %s\n", t->reason);
	}
}

/* Moves options (and their arguments) before the positionals, keeping each
 * group's order, so that "tasks node1 --json" parses as "tasks --json
 * node1" (ctl_parse stops at the first positional). argv[0] stays. */
void
ctl_options_first(int argc, char **argv)
{
	char **opts, **pos;
	int no = 0, np = 0, i;

	if (argc < 2 || (opts = calloc((size_t)argc, sizeof(*opts))) == NULL)
		return;
	if ((pos = calloc((size_t)argc, sizeof(*pos))) == NULL) {
		free(opts);
		return;
	}
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			for (i++; i < argc; i++)
				pos[np++] = argv[i];
			break;
		}
		if (a[0] != '-' || a[1] == '\0') {
			pos[np++] = argv[i];
			continue;
		}
		opts[no++] = argv[i];
		/* Options with a separate argument. */
		if ((strcmp(a, "-c") == 0 || strcmp(a, "-t") == 0 ||
		    strcmp(a, "--config") == 0 || strcmp(a, "--timeout") == 0 ||
		    strcmp(a, "-o") == 0) && i + 1 < argc)
			opts[no++] = argv[++i];
	}
	for (i = 0; i < no; i++)
		argv[1 + i] = opts[i];
	for (i = 0; i < np; i++)
		argv[1 + no + i] = pos[i];
	free(opts);
	free(pos);
}

/* ipc_call to exec failed: not running (3), or running without an
 * answering mantad-exec (1). */
int
ctl_exec_unreachable(const struct manta_cfg *c)
{
	if (ctl_running_pid(c) == 0) {
		fprintf(stderr, "mantactl: node %s is not running\n", c->instance);
		return CTL_NOT_RUNNING;
	}
	fprintf(stderr, "mantactl: node %s is running but mantad-exec does not answer\n",
	    c->instance);
	return CTL_FAIL;
}

int
cmd_tasks(int argc, char **argv)
{
	ipc_msg req = MANTA__IPC__MSG__INIT, *rep = NULL;
	Manta__Ipc__TasksRequest tr = MANTA__IPC__TASKS_REQUEST__INIT;
	struct ctl_args a;
	struct manta_cfg *c;
	int rc;

	ctl_options_first(argc, argv);
	if ((rc = ctl_parse(argc, argv, TASKS_USAGE, 0, &a)) != 0)
		return rc;
	if ((c = ctl_load_config(&a)) == NULL)
		return CTL_FAIL;
	req.body_case = MANTA__IPC__MSG__BODY_TASKS_REQ;
	req.tasks_req = &tr;
	if (ctl_running_pid(c) == 0 ||
	    ipc_call(c->run_dir, IPC_EXEC, &req, &rep, ASK_MS) == -1) {
		rc = ctl_exec_unreachable(c);
		goto out;
	}
	if (rep->body_case == MANTA__IPC__MSG__BODY_REPLY) {
		fprintf(stderr, "mantactl: mantad-exec: %s\n",
		    rep->reply->error && *rep->reply->error ? rep->reply->error : "refused");
		rc = CTL_FAIL;
		goto out;
	}
	if (rep->body_case != MANTA__IPC__MSG__BODY_TASKS) {
		fprintf(stderr, "mantactl: mantad-exec answered something else than a task list\n");
		rc = CTL_FAIL;
		goto out;
	}
	if (a.json || !isatty(STDOUT_FILENO)) {
		json_t *arr = json_array();

		for (size_t i = 0; i < rep->tasks->n_tasks; i++)
			json_array_append_new(arr, task_json(rep->tasks->tasks[i]));
		json_print(stdout, arr, 0);
		json_decref(arr);
	} else
		print_human(rep->tasks);
	rc = fflush(stdout) == 0 ? CTL_OK : CTL_FAIL;
out:
	ipc_msg_free(rep);
	cfg_free(c);
	ipc_context_term();
	return rc;
}
