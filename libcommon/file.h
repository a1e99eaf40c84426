/* file: small path and file helpers every program shares. */
#ifndef MANTA_FILE_H
#define MANTA_FILE_H

#include <sys/types.h>

/* "a/b" in a malloc'd string, without doubling a slash that ends a; NULL
 * when out of memory. */
char *path_join(const char *a, const char *b);
/* Reads at most len-1 bytes of a small file (a /proc or /sys entry, a pid
 * or port file) into buf, NUL-terminated, trailing newlines (\n, \r)
 * removed. The length, or -1 (errno set, nothing logged: callers decide
 * how loud to be). */
ssize_t read_small(const char *path, char *buf, size_t len);

#endif
