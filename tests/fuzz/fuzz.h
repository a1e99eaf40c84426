/* fuzz: what every target in tests/fuzz/ shares. Each fuzz_X.c defines the
 * libFuzzer entry points; replay.c adds a plain main that feeds it files
 * (the replay build, gcc + ASAN + UBSAN, run by `make check`); libFuzzer's
 * own main takes its place in the clang build (`make fuzz`). */
#ifndef MANTA_FUZZ_H
#define MANTA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a crash, like a sanitizer report: libFuzzer saves
 * the input, the replay exits non-zero. */
#define FUZZ_ASSERT(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant broken: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

/* FUZZ_VERBOSE=1 in the environment: one line per input saying what
 * became of it (for checking that seeds reach what they are meant to). */
#define FUZZ_SAY(...) do {						\
	static int say_ = -1;						\
	if (say_ == -1)							\
		say_ = getenv("FUZZ_VERBOSE") != NULL;			\
	if (say_)							\
		fprintf(stderr, __VA_ARGS__);				\
} while (0)

#endif
