/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The KVM state of a process that no ioctl returns (memslots, irqfds,
 * ioeventfds, the MSR filter, GSI routes, coalesced MMIO/PIO zones, vCPU
 * signal masks and guest debugging, some struct kvm and kvm_vmx fields), read from the kernel by the CO-RE
 * BPF iterator in bpf/kvm-iter.bpf.c. KVM answers VM ioctls only from the
 * VM's own mm, and has no "get" for these; the plugin runs in CRIU.
 *
 * Costs a BPF load (tens of ms): call it only for a process already seen
 * to hold a kvm-vm fd.
 */
#ifndef CRIU_QEMU_KVM_BPF_H
#define CRIU_QEMU_KVM_BPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/kvm.h>

#include "bpf/kvm-iter.h"

/* x86's KVM_USER_MEM_SLOTS: ids from here on are KVM's own slots (APIC access, TSS, identity map). */
#define KVM_BPF_X86_USER_MEM_SLOTS	32764

struct kvm_bpf_memslot {
	uint16_t as_id;
	uint16_t id;		/* KVM_SET_USER_MEMORY_REGION's slot is as_id << 16 | id */
	uint32_t flags;		/* KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, ... */
	uint64_t gpa;
	uint64_t size;
	uint64_t hva;
	bool internal;		/* KVM's own slot, not made by userspace */
};

struct kvm_bpf_irqfd {
	uint32_t gsi;
	int fd;			/* the target's fd of the eventfd */
	int resample_fd;	/* -1: none (no KVM_IRQFD_FLAG_RESAMPLE) */
};

struct kvm_bpf_ioeventfd {
	uint64_t addr;
	uint64_t datamatch;	/* meaningful with KVM_IOEVENTFD_FLAG_DATAMATCH */
	uint32_t len;
	uint32_t flags;		/* KVM_IOEVENTFD_FLAG_{DATAMATCH,PIO,VIRTIO_CCW_NOTIFY} */
	int fd;
};

struct kvm_bpf_vcpu {
	int fd;
	uint32_t id;
	bool sigset_active;	/* KVM_SET_SIGNAL_MASK was given a mask */
	uint64_t sigset;	/* that mask, less SIGKILL and SIGSTOP (KVM drops them) */
	uint64_t guest_debug;	/* KVM_SET_GUEST_DEBUG's flags in effect (gdbstub); 0: none */
};

/* VMX's own VM fields (struct kvm_vmx), what QEMU gave the VM's ioctls of the same names. */
struct kvm_bpf_vmx {
	bool present;		/* false: not read (no kvm_vmx in the kernel, or ambiguous) */
	uint64_t tss_addr;	/* KVM_SET_TSS_ADDR; 0: not set (or unrestricted guest) */
	uint64_t identity_map_addr;	/* KVM_SET_IDENTITY_MAP_ADDR; 0: not set yet */
};

/* KVM_X86_SET_MSR_FILTER's argument, bitmaps inline: kvm_bpf_msr_filter_arg() points to them. */
struct kvm_bpf_msr_range {
	uint32_t flags;		/* KVM_MSR_FILTER_READ, _WRITE */
	uint32_t nmsrs;
	uint32_t base;
	uint8_t bitmap[KVM_ITER_MSR_MAX_BITMAP];	/* BITS_TO_LONGS(nmsrs) * 8 bytes used, zero after */
};

struct kvm_bpf_msr_filter {
	bool present;		/* false: no filter (not the same as one with no ranges) */
	uint32_t flags;		/* KVM_MSR_FILTER_DEFAULT_ALLOW or _DENY */
	uint32_t nr_ranges;
	struct kvm_bpf_msr_range range[KVM_ITER_MSR_MAX_RANGES];
};

/*
 * Eventfds appear as the target's fd numbers: an eventfd at several fds
 * as its lowest. Arrays are in fd order, memslots by (as_id, id), zones in
 * KVM's order (that of their registration).
 */
struct kvm_kstate {
	int vm_fd;			/* the VM's lowest fd; -1: the process has no VM */
	bool vm_own_mm;			/* the VM was created by this process */
	unsigned int nr_as;		/* address spaces of this kernel's KVM */
	int *vm_fds;			/* every fd of the VM (dups), vm_fd first */
	unsigned int nr_vm_fds;
	int *kvm_fds;			/* fds of /dev/kvm */
	unsigned int nr_kvm_fds;
	struct kvm_bpf_vcpu *vcpus;
	unsigned int nr_vcpus;
	struct kvm_bpf_memslot *memslots;
	unsigned int nr_memslots;
	struct kvm_bpf_irqfd *irqfds;
	unsigned int nr_irqfds;
	struct kvm_bpf_ioeventfd *ioeventfds;
	unsigned int nr_ioeventfds;
	struct kvm_bpf_msr_filter msr_filter;
	/* KVM_SET_GSI_ROUTING's entries, by (gsi, type, irqchip, pin); none: no table */
	struct kvm_irq_routing_entry *routes;
	unsigned int nr_routes;
	/* KVM_REGISTER_COALESCED_MMIO's zones (.pio 1: a port range) */
	struct kvm_coalesced_mmio_zone *zones;
	unsigned int nr_zones;
	struct kvm_bpf_vmx vmx;
	/* struct kvm's scalar fields, by enum kvm_field (KVM_F_FIRST_OPTIONAL on) */
	uint64_t field[KVM_F_NR];
	uint64_t missing[(KVM_F_NR + 63) / 64];	/* a bit per field not in this kernel's BTF */
};

/*
 * Reads the KVM state of process pid (a pid of the initial pid namespace)
 * into *ks, which kvm_bpf_free() releases. Returns 0 (ks->vm_fd < 0 when
 * the process has no VM) or -errno, the reason logged.
 */
int kvm_bpf_read(pid_t pid, struct kvm_kstate *ks);

/*
 * Load the iterator now and keep it for the kvm_bpf_read()s until
 * kvm_bpf_release(): loading takes tens of milliseconds, a read well under
 * one. Without it each read loads and unloads the iterator itself.
 */
int kvm_bpf_prepare(void);
void kvm_bpf_release(void);
void kvm_bpf_free(struct kvm_kstate *ks);

/*
 * What a VM made now by KVM_CREATE_VM(0) has, read like kvm_bpf_read():
 * the fields QEMU changed are those that differ. Makes that VM in the
 * caller's process, which must have no VM of its own (kvm_bpf_read sees
 * one VM per process); the plugin runs in CRIU, which has none.
 */
int kvm_bpf_defaults(struct kvm_kstate *ks);

/* KVM_X86_SET_MSR_FILTER's argument for f (present), its bitmaps pointing into f. */
void kvm_bpf_msr_filter_arg(struct kvm_bpf_msr_filter *f, struct kvm_msr_filter *arg);

/* The iterator's records into *ks (kvm_bpf_read's second half, for tests). */
int kvm_bpf_decode(const struct kvm_rec *recs, size_t nr, struct kvm_kstate *ks);
/* "kvm_memory_slot.id_node" for KVM_F_SLOT_ID_NODE. */
const char *kvm_bpf_field_name(unsigned int id);
static inline bool kvm_bpf_has_field(const struct kvm_kstate *ks, enum kvm_field id)
{
	return !(ks->missing[id / 64] & (1ULL << (id % 64)));
}

#endif
