/* mantactl secret init|seal-token|seal-key: the key and the sealed values
 * of secret.h.
 *
 * init makes security.secret_key_file (0400, never replacing one: every
 * value sealed with the old key would be lost). seal-token seals the JWT
 * (--token T, --stdin, or else the config's own) and prints "sbox:...", or
 * with -w writes it over the config's identity.secured_token line, keeping
 * the rest of the file byte for byte. seal-key FILE writes FILE.sbox and,
 * with --remove, overwrites and removes FILE. The config is loaded with
 * CFG_LOAD_SEALED: these commands run before there is a key, or with a
 * token already sealed. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cfg.h"
#include "daemon.h"
#include "log.h"
#include "mantactl.h"
#include "secret.h"
#include "toml_shim.h"

#define TOKEN_MAX	65536

struct secret_opts {
	const char *sub;
	const char *config;
	const char *name;
	const char *file;	/* seal-key */
	const char *token;
	bool from_stdin, write, remove, force;
};

static int
secret_usage(FILE *f)
{
	fprintf(f,
	    "usage: mantactl secret init [NAME] [-c FILE]\n"
	    "       mantactl secret seal-token [NAME] [-c FILE] [--token JWT | --stdin] [-w]\n"
	    "       mantactl secret seal-key [NAME] [-c FILE] [-f] [--remove] KEYFILE\n");
	return f == stdout ? CTL_OK : CTL_USAGE;
}

static int
parse_opts(int argc, char **argv, struct secret_opts *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "token", required_argument, NULL, 'T' },
		{ "stdin", no_argument, NULL, 'S' },
		{ "write", no_argument, NULL, 'w' },
		{ "remove", no_argument, NULL, 'R' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *pos[2];
	int ch, npos = 0;

	memset(o, 0, sizeof(*o));
	o->config = ctl_global_config;
	if (argc < 2)
		return -1;
	o->sub = argv[1];
	optind = 1;
	for (;;) {
		/* argv + 1: the subcommand is getopt's argv[0] */
		ch = getopt_long(argc - 1, argv + 1, "+c:wfh", longopts, NULL);
		if (ch == -1) {
			if (optind >= argc - 1)
				break;
			if (npos == 2)
				return -1;
			pos[npos++] = argv[1 + optind++];
			continue;
		}
		switch (ch) {
		case 'c': o->config = optarg; break;
		case 'T': o->token = optarg; break;
		case 'S': o->from_stdin = true; break;
		case 'w': o->write = true; break;
		case 'R': o->remove = true; break;
		case 'f': o->force = true; break;
		case 'h': secret_usage(stdout); exit(0);
		default: return -1;
		}
	}
	if (strcmp(o->sub, "seal-key") == 0) {
		if (npos == 0)
			return -1;
		o->file = pos[npos - 1];
		if (npos == 2)
			o->name = pos[0];
	} else if (npos == 2) {
		return -1;
	} else if (npos == 1) {
		o->name = pos[0];
	}
	if (o->name != NULL && !cfg_name_valid(o->name)) {
		fprintf(stderr, "mantactl: fatal: secret: bad instance name: %s\n", o->name);
		return -1;
	}
	if (o->token != NULL && o->from_stdin)
		return -1;
	return 0;
}

static struct manta_cfg *
load(const struct secret_opts *o)
{
	struct cfg_error err;
	struct manta_cfg *c;
	char line[1400], *path;

	if ((path = cfg_resolve_path(o->config, o->name)) == NULL) {
		log_warn("unable to find the configuration file");
		return NULL;
	}
	if ((c = cfg_load_flags(path, CFG_LOAD_SEALED, &err)) == NULL) {
		cfg_error_format(&err, line, sizeof(line));
		fprintf(stderr, "%s\n", line);
	}
	free(path);
	return c;
}

static unsigned char *
load_key(const struct manta_cfg *c)
{
	char why[700];
	unsigned char *key = secret_key_load(c->secret_key_file, why, sizeof(why));

	if (key == NULL)
		log_warnx("%s", why);
	return key;
}

/* ---- init ---- */

static int
secret_init_key(const struct manta_cfg *c)
{
	char *dir, *slash;

	if (getenv(SECRET_ENV) != NULL && getenv(SECRET_ENV)[0] != '\0')
		log_warnx("$%s is set: it, not %s, is the key while it stays set",
		    SECRET_ENV, c->secret_key_file);
	if ((dir = strdup(c->secret_key_file)) == NULL)
		return CTL_FAIL;
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (daemon_mkdirs(dir, 0700) == -1) {
			log_warn("unable to create %s", dir);
			free(dir);
			return CTL_FAIL;
		}
	}
	free(dir);
	if (secret_key_create(c->secret_key_file) == -1) {
		if (errno == EEXIST)
			log_warnx("%s exists; it is not replaced (what it sealed would be lost)",
			    c->secret_key_file);
		else
			log_warn("unable to create %s", c->secret_key_file);
		return CTL_FAIL;
	}
	log_info("wrote %s (mode 0400)", c->secret_key_file);
	return CTL_OK;
}

/* ---- seal-token ---- */

/* The JWT from stdin, trimmed, in locked memory. */
static char *
read_stdin_token(void)
{
	char *buf = NULL;
	size_t n = 0;

	if (secret_init() == -1 || (buf = sodium_malloc(TOKEN_MAX)) == NULL)
		return NULL;
	for (;;) {
		ssize_t r = read(STDIN_FILENO, buf + n, TOKEN_MAX - 1 - n);

		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			log_warn("unable to read stdin");
			secret_free(buf);
			return NULL;
		}
		if (r == 0 || (n += (size_t)r) == TOKEN_MAX - 1)
			break;
	}
	while (n > 0 && strchr(" \t\r\n", buf[n - 1]) != NULL)
		n--;
	buf[n] = '\0';
	return buf;
}

/* A temporary file beside file, with st's mode and owner, open for writing
 * in *out; *tmp is its name. 0, or -1 said: then *tmp is NULL, or the name
 * of a file left for the caller to remove. */
static int
open_beside(const char *file, const struct stat *st, char **tmp, FILE **out)
{
	int fd;

	if (asprintf(tmp, "%s.XXXXXX", file) < 0) {
		*tmp = NULL;
		return -1;
	}
	if ((fd = mkstemp(*tmp)) == -1) {
		log_warn("unable to create %s", *tmp);
		free(*tmp);
		*tmp = NULL;
		return -1;
	}
	if (fchmod(fd, st->st_mode & 07777) == -1 ||
	    (fchown(fd, st->st_uid, st->st_gid) == -1 && errno != EPERM) ||
	    (*out = fdopen(fd, "w")) == NULL) {
		log_warn("unable to write %s", *tmp);
		close(fd);
		return -1;
	}
	return 0;
}

/* The config line buf again, with value in place of its token, when it
 * reads `secured_token = "..."` (or '...') on one line: 0, or -1. */
static int
put_token_line(FILE *out, const char *buf, const char *value)
{
	const char *p, *q, *end;

	p = buf + strspn(buf, " \t");
	if (strncmp(p, "secured_token", 13) != 0)
		return -1;
	q = p + 13 + strspn(p + 13, " \t");
	if (*q != '=')
		return -1;
	q += 1 + strspn(q + 1, " \t");
	if ((*q != '"' && *q != '\'') || q[1] == *q)
		return -1;	/* a multi-line or empty string: by hand */
	for (end = q + 1; *end != '\0' && *end != *q; end++)
		if (*q == '"' && *end == '\\' && end[1] != '\0')
			end++;
	if (*end != *q)
		return -1;
	fprintf(out, "%.*ssecured_token = \"%s\"%s", (int)(p - buf), buf, value, end + 1);
	return 0;
}

/* Replaces line `line` (1-based) of the config, which must read
 * `secured_token = "..."` (or '...'), keeping indentation and a trailing
 * comment, with value; atomically, keeping mode and owner. */
static int
rewrite_token(const char *file, int line, const char *value)
{
	struct stat st;
	FILE *in = NULL, *out = NULL;
	char *buf = NULL, *tmp = NULL;
	size_t cap = 0;
	ssize_t len;
	int ln = 0, rc = CTL_FAIL;
	bool done = false;

	if ((in = fopen(file, "re")) == NULL || fstat(fileno(in), &st) == -1) {
		log_warn("unable to open %s", file);
		goto out;
	}
	if (open_beside(file, &st, &tmp, &out) == -1)
		goto out;
	while ((len = getline(&buf, &cap, in)) != -1) {
		if (++ln != line) {
			fwrite(buf, 1, (size_t)len, out);
			continue;
		}
		if (put_token_line(out, buf, value) == -1)
			break;
		/* the old (plaintext) line is wiped from our memory */
		explicit_bzero(buf, (size_t)len);
		done = true;
	}
	if (!done) {
		log_warnx("%s:%d: identity.secured_token is not a one-line "
		    "`secured_token = \"...\"`; put the sealed value there by hand "
		    "(`mantactl secret seal-token` prints it)", file, line);
		goto out;
	}
	if (ferror(in) || fflush(out) != 0 || ferror(out) || fsync(fileno(out)) == -1) {
		log_warn("unable to write %s", tmp);
		goto out;
	}
	if (rename(tmp, file) == -1) {
		log_warn("unable to rename %s to %s", tmp, file);
		goto out;
	}
	free(tmp);
	tmp = NULL;
	rc = CTL_OK;
out:
	if (buf != NULL)
		explicit_bzero(buf, cap);
	free(buf);
	if (in != NULL)
		fclose(in);
	if (out != NULL)
		fclose(out);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	return rc;
}

/* The 1-based line of identity.secured_token in file, 0 when unknown. */
static int
token_line(const char *file)
{
	struct tshim_error terr;
	struct tshim_node *root;
	const struct tshim_node *id, *tok;
	char *buf = NULL;
	size_t len = 0;
	FILE *f, *mf;
	int line = 0;
	char chunk[4096];
	size_t n;

	if ((f = fopen(file, "re")) == NULL)
		return 0;
	if ((mf = open_memstream(&buf, &len)) == NULL) {
		fclose(f);
		return 0;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, mf);
	fclose(f);
	fclose(mf);
	if ((root = tshim_parse(buf, len, file, &terr)) != NULL) {
		if ((id = tshim_get(root, "identity")) != NULL && id->type == TSHIM_TABLE &&
		    !id->inline_table && (tok = tshim_get(id, "secured_token")) != NULL)
			line = tok->line;
		tshim_free(root);
	}
	explicit_bzero(buf, len);
	free(buf);
	return line;
}

static int
secret_seal_token(const struct manta_cfg *c, const struct secret_opts *o)
{
	unsigned char *key = NULL;
	char *in = NULL, *sealed = NULL, *back = NULL;
	const char *tok;
	int rc = CTL_FAIL, line;

	if (o->token != NULL) {
		tok = o->token;
	} else if (o->from_stdin) {
		if ((in = read_stdin_token()) == NULL)
			return CTL_FAIL;
		tok = in;
	} else {
		tok = c->secured_token;
		if (secret_is_sealed(tok)) {
			log_warnx("%s: identity.secured_token is sealed already", c->file);
			return CTL_FAIL;
		}
		if (strcmp(tok, CFG_TOKEN_UNSET) == 0) {
			log_warnx("%s: identity.secured_token is the placeholder; give the "
			    "node's token (--stdin)", c->file);
			return CTL_FAIL;
		}
	}
	if (!cfg_token_valid(tok)) {
		log_warnx("the token is no JWT (three non-empty dot-separated parts)");
		goto out;
	}
	if ((key = load_key(c)) == NULL)
		goto out;
	if ((sealed = secret_seal(key, tok, strlen(tok))) == NULL) {
		log_warn("unable to seal the token");
		goto out;
	}
	/* What we write must open again with the key the daemons will load. */
	if ((back = secret_open(key, sealed, strlen(sealed), NULL)) == NULL ||
	    strcmp(back, tok) != 0) {
		log_warnx("internal error: the sealed token does not open");
		goto out;
	}
	if (!o->write) {
		printf("%s\n", sealed);
		rc = fflush(stdout) == 0 ? CTL_OK : CTL_FAIL;
		goto out;
	}
	if ((line = token_line(c->file)) == 0) {
		log_warnx("%s: no `secured_token = ...` line under [identity] to rewrite",
		    c->file);
		goto out;
	}
	if ((rc = rewrite_token(c->file, line, sealed)) == CTL_OK)
		log_info("%s:%d: identity.secured_token sealed with the key from %s",
		    c->file, line, secret_key_source(c->secret_key_file));
out:
	secret_free(back);
	free(sealed);
	secret_free(in);
	secret_key_free(key);
	return rc;
}

/* ---- seal-key ---- */

/* Writes len bytes to path: a new file (0600), or with force over an
 * existing one, atomically. */
static int
write_new(const char *path, const char *data, size_t len, bool force)
{
	char *tmp = NULL;
	const char *target = path;
	size_t off = 0;
	int fd;

	if (force) {
		if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
			return -1;
		if ((fd = mkstemp(tmp)) == -1) {
			log_warn("unable to create %s", tmp);
			free(tmp);
			return -1;
		}
		target = tmp;
	} else if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600)) == -1) {
		if (errno == EEXIST)
			log_warnx("%s exists; -f replaces it", path);
		else
			log_warn("unable to create %s", path);
		return -1;
	}
	if (fchmod(fd, 0600) == -1)
		goto bad;
	while (off < len) {
		ssize_t r = write(fd, data + off, len - off);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			goto bad;
		off += (size_t)r;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		goto bad;
	}
	fd = -1;
	if (tmp != NULL && rename(tmp, path) == -1)
		goto bad;
	free(tmp);
	return 0;
bad:
	log_warn("unable to write %s", target);
	if (fd != -1)
		close(fd);
	unlink(target);
	free(tmp);
	return -1;
}

/* Overwrites path's len bytes with zeros, then removes it. On a journaling
 * or copy-on-write file system old blocks may survive: the plain key was
 * there, which is why the man page says to seal keys where they are made. */
static int
remove_plain(const char *path, size_t len)
{
	static const char zeros[4096];
	size_t off = 0;
	int fd;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) != -1) {
		while (off < len) {
			size_t k = len - off < sizeof(zeros) ? len - off : sizeof(zeros);
			ssize_t r = pwrite(fd, zeros, k, (off_t)off);

			if (r <= 0)
				break;
			off += (size_t)r;
		}
		(void)fsync(fd);
		close(fd);
	}
	if (unlink(path) == -1) {
		log_warn("unable to remove %s", path);
		return -1;
	}
	return 0;
}

static int
secret_seal_key(const struct manta_cfg *c, const struct secret_opts *o)
{
	unsigned char *key = NULL;
	char why[700], *pem = NULL, *sealed = NULL, *out = NULL, *back = NULL;
	size_t n;
	int rc = CTL_FAIL;

	if (secret_path_sealed(o->file)) {
		log_warnx("%s is sealed already", o->file);
		return CTL_FAIL;
	}
	/* NULL key: a file that is sealed whatever its name is refused. */
	if ((pem = secret_file_read(NULL, o->file, &n, why, sizeof(why))) == NULL) {
		log_warnx("%s", why);
		return CTL_FAIL;
	}
	if (strstr(pem, "-----BEGIN") == NULL)
		log_warnx("%s holds no PEM block; sealing it anyway", o->file);
	if ((key = load_key(c)) == NULL)
		goto out;
	if ((sealed = secret_seal(key, pem, n)) == NULL) {
		log_warn("unable to seal %s", o->file);
		goto out;
	}
	if ((back = secret_open(key, sealed, strlen(sealed), NULL)) == NULL ||
	    strcmp(back, pem) != 0) {
		log_warnx("internal error: the sealed key does not open");
		goto out;
	}
	if (asprintf(&out, "%s%s", o->file, SECRET_SUFFIX) < 0) {
		out = NULL;
		goto out;
	}
	/* with a newline, for cat(1) */
	{
		size_t slen = strlen(sealed);
		char *text;

		if (asprintf(&text, "%s\n", sealed) < 0)
			goto out;
		if (write_new(out, text, slen + 1, o->force) == -1) {
			free(text);
			goto out;
		}
		free(text);
	}
	log_info("wrote %s", out);
	if (o->remove) {
		if (remove_plain(o->file, n) == -1)
			goto out;
		log_info("removed %s", o->file);
	}
	rc = CTL_OK;
out:
	secret_free(back);
	free(sealed);
	free(out);
	secret_free(pem);
	secret_key_free(key);
	return rc;
}

int
cmd_secret(int argc, char **argv)
{
	struct secret_opts o;
	struct manta_cfg *c;
	int rc;

	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
		return secret_usage(stdout);
	if (parse_opts(argc, argv, &o) == -1)
		return secret_usage(stderr);
	if (strcmp(o.sub, "init") != 0 && strcmp(o.sub, "seal-token") != 0 &&
	    strcmp(o.sub, "seal-key") != 0) {
		fprintf(stderr, "mantactl: fatal: secret: unknown subcommand: %s\n", o.sub);
		return secret_usage(stderr);
	}
	if ((c = load(&o)) == NULL)
		return CTL_FAIL;
	if (strcmp(o.sub, "init") == 0)
		rc = secret_init_key(c);
	else if (strcmp(o.sub, "seal-token") == 0)
		rc = secret_seal_token(c, &o);
	else
		rc = secret_seal_key(c, &o);
	cfg_free(c);
	return rc;
}
