/* hist: fixed latency buckets from 100 us to 10 s, the same in every
 * daemon so that mantactl metrics needs no negotiation. */
#include <string.h>
#include <time.h>

#include "hist.h"

static const uint64_t bounds_us[HIST_NBOUNDS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

uint64_t
hist_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void
hist_observe(struct hist *h, uint64_t us)
{
	size_t i;

	for (i = 0; i < HIST_NBOUNDS && us > bounds_us[i]; i++)
		;
	h->counts[i]++;
	h->sum_us += us;
	h->count++;
}

void
hist_to_proto(const struct hist *h, struct hist_proto *storage,
    Manta__Ipc__Histogram *p)
{
	manta__ipc__histogram__init(p);
	memcpy(storage->bounds, bounds_us, sizeof(bounds_us));
	memcpy(storage->counts, h->counts, sizeof(h->counts));
	p->n_bounds_us = HIST_NBOUNDS;
	p->bounds_us = storage->bounds;
	p->n_counts = HIST_NBOUNDS + 1;
	p->counts = storage->counts;
	p->sum_us = h->sum_us;
	p->count = h->count;
}
