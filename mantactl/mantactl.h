/* mantactl: the operator tool; one file per subcommand (cmd_*.c) behind the
 * name-to-function table in main.c. */
#ifndef MANTACTL_H
#define MANTACTL_H

#include <stdbool.h>

#include "cfg.h"
#include "ipc.h"

/* Exit statuses (INTERFACE.md). */
#define CTL_OK 0
#define CTL_FAIL 1
#define CTL_USAGE 2
#define CTL_NOT_RUNNING 3

/* -c FILE given before the subcommand ("mantactl -c F status"). */
extern const char *ctl_global_config;

/* Options every subcommand takes: [NAME] [-c FILE]; extra single-letter
 * flags are listed in flags ("d" for -d) and reported in *seen. Returns 0 or
 * CTL_USAGE (after printing usage). */
struct ctl_args {
	const char *name;
	const char *config;
	bool json;
	bool wait;
	bool follow;
	bool force;
	const char *timeout;
	char flags_seen[16];
	int npos;		/* positional arguments beyond NAME, in pos[] */
	const char *pos[8];
};
int ctl_parse(int argc, char **argv, const char *usage, int max_pos, struct ctl_args *a);
bool ctl_flag(const struct ctl_args *a, char f);

/* Loads the instance's config (errors printed with file, line and key).
 * NULL on failure. */
struct manta_cfg *ctl_load_config(const struct ctl_args *a);
/* Directory of the running mantactl binary (for the daemons), malloc'd. */
char *ctl_bin_dir(void);
/* Path of the supervisor's lock file for cfg, malloc'd. */
char *ctl_lock_path(const struct manta_cfg *c);
/* Pid holding the supervisor lock, 0 if the instance is not running. */
int ctl_running_pid(const struct manta_cfg *c);

/* req to the endpoint name of run_dir; the reply when its body is want,
 * else NULL (no answer in timeout_ms, an error Reply). */
ipc_msg *ctl_call(const char *run_dir, const char *name, const ipc_msg *req,
    Manta__Ipc__Msg__BodyCase want, int timeout_ms);
/* A StatusRequest to the endpoint name ("supervise", "beat", ...) of
 * run_dir; the StatusReply, or NULL when it does not answer in a second. */
ipc_msg *ctl_ask_status(const char *run_dir, const char *name);

int cmd_start(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_drain(int argc, char **argv);
int cmd_undrain(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_tasks(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_secret(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_cluster(int argc, char **argv);

/* Puts options before positionals ("tasks node1 --json" works); for
 * ctl_parse, which stops at the first positional. */
void ctl_options_first(int argc, char **argv);
/* After a failed request to mantad-exec: prints why and returns
 * CTL_NOT_RUNNING (no supervisor) or CTL_FAIL (exec does not answer). */
int ctl_exec_unreachable(const struct manta_cfg *c);

#endif
