#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "blake3.h"
#include "id.h"

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
id_parse_hex(const char *s, struct manta_id *out)
{
	struct manta_id id = MANTA_ID_ZERO;

	if (s == NULL || strlen(s) != ID_HEX_LEN)
		return -1;
	for (int i = 0; i < ID_HEX_LEN; i++) {
		int v = hexval((unsigned char)s[i]);
		if (v < 0)
			return -1;
		if (i < 16)
			id.head = (id.head << 4) | (uint64_t)v;
		else
			id.tail = (id.tail << 4) | (uint64_t)v;
	}
	*out = id;
	return 0;
}

void
id_to_hex(struct manta_id id, char out[ID_HEX_LEN + 1])
{
	snprintf(out, ID_HEX_LEN + 1, "%016llx%016llx",
	    (unsigned long long)id.head, (unsigned long long)id.tail);
}

/* Python's int(s, 16) for s of digits: surrounding whitespace, an optional
 * 0x prefix and single underscores between digits. A sign is not taken:
 * a negative number is no id. Returns 0 with the value if it is < 2^128. */
static int
parse_python_hex(const char *s, struct manta_id *out)
{
	struct manta_id id = MANTA_ID_ZERO;
	const char *end;
	int ndigits = 0, last_us = 1;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	if (end - s >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		last_us = 0;	/* "0x_1" is valid in Python */
	}
	if (s == end)
		return -1;
	for (; s < end; s++) {
		int v;

		if (*s == '_') {
			if (last_us)
				return -1;
			last_us = 1;
			continue;
		}
		if ((v = hexval((unsigned char)*s)) < 0)
			return -1;
		last_us = 0;
		if (ndigits > 0 || v != 0) {
			if (id.head >> 60)
				return -1;	/* would reach 2^128 */
			id.head = (id.head << 4) | (id.tail >> 60);
			id.tail = (id.tail << 4) | (uint64_t)v;
			ndigits++;
		}
	}
	if (last_us)
		return -1;
	*out = id;
	return 0;
}

struct manta_id
id_from_bytes(const uint8_t b[16])
{
	struct manta_id id = MANTA_ID_ZERO;

	for (int i = 0; i < 8; i++) {
		id.head = (id.head << 8) | b[i];
		id.tail = (id.tail << 8) | b[i + 8];
	}
	return id;
}

void
id_from_string(const char *s, struct manta_id *out)
{
	uint8_t d[16];

	if (parse_python_hex(s, out) == 0)
		return;
	blake3_hash(s, strlen(s), d, sizeof(d));
	*out = id_from_bytes(d);
}

int
id_random(struct manta_id *out)
{
	uint8_t b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0)
			return -1;
		got += (size_t)n;
	}
	/* UUID4: version 4, variant 10xx, as uuid.uuid4().hex gives. */
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	*out = id_from_bytes(b);
	return 0;
}

bool
id_is_zero(struct manta_id id)
{
	return id.head == 0 && id.tail == 0;
}

bool
id_equal(struct manta_id a, struct manta_id b)
{
	return a.head == b.head && a.tail == b.tail;
}

void
id_to_pair(struct manta_id id, Common__System__PairId *p)
{
	common__system__pair_id__init(p);
	p->head = id.head;
	p->tail = id.tail;
}

struct manta_id
id_from_pair(const Common__System__PairId *p)
{
	struct manta_id id = MANTA_ID_ZERO;

	if (p != NULL) {
		id.head = p->head;
		id.tail = p->tail;
	}
	return id;
}
