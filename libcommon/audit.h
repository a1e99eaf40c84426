/* audit: the node's append-only, hash-chained audit trail,
 * <state_dir>/audit.log (INTERFACE.md; format in mantactl(8), AUDIT).
 *
 * One JSON object per line, members in this order: seq (1, 2, ...), time
 * (RFC 3339 UTC, milliseconds), event, the event's own fields, prev (the
 * previous line's hash, 64 zeros on the first line) and hash, last:
 *
 *   hash = hex BLAKE2b-256(prev as 64 ASCII hex digits || B), keyed with K
 *
 * where B is the line exactly as written without its final member, that is
 * the line up to ,"hash":" replaced by "}" (no newline). Verification works
 * on those bytes, never on a re-encoding.
 *
 * Keyed chain (issue 13): K = BLAKE2b-256 keyed with the node's secret key
 * (security.secret_key_file, $MANTA_SECRET_KEY) of the message
 * "manta-node audit chain v1"; without a secret key, the same of the 32
 * random bytes of <state_dir>/audit.key (64 hex digits, 0400, made by the
 * first writer). A keyed line carries "chain_key":"<16 hex>" just before
 * prev: the first 8 bytes of BLAKE2b keyed with K of "manta-node audit key
 * id", naming the key without showing it. Lines without it (written before
 * keys) are hashed unkeyed and accepted only before the first keyed line.
 *
 * Several processes (and threads) may append to one file: each append holds
 * flock(LOCK_EX) on it while it reads the last line and writes its own with
 * one write(2) on an O_APPEND descriptor. */
#ifndef MANTA_AUDIT_H
#define MANTA_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define AUDIT_FILE "audit.log"
#define AUDIT_KEY_FILE "audit.key"
#define AUDIT_HASH_HEX 64
#define AUDIT_KEY_BYTES 32
#define AUDIT_KEY_ID_HEX 16

struct manta_cfg;

/* A chain key K and its id (audit.h above); set is 0 for none. */
struct audit_key {
	int set;
	unsigned char key[AUDIT_KEY_BYTES];
	char id[AUDIT_KEY_ID_HEX + 1];
	const char *source;	/* "secret key" or AUDIT_KEY_FILE */
};

/* K and its id from raw key material (the secret key, audit.key's bytes). */
void audit_key_derive(const unsigned char *raw, size_t len, const char *source,
    struct audit_key *k);
/* The process's chain key from c's secret key, when it has one (already
 * loaded, or security.secret_key_file / $MANTA_SECRET_KEY readable now),
 * for the audit_open and audit_verify that follow; otherwise they use
 * <state_dir>/audit.key. confine_accounts calls it (before any filter). */
void audit_configure(const struct manta_cfg *c);
/* The configured key into *k: 1, or 0 when there is none. */
int audit_key_configured(struct audit_key *k);
/* <dir>/audit.key (64 hex digits, a newline may follow), made (0400,
 * random) when create and missing: 1 with k set, 0 when there is none,
 * -1 on error (logged). */
int audit_key_file(const char *dir, bool create, struct audit_key *k);
/* Longest line written (and read back); longer entries are refused. */
#define AUDIT_MAX_LINE 65536

struct audit;

/* Opens (creating it 0600) <state_dir>/audit.log for appending, keyed
 * with the configured key, else with <state_dir>/audit.key (created when
 * missing). NULL with errno set (and a warning logged) on failure. */
struct audit *audit_open(const char *state_dir);
/* Appends one entry. fields is a JSON object (or NULL) whose members follow
 * event; the names seq, time, event, prev and hash are refused. The
 * reference to fields is taken (like json_object_set_new), also on error,
 * so json_pack() may be passed directly. Thread-safe. 0 or -1 (logged). */
int audit_append(struct audit *a, const char *event, json_t *fields);
void audit_close(struct audit *a);

/* Checks the chain of the file at path. 0 when every line is good (*n gets
 * the number of entries; a missing file has none); -1 with *bad_line (the
 * first bad line, 1-based; 0 when the file could not be read) and err
 * saying why: truncated line, not JSON, edited entry (hash mismatch),
 * removed or moved entry (seq gap, prev mismatch). *last_hash (may be NULL,
 * AUDIT_HASH_HEX + 1 bytes) gets the hash of the last good line. */
int audit_verify(const char *path, uint64_t *n, uint64_t *bad_line,
    char *last_hash, char *err, size_t errlen);
/* audit_verify, with the keys known here (the configured one, and
 * audit.key next to path): a keyed line whose key is unknown, an unkeyed
 * line after a keyed one, or a chain with no keyed line while a key is
 * known is refused (whoever can write the file could have rewritten it).
 * With head ("HASH" or "SEQ:HASH", the head taken earlier by audit head
 * and kept elsewhere), the chain must hold that entry: else it was cut or
 * rewritten since. *key_id (AUDIT_KEY_ID_HEX + 1 bytes, may be NULL) gets
 * the last line's key id, "" when unkeyed. */
int audit_verify_head(const char *path, const char *head, uint64_t *n,
    uint64_t *bad_line, char *last_hash, char *key_id, char *err, size_t errlen);

/* The size of the open log fd at a moment when no entry is half written
 * (the writers' lock taken shared, briefly): readers stop there, so that
 * an append in progress never reads as a truncated line. -1 on error. */
long long audit_settled_size(int fd);

/* hash as defined above: BLAKE2b-256 of prev_hex (AUDIT_HASH_HEX digits)
 * then the bodylen bytes of body (B), keyed with k (NULL or !k->set:
 * unkeyed), in hex in out (AUDIT_HASH_HEX + 1 bytes). */
void audit_hash(const struct audit_key *k, const char *prev_hex, const char *body,
    size_t bodylen, char *out);

#endif
