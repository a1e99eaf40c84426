/* json: output for scripts (jansson). */
#ifndef MANTA_JSON_H
#define MANTA_JSON_H

#include <stdio.h>
#include <jansson.h>

/* Prints v compactly (pretty when indent > 0), with a trailing newline.
 * Keys keep their insertion order. 0 or -1. */
int json_print(FILE *f, const json_t *v, int indent);
/* json_string(), but NULL becomes JSON null. */
json_t *json_str_or_null(const char *s);
/* json_str_or_null(), with the bytes of s that are not UTF-8 as '?' (where
 * json_string() would refuse s): for text a peer or a task wrote. */
json_t *json_str_lossy(const char *s);

#endif
