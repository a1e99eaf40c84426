/* fuzz_cfg: the configuration file, as every daemon and mantactl load it:
 * the input is written to a file and given to cfg_load (toml++ through
 * toml_shim, then the schema walk). A file that loads must hold values in
 * range, and what cfg_print writes of it (`mantactl config show`) must
 * load again and print the same. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "fuzz.h"
#include "log.h"

static char dir[64];
static char file1[128], file2[128];

static void
cleanup(void)
{
	unlink(file1);
	unlink(file2);
	rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz_cfg", LOG_LVL_ERROR);
	snprintf(dir, sizeof(dir), "/tmp/manta-fuzz-cfg.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("fuzz_cfg: mkdtemp");
		exit(1);
	}
	snprintf(file1, sizeof(file1), "%s/fuzz.toml", dir);
	snprintf(file2, sizeof(file2), "%s/printed.toml", dir);
	atexit(cleanup);
	/* The same environment for every run: ${VAR} and ~ expansion read it. */
	setenv("HOME", dir, 1);
	setenv("XDG_RUNTIME_DIR", dir, 1);
	setenv("FUZZ_TOKEN", "aaa.bbb.ccc", 1);
	setenv("FUZZ_PORT", "50051", 1);
	setenv("FUZZ_EMPTY", "", 1);
	unsetenv("MANTA_TOKEN");
	unsetenv("MANTA_CONFIG");
	return 0;
}

static void
write_file(const char *path, const void *data, size_t size)
{
	const uint8_t *p = data;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd == -1) {
		perror("fuzz_cfg: open");
		abort();
	}
	while (size > 0) {
		ssize_t n = write(fd, p, size);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			perror("fuzz_cfg: write");
			abort();
		}
		p += n;
		size -= (size_t)n;
	}
	close(fd);
}

static char *
print(const struct manta_cfg *c, size_t *len)
{
	char *out = NULL;
	FILE *f = open_memstream(&out, len);

	FUZZ_ASSERT(f != NULL);
	cfg_print(f, c, false);
	FUZZ_ASSERT(fclose(f) == 0);
	return out;
}

/* What the daemons take for granted once cfg_load has returned. */
static void
check_loaded(const struct manta_cfg *c)
{
	FUZZ_ASSERT(c->file != NULL && c->file[0] == '/');
	FUZZ_ASSERT(c->secured_token != NULL && cfg_token_valid(c->secured_token));
	FUZZ_ASSERT(c->instance != NULL && cfg_name_valid(c->instance));
	FUZZ_ASSERT(c->meta_name != NULL);
	FUZZ_ASSERT(c->manager_host != NULL && c->manager_host[0] != '\0');
	FUZZ_ASSERT(c->manager_port >= 1 && c->manager_port <= 65535);
	FUZZ_ASSERT(c->light_service_port == 0 ||
	    (c->light_service_port >= 1024 && c->light_service_port <= 65535));
	FUZZ_ASSERT(c->broker_port >= 0 && c->broker_port <= 65535);
	FUZZ_ASSERT(c->ping_interval >= 1);
	FUZZ_ASSERT(c->reconnect_delay >= 0 && c->reconnect_delay <= 86400);
	FUZZ_ASSERT(c->gpu_enabled >= -1 && c->gpu_enabled <= 1);
	FUZZ_ASSERT(c->memory_limit_bytes >= 4096);
	FUZZ_ASSERT(c->cpu_limit > 0 && c->cpu_limit <= 4096);
	FUZZ_ASSERT(c->runtime != NULL && (strcmp(c->runtime, "runc") == 0 ||
	    strcmp(c->runtime, "crun") == 0 || c->runtime[0] == '/'));
	FUZZ_ASSERT(c->network != NULL && (strcmp(c->network, "host") == 0 ||
	    strcmp(c->network, "none") == 0));
	FUZZ_ASSERT(c->log_max_file_count >= 1 && c->log_max_file_count <= 1000);
	FUZZ_ASSERT(c->log_max_size_bytes > 0 && c->log_max_file_bytes > 0);
	FUZZ_ASSERT(c->image_dir != NULL && c->image_dir[0] != '\0');
	FUZZ_ASSERT(c->base_path != NULL && c->base_path[0] != '\0');
	FUZZ_ASSERT(c->max_concurrent >= 1 && c->max_concurrent <= 1024);
	FUZZ_ASSERT(c->reserve_cpu_percent >= 0 && c->reserve_cpu_percent <= 50);
	FUZZ_ASSERT(c->max_disk_usage_percent >= 0 && c->max_disk_usage_percent <= 100);
	FUZZ_ASSERT(c->monitor_interval >= 1);
	FUZZ_ASSERT(c->log_level != NULL && log_level_parse(c->log_level) >= 0);
	FUZZ_ASSERT(c->run_dir != NULL && c->run_dir[0] != '\0');
	FUZZ_ASSERT(c->state_dir != NULL && c->state_dir[0] != '\0');
	for (size_t i = 0; i < c->ntopics; i++)
		FUZZ_ASSERT(c->topics[i] != NULL && c->topics[i][0] != '\0');
	for (size_t i = 0; i < c->nmappings; i++) {
		const char *n = c->mappings[i].name;

		FUZZ_ASSERT(n != NULL && n[0] != '\0' && strchr(n, '/') == NULL &&
		    strcmp(n, ".") != 0 && strcmp(n, "..") != 0);
		FUZZ_ASSERT(c->mappings[i].path != NULL && c->mappings[i].path[0] != '\0');
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg_error err;
	struct manta_cfg *c, *c2;
	char line[2048], *out1, *out2;
	size_t len1, len2;

	write_file(file1, data, size);
	c = cfg_load(file1, &err);
	if (c == NULL) {
		/* Refused: daemon_config prints this line and exits 100. */
		FUZZ_ASSERT(err.msg[0] != '\0');
		FUZZ_ASSERT(err.line >= 0 && err.column >= 0);
		cfg_error_format(&err, line, sizeof(line));
		FUZZ_ASSERT(strlen(line) < sizeof(line));
		FUZZ_SAY("refused: %s\n", line);
		return 0;
	}
	FUZZ_SAY("loaded: instance %s\n", c->instance);
	check_loaded(c);

	out1 = print(c, &len1);
	/* ${VAR} has no escape: a value that expanded to "${" cannot be
	 * written back as itself. Anything else must load again. */
	if (strstr(out1, "${") != NULL) {
		FUZZ_SAY("not printed back: a value holds \"${\"\n");
	} else {
		write_file(file2, out1, len1);
		c2 = cfg_load(file2, &err);
		if (c2 == NULL) {
			cfg_error_format(&err, line, sizeof(line));
			fprintf(stderr, "printed config refused: %s\n--- printed:\n%s\n", line, out1);
		}
		FUZZ_ASSERT(c2 != NULL);
		out2 = print(c2, &len2);
		if (len1 != len2 || memcmp(out1, out2, len1) != 0)
			fprintf(stderr, "--- printed:\n%s\n--- printed again:\n%s\n", out1, out2);
		FUZZ_ASSERT(len1 == len2 && memcmp(out1, out2, len1) == 0);
		free(out2);
		cfg_free(c2);
	}
	free(out1);
	cfg_free(c);
	return 0;
}
