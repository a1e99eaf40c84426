/* Unit tests of libcommon/db.c: WAL, migrations, refusal of a newer schema
 * and of a corrupt file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "db.h"
#include "log.h"

static char path[128];

static const char *const v1[] = {
	"CREATE TABLE t(a INTEGER)",
};
static const char *const v2[] = {
	"CREATE TABLE t(a INTEGER)",
	"ALTER TABLE t ADD COLUMN b TEXT",
};
static const char *const bad[] = {
	"CREATE TABLE t(a INTEGER)",
	"CREATE TABLE u(a INTEGER)",
	"THIS IS NOT SQL",
};

static int
setup(void **state)
{
	snprintf(path, sizeof(path), "/tmp/db-test-%d.db", (int)getpid());
	return 0;
}

static void
rm_db(void)
{
	char p[160];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

static int
teardown(void **state)
{
	rm_db();
	return 0;
}

static void
test_migrate(void **state)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	rm_db();
	db = db_open(path, v1, 1);
	assert_non_null(db);
	assert_int_equal(db_user_version(db), 1);
	assert_int_equal(db_exec(db, "INSERT INTO t(a) VALUES (7)"), 0);
	db_close(db);
	db = db_open(path, v2, 2);
	assert_non_null(db);
	assert_int_equal(db_user_version(db), 2);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT a, b FROM t", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 7);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	db_close(db);
	/* Older program, newer file: refused rather than misread. */
	assert_null(db_open(path, v1, 1));
}

static void
test_failed_migration_rolls_back(void **state)
{
	sqlite3 *db;

	rm_db();
	assert_null(db_open(path, bad, 3));
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	/* Steps 1 and 2 committed, step 3 rolled back: still version 2. */
	assert_int_equal(db_user_version(db), 2);
	sqlite3_close(db);
}

static void
test_corrupt_file(void **state)
{
	FILE *f;

	rm_db();
	f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 4096; i++)
		fputc(i * 7, f);
	fclose(f);
	assert_null(db_open(path, v1, 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrate),
		cmocka_unit_test(test_failed_migration_rolls_back),
		cmocka_unit_test(test_corrupt_file),
	};

	log_init("test_db", LOG_LVL_ERROR + 1);
	return cmocka_run_group_tests(tests, setup, teardown);
}
