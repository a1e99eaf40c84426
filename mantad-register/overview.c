/* overview: one Overview per datasets.mappings entry (WIRE.md section 7),
 * sent with RegisterNode and SetOverviews. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "log.h"
#include "register.h"

const char *
overview_dtype(const char *path, bool is_dir)
{
	static const struct { const char *suffix, *dtype; } types[] = {
		{ "txt", "text" }, { "csv", "csv" },
		{ "npx", "numpy" }, { "npy", "numpy" }, { "npz", "numpy" }, { "np", "numpy" },
		{ "jpg", "image" }, { "jpeg", "image" }, { "png", "image" },
		{ "tif", "image" }, { "tiff", "image" }, { "bin", "binary" },
	};
	const char *base, *dot;

	if (is_dir)
		return "folder";
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	if (dot == NULL || dot == base)
		return "binary";
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(dot + 1, types[i].suffix) == 0)
			return types[i].dtype;
	return "binary";
}

/* The mapping's path as the node opens it: ~ expanded, relative paths
 * under datasets.base_path. */
static char *
resolve(const struct manta_cfg *c, const char *path)
{
	const char *home = getenv("HOME");

	if (path[0] == '~' && (path[1] == '/' || path[1] == '\0') && home != NULL)
		return path_join(home, path[1] ? path + 2 : "");
	if (path[0] != '/' && c->base_path != NULL)
		return path_join(c->base_path, path);
	return strdup(path);
}

/* The last component of path (Python's Path(p).name): its start, and its
 * length in *n; trailing slashes are not part of it. */
static const char *
last_name(const char *path, size_t *n)
{
	size_t len = strlen(path);
	const char *base;

	while (len > 1 && path[len - 1] == '/')
		len--;
	base = path + len;
	while (base > path && base[-1] != '/')
		base--;
	*n = (size_t)(path + len - base);
	return base;
}

/* Python's Path(p).stem for files, Path(p).name for folders. */
static char *
display_name(const char *path, bool is_dir)
{
	size_t n;
	const char *base = last_name(path, &n);
	char *s, *dot;

	if ((s = strndup(base, n)) == NULL)
		return NULL;
	if (!is_dir && (dot = strrchr(s, '.')) != NULL && dot != s)
		*dot = '\0';
	return s;
}

/* WIRE.md section 7: "File in <file name>" (the name with its suffix,
 * Python's Path(p).name), "Folder in <folder name>". */
static char *
describe(const char *path, bool is_dir)
{
	size_t n;
	const char *base = last_name(path, &n);
	char *s;

	if (asprintf(&s, "%s in %.*s", is_dir ? "Folder" : "File", (int)n, base) == -1)
		return NULL;
	return s;
}

Common__Informations__Overviews *
overviews_build(const struct manta_cfg *c)
{
	Common__Informations__Overviews *o;

	if ((o = calloc(1, sizeof(*o))) == NULL)
		return NULL;
	common__informations__overviews__init(o);
	if (c->nmappings == 0)
		return o;
	if ((o->content = calloc(c->nmappings, sizeof(*o->content))) == NULL)
		goto fail;
	for (size_t i = 0; i < c->nmappings; i++) {
		Common__Informations__Overview *ov;
		struct stat st;
		char *full;
		bool dir;

		if ((full = resolve(c, c->mappings[i].path)) == NULL)
			goto fail;
		dir = stat(full, &st) == 0 && S_ISDIR(st.st_mode);
		if ((ov = calloc(1, sizeof(*ov))) == NULL) {
			free(full);
			goto fail;
		}
		common__informations__overview__init(ov);
		o->content[o->n_content++] = ov;
		ov->name = display_name(full, dir);
		ov->description = describe(full, dir);
		ov->dtype = strdup(overview_dtype(full, dir));
		free(full);
		if (ov->name == NULL || ov->description == NULL || ov->dtype == NULL)
			goto fail;
	}
	return o;
fail:
	log_warnx("out of memory building dataset overviews");
	overviews_free(o);
	return NULL;
}

void
overviews_free(Common__Informations__Overviews *o)
{
	if (o == NULL)
		return;
	for (size_t i = 0; i < o->n_content; i++) {
		free(o->content[i]->name);
		free(o->content[i]->description);
		free(o->content[i]->dtype);
		free(o->content[i]);
	}
	free(o->content);
	free(o);
}
