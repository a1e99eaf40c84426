/* The hand-off ids of mantad-beat's inbox (issue 15, finding 2): one id per
 * command received, the same on every attempt and after a restart, never
 * given to another command, even after beat.db is deleted. */
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
		cmocka_unit_test(test_handoff_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
