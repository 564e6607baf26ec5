# SPDX-License-Identifier: MIT
# The bare-metal KVM test guest (test/kvm-guest/README.md).
#
#   make -f test/kvm-guest/kvm-guest.mk        from the repository root, or
#   include test/kvm-guest/kvm-guest.mk        from the top Makefile
#
# Builds $(KVM_GUEST), a multiboot ELF32 for QEMU's -kernel.  Variables
# are KG_-prefixed and flags are our own, so the top Makefile's CC/CFLAGS
# (sanitizers, -fPIC) never reach this freestanding code.

KG_SAVED_GOAL := $(.DEFAULT_GOAL)
KG_INCLUDED := $(filter-out 1,$(words $(MAKEFILE_LIST)))
KG_MK   := $(lastword $(MAKEFILE_LIST))
KG_SRC  := $(patsubst %/,%,$(dir $(KG_MK)))
KG_OUT  := build/kvm-guest
KVM_GUEST := build/kvm-guest/kvm-guest.elf

KG_CC      := gcc
KG_LD      := ld
KG_OBJCOPY := objcopy
# Ring 0 runs emulated under PVM, and x87/SSE there stops QEMU:
# -mgeneral-regs-only everywhere (ring 3 shares the helpers), no red zone
# (interrupts nest on the ring-0 stack), no endbr64/stack protector.
KG_CFLAGS  := -m64 -O2 -g -std=gnu11 -Wall -Wextra -Werror \
	-ffreestanding -fno-builtin -nostdlib -fno-pic -fno-pie -static \
	-mcmodel=small -mno-red-zone -mgeneral-regs-only \
	-fno-stack-protector -fcf-protection=none \
	-fno-asynchronous-unwind-tables -MMD -MP -I$(KG_SRC) -Itest/guest
KG_LDFLAGS := -m elf_x86_64 -nostdlib -static -z max-page-size=0x1000 \
	--no-warn-rwx-segments -T $(KG_SRC)/kvm-guest.ld

KG_OBJ := $(patsubst $(KG_SRC)/%.S,$(KG_OUT)/%.o,$(wildcard $(KG_SRC)/*.S)) \
	  $(patsubst $(KG_SRC)/%.c,$(KG_OUT)/%.o,$(wildcard $(KG_SRC)/*.c))

.PHONY: kvm-guest kvm-guest-clean
kvm-guest: $(KVM_GUEST)

# QEMU's multiboot loader takes ELF32 only; the code inside is still the
# 64-bit code, entered at the 32-bit _start.
$(KVM_GUEST): $(KG_OUT)/kvm-guest64.elf
	$(KG_OBJCOPY) -O elf32-i386 $< $@

$(KG_OUT)/kvm-guest64.elf: $(KG_OBJ) $(KG_SRC)/kvm-guest.ld
	$(KG_LD) $(KG_LDFLAGS) -o $@ $(KG_OBJ)

$(KG_OUT)/%.o: $(KG_SRC)/%.c $(KG_MK)
	@mkdir -p $(@D)
	$(KG_CC) $(KG_CFLAGS) -c -o $@ $<

$(KG_OUT)/%.o: $(KG_SRC)/%.S $(KG_MK)
	@mkdir -p $(@D)
	$(KG_CC) $(KG_CFLAGS) -c -o $@ $<

kvm-guest-clean:
	rm -rf $(KG_OUT)

-include $(KG_OBJ:.o=.d)

# Included before the top Makefile's first target: do not become its
# default goal.
ifeq ($(KG_SAVED_GOAL),)
ifneq ($(KG_INCLUDED),)
.DEFAULT_GOAL :=
endif
endif
