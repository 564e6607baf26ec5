// SPDX-License-Identifier: GPL-2.0
/*
 * Rebuilding the settings QEMU made on its VM (see kvm-caps.h).
 *
 * The rules set each field back the way QEMU set it. Fields that only
 * count things (vCPUs created) or that the rebuild sets by itself (the VM
 * type, the irqchip mode of a full in-kernel irqchip) have no rule and are
 * not compared with a fresh VM.
 */
#define LOG_PREFIX "kvm: "

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#include "kvm-caps.h"
#include "kvm-exec.h"
#include "log.h"

#define IRQCHIP_SPLIT	2	/* enum kvm_irqchip_mode, arch/x86/include/asm/kvm_host.h */

enum rule_kind {
	RULE_IGNORE,		/* a count, or rebuilt elsewhere */
	RULE_CAP,		/* KVM_ENABLE_CAP(cap, args[0] = value) */
	RULE_CAP_NOT,		/* KVM_ENABLE_CAP(cap, arg) when the value is 0 */
	RULE_VM_IOCTL,		/* ioctl(vm, req, value) */
	RULE_SPECIAL,		/* set by a function below */
};

struct cap_rule {
	enum kvm_field field;
	enum rule_kind kind;
	unsigned long num;	/* cap or ioctl */
	unsigned long arg;	/* RULE_CAP_NOT's argument */
};

static const struct cap_rule rules[] = {
	{ .field = KVM_F_CREATED_VCPUS, .kind = RULE_IGNORE },
	{ .field = KVM_F_ONLINE_VCPUS, .kind = RULE_IGNORE },
	{ .field = KVM_F_MAX_VCPUS, .kind = RULE_IGNORE },
	{ .field = KVM_F_VM_TYPE, .kind = RULE_IGNORE },			/* KVM_CREATE_VM's argument */
	{ .field = KVM_F_IRQCHIP_MODE, .kind = RULE_SPECIAL },		/* split, or kvm-vm's KVM_CREATE_IRQCHIP */
	{ .field = KVM_F_NR_RESERVED_IOAPIC_PINS, .kind = RULE_SPECIAL },
	{ .field = KVM_F_X2APIC_FORMAT, .kind = RULE_SPECIAL },
	{ .field = KVM_F_X2APIC_BCAST_QUIRK_OFF, .kind = RULE_SPECIAL },
	{ .field = KVM_F_MANUAL_DIRTY_LOG, .kind = RULE_CAP, .num = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 },
	{ .field = KVM_F_MAX_VCPU_IDS, .kind = RULE_CAP, .num = KVM_CAP_MAX_VCPU_ID },
	{ .field = KVM_F_BSP_VCPU_ID, .kind = RULE_VM_IOCTL, .num = KVM_SET_BOOT_CPU_ID },
	{ .field = KVM_F_DISABLED_EXITS, .kind = RULE_CAP, .num = KVM_CAP_X86_DISABLE_EXITS },
	{ .field = KVM_F_DISABLED_QUIRKS, .kind = RULE_CAP, .num = KVM_CAP_DISABLE_QUIRKS2 },
	{ .field = KVM_F_USER_SPACE_MSR_MASK, .kind = RULE_CAP, .num = KVM_CAP_X86_USER_SPACE_MSR },
	{ .field = KVM_F_EXCEPTION_PAYLOAD, .kind = RULE_CAP, .num = KVM_CAP_EXCEPTION_PAYLOAD },
	{ .field = KVM_F_TRIPLE_FAULT_EVENT, .kind = RULE_CAP, .num = KVM_CAP_X86_TRIPLE_FAULT_EVENT },
	{ .field = KVM_F_EXIT_ON_EMULATION_ERROR, .kind = RULE_CAP, .num = KVM_CAP_EXIT_ON_EMULATION_FAILURE },
	{ .field = KVM_F_HYPERCALL_EXIT_ENABLED, .kind = RULE_CAP, .num = KVM_CAP_EXIT_HYPERCALL },
	{ .field = KVM_F_MSR_PLATFORM_INFO, .kind = RULE_CAP, .num = KVM_CAP_MSR_PLATFORM_INFO },
	{ .field = KVM_F_ENABLE_PMU, .kind = RULE_CAP_NOT, .num = KVM_CAP_PMU_CAPABILITY, .arg = KVM_PMU_CAP_DISABLE },
	{ .field = KVM_F_DEFAULT_TSC_KHZ, .kind = RULE_VM_IOCTL, .num = KVM_SET_TSC_KHZ },
};

static const struct cap_rule *rule_of(enum kvm_field f)
{
	unsigned i;

	for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (rules[i].field == f)
			return &rules[i];
	return NULL;	/* the dirty ring, bus-lock and notify exits: not rebuilt */
}

static int add_field(KvmVmEntry *e, const char *name, uint64_t value)
{
	KvmFieldEntry **grown, *f;

	grown = realloc(e->fields, (e->n_fields + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	e->fields = grown;
	f = malloc(sizeof(*f));
	if (!f)
		return -ENOMEM;
	kvm_field_entry__init(f);
	f->name = strdup(name);
	f->value = value;
	if (!f->name) {
		free(f);
		return -ENOMEM;
	}
	e->fields[e->n_fields++] = f;
	return 0;
}

int kvm_caps_save(const struct kvm_kstate *vm, const struct kvm_kstate *fresh, KvmVmEntry *e)
{
	unsigned f;
	int ret;

	for (f = KVM_F_FIRST_OPTIONAL; f < KVM_F_NR; f++) {
		const struct cap_rule *r = rule_of(f);

		if (!kvm_bpf_has_field(vm, f))
			continue;	/* not in this kernel: nothing QEMU could set */
		if (!r && vm->field[f] != fresh->field[f]) {
			pr_err("QEMU set %s to %llu (a new VM has %llu): the plugin cannot set that "
			       "again at restore\n", kvm_bpf_field_name(f),
			       (unsigned long long)vm->field[f], (unsigned long long)fresh->field[f]);
			return -EOPNOTSUPP;
		}
		if (!r || r->kind == RULE_IGNORE || vm->field[f] == fresh->field[f])
			continue;
		ret = add_field(e, kvm_bpf_field_name(f), vm->field[f]);
		if (ret)
			return ret;
	}
	return 0;
}

static const KvmFieldEntry *saved(const KvmVmEntry *e, enum kvm_field f)
{
	const char *name = kvm_bpf_field_name(f);
	size_t i;

	for (i = 0; i < e->n_fields; i++)
		if (!strcmp(e->fields[i]->name, name))
			return e->fields[i];
	return NULL;
}

static long enable_cap(struct kvm_exec *x, int vm_fd, unsigned long cap, uint64_t arg)
{
	struct kvm_enable_cap c = { .cap = cap, .args = { arg } };

	return kx_ioctl(x, vm_fd, KVM_ENABLE_CAP, &c, sizeof(c), KX_IN);
}

/* The split irqchip and the x2APIC API, both set by one cap from two fields. */
static long rebuild_special(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e, enum kvm_field f)
{
	const KvmFieldEntry *mode = saved(e, KVM_F_IRQCHIP_MODE);
	const KvmFieldEntry *pins = saved(e, KVM_F_NR_RESERVED_IOAPIC_PINS);
	const KvmFieldEntry *fmt = saved(e, KVM_F_X2APIC_FORMAT);
	const KvmFieldEntry *quirk = saved(e, KVM_F_X2APIC_BCAST_QUIRK_OFF);

	switch (f) {
	case KVM_F_IRQCHIP_MODE:
		if (mode->value != IRQCHIP_SPLIT)
			return 0;	/* the full irqchip: KVM_CREATE_IRQCHIP in kvm-vm.c */
		return enable_cap(x, vm_fd, KVM_CAP_SPLIT_IRQCHIP, pins ? pins->value : 0);
	case KVM_F_X2APIC_FORMAT:
		return enable_cap(x, vm_fd, KVM_CAP_X2APIC_API,
				  (fmt->value ? KVM_X2APIC_API_USE_32BIT_IDS : 0) |
				  (quirk && quirk->value ? KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK : 0));
	case KVM_F_X2APIC_BCAST_QUIRK_OFF:
		if (fmt)
			return 0;	/* set with the format */
		return enable_cap(x, vm_fd, KVM_CAP_X2APIC_API, KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK);
	default:
		return 0;	/* the pins go with the split irqchip */
	}
}

static long rebuild_one(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e, const struct cap_rule *r,
			uint64_t v)
{
	switch (r->kind) {
	case RULE_CAP:
		return enable_cap(x, vm_fd, r->num, v);
	case RULE_CAP_NOT:
		return v ? 0 : enable_cap(x, vm_fd, r->num, r->arg);
	case RULE_VM_IOCTL:
		return kx_ioctl_val(x, vm_fd, r->num, v);
	case RULE_SPECIAL:
		return rebuild_special(x, vm_fd, e, r->field);
	default:
		return 0;
	}
}

static const struct cap_rule *rule_by_name(const char *name)
{
	unsigned i;

	for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (!strcmp(kvm_bpf_field_name(rules[i].field), name))
			return &rules[i];
	return NULL;
}

int kvm_caps_rebuild(struct kvm_exec *x, int vm_fd, const KvmVmEntry *e)
{
	size_t i;

	for (i = 0; i < e->n_fields; i++) {
		const struct cap_rule *r = rule_by_name(e->fields[i]->name);
		long ret;

		if (!r) {
			pr_err("the image sets %s, which this plugin does not know\n", e->fields[i]->name);
			return -EINVAL;
		}
		ret = rebuild_one(x, vm_fd, e, r, e->fields[i]->value);
		if (ret < 0) {
			pr_err("setting %s to %llu again: %s\n", e->fields[i]->name,
			       (unsigned long long)e->fields[i]->value, strerror((int)-ret));
			return ret;
		}
	}
	return 0;
}

int kvm_caps_verify(const KvmVmEntry *e, const struct kvm_kstate *rebuilt)
{
	size_t i;

	for (i = 0; i < e->n_fields; i++) {
		const struct cap_rule *r = rule_by_name(e->fields[i]->name);

		if (!r || rebuilt->field[r->field] == e->fields[i]->value)
			continue;
		pr_err("the rebuilt VM has %s = %llu, the dumped one had %llu\n", e->fields[i]->name,
		       (unsigned long long)rebuilt->field[r->field],
		       (unsigned long long)e->fields[i]->value);
		return -EINVAL;
	}
	return 0;
}
