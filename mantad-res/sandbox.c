/* sandbox: the system calls mantad-res may make once it samples and
 * serves (STYLE.md, Confinement). Derived from strace -f of the
 * integration tests (every request, sampling with and without GPUs,
 * shutdown) over what glibc, ZeroMQ and SQLite do on those paths once set
 * up: res.db is open and the endpoint bound before the filter, so bind,
 * listen, connect and socket are not in it (this daemon asks no one).
 * Also refused: execve and execveat, ptrace, mount and the namespace
 * calls, bpf, keyctl, chmod/chown of paths, and every call not named.
 *
 * A call outside the list kills the process (SCMP_ACT_KILL_PROCESS; the
 * supervisor sees SIGSYS and restarts it). security.seccomp = "errno" makes it
 * fail with EPERM instead, to find what a new path needs; "off" loads no
 * filter. */
#include "confine.h"
#include "res.h"

static const char *const allowed[] = {
	/* beyond confine_base_syscalls: libsodium's guarded pages */
	"mlock", "munlock",
	/* /proc and /sys reads, statfs of the disks, res.db and its WAL */
	"openat", "newfstatat", "statx", "getdents64", "readlink",
	"access", "faccessat", "faccessat2", "statfs", "fstatfs", "sysinfo", "uname",
	"fsync", "fdatasync", "ftruncate", "fchown", "unlink", "getrandom",
	"geteuid", "getuid",
	/* the loop: zmq_poll over the endpoint and the signalfd */
	"poll", "ppoll", "epoll_wait", "epoll_pwait", "epoll_ctl", "eventfd2",
	/* the endpoint's connections, accepted by the I/O thread */
	"accept4", "getsockname", "getpeername", "getsockopt", "setsockopt",
	"shutdown", "sendto", "recvfrom", "sendmsg", "recvmsg",
};

int
sandbox_enter(void)
{
	return confine_sandbox(allowed, sizeof(allowed) / sizeof(allowed[0]));
}
