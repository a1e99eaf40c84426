/* id: 128-bit Manta identifiers (WIRE.md section 1). */
#ifndef MANTA_ID_H
#define MANTA_ID_H

#include <stdbool.h>
#include <stdint.h>

#include "common/system.pb-c.h"

struct manta_id {
	uint64_t head;	/* high 64 bits */
	uint64_t tail;	/* low 64 bits */
};
#define MANTA_ID_ZERO { 0, 0 }
#define ID_HEX_LEN 32

/* Exactly 32 hex digits (either case) -> id; -1 otherwise. */
int id_parse_hex(const char *s, struct manta_id *out);
/* 32 lowercase hex digits, NUL-terminated. */
void id_to_hex(struct manta_id id, char out[ID_HEX_LEN + 1]);
/* The WIRE.md rule: the string's hexadecimal value if it is one and < 2^128,
 * else BLAKE3-128 of its bytes read big-endian. */
void id_from_string(const char *s, struct manta_id *out);
/* From 16 bytes, big-endian. */
struct manta_id id_from_bytes(const uint8_t b[16]);
/* A random UUID4's 128 bits. 0 or -1. */
int id_random(struct manta_id *out);
bool id_is_zero(struct manta_id id);
bool id_equal(struct manta_id a, struct manta_id b);

/* PairId conversions; a NULL PairId reads as zero. */
void id_to_pair(struct manta_id id, Common__System__PairId *p);
struct manta_id id_from_pair(const Common__System__PairId *p);

#endif
