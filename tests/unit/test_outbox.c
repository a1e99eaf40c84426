/* The outboxes keep what they acknowledged across a power loss (issue 15,
 * finding 6): beat.db and register.db are opened with synchronous=FULL.
 * The hand-off ids of beat's inbox (finding 2): one id per command
 * received, the same on every attempt and after a restart, never given to
 * another command, even after beat.db is deleted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../mantad-beat/outbox.c"
#include "../../mantad-beat/inbox.c"

static int
synchronous(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v = -1;

	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &st, NULL),
	    SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* db_open gives NORMAL (1), db_durable FULL (2). */
static void
test_db_durable(void **state)
{
	char path[64];
	sqlite3 *db;

	snprintf(path, sizeof(path), "/tmp/outbox-test-%d.db", (int)getpid());
	assert_non_null(db = db_open(path, migrations, 1));
	assert_int_equal(synchronous(db), 1);
	assert_int_equal(db_durable(db), 0);
	assert_int_equal(synchronous(db), 2);
	db_close(db);
	unlink(path);
	strcat(path, "-wal");
	unlink(path);
	path[strlen(path) - 4] = '\0';
	strcat(path, "-shm");
	unlink(path);
}

static void
test_beat_outbox_full(void **state)
{
	char dir[] = "/tmp/outbox-test-XXXXXX", cmd[64];
	struct outbox *ob;

	assert_non_null(mkdtemp(dir));
	assert_non_null(ob = outbox_open(dir));
	assert_int_equal(synchronous(ob->db), 2);
	outbox_close(ob);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* Each outcome of outbox_add, by name (an enum the caller switches on
 * without a default). */
static void
test_outbox_add_outcomes(void **state)
{
	char dir[] = "/tmp/outbox-test-XXXXXX", cmd[64];
	const uint8_t pl[] = "update";
	struct outbox *ob;

	assert_non_null(mkdtemp(dir));
	assert_non_null(ob = outbox_open(dir));
	assert_int_equal(outbox_add(ob, "t", pl, sizeof(pl), 1, "k1"), OB_STORED);
	assert_int_equal(outbox_add(ob, "t", pl, sizeof(pl), 1, "k1"), OB_DUPLICATE);
	assert_int_equal(outbox_add(ob, "t", pl, 0, 0, NULL), OB_STORED);
	assert_int_equal(outbox_count(ob), 2);
	ob->count = OUTBOX_MAX_ROWS;
	assert_int_equal(outbox_add(ob, "t", pl, sizeof(pl), 1, "k2"), OB_FULL);
	/* A duplicate is recognized even when full: the sender stops retrying. */
	assert_int_equal(outbox_add(ob, "t", pl, sizeof(pl), 1, "k1"), OB_DUPLICATE);
	ob->count = 2;
	assert_int_equal(db_exec(ob->db, "DROP TABLE outbox"), 0);
	assert_int_equal(outbox_add(ob, "t", pl, sizeof(pl), 1, "k3"), OB_ERROR);
	outbox_close(ob);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* outbox_next answers from memory past the last row (issue 14: the
 * heartbeat's tick pumps every second) and finds every row still there:
 * after done and drop, after a reopen, after the outbox emptied. */
static void
test_outbox_next(void **state)
{
	char dir[] = "/tmp/outbox-test-XXXXXX", cmd[64];
	const uint8_t pl[] = "update";
	struct outbox *ob;
	struct ob_row r;

	assert_non_null(mkdtemp(dir));
	assert_non_null(ob = outbox_open(dir));
	assert_int_equal(outbox_next(ob, 0, &r), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(outbox_add(ob, "t", pl, sizeof(pl), 1, NULL), OB_STORED);
	assert_int_equal(outbox_next(ob, 0, &r), 1);
	assert_int_equal(r.seq, 1);
	ob_row_clear(&r);
	assert_int_equal(outbox_done(ob, 1), 0);
	assert_int_equal(outbox_drop(ob, 2), 0);
	assert_int_equal(outbox_done(ob, 2), 0);	/* gone already */
	assert_int_equal(outbox_count(ob), 1);
	assert_int_equal(outbox_next(ob, 0, &r), 1);
	assert_int_equal(r.seq, 3);
	ob_row_clear(&r);
	assert_int_equal(outbox_next(ob, 3, &r), 0);
	outbox_close(ob);

	assert_non_null(ob = outbox_open(dir));
	assert_int_equal(outbox_count(ob), 1);
	assert_int_equal(outbox_next(ob, 0, &r), 1);
	assert_int_equal(r.seq, 3);
	ob_row_clear(&r);
	assert_int_equal(outbox_done(ob, 3), 0);
	assert_int_equal(outbox_count(ob), 0);
	assert_int_equal(outbox_next(ob, 0, &r), 0);
	outbox_close(ob);

	/* Empty, reopened: the next seq still comes after the last one. */
	assert_non_null(ob = outbox_open(dir));
	assert_int_equal(outbox_add(ob, "t", pl, sizeof(pl), 1, NULL), OB_STORED);
	assert_int_equal(outbox_next(ob, 3, &r), 1);
	assert_int_equal(r.seq, 4);
	ob_row_clear(&r);
	outbox_close(ob);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void
is_name(const char *s, size_t len)
{
	assert_int_equal(strspn(s, "0123456789abcdef"), len);
}

static void
kept(void *arg, uint64_t seq, char *topic, uint8_t *p, size_t len)
{
	uint64_t *last = arg;

	*last = seq;
	free(topic);
	free(p);
	(void)len;
}

static void
test_handoff_ids(void **state)
{
	char dir[] = "/tmp/inbox-test-XXXXXX", cmd[64];
	char first[HANDOFF_LEN + 1], again[HANDOFF_LEN + 1], other[HANDOFF_LEN + 1];
	const uint8_t pl[] = "deploy";
	struct outbox *ob;
	struct inbox *in;
	uint64_t seq, replayed = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_non_null(ob = outbox_open(dir));
	assert_non_null(in = inbox_open(outbox_db(ob)));
	assert_int_equal(seq = inbox_add(in, "node/n/deploy_task", pl, sizeof(pl)), 1);
	inbox_handoff(in, seq, first);
	/* <32 hex digits>-<row>: fits ipc_validate's 64 characters */
	assert_int_equal(strlen(first), ID_HEX_LEN + 2);
	is_name(first, ID_HEX_LEN);
	assert_string_equal(first + ID_HEX_LEN, "-1");
	inbox_handoff(in, seq, again);
	assert_string_equal(again, first);
	inbox_handoff(in, 2, other);
	assert_string_not_equal(other, first);
	inbox_close(in);
	outbox_close(ob);

	/* A restart: the row kept has the same id. */
	assert_non_null(ob = outbox_open(dir));
	assert_non_null(in = inbox_open(outbox_db(ob)));
	assert_int_equal(inbox_replay(in, kept, &replayed), 1);
	assert_int_equal(replayed, 1);
	inbox_handoff(in, replayed, again);
	assert_string_equal(again, first);
	/* Rows are not used again once handed over. */
	inbox_done(in, replayed);
	assert_int_equal(inbox_add(in, "node/n/stop_task", pl, sizeof(pl)), 2);
	inbox_close(in);
	outbox_close(ob);

	/* beat.db deleted: row 1 again, under another name. */
	snprintf(cmd, sizeof(cmd), "rm -f %s/beat.db*", dir);
	assert_int_equal(system(cmd), 0);
	assert_non_null(ob = outbox_open(dir));
	assert_non_null(in = inbox_open(outbox_db(ob)));
	assert_int_equal(seq = inbox_add(in, "node/n/deploy_task", pl, sizeof(pl)), 1);
	inbox_handoff(in, seq, again);
	assert_string_equal(again + ID_HEX_LEN, "-1");
	assert_string_not_equal(again, first);

	/* A command not kept (row 0): an id of its own each time. */
	inbox_handoff(in, 0, first);
	inbox_handoff(in, 0, other);
	assert_int_equal(strlen(first), ID_HEX_LEN);
	is_name(first, ID_HEX_LEN);
	assert_string_not_equal(first, other);
	inbox_close(in);
	outbox_close(ob);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_db_durable),
		cmocka_unit_test(test_beat_outbox_full),
		cmocka_unit_test(test_outbox_add_outcomes),
		cmocka_unit_test(test_outbox_next),
		cmocka_unit_test(test_handoff_ids),
	};

	log_init("test_outbox", LOG_LVL_ERROR + 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
