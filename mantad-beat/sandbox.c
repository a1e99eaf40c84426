/* sandbox: the system calls mantad-beat may make once it serves (STYLE.md,
 * Confinement). Derived from strace -f of the integration tests (broker
 * down and back, TLS and mutual TLS to mosquitto, commands to exec and
 * register, the audit trail, shutdown) over what glibc (getaddrinfo
 * included), paho, OpenSSL, ZeroMQ and SQLite do once set up: beat.db and
 * the audit log are open and the endpoint bound before the filter.
 * Refused: execve and execveat, bind and listen, ptrace, mount and the
 * namespace calls, bpf, keyctl, chmod/chown of paths, and every call not
 * named.
 *
 * A call outside the list kills the process (SCMP_ACT_KILL_PROCESS; the
 * supervisor sees SIGSYS and restarts it). security.seccomp = "errno" makes it
 * fail with EPERM instead, to find what a new path needs; "off" loads no
 * filter. */
#include "confine.h"
#include "beat.h"

static const char *const allowed[] = {
	/* beyond confine_base_syscalls: libsodium's guarded pages, threads
	 * (paho starts its own per connection) */
	"mlock", "munlock", "clone", "clone3",
	/* beat.db and its WAL, the audit log (flock), certificates, and what
	 * the resolver reads (/etc/hosts, nsswitch.conf, resolv.conf) */
	"openat", "newfstatat", "statx", "getdents64", "flock",
	"readlink", "access", "faccessat", "faccessat2", "fsync", "fdatasync",
	"ftruncate", "fchown", "unlink", "getrandom", "uname", "sysinfo",
	"geteuid", "getuid", "getegid", "getgid", "dup", "pipe2",
	/* a sealed mqtt.key is opened into a memfd for OpenSSL (mqtt.c) */
	"memfd_create", "fchmod",
	/* event loops: zmq_poll, paho's select or poll, the eventfd */
	"poll", "ppoll", "select", "pselect6", "epoll_create1", "epoll_ctl",
	"epoll_wait", "epoll_pwait", "eventfd2",
	/* sockets: the broker, the other daemons, DNS (getaddrinfo); ioctl
	 * is FIONREAD only (confine.c) */
	"socket", "connect", "accept4", "getsockname", "getpeername", "getsockopt",
	"setsockopt", "shutdown", "sendto", "recvfrom", "sendmsg", "recvmsg",
	"sendmmsg", "ioctl",
};

int
sandbox_enter(void)
{
	return confine_sandbox(allowed, sizeof(allowed) / sizeof(allowed[0]));
}
