/* mantactl audit show|verify: the node's audit trail, <state_dir>/audit.log
 * (libcommon/audit.h; format and hash in mantactl(8), AUDIT). Both read the
 * file directly: the node need not run. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit.h"
#include "json.h"
#include "log.h"
#include "mantactl.h"

#define AUDIT_USAGE "audit show [NAME] [-c FILE] [--json] | audit verify [NAME] [-c FILE]"

static bool
member_hidden(const char *k)
{
	return strcmp(k, "seq") == 0 || strcmp(k, "time") == 0 ||
	    strcmp(k, "event") == 0 || strcmp(k, "prev") == 0 || strcmp(k, "hash") == 0;
}

/* Control characters as '?': an entry may quote what a peer sent. */
static void
put_clean(const char *s)
{
	for (; *s != '\0'; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static void
print_human(json_t *o)
{
	const char *k;
	json_t *v;

	printf("%6" JSON_INTEGER_FORMAT "  %-24s  ", json_integer_value(json_object_get(o, "seq")),
	    json_string_value(json_object_get(o, "time")) ?
	    json_string_value(json_object_get(o, "time")) : "?");
	put_clean(json_string_value(json_object_get(o, "event")) ?
	    json_string_value(json_object_get(o, "event")) : "?");
	json_object_foreach(o, k, v) {
		char *enc;

		if (member_hidden(k))
			continue;
		printf(" ");
		put_clean(k);
		printf("=");
		if (json_is_string(v))
			put_clean(json_string_value(v));
		else if ((enc = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
		    JSON_PRESERVE_ORDER)) != NULL) {
			put_clean(enc);
			free(enc);
		}
	}
	printf("\n");
}

static int
show(const char *path, bool as_json)
{
	char *line = NULL;
	size_t cap = 0;
	uint64_t lineno = 0, shown = 0;
	long long size = 0, done = 0;
	ssize_t len;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL && errno != ENOENT) {
		fprintf(stderr, "mantactl: fatal: unable to open %s: %s\n", path,
		    strerror(errno));
		return CTL_FAIL;
	}
	if (f != NULL && (size = audit_settled_size(fileno(f))) == -1) {
		fprintf(stderr, "mantactl: fatal: unable to lock %s: %s\n", path,
		    strerror(errno));
		fclose(f);
		return CTL_FAIL;
	}
	if (as_json)
		printf("[");
	while (f != NULL && done < size && (len = getline(&line, &cap, f)) != -1) {
		json_t *o;

		lineno++;
		done += len;
		o = json_loadb(line, (size_t)len, 0, NULL);
		if (!json_is_object(o) || !json_is_integer(json_object_get(o, "seq"))) {
			json_decref(o);
			fprintf(stderr, "mantactl: warning: %s: line %" PRIu64
			    " is not an entry (see mantactl audit verify)\n", path, lineno);
			continue;
		}
		if (as_json) {
			printf("%s\n", shown ? "," : "");
			json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
		} else
			print_human(o);
		shown++;
		json_decref(o);
	}
	if (as_json)
		printf("%s]\n", shown ? "\n" : "");
	free(line);
	if (f != NULL)
		fclose(f);
	if (fflush(stdout) == EOF)
		return CTL_FAIL;
	return CTL_OK;
}

static int
verify(const char *path)
{
	char err[512], last[AUDIT_HASH_HEX + 1];
	uint64_t n, bad;

	if (audit_verify(path, &n, &bad, last, err, sizeof(err)) == -1) {
		if (bad == 0)
			fprintf(stderr, "mantactl: fatal: %s\n", err);
		else
			fprintf(stderr, "mantactl: fatal: %s: %s (%" PRIu64
			    " good entries before it)\n", path, err, n);
		return CTL_FAIL;
	}
	/* The last hash is what an operator keeps elsewhere: removing
	 * entries from the end shows only against it. */
	printf("ok %" PRIu64 " entries", n);
	if (n > 0)
		printf(", last hash %s", last);
	printf("\n");
	return CTL_OK;
}

int
cmd_audit(int argc, char **argv)
{
	struct ctl_args a;
	struct manta_cfg *c;
	char *path;
	bool is_show;
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: mantactl %s\n", AUDIT_USAGE);
		return CTL_USAGE;
	}
	if (strcmp(argv[1], "show") == 0)
		is_show = true;
	else if (strcmp(argv[1], "verify") == 0)
		is_show = false;
	else if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		printf("usage: mantactl %s\n", AUDIT_USAGE);
		return CTL_OK;
	} else {
		fprintf(stderr, "usage: mantactl %s\n", AUDIT_USAGE);
		return CTL_USAGE;
	}
	ctl_options_first(argc - 1, argv + 1);
	if ((rc = ctl_parse(argc - 1, argv + 1, AUDIT_USAGE, 0, &a)) != 0)
		return rc;
	if (!is_show && a.json) {
		fprintf(stderr, "usage: mantactl %s\n", AUDIT_USAGE);
		return CTL_USAGE;
	}
	if ((c = ctl_load_config(&a)) == NULL)
		return CTL_FAIL;
	if (asprintf(&path, "%s/%s", c->state_dir, AUDIT_FILE) == -1) {
		cfg_free(c);
		return CTL_FAIL;
	}
	rc = is_show ? show(path, a.json) : verify(path);
	free(path);
	cfg_free(c);
	return rc;
}
