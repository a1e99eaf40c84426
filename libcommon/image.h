/* image: container image names and their directories in the image store
 * (<containers.image_dir>/<safe name>/rootfs). */
#ifndef MANTA_IMAGE_H
#define MANTA_IMAGE_H

#include <stddef.h>

#define IMAGE_NAME_MAX	200	/* bytes of an image name */
#define IMAGE_SAFE_MAX	255	/* bytes of a safe name (NAME_MAX) */

/* Why name cannot be an image name ("empty", "starts with '.'", ...), or
 * NULL if it can. A static string. */
const char *image_name_check(const char *name);

/* Maps an image name to one directory entry name, deterministically and
 * injectively: bytes in [A-Za-z0-9._-] are kept, every other byte becomes
 * "%XX" (upper-case hex), so "busybox:latest" -> "busybox%3Alatest" and
 * "a/../b" -> "a%2F..%2Fb". Names image_name_check refuses are refused
 * (errno EINVAL), as is a result that does not fit len or IMAGE_SAFE_MAX + 1
 * (ENAMETOOLONG). The result never contains '/' and never starts with '.'.
 * 0 or -1. */
int image_safe_name(const char *name, char *out, size_t len);

#endif
