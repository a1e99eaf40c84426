/* cfg: the node's TOML configuration (WIRE.md section 10 + INTERFACE.md keys).
 * Parsed by toml++ behind toml_shim.h; every key is checked against a schema:
 * unknown keys, wrong types and out-of-range values are refused with file,
 * line and key named. */
#ifndef MANTA_CFG_H
#define MANTA_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cfg_error {
	char file[512];
	int line;		/* 0 when unknown */
	char key[128];		/* "section.key", empty when not about one key */
	char msg[512];
	int column;		/* syntax errors only; 0 when unknown */
};
/* "FILE:LINE: KEY: MSG" */
void cfg_error_format(const struct cfg_error *e, char *buf, size_t len);

struct cfg_mapping {
	char *name;
	char *path;
};

/* datasets.permissions: the swarms that may read one dataset. */
struct cfg_permission {
	char *dataset;			/* a mappings name or a name under base_path */
	char **swarms;			/* 32 lowercase hex each */
	size_t nswarms;			/* 0: no swarm may read it */
};

/* A list of strings (containers.registries). */
struct cfg_strlist {
	char **v;
	size_t n;
};

struct manta_cfg {
	char *file;			/* absolute path of the file loaded */
	char *instance;			/* metadata.name, else the file's stem */

	/* [identity] */
	char *secured_token;		/* required */
	char *alias;			/* NULL when unset */
	bool random_id;

	/* [metadata] */
	char *meta_name;
	bool meta_name_set;		/* in the file (else the file's stem) */
	char *meta_created_at;
	char *meta_version;
	char *meta_description;

	/* [network] */
	char *manager_host;
	int manager_port;
	char *light_service_host;
	int light_service_port;		/* 0: unset (first free from 50051) */
	int light_max_calls;		/* Light calls at once, all tasks */
	int light_max_calls_per_task;	/* the same, per calling task */
	int light_max_message_mb;	/* one message of a Light call; 0: no limit */
	int light_stall_timeout;	/* s a World call may move no bytes; 0: none */

	/* [mqtt] */
	int ping_interval;		/* seconds, >= 1 */
	int reconnect_attempts;
	double reconnect_delay;		/* seconds */
	char *broker_host;		/* NULL: unset (Registration gives it) */
	int broker_port;		/* 0: unset */
	char **topics;
	size_t ntopics;

	/* [containers] */
	int gpu_enabled;		/* -1 auto-detect, 0, 1 */
	char *default_memory_limit;	/* as written, e.g. "4G" */
	uint64_t memory_limit_bytes;	/* parsed */
	char *default_cpu_limit;	/* as written, e.g. "2.0" */
	double cpu_limit;		/* parsed, CPUs */
	char *docker_network;
	char *runtime;			/* "runc", "crun" or a path; "docker" in a reference file reads as runc */
	int pull_timeout;
	char *log_type;			/* containers.log_config.type */
	char *log_max_size;		/* containers.log_config.config.max-size */
	char *log_max_file;		/* containers.log_config.config.max-file */
	uint64_t log_max_size_bytes;	/* log_max_size parsed */
	int log_max_file_count;		/* log_max_file parsed, >= 1 */
	char *image_dir;
	char *network;			/* "host" or "none" */
	bool userns;			/* tasks in a user namespace */
	int userns_base;		/* first host id mapped; 0: unset (root's
					 * /etc/subuid range, else 100000) */
	int userns_size;		/* ids mapped, from container id 0 */
	struct cfg_strlist registries;	/* a manager may pull from these (empty: any) */
	struct cfg_strlist insecure_registries;	/* reached over plain HTTP */
	char *registry_auth;		/* Docker config.json; NULL: none */

	/* [datasets] */
	char *base_path;
	bool mount_readonly;
	struct cfg_mapping *mappings;
	size_t nmappings;
	bool cache_metadata;
	struct cfg_permission *permissions;	/* datasets absent here: every swarm */
	size_t npermissions;

	/* [tasks] */
	int max_concurrent;
	int task_timeout;
	int retry_attempts;
	char *temp_folder;		/* NULL when unset */
	bool cleanup_on_failure;
	bool stream_logs;		/* no effect, as in the reference */
	bool live_logs_to_manager;	/* output to the manager while a task runs */
	char *log_store_max_size;	/* as written, e.g. "1G" */
	uint64_t log_store_max_bytes;	/* parsed: task output kept on disk */

	/* [resources] */
	int reserve_cpu_percent;
	int reserve_memory_mb;
	int max_disk_usage_percent;
	int monitor_interval;
	bool reserve_cpu;		/* admission counts CPU limits too */

	/* [logging] */
	char *log_level;
	char *log_filename;
	bool log_to_file;
	bool log_to_console;
	bool debug_mode;
	char *log_max_file_size;
	uint64_t log_max_file_bytes;	/* log_max_file_size parsed */
	int log_backup_count;

	/* [security] */
	bool use_tls;
	char *cert_folder;
	bool verify_ssl;
	int token_refresh_interval;
	bool task_token_required;
	bool task_token_required_set;	/* the key is in the file (else the
					 * Light service decides by network) */
	char *secret_key_file;		/* default <state_dir>/secret.key */
	char *daemon_user;		/* NULL: "manta" when it exists; "": uid 0 */
	char *light_user;		/* mantad-light's own account; NULL:
					 * "manta-light" when it exists; "": uid 0 */
	bool allow_root_daemons;	/* start even when a confined daemon
					 * would stay uid 0 (issue 13) */
	char *seccomp;			/* "kill" (default), "errno" or "off" */

	/* Secrets at rest (secret.h). secured_token above is always the
	 * plaintext JWT, except after cfg_load_flags(CFG_LOAD_SEALED). */
	char *secured_token_sealed;	/* the "sbox:..." the file holds, else NULL */
	unsigned char *secret_key;	/* the key, loaded when something is
					 * sealed (the token, node.key.sbox or
					 * mqtt.key.sbox in cert_folder with
					 * use_tls), else NULL; read-only */

	/* [paths] */
	char *run_dir;
	char *state_dir;
};

/* identity.secured_token that `mantactl config init` writes without --token:
 * $MANTA_TOKEN at each load, else CFG_TOKEN_UNSET, a well-formed JWT that no
 * manager accepts (so the file checks, and `config check` warns about it). */
#define CFG_TOKEN_UNSET "change-me.change-me.change-me"
#define CFG_TOKEN_PLACEHOLDER "${MANTA_TOKEN:" CFG_TOKEN_UNSET "}"

/* Loads and checks FILE. On error returns NULL and fills *err. */
struct manta_cfg *cfg_load(const char *file, struct cfg_error *err);
/* cfg_load, with CFG_LOAD_SEALED: sealed values stay sealed (secured_token
 * holds the "sbox:..." text, no key is loaded and no sealed file opened),
 * for `mantactl secret`, which may have no key yet. */
#define CFG_LOAD_SEALED	1
struct manta_cfg *cfg_load_flags(const char *file, int flags, struct cfg_error *err);
/* Wipes and frees c->secret_key (the token stays opened): for a daemon
 * that has opened its sealed files, before its seccomp filter (freeing
 * locked memory takes munlock). */
void cfg_drop_secret_key(struct manta_cfg *c);
void cfg_free(struct manta_cfg *c);

/* Where a packaged node's configs live (CFG_SYSTEM_DIR/NAME.toml). */
#ifndef CFG_SYSTEM_DIR
#define CFG_SYSTEM_DIR "/etc/manta"
#endif

/* Config file for an instance: -c FILE wins, then $MANTA_CONFIG, then
 * ~/.manta/nodes/NAME.toml (NAME "default" when NULL), or, when that file
 * does not exist, CFG_SYSTEM_DIR/NAME.toml if that one does. Returns a
 * malloc'd path. */
char *cfg_resolve_path(const char *file, const char *name);

/* What the keys the reference ignores (WIRE.md section 10) do on this
 * node, from c's effective values: note(arg, sentence) once per key
 * (cfg_notes.c). Returns how many. */
int cfg_reference_notes(const struct manta_cfg *c,
    void (*note)(void *, const char *), void *arg);
/* Prints the effective configuration as TOML; secrets masked when mask. */
void cfg_print(FILE *f, const struct manta_cfg *c, bool mask);
/* Writes a commented default config for instance NAME, in the reference
 * layout (sections identity, metadata, network, ...). */
int cfg_write_default(FILE *f, const char *name, const char *token);

/* The alias the reference's `manta_node start` gives the node (WIRE.md
 * section 1, CLI note): identity.alias, else metadata.name as the file
 * says it, else "default". The node id derives from it. */
const char *cfg_alias(const struct manta_cfg *c);

/* An instance name usable in paths: 1-64 of [A-Za-z0-9._-], not starting
 * with '.' or '-'. */
bool cfg_name_valid(const char *name);
/* Three non-empty dot-separated parts of base64url (or base64) characters. */
bool cfg_token_valid(const char *token);
/* "4G", "512m", "1.5GiB", "1024" (bytes): binary units k, m, g, t. 0 or -1. */
int cfg_parse_size(const char *s, uint64_t *bytes);

#endif
