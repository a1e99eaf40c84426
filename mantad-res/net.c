/* Network counters from /proc/net/dev and the uptime from /proc/uptime. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "res.h"

/* Counters of one interface line: receive bytes, packets, errs, drop,
 * fifo, frame, compressed, multicast, then transmit bytes, packets, ... */
#define NET_RX_BYTES 0
#define NET_RX_PACKETS 1
#define NET_TX_BYTES 8
#define NET_TX_PACKETS 9
#define NET_NEED 10

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int
net_parse(struct lsrc *s, struct net_info *n)
{
	const char *line;

	memset(n, 0, sizeof(*n));
	while ((line = lsrc_next(s)) != NULL) {
		const char *colon = strchr(line, ':'), *p = line, *name;
		uint64_t v[NET_NEED];
		size_t len;
		int i;

		if (colon == NULL || strchr(line, '|') != NULL)
			continue;
		while (*p == ' ' || *p == '\t')
			p++;
		name = p;
		len = (size_t)(colon - name);
		while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t'))
			len--;
		if (len == 0 || (len == 2 && strncmp(name, "lo", 2) == 0))
			continue;
		p = colon + 1;
		for (i = 0; i < NET_NEED; i++) {
			p = parse_u64(p, &v[i]);
			if (p == NULL)
				break;
		}
		if (i < NET_NEED)
			continue;
		n->bytes_recv = sat_add(n->bytes_recv, v[NET_RX_BYTES]);
		n->packets_recv = sat_add(n->packets_recv, v[NET_RX_PACKETS]);
		n->bytes_sent = sat_add(n->bytes_sent, v[NET_TX_BYTES]);
		n->packets_sent = sat_add(n->packets_sent, v[NET_TX_PACKETS]);
		n->ifaces++;
	}
	return 0;
}

int
net_read(const char *path, struct net_info *n)
{
	struct lsrc s;
	int rc;

	memset(n, 0, sizeof(*n));
	if (lsrc_open_kept(&s, path) < 0)
		return -1;
	rc = net_parse(&s, n);
	lsrc_close(&s);
	return rc;
}

int
uptime_parse(const char *buf, uint64_t *secs)
{
	/* "12345.67 54321.00": whole seconds are enough. */
	if (parse_u64(buf, secs) == NULL)
		return -1;
	return 0;
}

int
uptime_now(uint64_t *secs)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_BOOTTIME, &ts) == 0 && ts.tv_sec >= 0) {
		*secs = (uint64_t)ts.tv_sec;
		return 0;
	}
	return uptime_read(PROC_UPTIME, secs);
}

int
uptime_read(const char *path, uint64_t *secs)
{
	struct lsrc s;
	const char *line;
	int rc;

	*secs = 0;
	if (lsrc_open_kept(&s, path) < 0)
		return -1;
	line = lsrc_next(&s);
	rc = line != NULL ? uptime_parse(line, secs) : -1;
	lsrc_close(&s);
	if (rc < 0) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}
