/* queue: admission. Queued runs start oldest first (the reference starts
 * the newest first, WIRE.md section 11) while fewer than
 * tasks.max_concurrent run and their memory fits: each run reserves
 * containers.default_memory_limit bytes against what mantad-res reports
 * minus resources.reserve_memory_mb. Memory is not compressible, so it is
 * never over-committed; a reservation larger than that budget (but not
 * than the node's memory) is cut to the budget, so such a task runs alone.
 *
 * CPU is compressible: containers.default_cpu_limit caps each task (the
 * cgroup quota, bundle.c) and the tasks share the CPUs by weight; it is
 * not reserved, so tasks that wait on each other (an aggregator waiting
 * for its workers) all run on a small machine. resources.reserve_cpu
 * (node-only, off by default) reserves each limit against the CPUs less
 * resources.reserve_cpu_percent, as before.
 *
 * A queued run that cannot start now says why in run.reason (mantactl
 * tasks, status); one that can never start here (more memory than the
 * node has in all) is FAILED at once with SendError 18. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/sysinfo.h>

#include "log.h"

#include "exec.h"

#define WHY_MAX 256

void
queue_set_capacity(struct exec *x, unsigned cpus, uint64_t mem)
{
	uint64_t reserve = (uint64_t)x->cfg->reserve_memory_mb << 20;
	double cpu_budget = (double)cpus * (100 - x->cfg->reserve_cpu_percent) / 100.0;
	uint64_t mem_budget = mem > reserve ? mem - reserve : 0;

	if (cpus == 0 || mem == 0)
		return;
	if (cpu_budget != x->cpu_budget || mem_budget != x->mem_budget)
		log_info("budget for tasks: %llu MiB of memory%s", (unsigned long
		    long)(mem_budget >> 20), x->cfg->reserve_cpu ? "" :
		    ", CPUs shared");
	if (x->cfg->reserve_cpu && cpu_budget != x->cpu_budget)
		log_info("budget for tasks: %.2f CPUs (resources.reserve_cpu)",
		    cpu_budget);
	x->cpu_budget = cpu_budget;
	x->mem_budget = mem_budget;
	x->mem_total = mem;
}

void
queue_init_capacity(struct exec *x)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__CapacityRequest cr = MANTA__IPC__CAPACITY_REQUEST__INIT;
	ipc_msg *reply = NULL;
	struct sysinfo si;
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	/* Our own view first, mantad-res's when it answers. */
	if (sysinfo(&si) == 0)
		queue_set_capacity(x, n > 0 ? (unsigned)n : 1,
		    (uint64_t)si.totalram * si.mem_unit);
	m.body_case = MANTA__IPC__MSG__BODY_CAPACITY_REQ;
	m.capacity_req = &cr;
	if (ipc_call(x->cfg->run_dir, IPC_RES, &m, &reply, 500) == 0) {
		if (reply->body_case == MANTA__IPC__MSG__BODY_CAPACITY)
			queue_set_capacity(x, reply->capacity->cpu_count,
			    reply->capacity->mem_total_bytes);
		ipc_msg_free(reply);
	} else
		log_info("no capacity from %s yet: using our own figures",
		    IPC_RES);
}

static void
reservation(const struct exec *x, double *cpu, uint64_t *mem)
{
	*cpu = x->cfg->reserve_cpu && x->cfg->cpu_limit > 0 ?
	    x->cfg->cpu_limit : 0;
	if (*cpu > x->cpu_budget)
		*cpu = x->cpu_budget;
	*mem = x->cfg->memory_limit_bytes;
	if (*mem > x->mem_budget)
		*mem = x->mem_budget;
}

static void
reserve(struct exec *x, struct run *r)
{
	if (r->reserved)
		return;
	reservation(x, &r->cpu, &r->mem);
	x->cpu_used += r->cpu;
	x->mem_used += r->mem;
	x->admitted++;
	r->reserved = true;
}

void
queue_release(struct exec *x, struct run *r)
{
	if (!r->reserved)
		return;
	x->cpu_used -= r->cpu;
	if (x->cpu_used < 1e-9)
		x->cpu_used = 0;
	x->mem_used -= r->mem;
	x->admitted--;
	r->reserved = false;
}

/* Why the run at the head of the queue cannot start now (why filled),
 * or NULL when it can. */
static const char *
blocked(const struct exec *x, char *why, size_t len)
{
	double cpu;
	uint64_t mem;

	if (x->admitted >= (unsigned)x->cfg->max_concurrent) {
		snprintf(why, len, "waiting for a slot: %u task%s running"
		    " (tasks.max_concurrent = %d)", x->admitted,
		    x->admitted == 1 ? "" : "s", x->cfg->max_concurrent);
		return why;
	}
	if (x->admitted == 0)
		return NULL;
	reservation(x, &cpu, &mem);
	if (x->mem_used + mem > x->mem_budget) {
		snprintf(why, len, "waiting for memory: %llu MiB needed"
		    " (containers.default_memory_limit = %s), %llu of %llu MiB"
		    " reserved by running tasks", (unsigned long long)(mem >> 20),
		    x->cfg->default_memory_limit, (unsigned long long)
		    (x->mem_used >> 20), (unsigned long long)
		    (x->mem_budget >> 20));
		return why;
	}
	if (cpu > 0 && x->cpu_used + cpu > x->cpu_budget + 1e-6) {
		snprintf(why, len, "waiting for CPU: %.2f needed, %.2f of %.2f"
		    " reserved by running tasks (resources.reserve_cpu)", cpu,
		    x->cpu_used, x->cpu_budget);
		return why;
	}
	return NULL;
}

/* Why no run can ever start here (why filled), or NULL. */
static const char *
never(const struct exec *x, char *why, size_t len)
{
	uint64_t mem = x->cfg->memory_limit_bytes;

	if (x->mem_total > 0 && mem > x->mem_total) {
		snprintf(why, len, "cannot run on this node: each task is limited"
		    " to and reserves %s of memory (containers."
		    "default_memory_limit) and this node has %llu MiB in all",
		    x->cfg->default_memory_limit,
		    (unsigned long long)(x->mem_total >> 20));
		return why;
	}
	return NULL;
}

/* Records why r waits, when that changed. */
static void
set_waiting(struct exec *x, struct run *r, const char *why)
{
	char *w;

	if (r->waiting != NULL && strcmp(r->waiting, why) == 0)
		return;
	if ((w = strdup(why)) == NULL)
		return;
	free(r->waiting);
	r->waiting = w;
	(void)store_run_reason(x->db, r, w);
}

static void
refuse_queued(struct exec *x, struct run *r, const char *why)
{
	TAILQ_REMOVE(&x->queue, r, q);
	run_end_unlaunched(x, r, RS_FAILED, why, ERR_DOCKER);
}

const char *
queue_waiting(const struct exec *x)
{
	const struct run *r = TAILQ_FIRST(&x->queue);

	return r != NULL && r->waiting != NULL ? r->waiting : NULL;
}

void
queue_admit(struct exec *x)
{
	struct run *r, *next, *w;
	char why[WHY_MAX];

	/* During recovery a run admitted now would be taken for one that
	 * lost its shim: the queue moves once every run is reconciled. */
	if (x->stopping || x->recovering)
		return;
	for (r = TAILQ_FIRST(&x->queue); r != NULL; r = next) {
		next = TAILQ_NEXT(r, q);
		if (never(x, why, sizeof(why)) != NULL) {
			refuse_queued(x, r, why);
			continue;
		}
		/* Its image is being pulled (pull.c): the others go on. */
		if (pull_wait(x, r))
			continue;
		if (blocked(x, why, sizeof(why)) != NULL) {
			/* FIFO: the others wait for the same. */
			TAILQ_FOREACH(w, &x->queue, q)
				set_waiting(x, w, why);
			return;
		}
		TAILQ_REMOVE(&x->queue, r, q);
		free(r->waiting);
		r->waiting = NULL;
		reserve(x, r);
		(void)run_to_pending(x, r);
		if (runtime_launch(x, r) == -1)
			run_end_unlaunched(x, r, RS_FAILED, "node error: unable"
			    " to start the container's shim", ERR_DOCKER);
	}
}

void
queue_hold(struct exec *x, struct run *r)
{
	reserve(x, r);
}
