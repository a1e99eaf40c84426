/* wire: the protobuf wire format, read and written by hand where decoding
 * with protobuf-c would copy. A World message (a global, a result) is one
 * gRPC message however large (WIRE.md section 7); the proxy rewrites its
 * few small fields and passes its data field on as references to the
 * slices it arrived in, so a message costs its size once, not four times.
 * Small requests are decoded with protobuf-c, after a walk that refuses a
 * NUL byte in any string (protobuf-c would silently cut it there). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

#include "light.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

int
wbuf_from(struct wbuf *b, grpc_byte_buffer *bb)
{
	grpc_byte_buffer_reader r;
	grpc_slice s;
	size_t cap = 0;

	memset(b, 0, sizeof(*b));
	if (!grpc_byte_buffer_reader_init(&r, bb))
		return -1;
	while (grpc_byte_buffer_reader_next(&r, &s)) {
		if (b->n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			grpc_slice *v = realloc(b->s, ncap * sizeof(*v));

			if (v == NULL) {
				grpc_slice_unref(s);
				grpc_byte_buffer_reader_destroy(&r);
				wbuf_free(b);
				return -1;
			}
			b->s = v;
			cap = ncap;
		}
		b->s[b->n++] = s;
		b->total += GRPC_SLICE_LENGTH(s);
	}
	grpc_byte_buffer_reader_destroy(&r);
	return 0;
}

void
wbuf_free(struct wbuf *b)
{
	for (size_t i = 0; i < b->n; i++)
		grpc_slice_unref(b->s[i]);
	free(b->s);
	memset(b, 0, sizeof(*b));
}

/* A cursor over the slices of a wbuf. */
struct cur {
	const struct wbuf *b;
	size_t si, so;		/* slice, offset in it */
	size_t pos;		/* absolute */
};

static int
cur_byte(struct cur *c, uint8_t *out)
{
	while (c->si < c->b->n && c->so == GRPC_SLICE_LENGTH(c->b->s[c->si])) {
		c->si++;
		c->so = 0;
	}
	if (c->si >= c->b->n)
		return -1;
	*out = GRPC_SLICE_START_PTR(c->b->s[c->si])[c->so++];
	c->pos++;
	return 0;
}

static int
cur_varint(struct cur *c, uint64_t *v)
{
	uint8_t b;

	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (cur_byte(c, &b) == -1)
			return -1;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -1;
}

/* Copies len bytes out (dst NULL: skips them). */
static int
cur_take(struct cur *c, void *dst, size_t len)
{
	uint8_t *d = dst;

	if (len > c->b->total - c->pos)
		return -1;
	while (len > 0) {
		size_t have, n;

		while (c->si < c->b->n && c->so == GRPC_SLICE_LENGTH(c->b->s[c->si])) {
			c->si++;
			c->so = 0;
		}
		if (c->si >= c->b->n)
			return -1;
		have = GRPC_SLICE_LENGTH(c->b->s[c->si]) - c->so;
		n = have < len ? have : len;
		if (d != NULL) {
			memcpy(d, GRPC_SLICE_START_PTR(c->b->s[c->si]) + c->so, n);
			d += n;
		}
		c->so += n;
		c->pos += n;
		len -= n;
	}
	return 0;
}

/* ---- contiguous buffers (small messages) ---- */

static int
buf_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (*i >= len)
			return -1;
		*v |= (uint64_t)(p[*i] & 0x7f) << shift;
		if (!(p[(*i)++] & 0x80))
			return 0;
	}
	return -1;
}

/* Skips the value of a field of wire type wt; *lp gets a WT_LEN payload. */
static int
buf_skip(const uint8_t *p, size_t len, size_t *i, int wt, const uint8_t **lp, size_t *ll)
{
	uint64_t v;

	switch (wt) {
	case WT_VARINT:
		return buf_varint(p, len, i, &v);
	case WT_I64:
		if (len - *i < 8)
			return -1;
		*i += 8;
		return 0;
	case WT_I32:
		if (len - *i < 4)
			return -1;
		*i += 4;
		return 0;
	case WT_LEN:
		if (buf_varint(p, len, i, &v) == -1 || v > len - *i)
			return -1;
		if (lp != NULL) {
			*lp = p + *i;
			*ll = (size_t)v;
		}
		*i += (size_t)v;
		return 0;
	default:
		return -1;	/* groups: not in any message we take */
	}
}

static int
pair_parse(const uint8_t *p, size_t len, struct manta_id *id)
{
	size_t i = 0;

	id->head = id->tail = 0;
	while (i < len) {
		uint64_t key, v;
		int wt;

		if (buf_varint(p, len, &i, &key) == -1)
			return -1;
		wt = (int)(key & 7);
		if ((key >> 3) == 1 && wt == WT_VARINT) {
			if (buf_varint(p, len, &i, &v) == -1)
				return -1;
			id->head = v;
		} else if ((key >> 3) == 2 && wt == WT_VARINT) {
			if (buf_varint(p, len, &i, &v) == -1)
				return -1;
			id->tail = v;
		} else if (buf_skip(p, len, &i, wt, NULL, NULL) == -1)
			return -1;
	}
	return 0;
}

int
wire_scan(const struct wbuf *b, const int idn[2], int tagn, int datan,
    struct wfields *f, char *err, size_t errlen)
{
	struct cur c = { b, 0, 0, 0 };

	memset(f, 0, sizeof(*f));
	while (c.pos < b->total) {
		uint64_t key, v;
		int num, wt;

		if (cur_varint(&c, &key) == -1)
			goto bad;
		num = (int)(key >> 3);
		wt = (int)(key & 7);
		if (wt == WT_VARINT) {
			if (cur_varint(&c, &v) == -1)
				goto bad;
			continue;
		}
		if (wt == WT_I64 || wt == WT_I32) {
			if (cur_take(&c, NULL, wt == WT_I64 ? 8 : 4) == -1)
				goto bad;
			continue;
		}
		if (wt != WT_LEN || cur_varint(&c, &v) == -1 || v > b->total - c.pos)
			goto bad;
		if (num == idn[0] || num == idn[1]) {
			int k = num == idn[0] ? 0 : 1;
			uint8_t tmp[64];

			if (v > sizeof(tmp) || cur_take(&c, tmp, (size_t)v) == -1 ||
			    pair_parse(tmp, (size_t)v, &f->id[k]) == -1)
				goto bad;
			f->has_id[k] = true;
		} else if (num == tagn) {
			if (v > LIGHT_TAG_MAX) {
				snprintf(err, errlen, "tag longer than %d bytes", LIGHT_TAG_MAX);
				return -1;
			}
			if (cur_take(&c, f->tag, (size_t)v) == -1)
				goto bad;
			f->tag[v] = '\0';
			f->taglen = (size_t)v;
			if (memchr(f->tag, '\0', f->taglen) != NULL) {
				snprintf(err, errlen, "tag contains a NUL byte");
				return -1;
			}
		} else if (num == datan) {
			f->has_data = true;
			f->data_off = c.pos;
			f->data_len = (size_t)v;
			if (cur_take(&c, NULL, (size_t)v) == -1)
				goto bad;
		} else if (cur_take(&c, NULL, (size_t)v) == -1)
			goto bad;
	}
	return 0;
bad:
	snprintf(err, errlen, "malformed message");
	return -1;
}

/* ---- writing ---- */

void
wout_init(struct wout *o)
{
	memset(o, 0, sizeof(*o));
}

static void
put_varint(struct wout *o, uint64_t v)
{
	if (o->len + 10 > sizeof(o->head)) {
		o->overflow = true;
		return;
	}
	do {
		uint8_t b = v & 0x7f;

		v >>= 7;
		o->head[o->len++] = b | (v ? 0x80 : 0);
	} while (v);
}

static size_t
varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

void
wout_varint_field(struct wout *o, int num, uint64_t v)
{
	if (v == 0)
		return;		/* proto3: defaults are not written */
	put_varint(o, (uint64_t)num << 3 | WT_VARINT);
	put_varint(o, v);
}

void
wout_pair(struct wout *o, int num, struct manta_id id)
{
	size_t n = (id.head ? 1 + varint_len(id.head) : 0) +
	    (id.tail ? 1 + varint_len(id.tail) : 0);

	/* Always written, even when zero: the reference's manager reads
	 * the ids as messages, and an absent one is not the same to it. */
	put_varint(o, (uint64_t)num << 3 | WT_LEN);
	put_varint(o, n);
	wout_varint_field(o, 1, id.head);
	wout_varint_field(o, 2, id.tail);
}

void
wout_string(struct wout *o, int num, const char *s, size_t len)
{
	if (len == 0)
		return;
	put_varint(o, (uint64_t)num << 3 | WT_LEN);
	put_varint(o, len);
	if (o->len + len > sizeof(o->head)) {
		o->overflow = true;
		return;
	}
	memcpy(o->head + o->len, s, len);
	o->len += len;
}

int
wout_bytes_ref(struct wout *o, int num, const struct wbuf *b, size_t off, size_t len)
{
	size_t pos = 0;

	if (len == 0)
		return 0;
	put_varint(o, (uint64_t)num << 3 | WT_LEN);
	put_varint(o, len);
	/* The bytes come after the head: only one referenced field, last. */
	for (size_t i = 0; i < b->n && len > 0; i++) {
		size_t sl = GRPC_SLICE_LENGTH(b->s[i]);

		if (off < pos + sl) {
			size_t from = off - pos, n = sl - from;

			if (n > len)
				n = len;
			if (o->ntail == o->cap) {
				size_t ncap = o->cap ? o->cap * 2 : 16;
				grpc_slice *v = realloc(o->tail, ncap * sizeof(*v));

				if (v == NULL) {
					o->overflow = true;
					return -1;
				}
				o->tail = v;
				o->cap = ncap;
			}
			o->tail[o->ntail++] = grpc_slice_sub(b->s[i], from, from + n);
			off += n;
			len -= n;
		}
		pos += sl;
	}
	if (len > 0) {
		o->overflow = true;
		return -1;
	}
	return 0;
}

grpc_byte_buffer *
wout_finish(struct wout *o)
{
	grpc_byte_buffer *bb = NULL;
	grpc_slice *s;

	if (!o->overflow && (s = malloc((o->ntail + 1) * sizeof(*s))) != NULL) {
		s[0] = grpc_slice_from_copied_buffer((const char *)o->head, o->len);
		if (o->ntail > 0)
			memcpy(s + 1, o->tail, o->ntail * sizeof(*s));
		bb = grpc_raw_byte_buffer_create(s, o->ntail + 1);
		grpc_slice_unref(s[0]);
		free(s);
	}
	for (size_t i = 0; i < o->ntail; i++)
		grpc_slice_unref(o->tail[i]);
	free(o->tail);
	o->tail = NULL;
	o->ntail = o->cap = 0;
	return bb;
}

/* 0 ok, -1 malformed, -2 a NUL byte in a string. */
static int
strings_check(const uint8_t *p, size_t len, const ProtobufCMessageDescriptor *d, int depth)
{
	size_t i = 0;
	int nul = 0;

	if (depth > 8)
		return -1;
	while (i < len) {
		const ProtobufCFieldDescriptor *fd;
		const uint8_t *lp = NULL;
		size_t ll = 0;
		uint64_t key;
		int wt, rc;

		if (buf_varint(p, len, &i, &key) == -1)
			return -1;
		wt = (int)(key & 7);
		if (buf_skip(p, len, &i, wt, &lp, &ll) == -1)
			return -1;
		if (wt != WT_LEN || d == NULL ||
		    (fd = protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))) == NULL)
			continue;
		if (fd->type == PROTOBUF_C_TYPE_STRING && memchr(lp, '\0', ll) != NULL)
			nul = 1;
		if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
			if ((rc = strings_check(lp, ll, fd->descriptor, depth + 1)) == -1)
				return -1;
			if (rc == -2)
				nul = 1;
		}
	}
	return nul ? -2 : 0;
}

ProtobufCMessage *
wire_unpack_nul(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d, size_t max,
    bool *nul, char *err, size_t errlen)
{
	grpc_byte_buffer_reader r;
	ProtobufCMessage *m = NULL;
	grpc_slice all;
	size_t len;
	int rc;

	if (nul != NULL)
		*nul = false;
	if (bb == NULL) {
		snprintf(err, errlen, "no request message");
		return NULL;
	}
	if (grpc_byte_buffer_length(bb) > max) {
		snprintf(err, errlen, "request larger than %zu bytes", max);
		return NULL;
	}
	if (!grpc_byte_buffer_reader_init(&r, bb)) {
		snprintf(err, errlen, "unreadable request");
		return NULL;
	}
	all = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	len = GRPC_SLICE_LENGTH(all);
	rc = strings_check(GRPC_SLICE_START_PTR(all), len, d, 0);
	if (rc == -1)
		snprintf(err, errlen, "malformed %s", d->short_name);
	else if (rc == -2 && nul == NULL)
		snprintf(err, errlen, "a string of %s contains a NUL byte", d->short_name);
	else if ((m = protobuf_c_message_unpack(d, NULL, len, GRPC_SLICE_START_PTR(all))) == NULL)
		snprintf(err, errlen, "malformed %s", d->short_name);
	else if (rc == -2)
		*nul = true;
	grpc_slice_unref(all);
	return m;
}

ProtobufCMessage *
wire_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d, size_t max,
    char *err, size_t errlen)
{
	return wire_unpack_nul(bb, d, max, NULL, err, errlen);
}

static void
free_packed(void *p, size_t len)
{
	(void)len;
	free(p);
}

grpc_byte_buffer *
wire_pack(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	grpc_byte_buffer *bb;
	grpc_slice s;
	uint8_t *buf;

	if ((buf = malloc(len ? len : 1)) == NULL)
		return NULL;
	protobuf_c_message_pack(m, buf);
	s = grpc_slice_new_with_len(buf, len, free_packed);
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}
