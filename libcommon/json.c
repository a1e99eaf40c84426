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
