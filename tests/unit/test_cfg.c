/* test_cfg: libcommon/cfg*.c and the toml++ shim. Defaults, the reference
 * layout (tests/configs/reference.toml), every refusal naming file, line and
 * key, environment and home expansion, hostile input, and the writers
 * (cfg_write_default, cfg_print) read back. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "toml_shim.h"

static char tmpdir[] = "/tmp/test_cfg.XXXXXX";
static char configs[4096];

/* tests/configs, found from the source path or from the binary
 * (build/FLAVOR/tests/test_cfg). */
static void
find_configs(void)
{
	char exe[2048];
	ssize_t n;
	char *p;

	snprintf(configs, sizeof(configs), "%s", __FILE__);
	if ((p = strrchr(configs, '/')) != NULL) {
		snprintf(p, sizeof(configs) - (size_t)(p - configs), "/../configs");
		if (access(configs, R_OK) == 0)
			return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		if ((p = strrchr(exe, '/')) != NULL)
			*p = '\0';
		snprintf(configs, sizeof(configs), "%s/../../../tests/configs", exe);
		if (access(configs, R_OK) == 0)
			return;
	}
	snprintf(configs, sizeof(configs), "tests/configs");
}

static char *
cfgpath(const char *name)
{
	static char buf[4200];

	snprintf(buf, sizeof(buf), "%s/%s", configs, name);
	return buf;
}

/* Writes len bytes to tmpdir/name; returns the path (static). */
static const char *
write_bytes(const char *name, const void *data, size_t len)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

static const char *
write_text(const char *name, const char *text)
{
	return write_bytes(name, text, strlen(text));
}

#define TOKEN "aaa.bbb.ccc"
#define MINIMAL "[identity]\nsecured_token = \"" TOKEN "\"\n"

static struct manta_cfg *
load_ok(const char *path)
{
	struct cfg_error e;
	struct manta_cfg *c = cfg_load(path, &e);

	if (c == NULL) {
		char buf[1400];

		cfg_error_format(&e, buf, sizeof(buf));
		fail_msg("%s refused: %s", path, buf);
	}
	return c;
}

static void
expect_error(const char *path, int line, const char *key, const char *msg_part)
{
	struct cfg_error e;
	struct manta_cfg *c;

	memset(&e, 0x55, sizeof(e));
	c = cfg_load(path, &e);
	if (c != NULL) {
		cfg_free(c);
		fail_msg("%s loaded; expected an error at line %d key %s", path, line, key);
	}
	assert_string_equal(e.file, path);
	if (line >= 0)
		assert_int_equal(e.line, line);
	if (key != NULL)
		assert_string_equal(e.key, key);
	if (msg_part != NULL && strstr(e.msg, msg_part) == NULL)
		fail_msg("%s: message \"%s\" lacks \"%s\"", path, e.msg, msg_part);
}

static void
expect_text_error(const char *text, int line, const char *key, const char *msg_part)
{
	expect_error(write_text("t.toml", text), line, key, msg_part);
}

/* Every value that has a default, as a minimal file leaves it; network
 * is "host" there and "none" in what `config init` writes (issue 13). */
static void
assert_defaults_net(const struct manta_cfg *c, const char *network)
{
	assert_null(c->alias);
	assert_false(c->random_id);
	assert_string_equal(c->meta_version, "1.0.0");
	assert_string_equal(c->meta_description, "");
	assert_string_equal(c->manager_host, "localhost");
	assert_int_equal(c->manager_port, 50051);
	assert_string_equal(c->light_service_host, "0.0.0.0");
	assert_int_equal(c->light_service_port, 0);
	assert_int_equal(c->ping_interval, 1);
	assert_int_equal(c->reconnect_attempts, 5);
	assert_true(c->reconnect_delay == 5.0);
	assert_null(c->broker_host);
	assert_int_equal(c->broker_port, 0);
	assert_int_equal(c->ntopics, 0);
	assert_int_equal(c->gpu_enabled, -1);
	assert_string_equal(c->default_memory_limit, "4G");
	assert_int_equal(c->memory_limit_bytes, 4ULL << 30);
	assert_string_equal(c->default_cpu_limit, "2.0");
	assert_true(c->cpu_limit == 2.0);
	assert_string_equal(c->docker_network, "host");
	assert_string_equal(c->runtime, "runc");
	assert_int_equal(c->pull_timeout, 300);
	assert_string_equal(c->log_type, "json-file");
	assert_string_equal(c->log_max_size, "10m");
	assert_int_equal(c->log_max_size_bytes, 10ULL << 20);
	assert_string_equal(c->log_max_file, "3");
	assert_int_equal(c->log_max_file_count, 3);
	assert_string_equal(c->network, network);
	assert_false(c->userns);
	assert_int_equal(c->userns_base, 0);
	assert_int_equal(c->userns_size, 65536);
	assert_string_equal(c->base_path, "/data/datasets");
	assert_true(c->mount_readonly);
	assert_int_equal(c->nmappings, 0);
	assert_int_equal(c->npermissions, 0);
	assert_true(c->cache_metadata);
	assert_int_equal(c->max_concurrent, 2);
	assert_int_equal(c->task_timeout, 3600);
	assert_int_equal(c->retry_attempts, 3);
	assert_null(c->temp_folder);
	assert_true(c->cleanup_on_failure);
	assert_true(c->stream_logs);
	assert_int_equal(c->reserve_cpu_percent, 10);
	assert_int_equal(c->reserve_memory_mb, 512);
	assert_int_equal(c->max_disk_usage_percent, 90);
	assert_int_equal(c->monitor_interval, 30);
	assert_string_equal(c->log_level, "INFO");
	assert_string_equal(c->log_filename, "manta_node.log");
	assert_true(c->log_to_file);
	assert_false(c->log_to_console);
	assert_true(c->debug_mode);
	assert_string_equal(c->log_max_file_size, "100M");
	assert_int_equal(c->log_max_file_bytes, 100ULL << 20);
	assert_int_equal(c->log_backup_count, 5);
	assert_false(c->use_tls);
	assert_string_equal(c->cert_folder, "/home/tester/.manta/certs");
	assert_true(c->verify_ssl);
	assert_int_equal(c->token_refresh_interval, 3600);
	assert_false(c->task_token_required);
	assert_false(c->task_token_required_set);
}

static void
assert_defaults(const struct manta_cfg *c)
{
	assert_defaults_net(c, "host");
}

static void
test_defaults(void **state)
{
	struct manta_cfg *c = load_ok(write_text("mynode.toml", MINIMAL));
	char want[512];

	assert_defaults(c);
	assert_string_equal(c->secured_token, TOKEN);
	/* No metadata.name: the instance is the file's stem, but the alias
	 * (the node id's source) is the reference's default name. */
	assert_string_equal(c->instance, "mynode");
	assert_string_equal(c->meta_name, "mynode");
	assert_false(c->meta_name_set);
	assert_string_equal(cfg_alias(c), "default");
	assert_null(c->meta_created_at);
	assert_true(c->file[0] == '/');
	assert_non_null(strstr(c->file, "/mynode.toml"));
	if (geteuid() == 0) {
		assert_string_equal(c->run_dir, "/run/manta/mynode");
		assert_string_equal(c->state_dir, "/var/lib/manta/mynode");
	} else {
		assert_string_equal(c->run_dir, "/run/user/4242/manta/mynode");
		assert_string_equal(c->state_dir, "/home/tester/.manta/state/mynode");
	}
	snprintf(want, sizeof(want), "%s/images", c->state_dir);
	assert_string_equal(c->image_dir, want);
	cfg_free(c);
}

static void
test_reference(void **state)
{
	struct manta_cfg *c = load_ok(cfgpath("reference.toml"));

	assert_defaults(c);
	assert_string_equal(c->instance, "reference");
	assert_string_equal(c->meta_name, "reference");
	assert_string_equal(c->meta_created_at, "2024-05-14T09:31:07.123456");
	/* The reference's Docker reads as our runc. */
	assert_string_equal(c->runtime, "runc");
	assert_int_equal(strlen(c->secured_token) > 20, 1);
	cfg_free(c);
}

static void
test_paths_and_extras(void **state)
{
	struct manta_cfg *c = load_ok(write_text("x.toml", MINIMAL
	    "[metadata]\nname = \"inst-1\"\ncreated_at = 2024-01-02T03:04:05Z\n"
	    "[network]\nmanager_port = 80\nlight_service_port = 1024\n"
	    "[mqtt]\nreconnect_delay = 2\nbroker_host = \"b\"\nbroker_port = 1883\n"
	    "topics = [\"a/b\", \"c\"]\n"
	    "[containers]\ngpu_enabled = false\nruntime = \"/usr/bin/crun\"\n"
	    "default_memory_limit = \"512M\"\ndefault_cpu_limit = \"0.5\"\n"
	    "network = \"none\"\nimage_dir = \"~/img\"\n"
	    "userns = true\nuserns_base = 200000\nuserns_size = 1000\n"
	    "log_config = { type = \"local\", config = { max-size = \"1g\", max-file = 7 } }\n"
	    "[datasets.mappings]\nmnist = \"~/data/mnist\"\n\"odd name\" = \"/d\"\n"
	    "[datasets.permissions]\nmnist = [\"0123456789ABCDEFabcdef0123456789\",\n"
	    "  \"ffffffffffffffffffffffffffffffff\"]\npool = []\n"
	    "[logging]\nlevel = \"debug\"\n"
	    "[security]\ntask_token_required = true\n"
	    "[paths]\nrun_dir = \"/tmp/r\"\nstate_dir = \"~/s\"\n"));

	assert_string_equal(c->instance, "inst-1");
	assert_string_equal(c->meta_created_at, "2024-01-02T03:04:05Z");
	assert_int_equal(c->manager_port, 80);	/* below 443: accepted, unlike the reference */
	assert_int_equal(c->light_service_port, 1024);
	assert_true(c->reconnect_delay == 2.0);
	assert_string_equal(c->broker_host, "b");
	assert_int_equal(c->broker_port, 1883);
	assert_int_equal(c->ntopics, 2);
	assert_string_equal(c->topics[1], "c");
	assert_int_equal(c->gpu_enabled, 0);
	assert_string_equal(c->runtime, "/usr/bin/crun");
	assert_int_equal(c->memory_limit_bytes, 512ULL << 20);
	assert_true(c->cpu_limit == 0.5);
	assert_string_equal(c->network, "none");
	assert_string_equal(c->image_dir, "/home/tester/img");
	assert_true(c->userns);
	assert_int_equal(c->userns_base, 200000);
	assert_int_equal(c->userns_size, 1000);
	assert_string_equal(c->log_type, "local");
	assert_int_equal(c->log_max_size_bytes, 1ULL << 30);
	assert_string_equal(c->log_max_file, "7");
	assert_int_equal(c->nmappings, 2);
	assert_string_equal(c->mappings[0].name, "mnist");
	assert_string_equal(c->mappings[0].path, "/home/tester/data/mnist");
	assert_string_equal(c->mappings[1].name, "odd name");
	/* Swarm ids lowercased; a name under base_path need not be mapped. */
	assert_int_equal(c->npermissions, 2);
	assert_string_equal(c->permissions[0].dataset, "mnist");
	assert_int_equal(c->permissions[0].nswarms, 2);
	assert_string_equal(c->permissions[0].swarms[0], "0123456789abcdefabcdef0123456789");
	assert_string_equal(c->permissions[0].swarms[1], "ffffffffffffffffffffffffffffffff");
	assert_string_equal(c->permissions[1].dataset, "pool");
	assert_int_equal(c->permissions[1].nswarms, 0);
	assert_string_equal(c->log_level, "DEBUG");
	assert_true(c->task_token_required);
	assert_true(c->task_token_required_set);
	assert_string_equal(c->run_dir, "/tmp/r");
	assert_string_equal(c->state_dir, "/home/tester/s");
	cfg_free(c);

	/* docker_network = "none" isolates tasks when containers.network is unset. */
	c = load_ok(write_text("x.toml", MINIMAL "[containers]\ndocker_network = \"none\"\n"));
	assert_string_equal(c->network, "none");
	cfg_free(c);

	/* An explicit false is told apart from an unset key. */
	c = load_ok(write_text("x.toml", MINIMAL "[security]\ntask_token_required = false\n"));
	assert_false(c->task_token_required);
	assert_true(c->task_token_required_set);
	cfg_free(c);
}

static void
test_bad_files(void **state)
{
	expect_error(cfgpath("bad_unknown_key.toml"), 6, "network.manager_prot", "unknown key");
	expect_error(cfgpath("bad_unknown_section.toml"), 4, "netwrok", "unknown section");
	expect_error(cfgpath("bad_type.toml"), 6, "network.manager_port", "expected an integer");
	expect_error(cfgpath("bad_range.toml"), 5, "resources.reserve_cpu_percent", "out of range");
	expect_error(cfgpath("bad_syntax.toml"), 5, "", "syntax error at column");
	expect_error(cfgpath("bad_missing_token.toml"), 1, "identity.secured_token", "missing");
	expect_error(cfgpath("bad_token.toml"), 2, "identity.secured_token", "JWT");
}

static void
test_bad_values(void **state)
{
	static const struct {
		const char *text;	/* after MINIMAL, whose 2 lines come first */
		int line;
		const char *key;
		const char *msg;
	} cases[] = {
		{ "[network]\nmanager_port = 0\n", 4, "network.manager_port", "out of range" },
		{ "[network]\nmanager_port = 65536\n", 4, "network.manager_port", "out of range" },
		{ "[network]\nlight_service_port = 80\n", 4, "network.light_service_port", "out of range" },
		{ "[network]\nmanager_host = 12\n", 4, "network.manager_host", "expected a string" },
		{ "[network]\nmanager_host = \"\"\n", 4, "network.manager_host", "empty" },
		{ "[mqtt]\nping_interval = 0\n", 4, "mqtt.ping_interval", "out of range" },
		{ "[mqtt]\nping_interval = \"fast\"\n", 4, "mqtt.ping_interval", "expected an integer" },
		{ "[mqtt]\nping_interval = 1.5\n", 4, "mqtt.ping_interval", "expected an integer" },
		{ "[mqtt]\nreconnect_delay = -1.0\n", 4, "mqtt.reconnect_delay", "out of range" },
		{ "[mqtt]\nreconnect_delay = nan\n", 4, "mqtt.reconnect_delay", "out of range" },
		{ "[mqtt]\ntopics = \"a\"\n", 4, "mqtt.topics", "expected an array" },
		{ "[mqtt]\ntopics = [\"a\",\n  3]\n", 5, "mqtt.topics[1]", "expected a string" },
		{ "[security]\nuse_tls = \"yes\"\n", 4, "security.use_tls", "expected a boolean" },
		{ "[resources]\nreserve_cpu_percent = 51\n", 4, "resources.reserve_cpu_percent", "out of range" },
		{ "[resources]\nreserve_cpu_percent = -1\n", 4, "resources.reserve_cpu_percent", "out of range" },
		{ "[resources]\nmax_disk_usage_percent = 101\n", 4, "resources.max_disk_usage_percent", "out of range" },
		{ "[containers]\ndefault_memory_limit = \"4X\"\n", 4, "containers.default_memory_limit", "size" },
		{ "[containers]\ndefault_memory_limit = \"\"\n", 4, "containers.default_memory_limit", "size" },
		{ "[containers]\ndefault_memory_limit = \"99999999999T\"\n", 4, "containers.default_memory_limit", "size" },
		{ "[containers]\ndefault_cpu_limit = \"0\"\n", 4, "containers.default_cpu_limit", "more than 0" },
		{ "[containers]\ndefault_cpu_limit = \"two\"\n", 4, "containers.default_cpu_limit", "CPUs" },
		{ "[containers]\ndefault_cpu_limit = 2.0\n", 4, "containers.default_cpu_limit", "expected a string" },
		{ "[containers]\nruntime = \"podman\"\n", 4, "containers.runtime", "runc" },
		{ "[containers]\nnetwork = \"bridge\"\n", 4, "containers.network", "host" },
		{ "[containers]\ngpu_enabled = 1\n", 4, "containers.gpu_enabled", "boolean" },
		{ "[containers]\nuserns = \"yes\"\n", 4, "containers.userns", "boolean" },
		{ "[containers]\nuserns_base = 0\n", 4, "containers.userns_base", "out of range" },
		{ "[containers]\nuserns_base = 2147483648\n", 4, "containers.userns_base", "out of range" },
		{ "[containers]\nuserns_size = 0\n", 4, "containers.userns_size", "out of range" },
		{ "[containers.log_config]\ntype = \"json-file\"\nextra = 1\n", 5, "containers.log_config.extra", "unknown key" },
		{ "[containers.log_config.config]\nmax-size = \"big\"\n", 4, "containers.log_config.config.max-size", "size" },
		{ "[containers.log_config.config]\nmax-file = \"0\"\n", 4, "containers.log_config.config.max-file", "count" },
		{ "[containers.log_config.config]\ncompress = \"true\"\n", 4, "containers.log_config.config.compress", "unknown key" },
		{ "[containers]\nlog_config = \"json\"\n", 4, "containers.log_config", "expected a table" },
		{ "[datasets]\nmappings = [\"a\"]\n", 4, "datasets.mappings", "expected a table" },
		{ "[datasets.mappings]\n\"..\" = \"/x\"\n", 4, "datasets.mappings...", "dataset name" },
		{ "[datasets.mappings]\nm = 1\n", 4, "datasets.mappings.m", "expected a string" },
		{ "[datasets]\npermissions = [\"a\"]\n", 4, "datasets.permissions", "expected a table" },
		{ "[datasets.permissions]\nd = \"0123456789abcdef0123456789abcdef\"\n", 4,
		  "datasets.permissions.d", "expected an array" },
		{ "[datasets.permissions]\n\"a/b\" = []\n", 4, "datasets.permissions.a/b", "dataset name" },
		{ "[datasets.permissions]\nd = [\"0123456789abcdef0123456789abcdef\",\n"
		  "  \"0123456789abcdef0123456789abcdeg\"]\n", 5, "datasets.permissions.d[1]", "32 hex" },
		{ "[datasets.permissions]\nd = [\"0123456789abcdef0123456789abcde\"]\n", 4,
		  "datasets.permissions.d[0]", "32 hex" },
		{ "[datasets.permissions]\nd = [\"0123456789abcdef0123456789abcdef0\"]\n", 4,
		  "datasets.permissions.d[0]", "32 hex" },
		{ "[datasets.permissions]\nd = [\"01234567-89ab-cdef-0123-456789abcdef\"]\n", 4,
		  "datasets.permissions.d[0]", "32 hex" },
		{ "[datasets.permissions]\nd = [7]\n", 4, "datasets.permissions.d[0]", "expected a string" },
		{ "[security]\ntask_token_required = \"no\"\n", 4, "security.task_token_required", "boolean" },
		{ "[tasks]\nmax_concurrent = 0\n", 4, "tasks.max_concurrent", "out of range" },
		{ "[logging]\nlevel = \"VERBOSE\"\n", 4, "logging.level", "DEBUG" },
		{ "[logging]\nmax_file_size = \"lots\"\n", 4, "logging.max_file_size", "size" },
		{ "[metadata]\nname = \"../etc\"\n", 4, "metadata.name", "must be" },
		{ "[metadata]\ncreated_at = 5\n", 4, "metadata.created_at", "expected a string" },
		{ "[identity]\n", -1, "", "syntax error" },	/* table defined twice */
		{ "stray = 1\n", 3, "identity.stray", "unknown key" },
		{ "[paths]\nrun_dir = \"\"\n", 4, "paths.run_dir", "empty" },
		{ "[paths]\nsock_dir = \"/x\"\n", 4, "paths.sock_dir", "unknown key" },
		{ "[network.sub]\nx = 1\n", 3, "network.sub", "unknown key" },
	};
	char text[1024];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "%s%s", MINIMAL, cases[i].text);
		expect_text_error(text, cases[i].line, cases[i].key, cases[i].msg);
	}
	/* A token refused by shape, and a token missing from an empty file. */
	expect_text_error("[identity]\nsecured_token = \"a..c\"\n", 2, "identity.secured_token", "JWT");
	expect_text_error("[identity]\nsecured_token = \"a.b.c.d\"\n", 2, "identity.secured_token", "JWT");
	expect_text_error("[identity]\nsecured_token = \"a b.c.d\"\n", 2, "identity.secured_token", "JWT");
	expect_text_error("", 0, "identity.secured_token", "missing");
	expect_text_error("identity = 1\n", 1, "identity", "expected a [identity] table");
	expect_text_error("[network]\n", 0, "identity.secured_token", "missing");
}

static void
test_error_format(void **state)
{
	struct cfg_error e = { .line = 7 };
	char buf[1400];

	snprintf(e.file, sizeof(e.file), "/etc/n.toml");
	snprintf(e.key, sizeof(e.key), "mqtt.ping_interval");
	snprintf(e.msg, sizeof(e.msg), "out of range");
	cfg_error_format(&e, buf, sizeof(buf));
	assert_string_equal(buf, "/etc/n.toml:7: mqtt.ping_interval: out of range");
	e.key[0] = '\0';
	cfg_error_format(&e, buf, sizeof(buf));
	assert_string_equal(buf, "/etc/n.toml:7: out of range");
	e.line = 0;
	cfg_error_format(&e, buf, sizeof(buf));
	assert_string_equal(buf, "/etc/n.toml: out of range");
	cfg_error_format(&e, buf, 5);
	assert_string_equal(buf, "/etc");
}

static void
test_env(void **state)
{
	struct manta_cfg *c;

	setenv("T_CFG_HOST", "mgr.example", 1);
	setenv("T_CFG_TOKEN", "x.y.z", 1);
	setenv("T_CFG_PORT", "6000", 1);
	setenv("T_CFG_EMPTY", "", 1);
	unsetenv("T_CFG_UNSET");
	c = load_ok(write_text("env.toml",
	    "[identity]\nsecured_token = \"${T_CFG_TOKEN}\"\n"
	    "[network]\nmanager_host = \"${T_CFG_HOST}\"\n"
	    "manager_port = \"${T_CFG_PORT}\"\n"
	    "light_service_host = \"${T_CFG_UNSET:127.0.0.1}\"\n"
	    "light_service_port = \"${T_CFG_UNSET:7000}\"\n"
	    "[metadata]\ndescription = \"on ${T_CFG_HOST}:${T_CFG_PORT}, $HOME, ${T_CFG_EMPTY:dflt}\"\n"
	    "[security]\nuse_tls = \"${T_CFG_UNSET:true}\"\n"
	    "cert_folder = \"${T_CFG_UNSET:~/certs}\"\n"));
	assert_string_equal(c->secured_token, "x.y.z");
	assert_string_equal(c->manager_host, "mgr.example");
	assert_int_equal(c->manager_port, 6000);
	assert_string_equal(c->light_service_host, "127.0.0.1");
	assert_int_equal(c->light_service_port, 7000);
	assert_string_equal(c->meta_description, "on mgr.example:6000, $HOME, dflt");
	assert_true(c->use_tls);
	assert_string_equal(c->cert_folder, "/home/tester/certs");
	cfg_free(c);

	expect_text_error(MINIMAL "[network]\nmanager_host = \"${T_CFG_UNSET}\"\n", 4,
	    "network.manager_host", "T_CFG_UNSET is not set");
	expect_text_error(MINIMAL "[network]\nmanager_host = \"${T_CFG_HOST\"\n", 4,
	    "network.manager_host", "reference");
	expect_text_error(MINIMAL "[network]\nmanager_host = \"${}\"\n", 4,
	    "network.manager_host", "reference");
	setenv("T_CFG_PORT", "70000", 1);
	expect_text_error(MINIMAL "[network]\nmanager_port = \"${T_CFG_PORT}\"\n", 4,
	    "network.manager_port", "out of range");
	setenv("T_CFG_PORT", "60x", 1);
	expect_text_error(MINIMAL "[network]\nmanager_port = \"${T_CFG_PORT}\"\n", 4,
	    "network.manager_port", "expected an integer");
	/* A plain string is still the wrong type for a number. */
	expect_text_error(MINIMAL "[network]\nmanager_port = \"6000\"\n", 4,
	    "network.manager_port", "expected an integer");
	expect_text_error(MINIMAL "[paths]\nstate_dir = \"~nosuchuser_xyz/s\"\n", 4,
	    "paths.state_dir", "no such user");
	unsetenv("T_CFG_HOST");
	unsetenv("T_CFG_TOKEN");
	unsetenv("T_CFG_PORT");
	unsetenv("T_CFG_EMPTY");
}

static void
test_hostile(void **state)
{
	static const unsigned char garbage[] = { 0x00, 0xff, 0xfe, 0x5b, 0x80, 0x0a, 0xc3, 0x28, 0x3d };
	FILE *f;
	char *big, *p;
	struct cfg_error e;
	size_t n;
	const char *path;

	/* Truncated at every byte of the reference: refused or loaded, never worse. */
	f = fopen(cfgpath("reference.toml"), "rb");
	assert_non_null(f);
	big = malloc(1 << 16);
	assert_non_null(big);
	n = fread(big, 1, (1 << 16) - 1, f);
	fclose(f);
	assert_true(n > 100);
	for (size_t cut = 0; cut < n; cut++) {
		struct manta_cfg *c;

		c = cfg_load(write_bytes("trunc.toml", big, cut), &e);
		if (c == NULL)
			assert_true(e.msg[0] != '\0');
		cfg_free(c);
	}
	expect_error(write_bytes("trunc.toml", big, n / 2), -1, NULL, NULL);
	free(big);

	expect_error(write_bytes("garbage.toml", garbage, sizeof(garbage)), -1, "", NULL);
	expect_error(write_text("utf8.toml", MINIMAL "x = \"\xc3\x28\"\n"), 3, "", "syntax error");
	expect_error(write_bytes("nul.toml", MINIMAL "# a\0b\n", sizeof(MINIMAL) + 5), 3, "", "syntax error");
	expect_text_error(MINIMAL "[metadata]\ndescription = \"a\\u0000b\"\n", 4, "", "NUL");
	expect_text_error(MINIMAL "[network]\nmanager_port = 99999999999999999999999\n", 4, "",
	    "64 bits");
	expect_text_error(MINIMAL "[network]\nmanager_port = 9223372036854775807\n", 4,
	    "network.manager_port", "out of range");
	expect_text_error(MINIMAL "[network]\nmanager_port = -9223372036854775808\n", 4,
	    "network.manager_port", "out of range");
	expect_text_error(MINIMAL "[mqtt]\nreconnect_delay = 1e999\n", 4, "", "syntax error");
	expect_text_error(MINIMAL "[mqtt]\nreconnect_delay = inf\n", 4, "mqtt.reconnect_delay",
	    "out of range");

	/* Deep nesting: arrays, inline tables, headers with 100000 parts. */
	big = malloc(400000);
	assert_non_null(big);
	p = big + sprintf(big, "%sx = ", MINIMAL);
	for (int i = 0; i < 100000; i++)
		*p++ = '[';
	for (int i = 0; i < 100000; i++)
		*p++ = ']';
	*p++ = '\n';
	expect_error(write_bytes("deep.toml", big, (size_t)(p - big)), 3, "", NULL);
	p = big + sprintf(big, "%s[a", MINIMAL);
	for (int i = 0; i < 100000; i++)
		p += sprintf(p, ".a");
	p += sprintf(p, "]\n");
	expect_error(write_bytes("deep.toml", big, (size_t)(p - big)), 3, "", "nested");
	p = big + sprintf(big, "%s[a", MINIMAL);
	for (int i = 0; i < 200; i++)
		p += sprintf(p, ".a");
	p += sprintf(p, "]\n");
	expect_error(write_bytes("deep.toml", big, (size_t)(p - big)), -1, "", "nested");
	p = big + sprintf(big, "%sx = ", MINIMAL);
	for (int i = 0; i < 200; i++)
		p += sprintf(p, "{a=");
	*p++ = '1';
	for (int i = 0; i < 200; i++)
		*p++ = '}';
	*p++ = '\n';
	expect_error(write_bytes("deep.toml", big, (size_t)(p - big)), -1, "", "nested");
	free(big);

	/* Large: over 1 MiB is refused before parsing. */
	big = malloc(2 << 20);
	assert_non_null(big);
	memset(big, '#', 2 << 20);
	expect_error(write_bytes("big.toml", big, 2 << 20), 0, "", "too large");
	free(big);

	/* Not a file, or no file. */
	expect_error(tmpdir, 0, "", NULL);
	path = "/nonexistent/dir/n.toml";
	expect_error(path, 0, "", "No such file");
	assert_null(cfg_load(NULL, &e));
	assert_null(cfg_load("/dev/null", NULL));
}

static void
test_shim(void **state)
{
	const char doc[] = "b = 1\na = [1, 2.5, true, \"s\", 1979-05-27, 07:32:00, 1979-05-27T07:32:00Z]\n"
	    "[t]\nz = 1\ny = { q = 2 }\n";
	struct tshim_error err;
	struct tshim_node *root = tshim_parse(doc, sizeof(doc) - 1, "doc", &err);
	const struct tshim_node *a, *t;

	assert_non_null(root);
	assert_int_equal(root->type, TSHIM_TABLE);
	assert_int_equal(root->nkids, 3);
	/* Source order, not toml++'s sorted order. */
	assert_string_equal(root->kids[0].key, "b");
	assert_string_equal(root->kids[1].key, "a");
	assert_string_equal(root->kids[2].key, "t");
	a = tshim_get(root, "a");
	assert_non_null(a);
	assert_int_equal(a->line, 2);
	assert_int_equal(a->nkids, 7);
	assert_int_equal(a->kids[0].type, TSHIM_INT);
	assert_int_equal(a->kids[1].type, TSHIM_FLOAT);
	assert_int_equal(a->kids[2].type, TSHIM_BOOL);
	assert_string_equal(a->kids[3].str, "s");
	assert_int_equal(a->kids[4].type, TSHIM_DATETIME);
	assert_string_equal(a->kids[4].str, "1979-05-27");
	assert_string_equal(a->kids[5].str, "07:32:00");
	assert_string_equal(a->kids[6].str, "1979-05-27T07:32:00Z");
	t = tshim_get(root, "t");
	assert_int_equal(t->line, 3);
	assert_string_equal(t->kids[0].key, "z");
	assert_true(t->kids[1].inline_table);
	assert_int_equal(t->kids[1].line, 5);
	assert_null(tshim_get(root, "nope"));
	assert_null(tshim_get(a, "x"));
	tshim_free(root);

	assert_null(tshim_parse("a = [\n1,\n", 9, "doc", &err));
	assert_true(err.line >= 2);
	assert_true(err.msg[0] != '\0');
	assert_null(tshim_parse("a = 1\na = 2\n", 12, "doc", &err));
	assert_int_equal(err.line, 2);
	assert_true(err.column > 0);
	tshim_free(NULL);
}

static struct manta_cfg *
load_buffer(const char *name, char *buf, size_t len)
{
	return load_ok(write_bytes(name, buf, len));
}

static void
test_write_default(void **state)
{
	struct manta_cfg *c;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(cfg_write_default(f, "inst", "t1.t2.t3"), 0);
	fclose(f);
	assert_non_null(strstr(buf, "# "));
	/* Sections in the reference order. */
	{
		static const char *const order[] = { "[identity]", "[metadata]", "[network]",
		    "[mqtt]", "[containers]", "[containers.log_config]",
		    "[containers.log_config.config]", "[datasets]", "[datasets.mappings]",
		    "[tasks]", "[resources]", "[logging]", "[security]" };
		const char *last = buf;

		for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
			const char *p = strstr(buf, order[i]);

			assert_non_null(p);
			assert_true(p >= last);
			last = p;
		}
	}
	c = load_buffer("w.toml", buf, len);
	assert_defaults_net(c, "none");
	assert_string_equal(c->secured_token, "t1.t2.t3");
	assert_string_equal(c->instance, "inst");
	assert_non_null(c->meta_created_at);
	assert_int_equal(strlen(c->meta_created_at), 20);
	cfg_free(c);
	free(buf);

	/* Without a token: $MANTA_TOKEN, else the placeholder. */
	buf = NULL;
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(cfg_write_default(f, NULL, NULL), 0);
	fclose(f);
	unsetenv("MANTA_TOKEN");
	c = load_buffer("w.toml", buf, len);
	assert_defaults_net(c, "none");
	assert_string_equal(c->secured_token, CFG_TOKEN_UNSET);
	assert_string_equal(c->instance, "default");
	cfg_free(c);
	setenv("MANTA_TOKEN", "e.f.g", 1);
	c = load_buffer("w.toml", buf, len);
	assert_string_equal(c->secured_token, "e.f.g");
	cfg_free(c);
	unsetenv("MANTA_TOKEN");
	free(buf);
}

static char *
print_to_string(const struct manta_cfg *c, bool mask)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	cfg_print(f, c, mask);
	fclose(f);
	return buf;
}

static void
test_print(void **state)
{
	struct manta_cfg *c, *c2;
	char *masked, *plain, *again;

	c = load_ok(write_text("p.toml", "[identity]\nsecured_token = \"sekrit.part.two\"\n"
	    "alias = \"al\"\n[mqtt]\ntopics = [\"q\\\"uote\", \"tab\\t\"]\n"
	    "[datasets.mappings]\n\"with space\" = \"/x\"\n"
	    "[datasets.permissions]\n\"with space\" = [\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\", "
	    "\"0123456789abcdef0123456789abcdef\"]\nnone = []\n"));
	masked = print_to_string(c, true);
	assert_null(strstr(masked, "sekrit"));
	assert_non_null(strstr(masked, "secured_token = \"***\""));
	assert_non_null(strstr(masked, "alias = \"al\""));
	plain = print_to_string(c, false);
	assert_non_null(strstr(plain, "secured_token = \"sekrit.part.two\""));
	assert_non_null(strstr(plain, "\n[datasets.permissions]\n\"with space\" = "
	    "[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"0123456789abcdef0123456789abcdef\"]\n"
	    "none = []\n"));
	/* Unset, task_token_required is not printed as a value. */
	assert_null(strstr(plain, "\ntask_token_required ="));
	{
		static const char *const order[] = { "[identity]", "[metadata]", "[network]",
		    "[mqtt]", "[containers]", "[datasets]", "[tasks]", "[resources]",
		    "[logging]", "[security]", "[paths]" };
		const char *last = plain;

		for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
			const char *p = strstr(plain, order[i]);

			assert_non_null(p);
			assert_true(p >= last);
			last = p;
		}
	}
	/* The effective config reads back to itself. */
	c2 = load_ok(write_text("p2.toml", plain));
	again = print_to_string(c2, false);
	assert_string_equal(plain, again);
	assert_string_equal(c2->topics[0], "q\"uote");
	assert_string_equal(c2->mappings[0].name, "with space");
	assert_int_equal(c2->npermissions, 2);
	assert_false(c2->task_token_required_set);
	free(again);
	cfg_free(c2);
	free(masked);
	free(plain);
	cfg_free(c);

	/* An explicit task_token_required stays explicit. */
	c = load_ok(write_text("p.toml", MINIMAL "[security]\ntask_token_required = false\n"));
	plain = print_to_string(c, false);
	assert_non_null(strstr(plain, "\ntask_token_required = false\n"));
	assert_null(strstr(plain, "[datasets.permissions]"));
	c2 = load_ok(write_text("p2.toml", plain));
	assert_true(c2->task_token_required_set);
	again = print_to_string(c2, false);
	assert_string_equal(plain, again);
	free(again);
	free(plain);
	cfg_free(c2);
	cfg_free(c);

	/* Likewise for the reference file. */
	c = load_ok(cfgpath("reference.toml"));
	plain = print_to_string(c, false);
	c2 = load_ok(write_text("p2.toml", plain));
	again = print_to_string(c2, false);
	assert_string_equal(plain, again);
	free(again);
	free(plain);
	cfg_free(c2);
	cfg_free(c);
}

static void
test_resolve(void **state)
{
	char *p;

	unsetenv("MANTA_CONFIG");
	p = cfg_resolve_path("/x/y.toml", "n");
	assert_string_equal(p, "/x/y.toml");
	free(p);
	p = cfg_resolve_path(NULL, NULL);
	assert_string_equal(p, "/home/tester/.manta/nodes/default.toml");
	free(p);
	p = cfg_resolve_path(NULL, "n2");
	assert_string_equal(p, "/home/tester/.manta/nodes/n2.toml");
	free(p);
	assert_null(cfg_resolve_path(NULL, "../evil"));
	setenv("MANTA_CONFIG", "/env.toml", 1);
	p = cfg_resolve_path(NULL, "n2");
	assert_string_equal(p, "/env.toml");
	free(p);
	p = cfg_resolve_path("/c.toml", NULL);
	assert_string_equal(p, "/c.toml");
	free(p);
	unsetenv("MANTA_CONFIG");
}

static void
test_helpers(void **state)
{
	uint64_t b;

	assert_int_equal(cfg_parse_size("1024", &b), 0);
	assert_int_equal(b, 1024);
	assert_int_equal(cfg_parse_size("4G", &b), 0);
	assert_int_equal(b, 4ULL << 30);
	assert_int_equal(cfg_parse_size("1.5g", &b), 0);
	assert_int_equal(b, 3ULL << 29);
	assert_int_equal(cfg_parse_size("512MiB", &b), 0);
	assert_int_equal(b, 512ULL << 20);
	assert_int_equal(cfg_parse_size("10 mb", &b), 0);
	assert_int_equal(b, 10ULL << 20);
	assert_int_equal(cfg_parse_size("", &b), -1);
	assert_int_equal(cfg_parse_size("G", &b), -1);
	assert_int_equal(cfg_parse_size("1.G", &b), -1);
	assert_int_equal(cfg_parse_size("-1", &b), -1);
	assert_int_equal(cfg_parse_size("4 G B", &b), -1);
	assert_int_equal(cfg_parse_size("18446744073709551616", &b), -1);
	assert_int_equal(cfg_parse_size("20000000000T", &b), -1);
	assert_true(cfg_name_valid("node-1.a_b"));
	assert_false(cfg_name_valid(""));
	assert_false(cfg_name_valid(".hidden"));
	assert_false(cfg_name_valid("-x"));
	assert_false(cfg_name_valid("a/b"));
	assert_false(cfg_name_valid("a b"));
	assert_true(cfg_token_valid("eyJ-_.eyJ.sig="));
	assert_false(cfg_token_valid("a.b"));
	assert_false(cfg_token_valid(".b.c"));
	assert_false(cfg_token_valid("a.b."));
	assert_false(cfg_token_valid("a.b.c\n"));
}

static int
setup(void **state)
{
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	find_configs();
	/* Fixed home and runtime dir so that expected paths are known. */
	setenv("HOME", "/home/tester", 1);
	setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
	unsetenv("MANTA_CONFIG");
	unsetenv("MANTA_TOKEN");
	return 0;
}

/* Removes every file the tests wrote (a list of names fell behind the
 * tests and left the directory behind), then the directory. */
static int
teardown(void **state)
{
	char path[512];
	struct dirent *e;
	DIR *d;

	if ((d = opendir(tmpdir)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	return rmdir(tmpdir);
}

/* cfg_alias: what the reference's `manta_node start` makes the alias. */
static void
test_alias(void **state)
{
	struct manta_cfg *c;

	c = load_ok(write_text("a.toml", MINIMAL "[metadata]\nname = \"edge-7\"\n"));
	assert_true(c->meta_name_set);
	assert_string_equal(cfg_alias(c), "edge-7");
	cfg_free(c);
	c = load_ok(write_text("b.toml", "[identity]\nsecured_token = \"" TOKEN "\"\n"
	    "alias = \"cafe\"\n[metadata]\nname = \"edge-7\"\n"));
	assert_string_equal(cfg_alias(c), "cafe");
	cfg_free(c);
}

/* containers.registries and insecure_registries: arrays of non-empty
 * strings; registry_auth a path. */
static void
test_registries(void **state)
{
	struct manta_cfg *c;

	(void)state;
	c = load_ok(write_text("x.toml", MINIMAL "[containers]\n"
	    "registries = [\"r.example:5000\", \"docker.io\"]\n"
	    "insecure_registries = [\"127.0.0.1:5000\"]\n"
	    "registry_auth = \"/etc/manta/auth.json\"\n"));
	assert_int_equal(c->registries.n, 2);
	assert_string_equal(c->registries.v[0], "r.example:5000");
	assert_string_equal(c->registries.v[1], "docker.io");
	assert_int_equal(c->insecure_registries.n, 1);
	assert_string_equal(c->insecure_registries.v[0], "127.0.0.1:5000");
	assert_string_equal(c->registry_auth, "/etc/manta/auth.json");
	cfg_free(c);
	c = load_ok(write_text("w.toml", MINIMAL));
	assert_int_equal(c->registries.n, 0);
	assert_null(c->registry_auth);
	cfg_free(c);
	expect_text_error(MINIMAL "[containers]\nregistries = \"x\"\n", 4,
	    "containers.registries", "expected an array of strings");
	expect_text_error(MINIMAL "[containers]\ninsecure_registries = [\"a\", \"\"]\n", 4,
	    "containers.insecure_registries[1]", "must not be empty");
	expect_text_error(MINIMAL "[containers]\nregistries = [1]\n", 4,
	    "containers.registries[0]", NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_alias),
		cmocka_unit_test(test_reference),
		cmocka_unit_test(test_paths_and_extras),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_error_format),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_shim),
		cmocka_unit_test(test_write_default),
		cmocka_unit_test(test_print),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_registries),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
