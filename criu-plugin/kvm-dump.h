/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm-dump: a frozen QEMU's KVM state at CHECKPOINT_DEVICES, saved as
 * kvm-PID.img, and KVM's mappings made dumpable for CRIU; KVM's files are
 * then claimed in DUMP_EXT_FILE (Documentation/design.md, "KVM").
 */
#ifndef CRIU_QEMU_KVM_DUMP_H
#define CRIU_QEMU_KVM_DUMP_H

#include <sys/types.h>

/*
 * PAUSE_DEVICES, before the freeze: if pid has a VM, do the slow parts of
 * reading KVM's state from the kernel now (loading the BPF iterator, a
 * fresh VM's fields), so that the frozen capture is only the reading.
 */
int kvm_dump_prepare(pid_t pid);

/*
 * Capture pid's VM if it has one. 0 (also for no VM), or -errno with the
 * reason logged; on failure QEMU is as it was.
 */
int kvm_dump_checkpoint(pid_t pid);

/* DUMP_EXT_FILE: 0 if lfd is a KVM file of a captured VM (noted for kvm-files.img), else -ENOTSUP. */
int kvm_dump_ext_file(int lfd, int id);

/* The dump is over: a failed one leaves no KVM images; forget everything. */
void kvm_dump_finish(int ret);

#endif
