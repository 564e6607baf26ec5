// SPDX-License-Identifier: GPL-2.0
/*
 * iter/task_file over one process: for each of its files that KVM or
 * eventfd made, the state no KVM ioctl returns (kvm-iter.h has the
 * records, README.md the kernel structures).
 *
 * KVM's types are declared here, with only the fields read and a ___cq
 * flavour: CO-RE matches them by name against the running kernel's BTF
 * (vmlinux, or the kvm module's), so the build needs no KVM in the build
 * host's vmlinux.h. Each field is checked with bpf_core_field_exists
 * first: one the kernel lacks is reported (KVM_REC_MISSING), not read.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "kvm-iter.h"

char LICENSE[] SEC("license") = "GPL";

/* The tgid whose files are read, set by kvm-bpf.c before each run. */
/* (not const: one loaded program serves every pid) */
int target_pid;

/*
 * The struct kvm whose lists were written whole: a VM seen at a second fd
 * is not walked again. Set only when every record fit: a walk that
 * overflowed the seq buffer is run again by the kernel in an empty one.
 */
__u64 walked_kvm;

#define ANON_INODE_FS_MAGIC	0x09041934
#define KVM_MISC_DEV		((10U << 20) | 232)	/* MKDEV(10, 232), kernel's encoding */
#define S_IFMT			00170000
#define S_IFCHR			0020000
#define KVM_IRQ_ROUTING_IRQCHIP	1	/* uapi linux/kvm.h */
#define KVM_IRQ_ROUTING_MSI	2

/* Bounds of the walks; a walk that meets its bound says so (KVM_REC_TRUNCATED). */
#define MAX_AS			4
#define MAX_SLOTS_STEPS		(1 << 16)	/* id_hash buckets + slots, per address space */
#define MAX_LIST_STEPS		(1 << 14)
#define MAX_GSIS		4096		/* x86's KVM_MAX_IRQ_ROUTES */
#define MAX_GSI_ENTRIES		4		/* per GSI: KVM allows one per irqchip (3), or one other */
#define MSR_CHUNKS		(KVM_ITER_MSR_MAX_BITMAP / KVM_ITER_MSR_CHUNK)

struct kvm_memslots___cq {
	struct hlist_head id_hash[128];
	int node_idx;
} __attribute__((preserve_access_index));

struct kvm_memory_slot___cq {
	struct hlist_node id_node[2];
	u64 base_gfn;
	unsigned long npages;
	unsigned long userspace_addr;
	u32 flags;
	short id;
	u16 as_id;
} __attribute__((preserve_access_index));

enum kvm_irqchip_mode___cq { KVM_IRQCHIP_NONE___cq };

enum kvm_bus___cq {
	KVM_MMIO_BUS___cq,
	KVM_PIO_BUS___cq,
	KVM_VIRTIO_CCW_NOTIFY_BUS___cq,
	KVM_FAST_MMIO_BUS___cq,
};

struct kvm_arch___cq {
	u8 vm_type;
	enum kvm_irqchip_mode___cq irqchip_mode;
	u8 nr_reserved_ioapic_pins;
	bool x2apic_format;
	bool x2apic_broadcast_quirk_disabled;
	u32 bsp_vcpu_id;
	u32 max_vcpu_ids;
	u64 disabled_exits;
	u64 disabled_quirks;
	u32 user_space_msr_mask;
	bool exception_payload_enabled;
	bool triple_fault_event;
	bool bus_lock_detection_enabled;
	bool exit_on_emulation_error;
	u32 hypercall_exit_enabled;
	u32 default_tsc_khz;
	bool enable_pmu;
	bool guest_can_read_msr_platform_info;
	u32 notify_window;
	u32 notify_vmexit_flags;
	struct kvm_x86_msr_filter___cq *msr_filter;
} __attribute__((preserve_access_index));

struct msr_bitmap_range___cq {
	u32 flags;
	u32 nmsrs;
	u32 base;
	unsigned long *bitmap;
} __attribute__((preserve_access_index));

struct kvm_x86_msr_filter___cq {
	u8 count;
	bool default_allow:1;
	struct msr_bitmap_range___cq ranges[16];
} __attribute__((preserve_access_index));

struct kvm_irq_routing_table___cq {
	u32 nr_rt_entries;
	struct hlist_head map[0];
} __attribute__((preserve_access_index));

struct kvm_kernel_irq_routing_entry___cq {
	u32 gsi;
	u32 type;
	union {
		struct {
			unsigned int irqchip;
			unsigned int pin;
		} irqchip;
		struct {
			u32 address_lo;
			u32 address_hi;
			u32 data;
			u32 flags;
			u32 devid;
		} msi;
	};
	struct hlist_node link;
} __attribute__((preserve_access_index));

struct kvm___cq {
	struct mm_struct *mm;
	struct kvm_memslots___cq *memslots[2];
	int max_vcpus;
	int created_vcpus;
	atomic_t online_vcpus;
	struct {
		struct list_head items;
	} irqfds;
	struct list_head ioeventfds;
	struct kvm_irq_routing_table___cq *irq_routing;
	struct kvm_arch___cq arch;
	u32 dirty_ring_size;
	u64 manual_dirty_log_protect;
	struct list_head coalesced_zones;
} __attribute__((preserve_access_index));

struct kvm_coalesced_mmio_zone___cq {
	u64 addr;
	u32 size;
	union {
		u32 pad;
		u32 pio;
	};
} __attribute__((preserve_access_index));

struct kvm_coalesced_mmio_dev___cq {
	struct list_head list;
	struct kvm_coalesced_mmio_zone___cq zone;
} __attribute__((preserve_access_index));

/*
 * VMX's VM (kvm_intel): struct kvm is its member kvm. Kernels without
 * kvm_intel's BTF have no such type; the other vendors' are only tested
 * for, so that a kernel with two cannot make us read the wrong one.
 */
struct kvm_vmx___cq {
	struct kvm___cq kvm;
	unsigned int tss_addr;
	u64 ept_identity_map_addr;
} __attribute__((preserve_access_index));

struct kvm_svm___cq {
	struct kvm___cq kvm;
} __attribute__((preserve_access_index));

struct kvm_pvm___cq {
	struct kvm___cq kvm;
} __attribute__((preserve_access_index));

struct kvm_kernel_irqfd___cq {
	int gsi;
	struct eventfd_ctx *resamplefd;
	struct eventfd_ctx *eventfd;
	struct list_head list;
} __attribute__((preserve_access_index));

struct _ioeventfd___cq {
	struct list_head list;
	u64 addr;
	int length;
	struct eventfd_ctx *eventfd;
	u64 datamatch;
	u8 bus_idx;
	bool wildcard;
} __attribute__((preserve_access_index));

struct kvm_vcpu___cq {
	struct kvm___cq *kvm;
	int vcpu_id;
	int sigset_active;
	sigset_t sigset;
	unsigned long guest_debug;
} __attribute__((preserve_access_index));

/* An integer field of any size the kernel gave it (bool, u8, int, enum, u64...). */
#define READ_INT(p, field)	BPF_CORE_READ_BITFIELD_PROBED(p, field)

/* The state of one walk, shared with its bpf_loop callback. */
struct walk {
	struct seq_file *seq;
	int fd;
	bool done;
	bool overflow;
	void *node;			/* the current hlist/list node */
	void *end;			/* list: the head; hlist: unused */
	/* memslots and routes: hlist buckets */
	struct hlist_head *buckets;
	unsigned int bucket, nr_buckets;
	unsigned long node_off;		/* offset of the hlist_node in an entry */
	bool cut;			/* routes: a GSI's walk stopped short */
	/* MSR filter */
	void *ranges;			/* &filter->ranges[0] */
	unsigned int nr_ranges;
	unsigned int range_size;	/* the kernel's sizeof(struct msr_bitmap_range) */
	unsigned long bitmap;		/* the current range's bitmap */
	unsigned int bitmap_size;
};

/* Writes r; false, and w->overflow, when the seq buffer is full. */
static __always_inline bool emit(struct walk *w, struct kvm_rec *r)
{
	r->fd = w->fd;
	if (bpf_seq_write(w->seq, r, sizeof(*r)) == 0)
		return true;
	w->overflow = true;
	return false;
}

static __always_inline void emit_simple(struct walk *w, __u32 type, __u32 id)
{
	struct kvm_rec r;

	__builtin_memset(&r, 0, sizeof(r));
	r.type = type;
	r.field.id = id;	/* field.id and truncated.walk share the place */
	emit(w, &r);
}

/* Reports field id missing when !exists; returns exists. */
static __always_inline bool need(struct walk *w, bool exists, __u32 id)
{
	if (!exists)
		emit_simple(w, KVM_REC_MISSING, id);
	return exists;
}

#define NEED(ok, w, type, field, id) \
	(ok) &= need(w, bpf_core_field_exists(type, field), id)

#define VM_FIELD(w, kvm, field, id)						\
	do {									\
		if (need(w, bpf_core_field_exists((kvm)->field), id))		\
			emit_field(w, id, READ_INT(kvm, field));		\
	} while (0)

static __always_inline void emit_field(struct walk *w, __u32 id, __u64 value)
{
	struct kvm_rec r;

	__builtin_memset(&r, 0, sizeof(r));
	r.type = KVM_REC_VM_FIELD;
	r.field.id = id;
	r.field.value = value;
	emit(w, &r);
}

static void emit_vm_fields(struct walk *w, struct kvm___cq *kvm)
{
	VM_FIELD(w, kvm, created_vcpus, KVM_F_CREATED_VCPUS);
	VM_FIELD(w, kvm, online_vcpus.counter, KVM_F_ONLINE_VCPUS);
	VM_FIELD(w, kvm, max_vcpus, KVM_F_MAX_VCPUS);
	VM_FIELD(w, kvm, dirty_ring_size, KVM_F_DIRTY_RING_SIZE);
	VM_FIELD(w, kvm, manual_dirty_log_protect, KVM_F_MANUAL_DIRTY_LOG);
	VM_FIELD(w, kvm, arch.vm_type, KVM_F_VM_TYPE);
	VM_FIELD(w, kvm, arch.irqchip_mode, KVM_F_IRQCHIP_MODE);
	VM_FIELD(w, kvm, arch.nr_reserved_ioapic_pins, KVM_F_NR_RESERVED_IOAPIC_PINS);
	VM_FIELD(w, kvm, arch.x2apic_format, KVM_F_X2APIC_FORMAT);
	VM_FIELD(w, kvm, arch.x2apic_broadcast_quirk_disabled, KVM_F_X2APIC_BCAST_QUIRK_OFF);
	VM_FIELD(w, kvm, arch.bsp_vcpu_id, KVM_F_BSP_VCPU_ID);
	VM_FIELD(w, kvm, arch.max_vcpu_ids, KVM_F_MAX_VCPU_IDS);
	VM_FIELD(w, kvm, arch.disabled_exits, KVM_F_DISABLED_EXITS);
	VM_FIELD(w, kvm, arch.disabled_quirks, KVM_F_DISABLED_QUIRKS);
	VM_FIELD(w, kvm, arch.user_space_msr_mask, KVM_F_USER_SPACE_MSR_MASK);
	VM_FIELD(w, kvm, arch.exception_payload_enabled, KVM_F_EXCEPTION_PAYLOAD);
	VM_FIELD(w, kvm, arch.triple_fault_event, KVM_F_TRIPLE_FAULT_EVENT);
	VM_FIELD(w, kvm, arch.bus_lock_detection_enabled, KVM_F_BUS_LOCK_DETECTION);
	VM_FIELD(w, kvm, arch.exit_on_emulation_error, KVM_F_EXIT_ON_EMULATION_ERROR);
	VM_FIELD(w, kvm, arch.hypercall_exit_enabled, KVM_F_HYPERCALL_EXIT_ENABLED);
	VM_FIELD(w, kvm, arch.default_tsc_khz, KVM_F_DEFAULT_TSC_KHZ);
	VM_FIELD(w, kvm, arch.enable_pmu, KVM_F_ENABLE_PMU);
	VM_FIELD(w, kvm, arch.guest_can_read_msr_platform_info, KVM_F_MSR_PLATFORM_INFO);
	VM_FIELD(w, kvm, arch.notify_window, KVM_F_NOTIFY_WINDOW);
	VM_FIELD(w, kvm, arch.notify_vmexit_flags, KVM_F_NOTIFY_VMEXIT_FLAGS);
}

/*
 * One step of a memslots walk: the next slot of the current id_hash
 * bucket, or on to the next bucket.
 */
static long memslot_step(__u32 i, struct walk *w)
{
	struct kvm_memory_slot___cq *slot;
	struct kvm_rec r;

	if (!w->node) {
		if (w->bucket >= w->nr_buckets) {
			w->done = true;
			return 1;
		}
		/* A read that faults ends the walk short: reported, not taken for an end. */
		if (bpf_probe_read_kernel(&w->node, sizeof(w->node), &w->buckets[w->bucket].first))
			return 1;
		w->bucket++;
		return 0;
	}
	slot = (void *)w->node - w->node_off;
	__builtin_memset(&r, 0, sizeof(r));
	r.type = KVM_REC_MEMSLOT;
	r.slot.base_gfn = READ_INT(slot, base_gfn);
	r.slot.npages = READ_INT(slot, npages);
	r.slot.hva = READ_INT(slot, userspace_addr);
	r.slot.flags = READ_INT(slot, flags);
	r.slot.id = READ_INT(slot, id);
	r.slot.as_id = READ_INT(slot, as_id);
	if (!emit(w, &r))
		return 1;
	if (bpf_probe_read_kernel(&w->node, sizeof(w->node), &((struct hlist_node *)w->node)->next))
		return 1;
	return 0;
}

static bool memslots_fields_exist(struct walk *w)
{
	bool ok = true;

	NEED(ok, w, struct kvm___cq, memslots, KVM_F_MEMSLOTS);
	NEED(ok, w, struct kvm_memslots___cq, id_hash, KVM_F_SLOTS_ID_HASH);
	NEED(ok, w, struct kvm_memslots___cq, node_idx, KVM_F_SLOTS_NODE_IDX);
	NEED(ok, w, struct kvm_memory_slot___cq, id_node, KVM_F_SLOT_ID_NODE);
	NEED(ok, w, struct kvm_memory_slot___cq, base_gfn, KVM_F_SLOT_BASE_GFN);
	NEED(ok, w, struct kvm_memory_slot___cq, npages, KVM_F_SLOT_NPAGES);
	NEED(ok, w, struct kvm_memory_slot___cq, userspace_addr, KVM_F_SLOT_HVA);
	NEED(ok, w, struct kvm_memory_slot___cq, flags, KVM_F_SLOT_FLAGS);
	NEED(ok, w, struct kvm_memory_slot___cq, id, KVM_F_SLOT_ID);
	NEED(ok, w, struct kvm_memory_slot___cq, as_id, KVM_F_SLOT_AS_ID);
	return ok;
}

/* The active memslots of address space as: kvm->memslots[as]. */
static bool walk_memslots_as(struct walk *w, struct kvm___cq *kvm, unsigned int as)
{
	struct kvm_memslots___cq *slots = NULL;
	void *slots_ptrs = __builtin_preserve_access_index(&kvm->memslots[0]);
	int node_idx;

	if (bpf_probe_read_kernel(&slots, sizeof(slots), slots_ptrs + as * sizeof(slots)))
		return false;
	if (!slots)
		return true;
	node_idx = READ_INT(slots, node_idx) & 1;
	w->buckets = __builtin_preserve_access_index(&slots->id_hash[0]);
	w->nr_buckets = bpf_core_field_size(slots->id_hash) / sizeof(struct hlist_head);
	w->bucket = 0;
	w->node = NULL;
	w->node_off = bpf_core_field_offset(struct kvm_memory_slot___cq, id_node) +
		      node_idx * sizeof(struct hlist_node);
	w->done = false;
	bpf_loop(MAX_SLOTS_STEPS, memslot_step, w, 0);
	return w->done;
}

static void walk_memslots(struct walk *w, struct kvm___cq *kvm)
{
	unsigned int as, nr_as = bpf_core_field_size(kvm->memslots) / sizeof(void *);

	if (!memslots_fields_exist(w))
		return;
	for (as = 0; as < nr_as && as < MAX_AS; as++) {
		if (!walk_memslots_as(w, kvm, as)) {
			if (!w->overflow)
				emit_simple(w, KVM_REC_TRUNCATED, KVM_WALK_MEMSLOTS);
			return;
		}
	}
}

/*
 * Moves w->node to its list successor; done when back at the head. A
 * fault or a NULL (no list_head has one) ends the walk short.
 */
static __always_inline bool list_next(struct walk *w)
{
	if (bpf_probe_read_kernel(&w->node, sizeof(w->node), &((struct list_head *)w->node)->next) ||
	    !w->node)
		return false;
	if (w->node == w->end) {
		w->done = true;
		return false;
	}
	return true;
}

static long irqfd_step(__u32 i, struct walk *w)
{
	struct kvm_kernel_irqfd___cq *irqfd;
	struct kvm_rec r;

	if (!list_next(w))
		return 1;
	irqfd = w->node - bpf_core_field_offset(struct kvm_kernel_irqfd___cq, list);
	__builtin_memset(&r, 0, sizeof(r));
	r.type = KVM_REC_IRQFD;
	r.irqfd.gsi = READ_INT(irqfd, gsi);
	r.irqfd.eventfd = (__u64)BPF_CORE_READ(irqfd, eventfd);
	r.irqfd.resamplefd = (__u64)BPF_CORE_READ(irqfd, resamplefd);
	if (!emit(w, &r))
		return 1;
	return 0;
}

/* The running kernel's value of a kvm_bus enumerator, or otherwise when it has none. */
#define enum_value_or(e, otherwise) \
	(bpf_core_enum_value_exists(enum kvm_bus___cq, e) ? (long)bpf_core_enum_value(enum kvm_bus___cq, e) : (otherwise))

static long ioeventfd_step(__u32 i, struct walk *w)
{
	struct _ioeventfd___cq *p;
	struct kvm_rec r;
	long bus;

	if (!list_next(w))
		return 1;
	p = w->node - bpf_core_field_offset(struct _ioeventfd___cq, list);
	bus = READ_INT(p, bus_idx);
	/* KVM's own twin of a length-0 MMIO one: KVM_IOEVENTFD makes both. */
	if (bus == enum_value_or(KVM_FAST_MMIO_BUS___cq, -1))
		return 0;
	__builtin_memset(&r, 0, sizeof(r));
	r.type = KVM_REC_IOEVENTFD;
	if (bus == enum_value_or(KVM_MMIO_BUS___cq, -1))
		r.ioeventfd.bus = KVM_IOEV_BUS_MMIO;
	else if (bus == enum_value_or(KVM_PIO_BUS___cq, -1))
		r.ioeventfd.bus = KVM_IOEV_BUS_PIO;
	else if (bus == enum_value_or(KVM_VIRTIO_CCW_NOTIFY_BUS___cq, -1))
		r.ioeventfd.bus = KVM_IOEV_BUS_VIRTIO_CCW_NOTIFY;
	else
		r.ioeventfd.bus = KVM_IOEV_BUS_OTHER;
	r.ioeventfd.addr = READ_INT(p, addr);
	r.ioeventfd.len = READ_INT(p, length);
	r.ioeventfd.datamatch = READ_INT(p, datamatch);
	r.ioeventfd.eventfd = (__u64)BPF_CORE_READ(p, eventfd);
	r.ioeventfd.wildcard = READ_INT(p, wildcard);
	if (!emit(w, &r))
		return 1;
	return 0;
}

/* Walks the list at head with step, which emits one record per entry. */
static void walk_list(struct walk *w, void *head, void *step, __u32 walk)
{
	w->node = head;
	w->end = head;
	w->done = false;
	bpf_loop(MAX_LIST_STEPS, step, w, 0);
	if (!w->done && !w->overflow)
		emit_simple(w, KVM_REC_TRUNCATED, walk);
}

static void walk_irqfds(struct walk *w, struct kvm___cq *kvm)
{
	bool ok = true;

	NEED(ok, w, struct kvm___cq, irqfds.items, KVM_F_IRQFDS);
	NEED(ok, w, struct kvm_kernel_irqfd___cq, list, KVM_F_IRQFD_LIST);
	NEED(ok, w, struct kvm_kernel_irqfd___cq, gsi, KVM_F_IRQFD_GSI);
	NEED(ok, w, struct kvm_kernel_irqfd___cq, eventfd, KVM_F_IRQFD_EVENTFD);
	NEED(ok, w, struct kvm_kernel_irqfd___cq, resamplefd, KVM_F_IRQFD_RESAMPLEFD);
	if (ok)
		walk_list(w, __builtin_preserve_access_index(&kvm->irqfds.items), irqfd_step,
			  KVM_WALK_IRQFDS);
}

static void walk_ioeventfds(struct walk *w, struct kvm___cq *kvm)
{
	bool ok = true;

	NEED(ok, w, struct kvm___cq, ioeventfds, KVM_F_IOEVENTFDS);
	NEED(ok, w, struct _ioeventfd___cq, list, KVM_F_IOEVENTFD_LIST);
	NEED(ok, w, struct _ioeventfd___cq, addr, KVM_F_IOEVENTFD_ADDR);
	NEED(ok, w, struct _ioeventfd___cq, length, KVM_F_IOEVENTFD_LENGTH);
	NEED(ok, w, struct _ioeventfd___cq, eventfd, KVM_F_IOEVENTFD_EVENTFD);
	NEED(ok, w, struct _ioeventfd___cq, datamatch, KVM_F_IOEVENTFD_DATAMATCH);
	NEED(ok, w, struct _ioeventfd___cq, bus_idx, KVM_F_IOEVENTFD_BUS_IDX);
	NEED(ok, w, struct _ioeventfd___cq, wildcard, KVM_F_IOEVENTFD_WILDCARD);
	if (ok)
		walk_list(w, __builtin_preserve_access_index(&kvm->ioeventfds), ioeventfd_step,
			  KVM_WALK_IOEVENTFDS);
}

static __always_inline long read_chunk(__u8 *dst, unsigned int len, const void *src)
{
	if (len == 24)
		return bpf_probe_read_kernel(dst, 24, src);
	if (len == 16)
		return bpf_probe_read_kernel(dst, 16, src);
	return bpf_probe_read_kernel(dst, 8, src);
}

/*
 * One step of the MSR filter walk, step i: range i / MSR_CHUNKS, and its
 * bitmap chunk i % MSR_CHUNKS. Chunk 0 also writes the range.
 */
static long msr_filter_step(__u32 i, struct walk *w)
{
	unsigned int index = i / MSR_CHUNKS, chunk = i % MSR_CHUNKS, off, len;
	struct msr_bitmap_range___cq *range;
	__u64 *word;
	struct kvm_rec r;

	if (index >= w->nr_ranges) {
		w->done = true;
		return 1;
	}
	__builtin_memset(&r, 0, sizeof(r));
	if (chunk == 0) {
		range = w->ranges + index * w->range_size;
		r.type = KVM_REC_MSR_RANGE;
		r.msr_range.index = index;
		r.msr_range.flags = READ_INT(range, flags);
		r.msr_range.nmsrs = READ_INT(range, nmsrs);
		r.msr_range.base = READ_INT(range, base);
		/* What kvm_add_msr_filter() copied from userspace. */
		w->bitmap_size = (r.msr_range.nmsrs + 63) / 64 * 8;
		r.msr_range.bitmap_size = w->bitmap_size;
		w->bitmap = (unsigned long)BPF_CORE_READ(range, bitmap);
		if (w->bitmap_size > KVM_ITER_MSR_MAX_BITMAP || !w->bitmap)
			return 1;
		if (!emit(w, &r))
			return 1;
		__builtin_memset(&r, 0, sizeof(r));
	}
	off = chunk * KVM_ITER_MSR_CHUNK;
	if (off >= w->bitmap_size)
		return 0;
	/* 8, 16 or 24 bytes (sizes are in longs): constant sizes, which the verifier can bound */
	len = w->bitmap_size - off;
	if (len >= 24)
		len = 24;
	else if (len >= 16)
		len = 16;
	else
		len = 8;
	if (read_chunk(r.msr_bitmap.bytes, len, (void *)w->bitmap + off))
		return 1;
	/* Zero chunks are the decoder's default: a filter's bitmaps are mostly zero or short. */
	word = (__u64 *)r.msr_bitmap.bytes;
	if (!word[0] && !word[1] && !word[2])
		return 0;
	r.type = KVM_REC_MSR_BITMAP;
	r.msr_bitmap.range = index;
	r.msr_bitmap.offset = off;
	r.msr_bitmap.len = len;
	if (!emit(w, &r))
		return 1;
	return 0;
}

static bool msr_filter_fields_exist(struct walk *w)
{
	bool ok = true;

	NEED(ok, w, struct kvm___cq, arch.msr_filter, KVM_F_MSR_FILTER);
	NEED(ok, w, struct kvm_x86_msr_filter___cq, count, KVM_F_MSR_FILTER_COUNT);
	NEED(ok, w, struct kvm_x86_msr_filter___cq, default_allow, KVM_F_MSR_FILTER_DEFAULT);
	NEED(ok, w, struct kvm_x86_msr_filter___cq, ranges, KVM_F_MSR_FILTER_RANGES);
	NEED(ok, w, struct msr_bitmap_range___cq, flags, KVM_F_MSR_RANGE_FLAGS);
	NEED(ok, w, struct msr_bitmap_range___cq, nmsrs, KVM_F_MSR_RANGE_NMSRS);
	NEED(ok, w, struct msr_bitmap_range___cq, base, KVM_F_MSR_RANGE_BASE);
	NEED(ok, w, struct msr_bitmap_range___cq, bitmap, KVM_F_MSR_RANGE_BITMAP);
	return ok;
}

/* kvm->arch.msr_filter: none (NULL) gives no record, an empty one a count of 0. */
static void walk_msr_filter(struct walk *w, struct kvm___cq *kvm)
{
	struct kvm_x86_msr_filter___cq *f;
	struct kvm_rec r;

	if (!msr_filter_fields_exist(w))
		return;
	f = BPF_CORE_READ(kvm, arch.msr_filter);
	if (!f)
		return;
	__builtin_memset(&r, 0, sizeof(r));
	r.type = KVM_REC_MSR_FILTER;
	r.msr_filter.count = READ_INT(f, count);
	r.msr_filter.default_allow = READ_INT(f, default_allow);
	if (!emit(w, &r))
		return;
	w->ranges = __builtin_preserve_access_index(&f->ranges[0]);
	w->range_size = bpf_core_type_size(struct msr_bitmap_range___cq);
	w->nr_ranges = r.msr_filter.count;
	w->done = false;
	if (w->nr_ranges <= KVM_ITER_MSR_MAX_RANGES)
		bpf_loop(KVM_ITER_MSR_MAX_RANGES * MSR_CHUNKS + 1, msr_filter_step, w, 0);
	if (!w->done && !w->overflow)
		emit_simple(w, KVM_REC_TRUNCATED, KVM_WALK_MSR_FILTER);
}

/* Writes the routing entry at hlist node n. */
static __always_inline bool emit_route(struct walk *w, void *n)
{
	struct kvm_kernel_irq_routing_entry___cq *e = n - w->node_off;
	struct kvm_rec r;

	__builtin_memset(&r, 0, sizeof(r));
	r.type = KVM_REC_ROUTE;
	r.route.gsi = READ_INT(e, gsi);
	r.route.type = READ_INT(e, type);
	if (r.route.type == KVM_IRQ_ROUTING_IRQCHIP) {
		r.route.irqchip.irqchip = READ_INT(e, irqchip.irqchip);
		r.route.irqchip.pin = READ_INT(e, irqchip.pin);
	} else if (r.route.type == KVM_IRQ_ROUTING_MSI) {
		r.route.msi.address_lo = READ_INT(e, msi.address_lo);
		r.route.msi.address_hi = READ_INT(e, msi.address_hi);
		r.route.msi.data = READ_INT(e, msi.data);
		r.route.msi.flags = READ_INT(e, msi.flags);
		r.route.msi.devid = READ_INT(e, msi.devid);
	}	/* other types: the decoder refuses them by type */
	return emit(w, &r);
}

/*
 * The entries of GSI i: the hlist map[i]. Driven by bpf_loop's index, not
 * a counter of ours, so the verifier need not follow 4096 GSIs one by one.
 */
static long gsi_step(__u32 i, struct walk *w)
{
	void *n;

	if (bpf_probe_read_kernel(&n, sizeof(n), &w->buckets[i].first))
		goto cut;
	for (int k = 0; k < MAX_GSI_ENTRIES && n; k++) {
		if (!emit_route(w, n))
			goto cut;
		if (bpf_probe_read_kernel(&n, sizeof(n), &((struct hlist_node *)n)->next))
			goto cut;
	}
	if (!n)
		return 0;
cut:
	w->cut = true;
	return 1;
}

#define RTE_EXISTS(field) bpf_core_field_exists(struct kvm_kernel_irq_routing_entry___cq, field)

static bool routes_fields_exist(struct walk *w)
{
	bool ok = true;

	NEED(ok, w, struct kvm___cq, irq_routing, KVM_F_IRQ_ROUTING);
	NEED(ok, w, struct kvm_irq_routing_table___cq, nr_rt_entries, KVM_F_RT_NR_ENTRIES);
	NEED(ok, w, struct kvm_irq_routing_table___cq, map, KVM_F_RT_MAP);
	NEED(ok, w, struct kvm_kernel_irq_routing_entry___cq, gsi, KVM_F_RTE_GSI);
	NEED(ok, w, struct kvm_kernel_irq_routing_entry___cq, type, KVM_F_RTE_TYPE);
	NEED(ok, w, struct kvm_kernel_irq_routing_entry___cq, link, KVM_F_RTE_LINK);
	ok &= need(w, RTE_EXISTS(irqchip.irqchip) && RTE_EXISTS(irqchip.pin), KVM_F_RTE_IRQCHIP);
	ok &= need(w, RTE_EXISTS(msi.address_lo) && RTE_EXISTS(msi.address_hi) &&
		   RTE_EXISTS(msi.data) && RTE_EXISTS(msi.flags) && RTE_EXISTS(msi.devid),
		   KVM_F_RTE_MSI);
	return ok;
}

/* Every entry of kvm->irq_routing, GSI by GSI (map[gsi] is an hlist of its entries). */
static void walk_routes(struct walk *w, struct kvm___cq *kvm)
{
	struct kvm_irq_routing_table___cq *rt;
	bool done = false;
	long nr;

	if (!routes_fields_exist(w))
		return;
	rt = BPF_CORE_READ(kvm, irq_routing);
	if (!rt)
		return;
	nr = READ_INT(rt, nr_rt_entries);
	w->buckets = (void *)rt + bpf_core_field_offset(struct kvm_irq_routing_table___cq, map);
	w->node_off = bpf_core_field_offset(struct kvm_kernel_irq_routing_entry___cq, link);
	w->cut = false;
	if (nr <= MAX_GSIS)
		done = bpf_loop(nr, gsi_step, w, 0) == nr && !w->cut;
	if (!done && !w->overflow)
		emit_simple(w, KVM_REC_TRUNCATED, KVM_WALK_ROUTES);
}

static long zone_step(__u32 i, struct walk *w)
{
	struct kvm_coalesced_mmio_dev___cq *dev;
	struct kvm_rec r;

	if (!list_next(w))
		return 1;
	dev = w->node - bpf_core_field_offset(struct kvm_coalesced_mmio_dev___cq, list);
	__builtin_memset(&r, 0, sizeof(r));
	r.type = KVM_REC_ZONE;
	r.zone.addr = READ_INT(dev, zone.addr);
	r.zone.size = READ_INT(dev, zone.size);
	r.zone.pio = READ_INT(dev, zone.pio);
	if (!emit(w, &r))
		return 1;
	return 0;
}

#define ZONE_EXISTS(field) bpf_core_field_exists(struct kvm_coalesced_mmio_dev___cq, field)

/* kvm->coalesced_zones: KVM_REGISTER_COALESCED_MMIO's zones, in the order they were registered. */
static void walk_zones(struct walk *w, struct kvm___cq *kvm)
{
	bool ok = true;

	NEED(ok, w, struct kvm___cq, coalesced_zones, KVM_F_COALESCED_ZONES);
	NEED(ok, w, struct kvm_coalesced_mmio_dev___cq, list, KVM_F_ZONE_LIST);
	ok &= need(w, ZONE_EXISTS(zone.addr) && ZONE_EXISTS(zone.size) && ZONE_EXISTS(zone.pio),
		   KVM_F_ZONE);
	if (ok)
		walk_list(w, __builtin_preserve_access_index(&kvm->coalesced_zones), zone_step,
			  KVM_WALK_ZONES);
}

/*
 * The TSS and identity-map addresses QEMU gave a VMX VM (KVM_SET_TSS_ADDR,
 * KVM_SET_IDENTITY_MAP_ADDR): no record when the kernel has no kvm_vmx,
 * one marked unreadable when it also has another vendor's VM struct (both
 * vendors built in), as nothing here tells which this VM is.
 */
static void emit_vmx(struct walk *w, struct kvm___cq *kvm)
{
	struct kvm_vmx___cq *vmx;
	struct kvm_rec r;

	if (!bpf_core_type_exists(struct kvm_vmx___cq))
		return;
	__builtin_memset(&r, 0, sizeof(r));
	r.type = KVM_REC_VMX;
	if (!bpf_core_type_exists(struct kvm_svm___cq) && !bpf_core_type_exists(struct kvm_pvm___cq) &&
	    bpf_core_field_exists(struct kvm_vmx___cq, kvm) &&
	    bpf_core_field_exists(struct kvm_vmx___cq, tss_addr) &&
	    bpf_core_field_exists(struct kvm_vmx___cq, ept_identity_map_addr)) {
		vmx = (void *)kvm - bpf_core_field_offset(struct kvm_vmx___cq, kvm);
		r.vmx.tss_addr = READ_INT(vmx, tss_addr);
		r.vmx.identity_map_addr = READ_INT(vmx, ept_identity_map_addr);
		r.vmx.readable = 1;
	}
	emit(w, &r);
}

static void show_vm(struct walk *w, struct kvm___cq *kvm, struct task_struct *task)
{
	struct kvm_rec r;

	__builtin_memset(&r, 0, sizeof(r));
	r.type = KVM_REC_VM;
	r.vm.kvm = (__u64)kvm;
	r.vm.nr_as = bpf_core_field_size(kvm->memslots) / sizeof(void *);
	if (need(w, bpf_core_field_exists(kvm->mm), KVM_F_MM))
		r.vm.own_mm = (__u64)BPF_CORE_READ(kvm, mm) == (__u64)task->mm;
	emit(w, &r);
	/* A second fd of the same VM, or a second VM: kvm-bpf.c tells which. */
	if (walked_kvm)
		return;
	emit_vm_fields(w, kvm);
	walk_memslots(w, kvm);
	walk_irqfds(w, kvm);
	walk_ioeventfds(w, kvm);
	walk_msr_filter(w, kvm);
	walk_routes(w, kvm);
	walk_zones(w, kvm);
	emit_vmx(w, kvm);
	if (!w->overflow)
		walked_kvm = (__u64)kvm;
}

static void show_vcpu(struct walk *w, struct kvm_vcpu___cq *vcpu)
{
	bool ok = true;
	struct kvm_rec r;

	NEED(ok, w, struct kvm_vcpu___cq, vcpu_id, KVM_F_VCPU_ID);
	NEED(ok, w, struct kvm_vcpu___cq, kvm, KVM_F_VCPU_KVM);
	NEED(ok, w, struct kvm_vcpu___cq, sigset_active, KVM_F_VCPU_SIGSET_ACTIVE);
	/* sigset_t as KVM_SET_SIGNAL_MASK takes it on x86_64: one u64 */
	ok &= need(w, bpf_core_field_exists(vcpu->sigset) &&
			      bpf_core_field_size(vcpu->sigset) == sizeof(__u64),
		   KVM_F_VCPU_SIGSET);
	NEED(ok, w, struct kvm_vcpu___cq, guest_debug, KVM_F_VCPU_GUEST_DEBUG);
	if (!ok)
		return;
	__builtin_memset(&r, 0, sizeof(r));
	r.type = KVM_REC_VCPU;
	r.vcpu.id = READ_INT(vcpu, vcpu_id);
	r.vcpu.kvm = (__u64)BPF_CORE_READ(vcpu, kvm);
	r.vcpu.sigset_active = READ_INT(vcpu, sigset_active);
	bpf_core_read(&r.vcpu.sigset, sizeof(r.vcpu.sigset), &vcpu->sigset);
	r.vcpu.guest_debug = READ_INT(vcpu, guest_debug);
	emit(w, &r);
}

static __always_inline bool name_is(const char *name, const char *want, int len)
{
	for (int i = 0; i < len; i++)
		if (name[i] != want[i])
			return false;
	return true;
}

SEC("iter/task_file")
int kvm_iter(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct walk w = {};
	struct inode *inode;
	char name[12] = {};

	if (!task || !file || task->tgid != target_pid)
		return 0;
	w.seq = ctx->meta->seq;
	w.fd = ctx->fd;
	inode = file->f_inode;
	if ((inode->i_mode & S_IFMT) == S_IFCHR && inode->i_rdev == KVM_MISC_DEV) {
		emit_simple(&w, KVM_REC_DEV_KVM, 0);
		return 0;
	}
	if (inode->i_sb->s_magic != ANON_INODE_FS_MAGIC)
		return 0;
	bpf_probe_read_kernel_str(name, sizeof(name), file->f_path.dentry->d_name.name);
	if (name_is(name, "kvm-vm", sizeof("kvm-vm")))
		show_vm(&w, file->private_data, task);
	else if (name_is(name, "kvm-vcpu:", sizeof("kvm-vcpu:") - 1))
		show_vcpu(&w, file->private_data);
	else if (name_is(name, "[eventfd]", sizeof("[eventfd]"))) {
		struct kvm_rec r;

		__builtin_memset(&r, 0, sizeof(r));
		r.type = KVM_REC_EVENTFD;
		r.eventfd.ctx = (__u64)file->private_data;
		emit(&w, &r);
	}
	return 0;
}
