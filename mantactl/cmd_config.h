/* mantactl config: init, show and check an instance's configuration. */
#ifndef MANTACTL_CMD_CONFIG_H
#define MANTACTL_CMD_CONFIG_H

/* argv[0] is "config", argv[1] one of init|show|check. Exit status: 0 ok,
 * 1 failure (bad config, unwritable file), 2 bad usage. */
int cmd_config(int argc, char **argv);

#endif
