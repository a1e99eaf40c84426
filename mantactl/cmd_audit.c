/* mantactl audit show|verify|head: the node's audit trail,
 * <state_dir>/audit.log (libcommon/audit.h; format and hash in mantactl(8),
 * AUDIT). All read the file directly: the node need not run. verify and
 * head check the keyed chain; head prints its last entry for a store
 * outside the node, and verify --head checks the chain against it. */
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

#define AUDIT_USAGE "audit show [NAME] [-c FILE] [--json] | audit verify [NAME] [-c FILE]" \
    " [--head [SEQ:]HASH] | audit head [NAME] [-c FILE] [--json]"

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
verify(const char *path, const char *head)
{
	char err[512], last[AUDIT_HASH_HEX + 1], id[AUDIT_KEY_ID_HEX + 1];
	uint64_t n, bad;

	if (audit_verify_head(path, head, &n, &bad, last, id, err, sizeof(err)) == -1) {
		if (bad == 0)
			fprintf(stderr, "mantactl: fatal: %s\n", err);
		else
			fprintf(stderr, "mantactl: fatal: %s: %s (%" PRIu64
			    " good entries before it)\n", path, err, n);
		return CTL_FAIL;
	}
	/* The last hash is what an operator keeps elsewhere (audit head):
	 * removing entries from the end shows only against it. */
	printf("ok %" PRIu64 " entries", n);
	if (n > 0)
		printf(", last hash %s", last);
	if (*id != '\0')
		printf(", keyed (chain_key %s)", id);
	else if (n > 0)
		printf(", NOT keyed");
	if (head != NULL)
		printf(", anchored head %s found", head);
	printf("\n");
	return CTL_OK;
}

/* The head of a good chain: "SEQ HASH", or JSON with the key id. */
static int
head(const char *path, bool as_json)
{
	char err[512], last[AUDIT_HASH_HEX + 1], id[AUDIT_KEY_ID_HEX + 1];
	uint64_t n, bad;
	json_t *o;

	if (audit_verify_head(path, NULL, &n, &bad, last, id, err, sizeof(err)) == -1) {
		/* Never hand out a head to anchor a chain that is not whole. */
		fprintf(stderr, "mantactl: fatal: %s: %s (mantactl audit verify)\n", path, err);
		return CTL_FAIL;
	}
	if (!as_json) {
		printf("%" PRIu64 ":%s\n", n, last);
		return fflush(stdout) == EOF ? CTL_FAIL : CTL_OK;
	}
	o = json_pack("{s:I, s:s, s:o}", "seq", (json_int_t)n, "hash", last,
	    "chain_key", *id ? json_string(id) : json_null());
	if (o == NULL)
		return CTL_FAIL;
	json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
	printf("\n");
	json_decref(o);
	return fflush(stdout) == EOF ? CTL_FAIL : CTL_OK;
}

/* Takes "--head VALUE" (or --head=VALUE) out of argv, for ctl_parse. */
static int
take_head(int *argc, char **argv, const char **value)
{
	for (int i = 1; i < *argc; i++) {
		int drop;

		if (strcmp(argv[i], "--head") == 0) {
			if (i + 1 >= *argc)
				return -1;
			*value = argv[i + 1];
			drop = 2;
		} else if (strncmp(argv[i], "--head=", 7) == 0) {
			*value = argv[i] + 7;
			drop = 1;
		} else
			continue;
		for (int j = i; j + drop <= *argc; j++)
			argv[j] = argv[j + drop];
		*argc -= drop;
		return 0;
	}
	return 0;
}

int
cmd_audit(int argc, char **argv)
{
	struct ctl_args a;
	struct manta_cfg *c;
	char *path;
	const char *anchor = NULL;
	enum { SHOW, VERIFY, HEAD } what;
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: mantactl %s\n", AUDIT_USAGE);
		return CTL_USAGE;
	}
	if (strcmp(argv[1], "show") == 0)
		what = SHOW;
	else if (strcmp(argv[1], "verify") == 0)
		what = VERIFY;
	else if (strcmp(argv[1], "head") == 0)
		what = HEAD;
	else if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		printf("usage: mantactl %s\n", AUDIT_USAGE);
		return CTL_OK;
	} else {
		fprintf(stderr, "usage: mantactl %s\n", AUDIT_USAGE);
		return CTL_USAGE;
	}
	argc--;
	argv++;
	if (take_head(&argc, argv, &anchor) == -1 || (anchor != NULL && what != VERIFY)) {
		fprintf(stderr, "usage: mantactl %s\n", AUDIT_USAGE);
		return CTL_USAGE;
	}
	ctl_options_first(argc, argv);
	if ((rc = ctl_parse(argc, argv, AUDIT_USAGE, 0, &a)) != 0)
		return rc;
	if (what == VERIFY && a.json) {
		fprintf(stderr, "usage: mantactl %s\n", AUDIT_USAGE);
		return CTL_USAGE;
	}
	if ((c = ctl_load_config(&a)) == NULL)
		return CTL_FAIL;
	/* The key of the chain, from the node's secret key when it has one;
	 * else audit.key beside the log. */
	audit_configure(c);
	if (asprintf(&path, "%s/%s", c->state_dir, AUDIT_FILE) == -1) {
		cfg_free(c);
		return CTL_FAIL;
	}
	rc = what == SHOW ? show(path, a.json) : what == VERIFY ? verify(path, anchor) :
	    head(path, a.json);
	free(path);
	cfg_free(c);
	return rc;
}
