/* secret: the node's secrets at rest (the JWT, node.key, mqtt.key), sealed
 * with libsodium's secretbox (XSalsa20-Poly1305) under one 32-byte key.
 *
 * A sealed value is the text "sbox:" followed by the standard base64 of the
 * 24-byte nonce and the ciphertext (16-byte tag first, as secretbox_easy
 * writes it). identity.secured_token may hold one; node.key.sbox and
 * mqtt.key.sbox in security.cert_folder hold one each (a trailing newline
 * is allowed), and are preferred to node.key and mqtt.key.
 *
 * The key comes from $MANTA_SECRET_KEY (64 hex digits or the base64 of 32
 * bytes) when set, else from security.secret_key_file (the same text, or 32
 * raw bytes), a regular file owned by the current user that neither group
 * nor others may read or write. Keys and plaintexts live in sodium_malloc
 * memory: locked, guarded, left out of core dumps, zeroed when freed. */
#ifndef MANTA_SECRET_H
#define MANTA_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define SECRET_KEY_BYTES	32
#define SECRET_PREFIX		"sbox:"
#define SECRET_ENV		"MANTA_SECRET_KEY"
#define SECRET_SUFFIX		".sbox"
/* The largest plaintext (a PEM key or a JWT) we seal or open. */
#define SECRET_MAX		(1 << 20)

/* sodium_init(), once; 0 or -1. Every function below calls it. */
int secret_init(void);
/* Whether s is a sealed value ("sbox:" prefix). */
bool secret_is_sealed(const char *s);

/* The key, from $MANTA_SECRET_KEY or else file: a read-only sodium_malloc'd
 * SECRET_KEY_BYTES, or NULL with why (never showing key material). */
unsigned char *secret_key_load(const char *file, char *why, size_t len);
void secret_key_free(unsigned char *key);
/* Where secret_key_load takes the key from: SECRET_ENV or file. */
const char *secret_key_source(const char *file);
/* Creates file (mode 0400, never replacing one) holding a new random key as
 * 64 hex digits and a newline. 0, or -1 with errno (EEXIST: it exists). */
int secret_key_create(const char *file);

/* Seals n bytes: a malloc'd "sbox:..." string, NULL on failure. */
char *secret_seal(const unsigned char *key, const void *pt, size_t n);
/* Opens the sealed value s (len bytes; whitespace around it ignored): the
 * plaintext, NUL-terminated, in sodium_malloc memory (free it with
 * secret_free), its length in *outlen when not NULL. NULL with errno
 * EINVAL (not a well-formed sealed value) or EBADMSG (another key, or the
 * value was altered or truncated). */
char *secret_open(const unsigned char *key, const char *s, size_t len, size_t *outlen);
/* sodium_free: zeroes and unmaps; NULL is fine. */
void secret_free(void *p);
/* Zeroes a NUL-terminated string in place (NULL is fine). */
void secret_wipe(char *s);

/* A private key file, sealed (content "sbox:...") or plain: its contents,
 * opened with key when sealed, NUL-terminated in sodium_malloc memory (free
 * with secret_free). A file named *.sbox must be sealed. NULL with why. */
char *secret_file_read(const unsigned char *key, const char *path, size_t *outlen,
    char *why, size_t len);
/* dir/name.sbox when it exists, else dir/name, into buf. 1: the sealed file
 * exists, 0: only the plain one, -1: neither (buf holds dir/name). */
int secret_pick(const char *dir, const char *name, char *buf, size_t len);
/* The contents of path (secret_file_read: opened with key when sealed) in
 * a memfd of mode, a file no directory lists, for a library that wants a
 * file name: fdpath gets "/proc/self/fd/N", *outlen (unless NULL) the
 * size. The fd, or -1 with why. */
int secret_file_memfd(const unsigned char *key, const char *path, unsigned mode,
    char *fdpath, size_t fdlen, size_t *outlen, char *why, size_t whylen);
/* Whether path names a sealed file (ends in ".sbox"). */
bool secret_path_sealed(const char *path);

#endif
