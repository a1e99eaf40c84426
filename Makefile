# manta-node: one GNU Makefile for the whole suite.
# make            build bin/*        make check    unit + integration tests
# make deps       Debian packages    make demo     a node joining a local cluster
# make bench      memory/CPU/latency figures      make SANITIZE=1 ...  ASAN+UBSAN
# make TSAN=1     ThreadSanitizer build in build/tsan (bin/ untouched)

.DEFAULT_GOAL := all

PKG_CONFIG ?= pkg-config
CC  ?= cc
CXX ?= c++
PYTHON ?= /usr/bin/python3

ifeq ($(SANITIZE),1)
FLAVOR := san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(TSAN),1)
FLAVOR := tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
else
FLAVOR := std
SANFLAGS :=
endif

B := build/$(FLAVOR)
# The TSAN programs live apart, so that bin/ stays what the tests expect.
ifeq ($(FLAVOR),tsan)
BIN := $(B)/bin
FLAVOR_STAMP := $(B)/flavor
else
BIN := bin
FLAVOR_STAMP := build/flavor
endif

# Quiet by default ("CC file"); make V=1 shows the commands.
ifeq ($(V),1)
Q :=
say :=
else
Q := @
say = @printf '  %-6s %s\n' $(1) $(2);
endif
G := build/gen

WARN := -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes \
	-Wmissing-declarations -Wshadow -Wpointer-arith \
	-Wsign-compare -Wformat=2 -Wno-unused-parameter
ifdef CI
WARN += -Werror
endif

OPT ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -Ilibcommon -isystem $(G)
CFLAGS   += -std=gnu11 $(OPT) $(WARN) $(SANFLAGS) -fPIE
CXXFLAGS += -std=c++17 $(OPT) -Wall -Wextra $(SANFLAGS) -fPIE
LDFLAGS  += $(SANFLAGS) -pie -Wl,--as-needed

pc = $(shell $(PKG_CONFIG) --cflags $(1) 2>/dev/null)
pl = $(shell $(PKG_CONFIG) --libs $(1) 2>/dev/null)

CFLAGS   += $(call pc,libzmq libprotobuf-c sqlite3 jansson libsodium libseccomp libcap grpc)
CXXFLAGS += $(call pc,tomlplusplus)

# Each program links only what it uses (libgrpc alone costs ~2 MB private).
LIBS_BASE     := $(call pl,libzmq libprotobuf-c libcap libseccomp) -lstdc++
LIBS_register := $(LIBS_BASE) $(call pl,grpc sqlite3 libsodium)
LIBS_beat     := $(LIBS_BASE) -lpaho-mqtt3as $(call pl,sqlite3 jansson libsodium openssl)
LIBS_res      := $(LIBS_BASE) $(call pl,sqlite3 libsodium)
LIBS_exec     := $(LIBS_BASE) $(call pl,sqlite3 jansson zlib libsodium)
LIBS_light    := $(LIBS_BASE) $(call pl,grpc sqlite3 jansson libsodium)
LIBS_ctl      := $(LIBS_BASE) $(call pl,jansson sqlite3 libsodium)

# ---- generated protobuf-c code (never checked in) ----
PROTOS := $(shell find proto -name '*.proto' | sort)
PROTO_C := $(patsubst proto/%.proto,$(G)/%.pb-c.c,$(PROTOS))
PROTO_H := $(PROTO_C:.c=.h)
PROTO_O := $(patsubst $(G)/%.c,$(B)/gen/%.o,$(PROTO_C))

$(G)/.stamp: $(PROTOS)
	@mkdir -p $(G)
	$(call say,PROTOC,$(G))protoc-c --proto_path=proto --c_out=$(G) $(PROTOS)
	@touch $@
$(PROTO_C) $(PROTO_H): $(G)/.stamp

# Python modules for the tests and the development manager. The builtin
# google.protobuf.timestamp_pb2 is used there, so ours is not generated.
PY_PROTOS := $(filter-out proto/google/%,$(PROTOS))
build/py/.stamp: $(PY_PROTOS)
	@mkdir -p build/py
	$(call say,PROTOC,build/py)protoc --proto_path=proto --python_out=build/py $(PY_PROTOS)
	@for d in $$(find build/py -type d); do touch $$d/__init__.py; done
	@touch $@

# ---- objects ----
$(B)/gen/%.o: $(G)/%.c $(G)/.stamp
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CPPFLAGS) $(filter-out -Wshadow,$(CFLAGS)) -c -o $@ $<

$(B)/%.o: %.c $(G)/.stamp
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(call say,CXX,$<)$(CXX) $(CPPFLAGS) $(CXXFLAGS) -MMD -MP -c -o $@ $<

# Switching SANITIZE on or off relinks everything in bin/.
ifneq ($(shell cat $(FLAVOR_STAMP) 2>/dev/null),$(FLAVOR))
$(shell mkdir -p $(dir $(FLAVOR_STAMP)); echo $(FLAVOR) > $(FLAVOR_STAMP))
endif

COMMON_SRC := $(wildcard libcommon/*.c) $(wildcard libcommon/*.cpp)
COMMON_O := $(patsubst %,$(B)/%.o,$(basename $(COMMON_SRC)))
LIBCOMMON := $(B)/libcommon.a
LIBPROTO := $(B)/libproto.a

$(LIBCOMMON): $(COMMON_O)
	@rm -f $@
	$(call say,AR,$@)ar rcs $@ $^
$(LIBPROTO): $(PROTO_O)
	@rm -f $@
	$(call say,AR,$@)ar rcs $@ $^

DAEMONS := register beat res exec light
PROGS := $(foreach d,$(DAEMONS),$(if $(wildcard mantad-$(d)/*.c),$(BIN)/mantad-$(d))) $(BIN)/mantactl

all: $(PROGS)

define daemon_rule
MAIN_O_$(1) := $$(patsubst %.c,$(B)/%.o,$$(wildcard mantad-$(1)/*.c))
$(BIN)/mantad-$(1): $$(MAIN_O_$(1)) $(LIBCOMMON) $(LIBPROTO) $(FLAVOR_STAMP)
	@mkdir -p $(BIN)
	$(call say,LD,$$@)$(CC) $(LDFLAGS) -o $$@ $$(MAIN_O_$(1)) $(LIBCOMMON) $(LIBPROTO) $$(LIBS_$(1))
endef
$(foreach d,$(DAEMONS),$(eval $(call daemon_rule,$(d))))

CTL_O := $(patsubst %.c,$(B)/%.o,$(wildcard mantactl/*.c))
$(BIN)/mantactl: $(CTL_O) $(LIBCOMMON) $(LIBPROTO) $(FLAVOR_STAMP)
	@mkdir -p $(BIN)
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $(CTL_O) $(LIBCOMMON) $(LIBPROTO) $(LIBS_ctl)

# The container seccomp allowlist is pulled in by the assembler (.incbin),
# which -MMD does not see.
$(B)/mantad-exec/seccomp.o: mantad-exec/seccomp.allow

# ---- unit tests (cmocka): tests/unit/test_<module>.c, one binary each ----
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
LIBS_unit := $(LIBS_BASE) $(call pl,cmocka sqlite3 jansson grpc libsodium) -lpaho-mqtt3as

$(B)/tests/%: $(B)/tests/unit/%.o $(LIBCOMMON) $(LIBPROTO)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $< $(LIBCOMMON) $(LIBPROTO) $(LIBS_unit)

unit: $(UNIT_BIN)
	$(if $(filter tsan,$(FLAVOR)),,@ln -sfn $(FLAVOR) build/unit)

# ---- fuzzing: one target per parser; make check replays the corpus ----
include tests/fuzz/fuzz.mk

# ---- tests ----
# check and demo first make sure the Debian packages are there (a fresh
# machine), then build in a sub-make so that pkg-config is asked afresh.
check: deps
	@$(MAKE) --no-print-directory all unit build/py/.stamp fuzz-replay-bin
	@$(PYTHON) -m pytest -q -p no:cacheprovider tests $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory check-tsan

# ThreadSanitizer (issue 15): the unit tests of the threaded code and a short
# integration selection (register, beat, exec, light) with the build/tsan
# programs; any report fails (tests/tsan.supp: reviewed false positives).
TSAN_UNIT := test_evq test_ipc test_audit test_beat_dispatch test_db
TSAN_TESTS := tests/test_14_register_threads.py \
	"tests/test_20_exec_deploy.py::test_deploy_output_and_exit[runc]" \
	tests/test_40_light_local.py::test_get_binary_data
TSAN_ENV = TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 \
	suppressions=$(CURDIR)/tests/tsan.supp"
check-tsan:
	@$(MAKE) --no-print-directory TSAN=1 all unit build/py/.stamp
	@for t in $(TSAN_UNIT); do \
		echo "  TSAN   build/tsan/tests/$$t"; \
		$(TSAN_ENV) build/tsan/tests/$$t >build/tsan/$$t.log 2>&1 || \
		{ tail -80 build/tsan/$$t.log; echo "$$t failed under TSAN"; exit 1; }; \
	done
	@MANTA_TEST_TSAN=1 $(PYTHON) -m pytest -q -p no:cacheprovider $(TSAN_TESTS)

demo: deps
	@$(MAKE) --no-print-directory all build/py/.stamp
	@$(PYTHON) tests/demo.py

bench: all build/py/.stamp
	@$(PYTHON) bench/bench.py

# The long chaos test (issue 6, tests/chaos.py): CHAOS_TASKS short tasks
# (default 300) while daemons get SIGKILL and the broker and the manager
# restart; its short form is tests/test_79_chaos_short.py in make check.
chaos: all build/py/.stamp
	@$(PYTHON) tests/chaos.py
.PHONY: chaos

deps:
	@sh tests/deps.sh

clean:
	rm -rf build bin

.PHONY: all check check-tsan demo bench deps clean unit
.SECONDARY:

-include $(COMMON_O:.o=.d) $(foreach d,$(DAEMONS),$(MAIN_O_$(d):.o=.d)) $(CTL_O:.o=.d) \
	$(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%.d)
