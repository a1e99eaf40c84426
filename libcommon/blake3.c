/* blake3: the BLAKE3 hash mode, portable and one-shot, after the public
 * specification (github.com/BLAKE3-team/BLAKE3-specs). Inputs are split into
 * 1 KiB chunks, each chunk compressed block by block into a chaining value,
 * and chaining values merged into a binary tree whose shape depends only on
 * the input length: a stack of subtree roots merged whenever a completed
 * subtree's chunk count is even, as in the reference implementation. Only
 * what the node needs (unkeyed hashing, up to one 64-byte output block) is
 * exposed, but the output stage is general: any outlen works. */
#include <stdint.h>
#include <string.h>

#include "blake3.h"

#define B3_BLOCK_LEN	64
#define B3_CHUNK_LEN	1024
#define B3_MAX_DEPTH	54	/* 2^54 chunks = 2^64 bytes */

enum {
	CHUNK_START = 1 << 0,
	CHUNK_END = 1 << 1,
	PARENT = 1 << 2,
	ROOT = 1 << 3,
};

static const uint32_t IV[8] = {
	0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
	0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
};

/* The message words' order in each of the 7 rounds: the spec's permutation
 * applied round after round, precomputed. */
static const uint8_t SCHEDULE[7][16] = {
	{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
	{ 2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8 },
	{ 3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1 },
	{ 10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6 },
	{ 12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4 },
	{ 9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7 },
	{ 11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13 },
};

struct b3_output {
	uint32_t cv[8];
	uint32_t block[16];
	uint64_t counter;
	uint32_t block_len;
	uint32_t flags;
};

struct b3_chunk {
	uint32_t cv[8];
	uint64_t counter;
	uint8_t buf[B3_BLOCK_LEN];
	size_t buf_len;
	size_t blocks_done;
};

static inline uint32_t
rotr32(uint32_t w, unsigned c)
{
	return (w >> c) | (w << (32 - c));
}

static inline uint32_t
load32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static inline void
store32(uint8_t *p, uint32_t w)
{
	p[0] = (uint8_t)w;
	p[1] = (uint8_t)(w >> 8);
	p[2] = (uint8_t)(w >> 16);
	p[3] = (uint8_t)(w >> 24);
}

static inline void
g(uint32_t *s, int a, int b, int c, int d, uint32_t x, uint32_t y)
{
	s[a] = s[a] + s[b] + x;
	s[d] = rotr32(s[d] ^ s[a], 16);
	s[c] = s[c] + s[d];
	s[b] = rotr32(s[b] ^ s[c], 12);
	s[a] = s[a] + s[b] + y;
	s[d] = rotr32(s[d] ^ s[a], 8);
	s[c] = s[c] + s[d];
	s[b] = rotr32(s[b] ^ s[c], 7);
}

/* The compression function; all 16 output words in out. */
static void
compress(const uint32_t cv[8], const uint32_t m[16], uint64_t counter,
    uint32_t block_len, uint32_t flags, uint32_t out[16])
{
	uint32_t s[16] = {
		cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
		IV[0], IV[1], IV[2], IV[3],
		(uint32_t)counter, (uint32_t)(counter >> 32), block_len, flags,
	};

	for (int r = 0; r < 7; r++) {
		const uint8_t *o = SCHEDULE[r];

		g(s, 0, 4, 8, 12, m[o[0]], m[o[1]]);
		g(s, 1, 5, 9, 13, m[o[2]], m[o[3]]);
		g(s, 2, 6, 10, 14, m[o[4]], m[o[5]]);
		g(s, 3, 7, 11, 15, m[o[6]], m[o[7]]);
		g(s, 0, 5, 10, 15, m[o[8]], m[o[9]]);
		g(s, 1, 6, 11, 12, m[o[10]], m[o[11]]);
		g(s, 2, 7, 8, 13, m[o[12]], m[o[13]]);
		g(s, 3, 4, 9, 14, m[o[14]], m[o[15]]);
	}
	for (int i = 0; i < 8; i++) {
		out[i] = s[i] ^ s[i + 8];
		out[i + 8] = s[i + 8] ^ cv[i];
	}
}

static void
block_words(const uint8_t b[B3_BLOCK_LEN], uint32_t m[16])
{
	for (int i = 0; i < 16; i++)
		m[i] = load32(b + 4 * i);
}

static void
output_cv(const struct b3_output *o, uint32_t cv[8])
{
	uint32_t w[16];

	compress(o->cv, o->block, o->counter, o->block_len, o->flags, w);
	memcpy(cv, w, 8 * sizeof(uint32_t));
}

static void
output_root(const struct b3_output *o, uint8_t *out, size_t outlen)
{
	uint64_t counter = 0;

	while (outlen > 0) {
		uint32_t w[16];
		uint8_t bytes[B3_BLOCK_LEN];
		size_t n = outlen < B3_BLOCK_LEN ? outlen : B3_BLOCK_LEN;

		compress(o->cv, o->block, counter++, o->block_len,
		    o->flags | ROOT, w);
		for (int i = 0; i < 16; i++)
			store32(bytes + 4 * i, w[i]);
		memcpy(out, bytes, n);
		out += n;
		outlen -= n;
	}
}

static void
chunk_init(struct b3_chunk *c, uint64_t counter)
{
	memcpy(c->cv, IV, sizeof(IV));
	c->counter = counter;
	c->buf_len = 0;
	c->blocks_done = 0;
	memset(c->buf, 0, sizeof(c->buf));
}

static size_t
chunk_len(const struct b3_chunk *c)
{
	return c->blocks_done * B3_BLOCK_LEN + c->buf_len;
}

static uint32_t
chunk_start_flag(const struct b3_chunk *c)
{
	return c->blocks_done == 0 ? CHUNK_START : 0;
}

/* Appends at most what is left of the chunk; a full block is compressed
 * only once more input follows, since the last block carries CHUNK_END. */
static void
chunk_update(struct b3_chunk *c, const uint8_t *in, size_t len)
{
	while (len > 0) {
		size_t take;

		if (c->buf_len == B3_BLOCK_LEN) {
			uint32_t m[16], w[16];

			block_words(c->buf, m);
			compress(c->cv, m, c->counter, B3_BLOCK_LEN,
			    chunk_start_flag(c), w);
			memcpy(c->cv, w, sizeof(c->cv));
			c->blocks_done++;
			c->buf_len = 0;
			memset(c->buf, 0, sizeof(c->buf));
		}
		take = B3_BLOCK_LEN - c->buf_len;
		if (take > len)
			take = len;
		memcpy(c->buf + c->buf_len, in, take);
		c->buf_len += take;
		in += take;
		len -= take;
	}
}

static void
chunk_output(const struct b3_chunk *c, struct b3_output *o)
{
	memcpy(o->cv, c->cv, sizeof(o->cv));
	block_words(c->buf, o->block);
	o->counter = c->counter;
	o->block_len = (uint32_t)c->buf_len;
	o->flags = chunk_start_flag(c) | CHUNK_END;
}

static void
parent_output(const uint32_t left[8], const uint32_t right[8],
    struct b3_output *o)
{
	memcpy(o->cv, IV, sizeof(o->cv));
	memcpy(o->block, left, 8 * sizeof(uint32_t));
	memcpy(o->block + 8, right, 8 * sizeof(uint32_t));
	o->counter = 0;
	o->block_len = B3_BLOCK_LEN;
	o->flags = PARENT;
}

void
blake3_hash(const void *in, size_t len, uint8_t *out, size_t outlen)
{
	const uint8_t *p = in;
	uint32_t stack[B3_MAX_DEPTH][8];
	size_t depth = 0;
	struct b3_chunk chunk;
	struct b3_output o;

	chunk_init(&chunk, 0);
	while (len > 0) {
		size_t take;

		if (chunk_len(&chunk) == B3_CHUNK_LEN) {
			uint32_t cv[8];
			uint64_t total = chunk.counter + 1;

			chunk_output(&chunk, &o);
			output_cv(&o, cv);
			/* Each trailing zero bit of the chunk count closes
			 * one complete subtree: merge it with the stack top. */
			while ((total & 1) == 0) {
				parent_output(stack[--depth], cv, &o);
				output_cv(&o, cv);
				total >>= 1;
			}
			memcpy(stack[depth++], cv, sizeof(cv));
			chunk_init(&chunk, chunk.counter + 1);
		}
		take = B3_CHUNK_LEN - chunk_len(&chunk);
		if (take > len)
			take = len;
		chunk_update(&chunk, p, take);
		p += take;
		len -= take;
	}

	chunk_output(&chunk, &o);
	while (depth > 0) {
		uint32_t cv[8];

		output_cv(&o, cv);
		parent_output(stack[--depth], cv, &o);
	}
	output_root(&o, out, outlen);
}
