/* mantactl cluster start N [NAME] [-c TEMPLATE] | cluster status [NAME]
 * [-c TEMPLATE] [--json] | cluster stop [NAME] [-c TEMPLATE]: N local node
 * instances made from one template config, as the reference's
 * `manta_node cluster` (to try a swarm on one machine).
 *
 * Instance i (1..N) of template T is an ordinary instance whose config
 * <T.state_dir>/cluster/<i>.toml is T with: metadata.name and
 * identity.alias "<T's alias or name>-<i>" (so a node id of its own),
 * paths.state_dir <T.state_dir>/cluster/<i>, paths.run_dir <T.run_dir>/c<i>,
 * a Light port of its own (the first free ones after T's), and T's image
 * store as containers.image_dir, which the instances only read. Every
 * other mantactl command addresses one instance with -c that file. start
 * and stop run `mantactl start -d` / `mantactl stop` for the instances,
 * CLUSTER_PARALLEL at a time. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "ipc.h"
#include "json.h"
#include "log.h"
#include "mantactl.h"

#define CLUSTER_USAGE \
	"cluster start N [NAME] [-c TEMPLATE] | cluster status [NAME] [-c TEMPLATE] [--json]" \
	" | cluster stop [NAME] [-c TEMPLATE]"
#define CLUSTER_MAX 1000
#define CLUSTER_PARALLEL 8

struct cluster {
	struct manta_cfg *tmpl;
	char *dir;			/* <T.state_dir>/cluster */
	int n;				/* instances found (1..n) */
};

static char *
instance_config(const struct cluster *cl, int i)
{
	char *p;

	return asprintf(&p, "%s/%d.toml", cl->dir, i) == -1 ? NULL : p;
}

/* The highest i with an <i>.toml in the cluster dir (0: none). */
static int
count_instances(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char *end;
		long v = strtol(e->d_name, &end, 10);

		if (end != e->d_name && strcmp(end, ".toml") == 0 && v > n && v <= CLUSTER_MAX)
			n = (int)v;
	}
	closedir(d);
	return n;
}

/* Whether TCP port is free on the Light address (any address when it is
 * not IPv4: the stricter test). */
static bool
port_free(const char *host, int port)
{
	struct sockaddr_in sa;
	int fd, one = 1;
	bool ok;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (host == NULL || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		sa.sin_addr.s_addr = htonl(INADDR_ANY);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return false;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static int
next_port(const struct manta_cfg *t, int from)
{
	for (int p = from; p <= 65535; p++)
		if (port_free(t->light_service_host, p))
			return p;
	return -1;
}

static int
replace(char **field, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
replace(char **field, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int rc;

	va_start(ap, fmt);
	rc = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (rc == -1)
		return -1;
	free(*field);
	*field = s;
	return 0;
}

/* Writes instance i's config from the template (reloaded for each, so
 * that nothing of one instance leaks into the next), then loads it back:
 * what was written must be a valid config. */
static int
write_instance(const struct cluster *cl, const char *tmpl_path, int i, int port)
{
	struct cfg_error err;
	struct manta_cfg *c, *check;
	const char *base;
	char *path = instance_config(cl, i), *tmp = NULL, line[1200];
	FILE *f;
	int rc = -1;

	memset(&err, 0, sizeof(err));
	if (path == NULL || (c = cfg_load(tmpl_path, &err)) == NULL) {
		free(path);
		return -1;
	}
	base = cl->tmpl->alias != NULL ? cl->tmpl->alias : cl->tmpl->instance;
	if (replace(&c->meta_name, "%s-%d", cl->tmpl->instance, i) == -1 ||
	    replace(&c->alias, "%s-%d", base, i) == -1 ||
	    replace(&c->state_dir, "%s/%d", cl->dir, i) == -1 ||
	    replace(&c->run_dir, "%s/c%d", cl->tmpl->run_dir, i) == -1 ||
	    replace(&c->image_dir, "%s", cl->tmpl->image_dir) == -1 ||
	    replace(&c->log_filename, "%s/%d/manta_node.log", cl->dir, i) == -1 ||
	    asprintf(&tmp, "%s.tmp", path) == -1)
		goto out;
	c->light_service_port = port;
	if ((f = fopen(tmp, "w")) == NULL) {
		log_warn("unable to write %s", tmp);
		goto out;
	}
	fprintf(f, "# instance %d of the cluster of %s (mantactl cluster start):"
	    " made from that file; rewritten by the next cluster start.\n", i, tmpl_path);
	cfg_print(f, c, false);
	if (fclose(f) != 0 || rename(tmp, path) == -1) {
		log_warn("unable to write %s", path);
		goto out;
	}
	memset(&err, 0, sizeof(err));
	if ((check = cfg_load(path, &err)) == NULL) {
		cfg_error_format(&err, line, sizeof(line));
		log_errorx("the instance config does not load back: %s", line);
		goto out;
	}
	cfg_free(check);
	rc = 0;
out:
	if (rc == -1 && tmp != NULL)
		unlink(tmp);
	free(tmp);
	free(path);
	cfg_free(c);
	return rc;
}

/* Runs `mantactl VERB -c <i>.toml [extra]` for i in 1..n, at most
 * CLUSTER_PARALLEL at a time; returns how many failed. */
static int
run_all(const struct cluster *cl, int n, const char *verb, const char *extra)
{
	char *dir = ctl_bin_dir(), *self = NULL;
	int running = 0, failed = 0, next = 1, status;
	pid_t pid = -1;

	if (dir == NULL || asprintf(&self, "%s/mantactl", dir) == -1) {
		free(dir);
		return n;
	}
	free(dir);
	fflush(stdout);
	while (next <= n || running > 0) {
		if (next <= n && running < CLUSTER_PARALLEL) {
			char *cfg = instance_config(cl, next);

			if (cfg != NULL && (pid = fork()) == 0) {
				/* Their "node X started" lines: one summary instead. */
				int null = open("/dev/null", O_WRONLY);

				if (null >= 0)
					dup2(null, STDOUT_FILENO);
				execl(self, "mantactl", verb, "-c", cfg, extra, (char *)NULL);
				_exit(127);
			}
			if (cfg == NULL || pid == -1) {
				log_warn("unable to run mantactl %s for instance %d", verb, next);
				failed++;
			} else {
				running++;
			}
			free(cfg);
			next++;
			continue;
		}
		if ((pid = wait(&status)) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		running--;
		if (!WIFEXITED(status) || (WEXITSTATUS(status) != CTL_OK &&
		    !(strcmp(verb, "stop") == 0 && WEXITSTATUS(status) == CTL_NOT_RUNNING)))
			failed++;
	}
	free(self);
	return failed;
}

static int
cluster_start(struct cluster *cl, const char *tmpl_path, const char *count)
{
	char *end, *cfg;
	long n;
	int port, failed;

	errno = 0;
	n = strtol(count, &end, 10);
	if (errno || *count == '\0' || *end != '\0' || n < 1 || n > CLUSTER_MAX) {
		fprintf(stderr, "mantactl: cluster start takes N from 1 to %d\nusage: mantactl %s\n",
		    CLUSTER_MAX, CLUSTER_USAGE);
		return CTL_USAGE;
	}
	/* One cluster per template: refuse to rewrite configs under a
	 * running instance. */
	for (int i = 1; i <= cl->n; i++) {
		struct manta_cfg *c;
		struct cfg_error err;

		memset(&err, 0, sizeof(err));
		if ((cfg = instance_config(cl, i)) == NULL)
			return CTL_FAIL;
		c = cfg_load(cfg, &err);
		free(cfg);
		if (c != NULL && ctl_running_pid(c) > 0) {
			fprintf(stderr, "mantactl: fatal: the cluster of %s runs already"
			    " (instance %d): mantactl cluster stop first\n", tmpl_path, i);
			cfg_free(c);
			return CTL_FAIL;
		}
		cfg_free(c);
	}
	if (daemon_mkdirs(cl->dir, 0700) == -1) {
		log_warn("unable to create %s", cl->dir);
		return CTL_FAIL;
	}
	port = cl->tmpl->light_service_port > 0 ? cl->tmpl->light_service_port + 1 : 50051;
	for (int i = 1; i <= n; i++) {
		if ((port = next_port(cl->tmpl, port)) == -1) {
			log_errorx("no free TCP port left for instance %d's Light service", i);
			return CTL_FAIL;
		}
		if (write_instance(cl, tmpl_path, i, port++) == -1)
			return CTL_FAIL;
	}
	/* Fewer instances than last time: the extra configs go (their state
	 * dirs stay, as a stopped node's do). */
	for (int i = (int)n + 1; i <= cl->n; i++)
		if ((cfg = instance_config(cl, i)) != NULL) {
			(void)unlink(cfg);
			free(cfg);
		}
	cl->n = (int)n;
	failed = run_all(cl, (int)n, "start", "-d");
	printf("cluster of %s: %d of %ld instances started (configs in %s)\n", tmpl_path,
	    (int)n - failed, n, cl->dir);
	return failed == 0 ? CTL_OK : CTL_FAIL;
}

static json_t *
instance_json(const struct cluster *cl, int i, bool *running)
{
	struct cfg_error err;
	struct manta_cfg *c;
	char *cfg = instance_config(cl, i);
	ipc_msg *reg = NULL, *beat = NULL;
	json_t *o;
	int pid;

	memset(&err, 0, sizeof(err));
	c = cfg ? cfg_load(cfg, &err) : NULL;
	if (c == NULL) {
		o = json_pack("{s:i, s:o, s:s}", "index", i, "config", json_str_or_null(cfg),
		    "error", "the config does not load");
		free(cfg);
		*running = false;
		return o;
	}
	pid = ctl_running_pid(c);
	*running = pid > 0;
	if (*running) {
		reg = ctl_ask_status(c->run_dir, IPC_REGISTER);
		beat = ctl_ask_status(c->run_dir, IPC_BEAT);
	}
	o = json_pack("{s:i, s:s, s:o, s:s, s:o, s:b, s:o, s:b, s:b, s:i, s:s, s:s}",
	    "index", i, "name", c->instance, "alias", json_str_or_null(c->alias),
	    "config", cfg,
	    "node_id", json_str_or_null(reg && reg->status->register_ &&
	    reg->status->register_->node_id && *reg->status->register_->node_id ?
	    reg->status->register_->node_id : NULL),
	    "running", *running,
	    "pid", pid > 1 ? json_integer(pid) : json_null(),
	    "registered", reg && reg->status->register_ && reg->status->register_->registered,
	    "connected", beat && beat->status->beat && beat->status->beat->connected,
	    "light_port", c->light_service_port,
	    "run_dir", c->run_dir, "state_dir", c->state_dir);
	ipc_msg_free(reg);
	ipc_msg_free(beat);
	cfg_free(c);
	free(cfg);
	return o;
}

static int
cluster_status(const struct cluster *cl, const char *tmpl_path, bool json)
{
	json_t *o, *list = json_array(), *e;
	int up = 0;
	size_t i;

	if (cl->n == 0) {
		fprintf(stderr, "mantactl: no cluster of %s (mantactl cluster start N)\n", tmpl_path);
		json_decref(list);
		return CTL_NOT_RUNNING;
	}
	for (int k = 1; k <= cl->n; k++) {
		bool running;

		json_array_append_new(list, instance_json(cl, k, &running));
		up += running;
	}
	o = json_pack("{s:s, s:s, s:i, s:i, s:o}", "template", tmpl_path, "dir", cl->dir,
	    "instances_total", cl->n, "instances_running", up, "instances", list);
	if (json || !isatty(STDOUT_FILENO)) {
		json_print(stdout, o, 0);
	} else {
		printf("cluster of %s: %d of %d instances running\n", tmpl_path, up, cl->n);
		json_array_foreach(list, i, e)
			printf("  %3lld %-20s %-32s %-8s %s\n",
			    json_integer_value(json_object_get(e, "index")),
			    json_string_value(json_object_get(e, "alias")) ?: "-",
			    json_string_value(json_object_get(e, "node_id")) ?: "-",
			    json_is_true(json_object_get(e, "running")) ?
			    (json_is_true(json_object_get(e, "registered")) ? "online" :
			    "starting") : "stopped",
			    json_string_value(json_object_get(e, "config")) ?: "");
	}
	json_decref(o);
	return up > 0 ? CTL_OK : CTL_NOT_RUNNING;
}

int
cmd_cluster(int argc, char **argv)
{
	struct ctl_args a;
	struct cluster cl = { 0 };
	const char *verb, *count = NULL;
	char *tmpl_path = NULL;
	int rc;

	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
			printf("usage: mantactl %s\n", CLUSTER_USAGE);
			return CTL_OK;
		}
		fprintf(stderr, "usage: mantactl %s\n", CLUSTER_USAGE);
		return CTL_USAGE;
	}
	verb = argv[1];
	if (strcmp(verb, "start") != 0 && strcmp(verb, "status") != 0 &&
	    strcmp(verb, "stop") != 0) {
		fprintf(stderr, "mantactl: unknown cluster command: %s\nusage: mantactl %s\n",
		    verb, CLUSTER_USAGE);
		return CTL_USAGE;
	}
	ctl_options_first(argc - 1, argv + 1);
	if ((rc = ctl_parse(argc - 1, argv + 1, CLUSTER_USAGE,
	    strcmp(verb, "start") == 0 ? 1 : 0, &a)) != 0)
		return rc;
	if (strcmp(verb, "start") == 0) {
		/* start N [NAME]: N first. */
		if ((count = a.name) == NULL) {
			fprintf(stderr, "usage: mantactl %s\n", CLUSTER_USAGE);
			return CTL_USAGE;
		}
		a.name = a.npos > 0 ? a.pos[0] : NULL;
	}
	if ((tmpl_path = cfg_resolve_path(a.config, a.name)) == NULL ||
	    (cl.tmpl = ctl_load_config(&a)) == NULL) {
		free(tmpl_path);
		return CTL_FAIL;
	}
	if (asprintf(&cl.dir, "%s/cluster", cl.tmpl->state_dir) == -1) {
		rc = CTL_FAIL;
		goto out;
	}
	cl.n = count_instances(cl.dir);
	if (strcmp(verb, "start") == 0) {
		rc = cluster_start(&cl, cl.tmpl->file ? cl.tmpl->file : tmpl_path, count);
	} else if (strcmp(verb, "status") == 0) {
		rc = cluster_status(&cl, cl.tmpl->file ? cl.tmpl->file : tmpl_path, a.json);
	} else if (cl.n == 0) {
		fprintf(stderr, "mantactl: no cluster of %s\n", tmpl_path);
		rc = CTL_NOT_RUNNING;
	} else {
		int failed = run_all(&cl, cl.n, "stop", NULL);

		printf("cluster of %s: %d instance(s) stopped%s\n", cl.tmpl->file ?
		    cl.tmpl->file : tmpl_path, cl.n - failed, failed ? ", some did not" : "");
		rc = failed == 0 ? CTL_OK : CTL_FAIL;
	}
out:
	free(cl.dir);
	free(tmpl_path);
	cfg_free(cl.tmpl);
	ipc_context_term();
	return rc;
}
