/* mantactl metrics [NAME] [-c FILE]: the node's figures in the Prometheus
 * text exposition format (version 0.0.4), for node_exporter's textfile
 * collector or any scraper that runs a command. Every name has the
 * manta_node_ prefix, base units (seconds, bytes, ratios) in the name and
 * _total on counters. The figures come from each daemon's StatusReply, the
 * last res sample and /proc of each daemon's pid. Exit 3 when no
 * supervisor answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "mantactl.h"

#define METRICS_USAGE "metrics [NAME] [-c FILE]"

struct proc_fig {
	bool ok;
	unsigned long long rss_bytes;
	double cpu_s;
	long threads;
};

/* A label value with \, " and newline escaped, as the format requires. */
static void
put_label(FILE *f, const char *v)
{
	for (; v != NULL && *v != '\0'; v++) {
		if (*v == '\\')
			fputs("\\\\", f);
		else if (*v == '"')
			fputs("\\\"", f);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static void
family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value"} v, or name v when label is NULL. */
static void
sample(FILE *f, const char *name, const char *label, const char *value, double v)
{
	fputs(name, f);
	if (label != NULL) {
		fprintf(f, "{%s=\"", label);
		put_label(f, value);
		fputs("\"}", f);
	}
	fprintf(f, " %.17g\n", v);
}

static void
gauge(FILE *f, const char *name, const char *help, double v)
{
	family(f, name, "gauge", help);
	sample(f, name, NULL, NULL, v);
}

static void
counter(FILE *f, const char *name, const char *help, double v)
{
	family(f, name, "counter", help);
	sample(f, name, NULL, NULL, v);
}

/* A Histogram (libcommon/hist.c, microseconds) as a Prometheus histogram
 * in seconds: cumulative buckets, +Inf, _sum, _count. An absent one (an
 * older daemon) prints nothing. */
static void
histogram(FILE *f, const char *name, const char *help, const Manta__Ipc__Histogram *h)
{
	uint64_t cum = 0;

	if (h == NULL || h->n_counts != h->n_bounds_us + 1)
		return;
	family(f, name, "histogram", help);
	for (size_t i = 0; i < h->n_bounds_us; i++) {
		cum += h->counts[i];
		fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds_us[i] / 1e6,
		    (unsigned long long)cum);
	}
	cum += h->counts[h->n_bounds_us];
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	fprintf(f, "%s_sum %.6f\n", name, h->sum_us / 1e6);
	fprintf(f, "%s_count %llu\n", name, (unsigned long long)h->count);
}

/* RSS, CPU time and threads of pid from /proc/PID/stat. */
static struct proc_fig
proc_figures(int pid)
{
	struct proc_fig p = { 0 };
	char path[64], buf[1024], *s;
	unsigned long long ut, st, rss;
	long threads, tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	FILE *fp;

	if (pid <= 0)
		return p;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return p;
	s = fgets(buf, sizeof(buf), fp);
	fclose(fp);
	/* After the command name in parentheses: field 3 on. */
	if (s == NULL || (s = strrchr(buf, ')')) == NULL)
		return p;
	if (sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu"
	    " %*d %*d %*d %*d %ld %*d %*u %*u %llu", &ut, &st, &threads, &rss) != 4)
		return p;
	p.ok = true;
	p.cpu_s = (double)(ut + st) / (double)(tick > 0 ? tick : 100);
	p.rss_bytes = rss * (unsigned long long)(page > 0 ? page : 4096);
	p.threads = threads;
	return p;
}

static void
daemons(FILE *f, const Manta__Ipc__SupervisorStatus *sup)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{ "manta_node_daemon_up", "gauge", "Whether the daemon is up (1) or down or in backoff (0)." },
		{ "manta_node_daemon_restarts_total", "counter", "Restarts of the daemon by the supervisor since it started." },
		{ "manta_node_daemon_uptime_seconds", "gauge", "Seconds since the daemon was last started." },
		{ "manta_node_daemon_resident_memory_bytes", "gauge", "Resident set size of the process." },
		{ "manta_node_daemon_cpu_seconds_total", "counter", "User and system CPU time of the process." },
		{ "manta_node_daemon_threads", "gauge", "Threads of the process." },
	};
	struct proc_fig *pf = calloc(sup->n_daemons + 1, sizeof(*pf));

	if (pf == NULL)
		return;
	for (size_t i = 0; i < sup->n_daemons; i++)
		pf[i] = proc_figures(sup->daemons[i]->pid);
	for (size_t k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
		family(f, fam[k].name, fam[k].type, fam[k].help);
		for (size_t i = 0; i < sup->n_daemons; i++) {
			const Manta__Ipc__DaemonState *d = sup->daemons[i];
			const struct proc_fig p = pf[i];
			bool up = strcmp(d->state, "up") == 0;

			switch (k) {
			case 0:
				sample(f, fam[k].name, "daemon", d->name, up);
				break;
			case 1:
				sample(f, fam[k].name, "daemon", d->name, d->restarts);
				break;
			case 2:
				sample(f, fam[k].name, "daemon", d->name, (double)d->uptime_s);
				break;
			case 3:
				if (p.ok)
					sample(f, fam[k].name, "daemon", d->name, (double)p.rss_bytes);
				break;
			case 4:
				if (p.ok)
					sample(f, fam[k].name, "daemon", d->name, p.cpu_s);
				break;
			case 5:
				if (p.ok)
					sample(f, fam[k].name, "daemon", d->name, (double)p.threads);
				break;
			}
		}
	}
	free(pf);
}

/* The last sample res took (not a fresh one: no wait, no extra work). */
static ipc_msg *
ask_snapshot(const char *run_dir)
{
	ipc_msg req = MANTA__IPC__MSG__INIT;
	Manta__Ipc__SnapshotRequest sr = MANTA__IPC__SNAPSHOT_REQUEST__INIT;

	req.body_case = MANTA__IPC__MSG__BODY_SNAPSHOT_REQ;
	req.snapshot_req = &sr;
	return ctl_call(run_dir, IPC_RES, &req, MANTA__IPC__MSG__BODY_SNAPSHOT, 1000);
}

static void
resources(FILE *f, const Manta__Ipc__ResStatus *res, const Manta__Ipc__Snapshot *snap)
{
	const Common__Informations__MetricsSnapshot *m = snap ? snap->metrics : NULL;
	const Common__Informations__AdditionalMetrics *a = snap ? snap->additional : NULL;

	if (res != NULL) {
		gauge(f, "manta_node_cpus", "CPUs of the host.", res->cpu_count);
		counter(f, "manta_node_resource_samples_total",
		    "Resource samples mantad-res has taken since it started.", (double)res->samples);
	}
	if (m != NULL && m->cpu != NULL)
		gauge(f, "manta_node_cpu_usage_ratio",
		    "Host CPU busy, 0 to 1, in the last sample.", m->cpu->usage_percent / 100.0);
	if (m != NULL && m->memory != NULL) {
		gauge(f, "manta_node_memory_total_bytes", "Host memory.",
		    (double)m->memory->total_bytes);
		gauge(f, "manta_node_memory_available_bytes",
		    "Host memory available, in the last sample.", (double)m->memory->available_bytes);
		gauge(f, "manta_node_memory_used_bytes",
		    "Host memory used, in the last sample.", (double)m->memory->used_bytes);
		gauge(f, "manta_node_swap_used_bytes",
		    "Host swap used, in the last sample.", (double)m->memory->swap_used_bytes);
	}
	if (a != NULL && a->n_disk_usage > 0) {
		family(f, "manta_node_disk_free_bytes", "gauge",
		    "Free bytes of the file systems holding the state and the datasets.");
		for (size_t i = 0; i < a->n_disk_usage; i++)
			sample(f, "manta_node_disk_free_bytes", "mountpoint",
			    a->disk_usage[i]->mount_point, (double)a->disk_usage[i]->free_bytes);
	}
	if (a != NULL && a->network != NULL) {
		counter(f, "manta_node_network_transmit_bytes_total",
		    "Bytes the host sent on its interfaces.", (double)a->network->bytes_sent);
		counter(f, "manta_node_network_receive_bytes_total",
		    "Bytes the host received on its interfaces.", (double)a->network->bytes_recv);
	}
}

static void
light(FILE *f, const Manta__Ipc__LightStatus *l)
{
	if (l == NULL)
		return;
	counter(f, "manta_node_light_calls_total", "Light service calls since mantad-light started.",
	    (double)l->calls);
	gauge(f, "manta_node_light_active_calls", "Light service calls in progress.",
	    (double)l->active);
	counter(f, "manta_node_light_refused_calls_total",
	    "Light calls refused (PERMISSION_DENIED or UNAUTHENTICATED).", (double)l->refused);
	counter(f, "manta_node_light_failed_calls_total",
	    "Light calls that ended with another error.", (double)l->failed);
	counter(f, "manta_node_light_sent_bytes_total", "Bytes the Light service sent to tasks.",
	    (double)l->bytes_out);
	counter(f, "manta_node_light_received_bytes_total",
	    "Bytes the Light service received from tasks.", (double)l->bytes_in);
}

static void
tasks(FILE *f, const Manta__Ipc__ExecStatus *ex)
{
	const struct {
		const char *state;
		uint32_t n;
	} t[] = {
		{ "queued", ex->queued }, { "pending", ex->pending },
		{ "running", ex->running }, { "completed", ex->completed },
		{ "failed", ex->failed }, { "stopped", ex->stopped },
	};

	family(f, "manta_node_tasks", "gauge",
	    "Task runs mantad-exec holds (exec.db), by state.");
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		sample(f, "manta_node_tasks", "state", t[i].state, t[i].n);
	gauge(f, "manta_node_draining", "Whether the node takes no new task (1).", ex->draining);
	histogram(f, "manta_node_task_launch_duration_seconds",
	    "From a run's admission (PENDING) to its container running.", ex->launch_latency);
}

static void
outboxes(FILE *f, const Manta__Ipc__RegisterStatus *reg, const Manta__Ipc__BeatStatus *beat,
    const Manta__Ipc__ExecStatus *ex)
{
	if (reg == NULL && beat == NULL && ex == NULL)
		return;
	family(f, "manta_node_outbox_messages", "gauge",
	    "Messages kept until their peer has them: broker (beat.db), manager"
	    " (task logs, register.db), daemons (exec.db).");
	if (beat != NULL)
		sample(f, "manta_node_outbox_messages", "outbox", "broker", (double)beat->outbox);
	if (reg != NULL)
		sample(f, "manta_node_outbox_messages", "outbox", "manager", (double)reg->outbox);
	if (ex != NULL)
		sample(f, "manta_node_outbox_messages", "outbox", "exec", (double)ex->outbox);
	if (reg != NULL)
		gauge(f, "manta_node_manager_outbox_bytes",
		    "Content bytes of the task log messages waiting for the manager.",
		    (double)reg->outbox_bytes);
	if (beat != NULL)
		gauge(f, "manta_node_broker_outbox_peak_messages",
		    "The most publications the broker outbox held at once since mantad-beat started.",
		    (double)beat->outbox_peak);
}

static void
print_metrics(FILE *f, const struct manta_cfg *c, const Manta__Ipc__StatusReply *const st[6],
    const Manta__Ipc__Snapshot *snap)
{
	const Manta__Ipc__SupervisorStatus *sup = st[0]->supervisor;
	const Manta__Ipc__RegisterStatus *reg = st[1] ? st[1]->register_ : NULL;
	const Manta__Ipc__BeatStatus *beat = st[2] ? st[2]->beat : NULL;
	const Manta__Ipc__ResStatus *res = st[3] ? st[3]->res : NULL;
	const Manta__Ipc__ExecStatus *ex = st[4] ? st[4]->exec : NULL;
	const Manta__Ipc__LightStatus *lt = st[5] ? st[5]->light : NULL;
	int sup_pid = ctl_running_pid(c);
	struct proc_fig self = proc_figures(sup_pid > 1 ? sup_pid : 0);

	family(f, "manta_node_info", "gauge", "The node's identity; always 1.");
	fputs("manta_node_info{instance_name=\"", f);
	put_label(f, c->instance);
	fputs("\",alias=\"", f);
	put_label(f, c->alias);
	fputs("\",node_id=\"", f);
	put_label(f, reg && reg->node_id ? reg->node_id : "");
	fputs("\"} 1\n", f);
	gauge(f, "manta_node_stopping", "Whether the node is stopping (1).", sup->stopping);
	if (reg != NULL)
		gauge(f, "manta_node_registered", "Whether the manager has registered the node (1).",
		    reg->registered);
	if (beat != NULL) {
		gauge(f, "manta_node_mqtt_connected", "Whether mantad-beat is connected to the broker (1).",
		    beat->connected);
		counter(f, "manta_node_heartbeats_total", "Heartbeats published since mantad-beat started.",
		    (double)beat->heartbeats);
		histogram(f, "manta_node_heartbeat_duration_seconds",
		    "From a heartbeat's tick to its hand-off to the MQTT library"
		    " (sample from mantad-res, encode, publish).", beat->heartbeat_latency);
	}
	if (ex != NULL)
		tasks(f, ex);
	outboxes(f, reg, beat, ex);
	daemons(f, sup);
	if (self.ok) {
		gauge(f, "manta_node_supervisor_resident_memory_bytes",
		    "Resident set size of the supervisor (mantactl start).", (double)self.rss_bytes);
		counter(f, "manta_node_supervisor_cpu_seconds_total",
		    "User and system CPU time of the supervisor.", self.cpu_s);
	}
	resources(f, res, snap);
	light(f, lt);
}

/* Whether the supervisor runs mantad-<endpoint> (exec and light are
 * optional builds): asking an endpoint nobody binds costs the timeout. */
static bool
supervised(const Manta__Ipc__SupervisorStatus *sup, const char *endpoint)
{
	for (size_t i = 0; i < sup->n_daemons; i++)
		if (strncmp(sup->daemons[i]->name, "mantad-", 7) == 0 &&
		    strcmp(sup->daemons[i]->name + 7, endpoint) == 0)
			return true;
	return false;
}

int
cmd_metrics(int argc, char **argv)
{
	static const char *const names[6] = {
		IPC_SUPERVISE, IPC_REGISTER, IPC_BEAT, IPC_RES, IPC_EXEC, IPC_LIGHT,
	};
	const Manta__Ipc__StatusReply *st[6] = { NULL };
	ipc_msg *rep[6] = { NULL }, *snap = NULL;
	struct ctl_args a;
	struct manta_cfg *c;
	int rc;

	if ((rc = ctl_parse(argc, argv, METRICS_USAGE, 0, &a)) != 0)
		return rc;
	if ((c = ctl_load_config(&a)) == NULL)
		return CTL_FAIL;
	rep[0] = ctl_ask_status(c->run_dir, names[0]);
	if (rep[0] == NULL || rep[0]->status->supervisor == NULL) {
		fprintf(stderr, "mantactl: node %s is not running\n", c->instance);
		rc = CTL_NOT_RUNNING;
		goto out;
	}
	for (size_t i = 0; i < 6; i++) {
		if (i > 0 && supervised(rep[0]->status->supervisor, names[i]))
			rep[i] = ctl_ask_status(c->run_dir, names[i]);
		st[i] = rep[i] ? rep[i]->status : NULL;
	}
	snap = ask_snapshot(c->run_dir);
	print_metrics(stdout, c, st, snap ? snap->snapshot : NULL);
	rc = fflush(stdout) == 0 && !ferror(stdout) ? CTL_OK : CTL_FAIL;
out:
	for (size_t i = 0; i < 6; i++)
		ipc_msg_free(rep[i]);
	ipc_msg_free(snap);
	cfg_free(c);
	ipc_context_term();
	return rc;
}
