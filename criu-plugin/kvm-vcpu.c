// SPDX-License-Identifier: GPL-2.0
/*
 * The state of one vCPU (see kvm-vcpu.h).
 *
 * Reading follows QEMU's get order. Writing follows the dependencies KVM
 * has between the pieces (QEMU's kvm_arch_put_registers and Firecracker's
 * restore agree on them):
 *   TSC frequency, CPUID  first: KVM checks CR4, XCR0 and MSR writes
 *                         against the guest's CPUID
 *   MCE setup             KVM_X86_SETUP_MCE with the saved MCG_CAP before
 *                         the MSRs: it decides which MCE MSRs KVM takes
 *   SREGS before LAPIC    the APIC base in SREGS switches x2APIC mode,
 *                         which decides how the LAPIC registers are read
 *   LAPIC before MSRS     the TSC-deadline MSR needs the LAPIC timer mode
 *   REGS before EVENTS    setting RFLAGS/RIP must not drop a pending event
 *   MP_STATE last         KVM may act on it (INIT/SIPI) on the next run
 */
#define LOG_PREFIX "kvm: "

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "kvm-exec.h"
#include "kvm-vcpu.h"
#include "log.h"

#define CPUID_MAX_ENTRIES	4096
#define MSR_IA32_MCG_CAP	0x179

/* How one fixed-size piece is read and written. */
struct piece_io {
	unsigned long get, set;
	int cap;		/* capability it needs; 0: always there */
	uint32_t size;
};

static const struct piece_io fixed_io[KVP_NR] = {
	[KVP_EVENTS] = { KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, KVM_CAP_VCPU_EVENTS,
			 sizeof(struct kvm_vcpu_events) },
	[KVP_MP_STATE] = { KVM_GET_MP_STATE, KVM_SET_MP_STATE, KVM_CAP_MP_STATE,
			   sizeof(struct kvm_mp_state) },
	[KVP_REGS] = { KVM_GET_REGS, KVM_SET_REGS, 0, sizeof(struct kvm_regs) },
	[KVP_XCRS] = { KVM_GET_XCRS, KVM_SET_XCRS, KVM_CAP_XCRS, sizeof(struct kvm_xcrs) },
	[KVP_LAPIC] = { KVM_GET_LAPIC, KVM_SET_LAPIC, KVM_CAP_IRQCHIP, sizeof(struct kvm_lapic_state) },
	[KVP_DEBUGREGS] = { KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS, KVM_CAP_DEBUGREGS,
			    sizeof(struct kvm_debugregs) },
};

static const char *const piece_names[KVP_NR] = {
	[KVP_EVENTS] = "VCPU_EVENTS", [KVP_MP_STATE] = "MP_STATE", [KVP_REGS] = "REGS",
	[KVP_XSAVE] = "XSAVE", [KVP_XCRS] = "XCRS", [KVP_SREGS] = "SREGS", [KVP_MSRS] = "MSRS",
	[KVP_LAPIC] = "LAPIC", [KVP_DEBUGREGS] = "DEBUGREGS", [KVP_CPUID] = "CPUID2",
};

/* The order pieces are written in (see the top of this file). */
static const enum kvm_vcpu_piece rebuild_order[] = {
	KVP_CPUID, KVP_SREGS, KVP_REGS, KVP_XSAVE, KVP_XCRS, KVP_DEBUGREGS,
	KVP_LAPIC, KVP_MSRS, KVP_EVENTS, KVP_MP_STATE,
};

const char *kvm_vcpu_piece_name(enum kvm_vcpu_piece p)
{
	return p < KVP_NR ? piece_names[p] : "?";
}

static int blob_alloc(struct kvm_blob *b, size_t len)
{
	b->data = calloc(1, len);
	if (!b->data)
		return -ENOMEM;
	b->len = len;
	return 0;
}

static long check_cap(struct kvm_exec *x, int vm_fd, int cap)
{
	long ret = kx_ioctl_val(x, vm_fd, KVM_CHECK_EXTENSION, cap);

	return ret < 0 ? 0 : ret;
}

/* The get/set ioctls and size of piece p on this VM; size 0: it has none. */
static struct piece_io resolve_io(struct kvm_exec *x, int vm_fd, enum kvm_vcpu_piece p,
				  bool *sregs2)
{
	struct piece_io io = fixed_io[p];
	long xsave2;

	switch (p) {
	case KVP_XSAVE:
		xsave2 = check_cap(x, vm_fd, KVM_CAP_XSAVE2);
		if (xsave2 >= (long)sizeof(struct kvm_xsave))
			return (struct piece_io){ KVM_GET_XSAVE2, KVM_SET_XSAVE, 0, xsave2 };
		return (struct piece_io){ KVM_GET_XSAVE, KVM_SET_XSAVE, KVM_CAP_XSAVE,
					  sizeof(struct kvm_xsave) };
	case KVP_SREGS:
		*sregs2 = check_cap(x, vm_fd, KVM_CAP_SREGS2) > 0;
		if (*sregs2)
			return (struct piece_io){ KVM_GET_SREGS2, KVM_SET_SREGS2, 0,
						  sizeof(struct kvm_sregs2) };
		return (struct piece_io){ KVM_GET_SREGS, KVM_SET_SREGS, 0, sizeof(struct kvm_sregs) };
	default:
		break;
	}
	if (io.cap && !check_cap(x, vm_fd, io.cap))
		io.size = 0;
	return io;
}

static int capture_fixed(struct kvm_exec *x, int vm_fd, int fd, enum kvm_vcpu_piece p,
			 struct kvm_vcpu_state *st)
{
	struct piece_io io = resolve_io(x, vm_fd, p, &st->sregs2);
	struct kvm_blob *b = &st->piece[p];
	long ret;

	if (!io.size)
		return 0;
	ret = blob_alloc(b, io.size);
	if (ret)
		return ret;
	ret = kx_ioctl(x, fd, io.get, b->data, b->len, KX_IN | KX_OUT);
	if (ret == -ENXIO && p == KVP_LAPIC) {
		/* The LAPIC is emulated in userspace (no in-kernel irqchip). */
		free(b->data);
		*b = (struct kvm_blob){};
		return 0;
	}
	return ret < 0 ? ret : 0;
}

/* Every MSR of the list the vCPU can read: KVM_GET_MSRS stops at the first it cannot. */
static int capture_msrs(struct kvm_exec *x, int fd, const uint32_t *index, uint32_t nr,
			struct kvm_blob *b)
{
	size_t size = sizeof(struct kvm_msrs) + nr * sizeof(struct kvm_msr_entry);
	struct kvm_msrs *q = calloc(1, size);
	struct kvm_msrs *m;
	uint32_t done = 0, i;
	long ret = 0;

	if (!q || blob_alloc(b, size)) {
		free(q);
		return -ENOMEM;
	}
	m = b->data;
	while (done < nr) {
		q->nmsrs = nr - done;
		for (i = 0; i < q->nmsrs; i++)
			q->entries[i] = (struct kvm_msr_entry){ .index = index[done + i] };
		ret = kx_ioctl(x, fd, KVM_GET_MSRS, q, sizeof(*q) + q->nmsrs * sizeof(q->entries[0]),
			       KX_IN | KX_OUT);
		if (ret < 0)
			break;
		memcpy(&m->entries[m->nmsrs], q->entries, ret * sizeof(q->entries[0]));
		m->nmsrs += ret;
		if (done + ret < nr)
			pr_debug("vCPU fd %d: MSR %#x not readable, not saved\n", fd, index[done + ret]);
		done += ret + 1;
	}
	free(q);
	b->len = sizeof(*m) + m->nmsrs * sizeof(m->entries[0]);
	return ret < 0 ? ret : 0;
}

static int capture_cpuid(struct kvm_exec *x, int fd, struct kvm_blob *b)
{
	uint32_t nent;
	long ret = -E2BIG;

	for (nent = 64; nent <= CPUID_MAX_ENTRIES && ret == -E2BIG; nent *= 2) {
		struct kvm_cpuid2 *c;

		free(b->data);
		if (blob_alloc(b, sizeof(*c) + nent * sizeof(c->entries[0])))
			return -ENOMEM;
		c = b->data;
		c->nent = nent;
		ret = kx_ioctl(x, fd, KVM_GET_CPUID2, c, b->len, KX_IN | KX_OUT);
		if (ret >= 0)
			b->len = sizeof(*c) + c->nent * sizeof(c->entries[0]);
	}
	return ret < 0 ? ret : 0;
}

/*
 * QEMU gives each vCPU its machine-check banks with KVM_X86_SETUP_MCE; the
 * value is MCG_CAP, which KVM reads back as an MSR but never takes as one.
 * Without it KVM refuses MCG_CTL and the bank MSRs.
 */
static int capture_mcg_cap(struct kvm_exec *x, int fd, struct kvm_vcpu_state *st)
{
	struct {
		struct kvm_msrs m;
		struct kvm_msr_entry e;
	} q = { .m.nmsrs = 1, .e.index = MSR_IA32_MCG_CAP };
	long ret = kx_ioctl(x, fd, KVM_GET_MSRS, &q, sizeof(q), KX_IN | KX_OUT);

	st->mcg_cap = ret == 1 ? q.e.data : 0;
	return ret < 0 ? ret : 0;
}

static int rebuild_mce(struct kvm_exec *x, int fd, const struct kvm_vcpu_state *st)
{
	uint64_t mcg_cap = st->mcg_cap;
	long ret;

	if (!mcg_cap)
		return 0;
	ret = kx_ioctl(x, fd, KVM_X86_SETUP_MCE, &mcg_cap, sizeof(mcg_cap), KX_IN);
	if (ret < 0)
		pr_err("vCPU %u: KVM_X86_SETUP_MCE(%#llx): %s\n", st->id, (unsigned long long)mcg_cap,
		       strerror((int)-ret));
	return ret < 0 ? ret : 0;
}

/*
 * Nested virtualization state is not rebuilt: a vCPU that entered VMX or
 * SVM operation (or has a nested guest pending) refuses the dump.
 */
static int refuse_nested(struct kvm_exec *x, int vm_fd, int fd, const struct kvm_vcpu_state *st)
{
	long size = check_cap(x, vm_fd, KVM_CAP_NESTED_STATE);
	struct kvm_nested_state *ns;
	long ret;

	if (size < (long)sizeof(*ns))
		return 0;
	ns = calloc(1, size);
	if (!ns)
		return -ENOMEM;
	ns->size = size;
	ret = kx_ioctl(x, fd, KVM_GET_NESTED_STATE, ns, size, KX_IN | KX_OUT);
	if (ret >= 0 && (ns->flags || (ns->format == KVM_STATE_NESTED_FORMAT_VMX &&
					ns->hdr.vmx.vmxon_pa != -1ull))) {
		pr_err("vCPU %u uses nested virtualization (VMX/SVM state): not supported\n", st->id);
		ret = -EOPNOTSUPP;
	}
	free(ns);
	return ret < 0 ? ret : 0;
}

int kvm_vcpu_capture(struct kvm_exec *x, int vm_fd, int fd, const uint32_t *msr_index,
		     uint32_t nr_msr_index, struct kvm_vcpu_state *st)
{
	enum kvm_vcpu_piece p;
	long ret = refuse_nested(x, vm_fd, fd, st);

	for (p = 0; p < KVP_NR && !ret; p++) {
		if (p == KVP_MSRS)
			ret = capture_msrs(x, fd, msr_index, nr_msr_index, &st->piece[p]);
		else if (p == KVP_CPUID)
			ret = capture_cpuid(x, fd, &st->piece[p]);
		else
			ret = capture_fixed(x, vm_fd, fd, p, st);
		if (ret)
			pr_err("vCPU %u (fd %d): KVM_GET_%s: %s\n", st->id, fd, piece_names[p],
			       strerror((int)-ret));
	}
	if (!ret)
		ret = capture_mcg_cap(x, fd, st);
	if (ret)
		return ret;
	ret = kx_ioctl_val(x, fd, KVM_GET_TSC_KHZ, 0);
	if (ret < 0) {
		pr_err("vCPU %u (fd %d): KVM_GET_TSC_KHZ: %s\n", st->id, fd, strerror((int)-ret));
		return ret;
	}
	st->tsc_khz = ret;
	return 0;
}

static unsigned long set_ioctl(const struct kvm_vcpu_state *st, enum kvm_vcpu_piece p)
{
	switch (p) {
	case KVP_XSAVE: return KVM_SET_XSAVE;
	case KVP_SREGS: return st->sregs2 ? KVM_SET_SREGS2 : KVM_SET_SREGS;
	case KVP_MSRS: return KVM_SET_MSRS;
	case KVP_CPUID: return KVM_SET_CPUID2;
	default: return fixed_io[p].set;
	}
}

/* The TSC runs at the saved rate, or the restore is refused. */
static int rebuild_tsc_khz(struct kvm_exec *x, int fd, const struct kvm_vcpu_state *st)
{
	long now = kx_ioctl_val(x, fd, KVM_GET_TSC_KHZ, 0);
	long ret;

	if (now == (long)st->tsc_khz)
		return 0;
	ret = kx_ioctl_val(x, fd, KVM_SET_TSC_KHZ, st->tsc_khz);
	if (ret < 0)
		pr_err("vCPU %u: the guest's TSC ran at %u kHz, this host's at %ld kHz and KVM cannot "
		       "scale it (KVM_SET_TSC_KHZ: %s)\n", st->id, st->tsc_khz, now, strerror((int)-ret));
	return ret < 0 ? ret : 0;
}

/* KVM_SET_MSRS answers how many it took; any it refused fails the rebuild. */
static int check_msrs_set(const struct kvm_vcpu_state *st, long ret)
{
	const struct kvm_msrs *m = st->piece[KVP_MSRS].data;

	if (ret < 0 || ret == m->nmsrs)
		return ret < 0 ? ret : 0;
	pr_err("vCPU %u: KVM refused MSR %#x (%ld of %u set)\n", st->id, m->entries[ret].index, ret,
	       m->nmsrs);
	return -EINVAL;
}

int kvm_vcpu_rebuild(struct kvm_exec *x, int fd, const struct kvm_vcpu_state *st)
{
	unsigned i;
	long ret;

	ret = rebuild_tsc_khz(x, fd, st);
	for (i = 0; i < sizeof(rebuild_order) / sizeof(rebuild_order[0]) && !ret; i++) {
		enum kvm_vcpu_piece p = rebuild_order[i];
		const struct kvm_blob *b = &st->piece[p];

		if (p == KVP_MSRS)
			ret = rebuild_mce(x, fd, st);
		if (ret || !b->len)
			continue;
		ret = kx_ioctl(x, fd, set_ioctl(st, p), b->data, b->len, KX_IN);
		if (p == KVP_MSRS)
			ret = check_msrs_set(st, ret);
		if (ret < 0)
			pr_err("vCPU %u (fd %d): KVM_SET_%s: %s\n", st->id, fd, piece_names[p],
			       strerror((int)-ret));
	}
	return ret < 0 ? ret : 0;
}

void kvm_vcpu_state_free(struct kvm_vcpu_state *st)
{
	enum kvm_vcpu_piece p;

	for (p = 0; p < KVP_NR; p++)
		free(st->piece[p].data);
	memset(st->piece, 0, sizeof(st->piece));
}

static int append_msr_list(int kvm_fd, unsigned long req, uint32_t **out, uint32_t *nr)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *l;
	uint32_t *grown;
	int ret;

	if (ioctl(kvm_fd, req, &probe) < 0 && errno != E2BIG)
		return -errno;
	l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(l->indices[0]));
	if (!l)
		return -ENOMEM;
	l->nmsrs = probe.nmsrs;
	ret = ioctl(kvm_fd, req, l) < 0 ? -errno : 0;
	grown = ret ? NULL : realloc(*out, (*nr + l->nmsrs) * sizeof(**out) + 1);
	if (grown) {
		memcpy(grown + *nr, l->indices, l->nmsrs * sizeof(**out));
		*out = grown;
		*nr += l->nmsrs;
	} else if (!ret) {
		ret = -ENOMEM;
	}
	free(l);
	return ret;
}

int kvm_msr_index(int kvm_fd, uint32_t **out, uint32_t *nr)
{
	int ret;

	*out = NULL;
	*nr = 0;
	ret = append_msr_list(kvm_fd, KVM_GET_MSR_INDEX_LIST, out, nr);
	if (!ret && append_msr_list(kvm_fd, KVM_GET_MSR_FEATURE_INDEX_LIST, out, nr))
		pr_debug("no feature MSR list on this KVM\n");
	if (ret) {
		free(*out);
		*out = NULL;
		*nr = 0;
	}
	return ret;
}
