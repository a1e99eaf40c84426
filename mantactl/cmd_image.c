/* mantactl image import|ls: the local image store, <containers.image_dir>.
 *
 * Each image is one directory named by image_safe_name (libcommon/image.h):
 *
 *   <image_dir>/<safe>/rootfs            what tasks get as their root
 *   <image_dir>/<safe>/manta-image.json  {name, size, imported_at, source, kind}
 *
 * An import fills a fresh ".import-XXXXXX" directory beside the others and
 * renames it into place, so a task never sees half an image; a second import
 * of the same name swaps the directories (RENAME_EXCHANGE) and removes the
 * old one. Entries starting with '.' are never images (image_name_check
 * refuses such names). The source is a rootfs directory (copied with
 * cp -a), a tarball (listed first with tar -t: absolute or ".." members are
 * refused; then extracted with tar -x, compression detected by tar), or an
 * OCI image layout (unpacked with umoci raw unpack; DIR:TAG picks a tag).
 * Every helper program is forked and executed directly, never through a
 * shell. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <jansson.h>

#include "daemon.h"
#include "image.h"
#include "json.h"
#include "log.h"
#include "mantactl.h"

#define IMAGE_USAGE \
	"image import [NODE] NAME DIR_OR_TAR [-c FILE] | image ls [NODE] [-c FILE] [--json]"
#define META_FILE "manta-image.json"
#define TMP_PREFIX ".import-"

enum src_kind { SRC_DIR, SRC_TAR, SRC_OCI };

static const char *const kind_names[] = { "dir", "tar", "oci" };

/* ---- child processes ---- */

/* Forks and executes argv[0] (searched in PATH) with stdin from /dev/null
 * and stdout to a pipe when out is not NULL (stderr then goes to /dev/null
 * too: the caller reads and judges the output). The pid, or -1. */
static pid_t
spawn(char *const argv[], int *out)
{
	int p[2] = { -1, -1 };
	pid_t pid;

	if (out != NULL && pipe2(p, O_CLOEXEC) == -1) {
		log_warn("unable to create a pipe");
		return -1;
	}
	if ((pid = fork()) == -1) {
		log_warn("unable to fork");
		if (out != NULL) {
			close(p[0]);
			close(p[1]);
		}
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (null != -1)
			dup2(null, STDIN_FILENO);
		if (out != NULL) {
			dup2(p[1], STDOUT_FILENO);
			if (null != -1)
				dup2(null, STDERR_FILENO);
		}
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		fprintf(stderr, "mantactl: fatal: unable to exec %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	if (out != NULL) {
		close(p[1]);
		*out = p[0];
	}
	return pid;
}

/* Waits for pid: 0 when it exited 0, else -1 (logged, naming what, unless
 * what is NULL). */
static int
reap(pid_t pid, const char *what)
{
	int st;

	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR) {
			log_warn("waitpid %s", what ? what : "");
			return -1;
		}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (what == NULL)
		return -1;
	if (WIFEXITED(st))
		log_warnx("%s exited with status %d", what, WEXITSTATUS(st));
	else
		log_warnx("%s killed by signal %d", what, WTERMSIG(st));
	return -1;
}

static int
run(char *const argv[])
{
	pid_t pid = spawn(argv, NULL);

	return pid == -1 ? -1 : reap(pid, argv[0]);
}

/* ---- trees ---- */

static int
chmod_dir_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	if (flag == FTW_D && (sb->st_mode & 0700) != 0700)
		(void)chmod(path, (sb->st_mode & 07777) | 0700);
	return 0;
}

static int
remove_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	if (remove(path) == -1 && errno != ENOENT)
		log_warn("unable to remove %s", path);
	return 0;
}

/* rm -rf without following symbolic links or crossing mounts. */
static void
remove_tree(const char *path)
{
	struct stat sb;

	if (lstat(path, &sb) == -1)
		return;
	if (!S_ISDIR(sb.st_mode)) {
		(void)unlink(path);
		return;
	}
	/* Read-only directories in a rootfs (0555) would stop a non-root rm. */
	(void)nftw(path, chmod_dir_cb, 32, FTW_PHYS | FTW_MOUNT);
	(void)nftw(path, remove_cb, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* Apparent size of the regular files of a tree, each inode counted once. */
struct inode_size {
	dev_t dev;
	ino_t ino;
	off_t size;
};
static struct inode_size *tree_links;
static size_t tree_nlinks, tree_cap;
static unsigned long long tree_bytes;
static int tree_oom;

static int
size_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	if (flag != FTW_F || !S_ISREG(sb->st_mode))
		return 0;
	if (sb->st_nlink <= 1) {
		tree_bytes += (unsigned long long)sb->st_size;
		return 0;
	}
	if (tree_nlinks == tree_cap) {
		size_t ncap = tree_cap ? tree_cap * 2 : 64;
		struct inode_size *n = realloc(tree_links, ncap * sizeof(*n));

		if (n == NULL) {
			tree_oom = 1;
			return 1;
		}
		tree_links = n;
		tree_cap = ncap;
	}
	tree_links[tree_nlinks].dev = sb->st_dev;
	tree_links[tree_nlinks].ino = sb->st_ino;
	tree_links[tree_nlinks].size = sb->st_size;
	tree_nlinks++;
	return 0;
}

static int
inode_cmp(const void *a, const void *b)
{
	const struct inode_size *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return 0;
}

static unsigned long long
tree_size(const char *path)
{
	unsigned long long total;

	tree_bytes = 0;
	tree_nlinks = 0;
	tree_oom = 0;
	(void)nftw(path, size_cb, 32, FTW_PHYS | FTW_MOUNT);
	if (tree_nlinks > 0)	/* qsort's base may not be NULL, even for 0 */
		qsort(tree_links, tree_nlinks, sizeof(*tree_links), inode_cmp);
	for (size_t i = 0; i < tree_nlinks; i++)
		if (i == 0 || inode_cmp(&tree_links[i - 1], &tree_links[i]) != 0)
			tree_bytes += (unsigned long long)tree_links[i].size;
	total = tree_bytes;
	free(tree_links);
	tree_links = NULL;
	tree_cap = tree_nlinks = 0;
	return total;
}

/* ---- sources ---- */

/* A tar member name that would land outside the extraction directory:
 * absolute, or with a ".." component. */
static int
member_unsafe(const char *name)
{
	const char *p = name;

	if (name[0] == '/')
		return 1;
	while (*p != '\0') {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return 1;
		p += n;
		while (*p == '/')
			p++;
	}
	return 0;
}

/* tar -t: every member is checked before anything is extracted. */
static int
check_tar(const char *file)
{
	char *argv[] = { "tar", "-t", "--quoting-style=escape", "-f", (char *)(uintptr_t)file,
	    NULL };
	char *line = NULL, *bad = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long members = 0;
	pid_t pid;
	FILE *f;
	int fd, rc;

	if ((pid = spawn(argv, &fd)) == -1)
		return -1;
	if ((f = fdopen(fd, "r")) == NULL) {
		log_warn("fdopen");
		close(fd);
		kill(pid, SIGKILL);
		reap(pid, NULL);
		return -1;
	}
	while ((n = getline(&line, &cap, f)) != -1) {
		if (n > 0 && line[n - 1] == '\n')
			line[n - 1] = '\0';
		members++;
		if (member_unsafe(line)) {
			bad = strdup(line);
			break;
		}
	}
	free(line);
	fclose(f);
	if (bad != NULL) {
		kill(pid, SIGKILL);
		(void)reap(pid, NULL);
		log_errorx("refusing %s: member \"%s\" is absolute or contains \"..\"", file,
		    bad);
		free(bad);
		return -1;
	}
	rc = reap(pid, NULL);
	if (rc == -1) {
		log_errorx("%s: not a tarball tar can read (tar -t failed)", file);
		return -1;
	}
	if (members == 0) {
		log_errorx("%s: empty archive", file);
		return -1;
	}
	return 0;
}

static int
import_tar(const char *file, const char *rootfs)
{
	char *argv[] = { "tar", "-x", "-f", (char *)(uintptr_t)file, "-C",
	    (char *)(uintptr_t)rootfs, "--no-overwrite-dir", NULL };

	if (check_tar(file) == -1)
		return -1;
	if (mkdir(rootfs, 0755) == -1) {
		log_warn("unable to create %s", rootfs);
		return -1;
	}
	return run(argv);
}

static int
import_dir(const char *dir, const char *rootfs)
{
	char *src;
	int rc;

	if (asprintf(&src, "%s/.", dir) == -1)
		return -1;
	{
		char *argv[] = { "cp", "-a", "--", src, (char *)(uintptr_t)rootfs, NULL };

		rc = run(argv);
	}
	free(src);
	return rc;
}

/* The tag of an OCI layout to unpack: the one asked for, else the only one
 * its index.json names, else "latest". malloc'd. */
static char *
oci_tag(const char *layout, const char *asked)
{
	char *path, *tag = NULL;
	json_t *idx, *m;
	json_error_t jerr;
	size_t i;
	int found = 0;

	if (asked != NULL)
		return strdup(asked);
	if (asprintf(&path, "%s/index.json", layout) == -1)
		return NULL;
	idx = json_load_file(path, 0, &jerr);
	free(path);
	json_array_foreach(json_object_get(idx, "manifests"), i, m) {
		const char *r = json_string_value(json_object_get(
		    json_object_get(m, "annotations"), "org.opencontainers.image.ref.name"));

		if (r != NULL) {
			found++;
			if (tag == NULL)
				tag = strdup(r);
		}
	}
	json_decref(idx);
	if (found != 1) {
		free(tag);
		tag = strdup("latest");
	}
	return tag;
}

static int
import_oci(const char *layout, const char *asked_tag, const char *rootfs)
{
	char *tag, *image;
	int rc;

	if ((tag = oci_tag(layout, asked_tag)) == NULL)
		return -1;
	if (asprintf(&image, "%s:%s", layout, tag) == -1) {
		free(tag);
		return -1;
	}
	free(tag);
	{
		/* umoci creates rootfs itself (it must not exist). */
		char *argv[] = { "umoci", "--log", "error", "raw", "unpack", "--image", image,
		    (char *)(uintptr_t)rootfs, NULL };

		rc = run(argv);
	}
	free(image);
	return rc;
}

static int
is_oci_layout(const char *dir)
{
	char *p;
	int r;

	if (asprintf(&p, "%s/oci-layout", dir) == -1)
		return 0;
	r = access(p, R_OK) == 0;
	free(p);
	return r;
}

/* What src is: kind, and for "LAYOUT:TAG" the layout path and tag. */
static int
classify(const char *src, enum src_kind *kind, char **path, char **tag)
{
	struct stat sb;
	const char *colon;

	*tag = NULL;
	if (stat(src, &sb) == 0) {
		if ((*path = realpath(src, NULL)) == NULL) {
			log_error("unable to resolve %s", src);
			return -1;
		}
		if (S_ISDIR(sb.st_mode))
			*kind = is_oci_layout(src) ? SRC_OCI : SRC_DIR;
		else if (S_ISREG(sb.st_mode))
			*kind = SRC_TAR;
		else {
			log_errorx("%s: neither a directory nor a tarball", src);
			free(*path);
			return -1;
		}
		return 0;
	}
	/* LAYOUT:TAG, an OCI layout and one of its tags. */
	if ((colon = strrchr(src, ':')) != NULL && colon[1] != '\0' &&
	    strchr(colon, '/') == NULL) {
		char *dir = strndup(src, (size_t)(colon - src));

		if (dir != NULL && is_oci_layout(dir)) {
			*kind = SRC_OCI;
			*path = realpath(dir, NULL);
			*tag = strdup(colon + 1);
			free(dir);
			if (*path == NULL || *tag == NULL) {
				free(*path);
				free(*tag);
				return -1;
			}
			return 0;
		}
		free(dir);
	}
	log_error("%s", src);
	return -1;
}

/* ---- the store ---- */

static void
rfc3339_now(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int
write_meta(const char *dir, const char *name, const char *src, enum src_kind kind,
    unsigned long long size)
{
	char *path, when[32];
	json_t *o;
	FILE *f;
	int rc = -1;

	rfc3339_now(when, sizeof(when));
	if (asprintf(&path, "%s/%s", dir, META_FILE) == -1)
		return -1;
	o = json_pack("{s:s, s:I, s:s, s:s, s:s}", "name", name,
	    "size", (json_int_t)size, "imported_at", when, "source", src,
	    "kind", kind_names[kind]);
	if (o != NULL && (f = fopen(path, "we")) != NULL) {
		rc = json_print(f, o, 2);
		if (fclose(f) == EOF)
			rc = -1;
	}
	if (rc == -1)
		log_warn("unable to write %s", path);
	json_decref(o);
	free(path);
	return rc;
}

/* Leftovers of imports that were interrupted (their mantactl is gone). */
static void
clean_stale(const char *image_dir)
{
	DIR *d = opendir(image_dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char *p, pidbuf[16];
		ssize_t n;
		int alive = 0;

		if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
			continue;
		if (asprintf(&p, "%s/%s/pid", image_dir, e->d_name) == -1)
			continue;
		{
			int fd = open(p, O_RDONLY | O_CLOEXEC);

			if (fd != -1) {
				n = read(fd, pidbuf, sizeof(pidbuf) - 1);
				close(fd);
				if (n > 0) {
					pidbuf[n] = '\0';
					alive = kill((pid_t)atoi(pidbuf), 0) == 0 || errno == EPERM;
				}
			}
		}
		free(p);
		if (alive)
			continue;
		if (asprintf(&p, "%s/%s", image_dir, e->d_name) == -1)
			continue;
		remove_tree(p);
		free(p);
	}
	closedir(d);
}

/* Moves the tree tmp to dest. A new name appears whole; an existing one is
 * swapped with the new tree in one step (the old tree is then at tmp, for
 * the caller to remove). File systems without renameat2 flags get two
 * renames. */
static int
place(const char *tmp, const char *dest)
{
	char *old;

	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EEXIST &&
	    renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_EXCHANGE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS) {
		log_error("unable to move the image into %s", dest);
		return -1;
	}
	if (asprintf(&old, "%s.old", tmp) == -1)
		return -1;
	if (rename(dest, old) == -1 && errno != ENOENT) {
		log_error("unable to move %s aside", dest);
		free(old);
		return -1;
	}
	if (rename(tmp, dest) == -1) {
		log_error("unable to move the image into %s", dest);
		(void)rename(old, dest);
		free(old);
		return -1;
	}
	remove_tree(old);
	free(old);
	return 0;
}

/* name for a message: control bytes as '?', cut at 200 bytes. */
static const char *
printable(const char *name, char *buf, size_t len)
{
	size_t i;

	for (i = 0; name[i] != '\0' && i + 1 < len && i < IMAGE_NAME_MAX; i++)
		buf[i] = (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i];
	buf[i] = '\0';
	return buf;
}

static int
image_import(const struct manta_cfg *c, const char *name, const char *src)
{
	char safe[IMAGE_SAFE_MAX + 1], pbuf[IMAGE_NAME_MAX + 1], *tmp = NULL, *rootfs = NULL, *dest = NULL;
	char *srcpath = NULL, *tag = NULL, *pidfile = NULL;
	const char *why;
	enum src_kind kind;
	unsigned long long size;
	int rc = CTL_FAIL, fd;

	if ((why = image_name_check(name)) != NULL) {
		log_errorx("refusing image name \"%s\": %s",
		    printable(name, pbuf, sizeof(pbuf)), why);
		return CTL_FAIL;
	}
	if (image_safe_name(name, safe, sizeof(safe)) == -1) {
		log_error("refusing image name \"%s\"", printable(name, pbuf, sizeof(pbuf)));
		return CTL_FAIL;
	}
	if (classify(src, &kind, &srcpath, &tag) == -1)
		return CTL_FAIL;
	/* state_dir keeps its daemons' mode (0700) if we are first to make it;
	 * the store itself is readable, as a runtime expects of a rootfs. */
	umask(022);
	if (daemon_mkdirs(c->state_dir, 0700) == -1 ||
	    daemon_mkdirs(c->image_dir, 0755) == -1) {
		log_error("unable to create %s", c->image_dir);
		goto out;
	}
	clean_stale(c->image_dir);
	if (asprintf(&tmp, "%s/" TMP_PREFIX "XXXXXX", c->image_dir) == -1 ||
	    asprintf(&dest, "%s/%s", c->image_dir, safe) == -1) {
		tmp = NULL;
		goto out;
	}
	if (mkdtemp(tmp) == NULL) {
		log_error("unable to create a directory in %s", c->image_dir);
		free(tmp);
		tmp = NULL;
		goto out;
	}
	(void)chmod(tmp, 0755);
	if (asprintf(&rootfs, "%s/rootfs", tmp) == -1 ||
	    asprintf(&pidfile, "%s/pid", tmp) == -1) {
		rootfs = NULL;
		goto out;
	}
	if ((fd = open(pidfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) != -1) {
		dprintf(fd, "%d\n", (int)getpid());
		close(fd);
	}

	switch (kind) {
	case SRC_DIR:
		if (mkdir(rootfs, 0755) == -1) {
			log_error("unable to create %s", rootfs);
			goto out;
		}
		if (import_dir(srcpath, rootfs) == -1) {
			log_errorx("unable to copy %s", srcpath);
			goto out;
		}
		break;
	case SRC_TAR:
		if (import_tar(srcpath, rootfs) == -1) {
			log_errorx("unable to extract %s", srcpath);
			goto out;
		}
		break;
	case SRC_OCI:
		if (import_oci(srcpath, tag, rootfs) == -1) {
			log_errorx("unable to unpack the OCI layout %s (is umoci installed?)",
			    srcpath);
			goto out;
		}
		break;
	}
	size = tree_size(rootfs);
	if (write_meta(tmp, name, srcpath, kind, size) == -1)
		goto out;
	(void)unlink(pidfile);
	/* Into place: a new name appears whole; an existing one is swapped
	 * with the new tree in one step, then the old tree goes. */
	if (place(tmp, dest) == -1)
		goto out;
	printf("imported %s (%s, %llu bytes) into %s/rootfs\n", name, kind_names[kind],
	    size, dest);
	rc = CTL_OK;
out:
	if (tmp != NULL)
		remove_tree(tmp);	/* the failed import, or the replaced image */
	free(tmp);
	free(rootfs);
	free(pidfile);
	free(dest);
	free(srcpath);
	free(tag);
	return rc;
}

/* ---- ls ---- */

static int
name_cmp(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;

	return strcmp(json_string_value(json_object_get(x, "name")),
	    json_string_value(json_object_get(y, "name")));
}

static json_t *
image_entry(const char *image_dir, const char *entry)
{
	char *path = NULL, *rootfs = NULL;
	json_t *meta = NULL, *o = NULL;
	json_error_t jerr;
	struct stat sb;

	if (asprintf(&rootfs, "%s/%s/rootfs", image_dir, entry) == -1)
		return NULL;
	if (stat(rootfs, &sb) == -1 || !S_ISDIR(sb.st_mode))
		goto out;	/* not an image */
	if (asprintf(&path, "%s/%s/" META_FILE, image_dir, entry) == -1) {
		path = NULL;
		goto out;
	}
	meta = json_load_file(path, 0, &jerr);
	/* An image put there by hand has no metadata: its directory name and
	 * what can be seen of it. */
	o = json_pack("{s:s, s:o, s:o, s:s}",
	    "name", json_string_value(json_object_get(meta, "name")) ?: entry,
	    "size", json_is_integer(json_object_get(meta, "size")) ?
	    json_incref(json_object_get(meta, "size")) : json_null(),
	    "imported_at", json_is_string(json_object_get(meta, "imported_at")) ?
	    json_incref(json_object_get(meta, "imported_at")) : json_null(),
	    "path", rootfs);
out:
	json_decref(meta);
	free(path);
	free(rootfs);
	return o;
}

static int
image_ls(const struct manta_cfg *c, int as_json)
{
	json_t *arr = json_array(), **v = NULL, *e;
	struct dirent *de;
	size_t n = 0, i;
	DIR *d;

	if ((d = opendir(c->image_dir)) == NULL && errno != ENOENT) {
		log_error("unable to read %s", c->image_dir);
		json_decref(arr);
		return CTL_FAIL;
	}
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((e = image_entry(c->image_dir, de->d_name)) == NULL)
			continue;
		json_array_append_new(arr, e);
	}
	if (d != NULL)
		closedir(d);
	/* Sorted by name. */
	n = json_array_size(arr);
	if (n > 0 && (v = calloc(n, sizeof(*v))) != NULL) {
		json_array_foreach(arr, i, e)
			v[i] = json_incref(e);
		qsort(v, n, sizeof(*v), name_cmp);
		json_array_clear(arr);
		for (i = 0; i < n; i++)
			json_array_append_new(arr, v[i]);
		free(v);
	}
	if (as_json || !isatty(STDOUT_FILENO)) {
		json_print(stdout, arr, 0);
	} else {
		printf("%-32s %12s  %s\n", "NAME", "SIZE", "IMPORTED");
		json_array_foreach(arr, i, e) {
			json_t *sz = json_object_get(e, "size");
			char szbuf[32] = "-";

			if (json_is_integer(sz))
				snprintf(szbuf, sizeof(szbuf), "%lld",
				    (long long)json_integer_value(sz));
			printf("%-32s %12s  %s\n", json_string_value(json_object_get(e, "name")),
			    szbuf, json_string_value(json_object_get(e, "imported_at")) ?: "-");
		}
	}
	json_decref(arr);
	return CTL_OK;
}

int
cmd_image(int argc, char **argv)
{
	struct ctl_args a;
	struct manta_cfg *c;
	const char *name = NULL, *src = NULL;
	int rc, is_import;

	if (argc < 2) {
		fprintf(stderr, "usage: mantactl %s\n", IMAGE_USAGE);
		return CTL_USAGE;
	}
	if (strcmp(argv[1], "import") == 0)
		is_import = 1;
	else if (strcmp(argv[1], "ls") == 0 || strcmp(argv[1], "list") == 0)
		is_import = 0;
	else if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		printf("usage: mantactl %s\n", IMAGE_USAGE);
		return CTL_OK;
	} else {
		fprintf(stderr, "usage: mantactl %s\n", IMAGE_USAGE);
		return CTL_USAGE;
	}
	ctl_options_first(argc - 1, argv + 1);
	if ((rc = ctl_parse(argc - 1, argv + 1, IMAGE_USAGE, is_import ? 2 : 0, &a)) != 0)
		return rc;
	if (is_import) {
		/* [NODE] NAME SRC: ctl_parse took the first positional as NODE. */
		if (a.npos == 1) {
			name = a.name;
			src = a.pos[0];
			a.name = NULL;
		} else if (a.npos == 2) {
			name = a.pos[0];
			src = a.pos[1];
		} else {
			fprintf(stderr, "usage: mantactl %s\n", IMAGE_USAGE);
			return CTL_USAGE;
		}
	}
	if ((c = ctl_load_config(&a)) == NULL)
		return CTL_FAIL;
	rc = is_import ? image_import(c, name, src) : image_ls(c, a.json);
	cfg_free(c);
	return rc;
}
