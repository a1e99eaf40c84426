/* One reading of the host: CPU through a view (each consumer keeps its
 * own previous /proc/stat), memory, disks, network, uptime. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "res.h"

static int
view_update(struct cpu_view *v, const struct cpu_stat *cur)
{
	size_t n = 0;

	if (v->valid && cur->ms - v->base.ms < CPU_MIN_INTERVAL_MS)
		return 0;
	if (cur->nper > v->cap) {
		float *p = realloc(v->per, cur->nper * sizeof(*p));

		if (p == NULL)
			return -1;
		v->per = p;
		v->cap = cur->nper;
	}
	cpu_times_pct(&v->base.all, &cur->all, &v->pct);
	for (size_t i = 0; i < cur->nper; i++) {
		struct cpu_pct p = { 0, 0, 0, 0 };

		if (!cur->per[i].present)
			continue;
		if (i < v->base.nper)
			cpu_times_pct(&v->base.per[i], &cur->per[i], &p);
		v->per[n++] = p.usage;
	}
	v->nper = n;
	v->valid = 1;
	return cpu_stat_copy(&v->base, cur);
}

static void
view_free(struct cpu_view *v)
{
	cpu_stat_free(&v->base);
	free(v->per);
	v->per = NULL;
	v->nper = v->cap = 0;
}

static int
read_cpu(struct res *r)
{
	if (cpu_stat_read(PROC_STAT, &r->cur) < 0) {
		log_warn("unable to read %s", PROC_STAT);
		return -1;
	}
	r->cur.ms = daemon_now_ms();
	return 0;
}

int
res_init(struct res *r, const char *state_dir, const char *data_dir)
{
	memset(r, 0, sizeof(*r));
	r->state_dir = state_dir;
	r->data_dir = data_dir;
	cpu_info_read(PROC_CPUINFO, SYS_CPU, &r->ci);
	if (read_cpu(r) < 0)
		return -1;
	if (cpu_stat_copy(&r->periodic.base, &r->cur) < 0 ||
	    cpu_stat_copy(&r->snap.base, &r->cur) < 0) {
		log_error("unable to allocate CPU counters");
		return -1;
	}
	gpu_scan(SYS_PCI, PROC_NVIDIA, &r->gpus);
	log_info("%u CPUs (%u cores), %s; %u NVIDIA GPU(s)", r->cur.online,
	    r->ci.physical, r->ci.model[0] ? r->ci.model : "unknown model", r->gpus.n);
	return 0;
}

void
res_free(struct res *r)
{
	store_close(r->store);
	r->store = NULL;
	cpu_stat_free(&r->cur);
	view_free(&r->periodic);
	view_free(&r->snap);
	disk_close();
}

int
res_read_metrics(struct res *r, struct cpu_view *v, struct reading *rd)
{
	memset(rd, 0, offsetof(struct reading, disk));
	rd->disk_ok[0] = rd->disk_ok[1] = 0;
	memset(&rd->net, 0, sizeof(rd->net));
	rd->uptime = 0;
	clock_gettime(CLOCK_REALTIME, &rd->wall);
	if (read_cpu(r) < 0)
		return -1;
	if (view_update(v, &r->cur) < 0) {
		log_error("unable to allocate CPU counters");
		return -1;
	}
	rd->cpu = v;
	rd->cpu_count = r->cur.online;
	if (mem_read(PROC_MEMINFO, &rd->mem) < 0) {
		log_warn("unable to read %s", PROC_MEMINFO);
		return -1;
	}
	return 0;
}

int
res_read(struct res *r, struct cpu_view *v, struct reading *rd)
{
	if (res_read_metrics(r, v, rd) < 0)
		return -1;
	if (disk_read(r->state_dir, &rd->disk[0]) == 0)
		rd->disk_ok[0] = 1;
	else
		log_debug("unable to statvfs %s: %s", r->state_dir, strerror(errno));
	/* base_path is optional: absent is normal, not worth a line. */
	if (r->data_dir && disk_read(r->data_dir, &rd->disk[1]) == 0 &&
	    (!rd->disk_ok[0] || rd->disk[1].dev != rd->disk[0].dev))
		rd->disk_ok[1] = 1;
	if (net_read(PROC_NETDEV, &rd->net) < 0)
		log_debug("unable to read %s: %s", PROC_NETDEV, strerror(errno));
	if (uptime_now(&rd->uptime) < 0)
		log_debug("unable to read %s: %s", PROC_UPTIME, strerror(errno));
	return 0;
}

int
res_sample(struct res *r)
{
	struct reading rd;
	struct sample s;

	if (res_read(r, &r->periodic, &rd) < 0)
		return -1;
	gpu_scan(SYS_PCI, PROC_NVIDIA, &r->gpus);
	memset(&s, 0, sizeof(s));
	s.ts_ms = (long long)rd.wall.tv_sec * 1000 + rd.wall.tv_nsec / 1000000;
	s.cpu = rd.cpu->pct;
	s.per_cpu = rd.cpu->per;
	s.nper_cpu = rd.cpu->nper;
	s.mem = rd.mem;
	s.state_disk = rd.disk_ok[0] ? &rd.disk[0] : NULL;
	s.data_disk = rd.disk_ok[1] ? &rd.disk[1] : NULL;
	s.net = rd.net;
	s.gpu_usage = -1;
	for (unsigned i = 0; i < r->gpus.n; i++) {
		s.gpu_mem_total += r->gpus.dev[i].mem_total;
		s.gpu_mem_used += r->gpus.dev[i].mem_used;
	}
	return store_insert(r->store, &s);
}
