/* mantactl config init|show|check [NAME] [-c FILE] [-f] [-o FILE] [--token T]
 *
 * init writes a commented default file (cfg_write_default) without ever
 * replacing an existing one unless -f: the file is written beside the
 * target, then linked into place (link fails on an existing name) or renamed
 * over it with -f. It is created 0600, as it holds the node's token. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "cmd_config.h"
#include "log.h"
#include "mantactl.h"

struct config_opts {
	const char *sub;
	const char *name;
	const char *config;
	const char *out;
	const char *token;
	int force;
};

static int
config_usage(void)
{
	fprintf(stderr,
	    "usage: mantactl config init [NAME] [-c FILE | -o FILE|-] [-f] [--token JWT]\n"
	    "       mantactl config show [NAME] [-c FILE]\n"
	    "       mantactl config check [NAME] [-c FILE]\n");
	return CTL_USAGE;
}

/* "--opt=V" or "--opt V" / "-o V". Returns the value or NULL (usage). */
static const char *
opt_value(int argc, char **argv, int *i, const char *arg, size_t optlen)
{
	if (arg[optlen] == '=')
		return arg + optlen + 1;
	if (arg[optlen] != '\0')
		return arg + optlen;	/* -cFILE */
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static int
parse_opts(int argc, char **argv, struct config_opts *o)
{
	bool dashdash = false;

	memset(o, 0, sizeof(*o));
	if (argc < 2)
		return -1;
	o->sub = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (!dashdash && strcmp(a, "--") == 0) {
			dashdash = true;
		} else if (!dashdash && a[0] == '-' && a[1] != '\0') {
			if (strncmp(a, "-c", 2) == 0 && strncmp(a, "--", 2) != 0) {
				if ((o->config = opt_value(argc, argv, &i, a, 2)) == NULL)
					return -1;
			} else if (strncmp(a, "--config", 8) == 0 && (a[8] == '\0' || a[8] == '=')) {
				if ((o->config = opt_value(argc, argv, &i, a, 8)) == NULL)
					return -1;
			} else if (strncmp(a, "-o", 2) == 0 && strncmp(a, "--", 2) != 0) {
				if ((o->out = opt_value(argc, argv, &i, a, 2)) == NULL)
					return -1;
			} else if (strncmp(a, "--output", 8) == 0 && (a[8] == '\0' || a[8] == '=')) {
				if ((o->out = opt_value(argc, argv, &i, a, 8)) == NULL)
					return -1;
			} else if (strncmp(a, "--token", 7) == 0 && (a[7] == '\0' || a[7] == '=')) {
				if ((o->token = opt_value(argc, argv, &i, a, 7)) == NULL)
					return -1;
			} else if (strcmp(a, "-f") == 0 || strcmp(a, "--force") == 0) {
				o->force = 1;
			} else {
				fprintf(stderr, "mantactl: fatal: config: unknown option: %s\n", a);
				return -1;
			}
		} else if (o->name == NULL) {
			o->name = a;
		} else {
			fprintf(stderr, "mantactl: fatal: config: extra argument: %s\n", a);
			return -1;
		}
	}
	if (o->config == NULL)
		o->config = ctl_global_config;
	if (o->name != NULL && !cfg_name_valid(o->name)) {
		fprintf(stderr, "mantactl: fatal: config: bad instance name: %s\n", o->name);
		return -1;
	}
	if (strcmp(o->sub, "init") != 0 && (o->out != NULL || o->token != NULL || o->force)) {
		fprintf(stderr, "mantactl: fatal: config %s: -o, -f and --token are for init\n",
		    o->sub);
		return -1;
	}
	if (o->token != NULL && !cfg_token_valid(o->token)) {
		fprintf(stderr, "mantactl: fatal: config init: --token must be a JWT "
		    "(three non-empty dot-separated parts)\n");
		return -1;
	}
	return 0;
}

static struct manta_cfg *
load(const struct config_opts *o, char **pathp)
{
	struct cfg_error err;
	struct manta_cfg *c;
	char line[1400];
	char *path;

	if ((path = cfg_resolve_path(o->config, o->name)) == NULL) {
		log_warn("unable to find the configuration file");
		return NULL;
	}
	c = cfg_load(path, &err);
	if (c == NULL) {
		cfg_error_format(&err, line, sizeof(line));
		fprintf(stderr, "%s\n", line);
		free(path);
		return NULL;
	}
	*pathp = path;
	return c;
}

/* mkdir -p for the parent of path, 0700 for what it creates. */
static int
make_parent(const char *path)
{
	char *d = strdup(path);
	char *slash;

	if (d == NULL)
		return -1;
	if ((slash = strrchr(d, '/')) == NULL || slash == d) {
		free(d);
		return 0;
	}
	*slash = '\0';
	for (char *p = d + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;

			*p = '\0';
			if (mkdir(d, 0700) < 0 && errno != EEXIST) {
				log_warn("unable to create directory %s", d);
				free(d);
				return -1;
			}
			*p = saved;
			if (saved == '\0')
				break;
		}
	}
	free(d);
	return 0;
}

/* The instance name for a file: its stem when usable, else "default". */
static char *
name_for(const char *path)
{
	const char *base = strrchr(path, '/');
	char *n, *dot;

	n = strdup(base ? base + 1 : path);
	if (n == NULL)
		return NULL;
	if ((dot = strrchr(n, '.')) != NULL && dot != n)
		*dot = '\0';
	if (!cfg_name_valid(n)) {
		free(n);
		n = strdup("default");
	}
	return n;
}

static int
write_file(const char *path, const char *name, const char *token, int force)
{
	char *tmp = NULL;
	FILE *f = NULL;
	int fd, rc = CTL_FAIL;
	const char *slash = strrchr(path, '/');

	if (make_parent(path) < 0)
		return CTL_FAIL;
	if (asprintf(&tmp, "%.*s.%s.XXXXXX", slash ? (int)(slash - path + 1) : 0, path,
	    slash ? slash + 1 : path) < 0)
		return CTL_FAIL;
	if ((fd = mkstemp(tmp)) < 0) {
		log_warn("unable to create %s", tmp);
		free(tmp);
		return CTL_FAIL;
	}
	if ((f = fdopen(fd, "w")) == NULL) {
		log_warn("unable to write %s", tmp);
		close(fd);
		goto out;
	}
	if (cfg_write_default(f, name, token) < 0 || fflush(f) != 0 || fsync(fd) < 0) {
		log_warn("unable to write %s", tmp);
		goto out;
	}
	if (force) {
		if (rename(tmp, path) < 0) {
			log_warn("unable to rename %s to %s", tmp, path);
			goto out;
		}
	} else if (link(tmp, path) < 0) {
		if (errno == EEXIST)
			log_warnx("%s exists; -f replaces it", path);
		else
			log_warn("unable to create %s", path);
		goto out;
	}
	log_info("wrote %s", path);
	rc = CTL_OK;
out:
	if (f != NULL)
		fclose(f);
	unlink(tmp);	/* after link (or a failure); ENOENT after rename */
	free(tmp);
	return rc;
}

static int
config_init(const struct config_opts *o)
{
	char *path, *name;
	int rc;

	if (o->out != NULL && strcmp(o->out, "-") == 0) {
		if (cfg_write_default(stdout, o->name, o->token) < 0 || fflush(stdout) != 0) {
			log_warn("unable to write to stdout");
			return CTL_FAIL;
		}
		return CTL_OK;
	}
	if (o->out != NULL)
		path = strdup(o->out);
	else
		path = cfg_resolve_path(o->config, o->name);
	if (path == NULL) {
		log_warn("unable to find where to write the configuration");
		return CTL_FAIL;
	}
	name = o->name ? strdup(o->name) : name_for(path);
	if (name == NULL) {
		free(path);
		return CTL_FAIL;
	}
	rc = write_file(path, name, o->token, o->force);
	free(name);
	free(path);
	return rc;
}

/* What a reference file's inert keys do here (cfg_notes.c). */
static void
print_note(void *arg, const char *text)
{
	(void)arg;
	printf("note: %s\n", text);
}

int
cmd_config(int argc, char **argv)
{
	struct config_opts o;
	struct manta_cfg *c;
	char *path = NULL;

	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		config_usage();
		return CTL_OK;
	}
	if (parse_opts(argc, argv, &o) < 0)
		return config_usage();
	if (strcmp(o.sub, "init") == 0)
		return config_init(&o);
	if (strcmp(o.sub, "show") != 0 && strcmp(o.sub, "check") != 0) {
		fprintf(stderr, "mantactl: fatal: config: unknown subcommand: %s\n", o.sub);
		return config_usage();
	}
	if ((c = load(&o, &path)) == NULL)
		return CTL_FAIL;
	if (strcmp(o.sub, "show") == 0) {
		cfg_print(stdout, c, true);
	} else {
		printf("%s: ok\n", path);
		(void)cfg_reference_notes(c, print_note, NULL);
		if (strcmp(c->secured_token, CFG_TOKEN_UNSET) == 0)
			log_warnx("%s: identity.secured_token is the placeholder; "
			    "set MANTA_TOKEN or write the node's token", path);
	}
	cfg_free(c);
	free(path);
	if (fflush(stdout) != 0) {
		log_warn("unable to write to stdout");
		return CTL_FAIL;
	}
	return CTL_OK;
}
