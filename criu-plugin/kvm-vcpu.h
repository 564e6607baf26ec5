/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm-vcpu: the state of one KVM vCPU, read with KVM's get ioctls and
 * written back into a new vCPU with its set ioctls.
 *
 * Each piece is kept as the uapi struct KVM gives (linux/kvm.h, a stable
 * ABI): the image stores the bytes, the restore hands them back unchanged.
 */
#ifndef CRIU_QEMU_KVM_VCPU_H
#define CRIU_QEMU_KVM_VCPU_H

#include <stdbool.h>
#include <stdint.h>

struct kvm_exec;

/* A uapi struct as KVM returned it; len 0: this KVM has no such state. */
struct kvm_blob {
	void *data;
	uint32_t len;
};

/* The pieces, in the order they are read (QEMU's get order). */
enum kvm_vcpu_piece {
	KVP_EVENTS,	/* struct kvm_vcpu_events */
	KVP_MP_STATE,	/* struct kvm_mp_state: read before REGS, it may move CS:RIP */
	KVP_REGS,	/* struct kvm_regs */
	KVP_XSAVE,	/* struct kvm_xsave, KVM_CAP_XSAVE2 bytes */
	KVP_XCRS,	/* struct kvm_xcrs */
	KVP_SREGS,	/* struct kvm_sregs2 (KVM_CAP_SREGS2) or struct kvm_sregs */
	KVP_MSRS,	/* struct kvm_msrs + entries: every MSR KVM lists and can read */
	KVP_LAPIC,	/* struct kvm_lapic_state; only with an in-kernel irqchip */
	KVP_DEBUGREGS,	/* struct kvm_debugregs */
	KVP_CPUID,	/* struct kvm_cpuid2 + entries */
	KVP_NR,
};

struct kvm_vcpu_state {
	uint32_t id;			/* KVM_CREATE_VCPU argument */
	bool sregs2;			/* KVP_SREGS holds a struct kvm_sregs2 */
	uint32_t tsc_khz;		/* KVM_GET_TSC_KHZ */
	uint64_t mcg_cap;		/* KVM_X86_SETUP_MCE's argument; 0: none */
	struct kvm_blob piece[KVP_NR];
};

const char *kvm_vcpu_piece_name(enum kvm_vcpu_piece p);

/*
 * Read every piece of the vCPU behind fd (a fd number in the VM's process).
 * vm_fd answers KVM_CHECK_EXTENSION; msr_index is the MSR list of
 * KVM_GET_MSR_INDEX_LIST plus KVM_GET_MSR_FEATURE_INDEX_LIST (MSRs the
 * vCPU refuses to read are left out). 0 or -errno, logged.
 */
int kvm_vcpu_capture(struct kvm_exec *x, int vm_fd, int fd, const uint32_t *msr_index,
		     uint32_t nr_msr_index, struct kvm_vcpu_state *st);

/*
 * Write the state into the new vCPU fd, in the order KVM's dependencies
 * need (see kvm-vcpu.c). 0 or -errno, logged with the piece that failed.
 */
int kvm_vcpu_rebuild(struct kvm_exec *x, int fd, const struct kvm_vcpu_state *st);

void kvm_vcpu_state_free(struct kvm_vcpu_state *st);

/*
 * The MSRs to save: KVM_GET_MSR_INDEX_LIST and KVM_GET_MSR_FEATURE_INDEX_LIST
 * of /dev/kvm (system ioctls, answered in any process). *out is malloc'ed.
 */
int kvm_msr_index(int kvm_fd, uint32_t **out, uint32_t *nr);

#endif
