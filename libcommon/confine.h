/* confine: what a daemon drops after its privileged set-up (STYLE.md):
 * no_new_privs, capabilities (and the bounding set), then a seccomp allowlist. */
#ifndef MANTA_CONFINE_H
#define MANTA_CONFINE_H

#include <stddef.h>
#include <sys/capability.h>
#include <sys/types.h>

struct manta_cfg;

/* The account mantad-res, -beat, -register and -light switch to
 * (security.daemon_user), as bgpd's engines switch to _bgpd. */
struct confine_user {
	int set;		/* 0: they stay uid 0 (without capabilities) */
	uid_t uid;
	gid_t gid;
	char name[33];
};
#define CONFINE_USER_ZERO { 0, 0, 0, "" }

/* The accounts a package creates (adduser --system): mantad-res,
 * -register and -beat run as the first, mantad-light as the second, in
 * the first's group. */
#define CONFINE_DAEMON_USER "manta"
#define CONFINE_LIGHT_USER "manta-light"

/* Resolves c->daemon_user, as root only (otherwise nothing to switch
 * from): NULL (unset) means "manta" if that account exists, "" means
 * none. 0, or -1 when a named account is gone (logged). */
int confine_user_lookup(const struct manta_cfg *c, struct confine_user *u);
/* Resolves c->light_user the same way ("manta-light"), with the gid of
 * daemon (the run dir's group). A light account needs a daemon account
 * and a uid of its own. 0 or -1 (logged). */
int confine_light_lookup(const struct manta_cfg *c, const struct confine_user *daemon,
    struct confine_user *u);
/* Both, and tells ipc_set_accounts their uids so that every endpoint of
 * this process knows its callers (issue 13). Also sets up from c what
 * the confinement of this process reads while still root: the seccomp
 * mode (confine_seccomp_configure) and the audit chain's key
 * (audit_configure). Every daemon calls it first. 0 or -1 (logged). */
int confine_accounts(const struct manta_cfg *c, struct confine_user *daemon,
    struct confine_user *light);
/* For a daemon that would run as u and is root: without an account
 * (!u->set), -1 (logged: which key, how to create it) unless
 * security.allow_root_daemons, which it warns about loudly instead.
 * key names u's key. 0 otherwise. */
int confine_root_check(const struct manta_cfg *c, const struct confine_user *u,
    const char *key);
/* The group the run dir is shared with: u's, or (gid_t)-1. */
gid_t confine_user_group(const struct confine_user *u);
/* For an unprivileged daemon, before any thread: no_new_privs, an empty
 * bounding set, and no capability but CAP_SETUID and CAP_SETGID, kept
 * only when u->set, until confine_user_enter. */
int confine_drop(const struct confine_user *u);
/* Switches every thread to u (supplementary groups, gid, then uid), which
 * clears the two capabilities confine_drop kept; checks that none is
 * left. Call after the privileged opens, before the seccomp filter. A
 * no-op when !u->set. 0 or -1 (logged). */
int confine_user_enter(const struct confine_user *u);

/* Creates c's state dir (mode 0700, parents too), refuses one that
 * belongs to another uid or is not a directory, and repairs it and every
 * file directly in it (the databases and their -wal and -shm files, the
 * identity, secret.key, audit.*, node.log) to owner-only modes: the
 * directory to 0700, each file to its owner bits; each repair is logged.
 * With containers.userns the directory may keep search bits (0711: the
 * tasks' users reach an image_dir beneath it), never read or write ones.
 * Subdirectories are left as they are: the directory above closes them.
 * 0 or -1 (logged). */
int confine_state_dir(const struct manta_cfg *c);
/* Clears the group and other bits of path, a regular file we own (logged
 * when it had any); anything else is left alone. 0 or -1 (logged). */
int confine_private_file(const char *path);

/* PR_SET_NO_NEW_PRIVS, drops every capability not in keep from the bounding,
 * permitted, effective and inheritable sets, and clears the ambient set.
 * Call before any library starts a thread: capabilities are per thread. */
int confine_caps(const cap_value_t *keep, size_t nkeep);
/* The capabilities an OCI runtime needs (confine.c says why for each). */
extern const cap_value_t confine_runtime_caps[];
extern const size_t confine_nruntime_caps;
/* For mantad-exec and the supervisor, before any thread: no_new_privs,
 * and the bounding, permitted and effective sets down to
 * confine_runtime_caps. 0 or -1 (logged). */
int confine_runtime(void);

/* Loads a default-deny filter allowing only the named syscalls (EPERM for the
 * rest when kill is 0, else kill the process), synchronized to all threads.
 * "ioctl" allows FIONREAD only. An unknown name is an error naming it. */
int confine_seccomp(const char *const *allowed, size_t n, int kill);
/* Checks that every name resolves for this architecture; the first unknown
 * one is returned in *bad. 0 or -1. */
int confine_seccomp_check(const char *const *allowed, size_t n, const char **bad);

/* What a call outside the allowlist does: the default kills the process. */
enum confine_mode {
	CONFINE_KILL,		/* SCMP_ACT_KILL_PROCESS */
	CONFINE_ERRNO,		/* fails with EPERM: to find what a path needs */
	CONFINE_OFF,		/* no filter at all: debugging only */
};

/* Sets the mode confine_sandbox loads from security.seccomp (nothing in
 * the environment weakens it, issue 13): confine_accounts calls it. Any
 * mode but kill is logged as a warning naming the key. */
void confine_seccomp_configure(const struct manta_cfg *c);
/* The mode configured (kill until confine_seccomp_configure). */
enum confine_mode confine_seccomp_mode(void);
/* "kill", "errno" or "off" (security.seccomp's values) and back; an
 * unknown name reads as kill, the strictest. */
const char *confine_mode_name(enum confine_mode m);
enum confine_mode confine_mode_parse(const char *s);
/* The calls every confined daemon may make (memory, locks, signals,
 * time, I/O on held descriptors), which confine_sandbox adds. */
extern const char *const confine_base_syscalls[];
extern const size_t confine_nbase_syscalls;
/* A daemon's sandbox_enter: loads confine_base_syscalls and its own
 * allowlist in the mode of confine_seccomp_mode(), for every thread. Names this architecture
 * lacks are left out; a sanitizer build adds what its runtime calls.
 * Logs how many system calls it allows. 0 or -1. */
int confine_sandbox(const char *const *allowed, size_t n);

#endif
