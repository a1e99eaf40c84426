/* audit: append-only, hash-chained audit trail (audit.h; mantactl(8)).
 *
 * The chain is cut from the bytes as written: the hash covers the line
 * without its last member, so a verifier in any language needs no JSON
 * re-encoding, only a JSON parser to read prev and seq. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "audit.h"
#include "log.h"

#define HASH_KEY ",\"hash\":\""
#define HASH_KEY_LEN (sizeof(HASH_KEY) - 1)
/* ,"hash":"<64 hex>"} */
#define SUFFIX_LEN (HASH_KEY_LEN + AUDIT_HASH_HEX + 2)

static const char zero_hash[AUDIT_HASH_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static const char *const reserved[] = { "seq", "time", "event", "chain_key", "prev", "hash" };



struct audit {
	pthread_mutex_t lock;	/* threads; flock orders processes */
	int fd;
	char *path;
	/* The file's size after our last append and what it ended with:
	 * while the size is unchanged nobody else appended. */
	bool known;
	off_t known_size;
	dev_t dev;
	ino_t ino;
	uint64_t last_seq;
	char last_hash[AUDIT_HASH_HEX + 1];
	struct audit_key key;
};

void
audit_hash(const struct audit_key *k, const char *prev_hex, const char *body,
    size_t bodylen, char *out)
{
	crypto_generichash_state st;
	unsigned char h[32];

	if (k != NULL && k->set)
		crypto_generichash_init(&st, k->key, sizeof(k->key), sizeof(h));
	else
		crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *)prev_hex, AUDIT_HASH_HEX);
	crypto_generichash_update(&st, (const unsigned char *)body, bodylen);
	crypto_generichash_final(&st, h, sizeof(h));
	sodium_bin2hex(out, AUDIT_HASH_HEX + 1, h, sizeof(h));
	sodium_memzero(&st, sizeof(st));
}

static bool
hex64(const char *s, size_t len)
{
	if (len != AUDIT_HASH_HEX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static int
open_log(struct audit *a)
{
	struct stat st;

	a->fd = open(a->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (a->fd == -1) {
		log_warn("unable to open %s", a->path);
		return -1;
	}
	if (fstat(a->fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		if (!S_ISREG(st.st_mode))
			errno = EINVAL;
		log_warn("unable to use %s", a->path);
		close(a->fd);
		a->fd = -1;
		return -1;
	}
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	a->known = false;
	return 0;
}

struct audit *
audit_open(const char *state_dir)
{
	struct audit *a;

	if (sodium_init() == -1) {
		log_warnx("unable to initialize libsodium");
		errno = EINVAL;
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    asprintf(&a->path, "%s/%s", state_dir, AUDIT_FILE) == -1) {
		log_warn("unable to open the audit log");
		free(a);
		return NULL;
	}
	a->fd = -1;
	if (!audit_key_configured(&a->key) && audit_key_file(state_dir, true, &a->key) != 1) {
		free(a->path);
		free(a);
		errno = EINVAL;
		return NULL;
	}
	if (open_log(a) == -1) {
		int e = errno;

		free(a->path);
		free(a);
		errno = e;
		return NULL;
	}
	pthread_mutex_init(&a->lock, NULL);
	return a;
}

void
audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	sodium_memzero(&a->key, sizeof(a->key));
	if (a->fd != -1)
		close(a->fd);
	pthread_mutex_destroy(&a->lock);
	free(a->path);
	free(a);
}

/* seq and hash of one line (no newline), as far as the chain needs them. */
static int
parse_entry(const char *line, size_t len, uint64_t *seq, char *hash)
{
	json_t *o, *s, *h;
	int rc = -1;

	if ((o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return -1;
	s = json_object_get(o, "seq");
	h = json_object_get(o, "hash");
	if (json_is_integer(s) && json_integer_value(s) > 0 && json_is_string(h) &&
	    hex64(json_string_value(h), json_string_length(h))) {
		*seq = (uint64_t)json_integer_value(s);
		memcpy(hash, json_string_value(h), AUDIT_HASH_HEX + 1);
		rc = 0;
	}
	json_decref(o);
	return rc;
}

static int
pread_full(int fd, char *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pread(fd, buf, len, off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* The last good entry among the last lines of the file (size bytes): what
 * the next one chains to. *need_nl when the file ends in a partial line
 * (a crash in the middle of a write: verify reports it). */
static int
last_entry(struct audit *a, off_t size, uint64_t *seq, char *hash, bool *need_nl)
{
	size_t win = (size_t)size < 2 * AUDIT_MAX_LINE + 2 ?
	    (size_t)size : 2 * AUDIT_MAX_LINE + 2;
	size_t end;
	char *buf;

	*seq = 0;
	memcpy(hash, zero_hash, sizeof(zero_hash));
	*need_nl = false;
	if (size == 0)
		return 0;
	if ((buf = malloc(win)) == NULL || pread_full(a->fd, buf, win, size - (off_t)win) == -1) {
		log_warn("unable to read %s", a->path);
		free(buf);
		return -1;
	}
	end = win;
	if (buf[end - 1] != '\n') {
		*need_nl = true;
		log_warnx("%s ends with an incomplete line; appending after it", a->path);
	}
	/* Each line [s, e) from the end; a partial last line is skipped. */
	while (end > 0) {
		size_t e = end, s;

		if (buf[e - 1] == '\n')
			e--;
		else if (e == win) {
			/* skip the partial line */
			while (e > 0 && buf[e - 1] != '\n')
				e--;
			end = e;
			continue;
		}
		s = e;
		while (s > 0 && buf[s - 1] != '\n')
			s--;
		if ((s > 0 || win == (size_t)size) &&
		    parse_entry(buf + s, e - s, seq, hash) == 0) {
			free(buf);
			return 0;
		}
		end = s;
	}
	free(buf);
	*seq = 0;
	memcpy(hash, zero_hash, sizeof(zero_hash));
	log_warnx("no readable entry at the end of %s: starting a new chain", a->path);
	return 0;
}

static bool
is_reserved(const char *k)
{
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcmp(k, reserved[i]) == 0)
			return true;
	return false;
}

static void
now_rfc3339(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char sec[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03ldZ", sec, ts.tv_nsec / 1000000);
}

/* The object without its hash, compact, ASCII only: B of audit.h. */
static char *
make_body(uint64_t seq, const char *event, json_t *fields, const char *key_id,
    const char *prev)
{
	const char *k;
	json_t *o, *v;
	char t[64], *body = NULL;

	if ((o = json_object()) == NULL)
		return NULL;
	now_rfc3339(t, sizeof(t));
	if (json_object_set_new(o, "seq", json_integer((json_int_t)seq)) == -1 ||
	    json_object_set_new(o, "time", json_string(t)) == -1 ||
	    json_object_set_new(o, "event", json_string(event)) == -1)
		goto out;
	json_object_foreach(fields, k, v)
		if (json_object_set(o, k, v) == -1)
			goto out;
	if ((key_id != NULL && json_object_set_new(o, "chain_key", json_string(key_id)) == -1) ||
	    json_object_set_new(o, "prev", json_string(prev)) == -1)
		goto out;
	body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
out:
	json_decref(o);
	return body;
}

/* A moved or replaced audit.log is followed by path. */
static int
reopen_if_moved(struct audit *a)
{
	struct stat st;

	if (stat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
		return 0;
	close(a->fd);
	a->fd = -1;
	log_warnx("%s was moved or removed: reopening it", a->path);
	return open_log(a);
}

static int
append_locked(struct audit *a, const char *event, json_t *fields)
{
	char hash[AUDIT_HASH_HEX + 1], prev[AUDIT_HASH_HEX + 1];
	char *body = NULL, *line = NULL;
	struct stat st;
	uint64_t seq;
	bool need_nl = false;
	size_t blen, len;
	ssize_t n;
	int rc = -1;

	if (fstat(a->fd, &st) == -1) {
		log_warn("unable to stat %s", a->path);
		return -1;
	}
	if (a->known && st.st_size == a->known_size) {
		seq = a->last_seq;
		memcpy(prev, a->last_hash, sizeof(prev));
	} else if (last_entry(a, st.st_size, &seq, prev, &need_nl) == -1)
		return -1;
	seq++;
	if ((body = make_body(seq, event, fields, a->key.set ? a->key.id : NULL,
	    prev)) == NULL) {
		log_warnx("unable to encode an audit entry for %s", event);
		return -1;
	}
	blen = strlen(body);
	if (blen < 2 || body[blen - 1] != '}' || blen + SUFFIX_LEN + 2 > AUDIT_MAX_LINE) {
		log_warnx("refusing an audit entry for %s of %zu bytes", event, blen);
		goto out;
	}
	audit_hash(&a->key, prev, body, blen, hash);
	len = (need_nl ? 1 : 0) + blen - 1 + SUFFIX_LEN + 1;
	if ((line = malloc(len + 1)) == NULL) {
		log_warn("unable to write an audit entry");
		goto out;
	}
	snprintf(line, len + 1, "%s%.*s%s%s\"}\n", need_nl ? "\n" : "",
	    (int)(blen - 1), body, HASH_KEY, hash);
	/* One write: with O_APPEND and the lock, the line lands whole at the
	 * end, or is cut back off. */
	do
		n = write(a->fd, line, len);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)len) {
		if (n >= 0)
			errno = ENOSPC;
		log_warn("unable to append to %s", a->path);
		if (n > 0 && ftruncate(a->fd, st.st_size) == -1)
			log_warn("unable to cut a partial entry off %s", a->path);
		a->known = false;
		goto out;
	}
	a->known = true;
	a->known_size = st.st_size + (off_t)len;
	a->last_seq = seq;
	memcpy(a->last_hash, hash, sizeof(hash));
	rc = 0;
out:
	free(body);
	free(line);
	return rc;
}

int
audit_append(struct audit *a, const char *event, json_t *fields)
{
	const char *k;
	json_t *v;
	int rc = -1;

	if (event == NULL || *event == '\0' || (fields != NULL && !json_is_object(fields))) {
		log_warnx("refusing a malformed audit entry");
		json_decref(fields);
		return -1;
	}
	json_object_foreach(fields, k, v)
		if (is_reserved(k)) {
			log_warnx("refusing an audit entry for %s: field %s is reserved",
			    event, k);
			json_decref(fields);
			return -1;
		}
	pthread_mutex_lock(&a->lock);
	if (reopen_if_moved(a) == -1)
		goto unlock;
	while (flock(a->fd, LOCK_EX) == -1)
		if (errno != EINTR) {
			log_warn("unable to lock %s", a->path);
			goto unlock;
		}
	rc = append_locked(a, event, fields);
	(void)flock(a->fd, LOCK_UN);
unlock:
	pthread_mutex_unlock(&a->lock);
	json_decref(fields);
	return rc;
}

/* ---- verification ---- */

long long
audit_settled_size(int fd)
{
	struct stat st;
	int rc;

	while ((rc = flock(fd, LOCK_SH)) == -1 && errno == EINTR)
		;
	if (rc == -1)
		return -1;
	rc = fstat(fd, &st);
	(void)flock(fd, LOCK_UN);
	return rc == -1 ? -1 : (long long)st.st_size;
}

static int bad(uint64_t, uint64_t *, char *, size_t, const char *, ...)
    __attribute__((format(printf, 5, 6)));

static int
bad(uint64_t lineno, uint64_t *bad_line, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	*bad_line = lineno;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* What a verification knows and has seen. */
struct chain {
	struct audit_key keys[2];	/* the configured key, audit.key's */
	size_t nkeys;
	bool keyed_seen;
	char key_id[AUDIT_KEY_ID_HEX + 1];	/* of the last good line */
};

/* The members every line has, well formed. */
static bool
line_members_ok(json_t *o)
{
	json_t *s = json_object_get(o, "seq"), *p = json_object_get(o, "prev");

	return json_is_object(o) && json_is_integer(s) && json_integer_value(s) > 0 &&
	    json_is_string(json_object_get(o, "time")) &&
	    json_is_string(json_object_get(o, "event")) && json_is_string(p) &&
	    hex64(json_string_value(p), json_string_length(p));
}

/* The key the line names in chain_key into *key (NULL: unkeyed): 0, or -1
 * when it names a key this verification lacks or is unkeyed after keyed ones. */
static int
line_key(const struct chain *ch, json_t *o, const struct audit_key **key,
    uint64_t lineno, uint64_t *bad_line, char *err, size_t errlen)
{
	json_t *kid = json_object_get(o, "chain_key");

	*key = NULL;
	if (kid == NULL) {
		if (ch->keyed_seen)
			return bad(lineno, bad_line, err, errlen, "line %" PRIu64 ": not"
			    " keyed after keyed entries: rewritten without the key", lineno);
		return 0;
	}
	for (size_t i = 0; i < ch->nkeys && json_is_string(kid); i++)
		if (strcmp(ch->keys[i].id, json_string_value(kid)) == 0)
			*key = &ch->keys[i];
	if (*key == NULL)
		return bad(lineno, bad_line, err, errlen, "line %" PRIu64 ": keyed with an"
		    " unknown key (chain_key %s): not this node's secret key nor its %s",
		    lineno, json_is_string(kid) ? json_string_value(kid) : "malformed",
		    AUDIT_KEY_FILE);
	return 0;
}

/* Where the line's hash is, when it is the last member ,"hash":"<hex>"}. */
static const char *
line_hash_at(const char *line, size_t len)
{
	const char *hash_at;

	if (len < SUFFIX_LEN + 2)
		return NULL;
	hash_at = line + len - SUFFIX_LEN + HASH_KEY_LEN;
	if (memcmp(line + len - SUFFIX_LEN, HASH_KEY, HASH_KEY_LEN) != 0 ||
	    !hex64(hash_at, AUDIT_HASH_HEX) || memcmp(line + len - 2, "\"}", 2) != 0)
		return NULL;
	return hash_at;
}

/* The hash the line should have: of B, the line with ,"hash":"..."} replaced
 * by }, chained to prev. 0, or -1 when out of memory. */
static int
line_hash(const struct audit_key *key, const char *prev, const char *line, size_t len,
    char *computed)
{
	char *body;

	if ((body = malloc(len - SUFFIX_LEN + 1)) == NULL)
		return -1;
	memcpy(body, line, len - SUFFIX_LEN);
	body[len - SUFFIX_LEN] = '}';
	audit_hash(key, prev, body, len - SUFFIX_LEN + 1, computed);
	free(body);
	return 0;
}

/* A line whose hash is right against the one before: seq follows *seq, prev
 * is last. */
static int
line_follows(uint64_t got, const char *prev, uint64_t seq, const char *last,
    uint64_t lineno, uint64_t *bad_line, char *err, size_t errlen)
{
	if (got > seq + 1)
		return bad(lineno, bad_line, err, errlen,
		    "line %" PRIu64 ": seq %" PRIu64 " follows %" PRIu64 ": %" PRIu64
		    " entr%s missing (removed or moved)", lineno, got, seq,
		    got - seq - 1, got - seq - 1 == 1 ? "y" : "ies");
	if (got != seq + 1)
		return bad(lineno, bad_line, err, errlen,
		    "line %" PRIu64 ": seq %" PRIu64 " follows %" PRIu64
		    ": entries moved or repeated", lineno, got, seq);
	if (strcmp(prev, last) != 0)
		return bad(lineno, bad_line, err, errlen,
		    "line %" PRIu64 ": prev is not the hash of the entry before:"
		    " an entry was removed, replaced or moved", lineno);
	return 0;
}

/* One line (no newline) against the chain so far. */
static int
check_line(struct chain *ch, const char *line, size_t len, uint64_t lineno, uint64_t *seq,
    char *last, uint64_t *bad_line, char *err, size_t errlen)
{
	const struct audit_key *key;
	const char *hash_at, *prev;
	char computed[AUDIT_HASH_HEX + 1];
	json_error_t je;
	json_t *o;
	uint64_t got;
	int rc = -1;

	if (len == 0)
		return bad(lineno, bad_line, err, errlen, "line %" PRIu64 ": empty line", lineno);
	if ((o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je)) == NULL)
		return bad(lineno, bad_line, err, errlen,
		    "line %" PRIu64 ": not a JSON object (truncated or edited): %s",
		    lineno, je.text);
	if (!line_members_ok(o)) {
		bad(lineno, bad_line, err, errlen,
		    "line %" PRIu64 ": seq, time, event or prev missing or malformed"
		    " (edited)", lineno);
		goto out;
	}
	if (line_key(ch, o, &key, lineno, bad_line, err, errlen) == -1)
		goto out;
	if ((hash_at = line_hash_at(line, len)) == NULL) {
		bad(lineno, bad_line, err, errlen,
		    "line %" PRIu64 ": hash missing or not the last member (edited)", lineno);
		goto out;
	}
	prev = json_string_value(json_object_get(o, "prev"));
	if (line_hash(key, prev, line, len, computed) == -1) {
		bad(lineno, bad_line, err, errlen, "line %" PRIu64 ": out of memory", lineno);
		goto out;
	}
	got = (uint64_t)json_integer_value(json_object_get(o, "seq"));
	if (memcmp(computed, hash_at, AUDIT_HASH_HEX) != 0)
		bad(lineno, bad_line, err, errlen,
		    "line %" PRIu64 ": hash mismatch: the entry was edited", lineno);
	else if (line_follows(got, prev, *seq, last, lineno, bad_line, err, errlen) == 0) {
		*seq = got;
		memcpy(last, hash_at, AUDIT_HASH_HEX);
		last[AUDIT_HASH_HEX] = '\0';
		if (key != NULL)
			ch->keyed_seen = true;
		snprintf(ch->key_id, sizeof(ch->key_id), "%s", key != NULL ? key->id : "");
		rc = 0;
	}
out:
	json_decref(o);
	return rc;
}

/* The keys a verification of path knows: the configured one, and the
 * audit.key beside path. */
static void
chain_keys(const char *path, struct chain *ch)
{
	char *dir, *slash;

	memset(ch, 0, sizeof(*ch));
	if (audit_key_configured(&ch->keys[0]))
		ch->nkeys++;
	if ((dir = strdup(path)) == NULL)
		return;
	slash = strrchr(dir, '/');
	if (slash != NULL)
		*slash = '\0';
	if (audit_key_file(slash != NULL ? dir : ".", false, &ch->keys[ch->nkeys]) == 1)
		ch->nkeys++;
	free(dir);
}

/* "HASH" or "SEQ:HASH": 0 with *seq (0 when not given) and hash. */
static int
parse_head(const char *head, uint64_t *seq, char *hash)
{
	const char *colon = strchr(head, ':'), *h = colon ? colon + 1 : head;
	char *end;

	*seq = 0;
	if (colon != NULL) {
		errno = 0;
		*seq = strtoull(head, &end, 10);
		if (errno != 0 || end != colon || *seq == 0 || head[0] == '-')
			return -1;
	}
	if (!hex64(h, strlen(h)))
		return -1;
	memcpy(hash, h, AUDIT_HASH_HEX + 1);
	return 0;
}

int
audit_verify(const char *path, uint64_t *n, uint64_t *bad_line,
    char *last_hash, char *err, size_t errlen)
{
	return audit_verify_head(path, NULL, n, bad_line, last_hash, NULL, err, errlen);
}

/* One verification of a file, against an anchored head when one is given. */
struct verify {
	struct chain ch;
	char last[AUDIT_HASH_HEX + 1];	/* hash of the last good line */
	char anchor[AUDIT_HASH_HEX + 1];
	uint64_t anchor_seq;	/* 0: any */
	bool anchor_found;
	uint64_t lineno, seq;
	const char *path, *head;
	uint64_t *n, *bad_line;
	char *err;
	size_t errlen;
};

/* Opens v->path and takes its settled size: 1 with *fp and *size, 0 when it
 * is missing and may be (no head), -1 with v->err. */
static int
verify_open(struct verify *v, FILE **fp, long long *size)
{
	FILE *f;

	if ((f = fopen(v->path, "re")) == NULL) {
		if (errno == ENOENT && v->head == NULL)
			return 0;
		if (errno == ENOENT)
			snprintf(v->err, v->errlen, "%s is missing: the anchored head %s"
			    " is not in it", v->path, v->head);
		else
			snprintf(v->err, v->errlen, "unable to open %s: %s", v->path,
			    strerror(errno));
		return -1;
	}
	if ((*size = audit_settled_size(fileno(f))) == -1) {
		snprintf(v->err, v->errlen, "unable to lock %s: %s", v->path, strerror(errno));
		fclose(f);
		return -1;
	}
	*fp = f;
	return 1;
}

/* Each line of f up to size (what a writer appends meanwhile is not read):
 * 0, or -1 with v->err and *v->bad_line. */
static int
verify_lines(struct verify *v, FILE *f, long long size)
{
	char *line = NULL;
	long long done = 0;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;

	while (done < size && (len = getline(&line, &cap, f)) != -1) {
		v->lineno++;
		done += len;
		if (line[len - 1] != '\n') {
			rc = bad(v->lineno, v->bad_line, v->err, v->errlen,
			    "line %" PRIu64 ": truncated line (no end of line)", v->lineno);
			break;
		}
		if (check_line(&v->ch, line, (size_t)len - 1, v->lineno, &v->seq, v->last,
		    v->bad_line, v->err, v->errlen) == -1) {
			rc = -1;
			break;
		}
		if (v->head != NULL && strcmp(v->last, v->anchor) == 0 &&
		    (v->anchor_seq == 0 || v->anchor_seq == v->seq))
			v->anchor_found = true;
		(*v->n)++;
	}
	if (rc == 0 && ferror(f)) {
		snprintf(v->err, v->errlen, "unable to read %s: %s", v->path, strerror(errno));
		*v->bad_line = 0;
		rc = -1;
	}
	free(line);
	return rc;
}

/* What the whole chain must show once each line is good: keyed entries when
 * this node has a key, and the anchored head. */
static int
verify_whole(struct verify *v)
{
	if (*v->n > 0 && v->ch.nkeys > 0 && !v->ch.keyed_seen) {
		/* Anyone who can write the file could have written this. */
		return bad(v->lineno, v->bad_line, v->err, v->errlen, "no entry is keyed"
		    " (chain_key), while this node has a key: the chain may have been"
		    " rewritten without it");
	}
	if (v->head != NULL && !v->anchor_found) {
		snprintf(v->err, v->errlen, "the anchored head %s is not in the chain (%"
		    PRIu64 " entries): entries were cut from its end, or it was rewritten",
		    v->head, *v->n);
		*v->bad_line = 0;
		return -1;
	}
	return 0;
}

int
audit_verify_head(const char *path, const char *head, uint64_t *n, uint64_t *bad_line,
    char *last_hash, char *key_id, char *err, size_t errlen)
{
	struct verify v = { .path = path, .head = head, .n = n, .bad_line = bad_line,
	    .err = err, .errlen = errlen };
	long long size;
	FILE *f;
	int rc;

	*n = 0;
	*bad_line = 0;
	memcpy(v.last, zero_hash, sizeof(v.last));
	if (last_hash != NULL)
		memcpy(last_hash, zero_hash, sizeof(v.last));
	if (key_id != NULL)
		key_id[0] = '\0';
	snprintf(err, errlen, "ok");
	if (head != NULL && parse_head(head, &v.anchor_seq, v.anchor) == -1) {
		snprintf(err, errlen, "--head %s: not a hash (64 hex digits) or SEQ:HASH", head);
		return -1;
	}
	if (sodium_init() == -1) {
		snprintf(err, errlen, "unable to initialize libsodium");
		return -1;
	}
	chain_keys(path, &v.ch);
	if ((rc = verify_open(&v, &f, &size)) <= 0)
		return rc;
	rc = verify_lines(&v, f, size);
	if (rc == 0)
		rc = verify_whole(&v);
	if (key_id != NULL)
		memcpy(key_id, v.ch.key_id, sizeof(v.ch.key_id));
	sodium_memzero(&v.ch, sizeof(v.ch));
	if (last_hash != NULL)
		memcpy(last_hash, v.last, sizeof(v.last));
	fclose(f);
	return rc;
}
