/* Reading /proc and /sys with a fixed buffer: files are read in chunks
 * and handed out a line at a time, so /proc/stat on a 256-CPU host costs
 * the same few kilobytes as on a laptop. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "res.h"

int
lsrc_open(struct lsrc *s, const char *path)
{
	memset(s, 0, offsetof(struct lsrc, chunk));
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	return s->fd < 0 ? -1 : 0;
}

/* /proc's seq_files (stat, meminfo, net/dev, uptime) are generated
 * afresh when read from offset 0, so a rewind stands for a new open. A
 * regular file could have been replaced since: those are never kept. */
#define KEPT_MAX 4

static struct {
	char path[32];
	int fd;
} kept[KEPT_MAX];
static size_t nkept;

int
lsrc_open_kept(struct lsrc *s, const char *path)
{
	size_t i;

	if (strncmp(path, "/proc/", 6) != 0 || strlen(path) >= sizeof(kept[0].path))
		return lsrc_open(s, path);
	for (i = 0; i < nkept; i++)
		if (strcmp(kept[i].path, path) == 0)
			break;
	if (i < nkept && lseek(kept[i].fd, 0, SEEK_SET) == -1) {
		close(kept[i].fd);
		kept[i] = kept[--nkept];
		i = nkept;
	}
	if (i == nkept) {
		if (nkept == KEPT_MAX)
			return lsrc_open(s, path);
		if (lsrc_open(s, path) < 0)
			return -1;
		snprintf(kept[nkept].path, sizeof(kept[nkept].path), "%s", path);
		kept[nkept++].fd = s->fd;
	} else {
		memset(s, 0, offsetof(struct lsrc, chunk));
		s->fd = kept[i].fd;
	}
	s->kept = 1;
	return 0;
}

void
lsrc_mem(struct lsrc *s, const char *buf, size_t len)
{
	memset(s, 0, offsetof(struct lsrc, chunk));
	s->fd = -1;
	s->mem = buf;
	s->memlen = len;
}

void
lsrc_close(struct lsrc *s)
{
	if (s->fd >= 0 && !s->kept)
		close(s->fd);
	s->fd = -1;
	s->eof = 1;
}

/* The next byte, -1 at the end or on a read error. */
static int
lsrc_getc(struct lsrc *s)
{
	ssize_t n;

	if (s->fd < 0) {
		if (s->mem == NULL || s->mempos >= s->memlen)
			return -1;
		return (unsigned char)s->mem[s->mempos++];
	}
	if (s->cpos >= s->clen) {
		if (s->eof)
			return -1;
		do
			n = read(s->fd, s->chunk, sizeof(s->chunk));
		while (n < 0 && errno == EINTR);
		if (n <= 0) {
			s->eof = 1;
			return -1;
		}
		s->cpos = 0;
		s->clen = (size_t)n;
	}
	return (unsigned char)s->chunk[s->cpos++];
}

const char *
lsrc_next(struct lsrc *s)
{
	size_t len = 0;
	int c, any = 0;

	while ((c = lsrc_getc(s)) != -1) {
		any = 1;
		if (c == '\n')
			break;
		/* A NUL inside a line would cut it short for the parsers;
		 * read it as a blank instead. */
		if (c == '\0')
			c = ' ';
		if (len < sizeof(s->line) - 1)
			s->line[len++] = (char)c;
	}
	if (!any)
		return NULL;
	s->line[len] = '\0';
	return s->line;
}

const char *
parse_u64(const char *p, uint64_t *v)
{
	uint64_t x = 0;
	int digits = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	while (*p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');
		/* Saturate rather than wrap on absurd input. */
		if (x > (UINT64_MAX - d) / 10)
			x = UINT64_MAX;
		else
			x = x * 10 + d;
		p++;
		digits++;
	}
	if (digits == 0)
		return NULL;
	*v = x;
	return p;
}
