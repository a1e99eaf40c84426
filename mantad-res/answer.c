/* Replies to SnapshotRequest, CapacityRequest and StatusRequest. Every
 * message is built on the stack over the daemon's own buffers: nothing is
 * allocated here but what ipc_reply needs to pack. */
#include <string.h>

#include "ipc.h"
#include "log.h"
#include "res.h"

typedef Common__Informations__GpuDevice gpu_pb;

static float
pct_of(uint64_t part, uint64_t whole)
{
	return whole ? (float)(100.0 * (double)part / (double)whole) : 0;
}

/* out[] and ptrs[] hold GPU_MAX entries. */
static size_t
gpus_fill(struct gpu_list *l, gpu_pb *out, gpu_pb **ptrs)
{
	for (unsigned i = 0; i < l->n; i++) {
		struct gpu_dev *g = &l->dev[i];

		/* The generated init functions, not the INIT macros: those
		 * cast away the const of protobuf_c_empty_string. */
		common__informations__gpu_device__init(&out[i]);
		out[i].name = g->name;
		out[i].uuid = g->uuid;
		out[i].usage_percent = g->usage >= 0 ? g->usage : 0;
		out[i].memory_total_bytes = g->mem_total;
		out[i].memory_used_bytes = g->mem_used;
		out[i].memory_percent_used = pct_of(g->mem_used, g->mem_total);
		ptrs[i] = &out[i];
	}
	return l->n;
}

static void
fill_cpu(const struct res *r, const struct reading *rd,
    Common__Informations__CpuMetrics *cpu)
{
	cpu->usage_percent = rd->cpu->pct.usage;
	cpu->n_per_cpu_percent = rd->cpu->nper;
	cpu->per_cpu_percent = rd->cpu->per;
	cpu->user_percent = rd->cpu->pct.user;
	cpu->system_percent = rd->cpu->pct.system;
	cpu->idle_percent = rd->cpu->pct.idle;
	cpu->count = (int32_t)rd->cpu_count;
	/* Cores were counted at start; CPUs taken offline since can only lower them. */
	cpu->physical_count = (int32_t)(rd->cpu_count && r->ci.physical > rd->cpu_count ?
	    rd->cpu_count : r->ci.physical);
}

static void
fill_mem(const struct reading *rd, Common__Informations__MemoryMetrics *mem)
{
	mem->total_bytes = rd->mem.total;
	mem->available_bytes = rd->mem.available;
	mem->used_bytes = rd->mem.used;
	mem->free_bytes = rd->mem.free;
	mem->percent_used = rd->mem.percent;
	mem->swap_total_bytes = rd->mem.swap_total;
	mem->swap_used_bytes = rd->mem.swap_used;
	mem->swap_free_bytes = rd->mem.swap_free;
	mem->swap_percent_used = rd->mem.swap_percent;
}

/* Disks (disk[] and diskp[] hold 2), network and uptime. */
static void
fill_additional(struct reading *rd, Common__Informations__DiskUsage *disk,
    Common__Informations__DiskUsage **diskp, Common__Informations__NetworkUsage *net,
    Common__Informations__AdditionalMetrics *add)
{
	for (int i = 0; i < 2; i++) {
		if (!rd->disk_ok[i])
			continue;
		common__informations__disk_usage__init(&disk[add->n_disk_usage]);
		disk[add->n_disk_usage].mount_point = rd->disk[i].mount;
		disk[add->n_disk_usage].total_bytes = rd->disk[i].total;
		disk[add->n_disk_usage].used_bytes = rd->disk[i].used;
		disk[add->n_disk_usage].free_bytes = rd->disk[i].free;
		disk[add->n_disk_usage].percent_used = rd->disk[i].percent;
		diskp[add->n_disk_usage] = &disk[add->n_disk_usage];
		add->n_disk_usage++;
	}
	add->disk_usage = diskp;
	net->bytes_sent = rd->net.bytes_sent;
	net->bytes_recv = rd->net.bytes_recv;
	net->packets_sent = rd->net.packets_sent;
	net->packets_recv = rd->net.packets_recv;
	add->network = net;
	add->uptime_seconds = rd->uptime;
}

/* gpus[] and gpup[] hold GPU_MAX. */
static void
fill_gpu(struct res *r, gpu_pb *gpus, gpu_pb **gpup,
    Common__Informations__GpuDeviceList *gl, Common__Informations__GpuMetrics *gm)
{
	float usage_sum = 0;
	unsigned usage_n = 0;

	gl->n_devices = gpus_fill(&r->gpus, gpus, gpup);
	gl->devices = gpup;
	for (unsigned i = 0; i < r->gpus.n; i++) {
		struct gpu_dev *g = &r->gpus.dev[i];

		if (g->usage >= 0) {
			usage_sum += g->usage;
			usage_n++;
		}
		gm->memory_total_bytes += g->mem_total;
		gm->memory_used_bytes += g->mem_used;
	}
	gm->usage_percent = usage_n ? usage_sum / (float)usage_n : 0;
	gm->memory_percent_used = pct_of(gm->memory_used_bytes, gm->memory_total_bytes);
	gm->devices = gl;
}

int
snapshot_build(struct res *r, int full, int (*send)(void *arg, const ipc_msg *m),
    void *arg)
{
	Common__Informations__CpuMetrics cpu = COMMON__INFORMATIONS__CPU_METRICS__INIT;
	Common__Informations__MemoryMetrics mem = COMMON__INFORMATIONS__MEMORY_METRICS__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Common__Informations__MetricsSnapshot metrics = COMMON__INFORMATIONS__METRICS_SNAPSHOT__INIT;
	Common__Informations__DiskUsage disk[2];
	Common__Informations__DiskUsage *diskp[2];
	Common__Informations__NetworkUsage net = COMMON__INFORMATIONS__NETWORK_USAGE__INIT;
	Common__Informations__AdditionalMetrics add = COMMON__INFORMATIONS__ADDITIONAL_METRICS__INIT;
	Common__Informations__GpuDeviceList gl = COMMON__INFORMATIONS__GPU_DEVICE_LIST__INIT;
	Common__Informations__GpuMetrics gm = COMMON__INFORMATIONS__GPU_METRICS__INIT;
	Manta__Ipc__Snapshot snap = MANTA__IPC__SNAPSHOT__INIT;
	ipc_msg reply = MANTA__IPC__MSG__INIT;
	gpu_pb gpus[GPU_MAX], *gpup[GPU_MAX];
	struct reading rd;

	/* Always a new reading: a heartbeat's CPU figure covers the time
	 * since the previous request (see CPU_MIN_INTERVAL_MS). */
	if ((full ? res_read(r, &r->snap, &rd) : res_read_metrics(r, &r->snap, &rd)) < 0)
		return SNAPSHOT_UNREAD;

	fill_cpu(r, &rd, &cpu);
	fill_mem(&rd, &mem);
	ts.seconds = rd.wall.tv_sec;
	ts.nanos = (int32_t)rd.wall.tv_nsec;
	metrics.cpu = &cpu;
	metrics.memory = &mem;
	metrics.timestamp = &ts;
	snap.metrics = &metrics;
	if (full) {
		fill_additional(&rd, disk, diskp, &net, &add);
		fill_gpu(r, gpus, gpup, &gl, &gm);
		snap.additional = &add;
		snap.gpu = &gm;
	}
	reply.body_case = MANTA__IPC__MSG__BODY_SNAPSHOT;
	reply.snapshot = &snap;
	r->snapshots++;
	return send(arg, &reply);
}

struct endpoint_reply {
	struct ipc_server *srv;
	struct ipc_req *req;
};

static int
reply_on_endpoint(void *arg, const ipc_msg *m)
{
	struct endpoint_reply *er = arg;

	return ipc_reply(er->srv, er->req, m);
}

int
answer_snapshot(struct res *r, struct ipc_server *srv, struct ipc_req *req)
{
	struct endpoint_reply er = { srv, req };
	int rc = snapshot_build(r, 1, reply_on_endpoint, &er);

	if (rc == SNAPSHOT_UNREAD)
		return ipc_reply_error(srv, req, 1, "unable to read /proc");
	return rc;
}

int
answer_capacity(struct res *r, struct ipc_server *srv, struct ipc_req *req)
{
	Manta__Ipc__Capacity cap;
	ipc_msg reply = MANTA__IPC__MSG__INIT;
	gpu_pb gpus[GPU_MAX], *gpup[GPU_MAX];
	struct mem_info mem;
	struct disk_info disk;

	manta__ipc__capacity__init(&cap);

	if (mem_read(PROC_MEMINFO, &mem) < 0) {
		log_warn("unable to read %s", PROC_MEMINFO);
		return ipc_reply_error(srv, req, 1, "unable to read %s", PROC_MEMINFO);
	}
	/* Online CPUs as of the last reading. */
	cap.cpu_count = r->cur.online ? r->cur.online : r->ci.logical;
	cap.mem_total_bytes = mem.total;
	cap.mem_available_bytes = mem.available;
	if (disk_read(r->state_dir, &disk) == 0) {
		cap.disk_total_bytes = disk.total;
		cap.disk_free_bytes = disk.free;
	} else
		log_warn("unable to statvfs %s", r->state_dir);
	cap.n_gpus = gpus_fill(&r->gpus, gpus, gpup);
	cap.gpus = gpup;
	cap.cpu_model = r->ci.model;
	reply.body_case = MANTA__IPC__MSG__BODY_CAPACITY;
	reply.capacity = &cap;
	return ipc_reply(srv, req, &reply);
}

int
answer_status(struct res *r, struct ipc_server *srv, struct ipc_req *req)
{
	Manta__Ipc__ResStatus rs = MANTA__IPC__RES_STATUS__INIT;
	Manta__Ipc__StatusReply st = MANTA__IPC__STATUS_REPLY__INIT;
	ipc_msg reply = MANTA__IPC__MSG__INIT;
	gpu_pb gpus[GPU_MAX], *gpup[GPU_MAX];
	struct mem_info mem;

	rs.cpu_count = r->cur.online ? r->cur.online : r->ci.logical;
	if (mem_read(PROC_MEMINFO, &mem) == 0) {
		rs.mem_total_bytes = mem.total;
		rs.mem_available_bytes = mem.available;
	}
	rs.n_gpus = gpus_fill(&r->gpus, gpus, gpup);
	rs.gpus = gpup;
	rs.samples = store_count(r->store);
	st.res = &rs;
	reply.body_case = MANTA__IPC__MSG__BODY_STATUS;
	reply.status = &st;
	return ipc_reply(srv, req, &reply);
}
