/* Unit tests of libcommon/confine.c and json.c: syscall names resolve or
 * are named; capabilities are really dropped, a call outside the list
 * fails or kills (in a child process); the MANTA_SECCOMP switch. */
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "cfg.h"
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

/* A thread started between confine_drop and confine_user_enter: glibc
 * must switch it too, and the kernel clear its two capabilities. */
static pthread_mutex_t th_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t th_cond = PTHREAD_COND_INITIALIZER;
static int th_go, th_ok;

static void *
th_main(void *arg)
{
	cap_t caps, none;

	(void)arg;
	pthread_mutex_lock(&th_lock);
	while (!th_go)
		pthread_cond_wait(&th_cond, &th_lock);
	pthread_mutex_unlock(&th_lock);
	caps = cap_get_proc();
	none = cap_init();
	th_ok = getuid() == 65534 && getgid() == 65534 && caps != NULL && none != NULL &&
	    cap_compare(caps, none) == 0;
	cap_free(caps);
	cap_free(none);
	return NULL;
}

static void
test_user_switch(void **state)
{
	struct confine_user u = CONFINE_USER_ZERO;
	struct manta_cfg c;
	int status;
	pid_t pid;

	memset(&c, 0, sizeof(c));
	/* "": none; a missing name: an error; unset: "manta" if it exists */
	c.daemon_user = (char *)"";
	assert_int_equal(confine_user_lookup(&c, &u), 0);
	assert_int_equal(u.set, 0);
	assert_int_equal(confine_user_group(&u), (gid_t)-1);
	c.daemon_user = (char *)"no-such-user-9f3";
	assert_int_equal(confine_user_lookup(&c, &u), geteuid() == 0 ? -1 : 0);
	c.daemon_user = NULL;
	assert_int_equal(confine_user_lookup(&c, &u), 0);
	assert_int_equal(u.set, geteuid() == 0 && getpwnam("manta") != NULL);
	if (geteuid() != 0 || getpwnam("nobody") == NULL) {
		skip();
		return;
	}
	c.daemon_user = (char *)"root";		/* uid 0: refused, nothing dropped */
	assert_int_equal(confine_user_lookup(&c, &u), -1);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pthread_t th;

		/* nobody's uid and gid are 65534 on Debian */
		c.daemon_user = (char *)"nobody";
		if (confine_user_lookup(&c, &u) == -1 || !u.set || u.uid != 65534)
			_exit(2);
		if (confine_drop(&u) == -1 || pthread_create(&th, NULL, th_main, NULL) != 0)
			_exit(3);
		if (confine_user_enter(&u) == -1)
			_exit(4);
		pthread_mutex_lock(&th_lock);
		th_go = 1;
		pthread_cond_signal(&th_cond);
		pthread_mutex_unlock(&th_lock);
		pthread_join(th, NULL);
		if (!th_ok)
			_exit(5);
		/* no way back */
		if (setuid(0) == 0 || cap_drop_bound(CAP_CHOWN) == 0 || prctl(PR_CAPBSET_READ, CAP_SETUID) != 0)
			_exit(6);
		_exit(cap_eff_zero() ? 0 : 7);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_runtime_caps(void **state)
{
	int status;
	pid_t pid;

	if (geteuid() != 0) {
		skip();
		return;
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (confine_runtime() == -1)
			_exit(2);
		/* gone from the bounding set; kept, where held before */
		if (prctl(PR_CAPBSET_READ, CAP_SYS_MODULE) != 0 ||
		    prctl(PR_CAPBSET_READ, CAP_SYS_RAWIO) != 0 ||
		    prctl(PR_CAPBSET_READ, CAP_NET_RAW) != 0 ||
		    prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN) != 1 ||
		    prctl(PR_CAPBSET_READ, CAP_SETUID) != 1)
			_exit(3);
		_exit(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 ? 0 : 4);
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
test_seccomp_mode(void **state)
{
	struct manta_cfg c;

	memset(&c, 0, sizeof(c));
	/* The environment weakens nothing (issue 13, finding 5). */
	setenv("MANTA_SECCOMP", "off", 1);
	setenv("MANTA_LIGHT_SECCOMP", "off", 1);
	c.seccomp = (char *)"kill";
	confine_seccomp_configure(&c);
	assert_int_equal(confine_seccomp_mode(), CONFINE_KILL);
	c.seccomp = (char *)"errno";
	confine_seccomp_configure(&c);
	assert_int_equal(confine_seccomp_mode(), CONFINE_ERRNO);
	c.seccomp = (char *)"off";
	confine_seccomp_configure(&c);
	assert_int_equal(confine_seccomp_mode(), CONFINE_OFF);
	/* Unset, or anything unknown, is the strictest. */
	c.seccomp = NULL;
	confine_seccomp_configure(&c);
	assert_int_equal(confine_seccomp_mode(), CONFINE_KILL);
	assert_int_equal(confine_mode_parse("lenient"), CONFINE_KILL);
	assert_string_equal(confine_mode_name(CONFINE_ERRNO), "errno");
	unsetenv("MANTA_SECCOMP");
	unsetenv("MANTA_LIGHT_SECCOMP");
}

/* confine_sandbox's default: a call outside the list kills the process
 * (SIGSYS), from any thread; an unknown name is skipped, not fatal. */
static void
test_sandbox_kills(void **state)
{
	static const char *const allow[] = {
		"read", "write", "exit", "exit_group", "brk", "mmap", "munmap",
		"rt_sigreturn", "fstat", "newfstatat", "no_such_syscall",
	};
	int status;
	pid_t pid;

	unsetenv("MANTA_SECCOMP");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (confine_caps(NULL, 0) == -1 ||
		    confine_sandbox(allow, sizeof(allow) / sizeof(allow[0])) == -1)
			_exit(2);
		(void)syscall(SYS_getpgrp);
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

/* ioctl is let through for FIONREAD only (the resolvers), not for what a
 * terminal would take (TIOCSTI, TIOCGWINSZ). */
static void
test_ioctl_fionread_only(void **state)
{
	static const char *const allow[] = {
		"read", "write", "exit", "exit_group", "brk", "mmap", "munmap",
		"rt_sigreturn", "fstat", "newfstatat", "ioctl", "close", "pipe2",
		/* what ASAN's exit path calls in a sanitizer build */
		"sigaltstack", "rt_sigaction", "rt_sigprocmask", "madvise", "futex",
		"sched_yield", "prctl",
	};
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int p[2], n = -1;
		struct winsize ws;

		if (pipe(p) == -1 || confine_caps(NULL, 0) == -1 ||
		    confine_seccomp(allow, sizeof(allow) / sizeof(allow[0]), 0) == -1)
			_exit(2);
		if (ioctl(p[0], FIONREAD, &n) == -1 || n != 0)
			_exit(3);
		if (ioctl(p[0], TIOCGWINSZ, &ws) != -1 || errno != EPERM)
			_exit(4);
		_exit(0);
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

	/* lossy: valid UTF-8 kept, other bytes as '?', NULL as null */
	o = json_str_lossy("caf\xc3\xa9");
	assert_string_equal(json_string_value(o), "caf\xc3\xa9");
	json_decref(o);
	o = json_str_lossy("a\xff/b\xc3");
	assert_string_equal(json_string_value(o), "a?/b?");
	json_decref(o);
	o = json_str_lossy(NULL);
	assert_true(json_is_null(o));
	json_decref(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seccomp_names),
		cmocka_unit_test(test_caps_dropped),
		cmocka_unit_test(test_user_switch),
		cmocka_unit_test(test_runtime_caps),
		cmocka_unit_test(test_seccomp_denies),
		cmocka_unit_test(test_seccomp_mode),
		cmocka_unit_test(test_sandbox_kills),
		cmocka_unit_test(test_ioctl_fionread_only),
		cmocka_unit_test(test_json),
	};

	log_init("test_confine", LOG_LVL_ERROR + 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
