/* Unit tests of libcommon/id.c: text forms and the WIRE.md string rule. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "id.h"

static void
test_hex_roundtrip(void **state)
{
	struct manta_id id;
	char hex[33];

	assert_int_equal(id_parse_hex("0123456789abcdef0123456789ABCDEF", &id), 0);
	assert_true(id.head == 0x0123456789abcdefULL);
	assert_true(id.tail == 0x0123456789abcdefULL);
	id_to_hex(id, hex);
	assert_string_equal(hex, "0123456789abcdef0123456789abcdef");
	assert_int_equal(id_parse_hex("0123", &id), -1);
	assert_int_equal(id_parse_hex("0123456789abcdef0123456789abcdeg", &id), -1);
	assert_int_equal(id_parse_hex("0123456789abcdef0123456789abcdef0", &id), -1);
	assert_int_equal(id_parse_hex("", &id), -1);
	assert_int_equal(id_parse_hex(NULL, &id), -1);
}

static void
test_from_string_hex(void **state)
{
	struct manta_id id;
	char hex[33];

	id_from_string("deadbeef", &id);
	id_to_hex(id, hex);
	assert_string_equal(hex, "000000000000000000000000deadbeef");
	id_from_string("0xDEAD_BEEF", &id);
	id_to_hex(id, hex);
	assert_string_equal(hex, "000000000000000000000000deadbeef");
	id_from_string("ffffffffffffffffffffffffffffffff", &id);
	assert_true(id.head == UINT64_MAX && id.tail == UINT64_MAX);
	id_from_string("000ffffffffffffffffffffffffffffffff", &id);
	assert_true(id.head == UINT64_MAX && id.tail == UINT64_MAX);
}

static void
test_from_string_not_hex(void **state)
{
	struct manta_id a, b;

	/* 2^128 does not fit: hashed, so not all ones. */
	id_from_string("100000000000000000000000000000000", &a);
	assert_false(a.head == 0 && a.tail == 0);
	id_from_string("node-a", &a);
	id_from_string("node-b", &b);
	assert_false(id_equal(a, b));
	id_from_string("node-a", &b);
	assert_true(id_equal(a, b));
	/* Python's int() refuses these, so they are hashed too. */
	id_from_string("de__ad", &a);
	id_from_string("dead", &b);
	assert_false(id_equal(a, b));
	id_from_string("-5", &a);
	assert_false(a.head == 0 && a.tail == 5);
}

static void
test_random_uuid4(void **state)
{
	struct manta_id a, b;

	assert_int_equal(id_random(&a), 0);
	assert_int_equal(id_random(&b), 0);
	assert_false(id_equal(a, b));
	assert_int_equal((a.head >> 12) & 0xf, 4);		/* version */
	assert_int_equal((a.tail >> 62) & 0x3, 2);		/* variant */
}

static void
test_pair(void **state)
{
	struct manta_id id = { 0x1122334455667788ULL, 0x99aabbccddeeff00ULL }, back;
	Common__System__PairId p;

	id_to_pair(id, &p);
	assert_true(p.head == id.head && p.tail == id.tail);
	back = id_from_pair(&p);
	assert_true(id_equal(id, back));
	back = id_from_pair(NULL);
	assert_true(id_is_zero(back));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex_roundtrip),
		cmocka_unit_test(test_from_string_hex),
		cmocka_unit_test(test_from_string_not_hex),
		cmocka_unit_test(test_random_uuid4),
		cmocka_unit_test(test_pair),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
