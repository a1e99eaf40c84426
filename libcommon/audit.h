/* audit: the node's append-only, hash-chained audit trail,
 * <state_dir>/audit.log (INTERFACE.md; format in mantactl(8), AUDIT).
 *
 * One JSON object per line, members in this order: seq (1, 2, ...), time
 * (RFC 3339 UTC, milliseconds), event, the event's own fields, prev (the
 * previous line's hash, 64 zeros on the first line) and hash, last:
 *
 *   hash = hex BLAKE2b-256(prev as 64 ASCII hex digits || B)
 *
 * where B is the line exactly as written without its final member, that is
 * the line up to ,"hash":" replaced by "}" (no newline). Verification works
 * on those bytes, never on a re-encoding.
 *
 * Several processes (and threads) may append to one file: each append holds
 * flock(LOCK_EX) on it while it reads the last line and writes its own with
 * one write(2) on an O_APPEND descriptor. */
#ifndef MANTA_AUDIT_H
#define MANTA_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define AUDIT_FILE "audit.log"
#define AUDIT_HASH_HEX 64
/* Longest line written (and read back); longer entries are refused. */
#define AUDIT_MAX_LINE 65536

struct audit;

/* Opens (creating it 0600) <state_dir>/audit.log for appending. NULL with
 * errno set (and a warning logged) on failure. */
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

/* The size of the open log fd at a moment when no entry is half written
 * (the writers' lock taken shared, briefly): readers stop there, so that
 * an append in progress never reads as a truncated line. -1 on error. */
long long audit_settled_size(int fd);

/* hash as defined above: BLAKE2b-256 of prev_hex (AUDIT_HASH_HEX digits)
 * then the bodylen bytes of body (B), in hex in out (AUDIT_HASH_HEX + 1
 * bytes). */
void audit_hash(const char *prev_hex, const char *body, size_t bodylen,
    char *out);

#endif
