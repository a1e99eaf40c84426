/* sandbox: the system calls mantad-light may make once it serves, the
 * daemon that faces task code (STYLE.md, Confinement). The list was taken
 * from strace -f of the integration tests (every Local and World method,
 * manager down and back, shutdown) and covers what libgrpc, ZeroMQ, SQLite
 * and glibc do on those paths once set up: binding, listening, creating
 * directories and files outside light.db's WAL all happen before the
 * filter. Not in it, and so refused: execve and execveat, bind and listen,
 * ptrace, mount and the namespace calls, bpf, kexec, keyctl, process_vm_*,
 * chmod/chown of paths, and every call not named here.
 *
 * A call outside the list kills the process (SCMP_ACT_KILL_PROCESS, seen
 * as SIGSYS by the supervisor, which restarts it): for a process that
 * talks to untrusted tasks, an unexpected system call is a bug or an
 * attack, not something to carry on after. security.seccomp = "errno"
 * (as for the other daemons) makes it fail with EPERM instead, to find
 * what a new path needs; "off" loads no filter. */
#include "confine.h"
#include "light.h"

static const char *const allowed[] = {
	/* beyond confine_base_syscalls: threads (libgrpc starts some on
	 * demand), with the alternate signal stacks glibc and ASAN set up */
	"clone", "clone3", "sigaltstack",
	/* files: datasets beneath their dirfds, light.db and its WAL */
	"openat", "openat2", "newfstatat", "statx", "getdents64",
	"readlink", "access", "fsync", "fdatasync", "ftruncate", "fchown", "unlink",
	"dup", "pipe2", "getrandom", "uname", "geteuid", "getuid",
	/* glibc's sysconf (page and CPU counts), on the first TLS handshake
	 * to the manager: without it World calls over TLS killed us */
	"sysinfo",
	/* audit.log, shared with mantad-beat and mantad-exec: one lock per entry */
	"flock",
	/* event loops: libgrpc's epoll, ZeroMQ's poll, eventfds */
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "poll", "ppoll",
	"eventfd2",
	/* sockets: tasks (accept), the manager and mantad-exec (connect) */
	"socket", "connect", "accept4", "getsockname", "getpeername", "getsockopt",
	"setsockopt", "shutdown", "sendto", "recvfrom", "sendmsg", "recvmsg",
};

int
sandbox_enter(void)
{
	/* In the mode of security.seccomp (libcommon/confine.c). */
	return confine_sandbox(allowed, sizeof(allowed) / sizeof(allowed[0]));
}
