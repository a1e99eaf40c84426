/* queue: admission. Queued runs start oldest first (the reference starts
 * the newest first, WIRE.md section 11) while fewer than
 * tasks.max_concurrent run and their reservations fit: each run reserves
 * containers.default_cpu_limit CPUs and default_memory_limit bytes against
 * what mantad-res reports minus resources.reserve_cpu_percent and
 * reserve_memory_mb. A run that does not fit waits, QUEUED; nothing is
 * over-committed. A reservation larger than the whole budget is cut to the
 * budget, so such a task runs alone instead of never. */
#include <stdio.h>
#include <unistd.h>
#include <sys/sysinfo.h>

#include "log.h"

#include "exec.h"

void
queue_set_capacity(struct exec *x, unsigned cpus, uint64_t mem)
{
	uint64_t reserve = (uint64_t)x->cfg->reserve_memory_mb << 20;
	double cpu_budget = (double)cpus * (100 - x->cfg->reserve_cpu_percent) / 100.0;
	uint64_t mem_budget = mem > reserve ? mem - reserve : 0;

	if (cpus == 0 || mem == 0)
		return;
	if (cpu_budget != x->cpu_budget || mem_budget != x->mem_budget)
		log_info("budget for tasks: %.2f CPUs, %llu MiB", cpu_budget,
		    (unsigned long long)(mem_budget >> 20));
	x->cpu_budget = cpu_budget;
	x->mem_budget = mem_budget;
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
	*cpu = x->cfg->cpu_limit > 0 ? x->cfg->cpu_limit : 0;
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

void
queue_admit(struct exec *x)
{
	struct run *r, *next;

	/* During recovery a run admitted now would be taken for one that
	 * lost its shim: the queue moves once every run is reconciled. */
	if (x->stopping || x->recovering)
		return;
	for (r = TAILQ_FIRST(&x->queue); r != NULL; r = next) {
		double cpu;
		uint64_t mem;
		char th[ID_HEX_LEN + 1];

		next = TAILQ_NEXT(r, q);
		/* Its image is being pulled (pull.c): the others go on. */
		if (pull_wait(x, r))
			continue;
		if (x->admitted >= (unsigned)x->cfg->max_concurrent)
			return;
		reservation(x, &cpu, &mem);
		if (x->admitted > 0 && (x->cpu_used + cpu > x->cpu_budget + 1e-6 ||
		    x->mem_used + mem > x->mem_budget))
			return;
		TAILQ_REMOVE(&x->queue, r, q);
		reserve(x, r);
		(void)announce_transition(x, r, RS_PENDING, NULL, -1, 0);
		if (runtime_launch(x, r) == -1) {
			id_to_hex(r->task, th);
			(void)announce_transition(x, r, RS_FAILED, "node error:"
			    " unable to start the container's shim", -1, ERR_DOCKER);
			queue_release(x, r);
			bundle_remove(x, r);
			r->logs_done = true;
			(void)store_run_set(x->db, r);
			run_maybe_forget(x, r);
		}
	}
}

void
queue_hold(struct exec *x, struct run *r)
{
	reserve(x, r);
}
