/* sandbox: the system calls mantad-exec may make once it serves (issue
 * 13, finding 4). Everything that needs privileges or a new process
 * (shims, runtime calls, pulls, network namespaces) is the launcher's
 * (launcher.c), which loads no filter since the containers would inherit
 * it; this process only parses, stores, and talks over sockets and the
 * descriptors the launcher hands it. Not in the list, and so refused:
 * clone, clone3, fork and vfork (no new thread or process), execve and
 * execveat, ptrace, mount and the namespace calls (unshare, setns), bpf,
 * keyctl, process_vm_*, chown of paths, and every call not named here.
 *
 * As for the other daemons, a call outside the list kills the process
 * (security.seccomp = "errno" makes it fail with EPERM instead, "off"
 * loads no filter). */
#include "confine.h"

#include "exec.h"

static const char *const allowed[] = {
	/* beyond confine_base_syscalls: signals to our own shims and pull
	 * groups (uid 0, as we are), the launcher's exit. No clone: every
	 * thread (ours, ZeroMQ's) exists before the filter, and no process
	 * is ever started here. */
	"sigaltstack", "kill", "wait4", "waitid",
	/* libsodium keeps the secret key (sealed registry credentials)
	 * out of swap */
	"mlock", "munlock",
	"pidfd_open", "getppid", "getrusage", "getrlimit", "prlimit64",
	"getrandom", "uname", "sysinfo", "geteuid", "getuid", "getegid",
	"getgid", "umask", "clock_getres",
	/* files: exec.db and its WAL, bundles, logs, audit.log, the image
	 * store's metadata, a memfd of registry credentials */
	"openat", "openat2", "newfstatat", "statx", "fstatfs", "statfs",
	"getdents64", "readlink", "readlinkat", "access", "faccessat",
	"faccessat2", "getcwd", "fsync", "fdatasync", "ftruncate", "fallocate",
	"fchmod", "unlink", "unlinkat", "rmdir", "mkdir", "mkdirat", "rename",
	"renameat", "renameat2", "utimensat", "flock", "dup", "dup2", "dup3",
	"pipe2", "memfd_create",
	/* event loops: ZeroMQ, the signalfd, the evq */
	"poll", "ppoll", "epoll_create1", "epoll_ctl", "epoll_wait",
	"epoll_pwait", "eventfd2", "ioctl",
	/* sockets: the endpoint, the other daemons, mantad-light, the
	 * launcher (descriptors over SCM_RIGHTS) */
	"socket", "connect", "accept4", "getsockname", "getpeername",
	"getsockopt", "setsockopt", "shutdown", "sendto", "recvfrom",
	"sendmsg", "recvmsg", "socketpair",
};

int
sandbox_enter(void)
{
	/* In the mode of security.seccomp (libcommon/confine.c). */
	return confine_sandbox(allowed, sizeof(allowed) / sizeof(allowed[0]));
}
