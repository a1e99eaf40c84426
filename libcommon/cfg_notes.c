/* cfg_notes: what the keys that the reference node ignores (WIRE.md
 * section 10, rows "no") do on this node. Every reference file carries
 * them (`max_concurrent = 2`, `task_timeout = 3600`, ...), so the same file
 * does more here; `mantactl config check` and mantad-exec's start log say
 * what, one sentence per key, from the effective values. */
#include <stdarg.h>
#include <stdio.h>

#include "cfg.h"

#define NOTE_MAX 512

static int
emit(void (*note)(void *, const char *), void *arg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
emit(void (*note)(void *, const char *), void *arg, const char *fmt, ...)
{
	char buf[NOTE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	note(arg, buf);
	return 1;
}

int
cfg_reference_notes(const struct manta_cfg *c,
    void (*note)(void *, const char *), void *arg)
{
	const char *cpu = c->default_cpu_limit ? c->default_cpu_limit : "";
	const char *mem = c->default_memory_limit ? c->default_memory_limit : "";
	int n = 0;

	n += emit(note, arg, "tasks.max_concurrent = %d: at most %d tasks run at"
	    " once, the others wait QUEUED in deploy order (the reference"
	    " starts every task it is sent)", c->max_concurrent,
	    c->max_concurrent);
	if (c->task_timeout > 0)
		n += emit(note, arg, "tasks.task_timeout = %d: tasks running"
		    " longer than %d s are stopped and reported FAILED (SendError"
		    " 11, the reason at the end of their logs; 0 turns this off;"
		    " the reference ignores this key)", c->task_timeout,
		    c->task_timeout);
	if (c->cpu_limit > 0 && c->reserve_cpu)
		n += emit(note, arg, "containers.default_cpu_limit = \"%s\": each"
		    " task is capped at %s CPUs and, with resources.reserve_cpu,"
		    " starts only when %s CPUs are not reserved by other tasks"
		    " (the reference sets no limit)", cpu, cpu, cpu);
	else if (c->cpu_limit > 0)
		n += emit(note, arg, "containers.default_cpu_limit = \"%s\": each"
		    " task is capped at %s CPUs (cgroup quota); tasks share the"
		    " CPUs by weight and never wait for CPU (the reference sets"
		    " no limit)", cpu, cpu);
	if (c->memory_limit_bytes > 0)
		n += emit(note, arg, "containers.default_memory_limit = \"%s\":"
		    " each task is limited to %s of memory and reserves it: a"
		    " task waits QUEUED until that much is free of other tasks'"
		    " reservations, and fails at once (SendError 18) on a node"
		    " with less memory in all (the reference sets no limit)",
		    mem, mem);
	n += emit(note, arg, "resources.reserve_memory_mb = %d: %d MiB of the"
	    " node's memory are kept out of tasks' reservations (the reference"
	    " ignores this key)", c->reserve_memory_mb, c->reserve_memory_mb);
	if (c->reserve_cpu)
		n += emit(note, arg, "resources.reserve_cpu_percent = %d: %d%% of"
		    " the CPUs are kept out of tasks' CPU reservations (the"
		    " reference only checks it)", c->reserve_cpu_percent,
		    c->reserve_cpu_percent);
	n += emit(note, arg, "tasks.stream_logs = %s: no effect, as in the"
	    " reference: a task's output goes to the manager once, after it"
	    " ends by itself", c->stream_logs ? "true" : "false");
	if (c->live_logs_to_manager)
		n += emit(note, arg, "tasks.live_logs_to_manager = true: task"
		    " output goes to the manager while tasks run; a manager built"
		    " against the reference takes the first upload as the end of"
		    " the task");
	if (c->retry_attempts > 0)
		n += emit(note, arg, "tasks.retry_attempts = %d: a container the"
		    " runtime fails to start is tried %d more times (the"
		    " reference tries once)", c->retry_attempts,
		    c->retry_attempts);
	if (!c->cleanup_on_failure)
		n += emit(note, arg, "tasks.cleanup_on_failure = false: the"
		    " bundle of a FAILED task is kept in <state_dir>/tasks (the"
		    " reference ignores this key)");
	n += emit(note, arg, "resources.max_disk_usage_percent = %d: deploys"
	    " are refused (FAILED, SendError) while the file system of"
	    " paths.state_dir is more than %d%% full (the reference ignores"
	    " this key)", c->max_disk_usage_percent, c->max_disk_usage_percent);
	if (!c->verify_ssl)
		n += emit(note, arg, "security.verify_ssl = false: the manager's"
		    " and the broker's certificates are not checked (the"
		    " reference always checks them)");
	return n;
}
