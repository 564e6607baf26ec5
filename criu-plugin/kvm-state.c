// SPDX-License-Identifier: GPL-2.0
/* Building and reading the KVM state image's messages (see kvm-state.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvm-state.h"

void kvm_state_image_name(char *buf, size_t len, pid_t pid)
{
	snprintf(buf, len, "kvm-%d.img", pid);
}

static void *dup_mem(const void *p, size_t len)
{
	void *q = malloc(len ? len : 1);

	if (q && len)
		memcpy(q, p, len);
	return q;
}

/* n zeroed entries, each *_init'ed by the caller; NULL if any is missing. */
static void **new_array(size_t n, size_t size)
{
	void **a = calloc(n ? n : 1, sizeof(*a));
	size_t i;

	for (i = 0; a && i < n; i++) {
		a[i] = calloc(1, size);
		if (a[i])
			continue;
		while (i--)
			free(a[i]);
		free(a);
		return NULL;
	}
	return a;
}

static int add_memslots(KvmVmEntry *e, const struct kvm_kstate *ks)
{
	unsigned i, n = 0;

	e->memslots = (KvmMemslotEntry **)new_array(ks->nr_memslots, sizeof(KvmMemslotEntry));
	if (!e->memslots)
		return -ENOMEM;
	for (i = 0; i < ks->nr_memslots; i++) {
		const struct kvm_bpf_memslot *m = &ks->memslots[i];
		KvmMemslotEntry *o = e->memslots[n];

		if (m->internal)
			continue;	/* KVM makes its own (APIC access page, TSS) */
		kvm_memslot_entry__init(o);
		o->as_id = m->as_id;
		o->slot = m->id;
		o->flags = m->flags;
		o->gpa = m->gpa;
		o->size = m->size;
		o->hva = m->hva;
		n++;
	}
	/* The entries past n stay allocated but unused: free them now. */
	for (i = n; i < ks->nr_memslots; i++)
		free(e->memslots[i]);
	e->n_memslots = n;
	return 0;
}

static int add_wiring(KvmVmEntry *e, const struct kvm_kstate *ks)
{
	unsigned i;

	e->irqfds = (KvmIrqfdEntry **)new_array(ks->nr_irqfds, sizeof(KvmIrqfdEntry));
	e->ioeventfds = (KvmIoeventfdEntry **)new_array(ks->nr_ioeventfds, sizeof(KvmIoeventfdEntry));
	if (!e->irqfds || !e->ioeventfds)
		return -ENOMEM;
	e->n_irqfds = ks->nr_irqfds;
	for (i = 0; i < ks->nr_irqfds; i++) {
		KvmIrqfdEntry *o = e->irqfds[i];

		kvm_irqfd_entry__init(o);
		o->gsi = ks->irqfds[i].gsi;
		o->fd = ks->irqfds[i].fd;
		o->has_resample_fd = ks->irqfds[i].resample_fd >= 0;
		o->resample_fd = ks->irqfds[i].resample_fd;
	}
	e->n_ioeventfds = ks->nr_ioeventfds;
	for (i = 0; i < ks->nr_ioeventfds; i++) {
		KvmIoeventfdEntry *o = e->ioeventfds[i];

		kvm_ioeventfd_entry__init(o);
		o->addr = ks->ioeventfds[i].addr;
		o->len = ks->ioeventfds[i].len;
		o->datamatch = ks->ioeventfds[i].datamatch;
		o->flags = ks->ioeventfds[i].flags;
		o->fd = ks->ioeventfds[i].fd;
	}
	return 0;
}

static int add_routes(KvmVmEntry *e, const struct kvm_kstate *ks)
{
	unsigned i;

	e->routes = (KvmRouteEntry **)new_array(ks->nr_routes, sizeof(KvmRouteEntry));
	if (!e->routes)
		return -ENOMEM;
	for (i = 0; i < ks->nr_routes; i++) {
		KvmRouteEntry *o = e->routes[i];

		kvm_route_entry__init(o);
		o->gsi = ks->routes[i].gsi;
		o->type = ks->routes[i].type;
		o->entry.data = dup_mem(&ks->routes[i], sizeof(ks->routes[i]));
		if (!o->entry.data) {
			e->n_routes = i + 1;
			return -ENOMEM;
		}
		o->entry.len = sizeof(ks->routes[i]);
	}
	e->n_routes = ks->nr_routes;
	return 0;
}

/* The coalesced MMIO/PIO zones, in KVM's order; and VMX's addresses when read. */
static int add_zones(KvmVmEntry *e, const struct kvm_kstate *ks)
{
	unsigned i;

	e->zones = (KvmZoneEntry **)new_array(ks->nr_zones, sizeof(KvmZoneEntry));
	if (!e->zones)
		return -ENOMEM;
	e->n_zones = ks->nr_zones;
	for (i = 0; i < ks->nr_zones; i++) {
		KvmZoneEntry *o = e->zones[i];

		kvm_zone_entry__init(o);
		o->addr = ks->zones[i].addr;
		o->size = ks->zones[i].size;
		o->pio = ks->zones[i].pio;
	}
	/* 0 is what a VM has before QEMU sets either: nothing to set again. */
	e->has_tss_addr = ks->vmx.present && ks->vmx.tss_addr;
	e->tss_addr = ks->vmx.tss_addr;
	e->has_identity_map_addr = ks->vmx.present && ks->vmx.identity_map_addr;
	e->identity_map_addr = ks->vmx.identity_map_addr;
	return 0;
}

/* The MSR filter, each range's bitmap as long as its MSRs need. */
static int add_msr_filter(KvmVmEntry *e, const struct kvm_bpf_msr_filter *f)
{
	KvmMsrFilterEntry *o;
	unsigned i;

	if (!f->present)
		return 0;
	o = e->msr_filter = malloc(sizeof(*o));
	if (!o)
		return -ENOMEM;
	kvm_msr_filter_entry__init(o);
	o->flags = f->flags;
	o->ranges = (KvmMsrRangeEntry **)new_array(f->nr_ranges, sizeof(KvmMsrRangeEntry));
	if (!o->ranges)
		return -ENOMEM;
	for (i = 0; i < f->nr_ranges; i++) {
		const struct kvm_bpf_msr_range *r = &f->range[i];
		KvmMsrRangeEntry *q = o->ranges[i];
		size_t len = (r->nmsrs + 63) / 64 * 8;

		kvm_msr_range_entry__init(q);
		o->n_ranges = i + 1;
		q->flags = r->flags;
		q->nmsrs = r->nmsrs;
		q->first = r->base;
		q->bitmap.data = dup_mem(r->bitmap, len);
		if (!q->bitmap.data)
			return -ENOMEM;
		q->bitmap.len = len;
	}
	o->n_ranges = f->nr_ranges;
	return 0;
}

KvmVmEntry *kvm_state_new_vm(pid_t pid, const char *run_id, const struct kvm_found *k,
			     const struct kvm_kstate *ks)
{
	KvmVmEntry *e = malloc(sizeof(*e));

	if (!e)
		return NULL;
	kvm_vm_entry__init(e);
	e->pid = pid;
	e->criu_run_id = strdup(run_id);
	e->vm_type = ks->field[KVM_F_VM_TYPE];
	e->vm_fd = k->vm_fd;
	e->kvm_fds = dup_mem(k->kvm_fds, k->nr_kvm_fds * sizeof(int32_t));
	e->n_kvm_fds = k->nr_kvm_fds;
	e->vcpus = calloc(k->nr_vcpus ? k->nr_vcpus : 1, sizeof(*e->vcpus));
	if (!e->criu_run_id || !e->kvm_fds || !e->vcpus || add_memslots(e, ks) || add_wiring(e, ks) ||
	    add_routes(e, ks) || add_zones(e, ks) || add_msr_filter(e, &ks->msr_filter)) {
		protobuf_c_message_free_unpacked(&e->base, NULL);
		return NULL;
	}
	return e;
}

/* Where each piece lives in the vCPU message. */
static ProtobufCBinaryData *piece_field(KvmVcpuEntry *o, enum kvm_vcpu_piece p,
					protobuf_c_boolean **has)
{
	switch (p) {
	case KVP_EVENTS: *has = &o->has_events; return &o->events;
	case KVP_MP_STATE: *has = &o->has_mp_state; return &o->mp_state;
	case KVP_REGS: *has = &o->has_regs; return &o->regs;
	case KVP_XSAVE: *has = &o->has_xsave; return &o->xsave;
	case KVP_XCRS: *has = &o->has_xcrs; return &o->xcrs;
	case KVP_SREGS: *has = &o->has_sregs; return &o->sregs;
	case KVP_MSRS: *has = &o->has_msrs; return &o->msrs;
	case KVP_LAPIC: *has = &o->has_lapic; return &o->lapic;
	case KVP_DEBUGREGS: *has = &o->has_debugregs; return &o->debugregs;
	case KVP_CPUID: *has = &o->has_cpuid; return &o->cpuid;
	default: return NULL;
	}
}

int kvm_state_add_vcpu(KvmVmEntry *e, const struct kvm_vcpu_state *st,
		       const struct kvm_found_vcpu *v, const struct kvm_bpf_vcpu *kv, const void *run)
{
	KvmVcpuEntry *o = malloc(sizeof(*o));
	enum kvm_vcpu_piece p;

	if (!o)
		return -ENOMEM;
	kvm_vcpu_entry__init(o);
	e->vcpus[e->n_vcpus++] = o;
	o->id = st->id;
	o->fd = v->fd;
	o->run_addr = v->run_addr;
	o->run_len = v->run_len;
	o->tid = v->tid;
	o->has_stats_fd = v->stats_fd >= 0;
	o->stats_fd = v->stats_fd;
	o->tsc_khz = st->tsc_khz;
	o->sregs2 = st->sregs2;
	o->has_mcg_cap = st->mcg_cap != 0;
	o->mcg_cap = st->mcg_cap;
	o->run.data = dup_mem(run, v->run_len);
	o->run.len = v->run_len;
	if (!o->run.data)
		return -ENOMEM;
	if (kv && kv->sigset_active) {
		o->sigmask.data = dup_mem(&kv->sigset, sizeof(kv->sigset));
		if (!o->sigmask.data)
			return -ENOMEM;
		o->sigmask.len = sizeof(kv->sigset);
		o->has_sigmask = 1;
	}
	for (p = 0; p < KVP_NR; p++) {
		protobuf_c_boolean *has;
		ProtobufCBinaryData *b = piece_field(o, p, &has);

		if (!st->piece[p].len)
			continue;
		b->data = dup_mem(st->piece[p].data, st->piece[p].len);
		if (!b->data)
			return -ENOMEM;
		b->len = st->piece[p].len;
		*has = 1;
	}
	return 0;
}

void kvm_state_vcpu(const KvmVcpuEntry *e, struct kvm_vcpu_state *st)
{
	enum kvm_vcpu_piece p;

	memset(st, 0, sizeof(*st));
	st->id = e->id;
	st->sregs2 = e->sregs2;
	st->tsc_khz = e->tsc_khz;
	st->mcg_cap = e->has_mcg_cap ? e->mcg_cap : 0;
	for (p = 0; p < KVP_NR; p++) {
		protobuf_c_boolean *has;
		ProtobufCBinaryData *b = piece_field((KvmVcpuEntry *)e, p, &has);

		if (*has) {
			st->piece[p].data = b->data;
			st->piece[p].len = b->len;
		}
	}
}
