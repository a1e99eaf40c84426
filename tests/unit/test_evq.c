/* Unit tests of libcommon/evq.c: order, the eventfd's readiness, the
 * bounds (a full queue drops only bounded items, counts them once, and
 * takes them again after a take), leftovers freed, many threads pushing at
 * once; a worker's order, its limit, the jobs dropped at stop and a nap
 * cut short by the stop. The link is not the first member, as the daemons
 * may place it anywhere. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "daemon.h"
#include "evq.h"

#define THREADS 8
#define PER_THREAD 20000

struct item {
	int thread;
	int seq;
	size_t len;
	bool bounded;
	struct item *next;
};

static atomic_int freed;

static void
item_free(void *p)
{
	atomic_fetch_add(&freed, 1);
	free(p);
}

static bool
item_bounded(const void *p, size_t *bytes)
{
	const struct item *it = p;

	*bytes = it->len;
	return it->bounded;
}

static const struct evq_ops plain_ops = EVQ_OPS(struct item, next, item_free);
static const struct evq_ops bounded_ops = {
	.next = offsetof(struct item, next),
	.free = item_free,
	.bounded = item_bounded,
	.max_items = 3,
	.max_bytes = 100,
};

static struct item *
item_new(int thread, int seq, size_t len, bool bounded)
{
	struct item *it = calloc(1, sizeof(*it));

	assert_non_null(it);
	it->thread = thread;
	it->seq = seq;
	it->len = len;
	it->bounded = bounded;
	it->next = (struct item *)(uintptr_t)0xdead;	/* the queue sets it */
	return it;
}

static bool
readable(const struct evq *q, int ms)
{
	struct pollfd p = { .fd = evq_fd(q), .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* Frees a taken list; returns its length and checks seq runs 0, 1, ... */
static int
consume(struct item *list)
{
	struct item *it, *next;
	int n = 0;

	for (it = list; it != NULL; it = next) {
		next = it->next;
		assert_int_equal(it->seq, n);
		n++;
		item_free(it);
	}
	return n;
}

static void
test_order_and_fd(void **state)
{
	struct evq *q = evq_new(&plain_ops);
	unsigned dropped = 99;

	assert_non_null(q);
	assert_false(readable(q, 0));
	assert_null(evq_take(q, &dropped));
	assert_int_equal(dropped, 0);
	for (int i = 0; i < 5; i++)
		evq_push(q, item_new(0, i, 0, false));
	assert_true(readable(q, 0));
	assert_int_equal(consume(evq_take(q, NULL)), 5);
	assert_false(readable(q, 0));
	/* The queue goes on after a take. */
	evq_push(q, item_new(0, 0, 0, false));
	assert_int_equal(consume(evq_take(q, NULL)), 1);
	evq_free(q);
	evq_free(NULL);
}

static void
test_bounds(void **state)
{
	struct evq *q = evq_new(&bounded_ops);
	unsigned dropped;
	int seq = 0;

	assert_non_null(q);
	atomic_store(&freed, 0);
	/* max_items: the fourth bounded item goes, unbounded ones stay. */
	for (int i = 0; i < 3; i++)
		evq_push(q, item_new(0, seq++, 1, true));
	evq_push(q, item_new(0, 1000, 1, true));
	evq_push(q, item_new(0, seq++, 500, false));
	evq_push(q, item_new(0, 1001, 0, true));
	assert_int_equal(atomic_load(&freed), 2);
	assert_int_equal(consume(evq_take(q, &dropped)), seq);
	assert_int_equal(dropped, 2);

	/* max_bytes, to the byte; a take resets every count. */
	seq = 0;
	evq_push(q, item_new(0, seq++, 60, true));
	evq_push(q, item_new(0, 1000, 41, true));
	evq_push(q, item_new(0, seq++, 40, true));
	evq_push(q, item_new(0, 1001, 1, true));
	evq_push(q, item_new(0, 1002, SIZE_MAX, true));
	assert_int_equal(consume(evq_take(q, &dropped)), seq);
	assert_int_equal(dropped, 3);
	evq_push(q, item_new(0, 0, 100, true));
	assert_int_equal(consume(evq_take(q, &dropped)), 1);
	assert_int_equal(dropped, 0);
	evq_free(q);
}

static void
test_free_leftovers(void **state)
{
	struct evq *q = evq_new(&plain_ops);

	atomic_store(&freed, 0);
	for (int i = 0; i < 10; i++)
		evq_push(q, item_new(0, i, 0, false));
	evq_free(q);
	assert_int_equal(atomic_load(&freed), 10);
}

struct runner {
	int n;
	int last[THREADS];
};

static void
apply(void *arg, void *p)
{
	struct runner *r = arg;
	struct item *it = p;

	/* Each thread's items arrive in the order it pushed them. */
	assert_int_equal(it->seq, r->last[it->thread] + 1);
	r->last[it->thread] = it->seq;
	r->n++;
}

static struct evq *shared_q;

static void *
pusher(void *arg)
{
	int t = (int)(intptr_t)arg;

	for (int i = 0; i < PER_THREAD; i++)
		evq_push(shared_q, item_new(t, i, 1, false));
	return NULL;
}

static void
test_many_threads(void **state)
{
	pthread_t th[THREADS];
	struct runner r = { 0 };

	atomic_store(&freed, 0);
	for (int t = 0; t < THREADS; t++)
		r.last[t] = -1;
	assert_non_null(shared_q = evq_new(&plain_ops));
	for (int t = 0; t < THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, pusher,
		    (void *)(intptr_t)t), 0);
	/* As a main loop does: wait for the fd, run what is there. */
	while (r.n < THREADS * PER_THREAD) {
		assert_true(readable(shared_q, 10000));
		assert_int_equal(evq_run(shared_q, apply, &r), 0);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	assert_int_equal(evq_run(shared_q, apply, &r), 0);
	assert_int_equal(r.n, THREADS * PER_THREAD);
	assert_int_equal(atomic_load(&freed), THREADS * PER_THREAD);
	assert_false(readable(shared_q, 0));
	evq_free(shared_q);
}

/* ---- worker ---- */

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	bool entered;
	int ran[64];
	int nran;
	int naps;		/* a job with seq -1 naps this long (ms) */
	bool nap_result;
};

static void
gate_wait(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->entered = true;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void
run(struct evq_worker *w, void *job, void *arg)
{
	struct gate *g = arg;
	struct item *it = job;

	if (it->seq == -1) {
		bool r;

		pthread_mutex_lock(&g->lock);
		g->entered = true;
		pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&g->lock);
		r = evq_worker_nap(w, g->naps);
		pthread_mutex_lock(&g->lock);
		g->nap_result = r;
		pthread_mutex_unlock(&g->lock);
		return;
	}
	gate_wait(g);
	pthread_mutex_lock(&g->lock);
	g->ran[g->nran++] = it->seq;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void
gate_init(struct gate *g, bool open)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->open = open;
}

static void
gate_until_entered(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	while (!g->entered)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void
test_worker_order_limit_stop(void **state)
{
	struct gate g;
	struct evq_worker *w;

	gate_init(&g, false);
	atomic_store(&freed, 0);
	assert_non_null(w = evq_worker_start("test", &plain_ops, run, &g));
	/* The first job blocks in the worker; then the queue holds 4. */
	assert_int_equal(evq_worker_post(w, item_new(0, 0, 0, false), 4), 0);
	gate_until_entered(&g);
	for (int i = 1; i <= 4; i++)
		assert_int_equal(evq_worker_post(w, item_new(0, i, 0, false), 4), 0);
	assert_int_equal(evq_worker_post(w, item_new(0, 99, 0, false), 4), -1);
	assert_int_equal(atomic_load(&freed), 1);
	/* A lower limit for some jobs (beat's error reports). */
	assert_int_equal(evq_worker_post(w, item_new(0, 98, 0, false), 1), -1);
	assert_int_equal(atomic_load(&freed), 2);
	pthread_mutex_lock(&g.lock);
	g.open = true;
	pthread_cond_broadcast(&g.cond);
	while (g.nran < 5)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	for (int i = 0; i < 5; i++)
		assert_int_equal(g.ran[i], i);
	assert_int_equal(evq_worker_stop(w), 0);
	assert_int_equal(atomic_load(&freed), 7);
	assert_int_equal(evq_worker_stop(NULL), 0);

	/* Stopped with jobs waiting: the one running ends, the rest are
	 * counted and freed. */
	gate_init(&g, false);
	atomic_store(&freed, 0);
	assert_non_null(w = evq_worker_start("test", &plain_ops, run, &g));
	for (int i = 0; i < 10; i++)
		assert_int_equal(evq_worker_post(w, item_new(0, i, 0, false),
		    SIZE_MAX), 0);
	gate_until_entered(&g);
	pthread_mutex_lock(&g.lock);
	g.open = true;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	{
		size_t left = evq_worker_stop(w);

		assert_true(left <= 9);
		assert_int_equal((int)left + g.nran, 10);
	}
	assert_int_equal(atomic_load(&freed), 10);
}

static void
test_worker_nap(void **state)
{
	struct gate g;
	struct evq_worker *w;
	long long t0;

	/* Not stopped: the nap lasts, even when a job is posted meanwhile. */
	gate_init(&g, true);
	g.naps = 200;
	assert_non_null(w = evq_worker_start("test", &plain_ops, run, &g));
	t0 = daemon_now_ms();
	assert_int_equal(evq_worker_post(w, item_new(0, -1, 0, false), 8), 0);
	gate_until_entered(&g);
	assert_int_equal(evq_worker_post(w, item_new(0, 0, 0, false), 8), 0);
	pthread_mutex_lock(&g.lock);
	while (g.nran < 1)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	assert_true(daemon_now_ms() - t0 >= 200);
	assert_true(g.nap_result);
	assert_int_equal(evq_worker_stop(w), 0);

	/* A stop cuts a long nap short. */
	gate_init(&g, true);
	g.naps = 60000;
	g.nap_result = true;
	assert_non_null(w = evq_worker_start("test", &plain_ops, run, &g));
	assert_int_equal(evq_worker_post(w, item_new(0, -1, 0, false), 8), 0);
	gate_until_entered(&g);
	t0 = daemon_now_ms();
	assert_int_equal(evq_worker_stop(w), 0);
	assert_true(daemon_now_ms() - t0 < 10000);
	assert_false(g.nap_result);
}

static struct evq_worker *shared_w;

static void *
poster(void *arg)
{
	int t = (int)(intptr_t)arg;

	for (int i = 0; i < 2000; i++)
		assert_int_equal(evq_worker_post(shared_w,
		    item_new(t, i, 0, false), SIZE_MAX), 0);
	return NULL;
}

static atomic_int worker_ran;

static void
count_job(struct evq_worker *w, void *job, void *arg)
{
	atomic_fetch_add(&worker_ran, 1);
}

static void
test_worker_many_posters(void **state)
{
	pthread_t th[THREADS];
	size_t left;

	atomic_store(&freed, 0);
	atomic_store(&worker_ran, 0);
	assert_non_null(shared_w = evq_worker_start("test", &plain_ops,
	    count_job, NULL));
	for (int t = 0; t < THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, poster,
		    (void *)(intptr_t)t), 0);
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	left = evq_worker_stop(shared_w);
	assert_int_equal((int)left + atomic_load(&worker_ran), THREADS * 2000);
	assert_int_equal(atomic_load(&freed), THREADS * 2000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_fd),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_free_leftovers),
		cmocka_unit_test(test_many_threads),
		cmocka_unit_test(test_worker_order_limit_stop),
		cmocka_unit_test(test_worker_nap),
		cmocka_unit_test(test_worker_many_posters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
