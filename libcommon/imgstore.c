/* imgstore: the local image store; the layout is in imgstore.h. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "cfg.h"
#include "daemon.h"
#include "image.h"
#include "file.h"
#include "imgstore.h"
#include "json.h"
#include "log.h"
#include "secret.h"

#define TMP_PREFIX	".import-"
#define RM_PREFIX	".rm-"
#define ERRTAIL		2048	/* bytes of a helper's stderr kept */
#define TICK_MS		250

enum kind { K_DIR, K_TAR, K_OCI, K_OCI_ARCHIVE, K_DOCKER_ARCHIVE, K_REGISTRY };
static const char *const kind_names[] = {
	"dir", "tar", "oci", "oci-archive", "docker-archive", "registry",
};

static void
seterr(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* ---- child processes ---- */

struct child {
	const struct imgstore *s;
	const char *layout;	/* counted for progress; NULL: none */
	struct imgstore_progress p;
	char tail[ERRTAIL];	/* the end of its stderr */
	size_t ntail;
	char line[512];		/* its stdout line being read */
	size_t nline;
};

static void
keep_tail(struct child *c, const char *buf, size_t n)
{
	if (n >= sizeof(c->tail) - 1) {
		buf += n - (sizeof(c->tail) - 1);
		n = sizeof(c->tail) - 1;
	}
	if (c->ntail + n >= sizeof(c->tail)) {
		size_t drop = c->ntail + n - (sizeof(c->tail) - 1);

		memmove(c->tail, c->tail + drop, c->ntail - drop);
		c->ntail -= drop;
	}
	memcpy(c->tail + c->ntail, buf, n);
	c->ntail += n;
	c->tail[c->ntail] = '\0';
}

static void
stdout_line(struct child *c, const char *line)
{
	/* skopeo: "Copying blob sha256:..." once per layer. */
	if (strncmp(line, "Copying blob", 12) == 0)
		c->p.layers++;
}

static void
read_stdout(struct child *c, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\n' || buf[i] == '\r') {
			c->line[c->nline] = '\0';
			stdout_line(c, c->line);
			c->nline = 0;
		} else if (c->nline + 1 < sizeof(c->line))
			c->line[c->nline++] = buf[i];
	}
}

static int
bytes_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw);
static uint64_t count_bytes;

static int
bytes_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F && S_ISREG(sb->st_mode))
		count_bytes += (uint64_t)sb->st_size;
	return 0;
}

static void
tick(struct child *c)
{
	if (c->s->progress == NULL || c->layout == NULL)
		return;
	count_bytes = 0;
	(void)nftw(c->layout, bytes_cb, 16, FTW_PHYS);
	c->p.bytes = count_bytes;
	c->s->progress(c->s->arg, &c->p);
}

/* In the child after fork: stdin from /dev/null, stdout and stderr to the
 * pipes' write ends, the auth file kept open across exec, then argv. */
static void __attribute__((noreturn))
child_exec(const struct child *c, char *const argv[], int outw, int errw)
{
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	/* A helper does not outlive the fill it works for. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (null != -1)
		dup2(null, STDIN_FILENO);
	dup2(outw, STDOUT_FILENO);
	dup2(errw, STDERR_FILENO);
	if (c->s->authfile != NULL && c->s->authfd > STDERR_FILENO)
		(void)fcntl(c->s->authfd, F_SETFD, 0);
	signal(SIGPIPE, SIG_DFL);
	execvp(argv[0], argv);
	fprintf(stderr, "unable to run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Reads the child's stdout (fd[0]: its progress lines) and stderr (fd[1]:
 * its end kept) until both close, ticking the progress while they are
 * quiet. Closes both. */
static void
child_read(struct child *c, int fd[2])
{
	char buf[4096];
	int open_fds = 2;

	while (open_fds > 0) {
		struct pollfd pf[2] = {
			{ fd[0], POLLIN, 0 }, { fd[1], POLLIN, 0 },
		};
		int n = poll(pf, 2, TICK_MS);

		if (n == -1 && errno != EINTR)
			break;
		if (n == 0) {
			tick(c);
			continue;
		}
		for (int i = 0; i < 2; i++) {
			ssize_t r;

			if (pf[i].fd == -1 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(pf[i].fd, buf, sizeof(buf));
			if (r == -1 && errno == EINTR)
				continue;
			if (r <= 0) {
				close(fd[i]);
				fd[i] = -1;
				open_fds--;
				continue;
			}
			if (i == 0)
				read_stdout(c, buf, (size_t)r);
			else
				keep_tail(c, buf, (size_t)r);
		}
	}
	for (int i = 0; i < 2; i++)
		if (fd[i] != -1)
			close(fd[i]);
}

/* Runs argv (PATH searched) with stdin from /dev/null, its stdout and
 * stderr read here: the stderr's end kept for the reason of a failure.
 * Its exit status, 128 + signal, or -1 when it could not run. */
static int
run_child(struct child *c, char *const argv[])
{
	int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, rd[2], st;
	pid_t pid;

	c->ntail = 0;
	c->tail[0] = '\0';
	c->nline = 0;
	if (pipe2(out, O_CLOEXEC) == -1 || pipe2(errp, O_CLOEXEC) == -1) {
		if (out[0] != -1) {
			close(out[0]);
			close(out[1]);
		}
		keep_tail(c, "unable to create a pipe", 23);
		return -1;
	}
	if ((pid = fork()) == -1) {
		close(out[0]);
		close(out[1]);
		close(errp[0]);
		close(errp[1]);
		keep_tail(c, "unable to fork", 14);
		return -1;
	}
	if (pid == 0)
		child_exec(c, argv, out[1], errp[1]);
	close(out[1]);
	close(errp[1]);
	rd[0] = out[0];
	rd[1] = errp[0];
	child_read(c, rd);
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return -1;
	tick(c);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

/* The reason a helper gave: its last message (skopeo's msg="..." text
 * unquoted; umoci's line without its bullet), on one line. */
static void
child_reason(const struct child *c, const char *what, char *err, size_t len)
{
	char buf[ERRTAIL], *line = NULL, *p, *q;
	size_t n;

	memcpy(buf, c->tail, c->ntail + 1);
	n = strlen(buf);
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	line = (p = strrchr(buf, '\n')) != NULL ? p + 1 : buf;
	if ((p = strstr(line, "msg=\"")) != NULL) {
		line = p + 5;
		for (p = q = line; *p != '\0'; p++) {
			if (*p == '\\' && p[1] != '\0') {
				*q++ = *++p;
				continue;
			}
			if (*p == '"')
				break;
			*q++ = *p;
		}
		*q = '\0';
	}
	/* umoci: "   ⨯ reason" */
	while (*line == ' ' || (unsigned char)*line >= 0x80)
		line++;
	for (p = line; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	if (*line == '\0')
		seterr(err, len, "%s failed", what);
	else
		seterr(err, len, "%s", line);
}

/* ---- trees ---- */

static int
chmod_dir_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_D && (sb->st_mode & 0700) != 0700)
		(void)chmod(path, (sb->st_mode & 07777) | 0700);
	return 0;
}

static int
remove_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
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

static int
size_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag != FTW_F || !S_ISREG(sb->st_mode))
		return 0;
	if (sb->st_nlink <= 1) {
		tree_bytes += (unsigned long long)sb->st_size;
		return 0;
	}
	if (tree_nlinks == tree_cap) {
		size_t ncap = tree_cap ? tree_cap * 2 : 64;
		struct inode_size *n = realloc(tree_links, ncap * sizeof(*n));

		if (n == NULL)
			return 1;
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

/* The total of what size_cb saw since the last call; resets. */
static unsigned long long
size_total(void)
{
	unsigned long long total;

	if (tree_nlinks > 0)	/* qsort's base may not be NULL, even for 0 */
		qsort(tree_links, tree_nlinks, sizeof(*tree_links), inode_cmp);
	for (size_t i = 0; i < tree_nlinks; i++)
		if (i == 0 || inode_cmp(&tree_links[i - 1], &tree_links[i]) != 0)
			tree_bytes += (unsigned long long)tree_links[i].size;
	total = tree_bytes;
	free(tree_links);
	tree_links = NULL;
	tree_cap = tree_nlinks = 0;
	tree_bytes = 0;
	return total;
}

/* What a local user could use to become someone else: device nodes go,
 * set-user-ID and set-group-ID bits (set-group-ID on a directory only
 * passes its group on: it stays) and file capabilities are dropped. The
 * tree is still private (0700 above it), so nothing changes under us. */
static unsigned dropped_nodes, dropped_bits, dropped_caps;

static int
sanitize_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	mode_t m = sb->st_mode;

	if (flag == FTW_SL || flag == FTW_SLN)
		return 0;
	if (S_ISCHR(m) || S_ISBLK(m)) {
		if (unlink(path) == -1)
			return 1;
		log_debug("removed device node %s", path);
		dropped_nodes++;
		return 0;
	}
	if ((m & S_ISUID) || ((m & S_ISGID) && !S_ISDIR(m))) {
		if (chmod(path, m & (S_ISDIR(m) ? 03777 : 01777)) == -1)
			return 1;
		log_debug("dropped the set-ID bits of %s", path);
		dropped_bits++;
	}
	if (S_ISREG(m) && lremovexattr(path, "security.capability") == 0) {
		log_debug("dropped the file capabilities of %s", path);
		dropped_caps++;
	}
	return size_cb(path, sb, flag, ftw);	/* the same walk sizes it */
}

/* Cleans rootfs; its size in *size. */
static int
sanitize(const char *rootfs, unsigned long long *size, char *err, size_t len)
{
	int rc;

	dropped_nodes = dropped_bits = dropped_caps = 0;
	rc = nftw(rootfs, sanitize_cb, 32, FTW_PHYS | FTW_MOUNT);
	*size = size_total();
	if (rc != 0) {
		seterr(err, len, "unable to clean the unpacked tree: %s",
		    strerror(errno));
		return -1;
	}
	if (dropped_nodes + dropped_bits + dropped_caps > 0)
		log_info("removed %u device nodes, dropped set-ID bits on %u files and"
		    " file capabilities on %u", dropped_nodes, dropped_bits, dropped_caps);
	return 0;
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

/* tar -t: every member is checked before anything is extracted, and the
 * archive's kind found (docker save: manifest.json; OCI: oci-layout). */
static int
check_tar(const char *file, enum kind *kind, char *err, size_t len)
{
	char *argv[] = { "tar", "-t", "--quoting-style=escape", "-f",
	    (char *)(uintptr_t)file, NULL };
	char *line = NULL, *bad = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long members = 0;
	int p[2], st, docker = 0, oci = 0;
	pid_t pid;
	FILE *f;

	if (pipe2(p, O_CLOEXEC) == -1 || (pid = fork()) == -1) {
		seterr(err, len, "unable to run tar: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		dup2(null, STDIN_FILENO);
		dup2(p[1], STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	if ((f = fdopen(p[0], "r")) == NULL) {
		close(p[0]);
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		seterr(err, len, "out of memory");
		return -1;
	}
	while ((n = getline(&line, &cap, f)) != -1) {
		const char *m = line;

		if (n > 0 && line[n - 1] == '\n')
			line[n - 1] = '\0';
		members++;
		if (member_unsafe(line)) {
			bad = strdup(line);
			break;
		}
		if (strncmp(m, "./", 2) == 0)
			m += 2;
		if (strcmp(m, "manifest.json") == 0)
			docker = 1;
		else if (strcmp(m, "oci-layout") == 0)
			oci = 1;
	}
	free(line);
	fclose(f);
	if (bad != NULL)
		kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	if (bad != NULL) {
		seterr(err, len, "refusing %s: member \"%s\" is absolute or contains"
		    " \"..\"", file, bad);
		free(bad);
		return -1;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		seterr(err, len, "%s: not a tarball tar can read (tar -t failed)", file);
		return -1;
	}
	if (members == 0) {
		seterr(err, len, "%s: empty archive", file);
		return -1;
	}
	*kind = oci ? K_OCI_ARCHIVE : docker ? K_DOCKER_ARCHIVE : K_TAR;
	return 0;
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

/* What src is: its kind, and for "LAYOUT:TAG" the layout path and tag. */
static int
classify(const char *src, enum kind *kind, char **path, char **tag, char *err,
    size_t len)
{
	struct stat sb;
	const char *colon;

	*tag = NULL;
	if (stat(src, &sb) == 0) {
		if ((*path = realpath(src, NULL)) == NULL) {
			seterr(err, len, "unable to resolve %s: %s", src, strerror(errno));
			return -1;
		}
		if (S_ISDIR(sb.st_mode)) {
			*kind = is_oci_layout(src) ? K_OCI : K_DIR;
			return 0;
		}
		if (S_ISREG(sb.st_mode) && check_tar(*path, kind, err, len) == 0)
			return 0;
		if (!S_ISREG(sb.st_mode))
			seterr(err, len, "%s: neither a directory nor a tarball", src);
		free(*path);
		*path = NULL;
		return -1;
	}
	/* LAYOUT:TAG, an OCI layout and one of its tags. */
	if ((colon = strrchr(src, ':')) != NULL && colon[1] != '\0' &&
	    strchr(colon, '/') == NULL) {
		char *dir = strndup(src, (size_t)(colon - src));

		if (dir != NULL && is_oci_layout(dir)) {
			*kind = K_OCI;
			*path = realpath(dir, NULL);
			*tag = strdup(colon + 1);
			free(dir);
			if (*path == NULL || *tag == NULL) {
				free(*path);
				free(*tag);
				seterr(err, len, "out of memory");
				return -1;
			}
			return 0;
		}
		free(dir);
	}
	seterr(err, len, "%s: %s", src, strerror(ENOENT));
	return -1;
}

/* ---- reading an OCI layout ---- */

static json_t *
load_blob(const char *layout, const char *digest)
{
	char *path;
	json_t *j;
	json_error_t jerr;

	if (digest == NULL || strncmp(digest, "sha256:", 7) != 0 ||
	    strspn(digest + 7, "0123456789abcdef") != strlen(digest + 7))
		return NULL;
	if (asprintf(&path, "%s/blobs/sha256/%s", layout, digest + 7) == -1)
		return NULL;
	j = json_load_file(path, 0, &jerr);
	free(path);
	return j;
}

/* The manifest digest and the image config ("config" of the config blob)
 * of the one image in layout. */
static int
layout_config(const char *layout, char **digest, json_t **config)
{
	char *path;
	json_t *idx, *man = NULL, *cfg = NULL;
	json_error_t jerr;
	const char *d;
	int rc = -1;

	*digest = NULL;
	*config = NULL;
	if (asprintf(&path, "%s/index.json", layout) == -1)
		return -1;
	idx = json_load_file(path, 0, &jerr);
	free(path);
	d = json_string_value(json_object_get(json_array_get(json_object_get(idx,
	    "manifests"), 0), "digest"));
	if (d == NULL || (man = load_blob(layout, d)) == NULL)
		goto out;
	cfg = load_blob(layout, json_string_value(json_object_get(
	    json_object_get(man, "config"), "digest")));
	if (cfg == NULL)
		goto out;
	*digest = strdup(d);
	*config = json_incref(json_object_get(cfg, "config"));
	if (*config == NULL || json_is_null(*config)) {
		json_decref(*config);
		*config = json_object();
	}
	rc = 0;
out:
	json_decref(idx);
	json_decref(man);
	json_decref(cfg);
	return rc;
}

/* ---- applying the image config ---- */

static int
open_in_root(int rootfd, const char *path, int flags)
{
	struct open_how how = { 0 };

	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

static bool
numeric(const char *s)
{
	return *s != '\0' && strspn(s, "0123456789") == strlen(s) && strlen(s) < 10;
}

/* Field 3 (and 4) of the line of file whose first field is name: -1 none. */
static int
db_lookup(int rootfd, const char *file, const char *name, long *id, long *id2)
{
	int fd = open_in_root(rootfd, file, O_RDONLY);
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	int rc = -1;

	if (fd == -1 || (f = fdopen(fd, "r")) == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	while (getline(&line, &cap, f) != -1) {
		char *save = NULL, *fields[4];
		int n = 0;

		for (char *p = strtok_r(line, ":\n", &save); p != NULL && n < 4;
		    p = strtok_r(NULL, ":\n", &save))
			fields[n++] = p;
		/* "name:x:uid:gid" and "group:x:gid" ("x" may be empty, which
		 * strtok skips: rare in images; not handled). */
		if (n >= 3 && strcmp(fields[0], name) == 0 && numeric(fields[2])) {
			*id = atol(fields[2]);
			if (id2 != NULL)
				*id2 = n >= 4 && numeric(fields[3]) ? atol(fields[3]) : 0;
			rc = 0;
			break;
		}
	}
	free(line);
	fclose(f);
	return rc;
}

/* User "u", "u:g", by name or number, to uid and gid as Docker does: a
 * name must be in the image's /etc/passwd (its group in /etc/group); a
 * uid alone gets its passwd entry's group, else 0. */
static int
resolve_user(int rootfd, const char *user, long *uid, long *gid, char *err,
    size_t len)
{
	char *u = strdup(user), *g;
	long pgid = 0, dummy;
	int rc = -1;

	if (u == NULL)
		return -1;
	if ((g = strchr(u, ':')) != NULL)
		*g++ = '\0';
	*uid = 0;
	*gid = 0;
	if (numeric(u)) {
		*uid = atol(u);
		/* The passwd entry of that uid gives the group: scanned by
		 * name is what we can do cheaply; numeric users rarely need it. */
	} else if (db_lookup(rootfd, "/etc/passwd", u, uid, &pgid) == -1) {
		seterr(err, len, "image config User \"%s\": no user \"%s\" in the"
		    " image's /etc/passwd", user, u);
		goto out;
	}
	*gid = pgid;
	if (g != NULL && numeric(g))
		*gid = atol(g);
	else if (g != NULL && db_lookup(rootfd, "/etc/group", g, gid, &dummy) == -1) {
		seterr(err, len, "image config User \"%s\": no group \"%s\" in the"
		    " image's /etc/group", user, g);
		goto out;
	}
	rc = 0;
out:
	free(u);
	return rc;
}

/* WorkingDir must exist in a read-only root: made here (as Docker does),
 * one component at a time, never through a link. */
static int
make_cwd(int rootfd, const char *cwd, char *err, size_t len)
{
	char *copy = strdup(cwd), *save = NULL;
	int fd = dup(rootfd), rc = -1;

	if (copy == NULL || fd == -1)
		goto out;
	for (char *c = strtok_r(copy, "/", &save); c != NULL;
	    c = strtok_r(NULL, "/", &save)) {
		struct open_how how = { 0 };
		int nfd;

		if (strcmp(c, ".") == 0)
			continue;
		if (strcmp(c, "..") == 0) {
			seterr(err, len, "image config WorkingDir \"%s\" contains \"..\"",
			    cwd);
			goto out;
		}
		if (mkdirat(fd, c, 0755) == -1 && errno != EEXIST) {
			seterr(err, len, "unable to create WorkingDir %s: %s", cwd,
			    strerror(errno));
			goto out;
		}
		how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
		if ((nfd = (int)syscall(SYS_openat2, fd, c, &how, sizeof(how))) == -1) {
			/* A link: fine if it leads to a directory in the root. */
			char *rest = strndup(cwd, (size_t)(c - copy) + strlen(c));

			if (rest != NULL && (nfd = open_in_root(rootfd, rest,
			    O_PATH | O_DIRECTORY)) != -1) {
				free(rest);
				close(fd);
				fd = nfd;
				continue;
			}
			free(rest);
			seterr(err, len, "WorkingDir %s: %s is not a directory", cwd, c);
			goto out;
		}
		close(fd);
		fd = nfd;
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	free(copy);
	return rc;
}

/* {env, cwd, user, uid, gid} from the image config, checked against the
 * rootfs. NULL with err. */
static json_t *
run_config(const char *rootfs, json_t *ic, char *err, size_t len)
{
	json_t *out = json_object(), *env = json_array(), *v;
	const char *cwd = json_string_value(json_object_get(ic, "WorkingDir"));
	const char *user = json_string_value(json_object_get(ic, "User"));
	long uid = 0, gid = 0;
	size_t i;
	int rootfd;

	json_array_foreach(json_object_get(ic, "Env"), i, v)
		if (json_is_string(v) && strchr(json_string_value(v), '=') != NULL)
			json_array_append(env, v);
	json_object_set_new(out, "env", env);
	if ((rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1) {
		seterr(err, len, "unable to open %s: %s", rootfs, strerror(errno));
		json_decref(out);
		return NULL;
	}
	if (cwd != NULL && *cwd != '\0') {
		if (make_cwd(rootfd, cwd, err, len) == -1)
			goto fail;
		json_object_set_new(out, "cwd", json_pack("s++", *cwd == '/' ? "" : "/",
		    cwd, ""));
	}
	if (user != NULL && *user != '\0') {
		if (resolve_user(rootfd, user, &uid, &gid, err, len) == -1)
			goto fail;
		json_object_set_new(out, "user", json_string(user));
	}
	json_object_set_new(out, "uid", json_integer(uid));
	json_object_set_new(out, "gid", json_integer(gid));
	close(rootfd);
	return out;
fail:
	close(rootfd);
	json_decref(out);
	return NULL;
}

/* ---- the store ---- */

static void
rfc3339(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The start time of a live (not zombie) process, else 0. */
static unsigned long long
live_start(pid_t pid)
{
	unsigned long long t;
	char state = '?';

	t = proc_start_time(pid, &state);
	return state == 'Z' || state == 'X' ? 0 : t;
}

void
imgstore_clean(const struct imgstore *s)
{
	const char *image_dir = s->image_dir;
	DIR *d = opendir(image_dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char *p, buf[64];
		unsigned long long start = 0;
		int pid = 0, alive = 0, fd;
		ssize_t n;

		if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0 &&
		    strncmp(e->d_name, RM_PREFIX, strlen(RM_PREFIX)) != 0)
			continue;
		if (asprintf(&p, "%s/%s/pid", image_dir, e->d_name) == -1)
			continue;
		/* "PID STARTTIME": the filler, unless it is gone (or a
		 * zombie) or its pid now names another process. */
		if ((fd = open(p, O_RDONLY | O_CLOEXEC)) != -1) {
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			if (n > 0) {
				buf[n] = '\0';
				if (sscanf(buf, "%d %llu", &pid, &start) == 2 && pid > 0)
					alive = live_start(pid) == start;
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
 * the caller to remove). */
static int
place(const char *tmp, const char *dest, char *err, size_t len)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EEXIST &&
	    renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_EXCHANGE) == 0)
		return 0;
	seterr(err, len, "unable to move the image into %s: %s", dest,
	    strerror(errno));
	return -1;
}

struct fill {
	const struct imgstore *s;
	const char *name;
	char safe[IMAGE_SAFE_MAX + 1];
	char *tmp, *rootfs, *layout, *dest;
};

static void
fill_free(struct fill *f)
{
	if (f->tmp != NULL)
		remove_tree(f->tmp);	/* the failed fill, or the replaced image */
	free(f->tmp);
	free(f->rootfs);
	free(f->layout);
	free(f->dest);
}

/* A private directory for a new image. */
static int
fill_start(struct fill *f, const struct imgstore *s, const char *name, char *err,
    size_t len)
{
	const char *why;
	char *pid;
	int fd;

	memset(f, 0, sizeof(*f));
	f->s = s;
	f->name = name;
	if ((why = image_name_check(name)) != NULL) {
		seterr(err, len, "refusing image name: %s", why);
		return -1;
	}
	if (image_safe_name(name, f->safe, sizeof(f->safe)) == -1) {
		seterr(err, len, "refusing image name: %s", strerror(errno));
		return -1;
	}
	/* The store is readable, as a runtime (and a user namespace) needs. */
	if (daemon_mkdirs(s->image_dir, 0755) == -1) {
		seterr(err, len, "unable to create %s: %s", s->image_dir,
		    strerror(errno));
		return -1;
	}
	imgstore_clean(s);
	if (asprintf(&f->tmp, "%s/" TMP_PREFIX "XXXXXX", s->image_dir) == -1) {
		f->tmp = NULL;
		return -1;
	}
	if (mkdtemp(f->tmp) == NULL) {
		seterr(err, len, "unable to create a directory in %s: %s",
		    s->image_dir, strerror(errno));
		free(f->tmp);
		f->tmp = NULL;
		return -1;
	}
	if (asprintf(&f->rootfs, "%s/rootfs", f->tmp) == -1 ||
	    asprintf(&f->layout, "%s/layout", f->tmp) == -1 ||
	    asprintf(&f->dest, "%s/%s", s->image_dir, f->safe) == -1 ||
	    asprintf(&pid, "%s/pid", f->tmp) == -1) {
		seterr(err, len, "out of memory");
		return -1;
	}
	if ((fd = open(pid, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) != -1) {
		dprintf(fd, "%d %llu\n", (int)getpid(), live_start(getpid()));
		close(fd);
	}
	free(pid);
	return 0;
}

/* skopeo copy src into the private layout, then umoci unpacks it. */
static int
fill_from_image(struct fill *f, const char *src, bool pull, char *err, size_t len)
{
	struct child c = { .s = f->s, .layout = f->layout };
	char *dst = NULL, *img = NULL;
	const char *argv[24];
	int n = 0, rc = -1, st;

	if (asprintf(&dst, "oci:%s:img", f->layout) == -1 ||
	    asprintf(&img, "%s:img", f->layout) == -1)
		goto out;
	argv[n++] = "skopeo";
	argv[n++] = "--override-os";
	argv[n++] = "linux";
	argv[n++] = "copy";
	argv[n++] = "--retry-times";
	argv[n++] = "0";
	/* umoci knows gzip and plain layers: zstd ones are recompressed,
	 * gzip ones are kept as they are. */
	argv[n++] = "--dest-compress-format";
	argv[n++] = "gzip";
	if (pull) {
		if (f->s->authfile != NULL) {
			argv[n++] = "--src-authfile";
			argv[n++] = f->s->authfile;
		} else {
			/* Never the invoking user's own credentials. */
			argv[n++] = "--src-no-creds";
		}
		if (f->s->insecure)
			argv[n++] = "--src-tls-verify=false";
	}
	argv[n++] = src;
	argv[n++] = dst;
	argv[n] = NULL;
	if ((st = run_child(&c, (char *const *)(uintptr_t)argv)) != 0) {
		child_reason(&c, "skopeo copy", err, len);
		if (st == -1 || st == 127)
			seterr(err, len, "unable to run skopeo (is it installed?)");
		goto out;
	}
	{
		const char *uargv[] = { "umoci", "--log", "error", "raw", "unpack",
		    "--image", img, f->rootfs, NULL };

		if ((st = run_child(&c, (char *const *)(uintptr_t)uargv)) != 0) {
			child_reason(&c, "umoci unpack", err, len);
			if (st == -1 || st == 127)
				seterr(err, len, "unable to run umoci (is it installed?)");
			goto out;
		}
	}
	if (f->s->progress != NULL) {
		c.p.done = true;
		tick(&c);
	}
	rc = 0;
out:
	free(dst);
	free(img);
	return rc;
}

static int
fill_from_tar(struct fill *f, const char *file, char *err, size_t len)
{
	struct child c = { .s = f->s };
	const char *argv[] = { "tar", "-x", "-f", file, "-C", f->rootfs,
	    "--no-overwrite-dir", NULL };

	if (mkdir(f->rootfs, 0755) == -1) {
		seterr(err, len, "unable to create %s: %s", f->rootfs, strerror(errno));
		return -1;
	}
	if (run_child(&c, (char *const *)(uintptr_t)argv) != 0) {
		child_reason(&c, "tar -x", err, len);
		return -1;
	}
	return 0;
}

static int
fill_from_dir(struct fill *f, const char *dir, char *err, size_t len)
{
	struct child c = { .s = f->s };
	char *src;
	int rc;

	if (mkdir(f->rootfs, 0755) == -1) {
		seterr(err, len, "unable to create %s: %s", f->rootfs, strerror(errno));
		return -1;
	}
	if (asprintf(&src, "%s/.", dir) == -1)
		return -1;
	{
		const char *argv[] = { "cp", "-a", "--", src, f->rootfs, NULL };

		if ((rc = run_child(&c, (char *const *)(uintptr_t)argv)) != 0)
			child_reason(&c, "cp -a", err, len);
	}
	free(src);
	return rc == 0 ? 0 : -1;
}

static int
write_json(const char *path, json_t *o)
{
	FILE *f;
	int rc = -1;

	if ((f = fopen(path, "we")) != NULL) {
		rc = json_print(f, o, 2);
		if (fclose(f) == EOF)
			rc = -1;
	}
	return rc;
}

/* Cleans, describes and places the filled tree. */
static int
fill_finish(struct fill *f, enum kind kind, const char *src, json_t **meta,
    char *err, size_t len)
{
	char when[32], *path = NULL, *digest = NULL;
	json_t *ic = NULL, *rc_cfg = NULL, *o = NULL;
	unsigned long long size;
	int rc = -1;

	if (sanitize(f->rootfs, &size, err, len) == -1)
		goto out;
	if (kind != K_DIR && kind != K_TAR) {
		if (layout_config(f->layout, &digest, &ic) == -1) {
			seterr(err, len, "the image's manifest or config cannot be read");
			goto out;
		}
		remove_tree(f->layout);	/* the rootfs is all a task needs */
	}
	if ((rc_cfg = run_config(f->rootfs, ic, err, len)) == NULL)
		goto out;
	rfc3339(time(NULL), when, sizeof(when));
	o = json_pack("{s:s, s:I, s:o, s:s, s:s, s:s, s:O}", "name", f->name,
	    "size", (json_int_t)size, "digest", json_str_or_null(digest),
	    "imported_at", when, "source", src, "kind", kind_names[kind],
	    "config", rc_cfg);
	if (o == NULL || asprintf(&path, "%s/" IMGSTORE_META, f->tmp) == -1 ||
	    write_json(path, o) == -1) {
		seterr(err, len, "unable to write the image's metadata");
		goto out;
	}
	free(path);
	path = NULL;
	if (asprintf(&path, "%s/pid", f->tmp) != -1)
		(void)unlink(path);
	/* Clean now: open to the runtime and the task's users. */
	if (chmod(f->tmp, 0755) == -1 || place(f->tmp, f->dest, err, len) == -1)
		goto out;
	if (meta != NULL)
		*meta = json_incref(o);
	rc = 0;
out:
	free(path);
	free(digest);
	json_decref(ic);
	json_decref(rc_cfg);
	json_decref(o);
	return rc;
}

int
imgstore_import(const struct imgstore *s, const char *name, const char *src,
    json_t **meta, char *err, size_t errlen)
{
	struct fill f;
	enum kind kind;
	char *path = NULL, *tag = NULL, *ref = NULL;
	int rc = -1;

	if (fill_start(&f, s, name, err, errlen) == -1)
		goto out;
	if (classify(src, &kind, &path, &tag, err, errlen) == -1)
		goto out;
	switch (kind) {
	case K_DIR:
		rc = fill_from_dir(&f, path, err, errlen);
		break;
	case K_TAR:
		rc = fill_from_tar(&f, path, err, errlen);
		break;
	default:
		if (asprintf(&ref, "%s:%s%s%s", kind == K_DOCKER_ARCHIVE ?
		    "docker-archive" : kind == K_OCI_ARCHIVE ? "oci-archive" : "oci",
		    path, tag ? ":" : "", tag ? tag : "") == -1) {
			ref = NULL;
			goto out;
		}
		rc = fill_from_image(&f, ref, false, err, errlen);
		break;
	}
	if (rc == 0)
		rc = fill_finish(&f, kind, path, meta, err, errlen);
	if (rc == 0)
		(void)imgstore_prune(s, name);
out:
	fill_free(&f);
	free(path);
	free(tag);
	free(ref);
	return rc;
}

int
imgstore_pull(const struct imgstore *s, const char *ref, json_t **meta,
    char *err, size_t errlen)
{
	struct fill f;
	char host[256], *src = NULL;
	int rc = -1;

	if (imgstore_registry(ref, host, sizeof(host)) == -1) {
		seterr(err, errlen, "\"%s\" is not an image reference", ref);
		return -1;
	}
	if (fill_start(&f, s, ref, err, errlen) == -1)
		goto out;
	if (asprintf(&src, "docker://%s", ref) == -1) {
		src = NULL;
		goto out;
	}
	if (fill_from_image(&f, src, true, err, errlen) == 0 &&
	    fill_finish(&f, K_REGISTRY, ref, meta, err, errlen) == 0)
		rc = 0;
	if (rc == 0)
		(void)imgstore_prune(s, ref);
out:
	fill_free(&f);
	free(src);
	return rc;
}

/* ---- reading the store ---- */

json_t *
imgstore_meta(const char *image_dir, const char *name)
{
	char safe[IMAGE_SAFE_MAX + 1], *path;
	json_t *m;
	json_error_t jerr;

	if (image_safe_name(name, safe, sizeof(safe)) == -1 ||
	    asprintf(&path, "%s/%s/" IMGSTORE_META, image_dir, safe) == -1)
		return NULL;
	m = json_load_file(path, 0, &jerr);
	free(path);
	return json_is_object(m) ? m : (json_decref(m), NULL);
}

void
imgstore_touch(const char *image_dir, const char *name)
{
	char safe[IMAGE_SAFE_MAX + 1], *path;
	int fd;

	if (image_safe_name(name, safe, sizeof(safe)) == -1 ||
	    asprintf(&path, "%s/%s/" IMGSTORE_USED, image_dir, safe) == -1)
		return;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644)) != -1) {
		(void)futimens(fd, NULL);
		close(fd);
	}
	free(path);
}

/* Whether a task bundle in tasks_dir has rootfs as its root. */
static bool
in_use(const struct imgstore *s, const char *rootfs)
{
	DIR *d;
	struct dirent *e;
	bool used = false;

	if (s->tasks_dir == NULL || (d = opendir(s->tasks_dir)) == NULL)
		return false;
	while (!used && (e = readdir(d)) != NULL) {
		char *p;
		json_t *c;
		json_error_t jerr;

		if (e->d_name[0] == '.' ||
		    asprintf(&p, "%s/%s/config.json", s->tasks_dir, e->d_name) == -1)
			continue;
		c = json_load_file(p, 0, &jerr);
		free(p);
		p = (char *)(uintptr_t)json_string_value(json_object_get(
		    json_object_get(c, "root"), "path"));
		used = p != NULL && strcmp(p, rootfs) == 0;
		json_decref(c);
	}
	closedir(d);
	return used;
}

static json_t *
entry(const struct imgstore *s, const char *safe)
{
	char *dir = NULL, *rootfs = NULL, *path = NULL, when[32];
	json_t *meta = NULL, *o = NULL, *v;
	json_error_t jerr;
	struct stat sb;

	if (asprintf(&dir, "%s/%s", s->image_dir, safe) == -1)
		return NULL;
	if (asprintf(&rootfs, "%s/rootfs", dir) == -1) {
		rootfs = NULL;
		goto out;
	}
	if (stat(rootfs, &sb) == -1 || !S_ISDIR(sb.st_mode))
		goto out;	/* not an image */
	if (asprintf(&path, "%s/" IMGSTORE_META, dir) == -1) {
		path = NULL;
		goto out;
	}
	meta = json_load_file(path, 0, &jerr);
	/* An image put there by hand has no metadata: its directory name and
	 * what can be seen of it. */
	o = json_pack("{s:s, s:s}", "name", json_string_value(json_object_get(meta,
	    "name")) ?: safe, "path", rootfs);
	if (o == NULL)
		goto out;
	static const char *const copied[] = { "size", "digest", "imported_at",
	    "kind", "source" };
	for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++) {
		v = json_object_get(meta, copied[i]);
		json_object_set(o, copied[i], v ? v : json_null());
	}
	free(path);
	if (asprintf(&path, "%s/" IMGSTORE_USED, dir) != -1 && stat(path, &sb) == 0) {
		rfc3339(sb.st_mtime, when, sizeof(when));
		json_object_set_new(o, "last_used", json_string(when));
	} else
		json_object_set_new(o, "last_used", json_null());
	json_object_set_new(o, "in_use", json_boolean(in_use(s, rootfs)));
out:
	json_decref(meta);
	free(path);
	free(rootfs);
	free(dir);
	return o;
}

static int
name_cmp(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;

	return strcmp(json_string_value(json_object_get(x, "name")),
	    json_string_value(json_object_get(y, "name")));
}

json_t *
imgstore_list(const struct imgstore *s)
{
	json_t *arr = json_array(), **v, *e;
	struct dirent *de;
	size_t n, i;
	DIR *d;

	if ((d = opendir(s->image_dir)) == NULL)
		return arr;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((e = entry(s, de->d_name)) != NULL)
			json_array_append_new(arr, e);
	}
	closedir(d);
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
	return arr;
}

/* Moves the image aside (one rename, so a task never sees part of it),
 * then removes it. */
static int
remove_safe(const struct imgstore *s, const char *safe, const char *rootfs,
    char *err, size_t len)
{
	char *dir = NULL, *tmp = NULL;
	int rc = -1;

	if (in_use(s, rootfs)) {
		seterr(err, len, "in use by a task");
		return -1;
	}
	if (asprintf(&dir, "%s/%s", s->image_dir, safe) == -1 ||
	    asprintf(&tmp, "%s/" RM_PREFIX "%s", s->image_dir, safe) == -1)
		goto out;
	remove_tree(tmp);
	if (rename(dir, tmp) == -1) {
		seterr(err, len, "unable to move %s aside: %s", dir, strerror(errno));
		goto out;
	}
	remove_tree(tmp);
	rc = 0;
out:
	free(dir);
	free(tmp);
	return rc;
}

int
imgstore_remove(const struct imgstore *s, const char *name, char *err,
    size_t errlen)
{
	char safe[IMAGE_SAFE_MAX + 1], *rootfs;
	struct stat sb;
	int rc;

	if (image_safe_name(name, safe, sizeof(safe)) == -1) {
		seterr(err, errlen, "refusing image name");
		return -1;
	}
	if (asprintf(&rootfs, "%s/%s/rootfs", s->image_dir, safe) == -1)
		return -1;
	if (stat(rootfs, &sb) == -1) {
		free(rootfs);
		return 1;
	}
	rc = remove_safe(s, safe, rootfs, err, errlen);
	free(rootfs);
	return rc;
}

static int
disk_percent(const char *path)
{
	struct statvfs v;
	unsigned long long used, avail;

	if (statvfs(path, &v) == -1 || v.f_blocks == 0)
		return 0;
	used = (unsigned long long)(v.f_blocks - v.f_bfree);
	avail = (unsigned long long)v.f_bavail;
	if (used + avail == 0)
		return 0;
	/* As df(1) rounds: up. */
	return (int)((used * 100 + used + avail - 1) / (used + avail));
}

/* When an image was last used: its last-used mtime, else its import. */
static time_t
last_use(const struct imgstore *s, const char *safe)
{
	char *p;
	struct stat sb;
	time_t t = 0;

	if (asprintf(&p, "%s/%s/" IMGSTORE_USED, s->image_dir, safe) != -1) {
		if (stat(p, &sb) == 0)
			t = sb.st_mtime;
		free(p);
	}
	if (t == 0 && asprintf(&p, "%s/%s/" IMGSTORE_META, s->image_dir, safe) != -1) {
		if (stat(p, &sb) == 0)
			t = sb.st_mtime;
		free(p);
	}
	return t;
}

int
imgstore_prune(const struct imgstore *s, const char *keep)
{
	char keep_safe[IMAGE_SAFE_MAX + 1] = "", err[256];
	int removed = 0;

	if (s->max_disk_percent <= 0 || s->max_disk_percent >= 100)
		return 0;
	if (keep != NULL && image_safe_name(keep, keep_safe, sizeof(keep_safe)) == -1)
		keep_safe[0] = '\0';
	while (disk_percent(s->image_dir) > s->max_disk_percent) {
		DIR *d = opendir(s->image_dir);
		struct dirent *e;
		char best[NAME_MAX + 1] = "", *rootfs = NULL, *bestroot = NULL;
		time_t bt = 0;

		if (d == NULL)
			break;
		while ((e = readdir(d)) != NULL) {
			struct stat sb;
			time_t t;

			if (e->d_name[0] == '.' || strcmp(e->d_name, keep_safe) == 0)
				continue;
			free(rootfs);
			if (asprintf(&rootfs, "%s/%s/rootfs", s->image_dir, e->d_name) == -1) {
				rootfs = NULL;
				continue;
			}
			if (stat(rootfs, &sb) == -1 || in_use(s, rootfs))
				continue;
			t = last_use(s, e->d_name);
			if (best[0] == '\0' || t < bt) {
				snprintf(best, sizeof(best), "%s", e->d_name);
				bt = t;
				free(bestroot);
				bestroot = rootfs;
				rootfs = NULL;
			}
		}
		closedir(d);
		free(rootfs);
		if (best[0] == '\0') {
			free(bestroot);
			log_warnx("%s is %d%% full (resources.max_disk_usage_percent"
			    " = %d) and every image left is in use", s->image_dir,
			    disk_percent(s->image_dir), s->max_disk_percent);
			break;
		}
		if (remove_safe(s, best, bestroot, err, sizeof(err)) == -1) {
			log_warnx("unable to remove image %s: %s", best, err);
			free(bestroot);
			break;
		}
		log_info("removed image %s, the least recently used, to keep %s under"
		    " %d%%", best, s->image_dir, s->max_disk_percent);
		free(bestroot);
		removed++;
	}
	return removed;
}

/* ---- references ---- */

int
imgstore_registry(const char *ref, char *host, size_t len)
{
	const char *slash;
	size_t n;

	if (ref == NULL || *ref == '\0' || strstr(ref, "://") != NULL ||
	    image_name_check(ref) != NULL || *ref == '/' || strstr(ref, "//") != NULL ||
	    ref[strlen(ref) - 1] == '/')
		return -1;
	for (const char *p = ref; *p; p++)
		if (isspace((unsigned char)*p))
			return -1;
	slash = strchr(ref, '/');
	n = slash ? (size_t)(slash - ref) : 0;
	/* Docker's rule: the first component is a host when it has a '.'
	 * or a ':' or is "localhost". */
	if (slash != NULL && (memchr(ref, '.', n) != NULL || memchr(ref, ':', n) != NULL ||
	    (n == 9 && strncmp(ref, "localhost", 9) == 0))) {
		if (n == 0 || n >= len)
			return -1;
		memcpy(host, ref, n);
		host[n] = '\0';
		return 0;
	}
	snprintf(host, len, "docker.io");
	return 0;
}

bool
imgstore_host_listed(const char *host, char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(host, list[i]) == 0)
			return true;
	return false;
}

/* ---- credentials ---- */

int
imgstore_authfile(const struct manta_cfg *c, char *fdpath, size_t fdlen, char *err,
    size_t errlen)
{
	struct stat sb;
	char why[700];
	int fd;

	if (c->registry_auth == NULL)
		return -2;
	if (stat(c->registry_auth, &sb) == -1) {
		seterr(err, errlen, "containers.registry_auth %s: %s", c->registry_auth,
		    strerror(errno));
		return -1;
	}
	/* Like ssh with a private key: credentials others can read are
	 * credentials that have leaked. */
	if (!S_ISREG(sb.st_mode) || (sb.st_mode & 077) != 0 || sb.st_uid != geteuid()) {
		seterr(err, errlen, "containers.registry_auth %s: must be a regular file"
		    " of ours with mode 0600 (it is %04o)", c->registry_auth,
		    (unsigned)(sb.st_mode & 07777));
		return -1;
	}
	if ((fd = secret_file_memfd(c->secret_key, c->registry_auth, 0600, fdpath,
	    fdlen, NULL, why, sizeof(why))) == -1) {
		seterr(err, errlen, "containers.registry_auth: %s", why);
		return -1;
	}
	return fd;
}
