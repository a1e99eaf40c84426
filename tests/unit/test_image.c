/* Unit tests of libcommon/image.c: image names map to one directory entry
 * each, deterministically and injectively; nothing maps to "/", "." or
 * "..", or escapes the image store; refused names are refused with EINVAL,
 * results that do not fit with ENAMETOOLONG. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "image.h"
#include "imgstore.h"

static void
test_examples(void **state)
{
	char out[IMAGE_SAFE_MAX + 1];

	(void)state;
	assert_int_equal(image_safe_name("busybox", out, sizeof(out)), 0);
	assert_string_equal(out, "busybox");
	assert_int_equal(image_safe_name("busybox:latest", out, sizeof(out)), 0);
	assert_string_equal(out, "busybox%3Alatest");
	assert_int_equal(image_safe_name("library/python:3.11-slim", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "library%2Fpython%3A3.11-slim");
	assert_int_equal(image_safe_name("a/../b", out, sizeof(out)), 0);
	assert_string_equal(out, "a%2F..%2Fb");
	assert_int_equal(image_safe_name("50%", out, sizeof(out)), 0);
	assert_string_equal(out, "50%25");
	assert_int_equal(image_safe_name("caf\xc3\xa9", out, sizeof(out)), 0);
	assert_string_equal(out, "caf%C3%A9");
}

static void
test_refused(void **state)
{
	static const char *const bad[] = {
		"", ".", "..", ".hidden", "../etc", "a\nb", "tab\there", "\x7f",
		"esc\x1b[0m",
	};
	char out[IMAGE_SAFE_MAX + 1], longname[IMAGE_NAME_MAX + 2];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_int_equal(image_safe_name(bad[i], out, sizeof(out)), -1);
		assert_int_equal(errno, EINVAL);
		assert_non_null(image_name_check(bad[i]));
	}
	assert_non_null(image_name_check(NULL));
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(image_safe_name(longname, out, sizeof(out)), -1);
	longname[IMAGE_NAME_MAX] = '\0';		/* exactly 200: fine */
	assert_int_equal(image_safe_name(longname, out, sizeof(out)), 0);
	assert_null(image_name_check(longname));
}

static void
test_too_long_encoded(void **state)
{
	char name[IMAGE_NAME_MAX + 1], out[IMAGE_SAFE_MAX + 1], small[8];

	(void)state;
	/* 100 ':' encode to 300 bytes, beyond NAME_MAX. */
	memset(name, ':', 100);
	name[100] = '\0';
	errno = 0;
	assert_int_equal(image_safe_name(name, out, sizeof(out)), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	errno = 0;
	assert_int_equal(image_safe_name("busybox1", small, sizeof(small)), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	assert_int_equal(image_safe_name("busybox", small, sizeof(small)), 0);
	assert_string_equal(small, "busybox");
	assert_int_equal(image_safe_name("busyb:", small, sizeof(small)), -1);
	assert_int_equal(image_safe_name("bus:", small, sizeof(small)), 0);
	assert_string_equal(small, "bus%3A");
}

/* Injective and safe over every 1- and 2-byte name. */
static void
test_exhaustive(void **state)
{
	static char seen[256 * 256 + 256][8];
	size_t n = 0;

	(void)state;
	for (int a = 1; a < 256; a++) {
		for (int b = 0; b < 256; b++) {
			char name[3] = { (char)a, (char)b, 0 }, out[IMAGE_SAFE_MAX + 1];

			if (image_safe_name(name, out, sizeof(out)) == -1)
				continue;
			assert_null(strchr(out, '/'));
			assert_true(out[0] != '.' && out[0] != '\0');
			for (const char *p = out; *p; p++)
				assert_true(*p > 0x20 && *p < 0x7f);
			assert_true(strlen(out) < sizeof(seen[0]));
			strcpy(seen[n++], out);
		}
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n && j < i + 512; j++)
			assert_string_not_equal(seen[i], seen[j]);
	/* Every distinct name got its own entry: sort-free check through
	 * the count of names accepted and a decoding round trip. */
	for (size_t i = 0; i < n; i++) {
		char dec[8];
		size_t o = 0;

		for (const char *p = seen[i]; *p; p++) {
			if (*p == '%') {
				unsigned v;
				assert_int_equal(sscanf(p + 1, "%2X", &v), 1);
				dec[o++] = (char)v;
				p += 2;
			} else
				dec[o++] = *p;
		}
		dec[o] = '\0';
		{
			char again[IMAGE_SAFE_MAX + 1];
			assert_int_equal(image_safe_name(dec, again, sizeof(again)), 0);
			assert_string_equal(again, seen[i]);
		}
	}
}

/* imgstore_registry: Docker's rule for the registry of a reference. */
static void
test_registry(void **state)
{
	static const char *const cases[][2] = {
		{ "busybox", "docker.io" },
		{ "python:3.11-slim", "docker.io" },
		{ "team/worker:1.2", "docker.io" },
		{ "registry.example:5000/team/fl-worker:1.2", "registry.example:5000" },
		{ "127.0.0.1:5000/x", "127.0.0.1:5000" },
		{ "localhost/x:1", "localhost" },
		{ "ghcr.io/a/b@sha256:0123", "ghcr.io" },
	};
	static const char *const bad[] = {
		"", "docker://busybox", "a b", ".hidden", "x\ny", "/abs",
	};
	char host[256], *list[] = { "Registry.Example:5000", "127.0.0.1:5000" };

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(imgstore_registry(cases[i][0], host, sizeof(host)), 0);
		assert_string_equal(host, cases[i][1]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(imgstore_registry(bad[i], host, sizeof(host)), -1);
	assert_int_equal(imgstore_registry("registry.example:5000/x", host, 10), -1);
	assert_true(imgstore_host_listed("registry.example:5000", list, 2));
	assert_true(imgstore_host_listed("127.0.0.1:5000", list, 2));
	assert_false(imgstore_host_listed("127.0.0.1:5001", list, 2));
	assert_false(imgstore_host_listed("docker.io", list, 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_examples),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_too_long_encoded),
		cmocka_unit_test(test_exhaustive),
		cmocka_unit_test(test_registry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
