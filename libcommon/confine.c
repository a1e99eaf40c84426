#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>
#include <sys/prctl.h>

#include "confine.h"
#include "log.h"

int
confine_caps(const cap_value_t *keep, size_t nkeep)
{
	cap_t caps;
	int rc = -1;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		log_warn("unable to set no_new_privs");
		return -1;
	}
	/* The bounding set first: it needs CAP_SETPCAP, which goes below. */
	for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++) {
		int kept = 0;

		for (size_t i = 0; i < nkeep; i++)
			if (keep[i] == c)
				kept = 1;
		if (!kept && CAP_IS_SUPPORTED(c) && cap_drop_bound(c) == -1 && errno != EINVAL &&
		    errno != EPERM) {
			log_warn("unable to drop capability %d from the bounding set", (int)c);
			return -1;
		}
	}
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if ((caps = cap_init()) == NULL)
		return -1;
	if (nkeep > 0 &&
	    (cap_set_flag(caps, CAP_PERMITTED, (int)nkeep, keep, CAP_SET) == -1 ||
	     cap_set_flag(caps, CAP_EFFECTIVE, (int)nkeep, keep, CAP_SET) == -1))
		goto out;
	if (cap_set_proc(caps) == -1) {
		log_warn("unable to drop capabilities");
		goto out;
	}
	rc = 0;
out:
	cap_free(caps);
	return rc;
}

int
confine_seccomp_check(const char *const *allowed, size_t n, const char **bad)
{
	for (size_t i = 0; i < n; i++) {
		if (seccomp_syscall_resolve_name(allowed[i]) == __NR_SCMP_ERROR) {
			*bad = allowed[i];
			return -1;
		}
	}
	return 0;
}

int
confine_seccomp(const char *const *allowed, size_t n, int kill)
{
	scmp_filter_ctx ctx;
	const char *bad;
	int rc = -1;

	if (confine_seccomp_check(allowed, n, &bad) == -1) {
		log_warnx("seccomp: unknown system call %s", bad);
		return -1;
	}
	ctx = seccomp_init(kill ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_ERRNO(EPERM));
	if (ctx == NULL)
		return -1;
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(allowed[i]);
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) != 0) {
			log_warnx("seccomp: unable to allow %s", allowed[i]);
			goto out;
		}
	}
	if (seccomp_load(ctx) != 0) {
		log_warnx("seccomp: unable to load the filter");
		goto out;
	}
	rc = 0;
out:
	seccomp_release(ctx);
	return rc;
}
