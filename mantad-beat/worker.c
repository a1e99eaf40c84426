/* worker: a thread that makes the blocking IPC calls (to exec, register,
 * res) so that a slow or absent peer never stalls the main loop, its
 * heartbeats and its broker traffic. Jobs run one at a time, in order, so
 * commands reach exec in the order the broker delivered them. Results that
 * change state go back to the main loop as events. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#include "beat.h"
#include "dispatch.h"

struct worker {
	struct evq_worker *th;
	size_t max;
	unsigned long dropped;	/* main loop only */
	const char *name;	/* borrowed, as is run_dir */
	const char *run_dir;
	struct evq *q;
	char last_probe[512];	/* JOB_TLSPROBE: the cause logged last */
};

struct job *
job_new(enum job_type type)
{
	struct job *j;

	if ((j = calloc(1, sizeof(*j))) != NULL)
		j->type = type;
	return j;
}

void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	free(j->name);
	free(j->topic);
	free(j->data);
	free(j->content);
	beat_probe_free(j->probe);
	free(j);
}

static void
report(struct worker *w, const struct job *j, uint32_t error_id,
    const char *content)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__ReportError re = MANTA__IPC__REPORT_ERROR__INIT;
	Common__System__Error e;
	Common__System__PairId swarm = COMMON__SYSTEM__PAIR_ID__INIT;
	Common__System__PairId node = COMMON__SYSTEM__PAIR_ID__INIT;
	Common__System__PairId task = COMMON__SYSTEM__PAIR_ID__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	struct timespec now;
	char *text = strdup(content);

	if (text == NULL) {
		log_warnx("unable to report an error: out of memory");
		return;
	}
	common__system__error__init(&e);
	id_to_pair(j->swarm_id, &swarm);
	id_to_pair(j->node_id, &node);
	id_to_pair(j->task_id, &task);
	clock_gettime(CLOCK_REALTIME, &now);
	ts.seconds = now.tv_sec;
	ts.nanos = (int32_t)now.tv_nsec;
	e.swarm_id = &swarm;
	e.node_id = &node;
	e.task_id = &task;
	e.iteration = j->iteration;
	e.circular = j->circular;
	e.timestamp = &ts;
	e.error_id = error_id;
	e.content = text;
	re.error = &e;
	m.body_case = MANTA__IPC__MSG__BODY_REPORT_ERROR;
	m.report_error = &re;
	if (ipc_call_ok(w->run_dir, IPC_REGISTER, &m, CALL_REPORT_MS) == -1)
		log_warnx("unable to report to %s (error %u, %s): no answer",
		    IPC_REGISTER, error_id, content);
	free(text);
}

/* Hands one Command over, trying again every CMD_RETRY_MS until the daemon
 * answers: a command the broker delivered is never given up while we run
 * (a slow exec gets it late, never a failure report for what it then
 * runs; a repeated one carries the same handoff id, and exec takes it as
 * the command it has already). Only a stop ends the
 * attempts. The main loop hears EV_CMD_DONE either way. */
static void
run_command(struct evq_worker *th, struct worker *w, struct job *j)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__Command c;
	ipc_msg *reply = NULL;
	struct event *ev;
	int attempts = 1;

	manta__ipc__command__init(&c);
	c.name = j->name;
	c.topic = j->topic;
	c.payload.data = j->data;
	c.payload.len = j->len;
	c.handoff = j->handoff;
	m.body_case = MANTA__IPC__MSG__BODY_COMMAND;
	m.command = &c;
	while (ipc_call(w->run_dir, j->dest, &m, &reply, CALL_CMD_MS) == -1) {
		if (attempts == 1)
			log_warnx("%s does not answer: holding %s (topic %s) and"
			    " trying again until it does", j->dest, j->name, j->topic);
		else if ((attempts & (attempts - 1)) == 0)	/* 2, 4, 8... */
			log_info("%s still does not answer %s (topic %s, hand-off"
			    " %s) after %d attempts", j->dest, j->name, j->topic,
			    j->handoff, attempts);
		attempts++;
		if (!evq_worker_nap(th, CMD_RETRY_MS)) {
			log_warnx("stopping: %s (topic %s) was not handed to %s",
			    j->name, j->topic, j->dest);
			goto done;
		}
	}
	if (attempts > 1)
		log_info("%s took %s (topic %s) at attempt %d", j->dest, j->name,
		    j->topic, attempts);
	/* A refusal is the owner's to report: it knows why. */
	if (reply->body_case == MANTA__IPC__MSG__BODY_REPLY &&
	    reply->reply->code != 0)
		log_warnx("%s refused %s (topic %s): %s", j->dest, j->name,
		    j->topic, reply->reply->error);
	else
		log_debug("%s took %s (topic %s, %zu bytes)", j->dest, j->name,
		    j->topic, j->len);
	ipc_msg_free(reply);
	if ((ev = event_new(EV_CMD_DONE)) != NULL) {
		ev->seq = j->seq;
		evq_push(w->q, ev);
	}
	return;
done:
	/* Stopping: still in the inbox, for the next start. */
	if ((ev = event_new(EV_CMD_DONE)) != NULL)
		evq_push(w->q, ev);
}

static void
run_regpoll(struct worker *w)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__RegistrationRequest rr = MANTA__IPC__REGISTRATION_REQUEST__INIT;
	ipc_msg *reply = NULL;
	struct event *ev;

	m.body_case = MANTA__IPC__MSG__BODY_REGISTRATION_REQ;
	m.registration_req = &rr;
	if (ipc_call(w->run_dir, IPC_REGISTER, &m, &reply, CALL_REGPOLL_MS) == -1)
		log_debug("no answer from %s yet", IPC_REGISTER);
	else if (reply->body_case != MANTA__IPC__MSG__BODY_REGISTRATION) {
		log_debug("%s has no registration yet", IPC_REGISTER);
		ipc_msg_free(reply);
		reply = NULL;
	}
	if ((ev = event_new(EV_REGISTRATION)) == NULL) {
		ipc_msg_free(reply);
		return;
	}
	ev->msg = reply;
	evq_push(w->q, ev);
}

/* The same cause is logged once per failure streak, a new one at once. */
static void
run_probe(struct worker *w, const struct beat_probe *bp)
{
	char why[sizeof(w->last_probe)];
	int rc = tls_probe(&bp->p, why, sizeof(why));

	if (rc != 1) {
		log_debug("TLS probe of %s:%d: %s", bp->host, bp->p.port, why);
		return;
	}
	if (bp->first || strcmp(why, w->last_probe) != 0)
		log_warnx("TLS to %s:%d: %s", bp->host, bp->p.port, why);
	memcpy(w->last_probe, why, sizeof(why));
}

void
beat_probe_free(struct beat_probe *bp)
{
	if (bp == NULL)
		return;
	free(bp->host);
	free(bp->ca_file);
	free(bp->cert_file);
	free(bp->key_file);
	free(bp);
}

static void
run_job(struct evq_worker *th, void *job, void *arg)
{
	struct worker *w = arg;
	struct job *j = job;

	switch (j->type) {
	case JOB_COMMAND:
		run_command(th, w, j);
		break;
	case JOB_REPORT:
		report(w, j, j->error_id, j->content);
		break;
	case JOB_REGPOLL:
		run_regpoll(w);
		break;
	case JOB_TLSPROBE:
		run_probe(w, j->probe);
		break;
	}
}

static void
free_job(void *job)
{
	job_free(job);
}

static const struct evq_ops job_ops = EVQ_OPS(struct job, next, free_job);

struct worker *
worker_start(const char *name, const char *run_dir, struct evq *q,
    size_t max_jobs)
{
	struct worker *w;

	if ((w = malloc(sizeof(*w))) == NULL) {
		log_warnx("unable to start the %s worker: out of memory", name);
		return NULL;
	}
	*w = (struct worker){ .name = name, .run_dir = run_dir, .q = q,
	    .max = max_jobs };
	if ((w->th = evq_worker_start(name, &job_ops, run_job, w)) == NULL) {
		free(w);
		return NULL;
	}
	return w;
}

int
worker_post(struct worker *w, struct job *j)
{
	/* Error reports are best effort: they may fill only a quarter of the
	 * queue, so that a flood of garbage cannot crowd real commands out. */
	size_t limit = j->type == JOB_REPORT ? w->max / 4 : w->max;

	if (evq_worker_post(w->th, j, limit) == 0)
		return 0;
	/* A flood must not turn into a flood of log lines. */
	if (++w->dropped == 1 || w->dropped % 100 == 0)
		log_warnx("%s worker queue full (%zu jobs): %lu jobs dropped so"
		    " far", w->name, w->max, w->dropped);
	return -1;
}

void
worker_stop(struct worker *w)
{
	size_t left;

	if (w == NULL)
		return;
	if ((left = evq_worker_stop(w->th)) > 0)
		log_info("%s worker: %zu jobs dropped at stop", w->name, left);
	free(w);
}
