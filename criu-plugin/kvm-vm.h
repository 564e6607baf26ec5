/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm-vm: the VM-wide state KVM's ioctls give (in-kernel PIC and IOAPIC,
 * PIT, kvmclock), and the steps that build a VM again: create it with the
 * same type, VMX's TSS and identity-map addresses, its irqchip and PIT, its
 * memslots, coalesced zones, GSI routes, irqfds and ioeventfds.
 */
#ifndef CRIU_QEMU_KVM_VM_H
#define CRIU_QEMU_KVM_VM_H

#include "qemu-kvm.pb-c.h"

struct kvm_exec;

/* KVM_GET_IRQCHIP x3, KVM_GET_PIT2, KVM_GET_CLOCK into e. 0 or -errno. */
int kvm_vm_capture(struct kvm_exec *x, int vm_fd, KvmVmEntry *e);

/*
 * KVM_CREATE_VM(e->vm_type) from the process's /dev/kvm fd kvm_fd: the new
 * VM's fd in that process, or -errno.
 */
long kvm_vm_create(struct kvm_exec *x, int kvm_fd, const KvmVmEntry *e);

/*
 * VMX's TSS and identity-map addresses, where the image has them: right
 * after KVM_CREATE_VM (KVM refuses the identity map once a vCPU exists).
 */
int kvm_vm_set_vmx_addrs(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e);

/* The in-kernel irqchip and PIT the dumped VM had. 0 or -errno, logged. */
int kvm_vm_create_devices(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e);

/* QEMU's MSR filter (KVM_X86_SET_MSR_FILTER), after the settings that enable it. */
int kvm_vm_msr_filter(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e);

/* Memslots, coalesced zones, GSI routes, irqfds and ioeventfds as they were, on the same fd numbers. */
int kvm_vm_wire(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e);

/* After the vCPUs: PIT, PIC, IOAPIC and kvmclock state. */
int kvm_vm_restore_state(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e);

#endif
