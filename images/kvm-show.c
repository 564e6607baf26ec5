// SPDX-License-Identifier: GPL-2.0
/*
 * Showing a KVM state image: the VM's settings, memslots and wiring, and
 * each vCPU's registers that tell where it was (RIP, RSP, CR0/CR3/CR4,
 * EFER), decoded from the uapi structs the image holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "kvm-image.h"
#include "kvm-show.h"

bool kvm_img_is_kvm(const char *file)
{
	char magic[8] = "";
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	bool yes;

	if (fd < 0)
		return false;
	yes = read(fd, magic, sizeof(magic)) == sizeof(magic) && !memcmp(magic, "CQKVMST", 8);
	close(fd);
	return yes;
}

static void show_vcpu_regs(FILE *out, const KvmVcpuEntry *v)
{
	const struct kvm_regs *r = (const void *)v->regs.data;
	uint64_t cr0 = 0, cr3 = 0, cr4 = 0, efer = 0, nmsrs = 0;

	if (v->has_sregs && v->sregs2 && v->sregs.len == sizeof(struct kvm_sregs2)) {
		const struct kvm_sregs2 *s = (const void *)v->sregs.data;

		cr0 = s->cr0, cr3 = s->cr3, cr4 = s->cr4, efer = s->efer;
	} else if (v->has_sregs && v->sregs.len == sizeof(struct kvm_sregs)) {
		const struct kvm_sregs *s = (const void *)v->sregs.data;

		cr0 = s->cr0, cr3 = s->cr3, cr4 = s->cr4, efer = s->efer;
	}
	if (v->has_msrs && v->msrs.len >= sizeof(struct kvm_msrs))
		nmsrs = ((const struct kvm_msrs *)v->msrs.data)->nmsrs;
	fprintf(out, "  vcpu %u: fd %d, thread %d, kvm_run at 0x%" PRIx64 " (%u bytes), TSC %u kHz\n",
		v->id, v->fd, v->tid, v->run_addr, v->run_len, v->tsc_khz);
	if (v->has_stats_fd)
		fprintf(out, "    stats fd %d\n", v->stats_fd);
	if (v->has_regs && v->regs.len == sizeof(*r))
		fprintf(out, "    rip 0x%llx rsp 0x%llx rax 0x%llx rflags 0x%llx\n",
			(unsigned long long)r->rip, (unsigned long long)r->rsp,
			(unsigned long long)r->rax, (unsigned long long)r->rflags);
	fprintf(out, "    cr0 0x%" PRIx64 " cr3 0x%" PRIx64 " cr4 0x%" PRIx64 " efer 0x%" PRIx64
		"%s\n", cr0, cr3, cr4, efer, v->sregs2 ? " (sregs2)" : "");
	fprintf(out, "    %" PRIu64 " MSRs, xsave %zu bytes, lapic %s, cpuid %zu bytes, mcg_cap 0x%" PRIx64
		"\n", nmsrs, v->has_xsave ? v->xsave.len : 0, v->has_lapic ? "in kernel" : "none",
		v->has_cpuid ? v->cpuid.len : 0, v->has_mcg_cap ? v->mcg_cap : 0);
}

static void show_vm_text(FILE *out, const char *file, const KvmVmEntry *e)
{
	size_t i;

	fprintf(out, "%s: KVM state image, version %d\n", file, KVM_IMG_VERSION);
	fprintf(out, "  pid %u, CRIU run %s, VM type %u, VM fd %d, /dev/kvm fds", e->pid,
		e->criu_run_id, e->vm_type, e->vm_fd);
	for (i = 0; i < e->n_kvm_fds; i++)
		fprintf(out, " %d", e->kvm_fds[i]);
	fprintf(out, "\n  in-kernel: PIC %s, IOAPIC %s, PIT %s, kvmclock %s\n",
		e->has_pic_master ? "yes" : "no", e->has_ioapic ? "yes" : "no",
		e->has_pit2 ? "yes" : "no", e->has_clock ? "yes" : "no");
	for (i = 0; i < e->n_fields; i++)
		fprintf(out, "  set by QEMU: %s = %" PRIu64 "\n", e->fields[i]->name, e->fields[i]->value);
	for (i = 0; i < e->n_memslots; i++) {
		const KvmMemslotEntry *m = e->memslots[i];

		fprintf(out, "  memslot %u/%u: gpa 0x%" PRIx64 " size 0x%" PRIx64 " hva 0x%" PRIx64
			" flags 0x%x\n", m->as_id, m->slot, m->gpa, m->size, m->hva, m->flags);
	}
	for (i = 0; i < e->n_irqfds; i++)
		fprintf(out, "  irqfd: GSI %u on fd %d%s\n", e->irqfds[i]->gsi, e->irqfds[i]->fd,
			e->irqfds[i]->has_resample_fd ? " (resample)" : "");
	for (i = 0; i < e->n_ioeventfds; i++)
		fprintf(out, "  ioeventfd: 0x%" PRIx64 " len %u flags 0x%x on fd %d\n",
			e->ioeventfds[i]->addr, e->ioeventfds[i]->len, e->ioeventfds[i]->flags,
			e->ioeventfds[i]->fd);
	for (i = 0; i < e->n_zones; i++)
		fprintf(out, "  coalesced %s zone: 0x%" PRIx64 " size %u\n", e->zones[i]->pio ? "PIO" : "MMIO",
			e->zones[i]->addr, e->zones[i]->size);
	if (e->has_tss_addr)
		fprintf(out, "  VMX TSS at 0x%" PRIx64 "\n", e->tss_addr);
	if (e->has_identity_map_addr)
		fprintf(out, "  VMX identity map at 0x%" PRIx64 "\n", e->identity_map_addr);
	fprintf(out, "  %zu GSI routes, %zu vCPUs\n", e->n_routes, e->n_vcpus);
	for (i = 0; i < e->n_vcpus; i++)
		show_vcpu_regs(out, e->vcpus[i]);
}

static void show_vm_json(FILE *out, const char *file, const KvmVmEntry *e)
{
	size_t i;

	fprintf(out, "{\n  \"file\": \"%s\",\n  \"kind\": \"kvm\",\n  \"version\": %d,\n", file,
		KVM_IMG_VERSION);
	fprintf(out, "  \"pid\": %u,\n  \"criu_run_id\": \"%s\",\n  \"vm_type\": %u,\n  \"vm_fd\": %d,\n",
		e->pid, e->criu_run_id, e->vm_type, e->vm_fd);
	fprintf(out, "  \"memslots\": %zu,\n  \"irqfds\": %zu,\n  \"ioeventfds\": %zu,\n  \"vcpus\": [",
		e->n_memslots, e->n_irqfds, e->n_ioeventfds);
	for (i = 0; i < e->n_vcpus; i++) {
		const KvmVcpuEntry *v = e->vcpus[i];
		const struct kvm_regs *r = (const void *)v->regs.data;

		fprintf(out, "%s\n    {\"id\": %u, \"fd\": %d, \"rip\": %llu}", i ? "," : "", v->id,
			v->fd, v->has_regs && v->regs.len == sizeof(*r) ? (unsigned long long)r->rip : 0);
	}
	fprintf(out, "\n  ]\n}\n");
}

static void show_files(FILE *out, const char *file, const KvmFilesEntry *f)
{
	static const char *const kind[] = { "/dev/kvm", "VM", "vCPU", "vCPU stats" };
	size_t i;

	fprintf(out, "%s: KVM files of CRIU run %s\n", file, f->criu_run_id);
	for (i = 0; i < f->n_files; i++)
		fprintf(out, "  file id %#x: %s\n", f->files[i]->id,
			f->files[i]->kind <= 3 ? kind[f->files[i]->kind] : "?");
}

int kvm_show(FILE *out, const char *file, bool json)
{
	char *copy = strdup(file), *copy2 = strdup(file), *dir, *name, err[128];
	const ProtobufCMessageDescriptor *desc;
	ProtobufCMessage *msg = NULL;
	int dirfd, ret;

	if (!copy || !copy2) {
		free(copy);
		free(copy2);
		return 1;
	}
	name = basename(copy);
	desc = strcmp(name, KVM_FILES_IMG) ? &kvm_vm_entry__descriptor : &kvm_files_entry__descriptor;
	dir = dirname(copy2);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ret = dirfd < 0 ? -errno : kvm_img_read(dirfd, name, desc, &msg, err, sizeof(err));
	if (ret)
		fprintf(stderr, "error: %s: %s\n", file, err[0] ? err : strerror(-ret));
	else if (!out)
		printf("%s: ok (KVM state image)\n", file);
	else if (desc == &kvm_files_entry__descriptor)
		show_files(out, file, (KvmFilesEntry *)msg);
	else if (json)
		show_vm_json(out, file, (KvmVmEntry *)msg);
	else
		show_vm_text(out, file, (KvmVmEntry *)msg);
	if (msg)
		protobuf_c_message_free_unpacked(msg, NULL);
	if (dirfd >= 0)
		close(dirfd);
	free(copy2);
	free(copy);
	return ret ? 1 : 0;
}
