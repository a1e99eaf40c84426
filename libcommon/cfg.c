/* cfg: loads the node's TOML file (WIRE.md section 10, INTERFACE.md) into
 * struct manta_cfg. toml++ parses (toml_shim.cpp); this file walks the tree
 * against one schema table, which also gives the order cfg_print writes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "file.h"
#include "secret.h"
#include "toml_shim.h"

/* A configuration is a few kilobytes; anything this large is a mistake. */
#define CFG_MAX_FILE	(1024 * 1024)

enum kind {
	K_STR,		/* char * */
	K_PATH,		/* char *, "~" expanded */
	K_INT,		/* int, within [min, max] */
	K_FLOAT,	/* double, within [min, max] */
	K_BOOL,		/* bool */
	K_TRIBOOL,	/* int: -1 unset, 0, 1 */
	K_TIME,		/* char *: a string or a TOML date-time */
	K_TOPICS,	/* mqtt.topics */
	K_LOGCFG,	/* containers.log_config */
	K_MAPPINGS,	/* datasets.mappings */
	K_PERMISSIONS,	/* datasets.permissions */
	K_OPTBOOL,	/* security.task_token_required: bool, and whether set */
	K_STRLIST,	/* struct cfg_strlist: an array of non-empty strings */
};

struct ctx {
	const char *file;
	struct cfg_error *err;
	const struct tshim_node *identity;	/* for the missing token's line */
	int flags;				/* CFG_LOAD_* */
};

/* Checks (and may normalize) a string value; returns NULL or a message. */
typedef const char *(*check_fn)(struct manta_cfg *c, char **val);

struct key_spec {
	const char *section;
	const char *name;
	enum kind kind;
	size_t off;
	int64_t min, max;
	check_fn check;
	bool secret;
};

static const char *check_token(struct manta_cfg *, char **);
static const char *check_name(struct manta_cfg *, char **);
static const char *check_host(struct manta_cfg *, char **);
static const char *check_memory(struct manta_cfg *, char **);
static const char *check_cpu(struct manta_cfg *, char **);
static const char *check_runtime(struct manta_cfg *, char **);
static const char *check_network(struct manta_cfg *, char **);
static const char *check_level(struct manta_cfg *, char **);
static const char *check_logsize(struct manta_cfg *, char **);
static const char *check_nonempty(struct manta_cfg *, char **);
static const char *check_user(struct manta_cfg *, char **);
static const char *check_seccomp(struct manta_cfg *, char **);
static const char *check_storesize(struct manta_cfg *, char **);

#define F(field) offsetof(struct manta_cfg, field)
#define NOLIM 0, 0

/* The reference's order: sections as `config init` writes them, then ours. */
static const struct key_spec keys[] = {
	{ "identity", "secured_token", K_STR, F(secured_token), NOLIM, check_token, true },
	{ "identity", "alias", K_STR, F(alias), NOLIM, check_nonempty, false },
	{ "identity", "random_id", K_BOOL, F(random_id), NOLIM, NULL, false },

	{ "metadata", "name", K_STR, F(meta_name), NOLIM, check_name, false },
	{ "metadata", "created_at", K_TIME, F(meta_created_at), NOLIM, NULL, false },
	{ "metadata", "version", K_STR, F(meta_version), NOLIM, NULL, false },
	{ "metadata", "description", K_STR, F(meta_description), NOLIM, NULL, false },

	{ "network", "manager_host", K_STR, F(manager_host), NOLIM, check_host, false },
	{ "network", "manager_port", K_INT, F(manager_port), 1, 65535, NULL, false },
	{ "network", "light_service_host", K_STR, F(light_service_host), NOLIM, check_host, false },
	{ "network", "light_service_port", K_INT, F(light_service_port), 1024, 65535, NULL, false },
	{ "network", "light_max_calls", K_INT, F(light_max_calls), 1, 100000, NULL, false },
	{ "network", "light_max_calls_per_task", K_INT, F(light_max_calls_per_task), 1, 100000, NULL, false },
	{ "network", "light_max_message_mb", K_INT, F(light_max_message_mb), 0, 2047, NULL, false },
	{ "network", "light_stall_timeout", K_INT, F(light_stall_timeout), 0, 600, NULL, false },

	{ "mqtt", "ping_interval", K_INT, F(ping_interval), 1, 86400, NULL, false },
	{ "mqtt", "reconnect_attempts", K_INT, F(reconnect_attempts), 0, INT_MAX, NULL, false },
	{ "mqtt", "reconnect_delay", K_FLOAT, F(reconnect_delay), 0, 86400, NULL, false },
	{ "mqtt", "broker_host", K_STR, F(broker_host), NOLIM, check_host, false },
	{ "mqtt", "broker_port", K_INT, F(broker_port), 1, 65535, NULL, false },
	{ "mqtt", "topics", K_TOPICS, 0, NOLIM, NULL, false },

	{ "containers", "gpu_enabled", K_TRIBOOL, F(gpu_enabled), NOLIM, NULL, false },
	{ "containers", "default_memory_limit", K_STR, F(default_memory_limit), NOLIM, check_memory, false },
	{ "containers", "default_cpu_limit", K_STR, F(default_cpu_limit), NOLIM, check_cpu, false },
	{ "containers", "docker_network", K_STR, F(docker_network), NOLIM, NULL, false },
	{ "containers", "runtime", K_PATH, F(runtime), NOLIM, check_runtime, false },
	{ "containers", "pull_timeout", K_INT, F(pull_timeout), 1, INT_MAX, NULL, false },
	{ "containers", "image_dir", K_PATH, F(image_dir), NOLIM, check_nonempty, false },
	{ "containers", "network", K_STR, F(network), NOLIM, check_network, false },
	{ "containers", "userns", K_BOOL, F(userns), NOLIM, NULL, false },
	{ "containers", "userns_base", K_INT, F(userns_base), 1, INT_MAX, NULL, false },
	{ "containers", "userns_size", K_INT, F(userns_size), 1, INT_MAX, NULL, false },
	{ "containers", "log_config", K_LOGCFG, 0, NOLIM, NULL, false },
	{ "containers", "registries", K_STRLIST, F(registries), NOLIM, NULL, false },
	{ "containers", "insecure_registries", K_STRLIST, F(insecure_registries), NOLIM, NULL, false },
	{ "containers", "registry_auth", K_PATH, F(registry_auth), NOLIM, check_nonempty, false },

	{ "datasets", "base_path", K_PATH, F(base_path), NOLIM, check_nonempty, false },
	{ "datasets", "mount_readonly", K_BOOL, F(mount_readonly), NOLIM, NULL, false },
	{ "datasets", "cache_metadata", K_BOOL, F(cache_metadata), NOLIM, NULL, false },
	{ "datasets", "mappings", K_MAPPINGS, 0, NOLIM, NULL, false },
	{ "datasets", "permissions", K_PERMISSIONS, 0, NOLIM, NULL, false },

	{ "tasks", "max_concurrent", K_INT, F(max_concurrent), 1, 1024, NULL, false },
	{ "tasks", "task_timeout", K_INT, F(task_timeout), 0, INT_MAX, NULL, false },
	{ "tasks", "retry_attempts", K_INT, F(retry_attempts), 0, 1000, NULL, false },
	{ "tasks", "temp_folder", K_PATH, F(temp_folder), NOLIM, check_nonempty, false },
	{ "tasks", "cleanup_on_failure", K_BOOL, F(cleanup_on_failure), NOLIM, NULL, false },
	{ "tasks", "stream_logs", K_BOOL, F(stream_logs), NOLIM, NULL, false },
	{ "tasks", "live_logs_to_manager", K_BOOL, F(live_logs_to_manager), NOLIM, NULL, false },
	{ "tasks", "log_store_max_size", K_STR, F(log_store_max_size), NOLIM, check_storesize, false },

	{ "resources", "reserve_cpu_percent", K_INT, F(reserve_cpu_percent), 0, 50, NULL, false },
	{ "resources", "reserve_memory_mb", K_INT, F(reserve_memory_mb), 0, INT_MAX, NULL, false },
	{ "resources", "max_disk_usage_percent", K_INT, F(max_disk_usage_percent), 0, 100, NULL, false },
	{ "resources", "monitor_interval", K_INT, F(monitor_interval), 1, 86400, NULL, false },
	{ "resources", "reserve_cpu", K_BOOL, F(reserve_cpu), NOLIM, NULL, false },

	{ "logging", "level", K_STR, F(log_level), NOLIM, check_level, false },
	{ "logging", "filename", K_PATH, F(log_filename), NOLIM, check_nonempty, false },
	{ "logging", "log_to_file", K_BOOL, F(log_to_file), NOLIM, NULL, false },
	{ "logging", "log_to_console", K_BOOL, F(log_to_console), NOLIM, NULL, false },
	{ "logging", "debug_mode", K_BOOL, F(debug_mode), NOLIM, NULL, false },
	{ "logging", "max_file_size", K_STR, F(log_max_file_size), NOLIM, check_logsize, false },
	{ "logging", "backup_count", K_INT, F(log_backup_count), 0, 1000, NULL, false },

	{ "security", "use_tls", K_BOOL, F(use_tls), NOLIM, NULL, false },
	{ "security", "cert_folder", K_PATH, F(cert_folder), NOLIM, check_nonempty, false },
	{ "security", "verify_ssl", K_BOOL, F(verify_ssl), NOLIM, NULL, false },
	{ "security", "token_refresh_interval", K_INT, F(token_refresh_interval), 1, INT_MAX, NULL, false },
	{ "security", "task_token_required", K_OPTBOOL, 0, NOLIM, NULL, false },
	{ "security", "secret_key_file", K_PATH, F(secret_key_file), NOLIM, check_nonempty, false },
	{ "security", "daemon_user", K_STR, F(daemon_user), NOLIM, check_user, false },
	{ "security", "light_user", K_STR, F(light_user), NOLIM, check_user, false },
	{ "security", "allow_root_daemons", K_BOOL, F(allow_root_daemons), NOLIM, NULL, false },
	{ "security", "seccomp", K_STR, F(seccomp), NOLIM, check_seccomp, false },

	{ "paths", "run_dir", K_PATH, F(run_dir), NOLIM, check_nonempty, false },
	{ "paths", "state_dir", K_PATH, F(state_dir), NOLIM, check_nonempty, false },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const sections[] = {
	"identity", "metadata", "network", "mqtt", "containers", "datasets",
	"tasks", "resources", "logging", "security", "paths",
};
#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

#define FIELD(c, k, type) ((type *)(void *)((char *)(c) + (k)->off))
#define CFIELD(c, k, type) ((type const *)(const void *)((const char *)(c) + (k)->off))

/* ---- errors ---- */

static int
fail(struct ctx *x, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(struct ctx *x, int line, const char *key, const char *fmt, ...)
{
	va_list ap;

	if (x->err == NULL)
		return -1;
	memset(x->err, 0, sizeof(*x->err));
	snprintf(x->err->file, sizeof(x->err->file), "%s", x->file);
	x->err->line = line;
	snprintf(x->err->key, sizeof(x->err->key), "%s", key ? key : "");
	va_start(ap, fmt);
	vsnprintf(x->err->msg, sizeof(x->err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

void
cfg_error_format(const struct cfg_error *e, char *buf, size_t len)
{
	char where[640];

	if (len == 0)
		return;
	if (e->line > 0)
		snprintf(where, sizeof(where), "%s:%d", e->file, e->line);
	else
		snprintf(where, sizeof(where), "%s", e->file);
	if (e->key[0] != '\0')
		snprintf(buf, len, "%s: %s: %s", where, e->key, e->msg);
	else
		snprintf(buf, len, "%s: %s", where, e->msg);
}

/* ---- small helpers ---- */

static char *
xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void
set_str(char **dst, char *val)
{
	free(*dst);
	*dst = val;
}

static const char *
home_dir(void)
{
	const char *h = getenv("HOME");
	struct passwd *pw;

	if (h != NULL && h[0] == '/')
		return h;
	pw = getpwuid(geteuid());
	return pw && pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : NULL;
}

const char *
cfg_alias(const struct manta_cfg *c)
{
	if (c->alias != NULL)
		return c->alias;
	return c->meta_name_set ? c->meta_name : "default";
}

bool
cfg_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64 || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

int
cfg_parse_size(const char *s, uint64_t *bytes)
{
	const char *p = s;
	uint64_t ip = 0, mult = 1;
	double frac = 0, scale = 0.1;
	bool digits = false;

	while (*p >= '0' && *p <= '9') {
		if (ip > (UINT64_MAX - 9) / 10)
			return -1;
		ip = ip * 10 + (uint64_t)(*p++ - '0');
		digits = true;
	}
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return -1;
		while (*p >= '0' && *p <= '9') {
			frac += (*p++ - '0') * scale;
			scale /= 10;
		}
	}
	if (!digits)
		return -1;
	if (*p == ' ')
		p++;
	switch (*p) {
	case 'k': case 'K': mult = 1ULL << 10; p++; break;
	case 'm': case 'M': mult = 1ULL << 20; p++; break;
	case 'g': case 'G': mult = 1ULL << 30; p++; break;
	case 't': case 'T': mult = 1ULL << 40; p++; break;
	default: break;
	}
	if (mult > 1 && (*p == 'i' || *p == 'I'))
		p++;
	if (*p == 'b' || *p == 'B')
		p++;
	if (*p != '\0')
		return -1;
	if (ip > UINT64_MAX / mult)
		return -1;
	*bytes = ip * mult + (uint64_t)(frac * (double)mult);
	return 0;
}

/* ---- checks of single values ---- */

static bool
b64_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '+' ||
	    ch == '/' || ch == '=';
}

bool
cfg_token_valid(const char *s)
{
	int parts = 1;
	size_t run = 0;

	for (; *s; s++) {
		if (*s == '.') {
			if (run == 0)
				return false;
			parts++;
			run = 0;
		} else if (!b64_char(*s)) {
			return false;
		} else {
			run++;
		}
	}
	return parts == 3 && run > 0;
}

static const char *
check_token(struct manta_cfg *c, char **val)
{
	/* A sealed token is opened, and its JWT checked, once the key's
	 * place is known (open_secrets). */
	if (secret_is_sealed(*val)) {
		free(c->secured_token_sealed);
		if ((c->secured_token_sealed = strdup(*val)) == NULL)
			return "out of memory";
		return NULL;
	}
	free(c->secured_token_sealed);
	c->secured_token_sealed = NULL;
	if (!cfg_token_valid(*val))
		return "must be a JWT: three non-empty dot-separated parts of base64url characters";
	return NULL;
}

static const char *
check_name(struct manta_cfg *c, char **val)
{
	if (!cfg_name_valid(*val))
		return "must be 1-64 of A-Z a-z 0-9 . _ - and not start with . or -";
	return NULL;
}

static const char *
check_host(struct manta_cfg *c, char **val)
{
	const char *s = *val;

	if (*s == '\0')
		return "must not be empty";
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == '/')
			return "must be a host name or address";
	return NULL;
}

static const char *
check_nonempty(struct manta_cfg *c, char **val)
{
	return (*val)[0] == '\0' ? "must not be empty" : NULL;
}

/* The flags of the cfg_load_flags in progress in this thread. */
static __thread int load_flags;

/* security.daemon_user: "" keeps uid 0; a name must be an account here
 * (confine.h resolves it again at each start, as root). Not looked up
 * for a reload (CFG_LOAD_SEALED): a confined daemon's seccomp filter has
 * no room for what NSS may load, and it cannot switch users again. */
static const char *
check_user(struct manta_cfg *c, char **val)
{
	const char *s = *val;
	size_t n = strlen(s);

	if (n == 0)
		return NULL;
	if (n > 32)
		return "must be a user name of at most 32 characters";
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.' ||
		    (s[i] == '-' && i > 0)))
			return "must be a user name ([A-Za-z0-9_.-], not starting with '-')";
	if (!(load_flags & CFG_LOAD_SEALED) && getpwnam(s) == NULL)
		return "no such user on this machine (create it, or set \"\" to keep uid 0)";
	return NULL;
}

/* security.seccomp: what a system call outside a daemon's allowlist does. */
static const char *
check_seccomp(struct manta_cfg *c, char **val)
{
	(void)c;
	if (strcmp(*val, "kill") == 0 || strcmp(*val, "errno") == 0 ||
	    strcmp(*val, "off") == 0)
		return NULL;
	return "must be \"kill\", \"errno\" or \"off\"";
}

static const char *
check_memory(struct manta_cfg *c, char **val)
{
	uint64_t b;

	if (cfg_parse_size(*val, &b) < 0)
		return "must be a size such as \"4G\", \"512M\" or \"1073741824\"";
	if (b < 4096)
		return "must be at least 4096 bytes";
	c->memory_limit_bytes = b;
	return NULL;
}

static const char *
check_logsize(struct manta_cfg *c, char **val)
{
	uint64_t b;

	if (cfg_parse_size(*val, &b) < 0)
		return "must be a size such as \"100M\"";
	if (b == 0)
		return "must be more than 0";
	c->log_max_file_bytes = b;
	return NULL;
}

static const char *
check_storesize(struct manta_cfg *c, char **val)
{
	uint64_t b;

	if (cfg_parse_size(*val, &b) < 0)
		return "must be a size such as \"1G\"";
	if (b < (1ULL << 20))
		return "must be at least 1M";
	c->log_store_max_bytes = b;
	return NULL;
}

static const char *
check_cpu(struct manta_cfg *c, char **val)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(*val, &end);
	if (errno != 0 || end == *val || *end != '\0' || !isfinite(d) ||
	    (*val)[0] == ' ' || (*val)[0] == '\t')
		return "must be a number of CPUs such as \"2.0\"";
	if (d <= 0 || d > 4096)
		return "must be more than 0 and at most 4096";
	c->cpu_limit = d;
	return NULL;
}

static const char *
check_runtime(struct manta_cfg *c, char **val)
{
	/* The reference runs everything under Docker; its files say so. */
	if (strcmp(*val, "docker") == 0) {
		char *r = strdup("runc");

		if (r == NULL)
			return "out of memory";
		set_str(val, r);
		return NULL;
	}
	if (strcmp(*val, "runc") == 0 || strcmp(*val, "crun") == 0)
		return NULL;
	if ((*val)[0] == '/')
		return NULL;
	return "must be \"runc\", \"crun\" or an absolute path";
}

static const char *
check_network(struct manta_cfg *c, char **val)
{
	if (strcmp(*val, "host") == 0 || strcmp(*val, "none") == 0)
		return NULL;
	return "must be \"host\" or \"none\"";
}

static const char *
check_level(struct manta_cfg *c, char **val)
{
	static const char *const levels[] = { "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL" };

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strcasecmp(*val, levels[i]) == 0) {
			for (char *p = *val; *p; p++)
				if (*p >= 'a' && *p <= 'z')
					*p = (char)(*p - 'a' + 'A');
			return NULL;
		}
	return "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL";
}

/* ---- values: environment and home expansion ---- */

static bool
var_char(char ch, bool first)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
	    (!first && ch >= '0' && ch <= '9');
}

/* Replaces each "${VAR}" / "${VAR:default}" in s. NULL with *why on error. */
static char *
expand_env(const char *s, char *why, size_t whylen)
{
	char *out = NULL;
	size_t outlen = 0;
	FILE *mf = open_memstream(&out, &outlen);

	if (mf == NULL) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	while (*s) {
		const char *name, *dflt = NULL, *end, *val;
		size_t nlen;

		if (s[0] != '$' || s[1] != '{') {
			fputc(*s++, mf);
			continue;
		}
		name = s + 2;
		for (end = name; var_char(*end, end == name); end++)
			;
		nlen = (size_t)(end - name);
		if (*end == ':') {
			dflt = end + 1;
			end = strchr(dflt, '}');
		}
		if (nlen == 0 || end == NULL || *end != '}') {
			snprintf(why, whylen, "bad ${VAR} or ${VAR:default} reference");
			goto bad;
		}
		{
			char var[256];

			if (nlen >= sizeof(var)) {
				snprintf(why, whylen, "environment variable name too long");
				goto bad;
			}
			memcpy(var, name, nlen);
			var[nlen] = '\0';
			val = getenv(var);
			if (val != NULL && val[0] == '\0' && dflt != NULL)
				val = NULL;
			if (val != NULL)
				fputs(val, mf);
			else if (dflt != NULL)
				fwrite(dflt, 1, (size_t)(end - dflt), mf);
			else {
				snprintf(why, whylen, "environment variable %s is not set", var);
				goto bad;
			}
		}
		s = end + 1;
	}
	if (fclose(mf) != 0) {
		free(out);
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	return out;
bad:
	fclose(mf);
	free(out);
	return NULL;
}

/* "~" and "~/x" become the home directory, "~user/x" that user's. */
static char *
expand_home(const char *s, char *why, size_t whylen)
{
	const char *rest, *home;
	char *p;

	if (s[0] != '~')
		return strdup(s);
	rest = strchr(s, '/');
	if (rest == NULL)
		rest = s + strlen(s);
	if (rest == s + 1) {
		home = home_dir();
		if (home == NULL) {
			snprintf(why, whylen, "cannot expand ~: no home directory");
			return NULL;
		}
	} else {
		char user[256];
		struct passwd *pw;
		size_t n = (size_t)(rest - s - 1);

		if (n >= sizeof(user)) {
			snprintf(why, whylen, "cannot expand ~: user name too long");
			return NULL;
		}
		memcpy(user, s + 1, n);
		user[n] = '\0';
		pw = getpwnam(user);
		if (pw == NULL || pw->pw_dir == NULL) {
			snprintf(why, whylen, "cannot expand ~%s: no such user", user);
			return NULL;
		}
		home = pw->pw_dir;
	}
	if (asprintf(&p, "%s%s", home, rest) < 0)
		return NULL;
	return p;
}

/* A string value with ${VAR} expanded (and ~ when path). */
static int
get_string(struct ctx *x, const struct tshim_node *n, const char *key, bool path,
    char **out)
{
	char why[300];
	char *s, *t;

	if (n->type != TSHIM_STRING)
		return fail(x, n->line, key, "expected a string, got %s",
		    tshim_type_name(n->type));
	why[0] = '\0';
	s = expand_env(n->str, why, sizeof(why));
	if (s == NULL)
		return fail(x, n->line, key, "%s", why[0] ? why : "out of memory");
	if (path) {
		t = expand_home(s, why, sizeof(why));
		free(s);
		if (t == NULL)
			return fail(x, n->line, key, "%s", why[0] ? why : "out of memory");
		s = t;
	}
	*out = s;
	return 0;
}

/* A number or boolean may come from the environment: port = "${PORT:50051}". */
static int
env_scalar(struct ctx *x, const struct tshim_node *n, const char *key, char **out)
{
	if (n->type != TSHIM_STRING || strstr(n->str, "${") == NULL)
		return 1;
	return get_string(x, n, key, false, out);
}

static int
get_int(struct ctx *x, const struct tshim_node *n, const char *key, int64_t min,
    int64_t max, int64_t *out)
{
	char *s = NULL, *end;
	int64_t v;
	int r = env_scalar(x, n, key, &s);

	if (r < 0)
		return -1;
	if (r == 0) {
		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno != 0 || end == s || *end != '\0') {
			fail(x, n->line, key, "expected an integer, got \"%s\"", s);
			free(s);
			return -1;
		}
		free(s);
	} else if (n->type == TSHIM_INT) {
		v = n->i;
	} else {
		return fail(x, n->line, key, "expected an integer, got %s",
		    tshim_type_name(n->type));
	}
	if (v < min || v > max)
		return fail(x, n->line, key, "out of range: %lld not in %lld-%lld",
		    (long long)v, (long long)min, (long long)max);
	*out = v;
	return 0;
}

static int
get_float(struct ctx *x, const struct tshim_node *n, const char *key, double min,
    double max, double *out)
{
	char *s = NULL, *end;
	double v;
	int r = env_scalar(x, n, key, &s);

	if (r < 0)
		return -1;
	if (r == 0) {
		errno = 0;
		v = strtod(s, &end);
		if (errno != 0 || end == s || *end != '\0') {
			fail(x, n->line, key, "expected a number, got \"%s\"", s);
			free(s);
			return -1;
		}
		free(s);
	} else if (n->type == TSHIM_FLOAT) {
		v = n->f;
	} else if (n->type == TSHIM_INT) {
		v = (double)n->i;
	} else {
		return fail(x, n->line, key, "expected a number, got %s",
		    tshim_type_name(n->type));
	}
	if (!isfinite(v) || v < min || v > max)
		return fail(x, n->line, key, "out of range: %g not in %g-%g", v, min, max);
	*out = v;
	return 0;
}

static int
get_bool(struct ctx *x, const struct tshim_node *n, const char *key, bool *out)
{
	char *s = NULL;
	int r = env_scalar(x, n, key, &s);

	if (r < 0)
		return -1;
	if (r == 0) {
		if (strcmp(s, "true") == 0)
			*out = true;
		else if (strcmp(s, "false") == 0)
			*out = false;
		else {
			fail(x, n->line, key, "expected true or false, got \"%s\"", s);
			free(s);
			return -1;
		}
		free(s);
		return 0;
	}
	if (n->type != TSHIM_BOOL)
		return fail(x, n->line, key, "expected a boolean, got %s",
		    tshim_type_name(n->type));
	*out = n->b;
	return 0;
}

/* ---- the structured keys ---- */

static void
free_strings(char ***v, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*v)[i]);
	free(*v);
	*v = NULL;
	*n = 0;
}

/* An array of non-empty strings into *v, *n (mqtt.topics, ...). */
static int
load_strings(struct ctx *x, const char *name, char ***v, size_t *nv,
    const struct tshim_node *n)
{
	char key[96];

	if (n->type != TSHIM_ARRAY)
		return fail(x, n->line, name, "expected an array of strings, got %s",
		    tshim_type_name(n->type));
	free_strings(v, nv);
	if (n->nkids == 0)
		return 0;
	if ((*v = calloc(n->nkids, sizeof(**v))) == NULL)
		return fail(x, n->line, name, "out of memory");
	for (size_t i = 0; i < n->nkids; i++) {
		char *s;

		snprintf(key, sizeof(key), "%s[%zu]", name, i);
		if (get_string(x, &n->kids[i], key, false, &s) < 0)
			return -1;
		(*v)[(*nv)++] = s;
		if (s[0] == '\0')
			return fail(x, n->kids[i].line, key, "must not be empty");
	}
	return 0;
}

static int
load_topics(struct ctx *x, struct manta_cfg *c, const struct tshim_node *n)
{
	return load_strings(x, "mqtt.topics", &c->topics, &c->ntopics, n);
}

/* A dataset's name: one path component. */
static bool
dataset_name_ok(const char *name)
{
	return name[0] != '\0' && strchr(name, '/') == NULL &&
	    strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static int
load_mappings(struct ctx *x, struct manta_cfg *c, const struct tshim_node *n)
{
	char key[128];

	if (n->type != TSHIM_TABLE)
		return fail(x, n->line, "datasets.mappings", "expected a table, got %s",
		    tshim_type_name(n->type));
	for (size_t i = 0; i < c->nmappings; i++) {
		free(c->mappings[i].name);
		free(c->mappings[i].path);
	}
	free(c->mappings);
	c->mappings = NULL;
	c->nmappings = 0;
	if (n->nkids == 0)
		return 0;
	c->mappings = calloc(n->nkids, sizeof(*c->mappings));
	if (c->mappings == NULL)
		return fail(x, n->line, "datasets.mappings", "out of memory");
	for (size_t i = 0; i < n->nkids; i++) {
		const struct tshim_node *m = &n->kids[i];
		struct cfg_mapping *cm = &c->mappings[c->nmappings];

		snprintf(key, sizeof(key), "datasets.mappings.%s", m->key);
		if (!dataset_name_ok(m->key))
			return fail(x, m->line, key, "a dataset name must not be empty, \".\", \"..\" or contain '/'");
		if (get_string(x, m, key, true, &cm->path) < 0)
			return -1;
		cm->name = strdup(m->key);
		c->nmappings++;
		if (cm->name == NULL)
			return fail(x, m->line, key, "out of memory");
		if (cm->path[0] == '\0')
			return fail(x, m->line, key, "must not be empty");
	}
	return 0;
}

static void
free_permissions(struct manta_cfg *c)
{
	for (size_t i = 0; i < c->npermissions; i++) {
		for (size_t j = 0; j < c->permissions[i].nswarms; j++)
			free(c->permissions[i].swarms[j]);
		free(c->permissions[i].swarms);
		free(c->permissions[i].dataset);
	}
	free(c->permissions);
	c->permissions = NULL;
	c->npermissions = 0;
}

/* A swarm id as 32 hex digits, lowercased in place. */
static bool
swarm_hex(char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] >= 'A' && s[i] <= 'F')
			s[i] = (char)(s[i] - 'A' + 'a');
		else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return i == 32;
}

/* datasets.permissions: dataset name -> array of the swarm ids allowed. */
static int
load_permissions(struct ctx *x, struct manta_cfg *c, const struct tshim_node *n)
{
	char key[192];

	if (n->type != TSHIM_TABLE)
		return fail(x, n->line, "datasets.permissions", "expected a table, got %s",
		    tshim_type_name(n->type));
	free_permissions(c);
	if (n->nkids == 0)
		return 0;
	c->permissions = calloc(n->nkids, sizeof(*c->permissions));
	if (c->permissions == NULL)
		return fail(x, n->line, "datasets.permissions", "out of memory");
	for (size_t i = 0; i < n->nkids; i++) {
		const struct tshim_node *m = &n->kids[i];
		struct cfg_permission *p = &c->permissions[c->npermissions];

		snprintf(key, sizeof(key), "datasets.permissions.%s", m->key);
		if (!dataset_name_ok(m->key))
			return fail(x, m->line, key, "a dataset name must not be empty, \".\", \"..\" or contain '/'");
		if (m->type != TSHIM_ARRAY)
			return fail(x, m->line, key, "expected an array of swarm ids, got %s",
			    tshim_type_name(m->type));
		if ((p->dataset = strdup(m->key)) == NULL)
			return fail(x, m->line, key, "out of memory");
		c->npermissions++;
		if (m->nkids > 0 && (p->swarms = calloc(m->nkids, sizeof(*p->swarms))) == NULL)
			return fail(x, m->line, key, "out of memory");
		for (size_t j = 0; j < m->nkids; j++) {
			char *s;

			snprintf(key, sizeof(key), "datasets.permissions.%s[%zu]", m->key, j);
			if (get_string(x, &m->kids[j], key, false, &s) < 0)
				return -1;
			p->swarms[p->nswarms++] = s;
			if (!swarm_hex(s))
				return fail(x, m->kids[j].line, key,
				    "a swarm id is 32 hexadecimal digits");
		}
	}
	return 0;
}

static int
load_log_opts(struct ctx *x, struct manta_cfg *c, const struct tshim_node *n)
{
	const char *const pfx = "containers.log_config.config";

	if (n->type != TSHIM_TABLE)
		return fail(x, n->line, pfx, "expected a table, got %s", tshim_type_name(n->type));
	for (size_t i = 0; i < n->nkids; i++) {
		const struct tshim_node *m = &n->kids[i];
		char key[128];
		char *s;

		snprintf(key, sizeof(key), "%s.%s", pfx, m->key);
		if (strcmp(m->key, "max-size") == 0) {
			uint64_t b;

			if (get_string(x, m, key, false, &s) < 0)
				return -1;
			set_str(&c->log_max_size, s);
			if (cfg_parse_size(s, &b) < 0 || b == 0)
				return fail(x, m->line, key, "must be a size such as \"10m\"");
			c->log_max_size_bytes = b;
		} else if (strcmp(m->key, "max-file") == 0) {
			int64_t v;

			/* Docker wants a string; an integer is what was meant. */
			if (m->type == TSHIM_INT) {
				if (get_int(x, m, key, 1, 1000, &v) < 0)
					return -1;
				if (asprintf(&s, "%lld", (long long)v) < 0)
					return fail(x, m->line, key, "out of memory");
			} else {
				char *end;

				if (get_string(x, m, key, false, &s) < 0)
					return -1;
				errno = 0;
				v = strtoll(s, &end, 10);
				if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 1000) {
					free(s);
					return fail(x, m->line, key, "must be a count of files, 1-1000");
				}
			}
			set_str(&c->log_max_file, s);
			c->log_max_file_count = (int)v;
		} else {
			return fail(x, m->line, key, "unknown key (max-size and max-file are known)");
		}
	}
	return 0;
}

static int
load_logcfg(struct ctx *x, struct manta_cfg *c, const struct tshim_node *n)
{
	if (n->type != TSHIM_TABLE)
		return fail(x, n->line, "containers.log_config", "expected a table, got %s",
		    tshim_type_name(n->type));
	for (size_t i = 0; i < n->nkids; i++) {
		const struct tshim_node *m = &n->kids[i];
		char key[128];
		char *s;

		snprintf(key, sizeof(key), "containers.log_config.%s", m->key);
		if (strcmp(m->key, "type") == 0) {
			if (get_string(x, m, key, false, &s) < 0)
				return -1;
			set_str(&c->log_type, s);
			if (s[0] == '\0')
				return fail(x, m->line, key, "must not be empty");
		} else if (strcmp(m->key, "config") == 0) {
			if (load_log_opts(x, c, m) < 0)
				return -1;
		} else {
			return fail(x, m->line, key, "unknown key (type and config are known)");
		}
	}
	return 0;
}

/* ---- one key ---- */

static int
load_key(struct ctx *x, struct manta_cfg *c, const struct key_spec *k,
    const struct tshim_node *n)
{
	char key[128];
	int64_t iv;
	char *s;

	snprintf(key, sizeof(key), "%s.%s", k->section, k->name);
	switch (k->kind) {
	case K_STR:
	case K_PATH:
		if (get_string(x, n, key, k->kind == K_PATH, &s) < 0)
			return -1;
		set_str(FIELD(c, k, char *), s);
		if (k->check != NULL) {
			const char *why = k->check(c, FIELD(c, k, char *));

			if (why != NULL)
				return fail(x, n->line, key, "%s", why);
		}
		return 0;
	case K_TIME:
		if (n->type == TSHIM_DATETIME) {
			if ((s = strdup(n->str)) == NULL)
				return fail(x, n->line, key, "out of memory");
		} else if (get_string(x, n, key, false, &s) < 0) {
			return -1;
		}
		set_str(FIELD(c, k, char *), s);
		return 0;
	case K_INT:
		if (get_int(x, n, key, k->min, k->max, &iv) < 0)
			return -1;
		*FIELD(c, k, int) = (int)iv;
		return 0;
	case K_FLOAT:
		return get_float(x, n, key, (double)k->min, (double)k->max, FIELD(c, k, double));
	case K_BOOL:
		return get_bool(x, n, key, FIELD(c, k, bool));
	case K_TRIBOOL: {
		bool b;

		if (n->type == TSHIM_STRING && strcmp(n->str, "auto") == 0) {
			*FIELD(c, k, int) = -1;
			return 0;
		}
		if (get_bool(x, n, key, &b) < 0)
			return -1;
		*FIELD(c, k, int) = b ? 1 : 0;
		return 0;
	}
	case K_TOPICS:
		return load_topics(x, c, n);
	case K_STRLIST: {
		struct cfg_strlist *l = FIELD(c, k, struct cfg_strlist);

		return load_strings(x, key, &l->v, &l->n, n);
	}
	case K_LOGCFG:
		return load_logcfg(x, c, n);
	case K_MAPPINGS:
		return load_mappings(x, c, n);
	case K_PERMISSIONS:
		return load_permissions(x, c, n);
	case K_OPTBOOL:
		if (get_bool(x, n, key, &c->task_token_required) < 0)
			return -1;
		c->task_token_required_set = true;
		return 0;
	}
	return fail(x, n->line, key, "internal error: unknown kind");
}

static int
load_section(struct ctx *x, struct manta_cfg *c, const struct tshim_node *sec)
{
	for (size_t i = 0; i < sec->nkids; i++) {
		const struct tshim_node *n = &sec->kids[i];
		const struct key_spec *k = NULL;

		for (size_t j = 0; j < NKEYS; j++)
			if (strcmp(keys[j].section, sec->key) == 0 &&
			    strcmp(keys[j].name, n->key) == 0) {
				k = &keys[j];
				break;
			}
		if (k == NULL) {
			char key[128];

			snprintf(key, sizeof(key), "%s.%s", sec->key, n->key);
			return fail(x, n->line, key, "unknown key");
		}
		if (load_key(x, c, k, n) < 0)
			return -1;
	}
	return 0;
}

/* ---- defaults ---- */

static int
set_defaults(struct manta_cfg *c)
{
	char why[128];

	c->random_id = false;
	c->manager_port = 50051;
	c->light_service_port = 0;
	c->ping_interval = 1;
	c->reconnect_attempts = 5;
	c->reconnect_delay = 5.0;
	c->broker_port = 0;
	c->gpu_enabled = -1;
	c->memory_limit_bytes = 4ULL << 30;
	c->cpu_limit = 2.0;
	c->pull_timeout = 300;
	c->log_max_size_bytes = 10ULL << 20;
	c->log_max_file_count = 3;
	c->mount_readonly = true;
	c->cache_metadata = true;
	c->max_concurrent = 2;
	c->task_timeout = 3600;
	c->retry_attempts = 3;
	c->cleanup_on_failure = true;
	c->stream_logs = true;
	c->live_logs_to_manager = false;
	c->log_store_max_bytes = 1ULL << 30;
	c->reserve_cpu = false;
	c->reserve_cpu_percent = 10;
	c->reserve_memory_mb = 512;
	c->max_disk_usage_percent = 90;
	c->monitor_interval = 30;
	c->log_to_file = true;
	c->log_to_console = false;
	c->debug_mode = true;
	c->log_max_file_bytes = 100ULL << 20;
	c->log_backup_count = 5;
	c->use_tls = false;
	c->verify_ssl = true;
	c->token_refresh_interval = 3600;
	c->task_token_required = false;
	c->userns = false;
	c->userns_base = 0;
	c->userns_size = 65536;
	c->light_max_calls = 256;
	c->light_max_calls_per_task = 32;
	c->light_max_message_mb = 1024;
	c->light_stall_timeout = 60;

	if ((c->meta_version = strdup("1.0.0")) == NULL ||
	    (c->meta_description = strdup("")) == NULL ||
	    (c->manager_host = strdup("localhost")) == NULL ||
	    (c->light_service_host = strdup("0.0.0.0")) == NULL ||
	    (c->default_memory_limit = strdup("4G")) == NULL ||
	    (c->default_cpu_limit = strdup("2.0")) == NULL ||
	    (c->docker_network = strdup("host")) == NULL ||
	    (c->runtime = strdup("runc")) == NULL ||
	    (c->log_type = strdup("json-file")) == NULL ||
	    (c->log_max_size = strdup("10m")) == NULL ||
	    (c->log_max_file = strdup("3")) == NULL ||
	    (c->base_path = strdup("/data/datasets")) == NULL ||
	    (c->log_level = strdup("INFO")) == NULL ||
	    (c->log_filename = strdup("manta_node.log")) == NULL ||
	    (c->log_max_file_size = strdup("100M")) == NULL ||
	    (c->seccomp = strdup("kill")) == NULL ||
	    (c->log_store_max_size = strdup("1G")) == NULL)
		return -1;
	/* Without a home directory the literal stays; it is only a default. */
	c->cert_folder = expand_home("~/.manta/certs", why, sizeof(why));
	if (c->cert_folder == NULL && (c->cert_folder = strdup("~/.manta/certs")) == NULL)
		return -1;
	return 0;
}

/* The line of section.key in the file, 0 when it is not there. */
static int
key_line(const struct tshim_node *root, const char *section, const char *key)
{
	const struct tshim_node *t = tshim_get(root, section), *n;

	if (t == NULL || t->type != TSHIM_TABLE || (n = tshim_get(t, key)) == NULL)
		return 0;
	return n->line;
}

/* Secrets at rest (secret.h): with a sealed identity.secured_token, or
 * node.key.sbox or mqtt.key.sbox in cert_folder under use_tls, loads the
 * key, opens the token and checks that the key files open (so a wrong key
 * stops the start here, naming the file, rather than a handshake later).
 * The key stays in c for the daemons that open those files. */
static int
open_secrets(struct ctx *x, struct manta_cfg *c, const struct tshim_node *root)
{
	static const char *const files[] = { "node.key", "mqtt.key" };
	char why[700], path[PATH_MAX];
	bool sealed_files = false;
	const char *src;
	size_t n;
	char *pt;
	int line;

	if (c->secret_key_file == NULL &&
	    (c->secret_key_file = path_join(c->state_dir, "secret.key")) == NULL)
		return fail(x, 0, NULL, "out of memory");
	for (size_t i = 0; c->use_tls && i < sizeof(files) / sizeof(files[0]); i++)
		if (secret_pick(c->cert_folder, files[i], path, sizeof(path)) == 1)
			sealed_files = true;
	if (c->registry_auth != NULL && secret_path_sealed(c->registry_auth))
		sealed_files = true;
	if ((c->secured_token_sealed == NULL && !sealed_files) || (x->flags & CFG_LOAD_SEALED))
		return 0;
	if ((c->secret_key = secret_key_load(c->secret_key_file, why, sizeof(why))) == NULL)
		return fail(x, key_line(root, "security", "secret_key_file"),
		    "security.secret_key_file", "%s; the sealed %s needs it", why,
		    c->secured_token_sealed ? "identity.secured_token" :
		    sealed_files && !c->use_tls ? "containers.registry_auth" :
		    "keys in security.cert_folder");
	src = secret_key_source(c->secret_key_file);
	if (c->secured_token_sealed != NULL) {
		line = key_line(root, "identity", "secured_token");
		pt = secret_open(c->secret_key, c->secured_token_sealed,
		    strlen(c->secured_token_sealed), &n);
		if (pt == NULL && errno == EBADMSG)
			return fail(x, line, "identity.secured_token", "unable to open the "
			    "sealed value with the key from %s: another key sealed it, or "
			    "it was altered", src);
		if (pt == NULL)
			return fail(x, line, "identity.secured_token", "not a well-formed "
			    "sealed value (\"%s\" and the base64 of nonce and ciphertext)",
			    SECRET_PREFIX);
		if (strlen(pt) != n || !cfg_token_valid(pt)) {
			secret_free(pt);
			return fail(x, line, "identity.secured_token",
			    "the sealed value opens, but is not a JWT");
		}
		secret_wipe(c->secured_token);
		free(c->secured_token);
		c->secured_token = strdup(pt);
		secret_free(pt);
		if (c->secured_token == NULL)
			return fail(x, 0, NULL, "out of memory");
	}
	for (size_t i = 0; c->use_tls && i < sizeof(files) / sizeof(files[0]); i++) {
		if (secret_pick(c->cert_folder, files[i], path, sizeof(path)) != 1)
			continue;
		if ((pt = secret_file_read(c->secret_key, path, NULL, why, sizeof(why))) == NULL)
			return fail(x, key_line(root, "security", "cert_folder"),
			    "security.cert_folder", "%s (key from %s)", why, src);
		secret_free(pt);
	}
	if (c->registry_auth != NULL && secret_path_sealed(c->registry_auth)) {
		if ((pt = secret_file_read(c->secret_key, c->registry_auth, NULL, why,
		    sizeof(why))) == NULL)
			return fail(x, key_line(root, "containers", "registry_auth"),
			    "containers.registry_auth", "%s (key from %s)", why, src);
		secret_free(pt);
	}
	return 0;
}

/* paths.*, image_dir and the instance name once the file is read. */
static int
finish(struct ctx *x, struct manta_cfg *c, const struct tshim_node *root)
{
	const char *home;

	if (c->secured_token == NULL)
		return fail(x, x->identity ? x->identity->line : 0, "identity.secured_token",
		    "missing: the node's JWT from the manager is required");
	if (c->meta_name != NULL) {
		c->meta_name_set = true;
		c->instance = strdup(c->meta_name);
	} else {
		const char *base = strrchr(c->file, '/');
		char *dot;

		base = base ? base + 1 : c->file;
		c->instance = strdup(base);
		if (c->instance != NULL && (dot = strrchr(c->instance, '.')) != NULL &&
		    dot != c->instance)
			*dot = '\0';
		if (c->instance != NULL && !cfg_name_valid(c->instance))
			return fail(x, 0, "metadata.name",
			    "missing, and the file name \"%s\" is no valid instance name", base);
		c->meta_name = xstrdup(c->instance);
	}
	if (c->instance == NULL || c->meta_name == NULL)
		return fail(x, 0, NULL, "out of memory");

	if (c->run_dir == NULL) {
		const char *xdg = getenv("XDG_RUNTIME_DIR");
		int r;

		if (geteuid() == 0)
			r = asprintf(&c->run_dir, "/run/manta/%s", c->instance);
		else if (xdg != NULL && xdg[0] == '/')
			r = asprintf(&c->run_dir, "%s/manta/%s", xdg, c->instance);
		else
			r = asprintf(&c->run_dir, "/tmp/manta-%u/%s", (unsigned)geteuid(),
			    c->instance);
		if (r < 0) {
			c->run_dir = NULL;
			return fail(x, 0, NULL, "out of memory");
		}
	}
	if (c->state_dir == NULL) {
		int r;

		if (geteuid() == 0)
			r = asprintf(&c->state_dir, "/var/lib/manta/%s", c->instance);
		else if ((home = home_dir()) != NULL)
			r = asprintf(&c->state_dir, "%s/.manta/state/%s", home, c->instance);
		else
			return fail(x, 0, "paths.state_dir",
			    "no home directory for the default; set it");
		if (r < 0) {
			c->state_dir = NULL;
			return fail(x, 0, NULL, "out of memory");
		}
	}
	if (c->image_dir == NULL && (c->image_dir = path_join(c->state_dir, "images")) == NULL)
		return fail(x, 0, NULL, "out of memory");
	/* A reference file that isolates Docker containers means the same here. */
	if (c->network == NULL)
		c->network = strdup(strcmp(c->docker_network, "none") == 0 ? "none" : "host");
	if (c->network == NULL)
		return fail(x, 0, NULL, "out of memory");
	return open_secrets(x, c, root);
}

/* ---- loading ---- */

static char *
read_file(struct ctx *x, const char *file, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	int fd;

	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		fail(x, 0, NULL, "unable to open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		fail(x, 0, NULL, "unable to stat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		fail(x, 0, NULL, "not a regular file");
		goto out;
	}
	if (st.st_size > CFG_MAX_FILE) {
		fail(x, 0, NULL, "file too large (more than %d bytes)", CFG_MAX_FILE);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		fail(x, 0, NULL, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fail(x, 0, NULL, "unable to read: %s", strerror(errno));
			free(buf);
			buf = NULL;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > (size_t)st.st_size) {
			fail(x, 0, NULL, "file grew while being read");
			free(buf);
			buf = NULL;
			goto out;
		}
	}
	buf[n] = '\0';
	*len = n;
out:
	close(fd);
	return buf;
}

struct manta_cfg *
cfg_load(const char *file, struct cfg_error *err)
{
	return cfg_load_flags(file, 0, err);
}

struct manta_cfg *
cfg_load_flags(const char *file, int flags, struct cfg_error *err)
{
	struct ctx x = { .file = file ? file : "(null)", .err = err, .flags = flags };
	struct tshim_error terr;
	struct tshim_node *root = NULL;
	struct manta_cfg *c;
	char *buf = NULL;
	size_t len = 0;

	if (err != NULL)
		memset(err, 0, sizeof(*err));
	load_flags = flags;
	if (file == NULL) {
		fail(&x, 0, NULL, "no configuration file");
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL || set_defaults(c) < 0) {
		fail(&x, 0, NULL, "out of memory");
		goto bad;
	}
	if ((c->file = realpath(file, NULL)) == NULL) {
		fail(&x, 0, NULL, "unable to open: %s", strerror(errno));
		goto bad;
	}
	if ((buf = read_file(&x, file, &len)) == NULL)
		goto bad;
	memset(&terr, 0, sizeof(terr));
	if ((root = tshim_parse(buf, len, file, &terr)) == NULL) {
		if (terr.line > 0)
			fail(&x, terr.line, NULL, "syntax error at column %d: %s", terr.column, terr.msg);
		else
			fail(&x, 0, NULL, "%s", terr.msg);
		if (err != NULL)
			err->column = terr.column;
		goto bad;
	}
	x.identity = tshim_get(root, "identity");
	for (size_t i = 0; i < root->nkids; i++) {
		const struct tshim_node *sec = &root->kids[i];
		bool known = false;

		for (size_t j = 0; j < NSECTIONS; j++)
			known |= strcmp(sections[j], sec->key) == 0;
		if (!known) {
			fail(&x, sec->line, sec->key, sec->type == TSHIM_TABLE ?
			    "unknown section" : "unknown key");
			goto bad;
		}
		if (sec->type != TSHIM_TABLE) {
			fail(&x, sec->line, sec->key, "expected a [%s] table, got %s",
			    sec->key, tshim_type_name(sec->type));
			goto bad;
		}
		if (load_section(&x, c, sec) < 0)
			goto bad;
	}
	if (finish(&x, c, root) < 0)
		goto bad;
	tshim_free(root);
	free(buf);
	return c;
bad:
	tshim_free(root);
	free(buf);
	cfg_free(c);
	return NULL;
}

void
cfg_free(struct manta_cfg *c)
{
	if (c == NULL)
		return;
	secret_wipe(c->secured_token);
	free(c->secured_token_sealed);
	secret_key_free(c->secret_key);
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].kind == K_STR || keys[i].kind == K_PATH || keys[i].kind == K_TIME)
			free(*FIELD(c, &keys[i], char *));
	free_strings(&c->topics, &c->ntopics);
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].kind == K_STRLIST)
			free_strings(&FIELD(c, &keys[i], struct cfg_strlist)->v,
			    &FIELD(c, &keys[i], struct cfg_strlist)->n);
	for (size_t i = 0; i < c->nmappings; i++) {
		free(c->mappings[i].name);
		free(c->mappings[i].path);
	}
	free(c->mappings);
	free_permissions(c);
	free(c->log_type);
	free(c->log_max_size);
	free(c->log_max_file);
	free(c->file);
	free(c->instance);
	free(c);
}

void
cfg_drop_secret_key(struct manta_cfg *c)
{
	secret_key_free(c->secret_key);
	c->secret_key = NULL;
}

char *
cfg_resolve_path(const char *file, const char *name)
{
	const char *env = getenv("MANTA_CONFIG");
	const char *home;
	char *p;

	if (file != NULL && file[0] != '\0')
		return strdup(file);
	if (env != NULL && env[0] != '\0')
		return strdup(env);
	if (name == NULL)
		name = "default";
	if (!cfg_name_valid(name)) {
		errno = EINVAL;
		return NULL;
	}
	if ((home = home_dir()) == NULL) {
		errno = ENOENT;
		return NULL;
	}
	if (asprintf(&p, "%s/.manta/nodes/%s.toml", home, name) < 0)
		return NULL;
	/* A packaged node's config (manta-node@NAME.service) is
	 * /etc/manta/NAME.toml: found by NAME when the user has none. */
	if (access(p, F_OK) == -1) {
		char *sys;

		if (asprintf(&sys, "%s/%s.toml", CFG_SYSTEM_DIR, name) < 0) {
			free(p);
			return NULL;
		}
		if (access(sys, F_OK) == 0) {
			free(p);
			return sys;
		}
		free(sys);
	}
	return p;
}

/* ---- writing TOML ---- */

static void
put_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\b': fputs("\\b", f); break;
		case '\t': fputs("\\t", f); break;
		case '\n': fputs("\\n", f); break;
		case '\f': fputs("\\f", f); break;
		case '\r': fputs("\\r", f); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

static void
put_key(FILE *f, const char *k)
{
	bool bare = k[0] != '\0';

	for (const char *p = k; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			bare = false;
	if (bare)
		fputs(k, f);
	else
		put_str(f, k);
}

static void
put_float(FILE *f, double d)
{
	char buf[64];

	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	fputs(buf, f);
	if (strpbrk(buf, ".eEn") == NULL)
		fputs(".0", f);
}

static void
print_key(FILE *f, const struct manta_cfg *c, const struct key_spec *k, bool mask)
{
	switch (k->kind) {
	case K_STR:
	case K_PATH:
	case K_TIME: {
		const char *s = *CFIELD(c, k, char *);

		if (s == NULL)
			return;
		/* A sealed token prints sealed: unmasked, the file's own
		 * "sbox:..." (which reads back); masked, "sbox:***". */
		if (k->secret && c->secured_token_sealed != NULL)
			s = mask ? SECRET_PREFIX "***" : c->secured_token_sealed;
		else if (k->secret && mask)
			s = "***";
		fprintf(f, "%s = ", k->name);
		put_str(f, s);
		break;
	}
	case K_INT: {
		int v = *CFIELD(c, k, int);

		/* 0 is "unset" for the ports without a default. */
		if (v == 0 && k->min > 0)
			return;
		fprintf(f, "%s = %d", k->name, v);
		break;
	}
	case K_FLOAT:
		fprintf(f, "%s = ", k->name);
		put_float(f, *CFIELD(c, k, double));
		break;
	case K_BOOL:
		fprintf(f, "%s = %s", k->name, *CFIELD(c, k, bool) ? "true" : "false");
		break;
	case K_TRIBOOL: {
		int v = *CFIELD(c, k, int);

		if (v < 0)
			return;
		fprintf(f, "%s = %s", k->name, v ? "true" : "false");
		break;
	}
	case K_TOPICS:
	case K_STRLIST: {
		char *const *v = k->kind == K_TOPICS ? c->topics :
		    CFIELD(c, k, struct cfg_strlist)->v;
		size_t n = k->kind == K_TOPICS ? c->ntopics :
		    CFIELD(c, k, struct cfg_strlist)->n;

		fprintf(f, "%s = [", k->name);
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				fputs(", ", f);
			put_str(f, v[i]);
		}
		fputc(']', f);
		break;
	}
	case K_OPTBOOL:
		/* Unset, the Light service decides; say how rather than
		 * print a value that would then be set. */
		if (!c->task_token_required_set)
			fprintf(f, "# %s unset: true when containers.network = \"none\"",
			    k->name);
		else
			fprintf(f, "%s = %s", k->name, c->task_token_required ? "true" : "false");
		break;
	case K_LOGCFG:
	case K_MAPPINGS:
	case K_PERMISSIONS:
		return;		/* sub-tables, after the section's keys */
	}
	fputc('\n', f);
}

void
cfg_print(FILE *f, const struct manta_cfg *c, bool mask)
{
	for (size_t s = 0; s < NSECTIONS; s++) {
		fprintf(f, "%s[%s]\n", s > 0 ? "\n" : "", sections[s]);
		for (size_t i = 0; i < NKEYS; i++)
			if (strcmp(keys[i].section, sections[s]) == 0)
				print_key(f, c, &keys[i], mask);
		if (strcmp(sections[s], "containers") == 0) {
			fputs("\n[containers.log_config]\ntype = ", f);
			put_str(f, c->log_type);
			fputs("\n\n[containers.log_config.config]\nmax-size = ", f);
			put_str(f, c->log_max_size);
			fputs("\nmax-file = ", f);
			put_str(f, c->log_max_file);
			fputc('\n', f);
		} else if (strcmp(sections[s], "datasets") == 0) {
			fputs("\n[datasets.mappings]\n", f);
			for (size_t i = 0; i < c->nmappings; i++) {
				put_key(f, c->mappings[i].name);
				fputs(" = ", f);
				put_str(f, c->mappings[i].path);
				fputc('\n', f);
			}
			if (c->npermissions > 0)
				fputs("\n[datasets.permissions]\n", f);
			for (size_t i = 0; i < c->npermissions; i++) {
				const struct cfg_permission *p = &c->permissions[i];

				put_key(f, p->dataset);
				fputs(" = [", f);
				for (size_t j = 0; j < p->nswarms; j++) {
					if (j > 0)
						fputs(", ", f);
					put_str(f, p->swarms[j]);
				}
				fputs("]\n", f);
			}
		}
	}
}

int
cfg_write_default(FILE *f, const char *name, const char *token)
{
	char created[64];
	struct tm tm;
	time_t now = time(NULL);

	if (name == NULL)
		name = "default";
	if (token == NULL)
		token = CFG_TOKEN_PLACEHOLDER;
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(created, sizeof(created), "1970-01-01T00:00:00Z");

	fputs("# manta-node configuration, in the layout of the reference node's\n"
	    "# ~/.manta/nodes/NAME.toml; every key is described in manta.toml(5).\n"
	    "# \"${VAR}\" or \"${VAR:default}\" in a value is read from the environment\n"
	    "# and a leading \"~\" in a path is the home directory. Commented-out keys\n"
	    "# are unset or this node's additions, shown with their defaults.\n"
	    "\n[identity]\n"
	    "# The JWT the manager issued for this node (three dot-separated parts).\n"
	    "# \"${MANTA_TOKEN:...}\" reads it from $MANTA_TOKEN at each start; the\n"
	    "# default after the colon is a placeholder that no manager accepts.\n"
	    "secured_token = ", f);
	put_str(f, token);
	fputs("\n# alias = \"node-1\"\t\t# the node id derives from it; unset: metadata.name\n"
	    "random_id = false\t\t# ignored, as by the reference's manta_node start\n"
	    "\n[metadata]\n"
	    "name = ", f);
	put_str(f, name);
	fputs("\t\t# the instance: run and state directories are named after it\ncreated_at = ", f);
	put_str(f, created);
	fputs("\nversion = \"1.0.0\"\n"
	    "description = \"\"\n"
	    "\n[network]\n"
	    "manager_host = \"localhost\"\n"
	    "manager_port = 50051\n"
	    "light_service_host = \"0.0.0.0\"\t# where tasks reach the Light service\n"
	    "# light_service_port = 50052\t\t# unset: the first free port from 50051\n"
	    "# light_max_calls = 256\t\t# Light calls at once, all tasks; more: RESOURCE_EXHAUSTED\n"
	    "# light_max_calls_per_task = 32\t# the same, per task\n"
	    "# light_max_message_mb = 1024\t# largest message one Light call carries (0: no limit)\n"
	    "# light_stall_timeout = 60\t# a World call whose manager moves no bytes this long fails\n"
	    "\n[mqtt]\n"
	    "ping_interval = 1\t\t# seconds between system summaries\n"
	    "reconnect_attempts = 5\n"
	    "reconnect_delay = 5.0\n"
	    "# broker_host, broker_port: given by the manager at registration\n"
	    "topics = []\n"
	    "\n[containers]\n"
	    "# gpu_enabled = false\t\t# unset: detected\n"
	    "default_memory_limit = \"4G\"\n"
	    "default_cpu_limit = \"2.0\"\n"
	    "docker_network = \"host\"\n"
	    "runtime = \"runc\"\t\t# runc, crun or a path; \"docker\" reads as runc\n"
	    "pull_timeout = 300\n"
	    "# image_dir = \"<state_dir>/images\"\n"
	    "# registries = []\t\t# registries a deploy may pull from (empty: any)\n"
	    "# insecure_registries = []\t# reached over plain HTTP\n"
	    "# registry_auth = \"~/.manta/registry-auth.json\"\t# Docker config.json, 0600\n"
	    "# network = \"host\"\t\t# or \"none\": loopback only, Light service over a unix socket\n"
	    "# userns = false\t\t# true: task root is an unprivileged host user\n"
	    "# userns_base = 100000\t# unset: root's range in /etc/subuid, else 100000\n"
	    "# userns_size = 65536\n"
	    "\n[containers.log_config]\n"
	    "type = \"json-file\"\n"
	    "\n[containers.log_config.config]\n"
	    "max-size = \"10m\"\n"
	    "max-file = \"3\"\n"
	    "\n[datasets]\n"
	    "base_path = \"/data/datasets\"\n"
	    "mount_readonly = true\n"
	    "cache_metadata = true\n"
	    "\n[datasets.mappings]\n"
	    "# name = \"/path/to/dataset\"\n"
	    "\n[tasks]\n"
	    "max_concurrent = 2\n"
	    "task_timeout = 3600\t\t# seconds\n"
	    "retry_attempts = 3\n"
	    "# temp_folder = \"/tmp\"\n"
	    "cleanup_on_failure = true\n"
	    "stream_logs = true\t\t# no effect, as in the reference\n"
	    "# live_logs_to_manager = false\t# true: output sent while a task runs (see\n"
	    "\t\t\t\t# manta.toml(5): a reference-built manager takes it as the end)\n"
	    "# log_store_max_size = \"1G\"\t# task output kept in <state_dir>/logs\n"
	    "\n[resources]\n"
	    "reserve_cpu_percent = 10\t# 0-50\n"
	    "reserve_memory_mb = 512\n"
	    "max_disk_usage_percent = 90\n"
	    "monitor_interval = 30\t\t# seconds\n"
	    "# reserve_cpu = false\t\t# true: admit a task only if its CPU limit fits\n"
	    "\n[logging]\n"
	    "level = \"INFO\"\t\t\t# DEBUG, INFO, WARNING, ERROR or CRITICAL\n"
	    "filename = \"manta_node.log\"\n"
	    "log_to_file = true\n"
	    "log_to_console = false\n"
	    "debug_mode = true\n"
	    "max_file_size = \"100M\"\n"
	    "backup_count = 5\n"
	    "\n[security]\n"
	    "use_tls = false\n"
	    "cert_folder = \"~/.manta/certs\"\t# ca.crt, node.crt, node.key, mqtt.crt, mqtt.key\n"
	    "verify_ssl = true\n"
	    "token_refresh_interval = 3600\n"
	    "# task_token_required = true\t# refuse Light calls without a task token\n"
	    "\t\t\t\t# (unset: only with containers.network = \"none\")\n"
	    "# secret_key_file = \"<state_dir>/secret.key\"\t# opens \"sbox:\" values and *.sbox keys\n"
	    "# daemon_user = \"manta\"\t# res, beat, register and light run as this user\n"
	    "\t\t\t\t# (unset: \"manta\" if it exists; \"\": stay uid 0)\n"
	    "# light_user = \"manta-light\"\t# mantad-light runs as this user, in daemon_user's group\n"
	    "\t\t\t\t# (unset: \"manta-light\" if it exists; \"\": stay uid 0)\n"
	    "# allow_root_daemons = false\t# true: start even if a daemon above stays uid 0\n"
	    "# seccomp = \"kill\"\t\t# a call outside a daemon's allowlist: kill, errno, off\n"
	    "\n# [paths]\n"
	    "# run_dir = \"$XDG_RUNTIME_DIR/manta/NAME\"\t# /run/manta/NAME as root\n"
	    "# state_dir = \"~/.manta/state/NAME\"\t# /var/lib/manta/NAME as root\n", f);
	return ferror(f) ? -1 : 0;
}
