#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "mantactl.h"

static int
add_pos(struct ctl_args *a, const char *arg, int max_pos)
{
	if (a->name == NULL)
		a->name = arg;
	else if (a->npos < max_pos && a->npos < 8)
		a->pos[a->npos++] = arg;
	else
		return -1;
	return 0;
}

int
ctl_parse(int argc, char **argv, const char *usage, int max_pos, struct ctl_args *a)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "wait", no_argument, NULL, 'w' },
		{ "follow", no_argument, NULL, 'f' },
		{ "force", no_argument, NULL, 'F' },
		{ "timeout", required_argument, NULL, 't' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, nseen = 0;

	memset(a, 0, sizeof(*a));
	a->config = ctl_global_config;
	optind = 1;
	/* Options and positionals in any order ("status node1 --json"): with
	 * "+", getopt stops at each positional, which is taken here. */
	for (;;) {
		ch = getopt_long(argc, argv, "+c:dfFwjht:o:", longopts, NULL);
		if (ch == -1) {
			if (optind >= argc)
				break;
			if (strcmp(argv[optind - 1], "--") == 0 && optind > 1) {
				/* After "--" everything is positional. */
				for (; optind < argc; optind++)
					if (add_pos(a, argv[optind], max_pos) == -1)
						goto toomany;
				break;
			}
			if (add_pos(a, argv[optind], max_pos) == -1)
				goto toomany;
			optind++;
			continue;
		}
		switch (ch) {
		case 'c':
			a->config = optarg;
			break;
		case 'j':
			a->json = true;
			break;
		case 'w':
			a->wait = true;
			break;
		case 'f':
			a->follow = true;
			break;
		case 'F':
			a->force = true;
			break;
		case 't':
			a->timeout = optarg;
			break;
		case 'h':
			printf("usage: mantactl %s\n", usage);
			exit(0);
		case 'd':
			if (nseen < (int)sizeof(a->flags_seen) - 1)
				a->flags_seen[nseen++] = (char)ch;
			break;
		default:
			fprintf(stderr, "usage: mantactl %s\n", usage);
			return CTL_USAGE;
		}
	}
	return 0;
toomany:
	fprintf(stderr, "usage: mantactl %s\n", usage);
	return CTL_USAGE;
}

bool
ctl_flag(const struct ctl_args *a, char f)
{
	return strchr(a->flags_seen, f) != NULL;
}

struct manta_cfg *
ctl_load_config(const struct ctl_args *a)
{
	struct cfg_error err;
	struct manta_cfg *c;
	char *path, line[1200];

	if ((path = cfg_resolve_path(a->config, a->name)) == NULL) {
		log_errorx("unable to find a config file");
		return NULL;
	}
	memset(&err, 0, sizeof(err));
	c = cfg_load(path, &err);
	free(path);
	if (c == NULL) {
		cfg_error_format(&err, line, sizeof(line));
		fprintf(stderr, "mantactl: fatal: bad config: %s\n", line);
		return NULL;
	}
	return c;
}

char *
ctl_bin_dir(void)
{
	char buf[PATH_MAX], *slash;
	const char *env = getenv("MANTA_BIN_DIR");
	ssize_t n;

	if (env != NULL && *env != '\0')
		return strdup(env);
	n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return strdup("/usr/local/bin");
	buf[n] = '\0';
	if ((slash = strrchr(buf, '/')) != NULL)
		*slash = '\0';
	return strdup(buf);
}

char *
ctl_lock_path(const struct manta_cfg *c)
{
	char *p;

	if (asprintf(&p, "%s/supervise.lock", c->run_dir) == -1)
		return NULL;
	return p;
}

int
ctl_running_pid(const struct manta_cfg *c)
{
	char *path = ctl_lock_path(c), buf[32];
	int fd, pid = 0;
	ssize_t n;

	if (path == NULL)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd == -1)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		/* Nobody holds it: not running. */
		close(fd);
		return 0;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = '\0';
		pid = atoi(buf);
	}
	close(fd);
	return pid > 0 ? pid : 1;
}

ipc_msg *
ctl_call(const char *run_dir, const char *name, const ipc_msg *req,
    Manta__Ipc__Msg__BodyCase want, int timeout_ms)
{
	ipc_msg *rep = NULL;

	if (ipc_call(run_dir, name, req, &rep, timeout_ms) == -1)
		return NULL;
	if (rep->body_case != want) {
		ipc_msg_free(rep);
		return NULL;
	}
	return rep;
}

ipc_msg *
ctl_ask_status(const char *run_dir, const char *name)
{
	ipc_msg req = MANTA__IPC__MSG__INIT;
	Manta__Ipc__StatusRequest sr = MANTA__IPC__STATUS_REQUEST__INIT;

	req.body_case = MANTA__IPC__MSG__BODY_STATUS_REQ;
	req.status_req = &sr;
	return ctl_call(run_dir, name, &req, MANTA__IPC__MSG__BODY_STATUS, 1000);
}
