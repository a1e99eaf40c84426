/* Disk space of the file system holding a path (statvfs). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

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

int
disk_read(const char *path, struct disk_info *d)
{
	char real[PATH_MAX];
	struct statvfs vfs;
	struct stat sb;
	uint64_t frs, used, avail;

	memset(d, 0, sizeof(*d));
	if (realpath(path, real) == NULL)
		return -1;
	if (stat(real, &sb) < 0 || statvfs(real, &vfs) < 0)
		return -1;
	d->dev = sb.st_dev;
	frs = vfs.f_frsize ? vfs.f_frsize : vfs.f_bsize;
	d->total = (uint64_t)vfs.f_blocks * frs;
	used = vfs.f_blocks >= vfs.f_bfree ? (uint64_t)(vfs.f_blocks - vfs.f_bfree) * frs : 0;
	avail = (uint64_t)vfs.f_bavail * frs;
	d->used = used;
	d->free = avail;
	/* As df(1): used over what users can have (root's reserve left out). */
	d->percent = used + avail ? (float)(100.0 * (double)used / (double)(used + avail)) : 0;
	mount_of(real, sb.st_dev, d->mount, sizeof(d->mount));
	return 0;
}
