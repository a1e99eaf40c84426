/* paths: the datasets a task may read, and every path resolved beneath the
 * O_PATH fd of its dataset with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS). The kernel then refuses what a string check can
 * miss: a symlink (or a ".." after one) that leads out of the dataset, a
 * /proc magic link, a rename race between check and use. The lexical rules
 * of the reference (normalize; refuse NUL, absolute, leading "..") come
 * first so that its error cases stay errors and not "not found". */
#include <errno.h>
#include <fcntl.h>
#include <grpc/status.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "light.h"
#include "log.h"

static int
openat2_beneath(int dirfd, const char *path, int oflags)
{
	struct open_how how;

	memset(&how, 0, sizeof(how));
	/* openat2 refuses flags that mean nothing with O_PATH. */
	how.flags = (uint64_t)(oflags | O_CLOEXEC | ((oflags & O_PATH) ? 0 : O_NOCTTY));
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int
path_normalize(const char *in, size_t len, char *out, size_t outlen, const char **why)
{
	size_t o = 0, i = 0;

	if (memchr(in, '\0', len) != NULL) {
		*why = "path contains a NUL byte";
		return -1;
	}
	if (len > 0 && in[0] == '/') {
		*why = "absolute path";
		return -1;
	}
	if (outlen == 0 || len >= outlen) {
		*why = "path too long";
		return -1;
	}
	while (i < len) {
		size_t j = i, n;

		while (j < len && in[j] != '/')
			j++;
		n = j - i;
		if (n == 0 || (n == 1 && in[i] == '.')) {
			/* empty or "." */
		} else if (n == 2 && in[i] == '.' && in[i + 1] == '.') {
			if (o == 0) {
				*why = "path leaves the dataset (..)";
				return -1;
			}
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;	/* the separator */
		} else {
			if (o > 0)
				out[o++] = '/';
			memcpy(out + o, in + i, n);
			o += n;
		}
		i = j + 1;
	}
	out[o] = '\0';
	return 0;
}

static int
open_dataset(struct dataset *ds)
{
	char *slash, *parent, *real;
	struct stat sb;
	int fd;

	if (ds->fd != -1)
		return 0;
	/* The configured path is the operator's: it may be a symlink. */
	if ((fd = open(ds->path, O_PATH | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &sb) == -1) {
		close(fd);
		return -1;
	}
	if (S_ISDIR(sb.st_mode)) {
		ds->fd = fd;
		return 0;
	}
	close(fd);
	if (!S_ISREG(sb.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	/* A file dataset: keep its folder, and its name there (symlinks
	 * resolved now, so that the leaf is the file itself). */
	if ((real = realpath(ds->path, NULL)) == NULL)
		return -1;
	slash = strrchr(real, '/');
	parent = slash == real ? strdup("/") : strndup(real, (size_t)(slash - real));
	free(ds->leaf);
	ds->leaf = strdup(slash + 1);
	if (parent == NULL || ds->leaf == NULL ||
	    (fd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1) {
		free(parent);
		free(real);
		return -1;
	}
	free(parent);
	free(real);
	ds->fd = fd;
	return 0;
}

int
datasets_open(struct datasets *d, const struct manta_cfg *c)
{
	memset(d, 0, sizeof(*d));
	d->basefd = -1;
	if ((d->base = strdup(c->base_path)) == NULL)
		return -1;
	d->basefd = open(c->base_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (d->basefd == -1)
		log_warn("datasets.base_path %s", c->base_path);
	if (c->nmappings > 0 && (d->v = calloc(c->nmappings, sizeof(*d->v))) == NULL)
		return -1;
	for (size_t i = 0; i < c->nmappings; i++) {
		struct dataset *ds = &d->v[d->n++];

		ds->fd = -1;
		if ((ds->name = strdup(c->mappings[i].name)) == NULL)
			return -1;
		/* Relative paths are under base_path. */
		if (c->mappings[i].path[0] == '/')
			ds->path = strdup(c->mappings[i].path);
		else if (asprintf(&ds->path, "%s/%s", c->base_path, c->mappings[i].path) == -1)
			ds->path = NULL;
		if (ds->path == NULL)
			return -1;
		if (open_dataset(ds) == -1)
			log_warn("dataset %s: %s (tried again at its next use)", ds->name,
			    ds->path);
		else
			log_debug("dataset %s: %s (%s)", ds->name, ds->path,
			    ds->leaf ? "file" : "folder");
	}
	return 0;
}

void
datasets_close(struct datasets *d)
{
	for (size_t i = 0; i < d->n; i++) {
		if (d->v[i].fd != -1)
			close(d->v[i].fd);
		free(d->v[i].name);
		free(d->v[i].path);
		free(d->v[i].leaf);
	}
	free(d->v);
	free(d->base);
	if (d->basefd != -1)
		close(d->basefd);
	memset(d, 0, sizeof(*d));
	d->basefd = -1;
}

static int
errno_status(int e, char *err, size_t errlen, const char *what)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		snprintf(err, errlen, "%s: not found", what);
		return GRPC_STATUS_NOT_FOUND;
	case EXDEV:
	case ELOOP:
		snprintf(err, errlen, "%s: leaves the dataset", what);
		return GRPC_STATUS_PERMISSION_DENIED;
	case EACCES:
	case EPERM:
		snprintf(err, errlen, "%s: permission denied", what);
		return GRPC_STATUS_PERMISSION_DENIED;
	case EISDIR:
		snprintf(err, errlen, "%s: is a folder", what);
		return GRPC_STATUS_INVALID_ARGUMENT;
	case ENAMETOOLONG:
		snprintf(err, errlen, "%s: name too long", what);
		return GRPC_STATUS_INVALID_ARGUMENT;
	case ENOSYS:
		snprintf(err, errlen, "openat2 is not supported by this kernel");
		return GRPC_STATUS_UNIMPLEMENTED;
	default:
		snprintf(err, errlen, "%s: %s", what, strerror(e));
		return GRPC_STATUS_INTERNAL;
	}
}

/* A mapping by name. */
static struct dataset *
find(struct datasets *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->v[i].name, name) == 0)
			return &d->v[i];
	return NULL;
}

int
paths_open(struct datasets *d, const char *name, const char *path, int oflags,
    int *fd, bool *root_is_file, char *err, size_t errlen)
{
	char rel[4096], sub[4096], full[8192];
	const char *why = NULL;
	struct dataset *ds;
	int dirfd, f;

	*fd = -1;
	*root_is_file = false;
	if (path_normalize(path, strlen(path), rel, sizeof(rel), &why) == -1) {
		snprintf(err, errlen, "%s", why);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (name[0] == '\0') {
		snprintf(err, errlen, "no dataset name");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if ((ds = find(d, name)) != NULL) {
		if (ds->fd == -1 && open_dataset(ds) == -1) {
			snprintf(err, errlen, "dataset %s is not available", name);
			return GRPC_STATUS_NOT_FOUND;
		}
		dirfd = ds->fd;
		if (ds->leaf != NULL) {
			*root_is_file = true;
			if (rel[0] != '\0') {
				snprintf(err, errlen, "dataset %s is a file, not a folder", name);
				return GRPC_STATUS_NOT_FOUND;
			}
			snprintf(full, sizeof(full), "%s", ds->leaf);
		} else
			snprintf(full, sizeof(full), "%s", rel[0] ? rel : ".");
	} else {
		/* Not a mapping: a dataset under base_path, by its name. */
		if (d->basefd == -1) {
			snprintf(err, errlen, "no dataset %s", name);
			return GRPC_STATUS_NOT_FOUND;
		}
		if (path_normalize(name, strlen(name), sub, sizeof(sub), &why) == -1 ||
		    sub[0] == '\0') {
			snprintf(err, errlen, "dataset name %s: %s", name, why ? why : "empty");
			return GRPC_STATUS_INVALID_ARGUMENT;
		}
		dirfd = d->basefd;
		if (snprintf(full, sizeof(full), "%s%s%s", sub, rel[0] ? "/" : "", rel) >=
		    (int)sizeof(full)) {
			snprintf(err, errlen, "path too long");
			return GRPC_STATUS_INVALID_ARGUMENT;
		}
		/* Is the dataset itself a file? */
		if (rel[0] == '\0') {
			struct stat sb;

			if ((f = openat2_beneath(dirfd, sub, O_PATH)) == -1)
				return errno_status(errno, err, errlen, name);
			if (fstat(f, &sb) == 0 && S_ISREG(sb.st_mode))
				*root_is_file = true;
			close(f);
		}
	}
	if ((f = openat2_beneath(dirfd, full, oflags)) == -1)
		return errno_status(errno, err, errlen, rel[0] ? rel : name);
	*fd = f;
	return 0;
}

bool
paths_is_file(struct datasets *d, const char *name, const char *rel)
{
	char err[256];
	struct stat sb;
	bool rf, ok;
	int fd;

	if (paths_open(d, name, rel, O_PATH, &fd, &rf, err, sizeof(err)) != 0)
		return false;
	ok = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
	close(fd);
	return ok;
}
