/* supervise: the init-style supervisor behind "mantactl start". */
#ifndef MANTACTL_SUPERVISE_H
#define MANTACTL_SUPERVISE_H

#include "cfg.h"

/* Runs the supervisor loop until SIGTERM/SIGINT or a Shutdown request.
 * ready_fd (or -1) gets "\n" once every daemon is up, or a one-line
 * reason followed by close if start-up fails. Returns an exit status. */
int supervise_run(struct manta_cfg *cfg, const char *cfg_path, int lock_fd, int ready_fd);

#endif
