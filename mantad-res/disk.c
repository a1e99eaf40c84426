/* Disk space of the file system holding a path (statvfs). */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "res.h"

/* The mount point: the highest ancestor still on the same device. Bind
 * mounts of one file system look like one mount here; good enough to
 * name what is reported and to tell two paths apart. */
static void
mount_of(const char *real, dev_t dev, char *out, size_t len)
{
	char buf[PATH_MAX];
	struct stat sb;
	size_t n;

	snprintf(buf, sizeof(buf), "%s", real);
	snprintf(out, len, "%s", real);
	for (;;) {
		char *slash = strrchr(buf, '/');

		if (slash == NULL || buf[1] == '\0')
			break;
		if (slash == buf)
			slash[1] = '\0';	/* parent is "/" */
		else
			*slash = '\0';
		if (stat(buf, &sb) < 0 || sb.st_dev != dev)
			break;
		n = strlen(buf);
		if (n >= len)
			break;
		memcpy(out, buf, n + 1);
	}
}

/* The paths asked about, each held by an O_PATH fd from its first
 * reading: that one is taken at start, as root, and later ones need no
 * search permission on the path's parents (mantad-res may be running as
 * security.daemon_user by then, and state_dir's parents are 0700). */
struct disk_src {
	char *path;
	int fd;
	dev_t dev;
	char mount[PATH_MAX];
};
static struct disk_src srcs[4];
static size_t nsrcs;

static struct disk_src *
src_of(const char *path)
{
	char real[PATH_MAX];
	struct disk_src *s;
	struct stat sb;
	int fd;

	for (size_t i = 0; i < nsrcs; i++)
		if (strcmp(srcs[i].path, path) == 0)
			return &srcs[i];
	if (nsrcs == sizeof(srcs) / sizeof(srcs[0]) || realpath(path, real) == NULL)
		return NULL;
	if ((fd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1)
		return NULL;
	if (fstat(fd, &sb) == -1) {
		close(fd);
		return NULL;
	}
	s = &srcs[nsrcs];
	if ((s->path = strdup(path)) == NULL) {
		close(fd);
		return NULL;
	}
	nsrcs++;
	s->fd = fd;
	s->dev = sb.st_dev;
	mount_of(real, sb.st_dev, s->mount, sizeof(s->mount));
	return s;
}

int
disk_read(const char *path, struct disk_info *d)
{
	struct disk_src *s;
	struct statvfs vfs;
	uint64_t frs, used, avail;

	memset(d, 0, sizeof(*d));
	if ((s = src_of(path)) == NULL || fstatvfs(s->fd, &vfs) < 0)
		return -1;
	d->dev = s->dev;
	frs = vfs.f_frsize ? vfs.f_frsize : vfs.f_bsize;
	d->total = (uint64_t)vfs.f_blocks * frs;
	used = vfs.f_blocks >= vfs.f_bfree ? (uint64_t)(vfs.f_blocks - vfs.f_bfree) * frs : 0;
	avail = (uint64_t)vfs.f_bavail * frs;
	d->used = used;
	d->free = avail;
	/* As df(1): used over what users can have (root's reserve left out). */
	d->percent = used + avail ? (float)(100.0 * (double)used / (double)(used + avail)) : 0;
	snprintf(d->mount, sizeof(d->mount), "%s", s->mount);
	return 0;
}

void
disk_close(void)
{
	for (size_t i = 0; i < nsrcs; i++) {
		close(srcs[i].fd);
		free(srcs[i].path);
	}
	nsrcs = 0;
}
