#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "cfg.h"
#include "confine.h"
#include "daemon.h"
#include "ipc.h"
#include "log.h"

static int
in_set(cap_value_t c, const cap_value_t *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == c)
			return 1;
	return 0;
}

/* no_new_privs; the bounding set down to bound; permitted and effective
 * down to keep; inheritable and ambient emptied. */
static int
drop_caps(const cap_value_t *bound, size_t nbound, const cap_value_t *keep, size_t nkeep)
{
	cap_t caps, cur = NULL;
	int rc = -1;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		log_warn("unable to set no_new_privs");
		return -1;
	}
	/* The bounding set first: it needs CAP_SETPCAP, which goes below. */
	for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++) {
		if (!in_set(c, bound, nbound) && CAP_IS_SUPPORTED(c) && cap_drop_bound(c) == -1 &&
		    errno != EINVAL && errno != EPERM) {
			log_warn("unable to drop capability %d from the bounding set", (int)c);
			return -1;
		}
	}
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if ((caps = cap_init()) == NULL || (nkeep > 0 && (cur = cap_get_proc()) == NULL))
		goto out;
	/* Only what we hold: a container may have started us without some
	 * (CAP_SYS_RESOURCE, often), and capset(2) cannot add one. */
	for (size_t i = 0; i < nkeep; i++) {
		cap_value_t v = keep[i];
		cap_flag_value_t have = CAP_CLEAR;

		(void)cap_get_flag(cur, v, CAP_PERMITTED, &have);
		if (have == CAP_SET &&
		    (cap_set_flag(caps, CAP_PERMITTED, 1, &v, CAP_SET) == -1 ||
		     cap_set_flag(caps, CAP_EFFECTIVE, 1, &v, CAP_SET) == -1))
			goto out;
	}
	if (cap_set_proc(caps) == -1) {
		log_warn("unable to drop capabilities");
		goto out;
	}
	rc = 0;
out:
	cap_free(cur);
	cap_free(caps);
	return rc;
}

/* What runc and crun need, as root, to build a container as mantad-exec
 * asks (mantad-exec(8), CAPABILITIES, says why for each): everything else
 * leaves the bounding set of mantad-exec and of the supervisor, and so of
 * every runtime, shim and hook they start. */
const cap_value_t confine_runtime_caps[] = {
	CAP_CHOWN,		/* rootfs mounts, /dev, userns-owned files */
	CAP_DAC_OVERRIDE,	/* bundles and cgroup files of other owners */
	CAP_DAC_READ_SEARCH,
	CAP_FOWNER,		/* chmod/utime of files it does not own */
	CAP_FSETID,
	CAP_KILL,		/* signals to tasks under another uid (userns) */
	CAP_SETGID,		/* the container's user, gid_map */
	CAP_SETUID,		/* the container's user, uid_map */
	CAP_SETPCAP,		/* empties the tasks' capability sets */
	CAP_SETFCAP,		/* mapping uid 0 of a user namespace (5.12+) */
	CAP_NET_ADMIN,		/* loopback up in a task's network namespace */
	CAP_SYS_CHROOT,		/* pivot_root's fallback */
	CAP_SYS_ADMIN,		/* mounts, namespaces, pivot_root, seccomp, BPF device filter */
	CAP_SYS_RESOURCE,	/* rlimits and oom_score_adj of the tasks */
	CAP_MKNOD,		/* device nodes in /dev */
	CAP_SYS_PTRACE,		/* runc: a user-namespaced child's /proc entries */
};
const size_t confine_nruntime_caps =
    sizeof(confine_runtime_caps) / sizeof(confine_runtime_caps[0]);

int
confine_runtime(void)
{
	return drop_caps(confine_runtime_caps, confine_nruntime_caps, confine_runtime_caps,
	    confine_nruntime_caps);
}

int
confine_caps(const cap_value_t *keep, size_t nkeep)
{
	return drop_caps(keep, nkeep, keep, nkeep);
}

/* The account name (NULL: dflt where it exists) for key, as root only. */
static int
lookup_account(const char *name, const char *dflt, const char *key, struct confine_user *u)
{
	const char *n = name ? name : dflt;
	struct passwd *pw;

	memset(u, 0, sizeof(*u));
	if (geteuid() != 0 || n[0] == '\0')
		return 0;
	errno = 0;
	if ((pw = getpwnam(n)) == NULL) {
		if (name == NULL)
			return 0;	/* the default, where no such account exists */
		log_warnx("%s: no such user %s", key, n);
		return -1;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		/* Nothing would be dropped; say so rather than pretend. */
		log_warnx("%s: %s has uid or gid 0", key, n);
		return -1;
	}
	u->set = 1;
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	snprintf(u->name, sizeof(u->name), "%s", n);
	return 0;
}

int
confine_user_lookup(const struct manta_cfg *c, struct confine_user *u)
{
	return lookup_account(c->daemon_user, CONFINE_DAEMON_USER, "security.daemon_user", u);
}

int
confine_light_lookup(const struct manta_cfg *c, const struct confine_user *daemon,
    struct confine_user *u)
{
	if (lookup_account(c->light_user, CONFINE_LIGHT_USER, "security.light_user", u) == -1)
		return -1;
	if (!u->set)
		return 0;
	if (!daemon->set) {
		/* Its sockets are in the run dir, shared with that group. */
		log_warnx("security.light_user %s: needs security.daemon_user (its"
		    " group is the sockets'), and there is none", u->name);
		return -1;
	}
	if (u->uid == daemon->uid) {
		log_warnx("security.light_user %s: must not be security.daemon_user's"
		    " uid %u: the daemons could not tell mantad-light apart", u->name,
		    (unsigned)u->uid);
		return -1;
	}
	/* In the daemons' group, whatever its own: that group reaches the
	 * sockets, and no other. */
	u->gid = daemon->gid;
	return 0;
}

int
confine_accounts(const struct manta_cfg *c, struct confine_user *daemon,
    struct confine_user *light)
{
	/* The filter confine_sandbox loads (said loudly when not kill), and
	 * the audit chain's key, from the secret key while still root. */
	confine_seccomp_configure(c);
	audit_configure(c);
	if (confine_user_lookup(c, daemon) == -1 ||
	    confine_light_lookup(c, daemon, light) == -1)
		return -1;
	ipc_set_accounts(daemon->set ? daemon->uid : (uid_t)-1,
	    light->set ? light->uid : (uid_t)-1);
	return 0;
}

int
confine_root_check(const struct manta_cfg *c, const struct confine_user *u, const char *key)
{
	int light = strcmp(key, "security.light_user") == 0;
	const char *who = light ? "mantad-light" : "mantad-res, mantad-register and mantad-beat";

	if (geteuid() != 0 || u->set)
		return 0;
	if (!c->allow_root_daemons) {
		log_errorx("refusing to run %s as root: %s names no account (unset, \"%s\""
		    " must exist); create the accounts (adduser --system --group %s;"
		    " adduser --system --ingroup %s %s) or set"
		    " security.allow_root_daemons = true", who, key,
		    light ? CONFINE_LIGHT_USER : CONFINE_DAEMON_USER, CONFINE_DAEMON_USER,
		    CONFINE_DAEMON_USER, CONFINE_LIGHT_USER);
		return -1;
	}
	log_warnx("RUNNING AS ROOT: %s (%s names no account; security.allow_root_daemons"
	    " = true): without capabilities, but a memory bug can still write"
	    " root's files", who, key);
	return 0;
}

gid_t
confine_user_group(const struct confine_user *u)
{
	return u->set ? u->gid : (gid_t)-1;
}

int
confine_drop(const struct confine_user *u)
{
	/* With a user to switch to, these two stay in the permitted and
	 * effective sets (not the bounding set) of this thread and of every
	 * thread it starts, since glibc makes each thread call setresuid(2)
	 * itself; leaving uid 0 then clears them. */
	static const cap_value_t setid[] = { CAP_SETUID, CAP_SETGID };

	return drop_caps(NULL, 0, setid, u->set ? 2 : 0);
}

int
confine_user_enter(const struct confine_user *u)
{
	cap_t caps, none;
	uid_t r, e, s;
	pid_t parent = getppid();
	int same, pdeath = 0;

	if (!u->set)
		return 0;
	(void)prctl(PR_GET_PDEATHSIG, &pdeath);
	if (setgroups(1, &u->gid) == -1 || setresgid(u->gid, u->gid, u->gid) == -1 ||
	    setresuid(u->uid, u->uid, u->uid) == -1) {
		log_warn("unable to switch to user %s (uid %u, gid %u)", u->name,
		    (unsigned)u->uid, (unsigned)u->gid);
		return -1;
	}
	/* The switch cleared the supervisor's parent-death signal: set it
	 * again, and act on it if the supervisor died meanwhile. */
	if (pdeath != 0 && (prctl(PR_SET_PDEATHSIG, pdeath) == -1 ||
	    getppid() != parent))
		raise(pdeath);
	if (getresuid(&r, &e, &s) == -1 || r != u->uid || e != u->uid || s != u->uid) {
		log_warnx("still uid %u after switching to %s", (unsigned)e, u->name);
		return -1;
	}
	/* Leaving uid 0 cleared the permitted and effective sets (no
	 * SECBIT_KEEP_CAPS); check rather than trust it. */
	if ((caps = cap_get_proc()) == NULL || (none = cap_init()) == NULL) {
		cap_free(caps);
		return -1;
	}
	same = cap_compare(caps, none) == 0;
	cap_free(caps);
	cap_free(none);
	if (!same) {
		log_warnx("capabilities left after switching to %s", u->name);
		return -1;
	}
	log_debug("running as %s (uid %u, gid %u)", u->name, (unsigned)u->uid, (unsigned)u->gid);
	return 0;
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
		int nr = seccomp_syscall_resolve_name(allowed[i]), rc2;

		/* ioctl only as the resolvers use it (FIONREAD on their UDP
		 * sockets): never TIOCSTI on a terminal the daemon writes to. */
		if (nr == SCMP_SYS(ioctl))
			rc2 = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
			    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, FIONREAD));
		else
			rc2 = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (rc2 != 0) {
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

static enum confine_mode seccomp_mode = CONFINE_KILL;

const char *
confine_mode_name(enum confine_mode m)
{
	return m == CONFINE_OFF ? "off" : m == CONFINE_ERRNO ? "errno" : "kill";
}

enum confine_mode
confine_mode_parse(const char *s)
{
	if (s != NULL && strcmp(s, "errno") == 0)
		return CONFINE_ERRNO;
	if (s != NULL && strcmp(s, "off") == 0)
		return CONFINE_OFF;
	return CONFINE_KILL;
}

void
confine_seccomp_configure(const struct manta_cfg *c)
{
	seccomp_mode = confine_mode_parse(c->seccomp);
	if (seccomp_mode == CONFINE_ERRNO)
		log_warnx("security.seccomp = \"errno\": WEAKENED: a system call"
		    " outside the allowlist fails with EPERM instead of killing"
		    " the daemon (for finding what a path needs, not for production)");
	else if (seccomp_mode == CONFINE_OFF)
		log_warnx("security.seccomp = \"off\": NO seccomp filter: a memory"
		    " bug in this daemon reaches every system call (debugging only)");
}

enum confine_mode
confine_seccomp_mode(void)
{
	return seccomp_mode;
}

/* What the sanitizer runtimes call on their own, from any thread: the
 * alternate signal stack of each new thread, shadow memory, and at exit
 * LeakSanitizer's stop-the-world (a cloned tracer that ptraces every
 * thread and reads /proc/self). Only in a SANITIZE=1 build. */
#if defined(__SANITIZE_ADDRESS__)
#define CONFINE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONFINE_ASAN 1
#endif
#endif
#ifdef CONFINE_ASAN
static const char *const asan_extra[] = {
	"sigaltstack", "madvise", "mmap", "munmap", "mprotect", "prctl",
	"rt_sigaction", "rt_sigprocmask", "sched_yield", "futex", "getpid",
	"gettid", "getppid", "clone", "clone3", "ptrace", "wait4", "waitid",
	"openat", "read", "write", "close", "readlink", "getdents64",
	"newfstatat", "fstat", "exit", "exit_group", "kill", "tgkill",
	"pipe2", "dup", "dup3", "sched_getaffinity", "getrlimit",
	"prlimit64", "setrlimit", "rt_sigreturn", "nanosleep",
	"clock_nanosleep", "getrandom", "lseek",
	/* sanitizer_common's internal_* calls: the legacy numbers on x86-64 */
	"open", "stat", "lstat", "access", "getdents", "pipe", "dup2",
};
#define NEXTRA (sizeof(asan_extra) / sizeof(asan_extra[0]))
#else
#define NEXTRA 0
#endif

/* What every confined daemon needs whatever it does: memory, its threads'
 * locks and signals (the signalfd), the time, and I/O on descriptors it
 * holds. confine_sandbox adds them to each daemon's own list; the man
 * pages list both. */
const char *const confine_base_syscalls[] = {
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
	"futex", "set_robust_list", "rseq", "exit", "exit_group",
	"gettid", "getpid", "tgkill", "sched_yield", "sched_getaffinity",
	"sched_getparam", "sched_getscheduler", "sched_setscheduler", "prctl",
	"rt_sigprocmask", "rt_sigreturn", "rt_sigaction", "restart_syscall",
	"clock_gettime", "clock_nanosleep", "nanosleep", "gettimeofday",
	"read", "write", "readv", "writev", "pread64", "pwrite64", "lseek", "close",
	"fstat", "fcntl",
};
const size_t confine_nbase_syscalls =
    sizeof(confine_base_syscalls) / sizeof(confine_base_syscalls[0]);

static size_t
add_name(const char **names, size_t n, const char *name)
{
	if (seccomp_syscall_resolve_name(name) == __NR_SCMP_ERROR)
		return n;	/* an x86-only call on arm64: left out */
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return n;
	names[n] = name;
	return n + 1;
}

int
confine_sandbox(const char *const *allowed, size_t n)
{
	enum confine_mode mode = seccomp_mode;
	const char **names;
	size_t k = 0;
	int rc;

	if (mode == CONFINE_OFF)
		return 0;
	if ((names = calloc(confine_nbase_syscalls + n + NEXTRA + 1, sizeof(*names))) == NULL)
		return -1;
	for (size_t i = 0; i < confine_nbase_syscalls; i++)
		k = add_name(names, k, confine_base_syscalls[i]);
	for (size_t i = 0; i < n; i++)
		k = add_name(names, k, allowed[i]);
#ifdef CONFINE_ASAN
	for (size_t i = 0; i < NEXTRA; i++)
		k = add_name(names, k, asan_extra[i]);
#endif
	rc = confine_seccomp(names, k, mode == CONFINE_KILL);
	if (rc == 0)
		log_info("seccomp: %zu system calls allowed, any other %s", k,
		    mode == CONFINE_KILL ? "kills the process" : "fails with EPERM");
	free(names);
	return rc;
}

/* Group and other bits off fd, a regular file of ours; what names it. */
static int
private_fd(int fd, const char *dir, const char *name)
{
	struct stat st;

	if (fstat(fd, &st) == -1) {
		log_warn("unable to stat %s%s%s", dir, *dir ? "/" : "", name);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) == 0)
		return 0;
	if (fchmod(fd, st.st_mode & 07700) == -1) {
		log_warn("unable to set %s%s%s to mode %04o", dir, *dir ? "/" : "", name,
		    (unsigned)(st.st_mode & 07700));
		return -1;
	}
	log_warnx("%s%s%s was mode %04o, open to other users: set to %04o", dir,
	    *dir ? "/" : "", name, (unsigned)(st.st_mode & 07777),
	    (unsigned)(st.st_mode & 07700));
	return 0;
}

int
confine_private_file(const char *path)
{
	int fd, rc;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT || errno == ELOOP ? 0 : -1;
	rc = private_fd(fd, "", path);
	close(fd);
	return rc;
}

int
confine_state_dir(const struct manta_cfg *c)
{
	const char *dir = c->state_dir;
	struct dirent *e;
	struct stat st;
	mode_t want;
	DIR *d;
	int fd, rc = 0;

	if (daemon_mkdirs(dir, 0700) == -1) {
		log_warn("unable to create state dir %s", dir);
		return -1;
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_warn("unable to open state dir %s", dir);
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		log_warn("unable to stat state dir %s", dir);
		close(fd);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		log_warnx("state dir %s belongs to uid %u, not to us (uid %u): its"
		    " owner could read every secret in it", dir, (unsigned)st.st_uid,
		    (unsigned)geteuid());
		close(fd);
		return -1;
	}
	/* Search bits alone let nobody list it or open what is 0600 in it. */
	want = c->userns ? 0700 | (st.st_mode & 0011) : 0700;
	if ((st.st_mode & 07777) != want) {
		if (fchmod(fd, want) == -1) {
			log_warn("unable to set state dir %s to mode %04o", dir, (unsigned)want);
			close(fd);
			return -1;
		}
		log_warnx("state dir %s was mode %04o: set to %04o", dir,
		    (unsigned)(st.st_mode & 07777), (unsigned)want);
	}
	if ((d = fdopendir(fd)) == NULL) {
		log_warn("unable to read state dir %s", dir);
		close(fd);
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		int f;

		if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN)
			continue;
		f = openat(dirfd(d), e->d_name,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (f == -1)
			continue;	/* a symlink, or gone meanwhile */
		if (private_fd(f, dir, e->d_name) == -1)
			rc = -1;
		close(f);
	}
	closedir(d);
	return rc;
}
