#include <errno.h>
#include <string.h>

#include "image.h"

static int
keep_byte(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

const char *
image_name_check(const char *name)
{
	size_t n;

	if (name == NULL || name[0] == '\0')
		return "empty image name";
	n = strnlen(name, IMAGE_NAME_MAX + 1);
	if (n > IMAGE_NAME_MAX)
		return "image name longer than 200 bytes";
	/* Refused even though encoding would make them harmless: "." and
	 * ".." must never name a directory, and hidden entries are ours. */
	if (name[0] == '.')
		return "image name starts with '.'";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f)
			return "control byte in image name";
	}
	return NULL;
}

int
image_safe_name(const char *name, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (image_name_check(name) != NULL) {
		errno = EINVAL;
		return -1;
	}
	if (len > IMAGE_SAFE_MAX + 1)
		len = IMAGE_SAFE_MAX + 1;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (keep_byte(*p)) {
			if (o + 1 >= len)
				goto toolong;
			out[o++] = (char)*p;
		} else {
			if (o + 3 >= len)
				goto toolong;
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 0xf];
		}
	}
	if (len == 0)
		goto toolong;
	out[o] = '\0';
	return 0;
toolong:
	if (len > 0)
		out[0] = '\0';
	errno = ENAMETOOLONG;
	return -1;
}
