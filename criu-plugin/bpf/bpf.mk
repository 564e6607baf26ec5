# The CO-RE BPF iterator that reads KVM state no ioctl returns
# (criu-plugin/bpf/README.md): its object is built by clang, turned into a
# skeleton header by bpftool and embedded in the plugin through
# criu-plugin/kvm-bpf.c. Included by the top Makefile.
#
# vmlinux.h is the build host's kernel's BTF. KVM's own types come from
# the program's local declarations, so a host whose KVM is a module (or
# absent) builds the same object; CO-RE relocates it at load.

BPF_DIR     := $(BUILD)/bpf
BPFTOOL     ?= $(firstword $(wildcard /usr/sbin/bpftool) $(shell command -v bpftool 2>/dev/null) bpftool)
BPF_CLANG   ?= clang-14
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
BPF_CFLAGS  := -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -I$(BPF_DIR) -Icriu-plugin/bpf

$(BPF_DIR)/vmlinux.h:
	@mkdir -p $(dir $@)
	$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp
	mv $@.tmp $@

$(BPF_DIR)/kvm-iter.bpf.o: criu-plugin/bpf/kvm-iter.bpf.c criu-plugin/bpf/kvm-iter.h \
			   $(BPF_DIR)/vmlinux.h criu-plugin/bpf/bpf.mk
	$(BPF_CLANG) $(BPF_CFLAGS) -c -o $@ $<

$(BPF_DIR)/kvm-iter.skel.h: $(BPF_DIR)/kvm-iter.bpf.o
	$(BPFTOOL) gen skeleton $< name kvm_iter_bpf > $@.tmp
	mv $@.tmp $@

override CFLAGS += -I$(BPF_DIR)
LDLIBS += -lbpf -lelf -lz

$(BUILD)/criu-plugin/kvm-bpf.o: $(BPF_DIR)/kvm-iter.skel.h
