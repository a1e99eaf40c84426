/* mantactl stop [NAME] [-c FILE] [--timeout S]: asks the supervisor for a
 * graceful stop (a drain of at most S seconds, default 30, then the
 * daemons; mantad-exec stops what still runs) and waits until it has
 * released the instance lock. */
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"
#include "ipc.h"
#include "log.h"
#include "mantactl.h"

#define STOP_USAGE "stop [NAME] [-c FILE] [--timeout S]"
/* After the drain: mantad-exec stops its tasks (7.5 s at most), the
 * supervisor kills a daemon after 10 s. */
#define STOP_MARGIN_S 25

int
cmd_stop(int argc, char **argv)
{
	struct ctl_args a;
	struct manta_cfg *c;
	ipc_msg req = MANTA__IPC__MSG__INIT;
	Manta__Ipc__Shutdown sd = MANTA__IPC__SHUTDOWN__INIT;
	long long deadline;
	int rc, pid, timeout_s = 30;

	if ((rc = ctl_parse(argc, argv, STOP_USAGE, 0, &a)) != 0)
		return rc;
	if (a.timeout != NULL && (timeout_s = atoi(a.timeout)) <= 0) {
		fprintf(stderr, "usage: mantactl %s\n", STOP_USAGE);
		return CTL_USAGE;
	}
	if ((c = ctl_load_config(&a)) == NULL)
		return CTL_FAIL;
	if ((pid = ctl_running_pid(c)) == 0) {
		fprintf(stderr, "mantactl: node %s is not running\n", c->instance);
		cfg_free(c);
		return CTL_NOT_RUNNING;
	}
	req.body_case = MANTA__IPC__MSG__BODY_SHUTDOWN;
	sd.drain_timeout_s = (uint32_t)timeout_s;
	req.shutdown = &sd;
	if (ipc_call_ok(c->run_dir, IPC_SUPERVISE, &req, 2000) == -1) {
		log_warnx("the supervisor did not answer; sending SIGTERM to pid %d", pid);
		if (pid > 1)
			kill(pid, SIGTERM);
	}
	deadline = daemon_now_ms() + (long long)(timeout_s + STOP_MARGIN_S) * 1000;
	rc = CTL_FAIL;
	while (daemon_now_ms() < deadline) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		if (ctl_running_pid(c) == 0) {
			rc = CTL_OK;
			break;
		}
		nanosleep(&ts, NULL);	/* polling the lock with a deadline */
	}
	if (rc != CTL_OK)
		log_errorx("node %s did not stop within %d s", c->instance,
		    timeout_s + STOP_MARGIN_S);
	cfg_free(c);
	ipc_context_term();
	return rc;
}
