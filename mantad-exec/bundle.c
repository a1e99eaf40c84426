/* bundle: a run's OCI bundle,
 * <state_dir>/tasks/<swarm>-<task>-<iteration>-<circular>/:
 *
 *   module.pyz   the payload (0644; 0755 for a "#!" script);
 *   config.json  generated here with jansson (never by string pasting):
 *                the image's rootfs read-only, /tmp a tmpfs, the payload
 *                bound read-only at /usr/src/module.pyz, pid/mount/ipc/uts
 *                namespaces (and network with containers.network = "none",
 *                user with containers.userns, userns.c),
 *                cgroup memory/CPU/pids limits, no capabilities at all,
 *                noNewPrivileges, runc's masked and read-only paths, and
 *                the seccomp allowlist (seccomp.c);
 *   shim.pid, init.pid, started, result   written by the shim.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "image.h"
#include "log.h"

#include "exec.h"

#define CPU_PERIOD 100000
#define PATH_ENV "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const char *const masked_paths[] = {
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
	"/proc/sched_debug", "/sys/firmware", "/proc/scsi",
};
static const char *const readonly_paths[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

char *
bundle_rootfs(const struct exec *x, const char *image)
{
	char safe[IMAGE_SAFE_MAX + 1], *p;

	if (image_safe_name(image, safe, sizeof(safe)) == -1)
		return NULL;
	if (asprintf(&p, "%s/%s/rootfs", x->cfg->image_dir, safe) == -1)
		return NULL;
	return p;
}

int
bundle_prepare(struct exec *x, struct run *r, const uint8_t *payload,
    size_t len)
{
	char sh[ID_HEX_LEN + 1], th[ID_HEX_LEN + 1], name[2 * ID_HEX_LEN + 32];
	char *pay = NULL;
	struct run *o;
	int rc = -1;

	/* Keyed on the swarm too: one task id may run in two swarms. */
	id_to_hex(r->swarm, sh);
	id_to_hex(r->task, th);
	snprintf(name, sizeof(name), "%s-%s-%u-%u", sh, th, r->iteration,
	    r->circular);
	free(r->dir);
	if ((r->dir = path_join(x->tasks_dir, name)) == NULL)
		return -1;
	/* A round forgotten (stop_swarm) and deployed again while its
	 * earlier run still stops: that bundle is in use, name the run. */
	TAILQ_FOREACH(o, &x->runs, all)
		if (o != r && o->dir != NULL && strcmp(o->dir, r->dir) == 0)
			break;
	if (o != NULL) {
		snprintf(name, sizeof(name), "%s-%s-%u-%u-%lld", sh, th,
		    r->iteration, r->circular, (long long)r->id);
		free(r->dir);
		if ((r->dir = path_join(x->tasks_dir, name)) == NULL)
			return -1;
	}
	/* A leftover of an earlier life of this daemon: start clean. */
	if (access(r->dir, F_OK) == 0)
		(void)rm_rf(r->dir);
	if (mkdir(r->dir, 0700) == -1) {
		log_warn("unable to create %s", r->dir);
		return -1;
	}
	if ((pay = path_join(r->dir, "module.pyz")) == NULL)
		goto out;
	if (write_file_atomic(pay, payload, len, r->script ? 0755 : 0644) == -1) {
		log_warn("unable to write %s", pay);
		goto out;
	}
	rc = 0;
out:
	free(pay);
	return rc;
}

void
bundle_remove(struct exec *x, struct run *r)
{
	netep_run_end(x, r);
	if (r->dir != NULL && r->dir[0] != '\0' && rm_rf(r->dir) == -1 &&
	    errno != ENOENT)
		log_warn("unable to remove bundle %s", r->dir);
}

static json_t *
strings(const char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *
mount(const char *dest, const char *type, const char *src,
    const char *const *opts, size_t nopts)
{
	json_t *m = json_object();

	json_object_set_new(m, "destination", json_string(dest));
	json_object_set_new(m, "type", json_string(type));
	json_object_set_new(m, "source", json_string(src));
	json_object_set_new(m, "options", strings(opts, nopts));
	return m;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* RPC_HOST and RPC_PORT: where task code reaches the Light service. */
static void
rpc_endpoint(const struct exec *x, const struct run *r, char *host,
    size_t hlen, char *port, size_t plen)
{
	const char *h = x->cfg->light_service_host;

	if (r->netns != NULL)
		/* Its own endpoint in its own namespace (netep.c). */
		snprintf(host, hlen, "127.0.0.1");
	else if (strcmp(x->cfg->network ? x->cfg->network : "host", "none") == 0)
		snprintf(host, hlen, "unix:/run/manta/light.sock");
	else if (h == NULL || *h == '\0' || strcmp(h, "0.0.0.0") == 0 ||
	    strcmp(h, "::") == 0)
		snprintf(host, hlen, "127.0.0.1");
	else
		snprintf(host, hlen, "%s", h);
	snprintf(port, plen, "%d", bundle_rpc_port(x));
}

int
bundle_rpc_port(const struct exec *x)
{
	char buf[32], *path;
	int port = 50051;

	if (x->cfg->light_service_port > 0)
		return x->cfg->light_service_port;
	/* Unset: mantad-light picks the first free port from 50051 and
	 * writes it to <run_dir>/light.port. */
	if ((path = path_join(x->cfg->run_dir, "light.port")) != NULL &&
	    read_small(path, buf, sizeof(buf)) > 0) {
		long v = strtol(buf, NULL, 10);
		if (v > 0 && v < 65536)
			port = (int)v;
	}
	free(path);
	return port;
}

static json_t *
process(struct exec *x, struct run *r)
{
	json_t *p = json_object(), *env = json_array(), *caps = json_object();
	json_t *user = json_object(), *rl = json_object();
	char th[ID_HEX_LEN + 1], sh[ID_HEX_LEN + 1], host[300], port[16];
	bool has_path = false, has_home = false;
	static const char *const capsets[] = {
		"bounding", "effective", "inheritable", "permitted", "ambient",
	};

	id_to_hex(r->task, th);
	id_to_hex(r->swarm, sh);
	rpc_endpoint(x, r, host, sizeof(host), port, sizeof(port));
	json_object_set_new(p, "terminal", json_false());
	json_object_set_new(user, "uid", json_integer(0));
	json_object_set_new(user, "gid", json_integer(0));
	json_object_set_new(p, "user", user);
	json_object_set_new(p, "cwd", json_string("/"));
	/* The image's Env, WorkingDir and User (pull.c); ours win. */
	image_process(x, r, p, env, &has_path, &has_home);
	if (r->script)
		json_object_set_new(p, "args", json_pack("[s]",
		    "/usr/src/module.pyz"));
	else
		json_object_set_new(p, "args", json_pack("[ss]", "python",
		    "/usr/src/module.pyz"));
	if (!has_path)
		json_array_append_new(env, json_string(PATH_ENV));
	json_array_append_new(env, json_pack("s++", "TASK_ID=", th, ""));
	json_array_append_new(env, json_pack("s++", "SWARM_ID=", sh, ""));
	json_array_append_new(env, json_pack("s++", "RPC_HOST=", host, ""));
	json_array_append_new(env, json_pack("s++", "RPC_PORT=", port, ""));
	json_array_append_new(env, json_pack("s++", "MANTA_TASK_TOKEN=",
	    r->token, ""));
	if (!has_home)
		json_array_append_new(env, json_string("HOME=/tmp"));
	/* Output reaches the log (and the manager) as it is printed. */
	json_array_append_new(env, json_string("PYTHONUNBUFFERED=1"));
	if (r->gpu && x->gpus > 0) {
		json_array_append_new(env, json_string("NVIDIA_VISIBLE_DEVICES=all"));
		json_array_append_new(env, json_string(
		    "LD_LIBRARY_PATH=/usr/local/nvidia/lib64"));
	}
	json_object_set_new(p, "env", env);
	for (size_t i = 0; i < N(capsets); i++)
		json_object_set_new(caps, capsets[i], json_array());
	json_object_set_new(p, "capabilities", caps);
	json_object_set_new(rl, "type", json_string("RLIMIT_NOFILE"));
	json_object_set_new(rl, "hard", json_integer(4096));
	json_object_set_new(rl, "soft", json_integer(4096));
	json_object_set_new(p, "rlimits", json_pack("[o]", rl));
	json_object_set_new(p, "noNewPrivileges", json_true());
	/* The kernel's OOM killer picks a task before a node daemon. */
	json_object_set_new(p, "oomScoreAdj", json_integer(500));
	return p;
}

/* The NVIDIA device nodes and driver libraries, for a task with gpu set.
 * TODO: tested only without GPUs; the NVIDIA container toolkit does more
 * (ldconfig, per-GPU selection, IPC and fabric devices). */
static void
gpu(json_t *mounts, json_t *devices, json_t *allow)
{
	static const char *const libdirs[] = {
		"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
		"/usr/lib64", "/usr/lib",
	};
	static const char *const libs[] = {
		"libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so",
		"libnvidia-nvvm.so", "libcudadebugger.so",
	};
	static const char *const tmpfs_opts[] = { "nosuid", "nodev", "mode=755" };
	static const char *const ro[] = { "bind", "ro", "nosuid", "nodev" };
	DIR *d;
	struct dirent *de;

	if ((d = opendir("/dev")) != NULL) {
		while ((de = readdir(d)) != NULL) {
			char path[300];
			struct stat st;
			json_t *dev, *rule;

			if (strncmp(de->d_name, "nvidia", 6) != 0)
				continue;
			snprintf(path, sizeof(path), "/dev/%s", de->d_name);
			if (stat(path, &st) == -1 || !S_ISCHR(st.st_mode))
				continue;
			dev = json_object();
			json_object_set_new(dev, "path", json_string(path));
			json_object_set_new(dev, "type", json_string("c"));
			json_object_set_new(dev, "major", json_integer(major(st.st_rdev)));
			json_object_set_new(dev, "minor", json_integer(minor(st.st_rdev)));
			json_object_set_new(dev, "fileMode", json_integer(0666));
			json_object_set_new(dev, "uid", json_integer(0));
			json_object_set_new(dev, "gid", json_integer(0));
			json_array_append_new(devices, dev);
			rule = json_object();
			json_object_set_new(rule, "allow", json_true());
			json_object_set_new(rule, "type", json_string("c"));
			json_object_set_new(rule, "major", json_integer(major(st.st_rdev)));
			json_object_set_new(rule, "minor", json_integer(minor(st.st_rdev)));
			json_object_set_new(rule, "access", json_string("rwm"));
			json_array_append_new(allow, rule);
		}
		closedir(d);
	}
	json_array_append_new(mounts, mount("/usr/local/nvidia", "tmpfs", "tmpfs",
	    tmpfs_opts, N(tmpfs_opts)));
	for (size_t i = 0; i < N(libdirs); i++) {
		if ((d = opendir(libdirs[i])) == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			char src[600], dst[600];

			for (size_t k = 0; k < N(libs); k++) {
				if (strncmp(de->d_name, libs[k], strlen(libs[k])) != 0)
					continue;
				snprintf(src, sizeof(src), "%s/%s", libdirs[i], de->d_name);
				snprintf(dst, sizeof(dst), "/usr/local/nvidia/lib64/%s",
				    de->d_name);
				json_array_append_new(mounts, mount(dst, "bind", src,
				    ro, N(ro)));
			}
		}
		closedir(d);
		break;
	}
	if (access("/usr/bin/nvidia-smi", X_OK) == 0)
		json_array_append_new(mounts, mount("/usr/local/nvidia/bin/nvidia-smi",
		    "bind", "/usr/bin/nvidia-smi", ro, N(ro)));
}

static json_t *
mounts(struct exec *x, struct run *r, const char *rootfs, json_t *devices,
    json_t *allow)
{
	static const char *const dev[] = {
		"nosuid", "strictatime", "mode=755", "size=65536k",
	};
	static const char *const pts[] = {
		"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
	};
	static const char *const shm[] = {
		"nosuid", "noexec", "nodev", "mode=1777", "size=65536k",
	};
	static const char *const mq[] = { "nosuid", "noexec", "nodev" };
	static const char *const sys[] = { "nosuid", "noexec", "nodev", "ro" };
	static const char *const sysbind[] = {
		"rbind", "nosuid", "noexec", "nodev", "ro", "rro",
	};
	static const char *const cg[] = {
		"nosuid", "noexec", "nodev", "relatime", "ro",
	};
	static const char *const ro[] = { "bind", "ro", "nosuid", "nodev" };
	json_t *m = json_array();
	char size[64], *pay, *resolv;
	const char *tmp[4];
	uint64_t tmpsize = x->cfg->memory_limit_bytes / 2;

	json_array_append_new(m, mount("/proc", "proc", "proc", NULL, 0));
	json_array_append_new(m, mount("/dev", "tmpfs", "tmpfs", dev, N(dev)));
	json_array_append_new(m, mount("/dev/pts", "devpts", "devpts", pts, N(pts)));
	json_array_append_new(m, mount("/dev/shm", "tmpfs", "shm", shm, N(shm)));
	json_array_append_new(m, mount("/dev/mqueue", "mqueue", "mqueue", mq, N(mq)));
	/* A user namespace may mount sysfs only with a network namespace of
	 * its own, and a task's never is: the host's, or the one netep.c
	 * makes (the initial user namespace's). So the host's /sys, read-only
	 * down to its submounts (userns.c). */
	if (x->userns)
		json_array_append_new(m, mount("/sys", "bind", "/sys", sysbind,
		    N(sysbind)));
	else
		json_array_append_new(m, mount("/sys", "sysfs", "sysfs", sys, N(sys)));
	json_array_append_new(m, mount("/sys/fs/cgroup", "cgroup", "cgroup", cg,
	    N(cg)));
	/* /tmp is memory: it counts against the task's memory limit. */
	if (tmpsize == 0 || tmpsize > ((uint64_t)1 << 30))
		tmpsize = (uint64_t)1 << 30;
	snprintf(size, sizeof(size), "size=%llu", (unsigned long long)tmpsize);
	tmp[0] = "nosuid";
	tmp[1] = "nodev";
	tmp[2] = "mode=1777";
	tmp[3] = size;
	json_array_append_new(m, mount("/tmp", "tmpfs", "tmpfs", tmp, 4));
	if ((pay = path_join(r->dir, "module.pyz")) != NULL) {
		json_array_append_new(m, mount("/usr/src/module.pyz", "bind", pay,
		    ro, N(ro)));
		free(pay);
	}
	/* Name resolution on the host network, if the image has the file to
	 * cover (a read-only rootfs cannot take a new mount point). */
	if (strcmp(x->cfg->network ? x->cfg->network : "host", "host") == 0 &&
	    asprintf(&resolv, "%s/etc/resolv.conf", rootfs) != -1) {
		if (access(resolv, F_OK) == 0 && access("/etc/resolv.conf", R_OK) == 0)
			json_array_append_new(m, mount("/etc/resolv.conf", "bind",
			    "/etc/resolv.conf", ro, N(ro)));
		free(resolv);
	}
	if (strcmp(x->cfg->network ? x->cfg->network : "host", "none") == 0) {
		char *sock = path_join(x->cfg->run_dir, "light-grpc.sock");
		static const char *const rw[] = { "bind", "nosuid", "nodev", "noexec" };

		if (sock != NULL && access(sock, F_OK) == 0)
			json_array_append_new(m, mount("/run/manta/light.sock",
			    "bind", sock, rw, N(rw)));
		free(sock);
	}
	if (r->gpu && x->gpus > 0)
		gpu(m, devices, allow);
	return m;
}

static json_t *
linux_section(struct exec *x, struct run *r, json_t *devices, json_t *allow)
{
	json_t *l = json_object(), *ns = json_array(), *res = json_object();
	json_t *mem = json_object(), *cpu = json_object(), *pids = json_object();
	json_t *deny = json_object();
	static const char *const kinds[] = { "pid", "mount", "ipc", "uts" };
	char path[CID_MAX + 16];

	for (size_t i = 0; i < N(kinds); i++)
		json_array_append_new(ns, json_pack("{ss}", "type", kinds[i]));
	if (r->netns != NULL)
		json_array_append_new(ns, json_pack("{ssss}", "type", "network",
		    "path", r->netns));
	else if (strcmp(x->cfg->network ? x->cfg->network : "host", "none") == 0)
		json_array_append_new(ns, json_pack("{ss}", "type", "network"));
	if (x->cgroup2)
		json_array_append_new(ns, json_pack("{ss}", "type", "cgroup"));
	json_object_set_new(l, "namespaces", ns);
	userns_linux(x, l);

	if (x->cfg->memory_limit_bytes > 0) {
		json_object_set_new(mem, "limit",
		    json_integer((json_int_t)x->cfg->memory_limit_bytes));
		if (x->swap_limit)
			json_object_set_new(mem, "swap",
			    json_integer((json_int_t)x->cfg->memory_limit_bytes));
		json_object_set_new(res, "memory", mem);
	} else
		json_decref(mem);
	if (x->cfg->cpu_limit > 0) {
		json_object_set_new(cpu, "quota",
		    json_integer((json_int_t)(x->cfg->cpu_limit * CPU_PERIOD)));
		json_object_set_new(cpu, "period", json_integer(CPU_PERIOD));
		json_object_set_new(res, "cpu", cpu);
	} else
		json_decref(cpu);
	json_object_set_new(pids, "limit", json_integer(PIDS_MAX));
	json_object_set_new(res, "pids", pids);
	json_object_set_new(deny, "allow", json_false());
	json_object_set_new(deny, "access", json_string("rwm"));
	json_array_insert_new(allow, 0, deny);
	json_object_set_new(res, "devices", allow);
	json_object_set_new(l, "resources", res);
	if (json_array_size(devices) > 0)
		json_object_set_new(l, "devices", devices);
	else
		json_decref(devices);
	snprintf(path, sizeof(path), "/manta/%s", r->cid);
	json_object_set_new(l, "cgroupsPath", json_string(path));
	json_object_set_new(l, "maskedPaths", strings(masked_paths, N(masked_paths)));
	json_object_set_new(l, "readonlyPaths", strings(readonly_paths,
	    N(readonly_paths)));
	json_object_set(l, "seccomp", x->seccomp);
	return l;
}

/* With containers.userns, the runtime mounts as the mapped root, which
 * cannot make the mount points the image lacks: they are made here. */
static int
mount_points(const struct exec *x, const struct run *r, const char *rootfs,
    char *err, size_t errlen)
{
	if (userns_mountpoint(rootfs, "usr/src", "module.pyz", err, errlen) == -1)
		return -1;
	if (strcmp(x->cfg->network ? x->cfg->network : "host", "none") == 0 &&
	    userns_mountpoint(rootfs, "run/manta", "light.sock", err, errlen) == -1)
		return -1;
	if (r->gpu && x->gpus > 0 && userns_mountpoint(rootfs, "usr/local/nvidia",
	    NULL, err, errlen) == -1)
		return -1;
	return 0;
}

int
bundle_write_config(struct exec *x, struct run *r, char *err, size_t errlen)
{
	json_t *c, *root, *devices = json_array(), *allow = json_array();
	char host[64], *rootfs, *path = NULL, *text = NULL;
	int rc = -1;

	if ((rootfs = bundle_rootfs(x, r->image)) == NULL) {
		snprintf(err, errlen, "image name refused");
		json_decref(devices);
		json_decref(allow);
		return -1;
	}
	if (x->userns && mount_points(x, r, rootfs, err, errlen) == -1) {
		json_decref(devices);
		json_decref(allow);
		free(rootfs);
		return -1;
	}
	validate_hostname(r->alias, &r->task, host, sizeof(host));
	c = json_object();
	json_object_set_new(c, "ociVersion", json_string("1.0.2"));
	json_object_set_new(c, "process", process(x, r));
	root = json_object();
	json_object_set_new(root, "path", json_string(rootfs));
	json_object_set_new(root, "readonly", json_true());
	json_object_set_new(c, "root", root);
	json_object_set_new(c, "hostname", json_string(host));
	json_object_set_new(c, "mounts", mounts(x, r, rootfs, devices, allow));
	json_object_set_new(c, "linux", linux_section(x, r, devices, allow));
	if ((text = json_dumps(c, JSON_COMPACT)) == NULL ||
	    (path = path_join(r->dir, "config.json")) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (write_file_atomic(path, text, strlen(text), 0600) == -1) {
		snprintf(err, errlen, "unable to write %s: %s", path,
		    strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(path);
	free(text);
	free(rootfs);
	json_decref(c);
	return rc;
}
