/* Reading /proc and /sys with a fixed buffer: files are read in chunks
 * and handed out a line at a time, so /proc/stat on a 256-CPU host costs
 * the same few kilobytes as on a laptop. */
#include <errno.h>
#include <fcntl.h>
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
	if (s->fd >= 0)
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
