/* test_secret: libcommon/secret.c and what cfg.c does with it. Seal and
 * open round trips, a wrong key, truncated, altered and malformed values,
 * the key's places ($MANTA_SECRET_KEY, the key file) and the key files
 * refused (mode, owner, link, size, content); then a config with a sealed
 * token and sealed node.key/mqtt.key: opened at load, refused with a wrong
 * key naming file, line and key without showing the secret, and masked by
 * cfg_print. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "cfg.h"
#include "secret.h"

static char tmpdir[] = "/tmp/test_secret.XXXXXX";

#define TOKEN "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJub2RlIn0.c2VrcmV0LXNpZ25hdHVyZQ"

static const char *
tpath(const char *name)
{
	static char buf[64][512];
	static int i;

	i = (i + 1) % 64;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, name);
	return buf[i];
}

static void
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	FILE *f;

	unlink(path);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static unsigned char *
fixed_key(unsigned char fill)
{
	unsigned char raw[SECRET_KEY_BYTES];
	char hex[2 * SECRET_KEY_BYTES + 1], why[700];
	unsigned char *k;

	memset(raw, fill, sizeof(raw));
	sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
	setenv(SECRET_ENV, hex, 1);
	k = secret_key_load(NULL, why, sizeof(why));
	unsetenv(SECRET_ENV);
	assert_non_null(k);
	return k;
}

/* ---- sealing ---- */

static void
test_round_trip(void **state)
{
	unsigned char *k = fixed_key(1);
	char *s1, *s2, *pt;
	size_t n = 0;
	char *big;

	s1 = secret_seal(k, TOKEN, strlen(TOKEN));
	s2 = secret_seal(k, TOKEN, strlen(TOKEN));
	assert_non_null(s1);
	assert_non_null(s2);
	assert_true(secret_is_sealed(s1));
	assert_null(strstr(s1, TOKEN));
	assert_string_not_equal(s1, s2);	/* a fresh nonce each time */
	pt = secret_open(k, s1, strlen(s1), &n);
	assert_non_null(pt);
	assert_int_equal(n, strlen(TOKEN));
	assert_string_equal(pt, TOKEN);
	secret_free(pt);
	/* whitespace around it (a file's newline) is fine */
	{
		char *padded;

		assert_true(asprintf(&padded, "  %s\n", s2) > 0);
		pt = secret_open(k, padded, strlen(padded), NULL);
		assert_non_null(pt);
		assert_string_equal(pt, TOKEN);
		secret_free(pt);
		free(padded);
	}
	free(s1);
	free(s2);

	/* empty and large (a PEM bundle) plaintexts, binary included */
	s1 = secret_seal(k, "", 0);
	pt = secret_open(k, s1, strlen(s1), &n);
	assert_non_null(pt);
	assert_int_equal(n, 0);
	secret_free(pt);
	free(s1);
	big = malloc(100000);
	assert_non_null(big);
	for (size_t i = 0; i < 100000; i++)
		big[i] = (char)(i * 7 + 1);
	s1 = secret_seal(k, big, 100000);
	pt = secret_open(k, s1, strlen(s1), &n);
	assert_non_null(pt);
	assert_int_equal(n, 100000);
	assert_memory_equal(pt, big, 100000);
	secret_free(pt);
	free(s1);
	free(big);
	secret_key_free(k);
}

static void
test_wrong_key(void **state)
{
	unsigned char *k1 = fixed_key(1), *k2 = fixed_key(2);
	char *s = secret_seal(k1, TOKEN, strlen(TOKEN));

	errno = 0;
	assert_null(secret_open(k2, s, strlen(s), NULL));
	assert_int_equal(errno, EBADMSG);
	free(s);
	secret_key_free(k1);
	secret_key_free(k2);
}

static void
test_corrupt(void **state)
{
	unsigned char *k = fixed_key(3);
	char *s = secret_seal(k, TOKEN, strlen(TOKEN));
	size_t len = strlen(s);
	char *t = strdup(s);
	static const char *const malformed[] = {
		"", "sbox:", "sbox", "SBOX:AAAA", "aaa.bbb.ccc",
		"sbox:AAAA",				/* shorter than nonce + tag */
		"sbox:not base64!!",
		"sbox:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA===",
	};

	/* truncated at every length: never opens */
	for (size_t cut = 0; cut < len; cut++) {
		errno = 0;
		assert_null(secret_open(k, s, cut, NULL));
		assert_true(errno == EINVAL || errno == EBADMSG);
	}
	/* one character changed anywhere after the prefix: never opens */
	for (size_t i = strlen(SECRET_PREFIX); i < len; i++) {
		char *pt;

		memcpy(t, s, len + 1);
		t[i] = t[i] == 'A' ? 'B' : 'A';
		pt = secret_open(k, t, len, NULL);
		if (pt != NULL)
			fail_msg("altered at %zu, still opens", i);
		assert_true(errno == EINVAL || errno == EBADMSG);
	}
	/* the ciphertext altered but well-formed: the tag says so */
	{
		unsigned char bin[4096];
		size_t binlen;
		char *re;

		assert_int_equal(sodium_base642bin(bin, sizeof(bin), s + 5, len - 5, NULL,
		    &binlen, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
		bin[binlen - 1] ^= 1;
		re = malloc(len + 1);
		memcpy(re, "sbox:", 5);
		sodium_bin2base64(re + 5, len - 4, bin, binlen, sodium_base64_VARIANT_ORIGINAL);
		errno = 0;
		assert_null(secret_open(k, re, strlen(re), NULL));
		assert_int_equal(errno, EBADMSG);
		free(re);
	}
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		errno = 0;
		assert_null(secret_open(k, malformed[i], strlen(malformed[i]), NULL));
		assert_int_equal(errno, EINVAL);
	}
	free(t);
	free(s);
	secret_key_free(k);
}

/* ---- the key ---- */

static void
test_key_sources(void **state)
{
	const char *kf = tpath("k1");
	unsigned char raw[SECRET_KEY_BYTES], *k, *k2;
	char why[700], b64[64], hex[80];
	char *s, *pt;
	struct stat st;

	unsetenv(SECRET_ENV);
	unlink(kf);
	/* no file: says where, and how to make one */
	assert_null(secret_key_load(kf, why, sizeof(why)));
	assert_non_null(strstr(why, kf));
	assert_non_null(strstr(why, "secret init"));

	assert_int_equal(secret_key_create(kf), 0);
	assert_int_equal(stat(kf, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0400);
	assert_int_equal(st.st_size, 65);
	errno = 0;
	assert_int_equal(secret_key_create(kf), -1);	/* never replaced */
	assert_int_equal(errno, EEXIST);
	k = secret_key_load(kf, why, sizeof(why));
	assert_non_null(k);
	assert_string_equal(secret_key_source(kf), kf);

	/* the same key from the environment, in hex and in base64 */
	s = secret_seal(k, TOKEN, strlen(TOKEN));
	{
		FILE *f = fopen(kf, "r");

		assert_non_null(f);
		assert_non_null(fgets(hex, sizeof(hex), f));
		fclose(f);
	}
	hex[strcspn(hex, "\n")] = '\0';
	assert_int_equal(strlen(hex), 64);
	setenv(SECRET_ENV, hex, 1);
	assert_string_equal(secret_key_source(kf), SECRET_ENV);
	k2 = secret_key_load("/nonexistent", why, sizeof(why));	/* env first */
	assert_non_null(k2);
	pt = secret_open(k2, s, strlen(s), NULL);
	assert_non_null(pt);
	assert_string_equal(pt, TOKEN);
	secret_free(pt);
	secret_key_free(k2);
	assert_int_equal(sodium_hex2bin(raw, sizeof(raw), hex, 64, NULL, NULL, NULL), 0);
	sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
	setenv(SECRET_ENV, b64, 1);
	k2 = secret_key_load(NULL, why, sizeof(why));
	assert_non_null(k2);
	assert_memory_equal(k2, k, SECRET_KEY_BYTES);
	secret_key_free(k2);
	/* a malformed variable is an error, not a fallback to the file */
	setenv(SECRET_ENV, "0123", 1);
	assert_null(secret_key_load(kf, why, sizeof(why)));
	assert_non_null(strstr(why, SECRET_ENV));
	assert_null(strstr(why, "0123"));
	unsetenv(SECRET_ENV);

	/* 32 raw bytes in a file do too */
	write_file(tpath("k2"), raw, sizeof(raw), 0600);
	k2 = secret_key_load(tpath("k2"), why, sizeof(why));
	assert_non_null(k2);
	assert_memory_equal(k2, k, SECRET_KEY_BYTES);
	secret_key_free(k2);

	free(s);
	secret_key_free(k);
	sodium_memzero(raw, sizeof(raw));
}

static void
test_key_file_refused(void **state)
{
	static const mode_t bad_modes[] = { 0440, 0404, 0640, 0604, 0420, 0402, 0410, 0644 };
	const char *kf = tpath("k3");
	char why[700];
	unsigned char *k;

	unsetenv(SECRET_ENV);
	unlink(kf);
	assert_int_equal(secret_key_create(kf), 0);
	for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
		assert_int_equal(chmod(kf, bad_modes[i]), 0);
		assert_null(secret_key_load(kf, why, sizeof(why)));
		if (strstr(why, "group or others") == NULL)
			fail_msg("mode %04o: %s", (unsigned)bad_modes[i], why);
	}
	assert_int_equal(chmod(kf, 0600), 0);	/* owner-only is fine */
	k = secret_key_load(kf, why, sizeof(why));
	assert_non_null(k);
	secret_key_free(k);

	/* owned by another user */
	if (geteuid() == 0) {
		assert_int_equal(chown(kf, 1, 1), 0);
		assert_null(secret_key_load(kf, why, sizeof(why)));
		assert_non_null(strstr(why, "owned by uid 1"));
		assert_int_equal(chown(kf, 0, 0), 0);
	}
	/* a symbolic link is not followed */
	unlink(tpath("k3link"));
	assert_int_equal(symlink(kf, tpath("k3link")), 0);
	assert_null(secret_key_load(tpath("k3link"), why, sizeof(why)));
	/* a directory, too large, not a key */
	assert_null(secret_key_load(tmpdir, why, sizeof(why)));
	{
		char big[1000];

		memset(big, 'a', sizeof(big));
		write_file(tpath("k4"), big, sizeof(big), 0400);
		assert_null(secret_key_load(tpath("k4"), why, sizeof(why)));
		assert_non_null(strstr(why, "too large"));
		write_file(tpath("k4"), "not a key\n", 10, 0400);
		assert_null(secret_key_load(tpath("k4"), why, sizeof(why)));
		assert_non_null(strstr(why, "not a key"));
		memset(big, 'z', 64);
		write_file(tpath("k4"), big, 64, 0400);	/* 64 chars, not hex */
		assert_null(secret_key_load(tpath("k4"), why, sizeof(why)));
	}
}

/* ---- sealed files ---- */

static void
test_files(void **state)
{
	static const char pem[] = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n"
	    "-----END PRIVATE KEY-----\n";
	unsigned char *k = fixed_key(4), *k2 = fixed_key(5);
	char why[700], buf[512], *s, *pt;
	size_t n;

	write_file(tpath("node.key"), pem, strlen(pem), 0600);
	assert_int_equal(secret_pick(tmpdir, "node.key", buf, sizeof(buf)), 0);
	assert_string_equal(buf, tpath("node.key"));
	pt = secret_file_read(NULL, buf, &n, why, sizeof(why));	/* plain: no key needed */
	assert_non_null(pt);
	assert_int_equal(n, strlen(pem));
	assert_string_equal(pt, pem);
	secret_free(pt);

	s = secret_seal(k, pem, strlen(pem));
	{
		char *text;

		assert_true(asprintf(&text, "%s\n", s) > 0);
		write_file(tpath("node.key.sbox"), text, strlen(text), 0600);
		free(text);
	}
	assert_int_equal(secret_pick(tmpdir, "node.key", buf, sizeof(buf)), 1);
	assert_string_equal(buf, tpath("node.key.sbox"));
	assert_true(secret_path_sealed(buf));
	pt = secret_file_read(k, buf, &n, why, sizeof(why));
	assert_non_null(pt);
	assert_string_equal(pt, pem);
	secret_free(pt);
	assert_null(secret_file_read(k2, buf, &n, why, sizeof(why)));
	assert_non_null(strstr(why, "another secret key"));
	assert_null(secret_file_read(NULL, buf, &n, why, sizeof(why)));
	assert_non_null(strstr(why, "no secret key"));
	/* truncated file */
	write_file(tpath("node.key.sbox"), s, strlen(s) / 2, 0600);
	assert_null(secret_file_read(k, tpath("node.key.sbox"), &n, why, sizeof(why)));
	/* a .sbox that is not sealed is refused, not used as PEM */
	write_file(tpath("node.key.sbox"), pem, strlen(pem), 0600);
	assert_null(secret_file_read(k, tpath("node.key.sbox"), &n, why, sizeof(why)));
	assert_non_null(strstr(why, "not a sealed file"));
	assert_int_equal(secret_pick(tmpdir, "mqtt.key", buf, sizeof(buf)), -1);
	unlink(tpath("node.key.sbox"));
	unlink(tpath("node.key"));
	free(s);
	secret_key_free(k);
	secret_key_free(k2);
}

/* ---- cfg ---- */

static char *
load_err(const char *path, struct cfg_error *e)
{
	struct manta_cfg *c = cfg_load(path, e);
	static char buf[1400];

	assert_null(c);
	cfg_error_format(e, buf, sizeof(buf));
	return buf;
}

static void
test_cfg_sealed(void **state)
{
	const char *kf = tpath("secret.key");
	char cfgtext[2048], *s, *sealed, *printed = NULL, *line;
	unsigned char *k;
	struct manta_cfg *c;
	struct cfg_error e;
	char why[700];
	size_t plen;
	FILE *f;

	unsetenv(SECRET_ENV);
	unlink(kf);
	assert_int_equal(secret_key_create(kf), 0);
	k = secret_key_load(kf, why, sizeof(why));
	assert_non_null(k);
	sealed = secret_seal(k, TOKEN, strlen(TOKEN));
	snprintf(cfgtext, sizeof(cfgtext), "[identity]\n# the token\nsecured_token = \"%s\"\n"
	    "[paths]\nstate_dir = \"%s\"\nrun_dir = \"%s/run\"\n", sealed, tmpdir, tmpdir);
	write_file(tpath("s.toml"), cfgtext, strlen(cfgtext), 0600);

	c = cfg_load(tpath("s.toml"), &e);
	if (c == NULL) {
		cfg_error_format(&e, why, sizeof(why));
		fail_msg("%s", why);
	}
	assert_string_equal(c->secured_token, TOKEN);
	assert_string_equal(c->secured_token_sealed, sealed);
	assert_string_equal(c->secret_key_file, kf);
	assert_non_null(c->secret_key);
	f = open_memstream(&printed, &plen);
	cfg_print(f, c, true);
	fclose(f);
	assert_null(strstr(printed, TOKEN));
	assert_null(strstr(printed, sealed));
	assert_non_null(strstr(printed, "secured_token = \"sbox:***\""));
	free(printed);
	f = open_memstream(&printed, &plen);
	cfg_print(f, c, false);		/* unmasked: still sealed, and reads back */
	fclose(f);
	assert_null(strstr(printed, TOKEN));
	assert_non_null(strstr(printed, sealed));
	free(printed);
	cfg_free(c);

	/* left sealed for `mantactl secret` */
	c = cfg_load_flags(tpath("s.toml"), CFG_LOAD_SEALED, &e);
	assert_non_null(c);
	assert_string_equal(c->secured_token, sealed);
	assert_null(c->secret_key);
	cfg_free(c);

	/* another key: refused, naming file, line and key, showing nothing */
	{
		unsigned char raw[SECRET_KEY_BYTES];
		char hex[80];

		randombytes_buf(raw, sizeof(raw));
		sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
		setenv(SECRET_ENV, hex, 1);
		line = load_err(tpath("s.toml"), &e);
		unsetenv(SECRET_ENV);
		assert_int_equal(e.line, 3);
		assert_string_equal(e.key, "identity.secured_token");
		assert_non_null(strstr(line, "s.toml:3: identity.secured_token: "));
		assert_non_null(strstr(line, SECRET_ENV));
		assert_null(strstr(line, TOKEN));
		assert_null(strstr(line, sealed + 5));
		assert_null(strstr(line, hex));
	}
	/* a key file others can read: refused before any use */
	assert_int_equal(chmod(kf, 0444), 0);
	line = load_err(tpath("s.toml"), &e);
	assert_string_equal(e.key, "security.secret_key_file");
	assert_non_null(strstr(line, "group or others"));
	assert_int_equal(chmod(kf, 0400), 0);
	/* the key file named in the config, and missing */
	snprintf(cfgtext, sizeof(cfgtext), "[identity]\nsecured_token = \"%s\"\n"
	    "[security]\nsecret_key_file = \"%s/nokey\"\n"
	    "[paths]\nstate_dir = \"%s\"\nrun_dir = \"%s/run\"\n", sealed, tmpdir, tmpdir,
	    tmpdir);
	write_file(tpath("s.toml"), cfgtext, strlen(cfgtext), 0600);
	line = load_err(tpath("s.toml"), &e);
	assert_int_equal(e.line, 4);
	assert_string_equal(e.key, "security.secret_key_file");
	/* truncated value */
	s = strdup(sealed);
	s[strlen(s) - 8] = '\0';
	snprintf(cfgtext, sizeof(cfgtext), "[identity]\nsecured_token = \"%s\"\n"
	    "[paths]\nstate_dir = \"%s\"\nrun_dir = \"%s/run\"\n", s, tmpdir, tmpdir);
	write_file(tpath("s.toml"), cfgtext, strlen(cfgtext), 0600);
	line = load_err(tpath("s.toml"), &e);
	assert_int_equal(e.line, 2);
	assert_string_equal(e.key, "identity.secured_token");
	free(s);
	/* a sealed value that is no JWT */
	s = secret_seal(k, "not a jwt", 9);
	snprintf(cfgtext, sizeof(cfgtext), "[identity]\nsecured_token = \"%s\"\n"
	    "[paths]\nstate_dir = \"%s\"\nrun_dir = \"%s/run\"\n", s, tmpdir, tmpdir);
	write_file(tpath("s.toml"), cfgtext, strlen(cfgtext), 0600);
	line = load_err(tpath("s.toml"), &e);
	assert_non_null(strstr(line, "not a JWT"));
	assert_null(strstr(line, "not a jwt"));
	free(s);

	/* sealed keys in cert_folder with use_tls: checked at load */
	assert_int_equal(mkdir(tpath("certs"), 0700), 0);
	s = secret_seal(k, "-----BEGIN PRIVATE KEY-----\n", 28);
	write_file(tpath("certs/mqtt.key.sbox"), s, strlen(s), 0600);
	snprintf(cfgtext, sizeof(cfgtext), "[identity]\nsecured_token = \"%s\"\n"
	    "[security]\nuse_tls = true\ncert_folder = \"%s/certs\"\n"
	    "[paths]\nstate_dir = \"%s\"\nrun_dir = \"%s/run\"\n", TOKEN, tmpdir, tmpdir,
	    tmpdir);
	write_file(tpath("s.toml"), cfgtext, strlen(cfgtext), 0600);
	c = cfg_load(tpath("s.toml"), &e);
	assert_non_null(c);
	assert_non_null(c->secret_key);		/* kept for mantad-beat */
	assert_null(c->secured_token_sealed);
	cfg_free(c);
	write_file(tpath("certs/mqtt.key.sbox"), s, strlen(s) - 4, 0600);
	line = load_err(tpath("s.toml"), &e);
	assert_string_equal(e.key, "security.cert_folder");
	assert_int_equal(e.line, 5);
	assert_non_null(strstr(line, "mqtt.key.sbox"));
	unlink(tpath("certs/mqtt.key.sbox"));
	/* nothing sealed: no key is loaded, even a bad one */
	assert_int_equal(chmod(kf, 0444), 0);
	c = cfg_load(tpath("s.toml"), &e);
	assert_non_null(c);
	assert_null(c->secret_key);
	cfg_free(c);
	free(s);

	free(sealed);
	secret_key_free(k);
}

static int
setup(void **state)
{
	unsetenv(SECRET_ENV);
	if (mkdtemp(tmpdir) == NULL || secret_init() == -1)
		return -1;
	return 0;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
teardown(void **state)
{
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_key_sources),
		cmocka_unit_test(test_key_file_refused),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_cfg_sealed),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
