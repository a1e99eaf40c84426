/* Unit tests of libcommon/audit.c: the line format and the hash as
 * documented (recomputed here with libsodium directly), verification of a
 * good chain, and detection of an edited byte, a removed line, reordered
 * lines, a truncated line and a re-hashed edit, each at the right line;
 * concurrent appends from two processes and two threads keep the chain,
 * and a verification meanwhile never sees half an entry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>
#include <sodium.h>

#include "audit.h"
#include "log.h"

#define NLINES 6
#define MAXL 64

static char dir[64], path[128];

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/audit-test-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", dir, AUDIT_FILE);
	return 0;
}

static int
teardown(void **state)
{
	char key[160];

	snprintf(key, sizeof(key), "%s/%s", dir, AUDIT_KEY_FILE);
	unlink(path);
	unlink(key);
	rmdir(dir);
	return 0;
}

/* K as audit.h defines it, computed here from audit.key's hex digits. */
static void
chain_key(unsigned char k[32], char id[17])
{
	unsigned char raw[32], i8[8];
	char name[160], hex[80];
	FILE *f;

	snprintf(name, sizeof(name), "%s/%s", dir, AUDIT_KEY_FILE);
	assert_non_null(f = fopen(name, "r"));
	assert_non_null(fgets(hex, sizeof(hex), f));
	fclose(f);
	assert_int_equal(sodium_hex2bin(raw, 32, hex, 64, NULL, NULL, NULL), 0);
	crypto_generichash(k, 32, (const unsigned char *)"manta-node audit chain v1", 25,
	    raw, 32);
	crypto_generichash(i8, 8, (const unsigned char *)"manta-node audit key id", 23, k, 32);
	sodium_bin2hex(id, 17, i8, 8);
}

/* ---- helpers ---- */

struct lines {
	size_t n;
	char *l[4096];		/* with their newline, except a truncated last */
};

static void
read_lines(struct lines *ls)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;

	assert_non_null(f);
	ls->n = 0;
	while (getline(&line, &cap, f) != -1) {
		assert_true(ls->n < 4096);
		ls->l[ls->n++] = strdup(line);
	}
	free(line);
	fclose(f);
}

static void
write_lines(const struct lines *ls)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	for (size_t i = 0; i < ls->n; i++)
		fputs(ls->l[i], f);
	fclose(f);
}

static void
free_lines(struct lines *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->l[i]);
	ls->n = 0;
}

static void
fill(int n)
{
	struct audit *a;

	unlink(path);
	assert_non_null(a = audit_open(dir));
	for (int i = 0; i < n; i++)
		assert_int_equal(audit_append(a, i % 2 ? "task_started" : "command",
		    json_pack("{s:s, s:i, s:s}", "topic", "node/abc/deploy_task",
		    "bytes", 100 + i, "text", "d\xc3\xa9j\xc3\xa0 \"vu\"\n")), 0);
	audit_close(a);
}

/* verify: -1 and the bad line, or the number of entries. */
static long
verify(char *err, size_t errlen)
{
	uint64_t n, badl;

	if (audit_verify(path, &n, &badl, NULL, err, errlen) == -1) {
		assert_true(badl > 0);
		return -(long)badl;
	}
	return (long)n;
}

/* ---- tests ---- */

static void
test_format_and_hash(void **state)
{
	char prev[AUDIT_HASH_HEX + 1], err[256];
	unsigned char h[32], key[32];
	char hex[AUDIT_HASH_HEX + 1], id[17];
	struct lines ls;

	fill(NLINES);
	chain_key(key, id);
	read_lines(&ls);
	assert_int_equal(ls.n, NLINES);
	memset(prev, '0', AUDIT_HASH_HEX);
	prev[AUDIT_HASH_HEX] = '\0';
	for (size_t i = 0; i < ls.n; i++) {
		size_t len = strlen(ls.l[i]);
		const char *keys[] = { "seq", "time", "event", "topic", "bytes", "text",
		    "chain_key", "prev", "hash" };
		const char *k, *t;
		json_t *o, *v;
		size_t ki = 0;
		char *b;
		crypto_generichash_state st;

		assert_true(len > 80 && ls.l[i][len - 1] == '\n');
		/* pure ASCII, one line */
		for (size_t c = 0; c < len - 1; c++)
			assert_true(ls.l[i][c] >= 0x20 && ls.l[i][c] < 0x7f);
		assert_non_null(o = json_loadb(ls.l[i], len - 1, 0, NULL));
		json_object_foreach(o, k, v) {
			assert_true(ki < 9);
			assert_string_equal(k, keys[ki]);
			ki++;
		}
		assert_int_equal(ki, 9);
		assert_string_equal(json_string_value(json_object_get(o, "chain_key")), id);
		assert_int_equal(json_integer_value(json_object_get(o, "seq")), (json_int_t)i + 1);
		assert_string_equal(json_string_value(json_object_get(o, "prev")), prev);
		assert_string_equal(json_string_value(json_object_get(o, "text")),
		    "d\xc3\xa9j\xc3\xa0 \"vu\"\n");
		t = json_string_value(json_object_get(o, "time"));
		/* 2024-01-02T03:04:05.678Z */
		assert_int_equal(strlen(t), 24);
		assert_true(t[4] == '-' && t[10] == 'T' && t[19] == '.' && t[23] == 'Z');

		/* hash = BLAKE2b-256_K(prev || line without ,"hash":"..." + "}") */
		assert_non_null(b = strdup(ls.l[i]));
		k = strstr(b, ",\"hash\":\"");
		assert_non_null(k);
		assert_int_equal(len - 1 - (size_t)(k - b), 9 + 64 + 2);
		b[k - b] = '}';
		b[k - b + 1] = '\0';
		crypto_generichash_init(&st, key, 32, 32);
		crypto_generichash_update(&st, (const unsigned char *)prev, 64);
		crypto_generichash_update(&st, (const unsigned char *)b, strlen(b));
		crypto_generichash_final(&st, h, 32);
		sodium_bin2hex(hex, sizeof(hex), h, 32);
		assert_string_equal(json_string_value(json_object_get(o, "hash")), hex);
		memcpy(prev, hex, sizeof(prev));
		free(b);
		json_decref(o);
	}
	free_lines(&ls);
	assert_int_equal(verify(err, sizeof(err)), NLINES);
	assert_string_equal(err, "ok");
}

static void
test_missing_and_empty(void **state)
{
	char err[256];
	FILE *f;

	unlink(path);
	assert_int_equal(verify(err, sizeof(err)), 0);
	assert_non_null(f = fopen(path, "w"));
	fclose(f);
	assert_int_equal(verify(err, sizeof(err)), 0);
}

static void
test_refusals(void **state)
{
	struct audit *a;
	char err[256];

	unlink(path);
	assert_non_null(a = audit_open(dir));
	assert_int_equal(audit_append(a, "x", json_pack("{s:i}", "seq", 3)), -1);
	assert_int_equal(audit_append(a, "x", json_pack("{s:s}", "hash", "h")), -1);
	assert_int_equal(audit_append(a, "", NULL), -1);
	assert_int_equal(audit_append(a, "x", json_pack("[i]", 1)), -1);
	assert_int_equal(audit_append(a, "no_fields", NULL), 0);
	audit_close(a);
	assert_int_equal(verify(err, sizeof(err)), 1);
}

/* Every byte of a line edited (one at a time) is found at that line; a
 * byte whose change still parses gives a hash mismatch. */
static void
test_edit_each_byte(void **state)
{
	char err[256];
	struct lines ls;
	int hash_mismatch = 0;

	fill(NLINES);
	read_lines(&ls);
	for (size_t li = 0; li < ls.n; li++) {
		size_t len = strlen(ls.l[li]);

		for (size_t c = 0; c + 1 < len; c++) {
			char orig = ls.l[li][c];

			/* a change that keeps the character class: digit->digit,
			 * letter->letter, else a space */
			if (orig >= '0' && orig <= '8')
				ls.l[li][c] = (char)(orig + 1);
			else if (orig >= 'a' && orig <= 'y')
				ls.l[li][c] = (char)(orig + 1);
			else
				ls.l[li][c] = orig == ' ' ? 'x' : ' ';
			write_lines(&ls);
			if (verify(err, sizeof(err)) != -(long)(li + 1))
				fail_msg("edit of line %zu byte %zu (%c): %s", li + 1, c,
				    orig, err);
			if (strstr(err, "hash mismatch") != NULL)
				hash_mismatch++;
			ls.l[li][c] = orig;
		}
	}
	assert_true(hash_mismatch > 100);
	write_lines(&ls);
	assert_int_equal(verify(err, sizeof(err)), NLINES);
	free_lines(&ls);
}

static void
test_remove_line(void **state)
{
	char err[256];
	struct lines ls;

	/* Removing any line but the last is found at the line that took its
	 * place (the tail has no successor: see mantactl(8), AUDIT). */
	for (size_t k = 0; k + 1 < NLINES; k++) {
		char *gone;

		fill(NLINES);
		read_lines(&ls);
		gone = ls.l[k];
		memmove(&ls.l[k], &ls.l[k + 1], (ls.n - k - 1) * sizeof(char *));
		ls.n--;
		write_lines(&ls);
		assert_int_equal(verify(err, sizeof(err)), -(long)(k + 1));
		assert_non_null(strstr(err, "missing"));
		free(gone);
		free_lines(&ls);
	}
}

static void
test_reorder(void **state)
{
	char err[256], *t;
	struct lines ls;

	fill(NLINES);
	read_lines(&ls);
	t = ls.l[2];
	ls.l[2] = ls.l[3];
	ls.l[3] = t;
	write_lines(&ls);
	assert_int_equal(verify(err, sizeof(err)), -3);
	free_lines(&ls);

	/* the same entry twice */
	fill(NLINES);
	read_lines(&ls);
	free(ls.l[4]);
	ls.l[4] = strdup(ls.l[3]);
	write_lines(&ls);
	assert_int_equal(verify(err, sizeof(err)), -5);
	assert_non_null(strstr(err, "moved or repeated"));
	free_lines(&ls);
}

/* Writes ls back, frees it: verify must fail at line with why in err. */
static void
found_at(struct lines *ls, long line, const char *why)
{
	char err[256];

	write_lines(ls);
	assert_int_equal(verify(err, sizeof(err)), -line);
	assert_non_null(strstr(err, why));
	free_lines(ls);
}

/* Rewrites line i (0-based) with its hash recomputed, keyed with k (NULL:
 * unkeyed, its chain_key member taken out), chained to prev when not NULL;
 * its new hash into out. */
static void
rehash(struct lines *ls, size_t i, const struct audit_key *k, const char *prev, char *out)
{
	char *l = ls->l[i], *h, *ck, *nl;
	json_t *o;

	if (prev != NULL) {
		char *p = strstr(l, ",\"prev\":\"");

		assert_non_null(p);
		memcpy(p + 9, prev, AUDIT_HASH_HEX);
	}
	if (k == NULL && (ck = strstr(l, ",\"chain_key\":\"")) != NULL)
		memmove(ck, ck + 14 + AUDIT_KEY_ID_HEX + 1, strlen(ck + 14 + AUDIT_KEY_ID_HEX + 1) + 1);
	nl = strchr(l, '\n');
	assert_non_null(o = json_loadb(l, nl ? (size_t)(nl - l) : strlen(l), 0, NULL));
	h = strstr(l, ",\"hash\":\"");
	*h = '}';
	audit_hash(k, json_string_value(json_object_get(o, "prev")), l, (size_t)(h - l) + 1, out);
	*h = ',';
	memcpy(h + 9, out, AUDIT_HASH_HEX);
	json_decref(o);
}

/* A chain of NLINES rewritten whole with unkeyed hashes, chain_key out. */
static void
unkeyed_chain(void)
{
	char prev[AUDIT_HASH_HEX + 1];
	struct lines ls;

	fill(NLINES);
	read_lines(&ls);
	memset(prev, '0', AUDIT_HASH_HEX);
	prev[AUDIT_HASH_HEX] = '\0';
	for (size_t i = 0; i < ls.n; i++)
		rehash(&ls, i, NULL, prev, prev);
	write_lines(&ls);
	free_lines(&ls);
}

/* Issue 13: the whole chain rewritten with unkeyed hashes (chain_key taken
 * out), as anyone who can write the file could: refused. So is one
 * rewritten under another key, and an unkeyed line after keyed ones. */
static void
test_unkeyed_rewrite(void **state)
{
	char err[256], prev[AUDIT_HASH_HEX + 1];
	struct audit_key other;
	unsigned char raw[32];
	struct lines ls;

	unkeyed_chain();
	assert_true(verify(err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "no entry is keyed"));

	fill(NLINES);
	read_lines(&ls);
	randombytes_buf(raw, sizeof(raw));
	audit_key_derive(raw, sizeof(raw), "attacker", &other);
	memset(prev, '0', AUDIT_HASH_HEX);
	for (size_t i = 0; i < ls.n; i++) {
		char *ck = strstr(ls.l[i], ",\"chain_key\":\"");

		memcpy(ck + 14, other.id, AUDIT_KEY_ID_HEX);
		rehash(&ls, i, &other, prev, prev);
	}
	found_at(&ls, 1, "unknown key");

	/* a downgrade at line 4 (its successors chained to it) */
	fill(NLINES);
	read_lines(&ls);
	rehash(&ls, 3, NULL, NULL, prev);
	found_at(&ls, 4, "not keyed after keyed entries");
}

/* A trail written before keys (unkeyed) goes on keyed after an upgrade:
 * the old lines verify as they are, chained into the keyed ones. */
static void
test_legacy_prefix(void **state)
{
	char err[256];
	struct audit *a;

	unkeyed_chain();
	assert_true(verify(err, sizeof(err)) < 0);	/* nothing keyed yet */
	assert_non_null(a = audit_open(dir));
	assert_int_equal(audit_append(a, "upgraded", NULL), 0);
	audit_close(a);
	assert_int_equal(verify(err, sizeof(err)), NLINES + 1);
}

/* Issue 13: cut from the end, the chain is still whole; only against a
 * head anchored elsewhere does it show. */
static void
test_anchored_head(void **state)
{
	char err[256], last[AUDIT_HASH_HEX + 1], head[100], id[AUDIT_KEY_ID_HEX + 1];
	uint64_t n, badl;
	struct lines ls;

	fill(NLINES);
	assert_int_equal(audit_verify_head(path, NULL, &n, &badl, last, id, err,
	    sizeof(err)), 0);
	assert_int_equal(n, NLINES);
	assert_int_equal(strlen(id), AUDIT_KEY_ID_HEX);
	snprintf(head, sizeof(head), "%d:%s", NLINES, last);
	assert_int_equal(audit_verify_head(path, head, &n, &badl, NULL, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(audit_verify_head(path, last, &n, &badl, NULL, NULL, err,
	    sizeof(err)), 0);
	read_lines(&ls);
	free(ls.l[--ls.n]);
	write_lines(&ls);
	free_lines(&ls);
	assert_int_equal(verify(err, sizeof(err)), NLINES - 1);
	assert_int_equal(audit_verify_head(path, head, &n, &badl, NULL, NULL, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "is not in the chain"));
	/* the right hash at the wrong seq, and a malformed head */
	snprintf(head, sizeof(head), "%d:%s", NLINES + 1, last);
	assert_int_equal(audit_verify_head(path, head, &n, &badl, NULL, NULL, err,
	    sizeof(err)), -1);
	assert_int_equal(audit_verify_head(path, "xyz", &n, &badl, NULL, NULL, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "not a hash"));
}

/* An attacker who edits line 3 and recomputes its hash (with the key) is
 * found at line 4. */
static void
test_rehashed_edit(void **state)
{
	char hash[AUDIT_HASH_HEX + 1], *p, *h;
	struct audit_key k;
	json_t *o;
	struct lines ls;

	fill(NLINES);
	assert_int_equal(audit_key_file(dir, false, &k), 1);
	read_lines(&ls);
	p = strstr(ls.l[2], "\"bytes\":102");
	assert_non_null(p);
	p[9] = '9';
	assert_non_null(o = json_loads(ls.l[2], 0, NULL));
	h = strstr(ls.l[2], ",\"hash\":\"");
	*h = '}';
	audit_hash(&k, json_string_value(json_object_get(o, "prev")), ls.l[2],
	    (size_t)(h - ls.l[2]) + 1, hash);
	*h = ',';
	memcpy(h + 9, hash, AUDIT_HASH_HEX);
	json_decref(o);
	found_at(&ls, 4, "prev");
}

static void
test_truncated(void **state)
{
	char err[256];
	struct lines ls;
	struct audit *a;

	fill(NLINES);
	read_lines(&ls);
	ls.l[NLINES - 1][strlen(ls.l[NLINES - 1]) / 2] = '\0';
	write_lines(&ls);
	assert_int_equal(verify(err, sizeof(err)), -NLINES);
	assert_non_null(strstr(err, "truncated"));
	free_lines(&ls);

	/* The next append closes the cut line and chains to the last good
	 * one; verify still names the cut line. */
	assert_non_null(a = audit_open(dir));
	assert_int_equal(audit_append(a, "after_crash", NULL), 0);
	audit_close(a);
	read_lines(&ls);
	assert_int_equal(ls.n, NLINES + 1);
	assert_non_null(strstr(ls.l[NLINES], "\"seq\":6,"));
	assert_int_equal(verify(err, sizeof(err)), -NLINES);
	assert_non_null(strstr(err, "not a JSON object"));
	/* without the cut line the chain is whole again */
	free(ls.l[NLINES - 1]);
	ls.l[NLINES - 1] = ls.l[NLINES];
	ls.n--;
	write_lines(&ls);
	assert_int_equal(verify(err, sizeof(err)), NLINES);
	free_lines(&ls);
}

#define PER_WRITER 300

static void
writer(const char *who)
{
	struct audit *a = audit_open(dir);

	if (a == NULL)
		_exit(2);
	for (int i = 0; i < PER_WRITER; i++)
		if (audit_append(a, "command", json_pack("{s:s, s:i}", "who", who,
		    "i", i)) == -1)
			_exit(3);
	audit_close(a);
}

static void *
thread_writer(void *arg)
{
	struct audit *a = arg;

	for (int i = 0; i < PER_WRITER; i++)
		if (audit_append(a, "world_call", json_pack("{s:i}", "i", i)) == -1)
			return arg;
	return NULL;
}

static void
test_concurrent(void **state)
{
	char err[256];
	pid_t pids[2];
	pthread_t th[2];
	struct audit *a;
	void *r;
	int st;

	unlink(path);
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		assert_true(pids[i] != -1);
		if (pids[i] == 0) {
			writer(i ? "b" : "a");
			_exit(0);
		}
	}
	/* and two threads of this process on one handle, meanwhile */
	assert_non_null(a = audit_open(dir));
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, thread_writer, a), 0);
	/* A reader meanwhile never sees half an entry. */
	for (int i = 0; i < 2; i++) {
		while (waitpid(pids[i], &st, WNOHANG) == 0)
			if (verify(err, sizeof(err)) < 0)
				fail_msg("verify during appends: %s", err);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(th[i], &r), 0);
		assert_null(r);
	}
	audit_close(a);
	if (verify(err, sizeof(err)) != 4 * PER_WRITER)
		fail_msg("%s", err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_and_hash),
		cmocka_unit_test(test_missing_and_empty),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_edit_each_byte),
		cmocka_unit_test(test_remove_line),
		cmocka_unit_test(test_reorder),
		cmocka_unit_test(test_rehashed_edit),
		cmocka_unit_test(test_unkeyed_rewrite),
		cmocka_unit_test(test_anchored_head),
		cmocka_unit_test(test_legacy_prefix),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_concurrent),
	};

	log_init("test_audit", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
