# criu-qemu: CRIU plugin that checkpoints QEMU guest RAM as fixed-ram images.
#
#   make deps     install build/test dependencies and find/build CRIU >= 4.0
#   make          build the plugin, guardian, image tool and test guest
#   make check    unit tests (cmocka) + integration tests (pytest, real QEMU + CRIU),
#                 the latter also against QEMU 10.0 (make integration-qemu10)
#                 and with the UBSan build of the plugin
#   make soak     100 dump/restore cycles and the fault tests
#   make demo     boot a guest, checkpoint it with criu + plugin, restore it
#   make install  install the plugin into CRIU's plugin directory, and CRIU for
#                 container engines (CRIU_FAULT=130: for hosts that need it)
#   make uninstall  remove what make install put
#   make fuzz     fuzz the image reader and the config parser (libFuzzer, 10 M runs each)
#   make fuzz-short  the same for 30 s each (part of make check)
#   SAN=1         build everything with AddressSanitizer + UBSan (SAN=ub: UBSan only)

BUILD   := build
PREFIX  ?= /usr
PLUGIN_DIR ?= $(PREFIX)/lib/criu
PYTEST  := /usr/bin/python3 -m pytest

# The fragments included below define rules of their own: all stays the default.
.DEFAULT_GOAL := all

CRIU_MK := build/criu.mk
-include $(CRIU_MK)

CC      ?= gcc
# -fvisibility=hidden: the plugin exports CR_PLUGIN_DESC alone (plugin.c).
# Our flags go after a packager's CFLAGS so -Werror and the include path stay.
override CFLAGS += -O2 -g -std=gnu11 -Wall -Wextra -Werror -fPIC -fvisibility=hidden -D_GNU_SOURCE \
	   -Icommon -Icriu-plugin -Iguardian -Iimages -I$(BUILD)/proto -isystem $(CRIU_INC)
LDLIBS  := -luring -ljansson -lxxhash -lprotobuf-c -lpthread
ifeq ($(SAN),1)
override CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer
override LDFLAGS += -fsanitize=address,undefined
endif
# UBSan alone, every finding fatal: the build that runs inside CRIU in
# integration-san (CRIU 4.1.1 itself hangs at exit with the ASan runtime
# preloaded, with or without plugins, so ASan covers the same code in the
# unit tests instead).
ifeq ($(SAN),ub)
override CFLAGS  += -fsanitize=undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
override LDFLAGS += -fsanitize=undefined
endif

# KVM state the kernel shows no ioctl for is read by CO-RE BPF iterators:
# their build (skeletons, libbpf) is in its own fragment.
-include criu-plugin/bpf/bpf.mk
# The bare-metal guest of the KVM tests (test/kvm-guest/README.md).
include test/kvm-guest/kvm-guest.mk

# Three programs, each with its own objects, and what they share:
#   common/ + images/ + proto/  logging, the guardian control protocol, the
#                               image library  -> libcriuqemu-common.a
#   criu-plugin/                the plugin     -> qemu_plugin.so
#   guardian/                   the guardian   -> criu-qemu-guardian
#   images/tool.c               criu-qemu-img
# Unit tests link the plugin's and the guardian's objects through two
# archives (only what a test uses is pulled in).
PROTO_SRC   := $(wildcard proto/*.proto)
PROTO_C     := $(patsubst proto/%.proto,$(BUILD)/proto/%.pb-c.c,$(PROTO_SRC))
PROTO_OBJ   := $(PROTO_C:.c=.o)
COMMON_SRC  := $(wildcard common/*.c) $(filter-out images/tool.c,$(wildcard images/*.c))
COMMON_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(COMMON_SRC)) $(PROTO_OBJ)
PLUGIN_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard criu-plugin/*.c))
GUARDIAN_LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(filter-out guardian/guardian-main.c,$(wildcard guardian/*.c)))
UNIT_SRC    := $(wildcard test/unit/test_*.c)
UNIT_BIN    := $(patsubst test/unit/%.c,$(BUILD)/test/unit/%,$(UNIT_SRC))
COMMON_LIB  := $(BUILD)/libcriuqemu-common.a
PLUGIN_LIB  := $(BUILD)/libcriuqemu-plugin.a
GUARDIAN_LIB := $(BUILD)/libcriuqemu-guardian.a

PLUGIN      := $(BUILD)/plugin/qemu_plugin.so
GUARDIAN    := $(BUILD)/plugin/criu-qemu-guardian
IMGTOOL     := $(BUILD)/criu-qemu-img
GUEST       := build/guest/.stamp
FAULTFS     := $(BUILD)/test/faultfs
CRIU_HDR    := build/criu-include/criu-plugin.h

.PHONY: all deps criu check unit integration integration-qemu10 integration-san soak demo bench install clean guest fuzz fuzz-short fuzz-build
all: $(PLUGIN) $(GUARDIAN) $(IMGTOOL) $(GUEST) $(KVM_GUEST)

# deps installs packages and builds CRIU when it has to; the build itself
# only looks for what is there (scripts/criu.sh --find) and never installs.
deps:
	scripts/deps.sh
	scripts/criu.sh

$(CRIU_MK) $(CRIU_HDR):
	scripts/criu.sh --find

# The layout of CRIU's options struct, from its source tree, for the
# plugin to read the dump's verdict (criu-plugin/criu-opts.c).
CRIU_OPTS_H := $(BUILD)/criu-opts-layout.h
$(CRIU_OPTS_H): scripts/criu-opts.sh $(CRIU_MK) $(CRIU)
	scripts/criu-opts.sh $(CRIU) $@
$(BUILD)/criu-plugin/criu-opts.o $(BUILD)/test/unit/test_criu_opts.o: $(CRIU_OPTS_H)
$(BUILD)/criu-plugin/criu-opts.o $(BUILD)/test/unit/test_criu_opts.o: override CFLAGS += -I$(BUILD)

$(BUILD)/proto/%.pb-c.c $(BUILD)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(dir $@)
	protoc-c --proto_path=proto --c_out=$(BUILD)/proto $<

# Generated code is kept (not an intermediate make deletes) and built with our flags.
.SECONDARY: $(PROTO_C)
$(BUILD)/proto/%.pb-c.o: $(BUILD)/proto/%.pb-c.c Makefile
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.c $(PROTO_C) $(CRIU_HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(COMMON_LIB): $(COMMON_OBJ)
$(PLUGIN_LIB): $(PLUGIN_OBJ)
$(GUARDIAN_LIB): $(GUARDIAN_LIB_OBJ)
$(COMMON_LIB) $(PLUGIN_LIB) $(GUARDIAN_LIB):
	rm -f $@
	ar rcs $@ $^

$(PLUGIN): $(PLUGIN_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -o $@ $^ $(LDLIBS)

$(GUARDIAN): $(BUILD)/guardian/guardian-main.o $(GUARDIAN_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(IMGTOOL): $(BUILD)/images/tool.o $(COMMON_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Each test with the helpers it shares with the others (test/unit/helpers.h).
$(BUILD)/test/unit/%: $(BUILD)/test/unit/%.o $(BUILD)/test/unit/helpers.o $(PLUGIN_LIB) $(GUARDIAN_LIB) $(COMMON_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(GUEST): test/guest/build-guest.sh $(wildcard test/guest/*.c test/guest/*.h test/guest/init*)
	test/guest/build-guest.sh build/guest
	touch $@

guest: $(GUEST)

# FUSE pass-through that fails I/O on command, for test_eio.py.
$(FAULTFS): test/faultfs/faultfs.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $$(pkg-config --cflags fuse3) $(LDFLAGS) -o $@ $< $$(pkg-config --libs fuse3)

unit: $(UNIT_BIN) $(IMGTOOL)	# test_imgtool runs the tool
	@for t in $(UNIT_BIN); do echo "== $$t"; $$t; rc=$$?; \
		if [ $$rc = 77 ]; then echo "SKIPPED: $$t (the reason is above)"; \
		elif [ $$rc != 0 ]; then exit $$rc; fi; done

# TESTS: which integration tests (files or node ids); all of them by default.
TESTS ?= test/integration
integration: all $(FAULTFS)
	CRIU=$(CRIU) BUILD=$(abspath $(BUILD)) $(PYTEST) -v -rs $(TESTS) $(PYTEST_ARGS)

# The integration suite once more against QEMU 10.0 (scripts/qemu10.sh
# unpacks it into build/qemu10; the system's QEMU 7.2 stays): RAM block
# discovery, memory backends, machine types and KVM on the QEMU current
# distributions ship. The engine tests are left out: their containers run
# the system's QEMU whatever QEMU= says.
QEMU10 := $(abspath build/qemu10/qemu-system-x86_64)
integration-qemu10: all $(FAULTFS)
	scripts/qemu10.sh
	QEMU=$(QEMU10) $(MAKE) integration PYTEST_ARGS="--ignore=test/integration/test_podman.py \
		--ignore=test/integration/test_containerd.py $(PYTEST_ARGS)"

# The integration suite once more with the plugin, the guardian and the
# image tool built with UBSan (SAN=ub above).
integration-san:
	$(MAKE) SAN=ub BUILD=build/ubsan integration

# The long fault runs (Documentation/design.md, "Fault campaign"): 100
# dump/restore cycles of one guest (TCG and KVM) and the fault tests.
soak: all
	CRIU_QEMU_CYCLES=100 CRIU_QEMU_KVM_CYCLES=100 CRIU=$(CRIU) BUILD=$(abspath $(BUILD)) $(PYTEST) -v -rs \
		test/integration/test_cycles.py test/integration/test_faults.py \
		test/integration/test_kvm.py $(PYTEST_ARGS)

check: deps
	scripts/module-table.py --check
	$(MAKE) all
	$(MAKE) SAN=1 BUILD=build/san unit
	$(MAKE) unit
	$(MAKE) fuzz-short
	$(MAKE) integration
	$(MAKE) integration-qemu10
	$(MAKE) integration-san

demo: deps
	$(MAKE) all
	CRIU=$(CRIU) BUILD=$(abspath $(BUILD)) /usr/bin/python3 test/demo.py $(if $(filter-out 0,$(KVM)),--kvm)

# QEMU 10 (scripts/qemu10.sh, unpacked into build/qemu10, the system QEMU
# stays) for QEMU's own mapped-ram file migration; matplotlib for the plots.
bench: deps
	$(MAKE) all
	scripts/qemu10.sh
	dpkg-query -W -f='$${Status}' python3-matplotlib 2>/dev/null | grep -q "install ok installed" || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive \
		  apt-get install -y -q --no-install-recommends python3-matplotlib; }
	CRIU=$(CRIU) BUILD=$(abspath $(BUILD)) /usr/bin/python3 test/bench.py $(if $(filter-out 0,$(KVM)),--kvm-only) $(BENCH_ARGS)

# C benchmarks, test/bench/bench_*.c: built from the objects and helpers the
# unit tests use (make bench-c), run by test/bench.py as part of make bench,
# never by make unit.
BENCH_C_SRC := $(wildcard test/bench/bench_*.c)
BENCH_C_BIN := $(patsubst test/bench/%.c,$(BUILD)/test/bench/%,$(BENCH_C_SRC))
.PHONY: bench-c
bench-c: $(BENCH_C_BIN)
bench: bench-c

$(BUILD)/test/bench/%: $(BUILD)/test/bench/%.o $(BUILD)/test/unit/helpers.o $(PLUGIN_LIB) $(GUARDIAN_LIB) $(COMMON_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Fuzzing: libFuzzer harnesses in test/fuzz, built by clang with ASan and
# UBSan from the sources (objects of their own under build/fuzz: gcc's are
# not instrumented). The image corpus is seeded with real images from
# gen_corpus, rebuilt when the image code changes; the config corpus with
# test/fuzz/corpus-config. Each corpus keeps what earlier runs found.
FUZZ        := $(BUILD)/fuzz
FUZZ_CC     := clang-14
FUZZ_CFLAGS := -g -O1 -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -fno-omit-frame-pointer \
	       -fsanitize=address,undefined -fno-sanitize-recover=all \
	       -Icommon -Icriu-plugin -Iimages -I$(BUILD)/proto -Itest/fuzz
FUZZ_OBJ    := $(patsubst %.c,$(FUZZ)/obj/%.o,images/fixedram.c criu-plugin/config.c common/log.c common/io.c common/proc.c common/detach.c) \
	       $(patsubst $(BUILD)/%.c,$(FUZZ)/obj/%.o,$(PROTO_C))
FUZZ_BIN    := $(FUZZ)/fuzz_image $(FUZZ)/fuzz_config
# A one-block image is 2 MiB and more, but its slot form (fuzz_image.h) a
# few KiB: 64 KiB inputs hold any seed with room to grow. Any allocation
# above 64 MiB is a bug here (inputs and files are far smaller).
FUZZ_OPTS   := -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=64
FUZZ_OPTS_image  := $(FUZZ_OPTS) -max_len=65536 -dict=test/fuzz/image.dict
FUZZ_OPTS_config := $(FUZZ_OPTS) -max_len=8192 -dict=test/fuzz/config.dict
FUZZ_RUNS   := 10000000
FUZZ_SECS   := 30

# Keep what the fuzz chains would delete as intermediate: the harness
# objects, and the generated protobuf sources the main build also uses.
.SECONDARY: $(PROTO_C) $(FUZZ)/obj/test/fuzz/fuzz_image.o $(FUZZ)/obj/test/fuzz/fuzz_config.o

$(FUZZ)/obj/proto/%.o: $(BUILD)/proto/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ)/obj/%.o: %.c $(PROTO_C)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ)/fuzz_%: $(FUZZ)/obj/test/fuzz/fuzz_%.o $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ -lxxhash -lprotobuf-c -lpthread

$(FUZZ)/gen_corpus: $(FUZZ)/obj/test/fuzz/gen_corpus.o $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^ -lxxhash -lprotobuf-c -lpthread

# Generated seeds, and inputs that once failed (test/fuzz/corpus-image).
$(FUZZ)/seeds-image.stamp: $(FUZZ)/gen_corpus $(wildcard test/fuzz/corpus-image/*)
	@mkdir -p $(FUZZ)/corpus-image
	$(FUZZ)/gen_corpus $(FUZZ)/corpus-image
	cp test/fuzz/corpus-image/* $(FUZZ)/corpus-image
	touch $@

$(FUZZ)/seeds-config.stamp: $(wildcard test/fuzz/corpus-config/*)
	@mkdir -p $(FUZZ)/corpus-config
	cp test/fuzz/corpus-config/* $(FUZZ)/corpus-config
	touch $@

fuzz-build: $(FUZZ_BIN) $(FUZZ)/seeds-image.stamp $(FUZZ)/seeds-config.stamp

fuzz: fuzz-build
	test/fuzz/run.sh $(FUZZ) config $(FUZZ_OPTS_config) -runs=$(FUZZ_RUNS)
	test/fuzz/run.sh $(FUZZ) image $(FUZZ_OPTS_image) -runs=$(FUZZ_RUNS)

fuzz-short: fuzz-build
	test/fuzz/run.sh $(FUZZ) config $(FUZZ_OPTS_config) -max_total_time=$(FUZZ_SECS)
	test/fuzz/run.sh $(FUZZ) image $(FUZZ_OPTS_image) -max_total_time=$(FUZZ_SECS)

# install also makes the CRIU of make deps (a copy under CRIU_LIBEXEC) the
# criu that container engines run: runc and Podman take `criu` from PATH
# and start it with a clean environment, so CRIU_WRAPPER (first on root's
# PATH) is a script that execs it. CRIU_FAULT=130 (hosts without usable
# debug registers, README "Machine notes") is an environment variable
# only, CRIU has no option or configuration-file key for it: make install
# CRIU_FAULT=130 writes it into the wrapper (a value already in the
# environment wins). The wrapper carries a marker line; an existing
# CRIU_WRAPPER without it is not overwritten, and uninstall removes only
# what install put.
CRIU_WRAPPER ?= /usr/local/sbin/criu
CRIU_LIBEXEC ?= /usr/local/lib/criu-qemu
CRIU_FAULT   ?=
WRAPPER_MARK := \# criu-qemu: wrapper installed by make install
.PHONY: uninstall engines

install: $(PLUGIN) $(GUARDIAN) $(IMGTOOL)
	@if [ -e $(DESTDIR)$(CRIU_WRAPPER) ] && ! grep -qx '$(WRAPPER_MARK)' $(DESTDIR)$(CRIU_WRAPPER); then \
		echo "install: $(DESTDIR)$(CRIU_WRAPPER) exists and is not ours; set CRIU_WRAPPER=..." >&2; exit 1; fi
	install -D -m 0644 $(PLUGIN) $(DESTDIR)$(PLUGIN_DIR)/qemu_plugin.so
	install -D -m 0755 $(GUARDIAN) $(DESTDIR)$(PLUGIN_DIR)/criu-qemu-guardian
	install -D -m 0755 $(IMGTOOL) $(DESTDIR)$(PREFIX)/bin/criu-qemu-img
	install -D -m 0755 $(CRIU) $(DESTDIR)$(CRIU_LIBEXEC)/criu
	@mkdir -p $(dir $(DESTDIR)$(CRIU_WRAPPER))
	printf '%s\n' '#!/bin/sh' '$(WRAPPER_MARK)' \
		$(if $(CRIU_FAULT),': "$${CRIU_FAULT:=$(CRIU_FAULT)}"' 'export CRIU_FAULT') \
		'exec $(CRIU_LIBEXEC)/criu "$$@"' >$(DESTDIR)$(CRIU_WRAPPER)
	chmod 0755 $(DESTDIR)$(CRIU_WRAPPER)

uninstall:
	rm -f $(DESTDIR)$(PLUGIN_DIR)/qemu_plugin.so $(DESTDIR)$(PLUGIN_DIR)/criu-qemu-guardian \
		$(DESTDIR)$(PREFIX)/bin/criu-qemu-img $(DESTDIR)$(CRIU_LIBEXEC)/criu
	@if [ -e $(DESTDIR)$(CRIU_WRAPPER) ] && grep -qx '$(WRAPPER_MARK)' $(DESTDIR)$(CRIU_WRAPPER); then \
		echo rm -f $(DESTDIR)$(CRIU_WRAPPER); rm -f $(DESTDIR)$(CRIU_WRAPPER); fi
	-rmdir $(DESTDIR)$(CRIU_LIBEXEC) 2>/dev/null

# Podman, runc and a local registry for the container tests (make deps runs it).
engines:
	scripts/engines.sh

clean:
	rm -rf $(BUILD)/common $(BUILD)/criu-plugin $(BUILD)/guardian $(BUILD)/images $(BUILD)/proto \
		$(BUILD)/test $(BUILD)/san $(BUILD)/ubsan $(FUZZ) \
		$(COMMON_LIB) $(PLUGIN_LIB) $(GUARDIAN_LIB) $(PLUGIN) $(GUARDIAN) $(IMGTOOL)

-include $(shell find $(BUILD) -name '*.d' -not -path '*/criu-src/*' 2>/dev/null)
