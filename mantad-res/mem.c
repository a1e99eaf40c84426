/* Memory and swap from /proc/meminfo. */
#include <errno.h>
#include <string.h>

#include "res.h"

static float
percent_of(uint64_t part, uint64_t whole)
{
	double v;

	if (whole == 0)
		return 0;
	v = 100.0 * (double)part / (double)whole;
	return (float)(v > 100 ? 100 : v);
}

/* kB -> bytes without wrapping on a corrupt value. */
static uint64_t
kb(uint64_t v)
{
	return v > UINT64_MAX / 1024 ? UINT64_MAX : v * 1024;
}

int
mem_parse(struct lsrc *s, struct mem_info *m)
{
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
		{ "MemTotal:", offsetof(struct mem_info, total) },
		{ "MemFree:", offsetof(struct mem_info, free) },
		{ "MemAvailable:", offsetof(struct mem_info, available) },
		{ "Buffers:", offsetof(struct mem_info, buffers) },
		{ "Cached:", offsetof(struct mem_info, cached) },
		{ "SReclaimable:", offsetof(struct mem_info, sreclaimable) },
		{ "SwapTotal:", offsetof(struct mem_info, swap_total) },
		{ "SwapFree:", offsetof(struct mem_info, swap_free) },
	};
	const char *line;
	int have_total = 0, have_avail = 0;

	memset(m, 0, sizeof(*m));
	while ((line = lsrc_next(s)) != NULL) {
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			size_t n = strlen(keys[i].key);
			uint64_t v;

			if (strncmp(line, keys[i].key, n) != 0)
				continue;
			if (parse_u64(line + n, &v) == NULL)
				break;
			*(uint64_t *)(void *)((char *)m + keys[i].off) = kb(v);
			if (i == 0)
				have_total = 1;
			else if (i == 2)
				have_avail = 1;
			break;
		}
	}
	if (!have_total)
		return -1;
	if (!have_avail) {
		/* Kernels before 3.14: an estimate in the spirit of MemAvailable. */
		uint64_t a = m->free + m->buffers + m->cached + m->sreclaimable;
		m->available = a < m->free ? UINT64_MAX : a;
	}
	if (m->available > m->total)
		m->available = m->total;
	if (m->free > m->total)
		m->free = m->total;
	m->used = m->total - m->available;
	m->percent = percent_of(m->used, m->total);
	if (m->swap_free > m->swap_total)
		m->swap_free = m->swap_total;
	m->swap_used = m->swap_total - m->swap_free;
	m->swap_percent = percent_of(m->swap_used, m->swap_total);
	return 0;
}

int
mem_read(const char *path, struct mem_info *m)
{
	struct lsrc s;
	int rc;

	if (lsrc_open_kept(&s, path) < 0)
		return -1;
	rc = mem_parse(&s, m);
	lsrc_close(&s);
	if (rc < 0)
		errno = EINVAL;
	return rc;
}
