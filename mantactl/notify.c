/* notify: the supervisor's word to systemd, for Type=notify units
 * (manta-node@.service): READY=1 once every daemon is up, STOPPING=1 when a
 * stop begins, STATUS= lines in between. The protocol is small enough to
 * speak without libsystemd (sd_notify(3)): one datagram of newline-separated
 * KEY=VALUE assignments, sent to the AF_UNIX datagram socket that
 * $NOTIFY_SOCKET names; a name that starts with '@' is in the abstract
 * namespace (the '@' becomes a NUL byte and the address is not
 * NUL-terminated). Without $NOTIFY_SOCKET every call does nothing, so s6,
 * runit and a terminal see no difference. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

static struct sockaddr_un notify_sa;
static socklen_t notify_len;	/* 0: not notifying */
static int notify_warned;

int
notify_init(void)
{
	const char *e = getenv("NOTIFY_SOCKET");
	size_t n;

	notify_len = 0;
	if (e == NULL || e[0] == '\0')
		return 0;
	n = strlen(e);
	if ((e[0] != '/' && e[0] != '@') || n < 2 || n >= sizeof(notify_sa.sun_path)) {
		log_warnx("NOTIFY_SOCKET=%s names no unix socket; readiness not"
		    " reported", e);
		unsetenv("NOTIFY_SOCKET");
		return -1;
	}
	memset(&notify_sa, 0, sizeof(notify_sa));
	notify_sa.sun_family = AF_UNIX;
	memcpy(notify_sa.sun_path, e, n);
	if (e[0] == '@') {
		notify_sa.sun_path[0] = '\0';
		notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else
		notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	unsetenv("NOTIFY_SOCKET");
	notify_warned = 0;
	return 0;
}

int
notify_send(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	ssize_t sent;
	int fd, n, saved;

	if (notify_len == 0)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;	/* a long STATUS= line, cut */
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		sent = -1;
	else {
		sent = sendto(fd, buf, (size_t)n, MSG_NOSIGNAL,
		    (const struct sockaddr *)&notify_sa, notify_len);
		saved = errno;
		close(fd);
		errno = saved;
	}
	if (sent != n) {
		/* Once: a manager that went away should not fill the log. */
		if (!notify_warned++)
			log_warn("unable to notify the service manager");
		return -1;
	}
	return 0;
}
