/* cfg_schema: the configuration's keys (WIRE.md section 10, INTERFACE.md),
 * one table that cfg.c loads against and cfg_print.c writes in order, and
 * the checks of single values that its rows name. New keys go in as rows
 * of cfg_keys, in their section. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "cfg_schema.h"
#include "secret.h"

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
const struct key_spec cfg_keys[] = {
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
const size_t cfg_nkeys = sizeof(cfg_keys) / sizeof(cfg_keys[0]);

const char *const cfg_sections[] = {
	"identity", "metadata", "network", "mqtt", "containers", "datasets",
	"tasks", "resources", "logging", "security", "paths",
};
const size_t cfg_nsections = sizeof(cfg_sections) / sizeof(cfg_sections[0]);

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

__thread int cfg_load_flags_now;

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
	if (!(cfg_load_flags_now & CFG_LOAD_SEALED) && getpwnam(s) == NULL)
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
		free(*val);
		*val = r;
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
