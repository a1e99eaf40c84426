/* CPU: usage from /proc/stat deltas, the model and the core count from
 * /proc/cpuinfo and sysfs topology. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "res.h"

/* More than any kernel's NR_CPUS: a guard against a corrupt index. */
#define CPU_MAX_INDEX 65536

static int
cpu_grow(struct cpu_stat *st, size_t want)
{
	struct cpu_times *p;
	size_t cap = st->cap ? st->cap : 8;

	if (want <= st->cap)
		return 0;
	while (cap < want)
		cap *= 2;
	p = realloc(st->per, cap * sizeof(*p));
	if (p == NULL)
		return -1;
	memset(p + st->cap, 0, (cap - st->cap) * sizeof(*p));
	st->per = p;
	st->cap = cap;
	return 0;
}

/* "cpu" or "cpuN" followed by the counters; fewer than four counters
 * make the line unusable, missing later ones (old kernels) read as 0. */
static int
cpu_line(const char *p, struct cpu_times *t)
{
	uint64_t v;
	int i;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < CPU_NFIELDS; i++) {
		const char *q = parse_u64(p, &v);
		if (q == NULL || (*q != ' ' && *q != '\t' && *q != '\0'))
			break;
		t->f[i] = v;
		p = q;
	}
	if (i < 4)
		return -1;
	t->present = 1;
	return 0;
}

int
cpu_stat_parse(struct lsrc *s, struct cpu_stat *st)
{
	const char *line;
	int found = 0;

	for (size_t i = 0; i < st->cap; i++)
		st->per[i].present = 0;
	st->nper = 0;
	st->online = 0;
	memset(&st->all, 0, sizeof(st->all));

	while ((line = lsrc_next(s)) != NULL) {
		struct cpu_times t;
		uint64_t idx;
		const char *p;

		if (strncmp(line, "cpu", 3) != 0)
			continue;
		p = line + 3;
		if (*p == ' ' || *p == '\t') {
			if (cpu_line(p, &t) == 0) {
				st->all = t;
				found = 1;
			}
			continue;
		}
		if (*p < '0' || *p > '9')
			continue;
		p = parse_u64(p, &idx);
		if (p == NULL || idx >= CPU_MAX_INDEX || cpu_line(p, &t) < 0)
			continue;
		if (cpu_grow(st, (size_t)idx + 1) < 0)
			return -1;
		if (!st->per[idx].present)
			st->online++;
		st->per[idx] = t;
		if (idx + 1 > st->nper)
			st->nper = (size_t)idx + 1;
	}
	return found ? 0 : -1;
}

int
cpu_stat_read(const char *path, struct cpu_stat *st)
{
	struct lsrc s;
	int rc;

	if (lsrc_open_kept(&s, path) < 0)
		return -1;
	rc = cpu_stat_parse(&s, st);
	lsrc_close(&s);
	if (rc < 0)
		errno = EINVAL;
	return rc;
}

void
cpu_stat_free(struct cpu_stat *st)
{
	free(st->per);
	st->per = NULL;
	st->nper = st->cap = 0;
}

int
cpu_stat_copy(struct cpu_stat *old, const struct cpu_stat *cur)
{
	if (cpu_grow(old, cur->nper) < 0)
		return -1;
	old->all = cur->all;
	if (cur->nper)
		memcpy(old->per, cur->per, cur->nper * sizeof(*cur->per));
	for (size_t i = cur->nper; i < old->cap; i++)
		old->per[i].present = 0;
	old->nper = cur->nper;
	old->online = cur->online;
	old->ms = cur->ms;
	return 0;
}

static float
pct(uint64_t part, uint64_t whole)
{
	double v;

	if (whole == 0)
		return 0;
	v = 100.0 * (double)part / (double)whole;
	if (v < 0)
		v = 0;
	if (v > 100)
		v = 100;
	return (float)v;
}

void
cpu_times_pct(const struct cpu_times *old, const struct cpu_times *cur,
    struct cpu_pct *out)
{
	uint64_t d[CPU_NFIELDS], total = 0, idle;

	memset(out, 0, sizeof(*out));
	if (!cur->present || !old->present)
		return;
	for (int i = 0; i < CPU_NFIELDS; i++) {
		d[i] = cur->f[i] >= old->f[i] ? cur->f[i] - old->f[i] : 0;
		total += d[i];
	}
	if (total == 0) {
		out->idle = 100;
		return;
	}
	idle = d[CPU_IDLE] + d[CPU_IOWAIT];
	out->usage = pct(total - idle, total);
	out->user = pct(d[CPU_USER] + d[CPU_NICE], total);
	out->system = pct(d[CPU_SYSTEM] + d[CPU_IRQ] + d[CPU_SOFTIRQ], total);
	out->idle = pct(idle, total);
}

/* ---- model and cores ---- */

struct core_id {
	long pkg, core;
};

static int
core_cmp(const void *a, const void *b)
{
	const struct core_id *x = a, *y = b;

	if (x->pkg != y->pkg)
		return x->pkg < y->pkg ? -1 : 1;
	if (x->core != y->core)
		return x->core < y->core ? -1 : 1;
	return 0;
}

struct core_set {
	struct core_id *v;
	size_t n, cap;
};

static int
core_add(struct core_set *cs, long pkg, long core)
{
	if (cs->n == cs->cap) {
		size_t cap = cs->cap ? cs->cap * 2 : 16;
		struct core_id *p;

		if (cap > CPU_MAX_INDEX)
			return -1;
		p = realloc(cs->v, cap * sizeof(*p));
		if (p == NULL)
			return -1;
		cs->v = p;
		cs->cap = cap;
	}
	cs->v[cs->n].pkg = pkg;
	cs->v[cs->n].core = core;
	cs->n++;
	return 0;
}

/* Distinct pairs; frees the set. */
static unsigned
core_count(struct core_set *cs)
{
	unsigned n = 0;

	if (cs->n) {
		qsort(cs->v, cs->n, sizeof(*cs->v), core_cmp);
		n = 1;
		for (size_t i = 1; i < cs->n; i++)
			if (core_cmp(&cs->v[i - 1], &cs->v[i]) != 0)
				n++;
	}
	free(cs->v);
	cs->v = NULL;
	cs->n = cs->cap = 0;
	return n;
}

static int
parse_long(const char *p, long *v)
{
	char *end;
	long x;

	while (*p == ' ' || *p == '\t')
		p++;
	errno = 0;
	x = strtol(p, &end, 10);
	if (end == p || errno)
		return -1;
	*v = x;
	return 0;
}

/* "key<blanks>: value" -> key (trailing blanks cut) and value; -1 if no colon. */
static int
split_kv(const char *line, char *key, size_t klen, const char **val)
{
	const char *colon = strchr(line, ':');
	size_t n;

	if (colon == NULL)
		return -1;
	n = (size_t)(colon - line);
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--;
	if (n >= klen)
		n = klen - 1;
	memcpy(key, line, n);
	key[n] = '\0';
	colon++;
	while (*colon == ' ' || *colon == '\t')
		colon++;
	*val = colon;
	return 0;
}

static void
copy_trim(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	while (n > 0 && (src[n - 1] == ' ' || src[n - 1] == '\t' || src[n - 1] == '\r'))
		n--;
	if (n >= len)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

void
cpu_info_parse(struct lsrc *s, struct cpu_info *ci)
{
	/* Lower rank wins; architectures name the model differently. */
	static const char *const model_keys[] = {
		"model name", "Processor", "cpu model", "cpu", "Hardware",
	};
	struct core_set cs = { NULL, 0, 0 };
	int rank = (int)(sizeof(model_keys) / sizeof(model_keys[0]));
	long pkg = -1, core = -1;
	int bad = 0;
	const char *line;

	memset(ci, 0, sizeof(*ci));
	for (;;) {
		char key[32];
		const char *val;
		long v;

		line = lsrc_next(s);
		/* A blank line or "processor" ends a block. */
		if (line == NULL || line[0] == '\0' ||
		    strncmp(line, "processor", 9) == 0) {
			if (pkg >= 0 && core >= 0 && !bad && core_add(&cs, pkg, core) < 0)
				bad = 1;
			pkg = core = -1;
			if (line == NULL)
				break;
			if (line[0] == '\0')
				continue;
		}
		if (split_kv(line, key, sizeof(key), &val) < 0)
			continue;
		if (strcmp(key, "processor") == 0) {
			ci->logical++;
			continue;
		}
		if (strcmp(key, "physical id") == 0 && parse_long(val, &v) == 0) {
			pkg = v;
			continue;
		}
		if (strcmp(key, "core id") == 0 && parse_long(val, &v) == 0) {
			core = v;
			continue;
		}
		for (int i = 0; i < rank; i++)
			if (strcmp(key, model_keys[i]) == 0 && *val != '\0') {
				copy_trim(ci->model, sizeof(ci->model), val);
				rank = i;
				break;
			}
	}
	ci->physical = core_count(&cs);
	if (bad)
		ci->physical = 0;
}

unsigned
cpu_topology_cores(const char *sysdir)
{
	struct core_set cs = { NULL, 0, 0 };
	struct dirent *de;
	DIR *d;

	d = opendir(sysdir);
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char path[512], buf[32];
		long pkg, core;
		const char *p = de->d_name;

		if (strncmp(p, "cpu", 3) != 0 || p[3] < '0' || p[3] > '9')
			continue;
		for (p += 3; *p >= '0' && *p <= '9'; p++)
			;
		if (*p != '\0')
			continue;
		snprintf(path, sizeof(path), "%s/%s/topology/physical_package_id",
		    sysdir, de->d_name);
		if (read_small(path, buf, sizeof(buf)) <= 0 || parse_long(buf, &pkg) < 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s/topology/core_id", sysdir, de->d_name);
		if (read_small(path, buf, sizeof(buf)) <= 0 || parse_long(buf, &core) < 0)
			continue;
		if (core_add(&cs, pkg, core) < 0)
			break;
	}
	closedir(d);
	return core_count(&cs);
}

void
cpu_info_read(const char *cpuinfo, const char *sysdir, struct cpu_info *ci)
{
	struct lsrc s;
	unsigned topo;

	memset(ci, 0, sizeof(*ci));
	if (lsrc_open(&s, cpuinfo) == 0) {
		cpu_info_parse(&s, ci);
		lsrc_close(&s);
	}
	topo = cpu_topology_cores(sysdir);
	if (topo)
		ci->physical = topo;
	if (ci->logical == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		ci->logical = n > 0 ? (unsigned)n : 1;
	}
	if (ci->physical == 0 || ci->physical > ci->logical)
		ci->physical = ci->logical;
}
