/* Unit tests of libcommon/hist.c: a value on a bucket's bound counts in
 * that bucket (Prometheus "le"), one past it in the next, anything past
 * 10 s in +Inf; sum and count add up; the proto view carries every bound
 * and one more count than bounds, and stays valid while its storage does. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hist.h"
#include "ipc.h"

static void
test_buckets(void **state)
{
	struct hist h;

	(void)state;
	memset(&h, 0, sizeof(h));
	hist_observe(&h, 0);
	hist_observe(&h, 100);		/* on the first bound: le 100 us */
	hist_observe(&h, 101);		/* next bucket: le 250 us */
	hist_observe(&h, 10000000);	/* the last bound, 10 s */
	hist_observe(&h, 10000001);	/* +Inf */
	assert_int_equal(h.counts[0], 2);
	assert_int_equal(h.counts[1], 1);
	assert_int_equal(h.counts[HIST_NBOUNDS - 1], 1);
	assert_int_equal(h.counts[HIST_NBOUNDS], 1);
	assert_int_equal(h.count, 5);
	assert_int_equal(h.sum_us, 0 + 100 + 101 + 10000000 + 10000001);
}

static void
test_proto(void **state)
{
	struct hist h;
	struct hist_proto hp;
	Manta__Ipc__Histogram p;
	uint64_t total = 0;

	(void)state;
	memset(&h, 0, sizeof(h));
	for (uint64_t us = 1; us < 20000000; us *= 3)
		hist_observe(&h, us);
	hist_to_proto(&h, &hp, &p);
	assert_int_equal(p.n_bounds_us, HIST_NBOUNDS);
	assert_int_equal(p.n_counts, HIST_NBOUNDS + 1);
	for (size_t i = 1; i < p.n_bounds_us; i++)
		assert_true(p.bounds_us[i] > p.bounds_us[i - 1]);
	for (size_t i = 0; i < p.n_counts; i++)
		total += p.counts[i];
	assert_int_equal(total, h.count);
	assert_int_equal(p.count, h.count);
	assert_int_equal(p.sum_us, h.sum_us);
	/* A copy, not a view of h: h may change after. */
	hist_observe(&h, 1);
	assert_int_equal(p.counts[0], hp.counts[0]);
	assert_int_not_equal(h.counts[0], p.counts[0]);
	assert_true(hist_now_us() > 0);
}

/* A status reply carrying a histogram passes ipc_validate only when its
 * shape is one mantactl metrics can print. */
static void
test_validate(void **state)
{
	struct hist h;
	struct hist_proto hp;
	Manta__Ipc__Histogram p;
	Manta__Ipc__ExecStatus es = MANTA__IPC__EXEC_STATUS__INIT;
	Manta__Ipc__StatusReply sr = MANTA__IPC__STATUS_REPLY__INIT;
	ipc_msg m = MANTA__IPC__MSG__INIT;
	char err[128];
	uint64_t swap;

	(void)state;
	memset(&h, 0, sizeof(h));
	hist_observe(&h, 5000);
	hist_to_proto(&h, &hp, &p);
	es.launch_latency = &p;
	sr.exec = &es;
	m.body_case = MANTA__IPC__MSG__BODY_STATUS;
	m.status = &sr;
	assert_int_equal(ipc_validate(&m, err, sizeof(err)), 0);
	p.n_counts--;				/* no +Inf bucket */
	assert_int_equal(ipc_validate(&m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "histogram"));
	p.n_counts++;
	swap = hp.bounds[2];			/* bounds out of order */
	hp.bounds[2] = hp.bounds[3];
	hp.bounds[3] = swap;
	assert_int_equal(ipc_validate(&m, err, sizeof(err)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_proto),
		cmocka_unit_test(test_validate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
