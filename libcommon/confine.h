/* confine: what a daemon drops after its privileged set-up (STYLE.md):
 * no_new_privs, capabilities (and the bounding set), then a seccomp allowlist. */
#ifndef MANTA_CONFINE_H
#define MANTA_CONFINE_H

#include <stddef.h>
#include <sys/capability.h>

/* PR_SET_NO_NEW_PRIVS, drops every capability not in keep from the bounding,
 * permitted, effective and inheritable sets, and clears the ambient set.
 * Call before any library starts a thread: capabilities are per thread. */
int confine_caps(const cap_value_t *keep, size_t nkeep);
/* Loads a default-deny filter allowing only the named syscalls (EPERM for the
 * rest when kill is 0, else kill the process), synchronized to all threads.
 * An unknown name is an error naming it. */
int confine_seccomp(const char *const *allowed, size_t n, int kill);
/* Checks that every name resolves for this architecture; the first unknown
 * one is returned in *bad. 0 or -1. */
int confine_seccomp_check(const char *const *allowed, size_t n, const char **bad);

#endif
