/* blake3: the BLAKE3 hash (hash mode only), for ids (WIRE.md section 1).
 * Debian 12 has no C BLAKE3 library; tests check this against b3sum. */
#ifndef MANTA_BLAKE3_H
#define MANTA_BLAKE3_H

#include <stddef.h>
#include <stdint.h>

/* Hashes len bytes of in and writes outlen (<= 64) bytes of output. */
void blake3_hash(const void *in, size_t len, uint8_t *out, size_t outlen);

#endif
