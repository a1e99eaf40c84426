/* mantactl: operator tool and init-style supervisor of a manta node. */
#include <stdio.h>
#include <string.h>

#include "cmd_config.h"
#include "log.h"
#include "mantactl.h"

const char *ctl_global_config;

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
	{ "start", cmd_start, "start [NAME] [-c FILE] [-d]   start the supervisor and the daemons" },
	{ "status", cmd_status, "status [NAME] [-c FILE] [--json]   node status (exit 3: not running)" },
	{ "stop", cmd_stop, "stop [NAME] [-c FILE] [--timeout S]   stop gracefully: drain (S s, default 30), then the daemons" },
	{ "drain", cmd_drain, "drain [NAME] [-c FILE] [--wait] [--timeout S]   take no new task; --wait: until none runs" },
	{ "undrain", cmd_undrain, "undrain [NAME] [-c FILE]   take tasks again after a drain" },
	{ "tasks", cmd_tasks, "tasks [NAME] [-c FILE] [--json]   the node's tasks (exit 3: not running)" },
	{ "logs", cmd_logs, "logs [NAME] TASK_ID [-c FILE] [-f]   a task's output (-f: follow)" },
	{ "image", cmd_image, "image import [NAME] IMAGE DIR_OR_TAR | image ls [NAME] [--json]" },
	{ "audit", cmd_audit, "audit show|verify|head [NAME] [-c FILE] [--json] [--head [SEQ:]HASH]   the audit trail (verify: exit 1 at the first bad line; head: its last entry, to keep elsewhere)" },
	{ "metrics", cmd_metrics, "metrics [NAME] [-c FILE]   the node's figures in the Prometheus text format (exit 3: not running)" },
	{ "top", cmd_top, "top [NAME] [-c FILE] [--once] [--minutes M]   resource history from res.db (CPU, memory, tasks)" },
	{ "cluster", cmd_cluster, "cluster start N [-c TEMPLATE] | cluster status [--json] | cluster stop   N local node instances" },
	{ "config", cmd_config, "config init|show|check [NAME] [-c FILE]" },
	{ "secret", cmd_secret, "secret init|seal-token [-w]|seal-key KEYFILE [NAME] [-c FILE]   seal the token and keys at rest" },
};

static int
usage(FILE *f)
{
	fprintf(f, "usage: mantactl [-c FILE] COMMAND [ARGS]\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  mantactl %s\n", commands[i].help);
	return f == stdout ? CTL_OK : CTL_USAGE;
}

int
main(int argc, char **argv)
{
	int i = 1;

	log_init("mantactl", LOG_LVL_INFO);
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			ctl_global_config = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			return usage(stdout);
		} else {
			return usage(stderr);
		}
	}
	if (i >= argc)
		return usage(stderr);
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (strcmp(argv[i], commands[k].name) == 0)
			return commands[k].fn(argc - i, argv + i);
	fprintf(stderr, "mantactl: fatal: unknown command: %s\n", argv[i]);
	return usage(stderr);
}
