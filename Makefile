# manta-node: one GNU Makefile for the whole suite.
# make            build bin/*        make check    unit + integration tests
# make deps       Debian packages    make demo     a node joining a local cluster
# make bench      memory/CPU/latency figures      make SANITIZE=1 ...  ASAN+UBSAN
# make TSAN=1     ThreadSanitizer build in build/tsan (bin/ untouched)
# make bench-cluster  200 local instances (issue 14)
# make install    PREFIX=/usr/local DESTDIR=      make deb     a Debian package (build/deb/)

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

# Issue 14: BENCH_CLUSTER_N (200) instances on this host; several minutes.
bench-cluster: all build/py/.stamp
	@$(PYTHON) bench/cluster.py

# The long chaos test (issue 6, tests/chaos.py): CHAOS_TASKS short tasks
# (default 300) while daemons get SIGKILL and the broker and the manager
# restart; its short form is tests/test_79_chaos_short.py in make check.
chaos: all build/py/.stamp
	@$(PYTHON) tests/chaos.py
.PHONY: chaos

deps:
	@sh tests/deps.sh

# ---- install (PREFIX, DESTDIR and the *DIR variables as GNU does) ----
# Programs go to sbin: mantactl finds the daemons beside itself. The config
# is /etc/manta whatever the PREFIX (mantactl looks there for NAME.toml).
# Without DESTDIR, install also makes the accounts and directories.
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/manta-node
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
D := $(DESTDIR)
DIST := build/dist
subst = sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	-e 's|/usr/local/sbin|$(SBINDIR)|g'

# The example config: "config init" with the paths a system node uses.
# It and the unit get their paths (@SBINDIR@, ...) at install time.
$(DIST)/node.toml: bin/mantactl
	@mkdir -p $(DIST)
	@rm -rf $(DIST)/init && mkdir -p $(DIST)/init
	$(call say,GEN,$@)HOME=/nonexistent MANTA_CONFIG= bin/mantactl config init \
	    -c $(DIST)/init/node.toml >/dev/null 2>&1
	@sed -e 's|^cert_folder = "~/.manta/certs"|cert_folder = "@SYSCONFDIR@/manta/certs"|' \
	    -e 's|^name = .*|# name = "node"		# unset: the file name, NAME.toml; names the run and state dirs|' \
	    -e 's|^created_at = .*|created_at = "2026-01-01T00:00:00Z"|' $(DIST)/init/node.toml > $@

install: all $(DIST)/node.toml
	install -d $(D)$(SBINDIR) $(D)$(MANDIR)/man5 $(D)$(MANDIR)/man7 $(D)$(MANDIR)/man8 \
	    $(D)$(SYSCONFDIR)/manta $(D)$(UNITDIR) $(D)$(SYSUSERSDIR) $(D)$(TMPFILESDIR) \
	    $(D)$(DOCDIR)/examples
	install -m 755 $(PROGS) $(D)$(SBINDIR)/
	install -m 644 man/*.5 $(D)$(MANDIR)/man5/
	install -m 644 man/*.7 $(D)$(MANDIR)/man7/
	install -m 644 man/*.8 $(D)$(MANDIR)/man8/
	@if [ -e $(D)$(SYSCONFDIR)/manta/node.toml ]; then \
	    echo "install: keeping $(D)$(SYSCONFDIR)/manta/node.toml"; \
	else $(subst) $(DIST)/node.toml > $(D)$(SYSCONFDIR)/manta/node.toml && \
	    chmod 640 $(D)$(SYSCONFDIR)/manta/node.toml; fi
	$(subst) contrib/systemd/manta-node@.service.in > $(D)$(UNITDIR)/manta-node@.service
	chmod 644 $(D)$(UNITDIR)/manta-node@.service
	install -m 644 contrib/systemd/manta-node.sysusers $(D)$(SYSUSERSDIR)/manta-node.conf
	install -m 644 contrib/systemd/manta-node.tmpfiles $(D)$(TMPFILESDIR)/manta-node.conf
	for sv in s6 runit; do \
	    (cd contrib && find $$sv -type d) | while read -r d; do install -d "$(D)$(DOCDIR)/examples/$$d"; done; \
	    (cd contrib && find $$sv -type f) | while read -r f; do \
		if [ -x "contrib/$$f" ]; then m=755; else m=644; fi; \
		$(subst) "contrib/$$f" > "$(D)$(DOCDIR)/examples/$$f" && chmod $$m "$(D)$(DOCDIR)/examples/$$f"; \
	    done; \
	    (cd contrib && find $$sv -type l) | while read -r l; do \
		ln -sfn "$$(readlink contrib/$$l)" "$(D)$(DOCDIR)/examples/$$l"; done; \
	done
	@if [ -z "$(DESTDIR)" ]; then \
	    echo "install: accounts manta and manta-light, /run/manta, /var/lib/manta"; \
	    sh contrib/systemd/mkusers.sh $(SYSUSERSDIR)/manta-node.conf && \
	    install -d -m 755 /run/manta /var/lib/manta && \
	    if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	fi

# A Debian package from a copy of this tree as git sees it (tracked and
# untracked, not ignored files: what a fresh clone plus your changes
# holds), built with debhelper; the .deb lands in build/deb/.
DEB_TREE := build/deb/src
deb:
	@rm -rf build/deb && mkdir -p $(DEB_TREE)
	@if [ -d .git ] || [ -f .git ]; then \
	    git ls-files -z -c -o --exclude-standard | tar --null -T - -cf - | tar -C $(DEB_TREE) -xf -; \
	else tar --exclude=./build --exclude=./bin -cf - . | tar -C $(DEB_TREE) -xf -; fi
	cd $(DEB_TREE) && dpkg-buildpackage -us -uc -b -Jauto
	@ls -1 build/deb/*.deb

clean:
	rm -rf build bin

.PHONY: all check check-tsan demo bench bench-cluster deps clean unit install deb
.SECONDARY:

-include $(COMMON_O:.o=.d) $(foreach d,$(DAEMONS),$(MAIN_O_$(d):.o=.d)) $(CTL_O:.o=.d) \
	$(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%.d)
