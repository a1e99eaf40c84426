/* fuzz_path: the dataset paths a task sends the Light service
 * (mantad-light/paths.c): path_normalize on the raw bytes, then
 * paths_open and paths_is_file against a real tree that holds symlinks
 * out of their dataset (relative, absolute, through /proc, a loop) and a
 * file outside every dataset. Whatever opens must lie beneath its dataset
 * (beneath base_path for a dataset named under it, the file itself for a
 * file mapping), every refusal must say why, and no fd may leak.
 *
 * Input: byte 0 picks the call (bits 0-1: open O_RDONLY, O_PATH,
 * O_RDONLY|O_DIRECTORY, or paths_is_file) and the dataset name (bits 2-4:
 * one of names[], 7: read from the input up to its first '\n'); the rest
 * is the path. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/status.h>

#include "fuzz.h"
#include "light.h"
#include "log.h"

static char root[64], realbase[PATH_MAX];
static struct datasets ds;
static int fd_mark = -1;

static const char *const names[] = {
	"ds", "mapped", "mapfile", "rel", "gone", "file.csv", "ds/sub",
};

struct node {
	const char *path;
	const char *link;	/* NULL: a folder (path ends in '/') or a file */
};

static const struct node tree[] = {
	{ "secret.txt", NULL },
	{ "base/", NULL },
	{ "base/file.csv", NULL },
	{ "base/ds/", NULL },
	{ "base/ds/a.txt", NULL },
	{ "base/ds/sub/", NULL },
	{ "base/ds/sub/b.txt", NULL },
	{ "base/ds/sub/deeper/", NULL },
	{ "base/ds/sub/deeper/c.txt", NULL },
	{ "base/ds/in", "sub" },
	{ "base/ds/sibling", "../file.csv" },
	{ "base/ds/up", "../.." },
	{ "base/ds/out", "../../secret.txt" },
	{ "base/ds/abs", "/etc" },
	{ "base/ds/proc", "/proc/self/root" },
	{ "base/ds/self", "self" },
	{ "base/ds/sub/back", "../../../secret.txt" },
	{ "base/escape", "../secret.txt" },
	{ "mapped/", NULL },
	{ "mapped/m.txt", NULL },
	{ "mapped/out", "../secret.txt" },
	{ "mapped/cwd", "/proc/self/cwd" },
	{ "mapfile.txt", NULL },
};

static void
cleanup(void)
{
	char p[PATH_MAX];

	datasets_close(&ds);
	for (size_t i = sizeof(tree) / sizeof(tree[0]); i-- > 0;) {
		snprintf(p, sizeof(p), "%s/%s", root, tree[i].path);
		if (tree[i].link == NULL && p[strlen(p) - 1] == '/')
			rmdir(p);
		else
			unlink(p);
	}
	rmdir(root);
}

static void
build_tree(void)
{
	char p[PATH_MAX];

	for (size_t i = 0; i < sizeof(tree) / sizeof(tree[0]); i++) {
		int r;

		snprintf(p, sizeof(p), "%s/%s", root, tree[i].path);
		if (tree[i].link != NULL)
			r = symlink(tree[i].link, p);
		else if (p[strlen(p) - 1] == '/')
			r = mkdir(p, 0700);
		else {
			int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

			r = fd == -1 ? -1 : (int)write(fd, tree[i].path, strlen(tree[i].path));
			if (fd != -1)
				close(fd);
		}
		if (r == -1) {
			fprintf(stderr, "fuzz_path: unable to create %s: %s\n", p, strerror(errno));
			exit(1);
		}
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct manta_cfg c;
	struct cfg_mapping maps[4];
	char base[PATH_MAX], mapped[PATH_MAX], mapfile[PATH_MAX], gone[PATH_MAX];

	log_init("fuzz_path", LOG_LVL_ERROR);
	snprintf(root, sizeof(root), "/tmp/manta-fuzz-path.XXXXXX");
	if (mkdtemp(root) == NULL) {
		perror("fuzz_path: mkdtemp");
		exit(1);
	}
	atexit(cleanup);
	build_tree();
	snprintf(base, sizeof(base), "%s/base", root);
	snprintf(mapped, sizeof(mapped), "%s/mapped", root);
	snprintf(mapfile, sizeof(mapfile), "%s/mapfile.txt", root);
	snprintf(gone, sizeof(gone), "%s/gone", root);
	if (realpath(base, realbase) == NULL)
		exit(1);
	maps[0] = (struct cfg_mapping){ "mapped", mapped };
	maps[1] = (struct cfg_mapping){ "mapfile", mapfile };
	maps[2] = (struct cfg_mapping){ "rel", "ds/sub" };	/* under base_path */
	maps[3] = (struct cfg_mapping){ "gone", gone };
	memset(&c, 0, sizeof(c));
	c.base_path = base;
	c.mappings = maps;
	c.nmappings = 4;
	if (datasets_open(&ds, &c) == -1) {
		fprintf(stderr, "fuzz_path: datasets_open failed\n");
		exit(1);
	}
	/* The lowest free fd: it must be free again after every input. */
	fd_mark = open("/dev/null", O_RDONLY | O_CLOEXEC);
	close(fd_mark);
	return 0;
}

static bool
beneath(const char *p, const char *top)
{
	size_t n = strlen(top);

	return strncmp(p, top, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* The folder (or file) everything opened in dataset NAME must lie in. */
static void
dataset_top(const char *name, char *top, size_t len, bool *exact)
{
	char p[PATH_MAX];

	*exact = false;
	for (size_t i = 0; i < ds.n; i++)
		if (strcmp(ds.v[i].name, name) == 0) {
			FUZZ_ASSERT(realpath(ds.v[i].path, p) != NULL);
			*exact = ds.v[i].leaf != NULL;
			snprintf(top, len, "%s", p);
			return;
		}
	snprintf(top, len, "%s", realbase);
}

static void
check_normalize(const uint8_t *in, size_t len)
{
	char *out = malloc(len + 1), *again = malloc(len + 1);
	const char *why = NULL;

	FUZZ_ASSERT(out != NULL && again != NULL);
	if (path_normalize((const char *)in, len, out, len + 1, &why) == 0) {
		size_t n = strlen(out);

		FUZZ_ASSERT(n <= len);
		FUZZ_ASSERT(memchr(in, '\0', len) == NULL && (len == 0 || in[0] != '/'));
		FUZZ_ASSERT(n == 0 || (out[0] != '/' && out[n - 1] != '/'));
		FUZZ_ASSERT(strstr(out, "//") == NULL);
		/* No "." or ".." component is left. */
		for (const char *c = out; *c;) {
			size_t k = strcspn(c, "/");

			FUZZ_ASSERT(!(k == 1 && c[0] == '.'));
			FUZZ_ASSERT(!(k == 2 && c[0] == '.' && c[1] == '.'));
			c += k;
			if (*c == '/')
				c++;
		}
		/* Normal already. */
		FUZZ_ASSERT(path_normalize(out, n, again, n + 1, &why) == 0);
		FUZZ_ASSERT(strcmp(out, again) == 0);
	} else {
		FUZZ_ASSERT(why != NULL && why[0] != '\0');
	}
	/* Too small a buffer is refused, never overrun. */
	why = NULL;
	if (len > 0 && path_normalize((const char *)in, len, out, len, &why) == -1)
		FUZZ_ASSERT(why != NULL);
	free(out);
	free(again);
}

static void
check_open(const char *name, const char *path, int how)
{
	static const int oflags[] = { O_RDONLY, O_PATH, O_RDONLY | O_DIRECTORY };
	char err[256], top[PATH_MAX], proc[64], got[PATH_MAX];
	const char *why;
	bool root_is_file, exact;
	int fd = -2, st;
	ssize_t n;

	if (how == 3) {
		(void)paths_is_file(&ds, name, path);
		return;
	}
	err[0] = '\0';
	st = paths_open(&ds, name, path, oflags[how], &fd, &root_is_file, err, sizeof(err));
	FUZZ_SAY("%s \"%s\": %d %s\n", name, path, st, st ? err : "");
	if (st != GRPC_STATUS_OK) {
		FUZZ_ASSERT(fd == -1);
		FUZZ_ASSERT(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
		/* Nothing in this tree can fail but by the rules (not found,
		 * outside, not a folder...): INTERNAL is an errno nobody
		 * expected, such as EINVAL for flags openat2 refuses. */
		if (st == GRPC_STATUS_INTERNAL)
			fprintf(stderr, "dataset %s, path \"%s\", flags %#o: %s\n",
			    name, path, (unsigned)oflags[how], err);
		FUZZ_ASSERT(st != GRPC_STATUS_INTERNAL);
		return;
	}
	FUZZ_ASSERT(fd >= 0);
	/* A path the lexical rules refuse never reaches the file system. */
	{
		char rel[4096];

		FUZZ_ASSERT(path_normalize(path, strlen(path), rel, sizeof(rel), &why) == 0);
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, got, sizeof(got) - 1);
	FUZZ_ASSERT(n > 0);
	got[n] = '\0';
	dataset_top(name, top, sizeof(top), &exact);
	if (exact ? strcmp(got, top) != 0 : !beneath(got, top)) {
		fprintf(stderr, "dataset %s, path \"%s\": opened %s, outside %s\n",
		    name, path, got, top);
		FUZZ_ASSERT(!"opened outside the dataset");
	}
	close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p;
	size_t len;
	unsigned sel;
	char *name, *path;
	int fd;

	if (size == 0)
		return 0;
	sel = data[0];
	p = data + 1;
	len = size - 1;
	check_normalize(p, len);

	if (((sel >> 2) & 7) == 7) {
		const uint8_t *nl = memchr(p, '\n', len);
		size_t nlen = nl ? (size_t)(nl - p) : len;

		name = strndup((const char *)p, nlen);
		p += nl ? nlen + 1 : nlen;
		len -= nl ? nlen + 1 : nlen;
	} else {
		name = strdup(names[((sel >> 2) & 7) % (sizeof(names) / sizeof(names[0]))]);
	}
	path = strndup((const char *)p, len);	/* gRPC strings end at a NUL here */
	FUZZ_ASSERT(name != NULL && path != NULL);
	check_open(name, path, (int)(sel & 3));
	free(name);
	free(path);

	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	FUZZ_ASSERT(fd == fd_mark);
	close(fd);
	return 0;
}
