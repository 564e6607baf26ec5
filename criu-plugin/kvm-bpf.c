// SPDX-License-Identifier: GPL-2.0
/*
 * Loads the kvm-iter BPF iterator (bpf/kvm-iter.bpf.c) for one process,
 * reads its records and turns them into a struct kvm_kstate: kernel
 * pointers in the records only match eventfds, vCPUs and the VM with each
 * other and go no further.
 */
#define LOG_PREFIX "kvm-bpf: "
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kvm-iter.skel.h"
#include "kvm-bpf.h"
#include "log.h"

#define VMLINUX_BTF	"/sys/kernel/btf/vmlinux"
#define KVM_PAGE_SHIFT	12	/* x86 */
#define PIC_SLAVE_PIN0	8	/* the kernel keeps PIC slave pins as 8..15 */

_Static_assert(KVM_ITER_MSR_MAX_RANGES == KVM_MSR_FILTER_MAX_RANGES &&
	       KVM_ITER_MSR_MAX_BITMAP == KVM_MSR_FILTER_MAX_BITMAP_SIZE, "kvm-iter.h's MSR filter limits");

#define KVM_ITER_FIELD_NAME(id, name) [id] = name,
static const char *const field_names[KVM_F_NR] = {
	KVM_ITER_FIELDS(KVM_ITER_FIELD_NAME)
};
#undef KVM_ITER_FIELD_NAME

static const char *const walk_names[] = {
	[KVM_WALK_MEMSLOTS] = "memslots",
	[KVM_WALK_IRQFDS] = "irqfds",
	[KVM_WALK_IOEVENTFDS] = "ioeventfds",
	[KVM_WALK_MSR_FILTER] = "MSR filter",
	[KVM_WALK_ROUTES] = "GSI routes",
	[KVM_WALK_ZONES] = "coalesced MMIO zones",
};

const char *kvm_bpf_field_name(unsigned int id)
{
	return id < KVM_F_NR ? field_names[id] : "?";
}

void kvm_bpf_free(struct kvm_kstate *ks)
{
	free(ks->vm_fds);
	free(ks->kvm_fds);
	free(ks->vcpus);
	free(ks->memslots);
	free(ks->irqfds);
	free(ks->ioeventfds);
	free(ks->routes);
	free(ks->zones);
	memset(ks, 0, sizeof(*ks));
	ks->vm_fd = -1;
}

/* How many records of each type; the VM's key. */
struct census {
	unsigned int nr[KVM_REC_NR];
	uint64_t vm_key;
	int vm_fd;
};

/* Checks what needs no second look: one VM, no required field missing, no walk cut short. */
static int take_census(const struct kvm_rec *recs, size_t nr, struct census *c, uint64_t *missing)
{
	int ret = 0;

	for (size_t i = 0; i < nr; i++) {
		const struct kvm_rec *r = &recs[i];

		if (r->type == 0 || r->type >= KVM_REC_NR) {
			pr_err("record %zu: unknown type %u\n", i, r->type);
			return -EINVAL;
		}
		c->nr[r->type]++;
		switch (r->type) {
		case KVM_REC_VM:
			if (!c->vm_key) {
				c->vm_key = r->vm.kvm;
				c->vm_fd = r->fd;
			} else if (r->vm.kvm != c->vm_key) {
				pr_err("more than one VM in the process (fds %d and %d): not supported\n",
				       c->vm_fd, r->fd);
				ret = -EOPNOTSUPP;
			}
			break;
		case KVM_REC_VM_FIELD:
		case KVM_REC_MISSING:
			if (r->field.id >= KVM_F_NR) {
				pr_err("record %zu: unknown field %u\n", i, r->field.id);
				return -EINVAL;
			}
			if (r->type == KVM_REC_VM_FIELD)
				break;
			missing[r->field.id / 64] |= 1ULL << (r->field.id % 64);
			if (r->field.id < KVM_F_FIRST_OPTIONAL) {
				pr_err("the kernel's BTF has no %s: its KVM state cannot be read\n",
				       field_names[r->field.id]);
				ret = -EOPNOTSUPP;
			}
			break;
		case KVM_REC_TRUNCATED:
			pr_err("the walk of the %s of the VM at fd %d stopped short: more than its bound, or a fault\n",
			       r->truncated.walk < KVM_WALK_NR ? walk_names[r->truncated.walk] : "?", r->fd);
			ret = -E2BIG;
			break;
		}
	}
	return ret;
}

/* The lowest fd of the target's eventfd ctx, or -1. Records are in fd order. */
static int eventfd_of(const struct kvm_rec *recs, size_t nr, uint64_t ctx)
{
	for (size_t i = 0; i < nr; i++)
		if (recs[i].type == KVM_REC_EVENTFD && recs[i].eventfd.ctx == ctx)
			return recs[i].fd;
	return -1;
}

static void add_memslot(struct kvm_kstate *ks, const struct kvm_rec *r)
{
	struct kvm_bpf_memslot *s = &ks->memslots[ks->nr_memslots++];

	s->as_id = r->slot.as_id;
	s->id = r->slot.id;
	s->flags = r->slot.flags;
	s->gpa = r->slot.base_gfn << KVM_PAGE_SHIFT;
	s->size = r->slot.npages << KVM_PAGE_SHIFT;
	s->hva = r->slot.hva;
	s->internal = s->id >= KVM_BPF_X86_USER_MEM_SLOTS;
}

static int add_irqfd(struct kvm_kstate *ks, const struct kvm_rec *recs, size_t nr, const struct kvm_rec *r)
{
	struct kvm_bpf_irqfd *q = &ks->irqfds[ks->nr_irqfds];

	q->gsi = r->irqfd.gsi;
	q->fd = eventfd_of(recs, nr, r->irqfd.eventfd);
	q->resample_fd = -1;
	if (r->irqfd.resamplefd)
		q->resample_fd = eventfd_of(recs, nr, r->irqfd.resamplefd);
	if (q->fd < 0 || (r->irqfd.resamplefd && q->resample_fd < 0)) {
		pr_err("irqfd of GSI %u: its %seventfd is not among the process's fds\n", q->gsi,
		       q->fd < 0 ? "" : "resample ");
		return -ENOENT;
	}
	ks->nr_irqfds++;
	return 0;
}

static int add_ioeventfd(struct kvm_kstate *ks, const struct kvm_rec *recs, size_t nr, const struct kvm_rec *r)
{
	struct kvm_bpf_ioeventfd *e = &ks->ioeventfds[ks->nr_ioeventfds];

	switch (r->ioeventfd.bus) {
	case KVM_IOEV_BUS_MMIO:
		e->flags = 0;
		break;
	case KVM_IOEV_BUS_PIO:
		e->flags = KVM_IOEVENTFD_FLAG_PIO;
		break;
	case KVM_IOEV_BUS_VIRTIO_CCW_NOTIFY:
		e->flags = KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY;
		break;
	default:
		pr_err("ioeventfd at 0x%llx: on a KVM bus KVM_IOEVENTFD has no flag for\n",
		       (unsigned long long)r->ioeventfd.addr);
		return -EOPNOTSUPP;
	}
	if (!r->ioeventfd.wildcard)
		e->flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
	e->addr = r->ioeventfd.addr;
	e->len = r->ioeventfd.len;
	e->datamatch = r->ioeventfd.wildcard ? 0 : r->ioeventfd.datamatch;
	e->fd = eventfd_of(recs, nr, r->ioeventfd.eventfd);
	if (e->fd < 0) {
		pr_err("ioeventfd at 0x%llx: its eventfd is not among the process's fds\n",
		       (unsigned long long)e->addr);
		return -ENOENT;
	}
	ks->nr_ioeventfds++;
	return 0;
}

static int add_vcpu(struct kvm_kstate *ks, uint64_t vm_key, const struct kvm_rec *r)
{
	if (r->vcpu.kvm != vm_key) {
		pr_err("vCPU %u at fd %d belongs to %s\n", r->vcpu.id, r->fd,
		       vm_key ? "another VM than the process's" : "a VM the process has no fd of");
		return -EOPNOTSUPP;
	}
	ks->vcpus[ks->nr_vcpus].fd = r->fd;
	ks->vcpus[ks->nr_vcpus].id = r->vcpu.id;
	ks->vcpus[ks->nr_vcpus].sigset_active = r->vcpu.sigset_active;
	ks->vcpus[ks->nr_vcpus].sigset = r->vcpu.sigset_active ? r->vcpu.sigset : 0;
	ks->vcpus[ks->nr_vcpus].guest_debug = r->vcpu.guest_debug;
	ks->nr_vcpus++;
	return 0;
}

static int add_msr_filter(struct kvm_kstate *ks, const struct kvm_rec *r)
{
	struct kvm_bpf_msr_filter *f = &ks->msr_filter;

	if (f->present || r->msr_filter.count > KVM_ITER_MSR_MAX_RANGES) {
		pr_err("MSR filter: %s\n", f->present ? "a second one" : "more ranges than KVM allows");
		return -EINVAL;
	}
	f->present = true;
	f->flags = r->msr_filter.default_allow ? KVM_MSR_FILTER_DEFAULT_ALLOW : KVM_MSR_FILTER_DEFAULT_DENY;
	return 0;
}

/* Ranges come in order, each after its filter; its bitmap chunks after it. */
static int add_msr_range(struct kvm_kstate *ks, const struct kvm_rec *r)
{
	struct kvm_bpf_msr_filter *f = &ks->msr_filter;
	struct kvm_bpf_msr_range *m = &f->range[f->nr_ranges];
	uint32_t size = (r->msr_range.nmsrs + 63) / 64 * 8;

	if (!f->present) {
		pr_err("MSR filter range %u without its filter\n", r->msr_range.index);
		return -EINVAL;
	}
	if (r->msr_range.index != f->nr_ranges || f->nr_ranges >= KVM_ITER_MSR_MAX_RANGES ||
	    r->msr_range.bitmap_size != size || size > KVM_ITER_MSR_MAX_BITMAP) {
		pr_err("MSR filter range %u (%u MSRs from 0x%x): out of order or too big\n",
		       r->msr_range.index, r->msr_range.nmsrs, r->msr_range.base);
		return -EINVAL;
	}
	m->flags = r->msr_range.flags;
	m->nmsrs = r->msr_range.nmsrs;
	m->base = r->msr_range.base;
	f->nr_ranges++;
	return 0;
}

static int add_msr_bitmap(struct kvm_kstate *ks, const struct kvm_rec *r)
{
	const struct kvm_bpf_msr_filter *f = &ks->msr_filter;
	unsigned int i = r->msr_bitmap.range, end = r->msr_bitmap.offset + r->msr_bitmap.len;

	if (i + 1 != f->nr_ranges || r->msr_bitmap.len > KVM_ITER_MSR_CHUNK ||
	    end > (f->range[i].nmsrs + 63) / 64 * 8) {
		pr_err("MSR filter range %u: bitmap bytes %u..%u are not its own\n", i,
		       r->msr_bitmap.offset, end);
		return -EINVAL;
	}
	memcpy(ks->msr_filter.range[i].bitmap + r->msr_bitmap.offset, r->msr_bitmap.bytes,
	       r->msr_bitmap.len);
	return 0;
}

static const char *route_type_name(uint32_t type)
{
	switch (type) {
	case KVM_IRQ_ROUTING_S390_ADAPTER:
		return "S390_ADAPTER";
	case KVM_IRQ_ROUTING_HV_SINT:
		return "HV_SINT (Hyper-V SynIC)";
	case KVM_IRQ_ROUTING_XEN_EVTCHN:
		return "XEN_EVTCHN";
	}
	return "unknown";
}

static int add_route(struct kvm_kstate *ks, const struct kvm_rec *r)
{
	struct kvm_irq_routing_entry *e = &ks->routes[ks->nr_routes];

	e->gsi = r->route.gsi;
	e->type = r->route.type;
	switch (r->route.type) {
	case KVM_IRQ_ROUTING_IRQCHIP:
		e->u.irqchip.irqchip = r->route.irqchip.irqchip;
		e->u.irqchip.pin = r->route.irqchip.pin;
		if (e->u.irqchip.irqchip == KVM_IRQCHIP_PIC_SLAVE) {
			if (e->u.irqchip.pin < PIC_SLAVE_PIN0) {
				pr_err("GSI %u: PIC slave pin %u, not 8..15 as the kernel keeps them\n",
				       e->gsi, e->u.irqchip.pin);
				return -EINVAL;
			}
			e->u.irqchip.pin -= PIC_SLAVE_PIN0;
		}
		break;
	case KVM_IRQ_ROUTING_MSI:
		e->flags = r->route.msi.flags;
		e->u.msi.address_lo = r->route.msi.address_lo;
		e->u.msi.address_hi = r->route.msi.address_hi;
		e->u.msi.data = r->route.msi.data;
		e->u.msi.devid = r->route.msi.devid;
		break;
	default:
		pr_err("GSI %u is routed as type %u, %s: only irqchip and MSI routes are supported\n",
		       r->route.gsi, r->route.type, route_type_name(r->route.type));
		return -EOPNOTSUPP;
	}
	ks->nr_routes++;
	return 0;
}

static int add_zone(struct kvm_kstate *ks, const struct kvm_rec *r)
{
	struct kvm_coalesced_mmio_zone *z = &ks->zones[ks->nr_zones];

	/* KVM_REGISTER_COALESCED_MMIO takes no other pio: anything else is a misread. */
	if (r->zone.pio > 1) {
		pr_err("coalesced zone at 0x%llx: pio %u\n", (unsigned long long)r->zone.addr, r->zone.pio);
		return -EINVAL;
	}
	memset(z, 0, sizeof(*z));
	z->addr = r->zone.addr;
	z->size = r->zone.size;
	z->pio = r->zone.pio;
	ks->nr_zones++;
	return 0;
}

static void add_vmx(struct kvm_kstate *ks, const struct kvm_rec *r)
{
	if (!r->vmx.readable) {
		pr_warn("the kernel has kvm_vmx and another vendor's VM struct: which this VM is "
			"cannot be told, its TSS and identity-map addresses are not read\n");
		return;
	}
	ks->vmx.present = true;
	ks->vmx.tss_addr = r->vmx.tss_addr;
	ks->vmx.identity_map_addr = r->vmx.identity_map_addr;
}

void kvm_bpf_msr_filter_arg(struct kvm_bpf_msr_filter *f, struct kvm_msr_filter *arg)
{
	memset(arg, 0, sizeof(*arg));
	arg->flags = f->flags;
	for (unsigned int i = 0; i < f->nr_ranges; i++) {
		arg->ranges[i].flags = f->range[i].flags;
		arg->ranges[i].nmsrs = f->range[i].nmsrs;
		arg->ranges[i].base = f->range[i].base;
		arg->ranges[i].bitmap = f->range[i].bitmap;
	}
}

static int decode_one(struct kvm_kstate *ks, const struct kvm_rec *recs, size_t nr,
		      const struct kvm_rec *r, uint64_t vm_key)
{
	switch (r->type) {
	case KVM_REC_DEV_KVM:
		ks->kvm_fds[ks->nr_kvm_fds++] = r->fd;
		break;
	case KVM_REC_VM:
		if (ks->nr_vm_fds == 0)
			ks->vm_own_mm = r->vm.own_mm;
		ks->nr_as = r->vm.nr_as;
		ks->vm_fds[ks->nr_vm_fds++] = r->fd;
		break;
	case KVM_REC_VM_FIELD:
		ks->field[r->field.id] = r->field.value;
		break;
	case KVM_REC_MEMSLOT:
		add_memslot(ks, r);
		break;
	case KVM_REC_IRQFD:
		return add_irqfd(ks, recs, nr, r);
	case KVM_REC_IOEVENTFD:
		return add_ioeventfd(ks, recs, nr, r);
	case KVM_REC_VCPU:
		return add_vcpu(ks, vm_key, r);
	case KVM_REC_MSR_FILTER:
		return add_msr_filter(ks, r);
	case KVM_REC_MSR_RANGE:
		return add_msr_range(ks, r);
	case KVM_REC_MSR_BITMAP:
		return add_msr_bitmap(ks, r);
	case KVM_REC_ROUTE:
		return add_route(ks, r);
	case KVM_REC_ZONE:
		return add_zone(ks, r);
	case KVM_REC_VMX:
		add_vmx(ks, r);
		break;
	}
	return 0;
}

/* The ranges a filter said it has must all have come. */
static int check_msr_filter(const struct kvm_kstate *ks, const struct kvm_rec *recs, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		if (recs[i].type == KVM_REC_MSR_FILTER && recs[i].msr_filter.count != ks->msr_filter.nr_ranges) {
			pr_err("MSR filter: %u ranges, %u read\n", recs[i].msr_filter.count,
			       ks->msr_filter.nr_ranges);
			return -EINVAL;
		}
	return 0;
}

#define CMP(a, b) if ((a) != (b)) return (a) < (b) ? -1 : 1

static int route_cmp(const void *a, const void *b)
{
	const struct kvm_irq_routing_entry *x = a, *y = b;

	CMP(x->gsi, y->gsi);
	CMP(x->type, y->type);
	if (x->type == KVM_IRQ_ROUTING_IRQCHIP) {
		CMP(x->u.irqchip.irqchip, y->u.irqchip.irqchip);
		CMP(x->u.irqchip.pin, y->u.irqchip.pin);
	}
	return 0;
}

static int memslot_cmp(const void *a, const void *b)
{
	const struct kvm_bpf_memslot *x = a, *y = b;

	if (x->as_id != y->as_id)
		return x->as_id < y->as_id ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int alloc_arrays(struct kvm_kstate *ks, const struct census *c)
{
	/* calloc(0) may give NULL: one spare element each keeps NULL an error. */
	ks->vm_fds = calloc(c->nr[KVM_REC_VM] + 1, sizeof(*ks->vm_fds));
	ks->kvm_fds = calloc(c->nr[KVM_REC_DEV_KVM] + 1, sizeof(*ks->kvm_fds));
	ks->vcpus = calloc(c->nr[KVM_REC_VCPU] + 1, sizeof(*ks->vcpus));
	ks->memslots = calloc(c->nr[KVM_REC_MEMSLOT] + 1, sizeof(*ks->memslots));
	ks->irqfds = calloc(c->nr[KVM_REC_IRQFD] + 1, sizeof(*ks->irqfds));
	ks->ioeventfds = calloc(c->nr[KVM_REC_IOEVENTFD] + 1, sizeof(*ks->ioeventfds));
	ks->routes = calloc(c->nr[KVM_REC_ROUTE] + 1, sizeof(*ks->routes));
	ks->zones = calloc(c->nr[KVM_REC_ZONE] + 1, sizeof(*ks->zones));
	if (!ks->vm_fds || !ks->kvm_fds || !ks->vcpus || !ks->memslots || !ks->irqfds || !ks->ioeventfds ||
	    !ks->routes || !ks->zones) {
		pr_err("out of memory for the KVM state\n");
		return -ENOMEM;
	}
	return 0;
}

int kvm_bpf_decode(const struct kvm_rec *recs, size_t nr, struct kvm_kstate *ks)
{
	struct census c = { .vm_fd = -1 };
	uint64_t missing[sizeof(ks->missing) / sizeof(ks->missing[0])] = {};
	int ret;

	memset(ks, 0, sizeof(*ks));
	ks->vm_fd = -1;
	ret = take_census(recs, nr, &c, missing);
	if (!ret)
		ret = alloc_arrays(ks, &c);
	for (size_t i = 0; !ret && i < nr; i++)
		ret = decode_one(ks, recs, nr, &recs[i], c.vm_key);
	if (!ret)
		ret = check_msr_filter(ks, recs, nr);
	if (ret) {
		kvm_bpf_free(ks);
		return ret;
	}
	ks->vm_fd = c.vm_fd;
	memcpy(ks->missing, missing, sizeof(missing));
	qsort(ks->memslots, ks->nr_memslots, sizeof(*ks->memslots), memslot_cmp);
	qsort(ks->routes, ks->nr_routes, sizeof(*ks->routes), route_cmp);
	for (unsigned int id = KVM_F_FIRST_OPTIONAL; id < KVM_F_NR; id++)
		if (!kvm_bpf_has_field(ks, id))
			pr_info("the kernel's BTF has no %s: not read\n", field_names[id]);
	if (!c.nr[KVM_REC_VMX] && ks->vm_fd >= 0)
		pr_info("the kernel's BTF has no kvm_vmx: TSS and identity-map addresses not read\n");
	return 0;
}

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list args)
{
	char *line;

	if (vasprintf(&line, fmt, args) < 0)
		return 0;
	if (level == LIBBPF_WARN)
		pr_warn("%s", line);
	else
		pr_debug("%s", line);
	free(line);
	return 0;
}

/* Attaches the iterator to pid's files alone; kernels before 6.1 know no task link info. */
static struct bpf_link *attach_iter(struct kvm_iter_bpf *skel, pid_t pid)
{
	union bpf_iter_link_info linfo = { .task.pid = pid };
	LIBBPF_OPTS(bpf_iter_attach_opts, opts, .link_info = &linfo, .link_info_len = sizeof(linfo));
	struct bpf_link *link;

	link = bpf_program__attach_iter(skel->progs.kvm_iter, &opts);
	if (!link && errno == EINVAL)	/* the program's own pid filter does it then */
		link = bpf_program__attach_iter(skel->progs.kvm_iter, NULL);
	if (!link)
		pr_perror("attaching the KVM iterator");
	return link;
}

/* All records of one iteration into *recs (malloc'ed), their count into *nr. */
static int read_records(int iter_fd, struct kvm_rec **recs, size_t *nr)
{
	size_t len = 0, cap = 64 << 10;
	char *buf = malloc(cap), *bigger;
	ssize_t n = -1;

	while (buf) {
		if (cap - len < (32 << 10)) {
			bigger = realloc(buf, cap * 2);
			if (!bigger)
				break;
			buf = bigger;
			cap *= 2;
		}
		n = read(iter_fd, buf + len, cap - len);
		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno == E2BIG)
				pr_err("record buffer overflow: one fd's records exceed the kernel's iterator buffer\n");
			else
				pr_perror("reading the KVM iterator");
			free(buf);
			return errno == E2BIG ? -E2BIG : -EIO;
		}
		len += n;
	}
	if (n != 0) {	/* left the loop for want of memory */
		free(buf);
		pr_err("out of memory for the iterator's records\n");
		return -ENOMEM;
	}
	if (len % sizeof(struct kvm_rec)) {
		free(buf);
		pr_err("iterator output of %zu bytes is not whole records\n", len);
		return -EINVAL;
	}
	*recs = (struct kvm_rec *)buf;
	*nr = len / sizeof(struct kvm_rec);
	return 0;
}

static int run_iter(struct kvm_iter_bpf *skel, pid_t pid, struct kvm_rec **recs, size_t *nr)
{
	struct bpf_link *link = attach_iter(skel, pid);
	int iter_fd, ret;

	if (!link)
		return -errno;
	iter_fd = bpf_iter_create(bpf_link__fd(link));
	if (iter_fd < 0) {
		ret = -errno;
		pr_perror("creating the KVM iterator");
	} else {
		ret = read_records(iter_fd, recs, nr);
		close(iter_fd);
	}
	bpf_link__destroy(link);
	return ret;
}

static void report_load_error(int err)
{
	if (err == -EPERM)
		pr_err("BPF not permitted: reading KVM state needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)\n");
	else
		pr_err("loading the KVM iterator failed: %s (libbpf's messages above)\n", strerror(-err));
}

/*
 * The loaded iterator. Loading (libbpf parsing the kernel's BTF, CO-RE
 * relocation, the verifier) takes some 50 ms here, reading a process well
 * under one: the plugin loads it before CRIU freezes the tasks.
 */
static struct kvm_iter_bpf *loaded;

int kvm_bpf_prepare(void)
{
	libbpf_print_fn_t old_print;
	struct kvm_iter_bpf *skel;
	int ret;

	if (loaded)
		return 0;
	if (access(VMLINUX_BTF, R_OK)) {
		pr_err("the kernel has no BTF (%s, CONFIG_DEBUG_INFO_BTF): its KVM state cannot be read\n",
		       VMLINUX_BTF);
		return -EOPNOTSUPP;
	}
	old_print = libbpf_set_print(libbpf_log);
	skel = kvm_iter_bpf__open();
	if (!skel) {
		ret = -errno;
		pr_perror("opening the KVM iterator");
	} else {
		ret = kvm_iter_bpf__load(skel);
		if (ret) {
			report_load_error(ret);
			kvm_iter_bpf__destroy(skel);
		} else {
			loaded = skel;
		}
	}
	libbpf_set_print(old_print);
	return ret;
}

void kvm_bpf_release(void)
{
	kvm_iter_bpf__destroy(loaded);
	loaded = NULL;
}

int kvm_bpf_read(pid_t pid, struct kvm_kstate *ks)
{
	bool own = !loaded;	/* not prepared: load for this read only */
	libbpf_print_fn_t old_print;
	struct kvm_rec *recs = NULL;
	size_t nr = 0;
	int ret;

	memset(ks, 0, sizeof(*ks));
	ks->vm_fd = -1;
	ret = kvm_bpf_prepare();
	if (ret)
		return ret;
	old_print = libbpf_set_print(libbpf_log);
	loaded->bss->target_pid = pid;
	loaded->bss->walked_kvm = 0;	/* a new read walks the VM it meets first */
	ret = run_iter(loaded, pid, &recs, &nr);
	if (!ret)
		ret = kvm_bpf_decode(recs, nr, ks);
	free(recs);
	libbpf_set_print(old_print);
	if (own)
		kvm_bpf_release();
	return ret;
}

int kvm_bpf_defaults(struct kvm_kstate *ks)
{
	int kvm, vm, ret;

	memset(ks, 0, sizeof(*ks));
	ks->vm_fd = -1;
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		ret = -errno;
		pr_perror("opening /dev/kvm for a fresh VM's defaults");
		return ret;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		ret = -errno;
		pr_perror("creating a fresh VM for its defaults");
		close(kvm);
		return ret;
	}
	ret = kvm_bpf_read(getpid(), ks);
	if (!ret && ks->vm_fd != vm) {
		pr_err("the fresh VM was not found in our own process (fd %d, read %d)\n", vm, ks->vm_fd);
		kvm_bpf_free(ks);
		ret = -EIO;
	}
	close(vm);
	close(kvm);
	return ret;
}
