/* Unit tests of libcommon/confine.c and json.c: syscall names resolve or
 * are named; capabilities are really dropped (in a child process). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "confine.h"
#include "json.h"
#include "log.h"

static void
test_seccomp_names(void **state)
{
	static const char *const good[] = { "read", "write", "exit_group" };
	static const char *const bad[] = { "read", "no_such_syscall", "write" };
	const char *which = NULL;

	assert_int_equal(confine_seccomp_check(good, 3, &which), 0);
	assert_int_equal(confine_seccomp_check(bad, 3, &which), -1);
	assert_string_equal(which, "no_such_syscall");
}

static int
cap_eff_zero(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int zero = 0;

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "CapEff:", 7) == 0)
			zero = strtoull(line + 7, NULL, 16) == 0;
	if (f)
		fclose(f);
	return zero;
}

static void
test_caps_dropped(void **state)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (confine_caps(NULL, 0) == -1)
			_exit(2);
		_exit(cap_eff_zero() ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_seccomp_denies(void **state)
{
	static const char *const allow[] = {
		"read", "write", "exit", "exit_group", "brk", "mmap", "munmap",
		"rt_sigreturn", "fstat", "newfstatat",
		/* what ASAN's exit path calls in a sanitizer build */
		"sigaltstack", "rt_sigaction", "rt_sigprocmask", "madvise", "futex",
		"sched_yield", "prctl",
	};
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (confine_caps(NULL, 0) == -1 ||
		    confine_seccomp(allow, sizeof(allow) / sizeof(allow[0]), 0) == -1)
			_exit(2);
		/* getpid is not allowed: EPERM (-1), not a pid. */
		_exit(syscall(39) == -1 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_json(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	json_t *o = json_object();

	json_object_set_new(o, "b", json_integer(1));
	json_object_set_new(o, "a", json_str_or_null(NULL));
	assert_int_equal(json_print(f, o, 0), 0);
	fclose(f);
	assert_string_equal(buf, "{\"b\":1,\"a\":null}\n");
	free(buf);
	json_decref(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seccomp_names),
		cmocka_unit_test(test_caps_dropped),
		cmocka_unit_test(test_seccomp_denies),
		cmocka_unit_test(test_json),
	};

	log_init("test_confine", LOG_LVL_ERROR + 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
