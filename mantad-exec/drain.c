/* drain: whether this node takes new tasks (issue 6).
 *
 * A drain refuses every deploy_task (FAILED, "draining") while the tasks
 * queued and running go on. It is kept in exec.db, so that it survives a
 * restart, unless it is transient: the drain that precedes a stop
 * (mantactl stop, SIGTERM to the supervisor, stop_node) ends with the
 * node. Each change is handed to mantad-register through exec.db's outbox
 * (a DrainRequest), so that it reaches the manager (SetNodeStatus) even if
 * register is restarting.
 *
 * Deploys are also refused, with the reason, while the file system
 * holding state_dir is read-only, has no space left, or is fuller than
 * resources.max_disk_usage_percent: what a task would need there (bundle,
 * log, exec.db rows) could not be kept, and a task that cannot be
 * recorded must not run. Running tasks are left alone. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"

#include "exec.h"

void
drain_set(struct exec *x, bool on, bool transient)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__DrainRequest d = MANTA__IPC__DRAIN_REQUEST__INIT;
	uint8_t *buf = NULL;
	size_t len = 0;
	int64_t seq = 0;

	if (x->draining && on && transient)
		return;		/* a stop's drain adds nothing to a drain */
	if (x->draining != on)
		log_info("%s", on ? (transient ? "draining before the stop: no"
		    " new task is taken" : "draining: no new task is taken") :
		    "undrained: taking tasks again");
	x->draining = on;
	/* An undrain is always kept; a transient drain never is. */
	if (!(on && transient))
		(void)store_meta_set_int(x->db, "draining", on);
	d.undrain = !on;
	d.transient = transient;
	m.body_case = MANTA__IPC__MSG__BODY_DRAIN;
	m.drain = &d;
	if (ipc_msg_encode(&m, &buf, &len) == -1)
		return;
	if (store_outbox_add(x->db, IPC_REGISTER, "", buf, len, 0, &seq) == -1)
		seq = -1;	/* the disk refuses: tell it once, unstored */
	if (x->to_register != NULL &&
	    sender_post(x->to_register, seq, buf, len) == 0)
		x->unacked++;
	free(buf);
}

/* df's Use%: used / (used + available to us), rounded up. */
static int
used_percent(const struct statvfs *v)
{
	unsigned long long used = (unsigned long long)(v->f_blocks - v->f_bfree);
	unsigned long long avail = (unsigned long long)v->f_bavail;

	if (used + avail == 0)
		return 100;
	return (int)((used * 100 + used + avail - 1) / (used + avail));
}

/* Can a file be written in dir? 0, or the errno. Neither statvfs nor
 * access(2) see every read-only file system (ext4's emergency read-only
 * after an error keeps the mount's flags): a write says it. */
static int
probe_write(const char *dir)
{
	char path[4096];
	ssize_t n;
	int fd, e = 0;

	if ((size_t)snprintf(path, sizeof(path), "%s/.write-probe", dir) >=
	    sizeof(path))
		return ENAMETOOLONG;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1)
		return errno;
	if ((n = write(fd, "x", 1)) != 1)
		e = n == -1 ? errno : ENOSPC;
	if (close(fd) == -1 && e == 0)
		e = errno;
	(void)unlink(path);
	return e;
}

const char *
drain_refusing(struct exec *x, uint32_t *error_id, char *buf, size_t len)
{
	const char *dir = x->cfg->state_dir;
	struct statvfs v;
	int pct, e, max = x->cfg->max_disk_usage_percent;

	*error_id = ERR_NODE;
	if (x->stopping)
		return "stopping: this node takes no new task";
	if (x->draining)
		return "draining: this node takes no new task";
	*error_id = ERR_RESOURCE;
	if (statvfs(dir, &v) == -1) {
		snprintf(buf, len, "state_dir %s is unusable: %s", dir,
		    strerror(errno));
		return buf;
	}
	if ((v.f_flag & ST_RDONLY) || access(dir, W_OK) == -1) {
		snprintf(buf, len, "state_dir %s is read-only: no new task can"
		    " be recorded", dir);
		return buf;
	}
	pct = used_percent(&v);
	if (v.f_bavail == 0 || pct > max) {
		snprintf(buf, len, "disk full: the file system of state_dir %s"
		    " is %d%% used (resources.max_disk_usage_percent = %d)", dir,
		    pct, max);
		return buf;
	}
	if ((e = probe_write(dir)) == EROFS) {
		snprintf(buf, len, "state_dir %s is read-only: no new task can"
		    " be recorded", dir);
		return buf;
	} else if (e == ENOSPC || e == EDQUOT) {
		snprintf(buf, len, "disk full: no space left in state_dir %s",
		    dir);
		return buf;
	} else if (e != 0) {
		snprintf(buf, len, "state_dir %s is unusable: %s", dir,
		    strerror(e));
		return buf;
	}
	return NULL;
}
