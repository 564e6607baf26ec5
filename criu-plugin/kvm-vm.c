// SPDX-License-Identifier: GPL-2.0
/*
 * VM-wide KVM state (see kvm-vm.h). The rebuild order follows what KVM
 * checks: devices before memslots and wiring (irqfds need the irqchip),
 * vCPUs in between (kvm-restore.c), device state and the clock last, as
 * QEMU loads them after the vCPUs on an incoming migration.
 */
#define LOG_PREFIX "kvm: "

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#include "kvm-exec.h"
#include "kvm-vm.h"
#include "log.h"

static int blob_get(struct kvm_exec *x, int fd, unsigned long req, void *buf, size_t len,
		    protobuf_c_boolean *has, ProtobufCBinaryData *out)
{
	long ret = kx_ioctl(x, fd, req, buf, len, KX_IN | KX_OUT);

	if (ret == -ENXIO)
		return 0;	/* no such device in the kernel: QEMU emulates it */
	if (ret < 0)
		return ret;
	out->data = malloc(len);
	if (!out->data)
		return -ENOMEM;
	memcpy(out->data, buf, len);
	out->len = len;
	*has = 1;
	return 0;
}

static int capture_irqchip(struct kvm_exec *x, int vm_fd, KvmVmEntry *e)
{
	static const struct {
		int chip;
		size_t has, data;
	} chips[] = {
		{ KVM_IRQCHIP_PIC_MASTER, offsetof(KvmVmEntry, has_pic_master), offsetof(KvmVmEntry, pic_master) },
		{ KVM_IRQCHIP_PIC_SLAVE, offsetof(KvmVmEntry, has_pic_slave), offsetof(KvmVmEntry, pic_slave) },
		{ KVM_IRQCHIP_IOAPIC, offsetof(KvmVmEntry, has_ioapic), offsetof(KvmVmEntry, ioapic) },
	};
	struct kvm_irqchip chip;
	unsigned i;
	int ret = 0;

	for (i = 0; i < sizeof(chips) / sizeof(chips[0]) && !ret; i++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = chips[i].chip;
		ret = blob_get(x, vm_fd, KVM_GET_IRQCHIP, &chip, sizeof(chip),
			       (protobuf_c_boolean *)((char *)e + chips[i].has),
			       (ProtobufCBinaryData *)((char *)e + chips[i].data));
	}
	return ret;
}

int kvm_vm_capture(struct kvm_exec *x, int vm_fd, KvmVmEntry *e)
{
	struct kvm_pit_state2 pit = {};
	struct kvm_clock_data clock = {};
	int ret;

	ret = capture_irqchip(x, vm_fd, e);
	if (!ret)
		ret = blob_get(x, vm_fd, KVM_GET_PIT2, &pit, sizeof(pit), &e->has_pit2, &e->pit2);
	if (!ret)
		ret = blob_get(x, vm_fd, KVM_GET_CLOCK, &clock, sizeof(clock), &e->has_clock, &e->clock);
	if (ret)
		pr_err("VM fd %d: reading the irqchip, PIT or clock: %s\n", vm_fd, strerror(-ret));
	return ret;
}

long kvm_vm_create(struct kvm_exec *x, int kvm_fd, const KvmVmEntry *e)
{
	long fd = kx_ioctl_val(x, kvm_fd, KVM_CREATE_VM, e->vm_type);

	if (fd < 0)
		pr_err("KVM_CREATE_VM(type %u): %s\n", e->vm_type, strerror((int)-fd));
	return fd;
}

int kvm_vm_set_vmx_addrs(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e)
{
	uint64_t map = e->identity_map_addr;
	long ret = 0;

	if (e->has_tss_addr)
		ret = kx_ioctl_val(x, vm_fd, KVM_SET_TSS_ADDR, e->tss_addr);
	if (ret < 0) {
		pr_err("KVM_SET_TSS_ADDR(%#llx): %s\n", (unsigned long long)e->tss_addr, strerror((int)-ret));
		return ret;
	}
	if (e->has_identity_map_addr)
		ret = kx_ioctl(x, vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &map, sizeof(map), KX_IN);
	if (ret < 0)
		pr_err("KVM_SET_IDENTITY_MAP_ADDR(%#llx): %s\n", (unsigned long long)map, strerror((int)-ret));
	return ret < 0 ? ret : 0;
}

int kvm_vm_create_devices(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e)
{
	struct kvm_pit_config pit = { .flags = e->has_pit_flags ? e->pit_flags : 0 };
	long ret = 0;

	if (e->has_pic_master || e->has_ioapic)
		ret = kx_ioctl_val(x, vm_fd, KVM_CREATE_IRQCHIP, 0);
	if (!ret && e->has_pit2)
		ret = kx_ioctl(x, vm_fd, KVM_CREATE_PIT2, &pit, sizeof(pit), KX_IN);
	if (ret < 0)
		pr_err("creating the in-kernel irqchip or PIT: %s\n", strerror((int)-ret));
	return ret < 0 ? ret : 0;
}

static int wire_memslots(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e)
{
	size_t i;

	for (i = 0; i < e->n_memslots; i++) {
		const KvmMemslotEntry *m = e->memslots[i];
		struct kvm_userspace_memory_region r = {
			.slot = m->as_id << 16 | m->slot,
			.flags = m->flags,
			.guest_phys_addr = m->gpa,
			.memory_size = m->size,
			.userspace_addr = m->hva,
		};
		long ret = kx_ioctl(x, vm_fd, KVM_SET_USER_MEMORY_REGION, &r, sizeof(r), KX_IN);

		if (ret < 0) {
			pr_err("memslot %u/%u (gpa %#llx, %llu MiB at %#llx): %s\n", m->as_id, m->slot,
			       (unsigned long long)m->gpa, (unsigned long long)m->size >> 20,
			       (unsigned long long)m->hva, strerror((int)-ret));
			return ret;
		}
	}
	return 0;
}

/*
 * QEMU's coalesced zones (the RTC's index port, ...), in the order KVM had
 * them. Their ring is the third page of each vCPU's mapping, which goes
 * back with its contents; a PIO zone is KVM_REGISTER_COALESCED_MMIO with
 * pio = 1 (KVM_CAP_COALESCED_PIO), there is no ioctl of its own.
 */
static int wire_zones(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e)
{
	size_t i;

	for (i = 0; i < e->n_zones; i++) {
		const KvmZoneEntry *z = e->zones[i];
		struct kvm_coalesced_mmio_zone r = { .addr = z->addr, .size = z->size, .pio = z->pio };
		long ret = kx_ioctl(x, vm_fd, KVM_REGISTER_COALESCED_MMIO, &r, sizeof(r), KX_IN);

		if (ret < 0) {
			pr_err("coalesced %s zone at %#llx (%u bytes): %s\n", z->pio ? "PIO" : "MMIO",
			       (unsigned long long)z->addr, z->size, strerror((int)-ret));
			return ret;
		}
	}
	return 0;
}

static int wire_irqfds(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e)
{
	size_t i;

	for (i = 0; i < e->n_irqfds; i++) {
		const KvmIrqfdEntry *q = e->irqfds[i];
		struct kvm_irqfd r = { .fd = q->fd, .gsi = q->gsi };
		long ret;

		if (q->has_resample_fd) {
			r.flags = KVM_IRQFD_FLAG_RESAMPLE;
			r.resamplefd = q->resample_fd;
		}
		ret = kx_ioctl(x, vm_fd, KVM_IRQFD, &r, sizeof(r), KX_IN);
		if (ret < 0) {
			pr_err("irqfd of GSI %u on fd %d: %s\n", q->gsi, q->fd, strerror((int)-ret));
			return ret;
		}
	}
	return 0;
}

static int wire_ioeventfds(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e)
{
	size_t i;

	for (i = 0; i < e->n_ioeventfds; i++) {
		const KvmIoeventfdEntry *q = e->ioeventfds[i];
		struct kvm_ioeventfd r = {
			.datamatch = q->datamatch, .addr = q->addr, .len = q->len,
			.fd = q->fd, .flags = q->flags,
		};
		long ret = kx_ioctl(x, vm_fd, KVM_IOEVENTFD, &r, sizeof(r), KX_IN);

		if (ret < 0) {
			pr_err("ioeventfd at %#llx (%u bytes) on fd %d: %s\n",
			       (unsigned long long)q->addr, q->len, q->fd, strerror((int)-ret));
			return ret;
		}
	}
	return 0;
}

/* QEMU's GSI routing table (its IOAPIC pin overrides, MSI routes), whole. */
static int wire_routes(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e)
{
	struct kvm_irq_routing *r;
	size_t i, len;
	long ret;

	if (!e->n_routes)
		return 0;	/* KVM's default table (from KVM_CREATE_IRQCHIP) is QEMU's */
	len = sizeof(*r) + e->n_routes * sizeof(r->entries[0]);
	r = calloc(1, len);
	if (!r)
		return -ENOMEM;
	r->nr = e->n_routes;
	for (i = 0; i < e->n_routes; i++) {
		if (e->routes[i]->entry.len != sizeof(r->entries[0])) {
			free(r);
			pr_err("GSI route %zu: %zu bytes in the image\n", i, e->routes[i]->entry.len);
			return -EINVAL;
		}
		memcpy(&r->entries[i], e->routes[i]->entry.data, sizeof(r->entries[0]));
	}
	ret = kx_ioctl(x, vm_fd, KVM_SET_GSI_ROUTING, r, len, KX_IN);
	free(r);
	if (ret < 0)
		pr_err("KVM_SET_GSI_ROUTING (%zu routes): %s\n", e->n_routes, strerror((int)-ret));
	return ret < 0 ? ret : 0;
}

int kvm_vm_msr_filter(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e)
{
	const KvmMsrFilterEntry *f = e->msr_filter;
	size_t offs[KVM_MSR_FILTER_MAX_RANGES], len = sizeof(struct kvm_msr_filter), at, i;
	struct kvm_msr_filter *arg;
	char *buf;
	long ret;

	if (!f)
		return 0;
	if (f->n_ranges > KVM_MSR_FILTER_MAX_RANGES)
		return -EINVAL;
	for (i = 0; i < f->n_ranges; i++)
		len += f->ranges[i]->bitmap.len;
	buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	arg = (struct kvm_msr_filter *)buf;
	arg->flags = f->flags;
	for (i = 0, at = sizeof(*arg); i < f->n_ranges; i++) {
		const KvmMsrRangeEntry *r = f->ranges[i];

		arg->ranges[i].flags = r->flags;
		arg->ranges[i].nmsrs = r->nmsrs;
		arg->ranges[i].base = r->first;
		memcpy(buf + at, r->bitmap.data, r->bitmap.len);
		arg->ranges[i].bitmap = (void *)(uintptr_t)at;	/* made an address by kx */
		offs[i] = offsetof(struct kvm_msr_filter, ranges) + i * sizeof(arg->ranges[0]) +
			  offsetof(struct kvm_msr_filter_range, bitmap);
		at += r->bitmap.len;
	}
	ret = kx_ioctl_relocated(x, vm_fd, KVM_X86_SET_MSR_FILTER, buf, len, offs, f->n_ranges);
	free(buf);
	if (ret < 0)
		pr_err("KVM_X86_SET_MSR_FILTER (%zu ranges): %s\n", f->n_ranges, strerror((int)-ret));
	return ret < 0 ? ret : 0;
}

int kvm_vm_wire(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e)
{
	int ret = wire_memslots(x, vm_fd, e);

	if (!ret)
		ret = wire_zones(x, vm_fd, e);
	if (!ret)
		ret = wire_routes(x, vm_fd, e);
	if (!ret)
		ret = wire_irqfds(x, vm_fd, e);
	if (!ret)
		ret = wire_ioeventfds(x, vm_fd, e);
	return ret;
}

static int blob_set(struct kvm_exec *x, int fd, unsigned long req, const char *what,
		    protobuf_c_boolean has, const ProtobufCBinaryData *b, size_t want)
{
	long ret;

	if (!has)
		return 0;
	if (b->len != want) {
		pr_err("%s: %zu bytes in the image, KVM takes %zu\n", what, b->len, want);
		return -EINVAL;
	}
	ret = kx_ioctl(x, fd, req, b->data, b->len, KX_IN);
	if (ret < 0)
		pr_err("%s: %s\n", what, strerror((int)-ret));
	return ret < 0 ? ret : 0;
}

int kvm_vm_restore_state(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e)
{
	struct kvm_clock_data clock;
	int ret;

	ret = blob_set(x, vm_fd, KVM_SET_PIT2, "KVM_SET_PIT2", e->has_pit2, &e->pit2,
		       sizeof(struct kvm_pit_state2));
	if (!ret)
		ret = blob_set(x, vm_fd, KVM_SET_IRQCHIP, "KVM_SET_IRQCHIP (PIC master)",
			       e->has_pic_master, &e->pic_master, sizeof(struct kvm_irqchip));
	if (!ret)
		ret = blob_set(x, vm_fd, KVM_SET_IRQCHIP, "KVM_SET_IRQCHIP (PIC slave)",
			       e->has_pic_slave, &e->pic_slave, sizeof(struct kvm_irqchip));
	if (!ret)
		ret = blob_set(x, vm_fd, KVM_SET_IRQCHIP, "KVM_SET_IRQCHIP (IOAPIC)", e->has_ioapic,
			       &e->ioapic, sizeof(struct kvm_irqchip));
	if (ret || !e->has_clock)
		return ret;
	if (e->clock.len != sizeof(clock)) {
		pr_err("KVM_SET_CLOCK: %zu bytes in the image\n", e->clock.len);
		return -EINVAL;
	}
	/* The guest's clock goes on from the dump (as after QEMU's loadvm). */
	memcpy(&clock, e->clock.data, sizeof(clock));
	clock.flags = 0;
	return blob_set(x, vm_fd, KVM_SET_CLOCK, "KVM_SET_CLOCK", 1,
			&(ProtobufCBinaryData){ sizeof(clock), (uint8_t *)&clock }, sizeof(clock));
}
