/* secret: sealing and opening the node's secrets at rest (secret.h). The
 * format is deliberately one text form for the token and the key files, so
 * that `mantactl secret` writes both the same way and a sealed file can be
 * pasted into a config. Nothing here logs: callers get a reason that names
 * the file or the variable, never key material or plaintext. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "secret.h"

#define NONCE	crypto_secretbox_NONCEBYTES
#define MAC	crypto_secretbox_MACBYTES
/* A key file is 32 bytes, 64 hex digits or 44 base64 characters and a
 * newline; anything much larger is not a key file. */
#define KEYFILE_MAX	256
#define WS	" \t\r\n"

int
secret_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

static const char *
skip_ws(const char *s, size_t *len)
{
	while (*len > 0 && *s != '\0' && strchr(WS, *s) != NULL) {
		s++;
		(*len)--;
	}
	while (*len > 0 && s[*len - 1] != '\0' && strchr(WS, s[*len - 1]) != NULL)
		(*len)--;
	return s;
}

bool
secret_is_sealed(const char *s)
{
	return s != NULL && strncmp(s, SECRET_PREFIX, strlen(SECRET_PREFIX)) == 0;
}

bool
secret_path_sealed(const char *path)
{
	size_t n = strlen(path), k = strlen(SECRET_SUFFIX);

	return n > k && strcmp(path + n - k, SECRET_SUFFIX) == 0;
}

/* 32 raw bytes, or (around whitespace) 64 hex digits or base64 of 32 bytes. */
static int
key_parse(const char *buf, size_t n, unsigned char *key)
{
	static const int variants[] = {
		sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
		sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING,
	};
	const char *s, *end;
	size_t len = n, got;

	if (n == SECRET_KEY_BYTES) {
		memcpy(key, buf, SECRET_KEY_BYTES);
		return 0;
	}
	s = skip_ws(buf, &len);
	if (len == 2 * SECRET_KEY_BYTES &&
	    sodium_hex2bin(key, SECRET_KEY_BYTES, s, len, NULL, &got, &end) == 0 &&
	    got == SECRET_KEY_BYTES && end == s + len)
		return 0;
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
		if (sodium_base642bin(key, SECRET_KEY_BYTES, s, len, NULL, &got, &end,
		    variants[i]) == 0 && got == SECRET_KEY_BYTES && end == s + len)
			return 0;
	sodium_memzero(key, SECRET_KEY_BYTES);
	return -1;
}

const char *
secret_key_source(const char *file)
{
	const char *env = getenv(SECRET_ENV);

	return env != NULL && env[0] != '\0' ? SECRET_ENV : file;
}

static int
key_from_file(const char *file, unsigned char *key, char *why, size_t len)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	int fd, ret = -1;

	if (file == NULL || file[0] == '\0') {
		snprintf(why, len, "no security.secret_key_file and no $%s", SECRET_ENV);
		return -1;
	}
	if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW)) == -1) {
		snprintf(why, len, "secret key %s: %s%s", file, strerror(errno),
		    errno == ENOENT ? " (`mantactl secret init` makes one)" : "");
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(why, len, "secret key %s: %s", file, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, len, "secret key %s: not a regular file", file);
		goto out;
	}
	/* As ssh does with its private keys: a key others could read is
	 * refused, not used with a warning. */
	if (st.st_uid != geteuid()) {
		snprintf(why, len, "secret key %s: owned by uid %u, not by this user (uid %u)",
		    file, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		snprintf(why, len, "secret key %s: mode %04o lets group or others at it "
		    "(chmod 0400)", file, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if ((buf = sodium_malloc(KEYFILE_MAX)) == NULL) {
		snprintf(why, len, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, KEYFILE_MAX - n);

		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			snprintf(why, len, "secret key %s: %s", file, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == KEYFILE_MAX) {
			snprintf(why, len, "secret key %s: too large to be a key", file);
			goto out;
		}
	}
	if (key_parse(buf, n, key) == -1) {
		snprintf(why, len, "secret key %s: not a key (64 hex digits, the base64 "
		    "of 32 bytes, or 32 bytes)", file);
		goto out;
	}
	ret = 0;
out:
	sodium_free(buf);
	close(fd);
	return ret;
}

unsigned char *
secret_key_load(const char *file, char *why, size_t len)
{
	const char *env = getenv(SECRET_ENV);
	unsigned char *key;

	if (secret_init() == -1) {
		snprintf(why, len, "unable to initialize libsodium");
		return NULL;
	}
	if ((key = sodium_malloc(SECRET_KEY_BYTES)) == NULL) {
		snprintf(why, len, "out of memory");
		return NULL;
	}
	if (env != NULL && env[0] != '\0') {
		if (key_parse(env, strlen(env), key) == -1) {
			snprintf(why, len, "$%s is not 64 hex digits or the base64 of 32 bytes",
			    SECRET_ENV);
			sodium_free(key);
			return NULL;
		}
	} else if (key_from_file(file, key, why, len) == -1) {
		sodium_free(key);
		return NULL;
	}
	sodium_mprotect_readonly(key);
	return key;
}

void
secret_key_free(unsigned char *key)
{
	sodium_free(key);
}

int
secret_key_create(const char *file)
{
	unsigned char key[SECRET_KEY_BYTES];
	char text[2 * SECRET_KEY_BYTES + 2];
	size_t n, off = 0;
	int fd, saved;

	if (secret_init() == -1) {
		errno = ENOSYS;
		return -1;
	}
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0400);
	if (fd == -1)
		return -1;
	randombytes_buf(key, sizeof(key));
	sodium_bin2hex(text, sizeof(text) - 1, key, sizeof(key));
	sodium_memzero(key, sizeof(key));
	n = strlen(text);
	text[n++] = '\n';
	if (fchmod(fd, 0400) == -1)
		goto bad;
	while (off < n) {
		ssize_t r = write(fd, text + off, n - off);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			goto bad;
		off += (size_t)r;
	}
	if (fsync(fd) == -1)
		goto bad;
	sodium_memzero(text, sizeof(text));
	return close(fd);
bad:
	saved = errno;
	sodium_memzero(text, sizeof(text));
	close(fd);
	unlink(file);
	errno = saved;
	return -1;
}

char *
secret_seal(const unsigned char *key, const void *pt, size_t n)
{
	size_t clen = NONCE + MAC + n, blen, plen = strlen(SECRET_PREFIX);
	unsigned char *box;
	char *out = NULL;

	if (secret_init() == -1 || n > SECRET_MAX) {
		errno = EINVAL;
		return NULL;
	}
	if ((box = malloc(clen)) == NULL)
		return NULL;
	randombytes_buf(box, NONCE);
	if (crypto_secretbox_easy(box + NONCE, pt, n, box, key) != 0) {
		errno = EINVAL;
		goto out;
	}
	blen = sodium_base64_ENCODED_LEN(clen, sodium_base64_VARIANT_ORIGINAL);
	if ((out = malloc(plen + blen)) == NULL)
		goto out;
	memcpy(out, SECRET_PREFIX, plen);
	sodium_bin2base64(out + plen, blen, box, clen, sodium_base64_VARIANT_ORIGINAL);
out:
	free(box);
	return out;
}

char *
secret_open(const unsigned char *key, const char *s, size_t len, size_t *outlen)
{
	size_t plen = strlen(SECRET_PREFIX), binmax, binlen;
	unsigned char *bin = NULL;
	char *pt = NULL;
	const char *end;

	if (secret_init() == -1) {
		errno = EINVAL;
		return NULL;
	}
	s = skip_ws(s, &len);
	if (len < plen || memcmp(s, SECRET_PREFIX, plen) != 0 || len > 2 * SECRET_MAX) {
		errno = EINVAL;
		return NULL;
	}
	s += plen;
	len -= plen;
	binmax = len / 4 * 3 + 3;
	if ((bin = malloc(binmax)) == NULL)
		return NULL;
	/* Line breaks are tolerated: a sealed file someone wrapped at 64. */
	if (sodium_base642bin(bin, binmax, s, len, "\r\n", &binlen, &end,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || end != s + len ||
	    binlen < NONCE + MAC) {
		errno = EINVAL;
		goto out;
	}
	if ((pt = sodium_malloc(binlen - NONCE - MAC + 1)) == NULL) {
		errno = ENOMEM;
		goto out;
	}
	if (crypto_secretbox_open_easy((unsigned char *)pt, bin + NONCE, binlen - NONCE,
	    bin, key) != 0) {
		sodium_free(pt);
		pt = NULL;
		errno = EBADMSG;
		goto out;
	}
	pt[binlen - NONCE - MAC] = '\0';
	if (outlen != NULL)
		*outlen = binlen - NONCE - MAC;
out:
	free(bin);
	return pt;
}

void
secret_free(void *p)
{
	sodium_free(p);
}

void
secret_wipe(char *s)
{
	if (s != NULL)
		sodium_memzero(s, strlen(s));
}

char *
secret_file_read(const unsigned char *key, const char *path, size_t *outlen,
    char *why, size_t len)
{
	struct stat st;
	char *buf = NULL, *pt = NULL;
	size_t n = 0, tlen;
	int fd;

	if (secret_init() == -1) {
		snprintf(why, len, "unable to initialize libsodium");
		return NULL;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		snprintf(why, len, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(why, len, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > 2 * SECRET_MAX) {
		snprintf(why, len, "%s: %s", path, S_ISREG(st.st_mode) ? "too large" :
		    "not a regular file");
		goto out;
	}
	if ((buf = sodium_malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(why, len, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size + 1 - n);

		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			snprintf(why, len, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > (size_t)st.st_size) {
			snprintf(why, len, "%s: grew while being read", path);
			goto fail;
		}
	}
	buf[n] = '\0';
	tlen = n;
	if (!secret_is_sealed(skip_ws(buf, &tlen))) {
		if (secret_path_sealed(path)) {
			snprintf(why, len, "%s: not a sealed file (no \"%s\" at its start)",
			    path, SECRET_PREFIX);
			goto fail;
		}
		if (outlen != NULL)
			*outlen = n;
		pt = buf;
		buf = NULL;
		goto out;
	}
	if (key == NULL) {
		snprintf(why, len, "%s: sealed, and no secret key loaded", path);
		goto fail;
	}
	if ((pt = secret_open(key, buf, n, outlen)) == NULL)
		snprintf(why, len, "%s: %s", path, errno == EBADMSG ?
		    "unable to open: another secret key sealed it, or it was altered" :
		    errno == EINVAL ? "not a well-formed sealed file" : strerror(errno));
fail:
	sodium_free(buf);
	buf = NULL;
out:
	sodium_free(buf);
	close(fd);
	return pt;
}

int
secret_pick(const char *dir, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s%s", dir, name, SECRET_SUFFIX);
	if (access(buf, F_OK) == 0)
		return 1;
	snprintf(buf, len, "%s/%s", dir, name);
	return access(buf, F_OK) == 0 ? 0 : -1;
}

static int
memfd_of(const char *name, const char *data, size_t n, mode_t mode)
{
	size_t off = 0;
	int fd;

	if ((fd = memfd_create(name, MFD_CLOEXEC)) == -1)
		return -1;
	(void)fchmod(fd, mode);
	while (off < n) {
		ssize_t r = write(fd, data + off, n - off);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = r == 0 ? EIO : errno;

			close(fd);
			errno = e;
			return -1;
		}
		off += (size_t)r;
	}
	return fd;
}

int
secret_file_memfd(const unsigned char *key, const char *path, unsigned mode,
    char *fdpath, size_t fdlen, size_t *outlen, char *why, size_t whylen)
{
	const char *base = strrchr(path, '/');
	char *data;
	size_t n;
	int fd;

	if ((data = secret_file_read(key, path, &n, why, whylen)) == NULL)
		return -1;
	fd = memfd_of(base ? base + 1 : path, data, n, (mode_t)mode);
	secret_free(data);
	if (fd == -1) {
		snprintf(why, whylen, "unable to copy it to a memfd: %s", strerror(errno));
		return -1;
	}
	snprintf(fdpath, fdlen, "/proc/self/fd/%d", fd);
	if (outlen != NULL)
		*outlen = n;
	return fd;
}
