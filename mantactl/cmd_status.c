/* mantactl status [NAME] [-c FILE] [--json]: asks the supervisor for the
 * daemon table and each daemon for its part, and merges them into the
 * INTERFACE.md object. Exit 3 when no supervisor answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "id.h"
#include "ipc.h"
#include "json.h"
#include "log.h"
#include "mantactl.h"

#define STATUS_USAGE "status [NAME] [-c FILE] [--json]"
static char *
read_identity(const struct manta_cfg *c)
{
	char *path, buf[64] = "";
	FILE *f;

	if (asprintf(&path, "%s/identity", c->state_dir) == -1)
		return NULL;
	f = fopen(path, "r");
	free(path);
	if (f == NULL)
		return NULL;
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return strlen(buf) == ID_HEX_LEN ? strdup(buf) : NULL;
}

static const char *
node_state(const Manta__Ipc__SupervisorStatus *sup, const Manta__Ipc__RegisterStatus *reg,
    const Manta__Ipc__BeatStatus *beat, const Manta__Ipc__ExecStatus *ex)
{
	if (sup->stopping)
		return "stopping";
	if (ex != NULL && ex->draining)
		return ex->running + ex->pending + ex->queued > 0 ? "draining" : "drained";
	for (size_t i = 0; i < sup->n_daemons; i++)
		if (strcmp(sup->daemons[i]->state, "up") != 0 && reg == NULL)
			return "starting";
	if (reg == NULL)
		return "starting";
	if (!reg->registered)
		return "registering";
	return beat != NULL && beat->connected ? "online" : "offline";
}

static json_t *
gpus_json(const Manta__Ipc__ResStatus *res)
{
	json_t *a = json_array();

	for (size_t i = 0; res != NULL && i < res->n_gpus; i++) {
		const Common__Informations__GpuDevice *g = res->gpus[i];
		json_array_append_new(a, json_pack("{s:s, s:s, s:I}",
		    "name", g->name, "uuid", g->uuid,
		    "memory_total_bytes", (json_int_t)g->memory_total_bytes));
	}
	return a;
}

/* The effective uid of process pid (/proc/PID/status), -1 if unknown. */
static long
proc_uid(int pid)
{
	char path[64], line[256];
	long uid = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		long r, e;

		if (sscanf(line, "Uid: %ld %ld", &r, &e) == 2) {
			uid = e;
			break;
		}
	}
	fclose(f);
	return uid;
}

/* The daemons that drop to an account (security.daemon_user, light_user). */
static int
confined(const char *name)
{
	return strcmp(name, "mantad-res") == 0 || strcmp(name, "mantad-register") == 0 ||
	    strcmp(name, "mantad-beat") == 0 || strcmp(name, "mantad-light") == 0;
}

/* "security" (issue 13, additive): the seccomp mode the node was started
 * with, whether root daemons were allowed, and which confined daemons run
 * as uid 0 now (read from /proc). */
static json_t *
security_json(const Manta__Ipc__SupervisorStatus *sup)
{
	json_t *root = json_array();

	for (size_t i = 0; i < sup->n_daemons; i++) {
		const Manta__Ipc__DaemonState *d = sup->daemons[i];

		if (confined(d->name) && strcmp(d->state, "up") == 0 && proc_uid(d->pid) == 0)
			json_array_append_new(root, json_string(d->name));
	}
	return json_pack("{s:o, s:b, s:o}",
	    "seccomp", json_str_or_null(sup->seccomp && *sup->seccomp ? sup->seccomp : NULL),
	    "allow_root_daemons", sup->allow_root_daemons, "root_daemons", root);
}

static json_t *
build(const struct manta_cfg *c, const Manta__Ipc__SupervisorStatus *sup,
    const Manta__Ipc__RegisterStatus *reg, const Manta__Ipc__BeatStatus *beat,
    const Manta__Ipc__ResStatus *res, const Manta__Ipc__ExecStatus *ex)
{
	json_t *o = json_object(), *daemons = json_array();
	char *ident = NULL;
	const char *node_id = reg && reg->node_id && *reg->node_id ? reg->node_id : NULL;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (node_id == NULL)
		node_id = ident = read_identity(c);
	json_object_set_new(o, "node_id", json_str_or_null(node_id));
	json_object_set_new(o, "alias", json_string(cfg_alias(c)));
	json_object_set_new(o, "state", json_string(node_state(sup, reg, beat, ex)));
	/* "outbox" (issue 6, additive): what waits for the manager (task log
	 * messages in register.db) and for the broker (publications in
	 * beat.db); null when the daemon does not answer. */
	json_object_set_new(o, "manager", json_pack("{s:s, s:i, s:b, s:o}",
	    "host", c->manager_host, "port", c->manager_port,
	    "registered", reg != NULL && reg->registered,
	    "outbox", reg ? json_integer((json_int_t)reg->outbox) : json_null()));
	/* commands_waiting (issue 15, additive): received by beat and not yet
	 * taken by their daemon; null when beat does not answer. */
	json_object_set_new(o, "mqtt", json_pack("{s:o, s:b, s:o, s:o}",
	    "broker", beat && beat->broker && *beat->broker ? json_string(beat->broker) : json_null(),
	    "connected", beat != NULL && beat->connected,
	    "outbox", beat ? json_integer((json_int_t)beat->outbox) : json_null(),
	    "commands_waiting", beat ? json_integer((json_int_t)beat->commands_waiting) :
	    json_null()));
	/* Why a deploy_task is refused now, null when tasks are taken. */
	json_object_set_new(o, "refusing", json_str_or_null(ex && ex->refusing &&
	    *ex->refusing ? ex->refusing : NULL));
	/* Why the oldest queued task waits, null when none does. */
	json_object_set_new(o, "waiting", json_str_or_null(ex && ex->waiting &&
	    *ex->waiting ? ex->waiting : NULL));
	for (size_t i = 0; i < sup->n_daemons; i++) {
		const Manta__Ipc__DaemonState *d = sup->daemons[i];
		long uid = proc_uid(d->pid);

		json_array_append_new(daemons, json_pack("{s:s, s:o, s:s, s:i, s:I, s:o}",
		    "name", d->name, "pid", d->pid > 0 ? json_integer(d->pid) : json_null(),
		    "state", d->state, "restarts", (int)d->restarts,
		    "uptime_s", (json_int_t)d->uptime_s,
		    "uid", uid >= 0 ? json_integer(uid) : json_null()));
	}
	json_object_set_new(o, "daemons", daemons);
	json_object_set_new(o, "security", security_json(sup));
	json_object_set_new(o, "tasks", json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}",
	    "queued", ex ? (int)ex->queued : 0, "pending", ex ? (int)ex->pending : 0,
	    "running", ex ? (int)ex->running : 0, "completed", ex ? (int)ex->completed : 0,
	    "failed", ex ? (int)ex->failed : 0, "stopped", ex ? (int)ex->stopped : 0));
	json_object_set_new(o, "resources", json_pack("{s:i, s:I, s:I, s:o}",
	    "cpu_count", res ? (int)res->cpu_count : (int)ncpu,
	    "mem_total_bytes", res ? (json_int_t)res->mem_total_bytes : (json_int_t)0,
	    "mem_available_bytes", res ? (json_int_t)res->mem_available_bytes : (json_int_t)0,
	    "gpus", gpus_json(res)));
	free(ident);
	return o;
}

static void
print_human(const json_t *o)
{
	json_t *d;
	size_t i;

	printf("node %s (%s): %s\n", json_string_value(json_object_get(o, "node_id")) ?: "-",
	    json_string_value(json_object_get(o, "alias")) ?: "no alias",
	    json_string_value(json_object_get(o, "state")));
	printf("manager %s:%lld %s\n",
	    json_string_value(json_object_get(json_object_get(o, "manager"), "host")),
	    json_integer_value(json_object_get(json_object_get(o, "manager"), "port")),
	    json_is_true(json_object_get(json_object_get(o, "manager"), "registered")) ?
	    "registered" : "not registered");
	printf("broker %s %s\n",
	    json_string_value(json_object_get(json_object_get(o, "mqtt"), "broker")) ?: "-",
	    json_is_true(json_object_get(json_object_get(o, "mqtt"), "connected")) ?
	    "connected" : "not connected");
	printf("outbox %lld publication(s) for the broker, %lld log message(s) for the manager\n",
	    json_integer_value(json_object_get(json_object_get(o, "mqtt"), "outbox")),
	    json_integer_value(json_object_get(json_object_get(o, "manager"), "outbox")));
	if (json_string_value(json_object_get(o, "refusing")) != NULL)
		printf("refusing new tasks: %s\n",
		    json_string_value(json_object_get(o, "refusing")));
	{
		json_t *sec = json_object_get(o, "security"), *r;
		const char *mode = json_string_value(json_object_get(sec, "seccomp"));

		if (mode != NULL && strcmp(mode, "kill") != 0)
			printf("WARNING: security.seccomp = \"%s\": the daemons' seccomp"
			    " filters are weakened\n", mode);
		json_array_foreach(json_object_get(sec, "root_daemons"), i, r)
			printf("WARNING: %s runs as root (no account for it;"
			    " security.allow_root_daemons)\n", json_string_value(r));
	}
	if (json_string_value(json_object_get(o, "waiting")) != NULL)
		printf("queued tasks are %s\n",
		    json_string_value(json_object_get(o, "waiting")));
	json_array_foreach(json_object_get(o, "daemons"), i, d)
		printf("  %-16s %-8s pid %-7lld restarts %lld up %llds\n",
		    json_string_value(json_object_get(d, "name")),
		    json_string_value(json_object_get(d, "state")),
		    json_integer_value(json_object_get(d, "pid")),
		    json_integer_value(json_object_get(d, "restarts")),
		    json_integer_value(json_object_get(d, "uptime_s")));
}

int
cmd_status(int argc, char **argv)
{
	struct ctl_args a;
	struct manta_cfg *c;
	ipc_msg *sup, *reg, *beat, *res, *ex;
	json_t *o;
	int rc;

	if ((rc = ctl_parse(argc, argv, STATUS_USAGE, 0, &a)) != 0)
		return rc;
	if ((c = ctl_load_config(&a)) == NULL)
		return CTL_FAIL;
	sup = ctl_ask_status(c->run_dir, IPC_SUPERVISE);
	if (sup == NULL || sup->status->supervisor == NULL) {
		fprintf(stderr, "mantactl: node %s is not running\n", c->instance);
		ipc_msg_free(sup);
		cfg_free(c);
		ipc_context_term();
		return CTL_NOT_RUNNING;
	}
	reg = ctl_ask_status(c->run_dir, IPC_REGISTER);
	beat = ctl_ask_status(c->run_dir, IPC_BEAT);
	res = ctl_ask_status(c->run_dir, IPC_RES);
	ex = NULL;
	for (size_t i = 0; i < sup->status->supervisor->n_daemons; i++)
		if (strcmp(sup->status->supervisor->daemons[i]->name, "mantad-exec") == 0)
			ex = ctl_ask_status(c->run_dir, IPC_EXEC);
	o = build(c, sup->status->supervisor, reg ? reg->status->register_ : NULL,
	    beat ? beat->status->beat : NULL, res ? res->status->res : NULL,
	    ex ? ex->status->exec : NULL);
	if (a.json || !isatty(STDOUT_FILENO))
		json_print(stdout, o, 0);
	else
		print_human(o);
	json_decref(o);
	ipc_msg_free(sup);
	ipc_msg_free(reg);
	ipc_msg_free(beat);
	ipc_msg_free(res);
	ipc_msg_free(ex);
	cfg_free(c);
	ipc_context_term();
	return CTL_OK;
}
