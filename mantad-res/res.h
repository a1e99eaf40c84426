/* mantad-res: what its files share. The parsers take a line source or a
 * directory so that unit tests feed them fixtures (tests/unit/test_res.c). */
#ifndef MANTA_RES_H
#define MANTA_RES_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <zmq.h>

#include "file.h"
#include "ipc.h"

/* Where the host is read. */
#define PROC_STAT "/proc/stat"
#define PROC_MEMINFO "/proc/meminfo"
#define PROC_CPUINFO "/proc/cpuinfo"
#define PROC_NETDEV "/proc/net/dev"
#define PROC_UPTIME "/proc/uptime"
#define SYS_CPU "/sys/devices/system/cpu"
#define SYS_PCI "/sys/bus/pci/devices"
#define PROC_NVIDIA "/proc/driver/nvidia/gpus"

/* ---- proc.c: bounded line reader over an fd or a string ---- */

#define LSRC_CHUNK 2048
#define LSRC_LINE 512	/* longer lines are cut (cpuinfo "flags", stat "intr") */

struct lsrc {
	int fd;			/* -1: read from mem */
	const char *mem;
	size_t memlen, mempos;
	size_t cpos, clen;	/* in chunk */
	int eof;
	int kept;		/* fd stays open for the next lsrc_open_kept */
	char chunk[LSRC_CHUNK];	/* buffers last: lsrc_open clears up to here */
	char line[LSRC_LINE];
};

/* 0 or -1 (errno set, not logged: callers decide how loud to be). */
int lsrc_open(struct lsrc *s, const char *path);
/* As lsrc_open, but a file under /proc/ stays open and is read again
 * from its start next time (issue 14: the heartbeat's files without an
 * open and a close each time). Other paths are opened as lsrc_open does. */
int lsrc_open_kept(struct lsrc *s, const char *path);
void lsrc_mem(struct lsrc *s, const char *buf, size_t len);
void lsrc_close(struct lsrc *s);
/* The next line without its newline, NUL-terminated; NULL at the end. */
const char *lsrc_next(struct lsrc *s);

/* Skips blanks; parses an unsigned decimal. Returns the end, NULL if none. */
const char *parse_u64(const char *p, uint64_t *v);

/* ---- cpu.c ---- */

enum { CPU_USER, CPU_NICE, CPU_SYSTEM, CPU_IDLE, CPU_IOWAIT, CPU_IRQ,
	CPU_SOFTIRQ, CPU_STEAL, CPU_NFIELDS };

struct cpu_times {
	uint64_t f[CPU_NFIELDS];
	int present;		/* this cpuN was listed (online) */
};

struct cpu_stat {
	struct cpu_times all;
	struct cpu_times *per;	/* indexed by N of "cpuN" */
	size_t nper;		/* highest N + 1 seen */
	size_t cap;
	unsigned online;	/* cpuN lines seen */
	long long ms;		/* when read (daemon_now_ms) */
};
#define CPU_STAT_ZERO { { { 0 }, 0 }, NULL, 0, 0, 0, 0 }

struct cpu_pct {
	float usage, user, system, idle;
};

/* Parses /proc/stat lines; reuses st->per. 0, or -1 when no "cpu" line
 * was found or memory ran out. */
int cpu_stat_parse(struct lsrc *s, struct cpu_stat *st);
int cpu_stat_read(const char *path, struct cpu_stat *st);
void cpu_stat_free(struct cpu_stat *st);
/* Usage between two readings, each value in 0..100. A counter that went
 * backwards (hotplug, a bad line) counts as no time. */
void cpu_times_pct(const struct cpu_times *old, const struct cpu_times *cur,
    struct cpu_pct *out);
/* Copies cur into old (growing old->per). 0 or -1. */
int cpu_stat_copy(struct cpu_stat *old, const struct cpu_stat *cur);

struct cpu_info {
	char model[128];
	unsigned physical;	/* cores; 0 when unknown */
	unsigned logical;	/* processors listed */
};
/* /proc/cpuinfo: the model ("model name", else "Processor", "cpu model",
 * "cpu", "Hardware"), and cores as distinct (physical id, core id) pairs. */
void cpu_info_parse(struct lsrc *s, struct cpu_info *ci);
/* Cores from SYSDIR/cpuN/topology/{physical_package_id,core_id}; 0 if
 * the directory is unreadable. */
unsigned cpu_topology_cores(const char *sysdir);
/* Both, sysfs first; physical falls back to logical. */
void cpu_info_read(const char *cpuinfo, const char *sysdir, struct cpu_info *ci);

/* ---- mem.c ---- */

struct mem_info {
	uint64_t total, free, available, buffers, cached, sreclaimable;
	uint64_t swap_total, swap_free;
	uint64_t used;			/* total - available */
	uint64_t swap_used;
	float percent, swap_percent;
};
/* /proc/meminfo (kB -> bytes). Available falls back to free + buffers +
 * cached + SReclaimable on kernels without MemAvailable. 0, or -1 without
 * MemTotal. */
int mem_parse(struct lsrc *s, struct mem_info *m);
int mem_read(const char *path, struct mem_info *m);

/* ---- disk.c ---- */

struct disk_info {
	char mount[PATH_MAX];	/* the mount point holding the path */
	uint64_t total, used, free;	/* free: available to unprivileged users */
	float percent;
	dev_t dev;
};
/* statvfs of path plus its mount point (walking up while st_dev stays),
 * through an fd kept from the path's first reading. 0 or -1. */
int disk_read(const char *path, struct disk_info *d);
void disk_close(void);

/* ---- net.c: network and uptime ---- */

struct net_info {
	uint64_t bytes_recv, packets_recv, bytes_sent, packets_sent;
	unsigned ifaces;
};
/* /proc/net/dev summed over every interface but "lo". 0 or -1. */
int net_parse(struct lsrc *s, struct net_info *n);
int net_read(const char *path, struct net_info *n);
/* /proc/uptime, whole seconds. 0 or -1. */
int uptime_parse(const char *buf, uint64_t *secs);
int uptime_read(const char *path, uint64_t *secs);
/* The same figure from CLOCK_BOOTTIME, which /proc/uptime prints (time
 * namespaces included): no file read per heartbeat. Falls back to
 * uptime_read. 0 or -1. */
int uptime_now(uint64_t *secs);

/* ---- gpu.c ---- */

#define GPU_MAX 16

struct gpu_dev {
	char busid[32];		/* "0000:01:00.0" */
	char name[96];
	char uuid[64];
	uint64_t mem_total, mem_used;	/* 0 when unknown (NVIDIA without NVML) */
	float usage;			/* -1 when unknown */
};

struct gpu_list {
	struct gpu_dev dev[GPU_MAX];
	unsigned n;
};

/* NVIDIA's /proc/driver/nvidia/gpus/BUSID/information: Model and GPU UUID. */
void gpu_nvidia_info_parse(struct lsrc *s, struct gpu_dev *g);
/* Display controllers (class 0x03xxxx) of vendor 0x10de under PCIDIR,
 * named from NVDIR/<busid>/information when the driver is loaded. */
void gpu_scan(const char *pcidir, const char *nvdir, struct gpu_list *l);

/* ---- store.c: res.db ---- */

#define STORE_KEEP_S (24 * 3600)
#define STORE_MAX_ROWS 10000

struct sample {
	long long ts_ms;	/* wall clock, UTC */
	struct cpu_pct cpu;
	const float *per_cpu;
	size_t nper_cpu;
	struct mem_info mem;
	const struct disk_info *state_disk;	/* NULL when unknown */
	const struct disk_info *data_disk;	/* NULL when absent or same mount */
	struct net_info net;
	float gpu_usage;	/* -1 unknown */
	uint64_t gpu_mem_total, gpu_mem_used;
};

struct store;
/* max_rows: keep at most that many (and nothing older than STORE_KEEP_S). */
struct store *store_open(const char *path, long max_rows);
int store_insert(struct store *st, const struct sample *s);
uint64_t store_count(const struct store *st);
void store_close(struct store *st);

/* ---- sample.c: the daemon's state and one reading of everything ---- */

/* One consumer of CPU deltas: the periodic sampler or the snapshot
 * requests, each with its own previous reading. */
struct cpu_view {
	struct cpu_stat base;
	struct cpu_pct pct;
	float *per;		/* online CPUs in order, percent */
	size_t nper, cap;
	int valid;		/* pct computed at least once */
};

/* snapsock.c: mantad-beat's socket for the heartbeat's Snapshot. */
#define SNAPSOCK_NAME "res-snap.sock"
#define SNAPSOCK_CLIENTS 4

/* All zero: not open. */
struct snapsock {
	int open;
	int lfd;			/* listening */
	int cfd[SNAPSOCK_CLIENTS];	/* connected callers, -1 for none */
	uid_t owner;			/* of the run dir (ipc_caller_kind) */
	char path[PATH_MAX];
};

struct res {
	const char *state_dir;
	const char *data_dir;		/* datasets.base_path; may not exist */
	struct cpu_info ci;		/* model and cores, read at start */
	struct cpu_stat cur;		/* scratch for the latest /proc/stat */
	struct cpu_view periodic, snap;
	struct gpu_list gpus;		/* rescanned with each periodic sample */
	struct store *store;
	uint64_t snapshots;		/* answered since start */
	struct snapsock ss;		/* mantad-beat's way in (snapsock.c) */
};

struct reading {
	struct timespec wall;
	unsigned cpu_count;		/* online */
	const struct cpu_view *cpu;
	struct mem_info mem;
	struct disk_info disk[2];	/* state_dir's, then base_path's */
	int disk_ok[2];			/* [1]: base_path exists on another mount */
	struct net_info net;
	uint64_t uptime;
};

/* Takes the first readings. 0 or -1 (logged). */
int res_init(struct res *r, const char *state_dir, const char *data_dir);
void res_free(struct res *r);
/* Reads everything now, the CPU through view v. A view read less than
 * CPU_MIN_INTERVAL_MS ago keeps its last figures rather than compute
 * usage over a few jiffies. 0, or -1 when /proc/stat or /proc/meminfo
 * could not be read (logged). */
#define CPU_MIN_INTERVAL_MS 250
int res_read(struct res *r, struct cpu_view *v, struct reading *rd);
/* Only what a heartbeat carries (MetricsSnapshot: CPU, memory, the
 * time): rd's disks, network and uptime are left zero. */
int res_read_metrics(struct res *r, struct cpu_view *v, struct reading *rd);
/* The periodic sample: a reading, a GPU rescan and a row in res.db. */
int res_sample(struct res *r);

/* ---- answer.c: replies to IPC requests ---- */

struct ipc_server;
struct ipc_req;
/* Reads the host now and hands the Snapshot to send(arg, m): send's
 * result, or SNAPSHOT_UNREAD (send not called) when /proc could not be
 * read. Without full, the Snapshot holds its MetricsSnapshot alone (all
 * a heartbeat carries), and only that is read. */
#define SNAPSHOT_UNREAD (-2)
int snapshot_build(struct res *r, int full,
    int (*send)(void *arg, const Manta__Ipc__Msg *m), void *arg);
int answer_snapshot(struct res *r, struct ipc_server *srv, struct ipc_req *req);
int answer_capacity(struct res *r, struct ipc_server *srv, struct ipc_req *req);
int answer_status(struct res *r, struct ipc_server *srv, struct ipc_req *req);

/* ---- snapsock.c: mantad-beat's socket for the heartbeat's Snapshot ---- */

/* Binds <run_dir>/res-snap.sock (before the uid switch, as the endpoint).
 * 0 or -1 (logged). */
int snapsock_open(struct snapsock *ss, const char *run_dir);
/* Closes every connection and removes the file. */
void snapsock_close(struct snapsock *ss);
/* The fds to poll for ZMQ_POLLIN into items (1 + SNAPSOCK_CLIENTS of
 * them at most): how many. */
size_t snapsock_pollitems(const struct snapsock *ss, zmq_pollitem_t *items);
/* Accepts and answers what the polled items say is there. */
void snapsock_handle(struct snapsock *ss, struct res *r, const zmq_pollitem_t *items,
    size_t n);

/* ---- sandbox.c: the seccomp allowlist, loaded before the loop ---- */
int sandbox_enter(void);

#endif
