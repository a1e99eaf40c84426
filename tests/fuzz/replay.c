/* replay: the plain main of the replay build. Feeds each file named on the
 * command line (a directory: each regular file in it, in name order) to
 * the target once, as libFuzzer would (crun tests_libcrun_fuzzer.c). A
 * sanitizer report or a broken invariant ends the process non-zero. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int
replay_file(const char *path)
{
	uint8_t *buf;
	size_t len = 0, cap = 4096;
	FILE *f;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "replay: fatal: unable to open %s: %s\n", path, strerror(errno));
		return -1;
	}
	if ((buf = malloc(cap)) == NULL)
		abort();
	for (;;) {
		size_t n = fread(buf + len, 1, cap - len, f);

		len += n;
		if (len < cap)
			break;
		cap *= 2;
		if ((buf = realloc(buf, cap)) == NULL)
			abort();
	}
	if (ferror(f)) {
		fprintf(stderr, "replay: fatal: unable to read %s\n", path);
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	/* An exact-size copy, so that ASAN sees a read past the input. */
	{
		uint8_t *in = malloc(len ? len : 1);

		if (in == NULL)
			abort();
		memcpy(in, buf, len);
		free(buf);
		LLVMFuzzerTestOneInput(in, len);
		free(in);
	}
	return 0;
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int
main(int argc, char **argv)
{
	int n = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) == -1) {
			fprintf(stderr, "replay: fatal: unable to stat %s: %s\n", argv[i],
			    strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			struct dirent **ents;
			int m = scandir(argv[i], &ents, NULL, by_name);

			if (m == -1) {
				fprintf(stderr, "replay: fatal: unable to list %s: %s\n",
				    argv[i], strerror(errno));
				return 1;
			}
			for (int k = 0; k < m; k++) {
				char p[4096];
				struct stat fst;

				snprintf(p, sizeof(p), "%s/%s", argv[i], ents[k]->d_name);
				if (stat(p, &fst) == 0 && S_ISREG(fst.st_mode)) {
					if (replay_file(p) == -1)
						return 1;
					n++;
				}
				free(ents[k]);
			}
			free(ents);
		} else {
			if (replay_file(argv[i]) == -1)
				return 1;
			n++;
		}
	}
	fprintf(stderr, "replay: %d inputs, no failure\n", n);
	return 0;
}
