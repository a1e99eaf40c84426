/* mantad-register's logs_accept: each outcome by name (issue 15: an enum
 * the caller switches on without a default), on a real register.db. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../mantad-register/logs.c"
#include "../../mantad-register/store.c"

static void
put_id(uint8_t *p, struct manta_id id)
{
	put_le64(p, id.head);
	put_le64(p + 8, id.tail);
}

static void
test_logs_accept_outcomes(void **state)
{
	char dir[] = "/tmp/reglogs-test-XXXXXX", cmd[64], err[256];
	struct manta_id node = { 1, 2 }, swarm = { 3, 4 }, task = { 5, 6 };
	Manta__Ipc__TaskLogs tl = MANTA__IPC__TASK_LOGS__INIT;
	Common__System__PairId sp, tp;
	uint8_t frame[HDR_LEN + 4];
	sqlite3 *db;

	memset(frame, 0, sizeof(frame));
	put_id(frame, swarm);
	put_id(frame + 32, task);
	frame[48] = 7;			/* iteration */
	memcpy(frame + HDR_LEN, "zzzz", 4);
	id_to_pair(swarm, &sp);
	id_to_pair(task, &tp);
	tl.swarm_id = &sp;
	tl.task_id = &tp;
	tl.iteration = 7;
	tl.key = (char *)"k1";
	tl.content.data = frame;
	tl.content.len = sizeof(frame);

	assert_non_null(mkdtemp(dir));
	assert_non_null(db = store_open(dir));
	assert_int_equal(logs_accept(db, node, &tl, err, sizeof(err)), LOGS_STORED);
	assert_int_equal(logs_accept(db, node, &tl, err, sizeof(err)), LOGS_DUPLICATE);
	/* The header names another round: refused for good. */
	tl.key = (char *)"k2";
	tl.iteration = 8;
	assert_int_equal(logs_accept(db, node, &tl, err, sizeof(err)), LOGS_REFUSED);
	assert_non_null(strstr(err, "another round"));
	/* The database refuses: for now only. */
	tl.iteration = 7;
	assert_int_equal(db_exec(db, "DROP TABLE task_logs"), 0);
	assert_int_equal(logs_accept(db, node, &tl, err, sizeof(err)), LOGS_BUSY);
	db_close(db);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* register.ack (issue 15): what is written is read back; a shorter
 * record over a longer one reads as itself; a torn or foreign record
 * reads as none (the row is then sent again, never dropped). */
static void
test_ack_note(void **state)
{
	char dir[] = "/tmp/regack-test-XXXXXX", cmd[64], path[64], *key;
	int64_t seq;
	int fd, raw;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_not_equal(fd = store_ack_open(dir), -1);
	assert_int_equal(store_ack_read(fd, &seq, &key), 0);	/* none yet */
	assert_int_equal(store_ack_write(fd, 1234567, "swarm:task:0:0:17:final"), 0);
	assert_int_equal(store_ack_read(fd, &seq, &key), 1);
	assert_int_equal(seq, 1234567);
	assert_string_equal(key, "swarm:task:0:0:17:final");
	free(key);
	assert_int_equal(store_ack_write(fd, 8, "a b"), 0);	/* shorter, a space */
	assert_int_equal(store_ack_read(fd, &seq, &key), 1);
	assert_int_equal(seq, 8);
	assert_string_equal(key, "a b");
	free(key);
	/* Torn: the key cut short of its length and newline. */
	snprintf(path, sizeof(path), "%s/register.ack", dir);
	assert_int_not_equal(raw = open(path, O_WRONLY | O_TRUNC), -1);
	assert_int_equal(write(raw, "9 10 abc", 8), 8);
	assert_int_equal(store_ack_read(fd, &seq, &key), 0);
	assert_null(key);
	assert_int_equal(pwrite(raw, "9 1 abc\n", 8, 0), 8);	/* no newline after 1 */
	assert_int_equal(store_ack_read(fd, &seq, &key), 0);
	assert_int_equal(pwrite(raw, "x 1 a\n\0\0", 8, 0), 8);	/* no number */
	assert_int_equal(store_ack_read(fd, &seq, &key), 0);
	assert_int_equal(pwrite(raw, "9 99999999999999999999 a\n", 25, 0), 25);
	assert_int_equal(store_ack_read(fd, &seq, &key), 0);
	close(raw);
	close(fd);
	assert_int_equal(store_ack_read(-1, &seq, &key), -1);
	assert_int_equal(store_ack_write(-1, 1, "k"), -1);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_logs_accept_outcomes),
		cmocka_unit_test(test_ack_note),
	};

	log_init("test_register_logs", LOG_LVL_ERROR + 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
