/* The outboxes keep what they acknowledged across a power loss (issue 15,
 * finding 6): beat.db and register.db are opened with synchronous=FULL. */
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_db_durable),
		cmocka_unit_test(test_beat_outbox_full),
		cmocka_unit_test(test_outbox_add_outcomes),
	};

	log_init("test_outbox", LOG_LVL_ERROR + 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
