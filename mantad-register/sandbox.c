/* sandbox: the system calls mantad-register may make once it serves
 * (STYLE.md, Confinement). Derived from strace -f of the integration tests
 * (registration, the manager down and back, collect_information, task
 * logs, TLS and mutual TLS, shutdown) over what glibc, libgrpc (its
 * resolver, c-ares, included), OpenSSL, ZeroMQ and SQLite do once set up:
 * register.db and the identity are written and the endpoint bound before
 * the filter. Refused: execve and execveat, listen, ptrace, mount and the
 * namespace calls, bpf, keyctl, chmod/chown of paths, and every call not
 * named.
 *
 * A call outside the list kills the process (SCMP_ACT_KILL_PROCESS; the
 * supervisor sees SIGSYS and restarts it). security.seccomp = "errno" makes it
 * fail with EPERM instead, to find what a new path needs; "off" loads no
 * filter. */
#include "confine.h"
#include "register.h"

static const char *const allowed[] = {
	/* beyond confine_base_syscalls: libsodium's guarded pages, threads
	 * (libgrpc starts some on demand) */
	"mlock", "munlock", "clone", "clone3",
	/* register.db and its WAL, certificates, /proc and /sys for
	 * collect_information, what the resolvers read */
	"openat", "newfstatat", "statx", "getdents64", "readlink",
	"access", "faccessat", "faccessat2", "statfs", "fstatfs", "sysinfo", "uname",
	"fsync", "fdatasync", "ftruncate", "fchown", "unlink", "getrandom",
	"geteuid", "getuid", "getegid", "getgid", "dup", "pipe2",
	/* event loops: libgrpc's epoll, ZeroMQ's poll, eventfds */
	"poll", "ppoll", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
	"eventfd2",
	/* sockets: the manager, the other daemons, DNS (c-ares); bind for
	 * libgrpc's one probe, at the first connection, of whether [::1]
	 * works (a socket bound to [::1]:0 and closed); listen is not
	 * here. ioctl is FIONREAD only (confine.c). */
	"socket", "connect", "bind", "accept4", "getsockname", "getpeername",
	"getsockopt", "setsockopt", "shutdown", "sendto", "recvfrom", "sendmsg",
	"recvmsg", "sendmmsg", "ioctl",
};

int
sandbox_enter(void)
{
	return confine_sandbox(allowed, sizeof(allowed) / sizeof(allowed[0]));
}
