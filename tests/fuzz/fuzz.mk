# tests/fuzz/fuzz.mk: the fuzz targets, included by the Makefile.
#
# make fuzz-replay      build the replay binaries (gcc, ASAN+UBSAN) and feed
#                       them every file of tests/fuzz/corpus/<target>/;
#                       `make check` runs the same through
#                       tests/test_00_fuzz_replay.py
# make fuzz             build the libFuzzer binaries (clang) and run each
#                       for FUZZ_SECONDS over a copy of its corpus
# make fuzz FUZZ_TARGETS=cfg FUZZ_SECONDS=300      one target, longer
#
# Both builds compile the sources they need into build/fuzz/ themselves,
# independent of the flavor in build/std or build/san. A target is one
# tests/fuzz/fuzz_<name>.c with LLVMFuzzerTestOneInput; the replay build
# adds tests/fuzz/replay.c, a plain main that replays files.

ifndef MANTA_FUZZ_MK
MANTA_FUZZ_MK := 1

FUZZ_SECONDS ?= 60
FUZZ_RSS_MB ?= 2048
FUZZ_GCC ?= gcc
FUZZ_GXX ?= g++
FUZZ_CLANG ?= clang
FUZZ_CLANGXX ?= clang++

# The Light targets need mantad-light/paths.c and wire.c.
FUZZ_ALL := ipc cfg mqtt $(if $(wildcard mantad-light/paths.c),path) \
	$(if $(wildcard mantad-light/wire.c),wire)
FUZZ_TARGETS ?= $(FUZZ_ALL)

# What each target links besides the libcommon part below.
FUZZ_SRC_ipc :=
FUZZ_SRC_cfg :=
FUZZ_SRC_mqtt := mantad-beat/dispatch.c mantad-register/util.c
FUZZ_SRC_path := mantad-light/paths.c
FUZZ_SRC_wire := mantad-light/wire.c
FUZZ_LIBS_wire := $(call pl,grpc)

FUZZ_COMMON_SRC := $(addprefix libcommon/,ipc.c ipc_validate.c daemon.c log.c \
	cfg.c cfg_notes.c file.c secret.c id.c blake3.c toml_shim.cpp)

FZR := build/fuzz/replay
FZL := build/fuzz/libfuzzer

FUZZ_CPPFLAGS := -D_GNU_SOURCE -Ilibcommon -isystem $(G) -Itests/fuzz \
	-Imantad-beat -Imantad-register -Imantad-light \
	$(call pc,libzmq libprotobuf-c sqlite3 grpc libsodium)
FUZZ_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
FUZZ_OPT := -O1 -g
FUZZ_LIBS := $(call pl,libzmq libprotobuf-c libsodium) -lstdc++ -lm

# Sanitizers: any report fails the run; leaks too.
FUZZ_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:check_initialization_order=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

fuzz_objs = $(patsubst %,$(1)/%.o,$(basename $(2)))
FUZZ_LIBSRC := $(FUZZ_COMMON_SRC) $(PROTO_C)

# ---- replay build: gcc ----
$(FZR)/$(G)/%.o: $(G)/%.c $(G)/.stamp
	@mkdir -p $(dir $@)
	$(FUZZ_GCC) $(FUZZ_CPPFLAGS) -std=gnu11 $(FUZZ_OPT) $(FUZZ_SAN) -c -o $@ $<
$(FZR)/%.o: %.c $(G)/.stamp
	@mkdir -p $(dir $@)
	$(FUZZ_GCC) $(FUZZ_CPPFLAGS) -std=gnu11 $(FUZZ_OPT) $(WARN) $(FUZZ_SAN) -MMD -MP -c -o $@ $<
$(FZR)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(FUZZ_GXX) $(FUZZ_CPPFLAGS) -std=c++17 $(FUZZ_OPT) -Wall -Wextra $(call pc,tomlplusplus) \
		$(FUZZ_SAN) -MMD -MP -c -o $@ $<
$(FZR)/libfuzzcommon.a: $(call fuzz_objs,$(FZR),$(FUZZ_LIBSRC))
	@rm -f $@
	ar rcs $@ $^

# ---- libFuzzer build: clang ----
FUZZ_LSAN := $(FUZZ_SAN) -fsanitize=fuzzer-no-link
$(FZL)/$(G)/%.o: $(G)/%.c $(G)/.stamp
	@mkdir -p $(dir $@)
	$(FUZZ_CLANG) $(FUZZ_CPPFLAGS) -std=gnu11 $(FUZZ_OPT) $(FUZZ_LSAN) -c -o $@ $<
$(FZL)/%.o: %.c $(G)/.stamp
	@mkdir -p $(dir $@)
	$(FUZZ_CLANG) $(FUZZ_CPPFLAGS) -std=gnu11 $(FUZZ_OPT) $(filter-out -Werror,$(WARN)) -Wno-format-nonliteral \
		$(FUZZ_LSAN) -MMD -MP -c -o $@ $<
$(FZL)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(FUZZ_CLANGXX) $(FUZZ_CPPFLAGS) -std=c++17 $(FUZZ_OPT) -Wall -Wextra \
		$(call pc,tomlplusplus) $(FUZZ_LSAN) -MMD -MP -c -o $@ $<
$(FZL)/libfuzzcommon.a: $(call fuzz_objs,$(FZL),$(FUZZ_LIBSRC))
	@rm -f $@
	ar rcs $@ $^

# ---- one binary per target and build ----
define fuzz_target
$(FZR)/fuzz_$(1): $(call fuzz_objs,$(FZR),tests/fuzz/fuzz_$(1).c tests/fuzz/replay.c $(FUZZ_SRC_$(1))) $(FZR)/libfuzzcommon.a
	$(FUZZ_GXX) $(FUZZ_SAN) -o $$@ $$^ $(FUZZ_LIBS_$(1)) $(FUZZ_LIBS)
$(FZL)/fuzz_$(1): $(call fuzz_objs,$(FZL),tests/fuzz/fuzz_$(1).c $(FUZZ_SRC_$(1))) $(FZL)/libfuzzcommon.a
	$(FUZZ_CLANGXX) $(FUZZ_SAN) -fsanitize=fuzzer -o $$@ $$^ $(FUZZ_LIBS_$(1)) $(FUZZ_LIBS)
endef
$(foreach t,$(FUZZ_ALL),$(eval $(call fuzz_target,$(t))))

fuzz-replay-bin: $(patsubst %,$(FZR)/fuzz_%,$(FUZZ_TARGETS))
fuzz-bin: $(patsubst %,$(FZL)/fuzz_%,$(FUZZ_TARGETS))

fuzz-replay: fuzz-replay-bin
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz-replay: $$t"; \
		$(FUZZ_ENV) $(FZR)/fuzz_$$t tests/fuzz/corpus/$$t || exit 1; \
	done

# One target at a time, one job each, new inputs into build/fuzz/run/<t>/
# (a copy of the corpus), crashes into build/fuzz/artifacts/<t>/. A crash
# stops here: minimize it (fuzz_<t> -minimize_crash=1 -runs=10000 FILE),
# add it to tests/fuzz/corpus/<t>/crash-<what> and fix.
fuzz: fuzz-bin
	@for t in $(FUZZ_TARGETS); do \
		rm -rf build/fuzz/run/$$t; mkdir -p build/fuzz/run/$$t build/fuzz/artifacts/$$t; \
		cp tests/fuzz/corpus/$$t/* build/fuzz/run/$$t/; \
		dict=; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		$(FUZZ_ENV) $(FZL)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
			-rss_limit_mb=$(FUZZ_RSS_MB) -timeout=10 -print_final_stats=1 \
			-artifact_prefix=build/fuzz/artifacts/$$t/ $$dict \
			build/fuzz/run/$$t || exit 1; \
	done

.PHONY: fuzz fuzz-bin fuzz-replay fuzz-replay-bin

-include $(wildcard $(FZR)/*/*.d $(FZR)/*/*/*.d $(FZL)/*/*.d $(FZL)/*/*/*.d)

endif
