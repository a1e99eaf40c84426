/* test_res: mantad-res's parsers on fixture text (normal, truncated, odd),
 * its sysfs scans on a fake tree, and res.db retention. The daemon's files
 * are compiled in here; none of them defines main. */
#include <dirent.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon.h"

#include "../../mantad-res/proc.c"
#include "../../mantad-res/cpu.c"
#include "../../mantad-res/mem.c"
#include "../../mantad-res/disk.c"
#include "../../mantad-res/net.c"
#include "../../mantad-res/gpu.c"
#include "../../mantad-res/store.c"

static struct lsrc ls;

static struct lsrc *
src(const char *text)
{
	lsrc_mem(&ls, text, strlen(text));
	return &ls;
}

static struct lsrc *
src2(const char *buf, size_t len)
{
	lsrc_mem(&ls, buf, len);
	return &ls;
}

/* ---- line reader ---- */

static void
test_lsrc(void **state)
{
	char big[LSRC_LINE * 3];
	const char *l;

	(void)state;
	l = lsrc_next(src(""));
	assert_null(l);

	src("a\n\nb");
	assert_string_equal(lsrc_next(&ls), "a");
	assert_string_equal(lsrc_next(&ls), "");
	assert_string_equal(lsrc_next(&ls), "b");	/* no final newline */
	assert_null(lsrc_next(&ls));

	/* An overlong line is cut, and the next one starts clean. */
	memset(big, 'x', sizeof(big));
	memcpy(big + sizeof(big) - 6, "\nok\n", 5);
	lsrc_mem(&ls, big, sizeof(big) - 1);
	l = lsrc_next(&ls);
	assert_int_equal(strlen(l), LSRC_LINE - 1);
	assert_string_equal(lsrc_next(&ls), "ok");

	/* A NUL inside a line reads as a blank. */
	lsrc_mem(&ls, "k\0v\n", 4);
	assert_string_equal(lsrc_next(&ls), "k v");
}

static void
test_lsrc_file(void **state)
{
	char path[] = "/tmp/test_res_XXXXXX";
	int fd = mkstemp(path);
	struct lsrc s;
	char buf[8];
	size_t n = 0;

	(void)state;
	assert_true(fd >= 0);
	/* More than one chunk, to cross the refill. */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(write(fd, "line\n", 5), 5);
	close(fd);
	assert_int_equal(lsrc_open(&s, path), 0);
	while (lsrc_next(&s) != NULL)
		n++;
	lsrc_close(&s);
	assert_int_equal(n, 1000);

	assert_int_equal(read_small(path, buf, sizeof(buf)), 7);
	assert_string_equal(buf, "line\nli");
	unlink(path);
	assert_int_equal(lsrc_open(&s, path), -1);
	assert_int_equal(read_small(path, buf, sizeof(buf)), -1);
}

static int
nfds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static int
fd_open_on(const char *path)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char to[PATH_MAX];
	ssize_t n;
	int found = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if ((n = readlinkat(dirfd(d), e->d_name, to, sizeof(to) - 1)) > 0) {
			to[n] = '\0';
			found |= strcmp(to, path) == 0;
		}
	}
	closedir(d);
	return found;
}

/* Issue 14: the heartbeat's /proc files are opened once and rewound;
 * other paths are opened and closed as before. */
static void
test_lsrc_kept(void **state)
{
	struct mem_info m;
	uint64_t up = 0;
	struct lsrc s;
	int before;

	(void)state;
	assert_int_equal(mem_read(PROC_MEMINFO, &m), 0);
	assert_int_equal(uptime_read(PROC_UPTIME, &up), 0);
	before = nfds();
	for (int i = 0; i < 5; i++) {
		memset(&m, 0, sizeof(m));
		assert_int_equal(mem_read(PROC_MEMINFO, &m), 0);
		assert_true(m.total > 0);
		up = 0;
		assert_int_equal(uptime_read(PROC_UPTIME, &up), 0);
		assert_true(up > 0);
	}
	assert_int_equal(nfds(), before);
	assert_true(fd_open_on(PROC_MEMINFO));
	assert_true(fd_open_on(PROC_UPTIME));
	/* Kept: the same descriptor each time, still open after close. */
	assert_int_equal(lsrc_open_kept(&s, PROC_UPTIME), 0);
	assert_true(s.kept);
	lsrc_close(&s);
	assert_int_equal(nfds(), before);
	/* Not under /proc/: an ordinary open and close. */
	assert_int_equal(lsrc_open_kept(&s, "/etc/hostname") == 0 ? s.kept : 0, 0);
	lsrc_close(&s);
	assert_int_equal(nfds(), before);
}

/* ---- /proc/stat ---- */

static const char stat_a[] =
    "cpu  100 10 50 800 40 0 0 0 0 0\n"
    "cpu0 50 5 25 400 20 0 0 0 0 0\n"
    "cpu2 50 5 25 400 20 0 0 0 0 0\n"
    "intr 12345 0 0 0 0 0 0 0 0 0\n"
    "ctxt 99\n"
    "btime 1700000000\n";
static const char stat_b[] =
    "cpu  200 10 100 1600 90 0 0 0 0 0\n"
    "cpu0 150 5 75 400 20 0 0 0 0 0\n"
    "cpu2 50 5 25 1200 70 0 0 0 0 0\n";

static void
test_cpu_stat(void **state)
{
	struct cpu_stat a = CPU_STAT_ZERO, b = CPU_STAT_ZERO, c = CPU_STAT_ZERO;
	struct cpu_pct p;

	(void)state;
	assert_int_equal(cpu_stat_parse(src(stat_a), &a), 0);
	assert_int_equal(a.online, 2);
	assert_int_equal(a.nper, 3);		/* cpu1 offline */
	assert_false(a.per[1].present);
	assert_true(a.per[2].present);
	assert_int_equal(a.all.f[CPU_IDLE], 800);
	assert_int_equal(cpu_stat_parse(src(stat_b), &b), 0);

	/* Totals: +100 user, +50 system, +800 idle, +50 iowait = 1000. */
	cpu_times_pct(&a.all, &b.all, &p);
	assert_float_equal(p.usage, 15.0, 0.01);
	assert_float_equal(p.user, 10.0, 0.01);
	assert_float_equal(p.system, 5.0, 0.01);
	assert_float_equal(p.idle, 85.0, 0.01);
	cpu_times_pct(&a.per[0], &b.per[0], &p);
	assert_float_equal(p.usage, 100.0, 0.01);
	cpu_times_pct(&a.per[2], &b.per[2], &p);
	assert_float_equal(p.usage, 0.0, 0.01);
	assert_float_equal(p.idle, 100.0, 0.01);

	/* Backwards counters count as no time; none at all reads as idle. */
	cpu_times_pct(&b.all, &a.all, &p);
	assert_float_equal(p.usage, 0.0, 0.01);
	assert_float_equal(p.idle, 100.0, 0.01);
	/* A CPU that was offline before has no usage yet. */
	cpu_times_pct(&a.per[1], &b.per[2], &p);
	assert_float_equal(p.usage, 0.0, 0.01);

	assert_int_equal(cpu_stat_copy(&c, &b), 0);
	assert_int_equal(c.nper, 3);
	assert_int_equal(c.per[0].f[CPU_USER], 150);
	cpu_stat_free(&a);
	cpu_stat_free(&b);
	cpu_stat_free(&c);
}

static void
test_cpu_stat_odd(void **state)
{
	static const char *const bad[] = {
		"",
		"cpu",
		"cpu  1 2 3\n",			/* fewer than four counters */
		"cpu  1 2 x 4\n",
		"intr 1 2 3\n",
		"cpux 1 2 3 4\n",
	};
	struct cpu_stat st = CPU_STAT_ZERO;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cpu_stat_parse(src(bad[i]), &st), -1);

	/* Old kernels: four counters only; a huge index is ignored. */
	assert_int_equal(cpu_stat_parse(src("cpu 1 2 3 4\ncpu0 1 2 3 4\n"
	    "cpu99999999999 1 2 3 4 5\ncpu1 1 2"), &st), 0);
	assert_int_equal(st.online, 1);
	assert_int_equal(st.all.f[CPU_IDLE], 4);
	assert_int_equal(st.all.f[CPU_IOWAIT], 0);
	/* A counter too large saturates instead of wrapping. */
	assert_int_equal(cpu_stat_parse(src("cpu 99999999999999999999999 0 0 0\n"), &st), 0);
	assert_true(st.all.f[CPU_USER] == UINT64_MAX);
	cpu_stat_free(&st);
}

/* ---- /proc/cpuinfo and topology ---- */

static void
test_cpuinfo_x86(void **state)
{
	char text[4096] = "";
	struct cpu_info ci;

	(void)state;
	/* 2 sockets x 2 cores x 2 threads. */
	for (int i = 0; i < 8; i++) {
		char blk[256];

		snprintf(blk, sizeof(blk),
		    "processor\t: %d\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n"
		    "model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz  \n"
		    "physical id\t: %d\ncore id\t\t: %d\ncpu cores\t: 2\n\n",
		    i, i / 4, (i / 2) % 2);
		strcat(text, blk);
	}
	cpu_info_parse(src(text), &ci);
	assert_int_equal(ci.logical, 8);
	assert_int_equal(ci.physical, 4);
	assert_string_equal(ci.model, "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz");
}

static void
test_cpuinfo_other(void **state)
{
	struct cpu_info ci;

	(void)state;
	/* arm64: no model name, no physical id. */
	cpu_info_parse(src("processor\t: 0\nBogoMIPS\t: 48.00\nCPU part\t: 0xd08\n\n"
	    "processor\t: 1\nBogoMIPS\t: 48.00\n\nHardware\t: BCM2835\n"), &ci);
	assert_int_equal(ci.logical, 2);
	assert_int_equal(ci.physical, 0);
	assert_string_equal(ci.model, "BCM2835");
	/* ppc64: "cpu" names the model; "cpu MHz" does not. */
	cpu_info_parse(src("processor\t: 0\ncpu\t\t: POWER9 (raw), altivec supported\n"
	    "clock\t\t: 2166.000000MHz\n"), &ci);
	assert_string_equal(ci.model, "POWER9 (raw), altivec supported");
	/* Truncated in the middle of a key, and a colon-less line. */
	cpu_info_parse(src("processor\t: 0\nmodel name\t: X\nphysical id\t: 0\ncore i"), &ci);
	assert_int_equal(ci.logical, 1);
	assert_int_equal(ci.physical, 0);
	assert_string_equal(ci.model, "X");
	cpu_info_parse(src("garbage\n:\n: :\nmodel name:\n"), &ci);
	assert_int_equal(ci.logical, 0);
	assert_string_equal(ci.model, "");
}

static char tmpdir[64];

static void
put(const char *rel, const char *text)
{
	char path[512], dir[512], *slash;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	*slash = '\0';
	assert_int_equal(daemon_mkdirs(dir, 0700), 0);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int
tree_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_res_XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
tree_teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_topology(void **state)
{
	char sys[128];

	(void)state;
	/* 4 threads on 2 cores of one package, plus noise. */
	put("cpu/cpu0/topology/physical_package_id", "0\n");
	put("cpu/cpu0/topology/core_id", "0\n");
	put("cpu/cpu1/topology/physical_package_id", "0\n");
	put("cpu/cpu1/topology/core_id", "1\n");
	put("cpu/cpu2/topology/physical_package_id", "0\n");
	put("cpu/cpu2/topology/core_id", "0\n");
	put("cpu/cpu3/topology/physical_package_id", "0\n");
	put("cpu/cpu3/topology/core_id", "1\n");
	put("cpu/cpu4/topology/physical_package_id", "garbage\n");
	put("cpu/cpufreq/x", "");
	put("cpu/cpuidle/x", "");
	put("cpu/cpu5x/topology/core_id", "7\n");
	snprintf(sys, sizeof(sys), "%s/cpu", tmpdir);
	assert_int_equal(cpu_topology_cores(sys), 2);
	snprintf(sys, sizeof(sys), "%s/nothing", tmpdir);
	assert_int_equal(cpu_topology_cores(sys), 0);
}

/* ---- /proc/meminfo ---- */

static void
test_meminfo(void **state)
{
	struct mem_info m;

	(void)state;
	assert_int_equal(mem_parse(src(
	    "MemTotal:        1000 kB\nMemFree:          100 kB\n"
	    "MemAvailable:     600 kB\nBuffers:           50 kB\nCached:           300 kB\n"
	    "SwapCached:         0 kB\nSwapTotal:        200 kB\nSwapFree:        150 kB\n"), &m), 0);
	assert_int_equal(m.total, 1000 * 1024);
	assert_int_equal(m.available, 600 * 1024);
	assert_int_equal(m.free, 100 * 1024);
	assert_int_equal(m.cached, 300 * 1024);	/* "SwapCached" is not "Cached" */
	assert_int_equal(m.used, 400 * 1024);
	assert_float_equal(m.percent, 40.0, 0.01);
	assert_int_equal(m.swap_used, 50 * 1024);
	assert_float_equal(m.swap_percent, 25.0, 0.01);

	/* Before MemAvailable: free + buffers + cached + SReclaimable. */
	assert_int_equal(mem_parse(src("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\n"
	    "Cached: 20 kB\nSReclaimable: 5 kB\n"), &m), 0);
	assert_int_equal(m.available, 135 * 1024);
	assert_int_equal(m.swap_percent, 0);

	/* Inconsistent values are clamped, not wrapped. */
	assert_int_equal(mem_parse(src("MemTotal: 10 kB\nMemAvailable: 20 kB\nMemFree: 30 kB\n"
	    "SwapTotal: 1 kB\nSwapFree: 9 kB\n"), &m), 0);
	assert_int_equal(m.used, 0);
	assert_int_equal(m.free, m.total);
	assert_int_equal(m.swap_used, 0);
	assert_int_equal(mem_parse(src("MemTotal: 99999999999999999999 kB\n"), &m), 0);
	assert_true(m.total == UINT64_MAX);

	assert_int_equal(mem_parse(src(""), &m), -1);
	assert_int_equal(mem_parse(src("MemFree: 1 kB\n"), &m), -1);
	assert_int_equal(mem_parse(src("MemTotal:"), &m), -1);
	assert_int_equal(mem_parse(src("MemTotal: kB\nMemTot"), &m), -1);
}

/* ---- /proc/net/dev and /proc/uptime ---- */

static const char netdev[] =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
    "    lo: 9999999     999    0    0    0     0          0         0  9999999     999    0    0    0     0       0          0\n"
    "  eth0: 1000      10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0\n"
    "wlan0:500 5 0 0 0 0 0 0 700 7 0 0 0 0 0 0\n"
    " docker0:   1 1 0 0\n"			/* truncated: skipped */
    "bad line\n"
    ":1 2 3 4 5 6 7 8 9 10\n";

static void
test_netdev(void **state)
{
	struct net_info n;
	uint64_t up;

	(void)state;
	assert_int_equal(net_parse(src(netdev), &n), 0);
	assert_int_equal(n.ifaces, 2);
	assert_int_equal(n.bytes_recv, 1500);
	assert_int_equal(n.packets_recv, 15);
	assert_int_equal(n.bytes_sent, 2700);
	assert_int_equal(n.packets_sent, 27);
	assert_int_equal(net_parse(src(""), &n), 0);
	assert_int_equal(n.ifaces, 0);

	assert_int_equal(uptime_parse("12345.67 54321.00", &up), 0);
	assert_int_equal(up, 12345);
	assert_int_equal(uptime_parse("", &up), -1);
	assert_int_equal(uptime_parse("x", &up), -1);

	/* The clock gives what the file says (read around it). */
	{
		uint64_t a = 0, now = 0, b = 0;

		assert_int_equal(uptime_read(PROC_UPTIME, &a), 0);
		assert_int_equal(uptime_now(&now), 0);
		assert_int_equal(uptime_read(PROC_UPTIME, &b), 0);
		assert_true(a > 0 && a <= now && now <= b);
	}
}

/* ---- GPUs ---- */

static const char nv_info[] =
    "Model: \t\t NVIDIA H100 80GB HBM3\n"
    "IRQ:   \t\t 204\n"
    "GPU UUID: \t GPU-5a3c2c7e-1b8f-6e7a-9d2c-0b1e2f3a4b5c\n"
    "Video BIOS: \t 96.00.99.00.01\n"
    "Bus Type: \t PCIe\n"
    "DMA Size: \t 52 bits\n"
    "Bus Location: \t 0000:18:00.0\n"
    "Device Minor: \t 0\n"
    "GPU Excluded:\t No\n";

static void
test_gpu_info(void **state)
{
	struct gpu_dev g;

	(void)state;
	memset(&g, 0, sizeof(g));
	gpu_nvidia_info_parse(src(nv_info), &g);
	assert_string_equal(g.name, "NVIDIA H100 80GB HBM3");
	assert_string_equal(g.uuid, "GPU-5a3c2c7e-1b8f-6e7a-9d2c-0b1e2f3a4b5c");

	/* Truncated: an empty Model keeps the previous name. */
	snprintf(g.name, sizeof(g.name), "NVIDIA GPU [10de:2330]");
	g.uuid[0] = '\0';
	gpu_nvidia_info_parse(src("Model:  \nGPU UU"), &g);
	assert_string_equal(g.name, "NVIDIA GPU [10de:2330]");
	assert_string_equal(g.uuid, "");
}

static void
test_gpu_scan(void **state)
{
	char pci[128], nv[128];
	struct gpu_list l;

	(void)state;
	snprintf(pci, sizeof(pci), "%s/pci", tmpdir);
	snprintf(nv, sizeof(nv), "%s/nvidia", tmpdir);
	gpu_scan(pci, nv, &l);
	assert_int_equal(l.n, 0);

	/* Two NVIDIA GPUs (3D and VGA class), their HDMI audio function,
	 * an Intel iGPU and a NIC. */
	put("pci/0000:3b:00.0/vendor", "0x10de\n");
	put("pci/0000:3b:00.0/class", "0x030200\n");
	put("pci/0000:3b:00.0/device", "0x2330\n");
	put("pci/0000:18:00.0/vendor", "0x10de\n");
	put("pci/0000:18:00.0/class", "0x030000\n");
	put("pci/0000:18:00.0/device", "0x2204\n");
	put("pci/0000:18:00.1/vendor", "0x10de\n");
	put("pci/0000:18:00.1/class", "0x040300\n");
	put("pci/0000:00:02.0/vendor", "0x8086\n");
	put("pci/0000:00:02.0/class", "0x030000\n");
	put("pci/0000:00:1f.6/vendor", "0x8086\n");
	put("pci/0000:00:1f.6/class", "0x020000\n");
	put("pci/0000:99:00.0/vendor", "");	/* unreadable values */
	gpu_scan(pci, nv, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.dev[0].busid, "0000:18:00.0");
	assert_string_equal(l.dev[0].name, "NVIDIA GPU [10de:2204]");
	assert_string_equal(l.dev[1].name, "NVIDIA GPU [10de:2330]");
	assert_string_equal(l.dev[1].uuid, "");
	assert_true(l.dev[1].usage < 0);

	/* With the driver: names and UUIDs, and a GPU sysfs did not show. */
	put("nvidia/0000:3b:00.0/information", nv_info);
	put("nvidia/0000:af:00.0/information", "Model: \t\t Tesla T4\nGPU UUID: \t GPU-1\n");
	gpu_scan(pci, nv, &l);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.dev[1].name, "NVIDIA H100 80GB HBM3");
	assert_string_equal(l.dev[1].uuid, "GPU-5a3c2c7e-1b8f-6e7a-9d2c-0b1e2f3a4b5c");
	assert_string_equal(l.dev[2].busid, "0000:af:00.0");
	assert_string_equal(l.dev[2].name, "Tesla T4");
}

/* ---- disks ---- */

static void
test_disk(void **state)
{
	struct disk_info d;

	(void)state;
	assert_int_equal(disk_read("/", &d), 0);
	assert_string_equal(d.mount, "/");
	assert_true(d.total > 0);
	assert_true(d.used + d.free <= d.total);
	assert_true(d.percent >= 0 && d.percent <= 100);
	assert_int_equal(disk_read(tmpdir, &d), 0);
	assert_true(d.mount[0] == '/');
	assert_int_equal(strncmp(tmpdir, d.mount, strlen(d.mount)), 0);
	assert_int_equal(disk_read("/nonexistent/manta", &d), -1);
}

/* ---- res.db ---- */

static long long
count_rows(sqlite3 *db)
{
	sqlite3_stmt *s;
	long long n = -1;

	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM samples", -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

static void
test_store(void **state)
{
	char path[128];
	struct store *st;
	struct sample sm;
	struct disk_info d;
	float per[3] = { 1.5f, 100.0f, 0.0f };
	long long now = (long long)time(NULL) * 1000;

	(void)state;
	snprintf(path, sizeof(path), "%s/res.db", tmpdir);
	st = store_open(path, 5);
	assert_non_null(st);
	assert_int_equal(store_count(st), 0);
	memset(&sm, 0, sizeof(sm));
	memset(&d, 0, sizeof(d));
	snprintf(d.mount, sizeof(d.mount), "/");
	d.used = 1;
	d.free = 2;
	sm.per_cpu = per;
	sm.nper_cpu = 3;
	sm.state_disk = &d;
	sm.gpu_usage = -1;
	/* One row older than the window, then eight: five are kept. */
	sm.ts_ms = now - (STORE_KEEP_S + 60) * 1000LL;
	assert_int_equal(store_insert(st, &sm), 0);
	sm.ts_ms = now;
	assert_int_equal(store_insert(st, &sm), 0);
	assert_int_equal(store_count(st), 1);
	assert_int_equal(count_rows(st->db), 1);
	for (int i = 0; i < 7; i++) {
		sm.ts_ms = now + i;
		sm.mem.total = UINT64_MAX;	/* stored clamped */
		assert_int_equal(store_insert(st, &sm), 0);
	}
	assert_int_equal(store_count(st), 5);
	assert_int_equal(count_rows(st->db), 5);
	store_close(st);

	/* Reopened: the count comes from the file, the schema is kept. */
	st = store_open(path, 5);
	assert_non_null(st);
	assert_int_equal(store_count(st), 5);
	{
		sqlite3_stmt *s;

		assert_int_equal(sqlite3_prepare_v2(st->db,
		    "SELECT per_cpu, state_mount, data_mount FROM samples LIMIT 1", -1, &s, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(s, 0), "1.5,100.0,0.0");
		assert_string_equal((const char *)sqlite3_column_text(s, 1), "/");
		assert_int_equal(sqlite3_column_type(s, 2), SQLITE_NULL);
		sqlite3_finalize(s);
	}
	store_close(st);
}

/* ---- every parser on noise: no crash, no overrun (run under ASAN) ---- */

static void
test_noise(void **state)
{
	static const char alphabet[] = "cpu0123456789 :\t\nMemTotalkB|-.xGPUModel";
	char buf[2048];
	unsigned seed = 12345;

	(void)state;
	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(seed % sizeof(buf));
		struct cpu_stat st = CPU_STAT_ZERO;
		struct cpu_info ci;
		struct mem_info m;
		struct net_info n;
		struct gpu_dev g;
		uint64_t up;

		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			buf[i] = (round & 1) ? (char)(seed >> 16) :
			    alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		seed = seed * 1103515245u + 12345u;
		(void)cpu_stat_parse(src2(buf, len), &st);
		cpu_stat_free(&st);
		cpu_info_parse(src2(buf, len), &ci);
		(void)mem_parse(src2(buf, len), &m);
		(void)net_parse(src2(buf, len), &n);
		memset(&g, 0, sizeof(g));
		gpu_nvidia_info_parse(src2(buf, len), &g);
		buf[len < sizeof(buf) ? len : sizeof(buf) - 1] = '\0';
		(void)uptime_parse(buf, &up);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lsrc),
		cmocka_unit_test(test_lsrc_file),
		cmocka_unit_test(test_lsrc_kept),
		cmocka_unit_test(test_cpu_stat),
		cmocka_unit_test(test_cpu_stat_odd),
		cmocka_unit_test(test_cpuinfo_x86),
		cmocka_unit_test(test_cpuinfo_other),
		cmocka_unit_test(test_topology),
		cmocka_unit_test(test_meminfo),
		cmocka_unit_test(test_netdev),
		cmocka_unit_test(test_gpu_info),
		cmocka_unit_test(test_gpu_scan),
		cmocka_unit_test(test_disk),
		cmocka_unit_test(test_store),
		cmocka_unit_test(test_noise),
	};

	return cmocka_run_group_tests(tests, tree_setup, tree_teardown);
}
