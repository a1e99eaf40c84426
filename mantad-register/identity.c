/* identity: the node id (WIRE.md section 1), written to <state_dir>/identity
 * (32 hex digits and a newline) for the other daemons and for operators.
 *
 * The reference's `manta_node start` always sets identity.alias before the
 * node starts (to metadata.name when unset, and metadata.name defaults to
 * "default"), so through its CLI every id is alias-derived; the same file
 * must give the same id here: id_from_string(cfg_alias(c)) at every start.
 * identity.random_id and the MAC address rule are never reached that way,
 * so random_id is ignored, with a warning.
 *
 * The id follows the config: when the file already holds another id (the
 * alias or metadata.name changed, or a state_dir from an earlier version
 * that used the MAC address), the new id wins and the change is logged
 * with both ids. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "register.h"

static int
read_identity(const char *path, struct manta_id *id)
{
	char buf[80];

	if (read_small(path, buf, sizeof(buf)) == -1) {
		if (errno != ENOENT)
			log_warn("unable to read %s", path);
		return -1;
	}
	if (id_parse_hex(buf, id) == -1) {
		log_warnx("%s does not hold a 32-digit hex id; writing it anew", path);
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
identity_load(const struct manta_cfg *c, struct manta_id *id, const char **how)
{
	struct manta_id file_id = MANTA_ID_ZERO;
	char *path, old[ID_HEX_LEN + 1], new[ID_HEX_LEN + 1];
	const char *alias = cfg_alias(c);
	int have_file, rc = -1;

	if ((path = path_join(c->state_dir, "identity")) == NULL)
		return -1;
	have_file = read_identity(path, &file_id) == 0;
	id_from_string(alias, id);
	if (c->alias != NULL)
		*how = "from identity.alias";
	else if (c->meta_name_set)
		*how = "from metadata.name, as the reference's start sets the alias";
	else
		*how = "from \"default\" (no alias, no metadata.name), as the reference";
	if (c->random_id)
		log_warnx("identity.random_id = true is ignored: as with the reference's"
		    " manta_node start, the node id comes from the alias \"%s\"", alias);
	if (have_file && !id_equal(file_id, *id)) {
		id_to_hex(file_id, old);
		id_to_hex(*id, new);
		log_warnx("the node id changes from %s (%s) to %s (alias \"%s\"): the"
		    " manager sees a new node; tasks kept in %s are reported under"
		    " the new id, and messages already queued for the manager and"
		    " the broker go out as they are, naming %s", old, path, new,
		    alias, c->state_dir, old);
	}
	if ((!have_file || !id_equal(file_id, *id)) && write_identity(path, *id) == -1)
		goto out;
	rc = 0;
out:
	free(path);
	return rc;
}
