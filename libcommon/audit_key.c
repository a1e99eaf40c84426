/* audit_key: the key of the audit chain (audit.h), apart from audit.c so
 * that confine_accounts can set it up without linking the chain's JSON. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "audit.h"
#include "cfg.h"
#include "log.h"
#include "secret.h"

#define KDF_CONTEXT "manta-node audit chain v1"
#define ID_CONTEXT "manta-node audit key id"

/* From the node's secret key (audit_configure), for every chain here. */
static struct audit_key configured;

int
audit_key_configured(struct audit_key *k)
{
	if (!configured.set)
		return 0;
	*k = configured;
	return 1;
}

void
audit_key_derive(const unsigned char *raw, size_t len, const char *source,
    struct audit_key *k)
{
	unsigned char id[AUDIT_KEY_ID_HEX / 2];

	/* A key of its own for the chain: the secret key itself seals. */
	crypto_generichash(k->key, sizeof(k->key), (const unsigned char *)KDF_CONTEXT,
	    sizeof(KDF_CONTEXT) - 1, raw, len);
	crypto_generichash(id, sizeof(id), (const unsigned char *)ID_CONTEXT,
	    sizeof(ID_CONTEXT) - 1, k->key, sizeof(k->key));
	sodium_bin2hex(k->id, sizeof(k->id), id, sizeof(id));
	k->source = source;
	k->set = 1;
}

void
audit_configure(const struct manta_cfg *c)
{
	unsigned char *raw;
	char why[256];

	if (sodium_init() == -1)
		return;
	if (c->secret_key != NULL) {
		audit_key_derive(c->secret_key, SECRET_KEY_BYTES, "secret key", &configured);
		return;
	}
	/* Nothing sealed, so the config did not load it: is there one? */
	if (getenv(SECRET_ENV) == NULL &&
	    (c->secret_key_file == NULL || access(c->secret_key_file, F_OK) == -1))
		return;
	if ((raw = secret_key_load(c->secret_key_file, why, sizeof(why))) == NULL) {
		log_warnx("audit trail: the secret key is unusable (%s): keyed with %s"
		    " instead", why, AUDIT_KEY_FILE);
		return;
	}
	audit_key_derive(raw, SECRET_KEY_BYTES, "secret key", &configured);
	secret_key_free(raw);
}

int
audit_key_file(const char *dir, bool create, struct audit_key *k)
{
	unsigned char raw[AUDIT_KEY_BYTES];
	char *path, buf[AUDIT_KEY_BYTES * 2 + 2];
	size_t got = 0;
	int fd = -1, rc = -1;

	if (asprintf(&path, "%s/%s", dir, AUDIT_KEY_FILE) == -1)
		return -1;
	if (create && secret_key_create(path) == -1 && errno != EEXIST) {
		log_warn("unable to create %s", path);
		goto out;
	}
	/* Another writer may be between its create and its write. */
	for (int tries = 0; tries < 50; tries++) {
		ssize_t n;

		if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
			if (errno == ENOENT && !create)
				rc = 0;
			else
				log_warn("unable to open %s", path);
			goto out;
		}
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		fd = -1;
		got = n > 0 ? (size_t)n : 0;
		if (got >= AUDIT_KEY_BYTES * 2)
			break;
		usleep(10000);
	}
	buf[got] = '\0';
	if (got < AUDIT_KEY_BYTES * 2 ||
	    sodium_hex2bin(raw, sizeof(raw), buf, AUDIT_KEY_BYTES * 2, NULL, NULL, NULL) != 0 ||
	    (got > AUDIT_KEY_BYTES * 2 && buf[AUDIT_KEY_BYTES * 2] != '\n')) {
		log_warnx("%s: not 64 hex digits", path);
		goto out;
	}
	audit_key_derive(raw, sizeof(raw), AUDIT_KEY_FILE, k);
	sodium_memzero(raw, sizeof(raw));
	rc = 1;
out:
	sodium_memzero(buf, sizeof(buf));
	free(path);
	return rc;
}

