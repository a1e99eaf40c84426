/* mantactl drain [NAME] [-c FILE] [--wait] [--timeout S]: the node takes no
 * new task (a deploy_task gets FAILED, "draining"), its queued and running
 * tasks go on, and the manager is told (SetNodeStatus DISCONNECTED, through
 * mantad-register). The drain is kept across restarts until
 * "mantactl undrain". With --wait (or --timeout) it returns once no task
 * is queued, pending or running: exit 0, or 1 when S seconds pass first.
 * Exit 3 when the node is not running. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "ipc.h"
#include "log.h"
#include "mantactl.h"

#define DRAIN_USAGE "drain [NAME] [-c FILE] [--wait] [--timeout S]"
#define UNDRAIN_USAGE "undrain [NAME] [-c FILE]"
#define ASK_MS 5000
#define POLL_MS 200

/* One request to mantad-exec answered with its status: the tasks still
 * queued, pending or running in *left. 0, or an exit status. */
static int
ask(const struct manta_cfg *c, int body, bool undrain, unsigned *left,
    bool *draining)
{
	ipc_msg req = MANTA__IPC__MSG__INIT, *rep = NULL;
	Manta__Ipc__DrainRequest dr = MANTA__IPC__DRAIN_REQUEST__INIT;
	Manta__Ipc__StatusRequest sr = MANTA__IPC__STATUS_REQUEST__INIT;
	const Manta__Ipc__ExecStatus *es;

	req.body_case = (Manta__Ipc__Msg__BodyCase)body;
	if (body == MANTA__IPC__MSG__BODY_DRAIN) {
		dr.undrain = undrain;
		req.drain = &dr;
	} else
		req.status_req = &sr;
	if (ipc_call(c->run_dir, IPC_EXEC, &req, &rep, ASK_MS) == -1)
		return ctl_exec_unreachable(c);
	if (rep->body_case != MANTA__IPC__MSG__BODY_STATUS ||
	    (es = rep->status->exec) == NULL) {
		fprintf(stderr, "mantactl: mantad-exec refused: %s\n",
		    rep->body_case == MANTA__IPC__MSG__BODY_REPLY &&
		    rep->reply->error ? rep->reply->error : "unexpected answer");
		ipc_msg_free(rep);
		return CTL_FAIL;
	}
	*left = es->queued + es->pending + es->running;
	*draining = es->draining;
	ipc_msg_free(rep);
	return 0;
}

static int
drain_main(int argc, char **argv, bool undrain)
{
	struct ctl_args a;
	struct manta_cfg *c;
	long long start, deadline = 0;
	unsigned left = 0;
	bool draining = false;
	int rc, timeout_s = 0;

	ctl_options_first(argc, argv);
	if ((rc = ctl_parse(argc, argv, undrain ? UNDRAIN_USAGE : DRAIN_USAGE, 0,
	    &a)) != 0)
		return rc;
	if (a.timeout != NULL && (undrain || (timeout_s = atoi(a.timeout)) <= 0)) {
		fprintf(stderr, "usage: mantactl %s\n", undrain ? UNDRAIN_USAGE :
		    DRAIN_USAGE);
		return CTL_USAGE;
	}
	if (undrain && a.wait) {
		fprintf(stderr, "usage: mantactl %s\n", UNDRAIN_USAGE);
		return CTL_USAGE;
	}
	if ((c = ctl_load_config(&a)) == NULL)
		return CTL_FAIL;
	if (ctl_running_pid(c) == 0) {
		fprintf(stderr, "mantactl: node %s is not running\n", c->instance);
		rc = CTL_NOT_RUNNING;
		goto out;
	}
	start = daemon_now_ms();
	if ((rc = ask(c, MANTA__IPC__MSG__BODY_DRAIN, undrain, &left,
	    &draining)) != 0)
		goto out;
	if (undrain) {
		printf("node %s takes tasks again\n", c->instance);
		goto out;
	}
	if (!a.wait && timeout_s == 0) {
		if (left == 0)
			printf("node %s drained\n", c->instance);
		else
			printf("node %s draining: %u task%s to finish\n",
			    c->instance, left, left == 1 ? "" : "s");
		goto out;
	}
	if (timeout_s > 0)
		deadline = start + (long long)timeout_s * 1000;
	while (left > 0) {
		struct timespec ts = { 0, POLL_MS * 1000L * 1000L };

		if (deadline > 0 && daemon_now_ms() >= deadline) {
			fprintf(stderr, "mantactl: node %s: %u task%s still"
			    " running after %d s (the node stays drained)\n",
			    c->instance, left, left == 1 ? "" : "s", timeout_s);
			rc = CTL_FAIL;
			goto out;
		}
		nanosleep(&ts, NULL);	/* polling mantad-exec with a deadline */
		if ((rc = ask(c, MANTA__IPC__MSG__BODY_STATUS_REQ, false, &left,
		    &draining)) != 0)
			goto out;
		if (!draining) {
			fprintf(stderr, "mantactl: node %s was undrained\n",
			    c->instance);
			rc = CTL_FAIL;
			goto out;
		}
	}
	printf("node %s drained in %.1f s\n", c->instance,
	    (double)(daemon_now_ms() - start) / 1000.0);
out:
	cfg_free(c);
	ipc_context_term();
	return rc;
}

int
cmd_drain(int argc, char **argv)
{
	return drain_main(argc, argv, false);
}

int
cmd_undrain(int argc, char **argv)
{
	return drain_main(argc, argv, true);
}
