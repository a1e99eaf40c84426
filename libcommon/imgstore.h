/* imgstore: the local image store, <containers.image_dir>, shared by
 * mantactl image and mantad-exec's pulls.
 *
 * Each image is one directory named by image_safe_name (image.h):
 *
 *   <image_dir>/<safe>/rootfs            what tasks get as their root
 *   <image_dir>/<safe>/manta-image.json  {name, size, digest, imported_at,
 *                                         source, kind, config}
 *   <image_dir>/<safe>/last-used         its mtime: the last task start
 *
 * config holds what the image's author set and a task applies: env (the
 * image's Env), cwd (WorkingDir), user (User as written) and the uid and
 * gid it resolves to in the image's own /etc/passwd and /etc/group.
 *
 * An import or a pull fills a fresh ".import-XXXXXX" directory (mode 0700
 * until it is clean) beside the others and renames it into place, so a
 * task never sees half an image and a failure leaves nothing. Before it is
 * opened to anyone, the tree loses what could give a local user more than
 * the image's author may give: device nodes, set-user-ID and set-group-ID
 * bits and file capabilities (security.capability). Registry images, OCI
 * layouts and docker save archives are copied into a private OCI layout by
 * skopeo (which verifies every blob's digest), then unpacked by umoci
 * (whiteouts, path escapes refused); plain rootfs tarballs go through tar
 * after every member name is checked. Every helper is forked and executed
 * with an argv, never through a shell. */
#ifndef MANTA_IMGSTORE_H
#define MANTA_IMGSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define IMGSTORE_META	"manta-image.json"
#define IMGSTORE_USED	"last-used"

struct imgstore_progress {
	unsigned layers;	/* layers started */
	uint64_t bytes;		/* bytes stored so far */
	bool done;
};
typedef void imgstore_progress_fn(void *arg, const struct imgstore_progress *p);

struct imgstore {
	const char *image_dir;
	const char *tasks_dir;	/* task bundles, for "in use"; NULL: none */
	const char *authfile;	/* Docker config.json for skopeo; NULL: none */
	int authfd;		/* with authfile: its fd, kept open in skopeo */
	bool insecure;		/* plain HTTP or unverified TLS (pull only) */
	int max_disk_percent;	/* prune past it after a fill; 0: never */
	imgstore_progress_fn *progress;	/* NULL: none */
	void *arg;
};

/* Fills name from src: a rootfs directory, a tarball (plain rootfs, docker
 * save archive or OCI archive, told apart by their members), an OCI layout
 * directory, or LAYOUT:TAG. The new image's metadata in *meta (unless
 * NULL). 0, or -1 with err. */
int imgstore_import(const struct imgstore *s, const char *name, const char *src,
    json_t **meta, char *err, size_t errlen);
/* Pulls ref (as Docker names it) from its registry into the image called
 * ref: the manifest for this machine's platform, its layers verified by
 * digest. 0, or -1 with err (the registry's reason). */
int imgstore_pull(const struct imgstore *s, const char *ref, json_t **meta,
    char *err, size_t errlen);
/* Every image, sorted by name: {name, size, digest, imported_at, last_used,
 * in_use, kind, source, path}. */
json_t *imgstore_list(const struct imgstore *s);
/* Removes an image: 0, 1 when there is none, -1 with err (in use). */
int imgstore_remove(const struct imgstore *s, const char *name, char *err,
    size_t errlen);
/* While the store's file system is fuller than s->max_disk_percent,
 * removes the image used least recently that no task uses and that is not
 * keep (NULL: none). Returns how many went. */
int imgstore_prune(const struct imgstore *s, const char *keep);
/* Removes what fills that were interrupted left (their process is gone). */
void imgstore_clean(const struct imgstore *s);
/* The metadata of image name, or NULL when it is not in the store. */
json_t *imgstore_meta(const char *image_dir, const char *name);
/* Marks name used now (last-used). */
void imgstore_touch(const char *image_dir, const char *name);
/* The registry host[:port] a Docker reference names ("docker.io" when the
 * first component is no host). 0, or -1 when ref is not a reference. */
int imgstore_registry(const char *ref, char *host, size_t len);
struct manta_cfg;
/* containers.registry_auth in a memfd (opened with c->secret_key when it is
 * sealed), its /proc/self/fd path in fdpath: the fd, -2 when the key is
 * unset, or -1 with err (missing, readable by others, does not open). */
int imgstore_authfile(const struct manta_cfg *c, char *fdpath, size_t fdlen,
    char *err, size_t errlen);
/* Whether host is one of list (exact, case-insensitive). */
bool imgstore_host_listed(const char *host, char *const *list, size_t n);

#endif
