/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm-caps: the VM-wide settings QEMU makes after KVM_CREATE_VM
 * (KVM_ENABLE_CAP and a few ioctls). KVM cannot tell them back, but each
 * leaves a field in struct kvm / kvm_arch that kvm-bpf reads: comparing it
 * with the same field of a fresh VM says what was set, and each rule here
 * says how to set it again. A changed field without a rule refuses the dump.
 */
#ifndef CRIU_QEMU_KVM_CAPS_H
#define CRIU_QEMU_KVM_CAPS_H

#include "kvm-bpf.h"
#include "qemu-kvm.pb-c.h"

struct kvm_exec;

/*
 * Dump: every field that differs from a fresh VM (fresh) must have a rule;
 * the fields go into e->fields by kernel name. 0, or -EOPNOTSUPP logged
 * with the field's name.
 */
int kvm_caps_save(const struct kvm_kstate *vm, const struct kvm_kstate *fresh, KvmVmEntry *e);

/* Restore, right after KVM_CREATE_VM: apply the saved settings. 0 or -errno, logged. */
int kvm_caps_rebuild(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e);

/* After the rebuild: does the new VM (read again with kvm-bpf) hold every saved value? */
int kvm_caps_verify(const KvmVmEntry *e, const struct kvm_kstate *rebuilt);

#endif
