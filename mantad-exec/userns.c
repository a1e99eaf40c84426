/* userns: containers.userns, a user namespace per task. Container ids 0
 * to size - 1 are host ids from a base on (the config, else root's range
 * in /etc/subuid and /etc/subgid, else 100000), so the task's root is an
 * unprivileged host user: a process that escapes its container has no
 * more rights on the host than an unknown user.
 *
 * What that user needs, and runc and crun cannot do for it:
 *   - the image's rootfs reachable: the runtime mounts it from inside the
 *     new namespace, as the mapped user, so every directory down to it
 *     must be searchable by others (checked per deploy, validate.c);
 *   - the payload's mount point in the rootfs: the runtime cannot create
 *     it in a directory owned by the host's root, so it is made here;
 *   - /sys: sysfs cannot be mounted in a user namespace that does not own
 *     the network namespace (containers.network = "host"): the host's
 *     /sys is bound instead, recursively read-only (bundle.c).
 * Bind-mount sources (the payload, resolv.conf, the Light socket) are
 * opened by the runtime before it enters the namespace: the bundle may
 * stay 0700. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

#include "exec.h"

#define USERNS_DEFAULT_BASE 100000u

/* root's first range in a /etc/subuid-style file: 0, or -1 if none. */
static int
subid_range(const char *file, uint32_t *start, uint32_t *count)
{
	char line[512];
	FILE *f;
	int rc = -1;

	if ((f = fopen(file, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *name = line, *s, *c, *end;
		unsigned long long vs, vc;

		if ((s = strchr(name, ':')) == NULL)
			continue;
		*s++ = '\0';
		if (strcmp(name, "root") != 0 && strcmp(name, "0") != 0)
			continue;
		if ((c = strchr(s, ':')) == NULL)
			continue;
		*c++ = '\0';
		errno = 0;
		vs = strtoull(s, &end, 10);
		if (errno != 0 || end == s || *end != '\0')
			continue;
		vc = strtoull(c, &end, 10);
		if (errno != 0 || end == c || (*end != '\0' && *end != '\n'))
			continue;
		/* Never the host's root, never past the last id. */
		if (vs == 0 || vc == 0 || vs + vc > 0xffffffffULL)
			continue;
		*start = (uint32_t)vs;
		*count = (uint32_t)vc;
		rc = 0;
		break;
	}
	fclose(f);
	return rc;
}

static void
pick(const struct manta_cfg *c, const char *file, uint32_t *base,
    uint32_t *size, const char **from)
{
	uint32_t s, n;

	*size = (uint32_t)c->userns_size;
	if (c->userns_base > 0) {
		*base = (uint32_t)c->userns_base;
		*from = "containers.userns_base";
	} else if (subid_range(file, &s, &n) == 0) {
		*base = s;
		if (*size > n)
			*size = n;
		*from = file;
	} else {
		*base = USERNS_DEFAULT_BASE;
		*from = "the default";
	}
}

void
userns_init(struct exec *x)
{
	const char *fu, *fg;

	x->userns = x->cfg->userns;
	if (!x->userns)
		return;
	pick(x->cfg, "/etc/subuid", &x->userns_uid, &x->userns_uid_size, &fu);
	pick(x->cfg, "/etc/subgid", &x->userns_gid, &x->userns_gid_size, &fg);
	log_info("tasks in user namespaces: root is host uid %u (%u ids, from"
	    " %s), gid %u (%u ids, from %s)", x->userns_uid, x->userns_uid_size,
	    fu, x->userns_gid, x->userns_gid_size, fg);
	if (access(x->cfg->image_dir, F_OK) == 0) {
		char *bad = userns_unreachable(x->cfg->image_dir);

		if (bad != NULL)
			log_warnx("containers.userns: %s is not searchable by"
			    " others: tasks cannot reach their images (chmod"
			    " o+x, or move containers.image_dir)", bad);
		free(bad);
	}
}

/* The first directory on the way to path (itself included) that others
 * cannot search, as a malloc'd string; NULL if none. */
static char *
first_closed(const char *path)
{
	char *p = strdup(path), *slash;
	struct stat st;

	if (p == NULL)
		return NULL;
	for (slash = p; slash != NULL; slash = strchr(slash + 1, '/')) {
		char keep = *slash;

		if (slash == p)
			continue;	/* "/" itself */
		*slash = '\0';
		if (stat(p, &st) == 0 && (!S_ISDIR(st.st_mode) ||
		    !(st.st_mode & S_IXOTH)))
			return p;
		*slash = keep;
	}
	if (stat(p, &st) == 0 && S_ISDIR(st.st_mode) && !(st.st_mode & S_IXOTH))
		return p;
	free(p);
	return NULL;
}

char *
userns_unreachable(const char *path)
{
	char *bad, *real;

	if ((bad = first_closed(path)) != NULL)
		return bad;
	/* The runtime follows the links: the real path counts too. */
	if ((real = realpath(path, NULL)) == NULL)
		return NULL;
	bad = first_closed(real);
	free(real);
	return bad;
}

static json_t *
id_map(uint32_t host, uint32_t size)
{
	return json_pack("[{sisIsI}]", "containerID", 0, "hostID",
	    (json_int_t)host, "size", (json_int_t)size);
}

void
userns_linux(const struct exec *x, json_t *linux_obj)
{
	json_t *ns = json_object_get(linux_obj, "namespaces");

	if (!x->userns)
		return;
	json_array_append_new(ns, json_pack("{ss}", "type", "user"));
	json_object_set_new(linux_obj, "uidMappings",
	    id_map(x->userns_uid, x->userns_uid_size));
	json_object_set_new(linux_obj, "gidMappings",
	    id_map(x->userns_gid, x->userns_gid_size));
}

static int
open_in_root(int rfd, const char *rel)
{
	struct open_how how;

	memset(&how, 0, sizeof(how));
	how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	return (int)syscall(SYS_openat2, rfd, rel, &how, sizeof(how));
}

/* The directory rel ("usr/src") inside the rootfs rfd, made (0755) one
 * level at a time where missing: an O_PATH fd, or -1. Links in the image
 * resolve inside the rootfs, never to the host's files. */
static int
mkdirs_in_root(int rfd, const char *rel)
{
	char path[256], *slash;
	int parent = -1, fd = -1;

	if (snprintf(path, sizeof(path), "%s", rel) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (slash = path;; slash++) {
		bool last;
		char *name;

		slash = strchr(slash, '/');
		last = slash == NULL;
		if (!last)
			*slash = '\0';
		if ((fd = open_in_root(rfd, path)) == -1 && errno == ENOENT) {
			name = strrchr(path, '/');
			name = name ? name + 1 : path;
			if (mkdirat(parent == -1 ? rfd : parent, name, 0755) == -1 &&
			    errno != EEXIST)
				break;
			fd = open_in_root(rfd, path);
		}
		if (fd == -1)
			break;
		if (parent != -1)
			close(parent);
		parent = fd;
		if (last)
			return fd;
		*slash = '/';
	}
	if (parent != -1) {
		int e = errno;

		close(parent);
		errno = e;
	}
	return -1;
}

int
userns_mountpoint(const char *rootfs, const char *dir, const char *name,
    char *err, size_t errlen)
{
	int rfd, dfd, fd;
	struct stat st;

	if ((rfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "unable to open %s: %s", rootfs,
		    strerror(errno));
		return -1;
	}
	if ((dfd = mkdirs_in_root(rfd, dir)) == -1) {
		snprintf(err, errlen, "unable to make %s/%s: %s", rootfs, dir,
		    strerror(errno));
		close(rfd);
		return -1;
	}
	close(rfd);
	if (name == NULL || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		close(dfd);
		return 0;
	}
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0644);
	if (fd == -1 && errno != EEXIST) {
		snprintf(err, errlen, "unable to make the mount point %s/%s/%s:"
		    " %s", rootfs, dir, name, strerror(errno));
		close(dfd);
		return -1;
	}
	if (fd != -1)
		close(fd);
	close(dfd);
	return 0;
}
