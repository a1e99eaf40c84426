/* Unit tests of libcommon/file.c: path_join and read_small, the one copy
 * every program uses (issue 15). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "file.h"

static void
join(const char *a, const char *b, const char *want)
{
	char *p = path_join(a, b);

	assert_non_null(p);
	assert_string_equal(p, want);
	free(p);
}

static void
test_path_join(void **state)
{
	join("/var/lib/manta", "exec.db", "/var/lib/manta/exec.db");
	join("/var/lib/manta/", "exec.db", "/var/lib/manta/exec.db");
	join("/", "etc", "/etc");
	join("", "rel", "/rel");
	join("dir", "", "dir/");
}

static void
put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void
test_read_small(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "4242\n", "4242" },
		{ "crlf\r\n\n", "crlf" },
		/* Longer than the buffer: len-1 bytes, NUL-terminated. */
		{ "0123456789\n", "0123456" },
		{ "", "" },
	};
	char path[64], buf[8];

	snprintf(path, sizeof(path), "/tmp/file-test-%d", (int)getpid());
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		put(path, cases[i].text);
		assert_int_equal(read_small(path, buf, sizeof(buf)),
		    (ssize_t)strlen(cases[i].want));
		assert_string_equal(buf, cases[i].want);
	}
	assert_int_equal(read_small(path, buf, 0), -1);
	unlink(path);
	errno = 0;
	assert_int_equal(read_small(path, buf, sizeof(buf)), -1);
	assert_int_equal(errno, ENOENT);
	/* A directory cannot be read. */
	assert_int_equal(read_small("/", buf, sizeof(buf)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_join),
		cmocka_unit_test(test_read_small),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
