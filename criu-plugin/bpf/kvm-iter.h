/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Records of the kvm-iter BPF iterator (kvm-iter.bpf.c), read by
 * kvm-bpf.c: one fixed-size struct kvm_rec per fact, in the order the
 * iterator meets them (the target's fds in increasing order). Kernel
 * pointers (kvm, eventfd_ctx) are only keys to match records with each
 * other; kvm-bpf.c never hands them on.
 */
#ifndef CRIU_QEMU_KVM_ITER_H
#define CRIU_QEMU_KVM_ITER_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

enum kvm_rec_type {
	KVM_REC_DEV_KVM = 1,	/* an fd of /dev/kvm */
	KVM_REC_VM,		/* an fd of a VM (anon inode "kvm-vm") */
	KVM_REC_VM_FIELD,	/* a scalar field of that VM's struct kvm */
	KVM_REC_MEMSLOT,	/* an active memslot of that VM */
	KVM_REC_IRQFD,
	KVM_REC_IOEVENTFD,
	KVM_REC_VCPU,		/* an fd of a vCPU ("kvm-vcpu:N") */
	KVM_REC_EVENTFD,	/* an fd of an eventfd ("[eventfd]") */
	KVM_REC_MISSING,	/* the kernel's BTF lacks a field: field.id */
	KVM_REC_TRUNCATED,	/* a walk hit its bound: truncated.walk */
	KVM_REC_MSR_FILTER,	/* the VM has an MSR filter (none: no record) */
	KVM_REC_MSR_RANGE,	/* one of its ranges */
	KVM_REC_MSR_BITMAP,	/* 24 bytes of a range's bitmap; all-zero ones are left out */
	KVM_REC_ROUTE,		/* a GSI routing entry */
	KVM_REC_ZONE,		/* a coalesced MMIO or PIO zone */
	KVM_REC_VMX,		/* the VM's struct kvm_vmx fields (none: the kernel has no kvm_vmx) */
	KVM_REC_NR,
};

/*
 * An ioeventfd's bus, in numbers of our own (the kernel's enum kvm_bus is
 * not uapi). KVM_FAST_MMIO_BUS entries are not reported: they are the
 * twins KVM adds to length-0 MMIO ones.
 */
enum kvm_ioev_bus {
	KVM_IOEV_BUS_MMIO,
	KVM_IOEV_BUS_PIO,
	KVM_IOEV_BUS_VIRTIO_CCW_NOTIFY,
	KVM_IOEV_BUS_OTHER,
};

/* The walks of a VM, for KVM_REC_TRUNCATED. */
enum kvm_walk {
	KVM_WALK_MEMSLOTS,
	KVM_WALK_IRQFDS,
	KVM_WALK_IOEVENTFDS,
	KVM_WALK_MSR_FILTER,
	KVM_WALK_ROUTES,
	KVM_WALK_ZONES,
	KVM_WALK_NR,
};

/* KVM_MSR_FILTER_MAX_RANGES and _MAX_BITMAP_SIZE of asm/kvm.h, which BPF code cannot include */
#define KVM_ITER_MSR_MAX_RANGES		16
#define KVM_ITER_MSR_MAX_BITMAP		0x600
#define KVM_ITER_MSR_CHUNK		24	/* bitmap bytes per record */

/*
 * Every kernel field the iterator reads, with the name a missing one is
 * reported under. Those before KVM_F_FIRST_OPTIONAL are needed for the
 * walks; the rest are the VM's scalar fields (KVM_REC_VM_FIELD), each of
 * which the kernel may or may not have.
 */
#define KVM_ITER_FIELDS(X)							\
	X(KVM_F_MEMSLOTS,		"kvm.memslots")				\
	X(KVM_F_IRQFDS,			"kvm.irqfds.items")			\
	X(KVM_F_IOEVENTFDS,		"kvm.ioeventfds")			\
	X(KVM_F_MM,			"kvm.mm")				\
	X(KVM_F_SLOTS_ID_HASH,		"kvm_memslots.id_hash")			\
	X(KVM_F_SLOTS_NODE_IDX,		"kvm_memslots.node_idx")		\
	X(KVM_F_SLOT_ID_NODE,		"kvm_memory_slot.id_node")		\
	X(KVM_F_SLOT_BASE_GFN,		"kvm_memory_slot.base_gfn")		\
	X(KVM_F_SLOT_NPAGES,		"kvm_memory_slot.npages")		\
	X(KVM_F_SLOT_HVA,		"kvm_memory_slot.userspace_addr")	\
	X(KVM_F_SLOT_FLAGS,		"kvm_memory_slot.flags")		\
	X(KVM_F_SLOT_ID,		"kvm_memory_slot.id")			\
	X(KVM_F_SLOT_AS_ID,		"kvm_memory_slot.as_id")		\
	X(KVM_F_IRQFD_LIST,		"kvm_kernel_irqfd.list")		\
	X(KVM_F_IRQFD_GSI,		"kvm_kernel_irqfd.gsi")			\
	X(KVM_F_IRQFD_EVENTFD,		"kvm_kernel_irqfd.eventfd")		\
	X(KVM_F_IRQFD_RESAMPLEFD,	"kvm_kernel_irqfd.resamplefd")		\
	X(KVM_F_IOEVENTFD_LIST,		"_ioeventfd.list")			\
	X(KVM_F_IOEVENTFD_ADDR,		"_ioeventfd.addr")			\
	X(KVM_F_IOEVENTFD_LENGTH,	"_ioeventfd.length")			\
	X(KVM_F_IOEVENTFD_EVENTFD,	"_ioeventfd.eventfd")			\
	X(KVM_F_IOEVENTFD_DATAMATCH,	"_ioeventfd.datamatch")			\
	X(KVM_F_IOEVENTFD_BUS_IDX,	"_ioeventfd.bus_idx")			\
	X(KVM_F_IOEVENTFD_WILDCARD,	"_ioeventfd.wildcard")			\
	X(KVM_F_VCPU_ID,		"kvm_vcpu.vcpu_id")			\
	X(KVM_F_VCPU_KVM,		"kvm_vcpu.kvm")				\
	X(KVM_F_VCPU_SIGSET_ACTIVE,	"kvm_vcpu.sigset_active")		\
	X(KVM_F_VCPU_SIGSET,		"kvm_vcpu.sigset")			\
	X(KVM_F_VCPU_GUEST_DEBUG,	"kvm_vcpu.guest_debug")			\
	X(KVM_F_COALESCED_ZONES,	"kvm.coalesced_zones")			\
	X(KVM_F_ZONE_LIST,		"kvm_coalesced_mmio_dev.list")		\
	X(KVM_F_ZONE,			"kvm_coalesced_mmio_dev.zone")		\
	X(KVM_F_MSR_FILTER,		"kvm_arch.msr_filter")			\
	X(KVM_F_MSR_FILTER_COUNT,	"kvm_x86_msr_filter.count")		\
	X(KVM_F_MSR_FILTER_DEFAULT,	"kvm_x86_msr_filter.default_allow")	\
	X(KVM_F_MSR_FILTER_RANGES,	"kvm_x86_msr_filter.ranges")		\
	X(KVM_F_MSR_RANGE_FLAGS,	"msr_bitmap_range.flags")		\
	X(KVM_F_MSR_RANGE_NMSRS,	"msr_bitmap_range.nmsrs")		\
	X(KVM_F_MSR_RANGE_BASE,		"msr_bitmap_range.base")		\
	X(KVM_F_MSR_RANGE_BITMAP,	"msr_bitmap_range.bitmap")		\
	X(KVM_F_IRQ_ROUTING,		"kvm.irq_routing")			\
	X(KVM_F_RT_NR_ENTRIES,		"kvm_irq_routing_table.nr_rt_entries")	\
	X(KVM_F_RT_MAP,			"kvm_irq_routing_table.map")		\
	X(KVM_F_RTE_GSI,		"kvm_kernel_irq_routing_entry.gsi")	\
	X(KVM_F_RTE_TYPE,		"kvm_kernel_irq_routing_entry.type")	\
	X(KVM_F_RTE_LINK,		"kvm_kernel_irq_routing_entry.link")	\
	X(KVM_F_RTE_IRQCHIP,		"kvm_kernel_irq_routing_entry.irqchip")	\
	X(KVM_F_RTE_MSI,		"kvm_kernel_irq_routing_entry.msi")	\
	X(KVM_F_CREATED_VCPUS,		"kvm.created_vcpus")			\
	X(KVM_F_ONLINE_VCPUS,		"kvm.online_vcpus")			\
	X(KVM_F_MAX_VCPUS,		"kvm.max_vcpus")			\
	X(KVM_F_DIRTY_RING_SIZE,	"kvm.dirty_ring_size")			\
	X(KVM_F_MANUAL_DIRTY_LOG,	"kvm.manual_dirty_log_protect")		\
	X(KVM_F_VM_TYPE,		"kvm_arch.vm_type")			\
	X(KVM_F_IRQCHIP_MODE,		"kvm_arch.irqchip_mode")		\
	X(KVM_F_NR_RESERVED_IOAPIC_PINS, "kvm_arch.nr_reserved_ioapic_pins")	\
	X(KVM_F_X2APIC_FORMAT,		"kvm_arch.x2apic_format")		\
	X(KVM_F_X2APIC_BCAST_QUIRK_OFF,	"kvm_arch.x2apic_broadcast_quirk_disabled") \
	X(KVM_F_BSP_VCPU_ID,		"kvm_arch.bsp_vcpu_id")			\
	X(KVM_F_MAX_VCPU_IDS,		"kvm_arch.max_vcpu_ids")		\
	X(KVM_F_DISABLED_EXITS,		"kvm_arch.disabled_exits")		\
	X(KVM_F_DISABLED_QUIRKS,	"kvm_arch.disabled_quirks")		\
	X(KVM_F_USER_SPACE_MSR_MASK,	"kvm_arch.user_space_msr_mask")		\
	X(KVM_F_EXCEPTION_PAYLOAD,	"kvm_arch.exception_payload_enabled")	\
	X(KVM_F_TRIPLE_FAULT_EVENT,	"kvm_arch.triple_fault_event")		\
	X(KVM_F_BUS_LOCK_DETECTION,	"kvm_arch.bus_lock_detection_enabled")	\
	X(KVM_F_EXIT_ON_EMULATION_ERROR, "kvm_arch.exit_on_emulation_error")	\
	X(KVM_F_HYPERCALL_EXIT_ENABLED,	"kvm_arch.hypercall_exit_enabled")	\
	X(KVM_F_DEFAULT_TSC_KHZ,	"kvm_arch.default_tsc_khz")		\
	X(KVM_F_ENABLE_PMU,		"kvm_arch.enable_pmu")			\
	X(KVM_F_MSR_PLATFORM_INFO,	"kvm_arch.guest_can_read_msr_platform_info") \
	X(KVM_F_NOTIFY_WINDOW,		"kvm_arch.notify_window")		\
	X(KVM_F_NOTIFY_VMEXIT_FLAGS,	"kvm_arch.notify_vmexit_flags")

#define KVM_ITER_FIELD_ENUM(id, name) id,
enum kvm_field {
	KVM_ITER_FIELDS(KVM_ITER_FIELD_ENUM)
	KVM_F_NR,
};
#undef KVM_ITER_FIELD_ENUM

#define KVM_F_FIRST_OPTIONAL	KVM_F_CREATED_VCPUS

struct kvm_rec {
	__u32 type;		/* enum kvm_rec_type */
	__s32 fd;		/* the target's fd the record came from */
	union {
		struct {
			__u64 kvm;	/* key: struct kvm * */
			__u32 nr_as;	/* address spaces this kernel has */
			__u32 own_mm;	/* created by this process's mm */
		} vm;
		struct {
			__u32 id;	/* enum kvm_field */
			__u32 pad;
			__u64 value;
		} field;
		struct {
			__u64 base_gfn;
			__u64 npages;
			__u64 hva;
			__u32 flags;	/* KVM_MEM_* */
			__u16 id;
			__u16 as_id;
		} slot;
		struct {
			__u64 eventfd;		/* key: struct eventfd_ctx * */
			__u64 resamplefd;	/* key, 0: none */
			__u32 gsi;
		} irqfd;
		struct {
			__u64 addr;
			__u64 datamatch;
			__u64 eventfd;		/* key */
			__u32 len;
			__u8 bus;		/* enum kvm_ioev_bus */
			__u8 wildcard;
		} ioeventfd;
		struct {
			__u64 kvm;	/* key */
			__u32 id;
			__u32 sigset_active;
			__u64 sigset;	/* KVM_SET_SIGNAL_MASK's, when active */
			__u64 guest_debug;	/* KVM_GUESTDBG_* of KVM_SET_GUEST_DEBUG; 0: none */
		} vcpu;
		struct {
			__u32 count;	/* ranges */
			__u32 default_allow;
		} msr_filter;
		struct {
			__u32 index;	/* in kvm_x86_msr_filter.ranges[] */
			__u32 flags;	/* KVM_MSR_FILTER_READ, _WRITE */
			__u32 nmsrs;
			__u32 base;
			__u32 bitmap_size;	/* bytes the kernel holds: BITS_TO_LONGS(nmsrs) * 8 */
		} msr_range;
		struct {
			__u16 range;	/* msr_range.index */
			__u16 offset;	/* in the bitmap */
			__u32 len;
			__u8 bytes[KVM_ITER_MSR_CHUNK];
		} msr_bitmap;
		struct {
			__u32 gsi;
			__u32 type;	/* KVM_IRQ_ROUTING_*: the kernel keeps the uapi value */
			union {
				struct {
					__u32 irqchip;
					__u32 pin;	/* PIC slave pins as the kernel has them: + 8 */
				} irqchip;
				struct {
					__u32 address_lo;
					__u32 address_hi;
					__u32 data;
					__u32 flags;
					__u32 devid;
				} msi;
			};
		} route;
		struct {
			__u64 addr;
			__u32 size;
			__u32 pio;	/* 0: MMIO, 1: PIO (as struct kvm_coalesced_mmio_zone) */
		} zone;
		struct {
			__u64 tss_addr;		/* KVM_SET_TSS_ADDR's; 0: never set */
			__u64 identity_map_addr; /* KVM_SET_IDENTITY_MAP_ADDR's, or KVM's default */
			__u32 readable;		/* 0: another vendor's VM struct too: not read */
		} vmx;
		struct {
			__u64 ctx;	/* key */
		} eventfd;
		struct {
			__u32 walk;	/* enum kvm_walk */
		} truncated;
	};
};

#endif
