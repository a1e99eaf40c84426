#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

static const char *log_name = "manta";
static enum log_level log_min = LOG_LVL_INFO;

void
log_init(const char *prog, enum log_level min)
{
	const char *slash = strrchr(prog, '/');

	log_name = slash ? slash + 1 : prog;
	log_min = min;
}

void
log_set_level(enum log_level min)
{
	log_min = min;
}

const char *
log_prog(void)
{
	return log_name;
}

int
log_level_parse(const char *s)
{
	static const struct { const char *name; enum log_level lvl; } names[] = {
		{ "debug", LOG_LVL_DEBUG }, { "info", LOG_LVL_INFO },
		{ "warning", LOG_LVL_WARN }, { "warn", LOG_LVL_WARN },
		{ "error", LOG_LVL_ERROR }, { "critical", LOG_LVL_ERROR },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i].name) == 0)
			return (int)names[i].lvl;
	return -1;
}

static void
vlog(enum log_level lvl, const char *tag, int with_errno, const char *fmt, va_list ap)
{
	int saved = errno;
	char buf[2048];
	int n;

	if (lvl < log_min) {
		errno = saved;
		return;
	}
	n = snprintf(buf, sizeof(buf), "%s: %s: ", log_name, tag);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = 0;
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	if (with_errno) {
		size_t len = strlen(buf);
		snprintf(buf + len, sizeof(buf) - len, ": %s", strerror(saved));
	}
	/* One write per line so that lines of concurrent threads do not mix. */
	fprintf(stderr, "%s\n", buf);
	errno = saved;
}

#define LOGFN(fn, lvl, tag, err) \
void fn(const char *fmt, ...) { va_list ap; va_start(ap, fmt); vlog(lvl, tag, err, fmt, ap); va_end(ap); }

LOGFN(log_debug, LOG_LVL_DEBUG, "debug", 0)
LOGFN(log_info, LOG_LVL_INFO, "info", 0)
LOGFN(log_warn, LOG_LVL_WARN, "warning", 1)
LOGFN(log_warnx, LOG_LVL_WARN, "warning", 0)
LOGFN(log_error, LOG_LVL_ERROR, "error", 1)
LOGFN(log_errorx, LOG_LVL_ERROR, "error", 0)

void
log_fatal(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR + 1, "fatal", 1, fmt, ap);
	va_end(ap);
	exit(code);
}

void
log_fatalx(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR + 1, "fatal", 0, fmt, ap);
	va_end(ap);
	exit(code);
}
