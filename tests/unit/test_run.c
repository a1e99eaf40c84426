/* Unit tests of mantad-exec/run.c, the lifecycle of a run: its one table
 * of moves, and that a run is announced and cleaned up once, in order,
 * whatever asks for its end again (a second end, RUNNING after the end).
 * run.c is compiled in with the rest of mantad-exec stubbed: the stubs
 * record what run.c asked for. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../mantad-exec/run.c"

#define NCALLS 16

static struct {
	enum run_state st[NCALLS];
	uint32_t error_id[NCALLS];
	int code[NCALLS];
	int nannounce, release, netep, bundle, logs_end, admit, forget,
	    cleanup_async, launch;
} calls;

int
announce_transition(struct exec *x, struct run *r, enum run_state st,
    const char *reason, int exit_code, uint32_t error_id)
{
	(void)x;
	(void)reason;
	if (calls.nannounce < NCALLS) {
		calls.st[calls.nannounce] = st;
		calls.code[calls.nannounce] = exit_code;
		calls.error_id[calls.nannounce] = error_id;
	}
	calls.nannounce++;
	r->state = st;
	return 0;
}

bool
run_state_final(enum run_state s)
{
	return s == RS_COMPLETED || s == RS_FAILED || s == RS_STOPPED;
}

const char *
run_state_name(enum run_state s)
{
	static const char *const n[RS_COUNT] = { "QUEUED", "PENDING",
	    "RUNNING", "COMPLETED", "FAILED", "STOPPED" };

	return (unsigned)s < RS_COUNT ? n[s] : "UNKNOWN";
}

void queue_release(struct exec *x, struct run *r) { (void)x; (void)r; calls.release++; }
void netep_run_end(struct exec *x, struct run *r) { (void)x; (void)r; calls.netep++; }
void bundle_remove(struct exec *x, struct run *r) { (void)x; (void)r; calls.bundle++; }
void logs_end(struct exec *x, struct run *r) { (void)x; (void)r; calls.logs_end++; }
void logs_note(const struct run *r, const char *text) { (void)r; (void)text; }
void queue_admit(struct exec *x) { (void)x; calls.admit++; }
void run_maybe_forget(struct exec *x, struct run *r) { (void)x; (void)r; calls.forget++; }
int store_run_set(sqlite3 *db, const struct run *r) { (void)db; (void)r; return 0; }
int runtime_launch(struct exec *x, struct run *r) { (void)x; (void)r; calls.launch++; return -1; }
void runtime_cleanup_async(struct exec *x, const char *cid) { (void)x; (void)cid; calls.cleanup_async++; }

static struct manta_cfg cfg;
static struct exec ex = { .cfg = &cfg };
static struct run run;
static char runtime_name[] = "crun";

static int
setup(void **state)
{
	(void)state;
	memset(&calls, 0, sizeof(calls));
	memset(&run, 0, sizeof(run));
	memset(&cfg, 0, sizeof(cfg));
	ex.runtime_name = runtime_name;
	return 0;
}

static void
test_table(void **state)
{
	int n = 0;

	(void)state;
	for (int a = 0; a < RS_COUNT; a++)
		for (int b = 0; b < RS_COUNT; b++)
			n += run_move_ok(a, b);
	assert_int_equal(n, 9);
	assert_true(run_move_ok(RS_QUEUED, RS_PENDING));
	assert_true(run_move_ok(RS_PENDING, RS_RUNNING));
	assert_true(run_move_ok(RS_RUNNING, RS_COMPLETED));
	assert_false(run_move_ok(RS_QUEUED, RS_RUNNING));
	assert_false(run_move_ok(RS_PENDING, RS_COMPLETED));
	for (int b = 0; b < RS_COUNT; b++) {
		assert_false(run_move_ok(RS_COMPLETED, b));
		assert_false(run_move_ok(RS_FAILED, b));
		assert_false(run_move_ok(RS_STOPPED, b));
		assert_false(run_move_ok(b, RS_QUEUED));
	}
	assert_false(run_move_ok(RS_COUNT, RS_FAILED));
	assert_false(run_move_ok(RS_RUNNING, RS_COUNT));
}

/* Two ends for one run: one announcement, one cleanup. */
static void
test_end_once(void **state)
{
	(void)state;
	run.state = RS_RUNNING;
	run_end(&ex, &run, RS_COMPLETED, NULL, 0, 0);
	run_end(&ex, &run, RS_FAILED, "again", 1, ERR_NODE);
	run_end(&ex, &run, RS_STOPPED, "again", -1, 0);
	assert_int_equal(calls.nannounce, 1);
	assert_int_equal(calls.st[0], RS_COMPLETED);
	assert_int_equal(run.state, RS_COMPLETED);
	assert_int_equal(calls.release, 1);
	assert_int_equal(calls.netep, 1);
	assert_int_equal(calls.bundle, 1);
	assert_int_equal(calls.logs_end, 1);
	assert_int_equal(calls.admit, 1);
	assert_int_equal(calls.forget, 1);
}

/* An illegal end of a run not yet ended (PENDING told COMPLETED): not
 * announced, but the run gives back what it holds, as before run.c. */
static void
test_illegal_end_cleans(void **state)
{
	(void)state;
	run.state = RS_PENDING;
	run_end(&ex, &run, RS_COMPLETED, NULL, 0, 0);
	assert_int_equal(calls.nannounce, 0);
	assert_int_equal(run.state, RS_PENDING);
	assert_int_equal(calls.release, 1);
	assert_int_equal(calls.admit, 1);
	run_end(&ex, &run, RS_RUNNING, NULL, -1, 0);	/* not an end */
	assert_int_equal(calls.nannounce, 0);
	assert_int_equal(calls.release, 1);
}

/* A final run told RUNNING or PENDING: refused, nothing announced. */
static void
test_final_not_running(void **state)
{
	(void)state;
	run.state = RS_STOPPED;
	run_to_running(&ex, &run);
	assert_int_equal(run_to_pending(&ex, &run), -1);
	run.state = RS_RUNNING;
	run_to_running(&ex, &run);	/* RUNNING already: once */
	assert_int_equal(run_to_pending(&ex, &run), -1);
	assert_int_equal(calls.nannounce, 0);
	run.state = RS_QUEUED;
	assert_int_equal(run_to_pending(&ex, &run), 0);
	run_to_running(&ex, &run);
	run_to_running(&ex, &run);
	assert_int_equal(calls.nannounce, 2);
	assert_int_equal(calls.st[0], RS_PENDING);
	assert_int_equal(calls.st[1], RS_RUNNING);
}

/* A FAILED run keeps its bundle unless tasks.cleanup_on_failure; its
 * network namespace goes either way. */
static void
test_failed_keeps_bundle(void **state)
{
	(void)state;
	run.state = RS_RUNNING;
	run_end(&ex, &run, RS_FAILED, "exit status 1", 1, 0);
	assert_int_equal(calls.bundle, 0);
	assert_int_equal(calls.netep, 1);
	cfg.cleanup_on_failure = true;
	run.state = RS_RUNNING;
	run_end(&ex, &run, RS_FAILED, "exit status 1", 1, 0);
	assert_int_equal(calls.bundle, 1);
}

/* A queued run's end: no logs, the queue does not move (queue_admit's
 * own loop may be the caller), once. */
static void
test_unlaunched(void **state)
{
	(void)state;
	run.state = RS_QUEUED;
	run_end_unlaunched(&ex, &run, RS_STOPPED, "stop_task", 0);
	run_end_unlaunched(&ex, &run, RS_FAILED, "again", ERR_DOCKER);
	run_end(&ex, &run, RS_FAILED, "again", -1, ERR_DOCKER);
	assert_int_equal(calls.nannounce, 1);
	assert_int_equal(calls.st[0], RS_STOPPED);
	assert_true(run.logs_done);
	assert_int_equal(calls.bundle, 1);
	assert_int_equal(calls.forget, 1);
	assert_int_equal(calls.admit, 0);
	assert_int_equal(calls.logs_end, 0);
	assert_int_equal(run_end_unlisted(&ex, &run, RS_FAILED, "x",
	    ERR_DOCKER), 0);
	assert_int_equal(calls.nannounce, 1);
}

static void
write_result(char *dir, const char *text)
{
	char *p = path_join(dir, "result");
	FILE *f = p ? fopen(p, "w") : NULL;

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(p);
}

/* The shim's result, read once: RUNNING before the final state, and a
 * second word of the shim changes nothing. */
static void
test_shim_gone(void **state)
{
	char dir[] = "/tmp/test_run.XXXXXX";

	(void)state;
	assert_non_null(mkdtemp(dir));
	run.dir = dir;
	snprintf(run.cid, sizeof(run.cid), "c1");
	run.state = RS_PENDING;
	write_result(dir, "started=1 exit=3 signal=0 oom=0 timeout=0"
	    " stopped=0 runtime_error=0 runtime_code=0\n");
	run_shim_gone(&ex, &run);
	run_shim_gone(&ex, &run);
	assert_int_equal(calls.nannounce, 2);
	assert_int_equal(calls.st[0], RS_RUNNING);
	assert_int_equal(calls.st[1], RS_FAILED);
	assert_int_equal(calls.code[1], 3);
	assert_int_equal(calls.admit, 1);

	/* No result: the shim was killed; the container goes, FAILED. */
	memset(&calls, 0, sizeof(calls));
	run.state = RS_RUNNING;
	{
		char *p = path_join(dir, "result");

		assert_int_equal(unlink(p), 0);
		free(p);
	}
	run_shim_gone(&ex, &run);
	assert_int_equal(calls.nannounce, 1);
	assert_int_equal(calls.st[0], RS_FAILED);
	assert_int_equal(calls.error_id[0], ERR_NODE);
	assert_int_equal(calls.cleanup_async, 1);
	assert_int_equal(rmdir(dir), 0);
	run.dir = NULL;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_table, setup),
		cmocka_unit_test_setup(test_end_once, setup),
		cmocka_unit_test_setup(test_illegal_end_cleans, setup),
		cmocka_unit_test_setup(test_final_not_running, setup),
		cmocka_unit_test_setup(test_failed_keeps_bundle, setup),
		cmocka_unit_test_setup(test_unlaunched, setup),
		cmocka_unit_test_setup(test_shim_gone, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
