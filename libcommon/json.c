#include <stdlib.h>
#include <string.h>

#include "json.h"

int
json_print(FILE *f, const json_t *v, int indent)
{
	size_t flags = JSON_PRESERVE_ORDER | JSON_ENCODE_ANY;

	if (indent > 0)
		flags |= JSON_INDENT(indent);
	else
		flags |= JSON_COMPACT;
	if (json_dumpf(v, f, flags) == -1)
		return -1;
	return fputc('\n', f) == EOF ? -1 : 0;
}

json_t *
json_str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *
json_str_lossy(const char *s)
{
	json_t *j;
	char *c;

	if (s == NULL)
		return json_null();
	if ((j = json_string(s)) != NULL || (c = strdup(s)) == NULL)
		return j;
	for (char *p = c; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(c);
	free(c);
	return j;
}
