/* hist: a fixed-bucket latency histogram (microseconds), kept by a daemon
 * and sent in its StatusReply for `mantactl metrics`, which prints it as a
 * Prometheus histogram. Not thread-safe: one owner thread observes. */
#ifndef HIST_H
#define HIST_H

#include <stdint.h>

#include "ipc.pb-c.h"

#define HIST_NBOUNDS 16

struct hist {
	uint64_t counts[HIST_NBOUNDS + 1];	/* per bucket; the last is +Inf */
	uint64_t sum_us;
	uint64_t count;
};

/* Microseconds of CLOCK_MONOTONIC, for the start and end of what is timed. */
uint64_t hist_now_us(void);
void hist_observe(struct hist *h, uint64_t us);
struct hist_proto {
	uint64_t bounds[HIST_NBOUNDS];
	uint64_t counts[HIST_NBOUNDS + 1];
};
/* Points p (whose arrays live in storage) at h's figures; p stays valid
 * while storage does. */
void hist_to_proto(const struct hist *h, struct hist_proto *storage,
    Manta__Ipc__Histogram *p);

#endif
