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
#define ASK_MS 1000

static ipc_msg *
ask(const char *run_dir, const char *name)
{
	ipc_msg req = MANTA__IPC__MSG__INIT;
	Manta__Ipc__StatusRequest sr = MANTA__IPC__STATUS_REQUEST__INIT;
	ipc_msg *rep = NULL;

	req.body_case = MANTA__IPC__MSG__BODY_STATUS_REQ;
	req.status_req = &sr;
	if (ipc_call(run_dir, name, &req, &rep, ASK_MS) == -1)
		return NULL;
	if (rep->body_case != MANTA__IPC__MSG__BODY_STATUS) {
		ipc_msg_free(rep);
		return NULL;
	}
	return rep;
}

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
	for (size_t i = 0; i < sup->n_daemons; i++) {
		const Manta__Ipc__DaemonState *d = sup->daemons[i];
		json_array_append_new(daemons, json_pack("{s:s, s:o, s:s, s:i, s:I}",
		    "name", d->name, "pid", d->pid > 0 ? json_integer(d->pid) : json_null(),
		    "state", d->state, "restarts", (int)d->restarts,
		    "uptime_s", (json_int_t)d->uptime_s));
	}
	json_object_set_new(o, "daemons", daemons);
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
	sup = ask(c->run_dir, IPC_SUPERVISE);
	if (sup == NULL || sup->status->supervisor == NULL) {
		fprintf(stderr, "mantactl: node %s is not running\n", c->instance);
		ipc_msg_free(sup);
		cfg_free(c);
		ipc_context_term();
		return CTL_NOT_RUNNING;
	}
	reg = ask(c->run_dir, IPC_REGISTER);
	beat = ask(c->run_dir, IPC_BEAT);
	res = ask(c->run_dir, IPC_RES);
	ex = NULL;
	for (size_t i = 0; i < sup->status->supervisor->n_daemons; i++)
		if (strcmp(sup->status->supervisor->daemons[i]->name, "mantad-exec") == 0)
			ex = ask(c->run_dir, IPC_EXEC);
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
