/* test_blake3: libcommon/blake3.c against digests from b3sum (Debian's
 * b3sum 1.3), and id_from_string's WIRE.md rule on top of it. The input of
 * length n is bytes i % 251, as in the official BLAKE3 test vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "blake3.h"
#include "id.h"

static const struct {
	size_t len;
	size_t outlen;
	const char *hex;	/* b3sum --length OUTLEN */
} vectors[] = {
	{ 0, 16, "af1349b9f5f9a1a6a0404dea36dcc949" },
	{ 0, 32, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262" },
	{ 1, 16, "2d3adedff11b61f14c886e35afa03673" },
	{ 1, 32, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213" },
	{ 63, 16, "e9bc37a594daad83be9470df7f7b3798" },
	{ 63, 32, "e9bc37a594daad83be9470df7f7b3798297c3d834ce80ba85d6e207627b7db7b" },
	{ 64, 16, "4eed7141ea4a5cd4b788606bd23f46e2" },
	{ 64, 32, "4eed7141ea4a5cd4b788606bd23f46e212af9cacebacdc7d1f4c6dc7f2511b98" },
	{ 65, 16, "de1e5fa0be70df6d2be8fffd0e99ceaa" },
	{ 65, 32, "de1e5fa0be70df6d2be8fffd0e99ceaa8eb6e8c93a63f2d8d1c30ecb6b263dee" },
	{ 1023, 16, "10108970eeda3eb932baac1428c7a216" },
	{ 1023, 32, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11" },
	{ 1024, 16, "42214739f095a406f3fc83deb889744a" },
	{ 1024, 32, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7" },
	{ 1025, 16, "d00278ae47eb27b34faecf67b4fe263f" },
	{ 1025, 32, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444" },
	{ 2048, 16, "e776b6028c7cd22a4d0ba182a8bf6220" },
	{ 2048, 32, "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a" },
	{ 3073, 16, "7124b49501012f81cc7f11ca069ec922" },
	{ 3073, 32, "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3" },
	{ 100000, 16, "d93c23eedaf165a7e0be908ba86f1a7a" },
	{ 100000, 32, "d93c23eedaf165a7e0be908ba86f1a7a520d568d2d13cde787c8580c5c72cc54" },
};

static uint8_t *
pattern(size_t len)
{
	uint8_t *b = malloc(len + 1);

	assert_non_null(b);
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(i % 251);
	return b;
}

static void
tohex(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
	out[2 * n] = '\0';
}

static void
test_vectors(void **state)
{
	(void)state;
	for (size_t v = 0; v < sizeof(vectors) / sizeof(vectors[0]); v++) {
		uint8_t *in = pattern(vectors[v].len);
		uint8_t d[64];
		char hex[129];

		blake3_hash(in, vectors[v].len, d, vectors[v].outlen);
		tohex(d, vectors[v].outlen, hex);
		if (strcmp(hex, vectors[v].hex) != 0)
			fail_msg("len %zu outlen %zu: got %s want %s",
			    vectors[v].len, vectors[v].outlen, hex, vectors[v].hex);
		free(in);
	}
}

/* A shorter output is a prefix of a longer one (BLAKE3's XOF). */
static void
test_prefix(void **state)
{
	uint8_t *in = pattern(5000);
	uint8_t a[64], b[16];

	(void)state;
	blake3_hash(in, 5000, a, sizeof(a));
	blake3_hash(in, 5000, b, sizeof(b));
	assert_memory_equal(a, b, sizeof(b));
	free(in);
}

/* Many lengths around block, chunk and tree boundaries against the b3sum
 * binary itself, when it is installed. */
static void
test_b3sum(void **state)
{
	static const size_t lens[] = {
		127, 128, 129, 960, 1088, 2047, 2049, 3072, 4095, 4096, 4097,
		5120, 6145, 8191, 8192, 8193, 16384, 31744, 65537, 1048577,
	};
	char path[] = "/tmp/test_blake3.XXXXXX";
	int fd;

	(void)state;
	if (access("/usr/bin/b3sum", X_OK) != 0)
		skip();
	assert_true((fd = mkstemp(path)) >= 0);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint8_t *in = pattern(lens[i]);
		uint8_t d[32];
		char cmd[128], want[80] = "", got[65];
		FILE *p;

		assert_int_equal(ftruncate(fd, 0), 0);
		assert_int_equal(pwrite(fd, in, lens[i], 0), (ssize_t)lens[i]);
		snprintf(cmd, sizeof(cmd), "/usr/bin/b3sum --no-names --length 32 %s", path);
		assert_non_null(p = popen(cmd, "r"));
		assert_non_null(fgets(want, sizeof(want), p));
		pclose(p);
		want[strcspn(want, "\n")] = '\0';
		blake3_hash(in, lens[i], d, sizeof(d));
		tohex(d, sizeof(d), got);
		if (strcmp(got, want) != 0)
			fail_msg("len %zu: got %s, b3sum %s", lens[i], got, want);
		free(in);
	}
	close(fd);
	unlink(path);
}

static void
check_id(const char *s, const char *want)
{
	struct manta_id id;
	char hex[ID_HEX_LEN + 1];

	id_from_string(s, &id);
	id_to_hex(id, hex);
	if (strcmp(hex, want) != 0)
		fail_msg("id_from_string(\"%s\"): got %s want %s", s, hex, want);
}

/* WIRE.md section 1: hex below 2^128 is the number itself, anything else
 * is BLAKE3-16 of the bytes read big-endian (b3sum --length 16). */
static void
test_id_from_string(void **state)
{
	(void)state;
	check_id("deadbeef", "000000000000000000000000deadbeef");
	check_id("DEADBEEF", "000000000000000000000000deadbeef");
	check_id("ff", "000000000000000000000000000000ff");
	check_id("0000000000000000000000000000000000ff",
	    "000000000000000000000000000000ff");
	check_id("ffffffffffffffffffffffffffffffff",
	    "ffffffffffffffffffffffffffffffff");
	check_id("0123456789abcdef0123456789abcdef",
	    "0123456789abcdef0123456789abcdef");
	/* 2^128: hex, but too large */
	check_id("100000000000000000000000000000000",
	    "a55eab63d790925a6aa9ca8d4b3cb8fd");
	check_id("node-a", "09fb929a506c9dd1dee9500637e69cba");
	check_id("xyz", "f006b5ee4890b66656cf6c23998e2519");
	check_id("g1", "7a690fcf9dde5de932a6f63fe99a3111");
	check_id("h\xc3\xa9llo", "4e406513432b4da52ae947c084ea5cf3");
	check_id("", "af1349b9f5f9a1a6a0404dea36dcc949");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_b3sum),
		cmocka_unit_test(test_id_from_string),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
