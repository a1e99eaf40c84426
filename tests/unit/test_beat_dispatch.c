/* test_beat_dispatch: mantad-beat's command table and payload checks
 * (mantad-beat/dispatch.c, compiled in here: it depends on nothing but the
 * generated protobuf-c code). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../mantad-beat/dispatch.c"

#define MAX (64 * 1024 * 1024)

static int
classify(const char *topic, const void *p, size_t len, struct dispatch *d)
{
	return dispatch_classify(topic, strlen(topic), p, len, MAX, d);
}

static void
test_last_segment(void **state)
{
	size_t n;
	const char *s;

	s = dispatch_last_segment("a/b/deploy_task", 15, &n);
	assert_int_equal(n, 11);
	assert_memory_equal(s, "deploy_task", 11);
	s = dispatch_last_segment("stop_node", 9, &n);
	assert_int_equal(n, 9);
	s = dispatch_last_segment("a/b/", 4, &n);
	assert_int_equal(n, 0);
	s = dispatch_last_segment("", 0, &n);
	assert_int_equal(n, 0);
	(void)s;
}

static void
test_lookup(void **state)
{
	assert_int_equal(dispatch_lookup("deploy_task", 11), CMD_DEPLOY_TASK);
	assert_int_equal(dispatch_lookup("stop_task", 9), CMD_STOP_TASK);
	assert_int_equal(dispatch_lookup("stop_swarm", 10), CMD_STOP_SWARM);
	assert_int_equal(dispatch_lookup("stop_node", 9), CMD_STOP_NODE);
	assert_int_equal(dispatch_lookup("collect_information", 19),
	    CMD_COLLECT_INFORMATION);
	assert_int_equal(dispatch_lookup("deploy_tas", 10), CMD_UNKNOWN);
	assert_int_equal(dispatch_lookup("deploy_taskx", 12), CMD_UNKNOWN);
	assert_int_equal(dispatch_lookup("", 0), CMD_UNKNOWN);
}

static size_t
pack_task(uint8_t *buf, uint64_t swarm, uint64_t task, uint32_t iteration)
{
	Common__Tasks__MqttTask t;
	Common__System__PairId s = COMMON__SYSTEM__PAIR_ID__INIT;
	Common__System__PairId k = COMMON__SYSTEM__PAIR_ID__INIT;

	common__tasks__mqtt_task__init(&t);
	s.tail = swarm;
	k.head = task;
	t.swarm_id = swarm ? &s : NULL;
	t.task_id = task ? &k : NULL;
	t.iteration = iteration;
	return common__tasks__mqtt_task__pack(&t, buf);
}

static void
test_deploy_task(void **state)
{
	struct dispatch d;
	uint8_t buf[128];
	size_t len = pack_task(buf, 7, 9, 3);

	assert_int_equal(classify("node/x/deploy_task", buf, len, &d), 0);
	assert_int_equal(d.cmd, CMD_DEPLOY_TASK);
	assert_string_equal(d.dest, "exec");
	assert_string_equal(d.name, "deploy_task");
	assert_true(d.swarm_tail == 7 && d.swarm_head == 0);
	assert_true(d.task_head == 9 && d.task_tail == 0);
	assert_int_equal(d.iteration, 3);

	/* Missing ids, empty payload, garbage, truncation. */
	len = pack_task(buf, 7, 0, 0);
	assert_int_equal(classify("node/x/deploy_task", buf, len, &d), -1);
	assert_int_equal(d.error_id, ERR_ID_MQTT);
	assert_int_equal(classify("node/x/deploy_task", "", 0, &d), -1);
	assert_int_equal(classify("node/x/deploy_task",
	    "\xff\xff\xff\xff\xff\xff\xff\xff\x0f", 9, &d), -1);
	assert_null(d.dest);
	assert_non_null(strstr(d.reason, "MqttTask"));
	assert_int_equal(classify("node/x/deploy_task", "\x0a\x7f\x08\x01", 4,
	    &d), -1);
}

static void
test_stop_commands(void **state)
{
	struct dispatch d;
	Common__System__EnvId e = COMMON__SYSTEM__ENV_ID__INIT;
	Common__System__PairId s = COMMON__SYSTEM__PAIR_ID__INIT;
	Common__System__PairId t = COMMON__SYSTEM__PAIR_ID__INIT;
	uint8_t buf[64];
	size_t len;

	s.head = 1;
	t.tail = 2;
	e.swarm_id = &s;
	e.task_id = &t;
	len = common__system__env_id__pack(&e, buf);
	assert_int_equal(classify("a/stop_task", buf, len, &d), 0);
	assert_int_equal(d.cmd, CMD_STOP_TASK);
	assert_true(d.swarm_head == 1 && d.task_tail == 2);
	e.task_id = NULL;
	len = common__system__env_id__pack(&e, buf);
	assert_int_equal(classify("a/stop_task", buf, len, &d), -1);

	len = common__system__pair_id__pack(&s, buf);
	assert_int_equal(classify("a/stop_swarm", buf, len, &d), 0);
	assert_string_equal(d.dest, "exec");
	assert_int_equal(classify("a/stop_swarm", "", 0, &d), -1);
	assert_int_equal(classify("a/stop_swarm", "\x08", 1, &d), -1);

	/* stop_node ignores its payload. */
	assert_int_equal(classify("a/stop_node", "\xff\x00", 2, &d), 0);
	assert_int_equal(d.cmd, CMD_STOP_NODE);
}

static void
test_collect_information(void **state)
{
	struct dispatch d;
	char *big;

	assert_int_equal(classify("n/collect_information", "set_overviews", 13,
	    &d), 0);
	assert_string_equal(d.dest, "register");
	assert_int_equal(classify("n/collect_information", "", 0, &d), -1);
	assert_int_equal(classify("n/collect_information", "\xff\xfe\x00garbage",
	    10, &d), -1);
	assert_int_equal(classify("n/collect_information", "a\0b", 3, &d), -1);
	big = malloc(70000);
	assert_non_null(big);
	memset(big, 'x', 70000);
	assert_int_equal(classify("n/collect_information", big, 70000, &d), -1);
	assert_int_equal(d.error_id, ERR_ID_MQTT);
	free(big);
}

static void
test_unknown_and_oversize(void **state)
{
	struct dispatch d;

	assert_int_equal(classify("node/x/no_such_command", "hello", 5, &d), -1);
	assert_int_equal(d.error_id, ERR_ID_MQTT);
	assert_non_null(strstr(d.reason, "node/x/no_such_command"));
	assert_int_equal(classify("node/x/", "", 0, &d), -1);
	assert_int_equal(d.error_id, ERR_ID_MQTT);
	/* Too big: refused on the length alone, the bytes are not read. */
	assert_int_equal(dispatch_classify("n/deploy_task", 13, NULL,
	    (size_t)MAX + 1, MAX, &d), -1);
	assert_int_equal(d.error_id, ERR_ID_MQTT);
	assert_non_null(strstr(d.reason, "too large"));
	/* A topic with control bytes is named printably. */
	assert_int_equal(dispatch_classify("a\nb/zz", 6, (const uint8_t *)"", 0,
	    MAX, &d), -1);
	assert_null(strchr(d.reason, '\n'));
}

static void
test_utf8(void **state)
{
	assert_true(dispatch_utf8_valid((const uint8_t *)"", 0));
	assert_true(dispatch_utf8_valid((const uint8_t *)"h\xc3\xa9", 3));
	assert_true(dispatch_utf8_valid((const uint8_t *)"\xf0\x9f\x98\x80", 4));
	assert_false(dispatch_utf8_valid((const uint8_t *)"\xc3\x28", 2));
	assert_false(dispatch_utf8_valid((const uint8_t *)"\xc0\xaf", 2));	/* overlong */
	assert_false(dispatch_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));	/* surrogate */
	assert_false(dispatch_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4));
	assert_false(dispatch_utf8_valid((const uint8_t *)"\xe2\x82", 2));	/* truncated */
}

static void
test_topics(void **state)
{
	assert_true(dispatch_topic_publishable("manager/update_task_status"));
	assert_false(dispatch_topic_publishable(""));
	assert_false(dispatch_topic_publishable("manager/#"));
	assert_false(dispatch_topic_publishable("a/+/b"));
	assert_true(dispatch_filter_valid("node/abc/+"));
	assert_true(dispatch_filter_valid("#"));
	assert_true(dispatch_filter_valid("a/+/b/#"));
	assert_true(dispatch_filter_valid("+"));
	assert_false(dispatch_filter_valid(""));
	assert_false(dispatch_filter_valid("a/#/b"));
	assert_false(dispatch_filter_valid("a/b#"));
	assert_false(dispatch_filter_valid("a/b+/c"));
}

static void
test_printable(void **state)
{
	char out[8];

	dispatch_printable(out, sizeof(out), "ab\x01", 3);
	assert_string_equal(out, "ab?");
	dispatch_printable(out, sizeof(out), "abcdefghijkl", 12);
	assert_string_equal(out, "abcd...");
	dispatch_printable(out, sizeof(out), "abcdefg", 7);
	assert_string_equal(out, "abcdefg");
}

/* WIRE.md section 1: the reference's text form of an id. */
static void
test_client_id(void **state)
{
	char out[DISPATCH_CLIENT_ID_LEN + 1];

	dispatch_client_id(0, 0xcafe, out);
	assert_string_equal(out, "0cafe");
	dispatch_client_id(0, 0, out);
	assert_string_equal(out, "00");
	dispatch_client_id(0xf78761cf8c3621e8ULL, 0x51097dff9a4b0463ULL, out);
	assert_string_equal(out, "f78761cf8c3621e851097dff9a4b0463");
	/* 31 significant digits: one zero makes 32, as padding would. */
	dispatch_client_id(0x0f78761cf8c3621eULL, 0x851097dff9a4b046ULL, out);
	assert_string_equal(out, "0f78761cf8c3621e851097dff9a4b046");
	/* 30 digits: still exactly one zero. */
	dispatch_client_id(0x00f78761cf8c3621ULL, 0xe851097dff9a4b04ULL, out);
	assert_string_equal(out, "0f78761cf8c3621e851097dff9a4b04");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_last_segment),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_deploy_task),
		cmocka_unit_test(test_stop_commands),
		cmocka_unit_test(test_collect_information),
		cmocka_unit_test(test_unknown_and_oversize),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_topics),
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_client_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
