/* validate: every field of a deploy_task, before anything is done with it
 * (STYLE.md: decode fully, then check semantics in one place). A refusal
 * is a deployment failure to the manager: SendError 18, as the reference
 * sends for a deploy it cannot carry out (WIRE.md section 9). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <stdlib.h>

#include "image.h"

#include "exec.h"

static bool
has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* proto3 strings must be UTF-8; protobuf-c does not check. */
static bool
utf8_ok(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s) {
		size_t n;
		uint32_t cp;

		if (*s < 0x80) {
			s++;
			continue;
		}
		if (*s >= 0xc2 && *s <= 0xdf) {
			n = 1;
			cp = *s & 0x1f;
		} else if (*s >= 0xe0 && *s <= 0xef) {
			n = 2;
			cp = *s & 0x0f;
		} else if (*s >= 0xf0 && *s <= 0xf4) {
			n = 3;
			cp = *s & 0x07;
		} else
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		s += n + 1;
	}
	return true;
}

/* For messages: printable ASCII, at most 64 bytes, never the raw bytes. */
static void
printable(const char *s, char *out, size_t len)
{
	size_t o = 0;

	for (; *s && o + 1 < len && o < 64; s++)
		out[o++] = (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ?
		    *s : '?';
	out[o] = '\0';
}

#define REFUSE(id, ...) do { *error_id = (id); \
	snprintf(buf, len, __VA_ARGS__); return buf; } while (0)

const char *
validate_task(const struct exec *x, const Common__Tasks__MqttTask *t,
    uint32_t *error_id, char *buf, size_t len)
{
	struct manta_id swarm = id_from_pair(t->swarm_id);
	struct manta_id task = id_from_pair(t->task_id);
	const char *why, *net = t->network ? t->network : "";
	char name[80], *rootfs;
	struct stat st;

	if (id_is_zero(swarm))
		REFUSE(ERR_DOCKER, "swarm_id missing or zero");
	if (id_is_zero(task))
		REFUSE(ERR_DOCKER, "task_id missing or zero");
	/* iteration and circular: any uint32 runs; the log header carries
	 * their low 16 bits (logs.c). */
	if (t->payload.len == 0)
		REFUSE(ERR_DOCKER, "empty payload");
	if (t->payload.len > PAYLOAD_MAX)
		REFUSE(ERR_DOCKER, "payload of %zu bytes, above the %u bytes"
		    " this node takes", t->payload.len, PAYLOAD_MAX);
	if (t->alias != NULL && (strlen(t->alias) > ALIAS_MAX ||
	    has_control(t->alias) || !utf8_ok(t->alias)))
		REFUSE(ERR_DOCKER, "alias too long, not UTF-8 or with control"
		    " bytes");
	if (*net != '\0' && strcmp(net, "None") != 0) {
		printable(net, name, sizeof(name));
		REFUSE(ERR_DOCKER, "swarm network \"%s\" refused: this node"
		    " does not join swarm networks (Tailscale) yet", name);
	}
	if ((why = image_name_check(t->image)) != NULL)
		REFUSE(ERR_DOCKER, "image name refused: %s", why);
	if (!utf8_ok(t->image))
		REFUSE(ERR_DOCKER, "image name refused: not UTF-8");
	printable(t->image, name, sizeof(name));
	if ((rootfs = bundle_rootfs(x, t->image)) == NULL)
		REFUSE(ERR_DOCKER, "image name \"%s\" refused (too long once"
		    " encoded)", name);
	if (stat(rootfs, &st) == -1 || !S_ISDIR(st.st_mode)) {
		/* Not in the store: pulled before it runs (pull.c), when its
		 * registry may be used. */
		free(rootfs);
		if ((why = pull_refused(x, name, buf, len)) != NULL) {
			*error_id = ERR_DOCKER;
			return why;
		}
		rootfs = NULL;
	}
	if (x->userns && rootfs != NULL) {
		char *closed = userns_unreachable(rootfs);

		if (closed != NULL) {
			snprintf(buf, len, "image \"%s\": containers.userns: the"
			    " task's user cannot reach its rootfs: %s is not"
			    " searchable by others (chmod o+x, or move"
			    " containers.image_dir)", name, closed);
			free(closed);
			free(rootfs);
			*error_id = ERR_DOCKER;
			return buf;
		}
	}
	free(rootfs);
	if (t->gpu && x->cfg->gpu_enabled == 0)
		REFUSE(ERR_DOCKER, "the task needs a GPU and GPUs are disabled"
		    " here (containers.gpu_enabled = false)");
	if (t->gpu && x->gpus == 0)
		REFUSE(ERR_DOCKER, "the task needs a GPU and this node has none");
	if (x->runtime == NULL)
		REFUSE(ERR_DOCKER, "OCI runtime %s not found on this node",
		    x->runtime_name);
	return NULL;
}

void
validate_hostname(const char *alias, const struct manta_id *task, char *out,
    size_t len)
{
	size_t o = 0;
	char th[ID_HEX_LEN + 1];

	for (const char *p = alias ? alias : ""; *p && o + 1 < len && o < 63; p++) {
		char c = *p;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-')
			out[o++] = c;
		else if (o > 0 && out[o - 1] != '-')
			out[o++] = '-';
	}
	while (o > 0 && (out[o - 1] == '-' || out[o - 1] == '.'))
		o--;
	out[o] = '\0';
	if (o == 0) {
		id_to_hex(*task, th);
		snprintf(out, len, "task-%.12s", th);
	}
}
