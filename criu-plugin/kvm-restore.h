/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm-restore: KVM's files and VM back in a restored QEMU
 * (Documentation/design.md, "KVM").
 */
#ifndef CRIU_QEMU_KVM_RESTORE_H
#define CRIU_QEMU_KVM_RESTORE_H

#include <stdbool.h>
#include <sys/types.h>

/* Restore init: read kvm-files.img if the checkpoint has one. 0 or -errno. */
int kvm_restore_init(void);

/*
 * RESTORE_EXT_FILE: for a KVM file of the dump, an fd to stand on its
 * number until the VM is rebuilt (/dev/kvm itself for /dev/kvm); else
 * -ENOTSUP.
 */
int kvm_restore_ext_file(int id);

/* Does the checkpoint hold a VM of this (restored) pid? */
bool kvm_restore_has_vm(pid_t pid);

/*
 * RESUME_DEVICES_LATE, threads still stopped: rebuild pid's VM inside it.
 * 0 (also when it had none) or -errno, logged; then the task must not run.
 */
int kvm_restore_resume(pid_t pid);

void kvm_restore_finish(void);

#endif
