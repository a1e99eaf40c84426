/* mantactl image import|pull|ls|rm: the local image store,
 * <containers.image_dir>; its layout and safety rules are in
 * libcommon/imgstore.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "image.h"
#include "imgstore.h"
#include "json.h"
#include "log.h"
#include "mantactl.h"

#define IMAGE_USAGE \
	"image import [NODE] NAME DIR_OR_TAR | image pull [NODE] REF |" \
	" image ls [NODE] [--json] | image rm [NODE] NAME [-c FILE]"

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

static void
progress(void *arg, const struct imgstore_progress *p)
{
	const char *ref = arg;

	fprintf(stderr, "\rpulling %s: %u layer%s, %.1f MB%s", ref, p->layers,
	    p->layers == 1 ? "" : "s", (double)p->bytes / 1e6, p->done ? "\n" : "   ");
	fflush(stderr);
}

static void
store_of(const struct manta_cfg *c, struct imgstore *s)
{
	static char tasks[4096];

	memset(s, 0, sizeof(*s));
	s->image_dir = c->image_dir;
	snprintf(tasks, sizeof(tasks), "%s/tasks", c->state_dir);
	s->tasks_dir = tasks;
	s->max_disk_percent = c->max_disk_usage_percent;
	s->authfd = -1;
}

static void
report(const char *verb, json_t *meta, bool as_json)
{
	if (as_json || !isatty(STDOUT_FILENO)) {
		json_print(stdout, meta, 0);
		return;
	}
	printf("%s %s (%s, %lld bytes%s%s)\n", verb,
	    json_string_value(json_object_get(meta, "name")),
	    json_string_value(json_object_get(meta, "kind")),
	    (long long)json_integer_value(json_object_get(meta, "size")),
	    json_is_string(json_object_get(meta, "digest")) ? ", " : "",
	    json_string_value(json_object_get(meta, "digest")) ?: "");
}

static int
image_fill(const struct manta_cfg *c, const char *name, const char *src,
    bool as_json)
{
	struct imgstore s;
	char err[1024], pbuf[IMAGE_NAME_MAX + 1], fdpath[64];
	json_t *meta = NULL;
	int rc, fd = -2;

	store_of(c, &s);
	/* A rootfs must stay readable by the runtime and a user namespace;
	 * state_dir keeps its daemons' mode (0700) if we are first to make it. */
	umask(022);
	if (src == NULL) {
		char host[256];

		if (imgstore_registry(name, host, sizeof(host)) == -1) {
			log_errorx("\"%s\" is not an image reference",
			    printable(name, pbuf, sizeof(pbuf)));
			return CTL_FAIL;
		}
		if ((fd = imgstore_authfile(c, fdpath, sizeof(fdpath), err,
		    sizeof(err))) == -1) {
			log_errorx("%s", err);
			return CTL_FAIL;
		}
		if (fd >= 0) {
			s.authfile = fdpath;
			s.authfd = fd;
		}
		s.insecure = imgstore_host_listed(host, c->insecure_registries.v,
		    c->insecure_registries.n);
		if (!as_json && isatty(STDERR_FILENO)) {
			s.progress = progress;
			s.arg = (void *)(uintptr_t)name;
		}
		rc = imgstore_pull(&s, name, &meta, err, sizeof(err));
		if (fd >= 0)
			close(fd);
	} else
		rc = imgstore_import(&s, name, src, &meta, err, sizeof(err));
	if (rc == -1) {
		log_errorx("%s %s: %s", src ? "import of" : "pull of",
		    printable(name, pbuf, sizeof(pbuf)), err);
		return CTL_FAIL;
	}
	report(src ? "imported" : "pulled", meta, as_json);
	json_decref(meta);
	return CTL_OK;
}

static int
image_ls(const struct manta_cfg *c, bool as_json)
{
	struct imgstore s;
	json_t *arr, *e;
	size_t i;

	store_of(c, &s);
	arr = imgstore_list(&s);
	if (as_json || !isatty(STDOUT_FILENO)) {
		json_print(stdout, arr, 0);
		json_decref(arr);
		return CTL_OK;
	}
	printf("%-40s %12s  %-19s  %-20s  %-20s\n", "NAME", "SIZE", "DIGEST",
	    "IMPORTED", "LAST USED");
	json_array_foreach(arr, i, e) {
		json_t *sz = json_object_get(e, "size");
		const char *d = json_string_value(json_object_get(e, "digest"));
		char szbuf[32] = "-";

		if (json_is_integer(sz))
			snprintf(szbuf, sizeof(szbuf), "%lld", (long long)json_integer_value(sz));
		printf("%-40s %12s  %-19.19s  %-20s  %-20s%s\n",
		    json_string_value(json_object_get(e, "name")), szbuf, d ? d : "-",
		    json_string_value(json_object_get(e, "imported_at")) ?: "-",
		    json_string_value(json_object_get(e, "last_used")) ?: "-",
		    json_is_true(json_object_get(e, "in_use")) ? "  (in use)" : "");
	}
	json_decref(arr);
	return CTL_OK;
}

static int
image_rm(const struct manta_cfg *c, const char *name)
{
	struct imgstore s;
	char err[512], pbuf[IMAGE_NAME_MAX + 1];

	store_of(c, &s);
	switch (imgstore_remove(&s, name, err, sizeof(err))) {
	case 0:
		return CTL_OK;
	case 1:
		log_errorx("no image %s in %s", printable(name, pbuf, sizeof(pbuf)),
		    c->image_dir);
		return CTL_FAIL;
	default:
		log_errorx("unable to remove image %s: %s",
		    printable(name, pbuf, sizeof(pbuf)), err);
		return CTL_FAIL;
	}
}

int
cmd_image(int argc, char **argv)
{
	static const struct { const char *name; int npos; } subs[] = {
		{ "import", 2 }, { "pull", 1 }, { "ls", 0 }, { "list", 0 },
		{ "rm", 1 }, { "remove", 1 },
	};
	struct ctl_args a;
	struct manta_cfg *c;
	const char *p1 = NULL, *p2 = NULL;
	int rc, want = -1;
	size_t k;

	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		printf("usage: mantactl %s\n", IMAGE_USAGE);
		return CTL_OK;
	}
	for (k = 0; argc >= 2 && k < sizeof(subs) / sizeof(subs[0]); k++)
		if (strcmp(argv[1], subs[k].name) == 0) {
			want = subs[k].npos;
			break;
		}
	if (want < 0) {
		fprintf(stderr, "usage: mantactl %s\n", IMAGE_USAGE);
		return CTL_USAGE;
	}
	ctl_options_first(argc - 1, argv + 1);
	if ((rc = ctl_parse(argc - 1, argv + 1, IMAGE_USAGE, want, &a)) != 0)
		return rc;
	if (want > 0) {
		/* [NODE] ARGS: ctl_parse took the first positional as NODE. */
		if (a.npos == want - 1 && a.name != NULL) {
			p1 = a.name;
			p2 = want == 2 ? a.pos[0] : NULL;
			a.name = NULL;
		} else if (a.npos == want) {
			p1 = a.pos[0];
			p2 = want == 2 ? a.pos[1] : NULL;
		} else {
			fprintf(stderr, "usage: mantactl %s\n", IMAGE_USAGE);
			return CTL_USAGE;
		}
	}
	if ((c = ctl_load_config(&a)) == NULL)
		return CTL_FAIL;
	if (strcmp(subs[k].name, "import") == 0)
		rc = image_fill(c, p1, p2, a.json);
	else if (strcmp(subs[k].name, "pull") == 0)
		rc = image_fill(c, p1, NULL, a.json);
	else if (want == 0)
		rc = image_ls(c, a.json);
	else
		rc = image_rm(c, p1);
	cfg_free(c);
	return rc;
}
