/* seccomp: the containers' system call allowlist (seccomp.allow, beside
 * this file), built into the binary and compiled with libseccomp at start:
 * a name libseccomp does not know stops the daemon, naming it, rather than
 * silently changing the profile. The result is the "seccomp" object of
 * every config.json: default action EPERM, the list allowed, clone only
 * without namespace flags, clone3 ENOSYS (as Docker's default profile).
 *
 * mantad-exec itself loads no filter: runc would inherit it (STYLE.md). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "confine.h"
#include "log.h"

#include "exec.h"

/* The allowlist file, NUL-terminated, linked in by the assembler (the
 * build runs from the repository root). */
__asm__(
"	.section .rodata\n"
"	.hidden exec_seccomp_allow\n"
"	.globl exec_seccomp_allow\n"
"	.type exec_seccomp_allow, @object\n"
"exec_seccomp_allow:\n"
"	.incbin \"mantad-exec/seccomp.allow\"\n"
"	.byte 0\n"
"	.size exec_seccomp_allow, . - exec_seccomp_allow\n"
"	.previous\n");
extern const char exec_seccomp_allow[];

/* clone flags that make namespaces (Docker's mask). */
#define CLONE_NS_MASK (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | \
	CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP)

#define NAMES_MAX 1024

/* Splits the file into names (pointers into buf). */
static size_t
parse(char *buf, const char **names, size_t max, char *err, size_t errlen)
{
	size_t n = 0;
	int line = 0;

	for (char *p = buf, *nl; p != NULL && *p; p = nl) {
		char *hash, *s, *e;

		line++;
		if ((nl = strchr(p, '\n')) != NULL)
			*nl++ = '\0';
		if ((hash = strchr(p, '#')) != NULL)
			*hash = '\0';
		for (s = p; *s == ' ' || *s == '\t'; s++)
			;
		for (e = s + strlen(s); e > s && (e[-1] == ' ' || e[-1] == '\t' ||
		    e[-1] == '\r'); e--)
			;
		*e = '\0';
		if (*s == '\0')
			continue;
		if (strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(s)) {
			snprintf(err, errlen, "seccomp.allow line %d: bad name"
			    " \"%s\"", line, s);
			return (size_t)-1;
		}
		if (strcmp(s, "clone") == 0 || strcmp(s, "clone3") == 0) {
			snprintf(err, errlen, "seccomp.allow line %d: %s is"
			    " handled by mantad-exec itself", line, s);
			return (size_t)-1;
		}
		if (n == max) {
			snprintf(err, errlen, "seccomp.allow: more than %zu names",
			    max);
			return (size_t)-1;
		}
		names[n++] = s;
	}
	return n;
}

/* Compiles the filter as the runtime will (BPF to /dev/null), to be sure
 * libseccomp takes every rule. */
static int
compile(const char *const *names, size_t n, char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	int rc = -1, fd = -1;

	if ((ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM))) == NULL) {
		snprintf(err, errlen, "seccomp_init failed");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);
		int e = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);

		/* -EDOM/-EINVAL: a call this architecture does not have. */
		if (e != 0 && e != -EDOM && !(nr < 0 && e == -EINVAL)) {
			snprintf(err, errlen, "seccomp: unable to allow %s: %s",
			    names[i], strerror(-e));
			goto out;
		}
	}
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
	    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NS_MASK, 0)) != 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
	    seccomp_syscall_resolve_name("clone3"), 0) != 0) {
		snprintf(err, errlen, "seccomp: unable to add the clone rules");
		goto out;
	}
	if ((fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1 ||
	    seccomp_export_bpf(ctx, fd) != 0) {
		snprintf(err, errlen, "seccomp: unable to compile the filter");
		goto out;
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	seccomp_release(ctx);
	return rc;
}

static json_t *
to_json(const char *const *names, size_t n)
{
	json_t *o = json_object(), *archs = json_array(), *calls = json_array();
	json_t *allow = json_object(), *list = json_array();
	json_t *clone = json_object(), *clone3 = json_object(), *arg = json_object();

	json_object_set_new(o, "defaultAction", json_string("SCMP_ACT_ERRNO"));
	json_object_set_new(o, "defaultErrnoRet", json_integer(EPERM));
#if defined(__x86_64__)
	json_array_append_new(archs, json_string("SCMP_ARCH_X86_64"));
	json_array_append_new(archs, json_string("SCMP_ARCH_X86"));
	json_array_append_new(archs, json_string("SCMP_ARCH_X32"));
#elif defined(__aarch64__)
	json_array_append_new(archs, json_string("SCMP_ARCH_AARCH64"));
	json_array_append_new(archs, json_string("SCMP_ARCH_ARM"));
#endif
	json_object_set_new(o, "architectures", archs);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, json_string(names[i]));
	json_object_set_new(allow, "names", list);
	json_object_set_new(allow, "action", json_string("SCMP_ACT_ALLOW"));
	json_array_append_new(calls, allow);

	json_object_set_new(clone, "names", json_pack("[s]", "clone"));
	json_object_set_new(clone, "action", json_string("SCMP_ACT_ALLOW"));
	json_object_set_new(arg, "index", json_integer(0));
	json_object_set_new(arg, "value", json_integer(CLONE_NS_MASK));
	json_object_set_new(arg, "valueTwo", json_integer(0));
	json_object_set_new(arg, "op", json_string("SCMP_CMP_MASKED_EQ"));
	json_object_set_new(clone, "args", json_pack("[o]", arg));
	json_array_append_new(calls, clone);

	json_object_set_new(clone3, "names", json_pack("[s]", "clone3"));
	json_object_set_new(clone3, "action", json_string("SCMP_ACT_ERRNO"));
	json_object_set_new(clone3, "errnoRet", json_integer(ENOSYS));
	json_array_append_new(calls, clone3);

	json_object_set_new(o, "syscalls", calls);
	return o;
}

json_t *
seccomp_profile(char *err, size_t errlen)
{
	const char **names;
	const char *bad = NULL;
	char *buf;
	size_t n;
	json_t *o = NULL;

	if ((buf = strdup(exec_seccomp_allow)) == NULL ||
	    (names = calloc(NAMES_MAX, sizeof(*names))) == NULL) {
		free(buf);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n = parse(buf, names, NAMES_MAX, err, errlen);
	if (n == (size_t)-1)
		goto out;
	if (n == 0) {
		snprintf(err, errlen, "seccomp.allow names no system call");
		goto out;
	}
	if (confine_seccomp_check(names, n, &bad) == -1) {
		snprintf(err, errlen, "seccomp.allow: unknown system call \"%s\"",
		    bad);
		goto out;
	}
	if (compile(names, n, err, errlen) == -1)
		goto out;
	o = to_json(names, n);
	log_debug("seccomp profile: %zu system calls allowed", n);
out:
	free(names);
	free(buf);
	return o;
}
