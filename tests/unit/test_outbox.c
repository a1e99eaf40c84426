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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_beat_outbox_full),
	};

	log_init("test_outbox", LOG_LVL_ERROR + 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
