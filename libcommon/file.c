#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file.h"

char *
path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p;

	if ((p = malloc(la + lb + 2)) == NULL)
		return NULL;
	memcpy(p, a, la);
	if (la == 0 || a[la - 1] != '/')
		p[la++] = '/';
	memcpy(p + la, b, lb + 1);
	return p;
}

ssize_t
read_small(const char *path, char *buf, size_t len)
{
	ssize_t n, got = 0;
	int fd, saved;

	if (len == 0) {
		errno = EINVAL;
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while ((size_t)got < len - 1) {
		n = read(fd, buf + got, len - 1 - (size_t)got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		got += n;
	}
	close(fd);
	buf[got] = '\0';
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
		buf[--got] = '\0';
	return got;
}

unsigned long long
proc_start_time(pid_t pid, char *state)
{
	char path[64], buf[1024], *p, st;
	unsigned long long t;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	/* Fields after the command: state is field 3, starttime field 22. */
	if (read_small(path, buf, sizeof(buf)) <= 0 ||
	    (p = strrchr(buf, ')')) == NULL || sscanf(p + 2, "%c %*d %*d %*d %*d %*d"
	    " %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &st, &t) != 2)
		return 0;
	if (state != NULL)
		*state = st;
	return t;
}
