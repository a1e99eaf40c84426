/* cfg_print: writes a configuration as TOML (`mantactl config show`) in
 * the key table's order, and the commented template of `config init`. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "cfg_schema.h"
#include "secret.h"

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
	for (size_t s = 0; s < cfg_nsections; s++) {
		fprintf(f, "%s[%s]\n", s > 0 ? "\n" : "", cfg_sections[s]);
		for (size_t i = 0; i < cfg_nkeys; i++)
			if (strcmp(cfg_keys[i].section, cfg_sections[s]) == 0)
				print_key(f, c, &cfg_keys[i], mask);
		if (strcmp(cfg_sections[s], "containers") == 0) {
			fputs("\n[containers.log_config]\ntype = ", f);
			put_str(f, c->log_type);
			fputs("\n\n[containers.log_config.config]\nmax-size = ", f);
			put_str(f, c->log_max_size);
			fputs("\nmax-file = ", f);
			put_str(f, c->log_max_file);
			fputc('\n', f);
		} else if (strcmp(cfg_sections[s], "datasets") == 0) {
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

/* The default configuration's [network] and [mqtt]. */
static void
default_network(FILE *f)
{
	fputs("\n[network]\n"
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
	    "topics = []\n", f);
}

/* The default configuration's [containers] and its log_config. */
static void
default_containers(FILE *f)
{
	fputs("\n[containers]\n"
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
	    "network = \"none\"\t\t# a namespace of its own: loopback and its Light endpoint only\n"
	    "\t\t\t\t# (\"host\": the host's network; unset: as docker_network)\n"
	    "# userns = false\t\t# true: task root is an unprivileged host user\n"
	    "# userns_base = 100000\t# unset: root's range in /etc/subuid, else 100000\n"
	    "# userns_size = 65536\n"
	    "\n[containers.log_config]\n"
	    "type = \"json-file\"\n"
	    "\n[containers.log_config.config]\n"
	    "max-size = \"10m\"\n"
	    "max-file = \"3\"\n", f);
}

/* The default configuration's [datasets], [tasks] and [resources]. */
static void
default_datasets_tasks(FILE *f)
{
	fputs("\n[datasets]\n"
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
	    "# reserve_cpu = false\t\t# true: admit a task only if its CPU limit fits\n", f);
}

/* The default configuration's [logging], [security] and the commented-out [paths]. */
static void
default_security(FILE *f)
{
	fputs("\n[logging]\n"
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
	    "description = \"\"\n", f);
	default_network(f);
	default_containers(f);
	default_datasets_tasks(f);
	default_security(f);
	return ferror(f) ? -1 : 0;
}
