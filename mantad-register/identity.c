/* identity: the node id (WIRE.md section 1), kept in <state_dir>/identity
 * (32 hex digits and a newline) so that a restart keeps it.
 *
 *   identity.alias set      id_from_string(alias); an alias always wins and
 *                           rewrites the file.
 *   identity.random_id      a random UUID4, drawn once, then kept.
 *   neither                 BLAKE3-16 of the MAC address (below), computed
 *                           once, then kept even if the interfaces change.
 *
 * register.db remembers which rule wrote the file (meta id_source), so that
 * switching rules in the config (dropping an alias, turning random_id on or
 * off) draws a new id, while restarts under the same rule keep the old one.
 * A file without that record (restored from a backup, written by hand) is
 * trusted as is. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blake3.h"
#include "log.h"
#include "register.h"

#define ARPHRD_LOOPBACK_TYPE 772

static int
parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
	    &v[4], &v[5], &tail) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

static int
name_filter(const struct dirent *de)
{
	return de->d_name[0] != '.' && strcmp(de->d_name, "lo") != 0;
}

/* The reference takes Python's uuid.getnode(): libuuid's pick (the first
 * interface holding an IPv4 address, in kernel order), else the first
 * universally administered address that `ip link` lists, else a random
 * number drawn anew at every start. We want the same answer on the common
 * single-NIC host and a stable one everywhere: interfaces sorted by name,
 * loopback and all-zero addresses skipped, the first universally
 * administered unicast address (bridges, veth and docker0 carry locally
 * administered ones) else the first address at all. */
int
identity_from_mac(struct manta_id *id, char *ifname, size_t len)
{
	struct dirent **names = NULL;
	uint8_t best[6], d[16], le[8];
	int n, found = 0;
	uint64_t v = 0;

	if ((n = scandir("/sys/class/net", &names, name_filter, alphasort)) == -1) {
		log_warn("unable to list /sys/class/net");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char path[512], buf[128];
		uint8_t mac[6];
		int universal;

		snprintf(path, sizeof(path), "/sys/class/net/%s/type", names[i]->d_name);
		if (read_text(path, buf, sizeof(buf)) > 0 && atoi(buf) == ARPHRD_LOOPBACK_TYPE)
			continue;
		snprintf(path, sizeof(path), "/sys/class/net/%s/address", names[i]->d_name);
		if (read_text(path, buf, sizeof(buf)) <= 0 || parse_mac(buf, mac) == -1)
			continue;
		if ((mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) == 0)
			continue;
		universal = (mac[0] & 0x03) == 0;	/* not local, not multicast */
		if (found == 0 || (found == 1 && universal)) {
			memcpy(best, mac, sizeof(best));
			snprintf(ifname, len, "%s", names[i]->d_name);
			found = universal ? 2 : 1;
		}
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (!found)
		return -1;
	/* The 48-bit address as an unsigned 64-bit integer, 8 bytes
	 * little-endian: Python's node.to_bytes(8, sys.byteorder). */
	for (int i = 0; i < 6; i++)
		v = (v << 8) | best[i];
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(v >> (8 * i));
	blake3_hash(le, sizeof(le), d, sizeof(d));
	*id = id_from_bytes(d);
	return 0;
}

static int
read_identity(const char *path, struct manta_id *id)
{
	char buf[80];

	if (read_text(path, buf, sizeof(buf)) == -1) {
		if (errno != ENOENT)
			log_warn("unable to read %s", path);
		return -1;
	}
	if (id_parse_hex(buf, id) == -1) {
		log_warnx("%s does not hold a 32-digit hex id; making a new one", path);
		return -1;
	}
	return 0;
}

/* Write a temporary file and rename it over: never a half-written id. */
static int
write_identity(const char *path, struct manta_id id)
{
	char hex[ID_HEX_LEN + 2], *tmp;
	size_t len = strlen(path) + 8;
	int fd, rc = -1;

	if ((tmp = malloc(len)) == NULL)
		return -1;
	snprintf(tmp, len, "%s.new", path);
	id_to_hex(id, hex);
	strcat(hex, "\n");
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1) {
		log_warn("unable to create %s", tmp);
		goto out;
	}
	if (write(fd, hex, strlen(hex)) != (ssize_t)strlen(hex) || fsync(fd) == -1) {
		log_warn("unable to write %s", tmp);
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) == -1) {
		log_warn("unable to rename %s to %s", tmp, path);
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	free(tmp);
	return rc;
}

int
identity_load(const struct manta_cfg *c, sqlite3 *db, struct manta_id *id,
    const char **how)
{
	struct manta_id file_id = MANTA_ID_ZERO;
	char *path, stored[32] = "", ifname[64] = "";
	const char *rule;
	int have_file, have_rule, rc = -1;

	if ((path = path_join(c->state_dir, "identity")) == NULL)
		return -1;
	have_file = read_identity(path, &file_id) == 0;
	if ((have_rule = store_meta_get(db, "id_source", stored, sizeof(stored))) == -1)
		goto out;
	rule = c->alias && c->alias[0] ? "alias" : c->random_id ? "random" : "mac";

	if (strcmp(rule, "alias") == 0) {
		id_from_string(c->alias, id);
		*how = "from identity.alias";
	} else if (have_file && (!have_rule || strcmp(stored, rule) == 0)) {
		*id = file_id;
		*how = "kept from state_dir/identity";
	} else if (strcmp(rule, "random") == 0) {
		if (id_random(id) == -1) {
			log_warn("unable to draw a random id");
			goto out;
		}
		*how = "random (identity.random_id)";
	} else if (identity_from_mac(id, ifname, sizeof(ifname)) == 0) {
		log_info("node id from the MAC address of %s", ifname);
		*how = "from the MAC address";
	} else {
		/* No usable interface: the reference would draw a random node
		 * number at every start; we draw once and keep it. */
		log_warnx("no network interface with a MAC address; using a random id");
		if (id_random(id) == -1) {
			log_warn("unable to draw a random id");
			goto out;
		}
		*how = "random (no MAC address)";
	}
	if ((!have_file || !id_equal(file_id, *id)) && write_identity(path, *id) == -1)
		goto out;
	if ((!have_rule || strcmp(stored, rule) != 0) &&
	    store_meta_set(db, "id_source", rule) == -1)
		goto out;
	rc = 0;
out:
	free(path);
	return rc;
}
