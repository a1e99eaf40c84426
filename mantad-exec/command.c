/* command: the manager's commands, as mantad-beat hands them over
 * (WIRE.md section 5): deploy_task, stop_task, stop_swarm, stop_node.
 * Each is answered at once; the work is queued (queue.c) or signalled to
 * a shim (runtime.c), never done in the request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "image.h"
#include "log.h"

#include "exec.h"

struct run *
run_new(void)
{
	struct run *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->status_fd = -1;
	r->pidfd = -1;
	r->netns_lfd = -1;
	return r;
}

void
run_free(struct run *r)
{
	if (r == NULL)
		return;
	if (r->status_fd >= 0)
		close(r->status_fd);
	if (r->pidfd >= 0)
		close(r->pidfd);
	if (r->netns_lfd >= 0)
		close(r->netns_lfd);
	free(r->netns);
	free(r->image);
	free(r->alias);
	free(r->dir);
	free(r->log);
	free(r->stop_reason);
	free(r->waiting);
	explicit_bzero(r->token, sizeof(r->token));
	free(r);
}

void
run_maybe_forget(struct exec *x, struct run *r)
{
	if (!run_state_final(r->state) || !r->logs_done || r->log_busy ||
	    r->shim != 0)
		return;
	TAILQ_REMOVE(&x->runs, r, all);
	run_free(r);
}

static int
new_token(char out[TOKEN_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[TOKEN_BYTES];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -1;
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 0xf];
	}
	out[TOKEN_HEX] = '\0';
	explicit_bzero(b, sizeof(b));
	return 0;
}

static struct run *
run_from_task(const Common__Tasks__MqttTask *t)
{
	struct run *r;

	if ((r = run_new()) == NULL)
		return NULL;
	r->swarm = id_from_pair(t->swarm_id);
	r->task = id_from_pair(t->task_id);
	r->iteration = t->iteration;
	r->circular = t->circular;
	r->gpu = t->gpu;
	r->script = t->payload.len >= 2 && t->payload.data[0] == '#' &&
	    t->payload.data[1] == '!';
	r->image = strdup(t->image ? t->image : "");
	r->alias = strdup(t->alias ? t->alias : "");
	if (r->image == NULL || r->alias == NULL || new_token(r->token) == -1) {
		run_free(r);
		return NULL;
	}
	return r;
}

/* A deploy that will not run: FAILED at once (one final update, as for
 * any run), and SendError with the reason. A second deploy of a round that
 * exists gets only the error: its run has its own, single, final update. */
static void
refuse(struct exec *x, const Common__Tasks__MqttTask *t, const char *reason,
    uint32_t error_id)
{
	struct run *r;
	struct manta_id swarm = id_from_pair(t->swarm_id);
	struct manta_id task = id_from_pair(t->task_id);

	if (id_is_zero(swarm) || id_is_zero(task) || (r = run_from_task(t)) == NULL) {
		announce_error(x, &swarm, &task, t->iteration, t->circular,
		    error_id, "deploy_task refused: %s", reason);
		return;
	}
	/* The names may be what was wrong: keep only printable ASCII, and
	 * not too much of it (mantactl tasks shows the image). */
	if (strlen(r->image) > IMAGE_NAME_MAX)
		strcpy(r->image + IMAGE_NAME_MAX - 3, "...");
	if (strlen(r->alias) > ALIAS_MAX)
		r->alias[ALIAS_MAX] = '\0';
	for (char *p = r->image; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	for (char *p = r->alias; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	switch (store_run_insert(x->db, r, "QUEUED", NULL)) {
	case 0:
		if (run_end_unlisted(x, r, RS_FAILED, reason, error_id) == -1)
			announce_unstored(x, r, RS_FAILED, reason, error_id);
		break;
	case 1:
		announce_error(x, &swarm, &task, t->iteration, t->circular,
		    error_id, "deploy_task refused: %s", reason);
		break;
	default:
		/* exec.db refuses writes (disk full, read-only): tell anyway. */
		announce_unstored(x, r, RS_FAILED, reason, error_id);
		break;
	}
	run_free(r);
}

static void
deploy(struct exec *x, const Common__Tasks__MqttTask *t)
{
	char reason[512], th[ID_HEX_LEN + 1], name[32];
	const char *why;
	uint32_t error_id = ERR_DOCKER;
	struct run *r, *o, *next;

	if ((why = validate_task(x, t, &error_id, reason, sizeof(reason))) != NULL) {
		refuse(x, t, why, error_id);
		return;
	}
	if ((why = drain_refusing(x, &error_id, reason, sizeof(reason))) != NULL) {
		refuse(x, t, why, error_id);
		return;
	}
	if ((r = run_from_task(t)) == NULL) {
		log_warnx("out of memory: deploy_task dropped");
		return;
	}
	switch (store_run_insert(x->db, r, "QUEUED", NULL)) {
	case 0:
		break;
	case 1:
		/* The reference refuses a round it knows again: NODE (not
		 * one forgotten by stop_swarm or that failed to deploy). */
		id_to_hex(r->task, th);
		announce_error(x, &r->swarm, &r->task, r->iteration, r->circular,
		    ERR_NODE, "deploy_task refused: task %s iteration %u"
		    " circular %u was deployed here already", th, r->iteration,
		    r->circular);
		run_free(r);
		return;
	default:
		announce_unstored(x, r, RS_FAILED, "node error: unable to record"
		    " the task in exec.db", ERR_NODE);
		run_free(r);
		return;
	}
	/* The next round of a task replaces the one still running
	 * (WIRE.md section 6). */
	for (o = TAILQ_FIRST(&x->runs); o != NULL; o = next) {
		next = TAILQ_NEXT(o, all);
		if (o != r && id_equal(o->swarm, r->swarm) &&
		    id_equal(o->task, r->task) && !run_state_final(o->state)) {
			char why2[96];

			snprintf(why2, sizeof(why2), "superseded by iteration %u"
			    " circular %u", r->iteration, r->circular);
			run_stop(x, o, why2);
		}
	}
	snprintf(name, sizeof(name), "%lld.log", (long long)r->id);
	if ((r->log = path_join(x->logs_dir, name)) == NULL ||
	    bundle_prepare(x, r, t->payload.data, t->payload.len) == -1 ||
	    store_run_set(x->db, r) == -1) {
		(void)run_end_unlisted(x, r, RS_FAILED, "node error: unable to"
		    " write the bundle", ERR_DOCKER);
		run_free(r);
		return;
	}
	r->state = RS_QUEUED;
	TAILQ_INSERT_TAIL(&x->runs, r, all);
	TAILQ_INSERT_TAIL(&x->queue, r, q);
	id_to_hex(r->task, th);
	log_info("task %s iteration %u circular %u: queued (image %s, %zu bytes)",
	    th, r->iteration, r->circular, r->image, t->payload.len);
	queue_admit(x);
}

void
run_stop(struct exec *x, struct run *r, const char *reason)
{
	if (run_state_final(r->state) || r->stop_requested)
		return;
	r->stop_requested = true;
	free(r->stop_reason);
	r->stop_reason = strdup(reason);
	(void)store_run_set(x->db, r);
	if (r->state == RS_QUEUED) {
		TAILQ_REMOVE(&x->queue, r, q);
		run_end_unlaunched(x, r, RS_STOPPED, reason, 0);
		return;
	}
	runtime_signal_stop(x, r);
}

static int
stop_task(struct exec *x, const Common__System__EnvId *e)
{
	struct manta_id swarm = id_from_pair(e->swarm_id);
	struct manta_id task = id_from_pair(e->task_id);
	struct run *r, *next;
	int n = 0;

	for (r = TAILQ_FIRST(&x->runs); r != NULL; r = next) {
		next = TAILQ_NEXT(r, all);
		if (id_equal(r->swarm, swarm) && id_equal(r->task, task) &&
		    !run_state_final(r->state)) {
			run_stop(x, r, "stop_task");
			n++;
		}
	}
	return n;
}

static int
stop_swarm(struct exec *x, struct manta_id swarm, const char *reason)
{
	struct run *r, *next;
	int n = 0;

	for (r = TAILQ_FIRST(&x->runs); r != NULL; r = next) {
		next = TAILQ_NEXT(r, all);
		if (id_equal(r->swarm, swarm) && !run_state_final(r->state)) {
			run_stop(x, r, reason);
			n++;
		}
	}
	return n;
}

/* A stop_task that stops nothing: a task never deployed here is unknown,
 * SendError NODE as the reference; one that ended already is left as it
 * is (its single final update is out). */
static void
stop_task_none(struct exec *x, const Common__System__EnvId *e)
{
	struct manta_id swarm = id_from_pair(e->swarm_id);
	struct manta_id task = id_from_pair(e->task_id);
	char sh[ID_HEX_LEN + 1], th[ID_HEX_LEN + 1];
	struct run_row row;
	int rc;

	id_to_hex(swarm, sh);
	id_to_hex(task, th);
	if ((rc = store_run_find(x->db, &swarm, &task, NULL, &row)) == 1) {
		log_info("stop_task: task %s ended already (%s)", th, row.status);
		return;
	}
	if (rc == 0)
		announce_error(x, &swarm, &task, 0, 0, ERR_NODE, "stop_task:"
		    " task %s of swarm %s is not known on this node", th, sh);
}

/* A hand-off seen already (the sender retries after no answer): true.
 * Else it is remembered, the oldest of HANDOFFS forgotten. */
static bool
handoff_seen(struct exec *x, const char *id)
{
	char *copy;

	if (id == NULL || *id == '\0')
		return false;
	for (unsigned i = 0; i < HANDOFFS; i++)
		if (x->handoffs[i] != NULL && strcmp(x->handoffs[i], id) == 0)
			return true;
	if ((copy = strdup(id)) == NULL)
		return false;
	free(x->handoffs[x->handoff_next]);
	x->handoffs[x->handoff_next] = copy;
	x->handoff_next = (x->handoff_next + 1) % HANDOFFS;
	return false;
}

void
command_free(struct exec *x)
{
	for (unsigned i = 0; i < HANDOFFS; i++) {
		free(x->handoffs[i]);
		x->handoffs[i] = NULL;
	}
}

static const struct manta_id zero_id = MANTA_ID_ZERO;

static int
cmd_deploy(struct exec *x, const uint8_t *data, size_t len, char *err, size_t errlen)
{
	Common__Tasks__MqttTask *t;

	if ((t = common__tasks__mqtt_task__unpack(NULL, len, data)) == NULL) {
		announce_error(x, &zero_id, &zero_id, 0, 0, ERR_MQTT,
		    "deploy_task: payload of %zu bytes is not a MqttTask", len);
		snprintf(err, errlen, "payload is not a MqttTask");
		return -1;
	}
	deploy(x, t);
	common__tasks__mqtt_task__free_unpacked(t, NULL);
	return 0;
}

static int
cmd_stop_task(struct exec *x, const uint8_t *data, size_t len, char *err,
    size_t errlen)
{
	Common__System__EnvId *e;

	if ((e = common__system__env_id__unpack(NULL, len, data)) == NULL) {
		announce_error(x, &zero_id, &zero_id, 0, 0, ERR_MQTT,
		    "stop_task: payload of %zu bytes is not an EnvId", len);
		snprintf(err, errlen, "payload is not an EnvId");
		return -1;
	}
	if (stop_task(x, e) == 0)
		stop_task_none(x, e);
	common__system__env_id__free_unpacked(e, NULL);
	return 0;
}

static int
cmd_stop_swarm(struct exec *x, const uint8_t *data, size_t len, char *err,
    size_t errlen)
{
	Common__System__PairId *p;
	struct manta_id swarm;
	char sh[ID_HEX_LEN + 1];
	int n;

	if ((p = common__system__pair_id__unpack(NULL, len, data)) == NULL) {
		announce_error(x, &zero_id, &zero_id, 0, 0, ERR_MQTT,
		    "stop_swarm: payload of %zu bytes is not a PairId", len);
		snprintf(err, errlen, "payload is not a PairId");
		return -1;
	}
	id_to_hex(id_from_pair(p), sh);
	n = stop_swarm(x, id_from_pair(p), "stop_swarm");
	/* The reference forgets the swarm's tasks: the same rounds
	 * deployed again run (WIRE.md section 6). */
	swarm = id_from_pair(p);
	if (store_runs_forget(x->db, &swarm) == -1)
		log_warnx("stop_swarm %s: its rounds stay known", sh);
	log_info("stop_swarm %s: %d tasks to stop", sh, n);
	common__system__pair_id__free_unpacked(p, NULL);
	return 0;
}

static int
cmd_stop_node(struct exec *x, const uint8_t *data, size_t len, char *err,
    size_t errlen)
{
	struct job *j;

	/* WIRE.md section 9: a graceful stop of the whole node, as
	 * mantactl stop: no new task from now on; the supervisor waits for
	 * the running ones (its drain timeout), then stops every daemon,
	 * and our SIGTERM stops what still runs. */
	log_info("stop_node: draining, then stopping the node");
	drain_set(x, true, true);
	if (!x->shutdown_asked && (j = job_new(JOB_SHUTDOWN)) != NULL) {
		x->shutdown_asked = true;
		(void)jobs_post(x->jobs, j);
	}
	return 0;
}

/* The commands mantad-beat hands us, by the topic's last segment. */
static const struct {
	const char *name;
	int (*handle)(struct exec *, const uint8_t *, size_t, char *, size_t);
} commands[] = {
	{ "deploy_task", cmd_deploy },
	{ "stop_task", cmd_stop_task },
	{ "stop_swarm", cmd_stop_swarm },
	{ "stop_node", cmd_stop_node },
};

int
command_handle(struct exec *x, const Manta__Ipc__Command *c, char *err,
    size_t errlen)
{
	if (handoff_seen(x, c->handoff)) {
		log_info("%s: hand-off %s again: the same command, done already",
		    c->name, c->handoff);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(c->name, commands[i].name) == 0)
			return commands[i].handle(x, c->payload.data, c->payload.len,
			    err, errlen);
	snprintf(err, errlen, "command %s is not mantad-exec's", c->name);
	return -1;
}
