// SPDX-License-Identifier: GPL-2.0
/*
 * The KVM part of a restore (see kvm-restore.h). CRIU restores QEMU with a
 * stand-in on each KVM fd (RESTORE_EXT_FILE) and, where each vCPU was
 * mapped, the anonymous copy the dump left. In RESUME_DEVICES_LATE, all
 * threads stopped, the VM is rebuilt with syscalls injected into QEMU's
 * main thread, in the order KVM needs:
 *
 *   KVM_CREATE_VM on the restored /dev/kvm fd, moved onto the VM's old fd
 *   VMX's TSS and identity-map addresses, when the image has them
 *   the settings QEMU had made (kvm-caps), irqchip and PIT (kvm-vm)
 *   memslots at the same slot ids and addresses, coalesced zones, GSI
 *   routes, irqfds, ioeventfds
 *   each vCPU: KVM_CREATE_VCPU with its id onto its old fd, its stats fd
 *     (KVM_GET_STATS_FD) onto the old one if QEMU had one, its state
 *     (kvm-vcpu), and its kvm_run mapped back at the old address with the
 *     saved contents
 *   PIT, PIC, IOAPIC and clock state
 *
 * and read back through kvm-bpf to check the settings took. When the
 * threads run, each vCPU thread first maps its vCPU again (the dump left
 * it armed to), then returns from KVM_RUN with -EINTR, which QEMU answers
 * by entering KVM_RUN again, now on the new vCPU.
 */
#define LOG_PREFIX "kvm: "

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/kvm.h>

#include "ckpt-id.h"
#include "criu-weak.h"
#include "dump.h"
#include "fault-inject.h"
#include "kvm-bpf.h"
#include "kvm-caps.h"
#include "kvm-exec.h"
#include "kvm-image.h"
#include "kvm-restore.h"
#include "kvm-state.h"
#include "kvm-vcpu.h"
#include "kvm-vm.h"
#include "log.h"
#include "rsys.h"

static KvmFilesEntry *files;

int kvm_restore_init(void)
{
	const char *run_id = ckpt_id_checkpoint_run_id();
	char err[128];
	int ret;

	ret = kvm_img_read(criu_get_image_dir(), KVM_FILES_IMG, &kvm_files_entry__descriptor,
			   (ProtobufCMessage **)&files, err, sizeof(err));
	if (ret == -ENOENT)
		return 0;
	if (!ret)
		ret = kvm_bpf_prepare();	/* for the check after each rebuild */
	if (!ret && (!run_id || strcmp(files->criu_run_id, run_id))) {
		snprintf(err, sizeof(err), "written by CRIU run %s, the checkpoint is run %s",
			 files->criu_run_id, run_id ? run_id : "(none)");
		ret = -EINVAL;
	}
	if (ret) {
		pr_err("%s: %s\n", KVM_FILES_IMG, err[0] ? err : strerror(-ret));
		kvm_restore_finish();
	}
	return ret;
}

int kvm_restore_ext_file(int id)
{
	size_t i;
	int fd;

	for (i = 0; files && i < files->n_files; i++) {
		if (files->files[i]->id != (uint32_t)id)
			continue;
		/* The VM and vCPUs are made at resume; till then /dev/null holds the number. */
		if (files->files[i]->kind == KVM_FILE_KIND__KVM_DEV)
			fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		else
			fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd < 0)
			pr_perror("KVM file %#x: cannot open its stand-in", id);
		return fd < 0 ? -errno : fd;
	}
	return -ENOTSUP;
}

static int read_vm(pid_t pid, KvmVmEntry **e)
{
	const char *run_id = ckpt_id_checkpoint_run_id();
	char name[64], err[128];
	int ret;

	kvm_state_image_name(name, sizeof(name), qp_ns_pid(pid));
	ret = kvm_img_read(criu_get_image_dir(), name, &kvm_vm_entry__descriptor,
			   (ProtobufCMessage **)e, err, sizeof(err));
	if (ret == -ENOENT)
		return ret;
	if (!ret && (!run_id || strcmp((*e)->criu_run_id, run_id))) {
		snprintf(err, sizeof(err), "written by CRIU run %s, the checkpoint is run %s",
			 (*e)->criu_run_id, run_id ? run_id : "(none)");
		ret = -EINVAL;
	}
	if (ret) {
		pr_err("pid %d: %s: %s\n", pid, name, err[0] ? err : strerror(-ret));
		if (*e)
			protobuf_c_message_free_unpacked(&(*e)->base, NULL);
		*e = NULL;
	}
	return ret;
}

bool kvm_restore_has_vm(pid_t pid)
{
	char name[64];

	kvm_state_image_name(name, sizeof(name), qp_ns_pid(pid));
	return !faccessat(criu_get_image_dir(), name, F_OK, 0);
}

/* Put the new fd on the number QEMU knows (dup3 over the stand-in). */
static int move_fd(struct rsys *r, long fd, int to, const char *what)
{
	long ret;

	if (fd < 0)
		return (int)fd;
	ret = rsys_call(r, SYS_dup3, fd, to, O_CLOEXEC, 0, 0, 0);
	rsys_call(r, SYS_close, fd, 0, 0, 0, 0, 0);
	if (ret < 0)
		pr_err("moving the new %s onto fd %d: %s\n", what, to, strerror((int)-ret));
	return ret < 0 ? (int)ret : 0;
}

/* The vCPU's kvm_run where QEMU had it, with what it held at the dump. */
static int map_run(struct rsys *r, const KvmVcpuEntry *v)
{
	struct kvm_run *run = (struct kvm_run *)v->run.data;
	long addr;

	if (v->run.len != v->run_len || v->run_len < sizeof(*run))
		return -EINVAL;
	run->immediate_exit = 0;
	addr = rsys_call(r, SYS_mmap, v->run_addr, v->run_len, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, v->fd, 0);
	if (addr != (long)v->run_addr) {
		pr_err("vCPU %u: mapping kvm_run at %#llx: %ld\n", v->id,
		       (unsigned long long)v->run_addr, addr);
		return addr < 0 ? (int)addr : -EFAULT;
	}
	return rsys_write(r, v->run_addr, v->run.data, v->run_len);
}

/* The mask QEMU gave KVM_RUN (it unblocks its kick signal only there). */
static int set_sigmask(struct kvm_exec *x, const KvmVcpuEntry *v)
{
	struct {
		struct kvm_signal_mask m;
		uint64_t set;
	} q = { .m.len = sizeof(uint64_t) };
	long ret;

	if (!v->has_sigmask)
		return 0;
	if (v->sigmask.len != sizeof(q.set))
		return -EINVAL;
	memcpy(&q.set, v->sigmask.data, sizeof(q.set));
	ret = kx_ioctl(x, v->fd, KVM_SET_SIGNAL_MASK, &q, sizeof(q), KX_IN);
	if (ret < 0)
		pr_err("vCPU %u: KVM_SET_SIGNAL_MASK: %s\n", v->id, strerror((int)-ret));
	return ret < 0 ? ret : 0;
}

static int rebuild_vcpu(struct rsys *r, struct kvm_exec *x, const KvmVmEntry *e,
			const KvmVcpuEntry *v)
{
	struct kvm_vcpu_state st;
	int ret;

	ret = move_fd(r, kx_ioctl_val(x, e->vm_fd, KVM_CREATE_VCPU, v->id), v->fd, "vCPU");
	if (ret)
		return ret;
	/* A new stats fd: its counters start again from 0, as a new vCPU's do. */
	if (v->has_stats_fd)
		ret = move_fd(r, kx_ioctl_val(x, v->fd, KVM_GET_STATS_FD, 0), v->stats_fd,
			      "vCPU stats fd");
	if (!ret)
		ret = set_sigmask(x, v);
	if (ret)
		return ret;
	kvm_state_vcpu(v, &st);
	ret = kvm_vcpu_rebuild(x, v->fd, &st);
	if (!ret)
		ret = map_run(r, v);
	return ret;
}

static int rebuild_vm(struct rsys *r, struct kvm_exec *x, const KvmVmEntry *e)
{
	size_t i;
	int ret;

	if (!e->n_kvm_fds)
		return -EINVAL;
	ret = move_fd(r, kvm_vm_create(x, e->kvm_fds[0], e), e->vm_fd, "VM");
	if (!ret)
		ret = kvm_vm_set_vmx_addrs(x, e->vm_fd, e);
	if (!ret)
		ret = kvm_caps_rebuild(x, e->vm_fd, e);
	if (!ret)
		ret = kvm_vm_msr_filter(x, e->vm_fd, e);
	if (!ret)
		ret = kvm_vm_create_devices(x, e->vm_fd, e);
	if (!ret)
		ret = kvm_vm_wire(x, e->vm_fd, e);
	for (i = 0; !ret && i < e->n_vcpus; i++)
		ret = rebuild_vcpu(r, x, e, e->vcpus[i]);
	if (!ret)
		ret = kvm_vm_restore_state(x, e->vm_fd, e);
	return ret;
}

/* What the kernel shows of the rebuilt VM's zones, as "PIO 0x70+1" each (for the log). */
static void log_zones(pid_t pid, const struct kvm_kstate *ks)
{
	char buf[512] = "";
	size_t at = 0;
	unsigned i;

	for (i = 0; i < ks->nr_zones && at < sizeof(buf); i++)
		at += snprintf(buf + at, sizeof(buf) - at, " %s %#llx+%u", ks->zones[i].pio ? "PIO" : "MMIO",
			       (unsigned long long)ks->zones[i].addr, ks->zones[i].size);
	pr_info("pid %d: coalesced zones of the rebuilt VM:%s\n", pid, i ? buf : " none");
}

/* The coalesced zones, one by one and in order, as the dump saw them. */
static int verify_zones(pid_t pid, const KvmVmEntry *e, const struct kvm_kstate *ks)
{
	size_t i;

	log_zones(pid, ks);
	if (ks->nr_zones != e->n_zones) {
		pr_err("pid %d: the rebuilt VM has %u coalesced zones, the dumped one %zu\n", pid,
		       ks->nr_zones, e->n_zones);
		return -EINVAL;
	}
	for (i = 0; i < e->n_zones; i++) {
		const struct kvm_coalesced_mmio_zone *z = &ks->zones[i];

		if (z->addr == e->zones[i]->addr && z->size == e->zones[i]->size &&
		    z->pio == (uint32_t)e->zones[i]->pio)
			continue;
		pr_err("pid %d: coalesced zone %zu of the rebuilt VM is %s %#llx+%u, the dumped one's "
		       "%s %#llx+%u\n", pid, i, z->pio ? "PIO" : "MMIO", (unsigned long long)z->addr,
		       z->size, e->zones[i]->pio ? "PIO" : "MMIO",
		       (unsigned long long)e->zones[i]->addr, e->zones[i]->size);
		return -EINVAL;
	}
	return 0;
}

/* VMX's addresses, where the image has them (an address KVM did not keep reads 0). */
static int verify_vmx(pid_t pid, const KvmVmEntry *e, const struct kvm_kstate *ks)
{
	if (!e->has_tss_addr && !e->has_identity_map_addr)
		return 0;
	if (ks->vmx.present && (!e->has_tss_addr || ks->vmx.tss_addr == e->tss_addr) &&
	    (!e->has_identity_map_addr || ks->vmx.identity_map_addr == e->identity_map_addr))
		return 0;
	pr_err("pid %d: the rebuilt VM's TSS and identity-map addresses are %#llx and %#llx%s, the "
	       "dumped one's %#llx and %#llx\n", pid, (unsigned long long)ks->vmx.tss_addr,
	       (unsigned long long)ks->vmx.identity_map_addr, ks->vmx.present ? "" : " (not read)",
	       (unsigned long long)e->tss_addr, (unsigned long long)e->identity_map_addr);
	return -EINVAL;
}

/* The rebuilt VM as the kernel sees it: what the dump saw. */
static int verify(pid_t pid, const KvmVmEntry *e)
{
	struct kvm_kstate ks = {};
	int ret = kvm_bpf_read(pid, &ks);

	if (!ret)
		ret = kvm_caps_verify(e, &ks);
	if (!ret && (ks.nr_vcpus != e->n_vcpus || ks.nr_irqfds != e->n_irqfds ||
		     ks.nr_ioeventfds != e->n_ioeventfds)) {
		pr_err("pid %d: the rebuilt VM has %u vCPUs, %u irqfds, %u ioeventfds; the dumped one "
		       "%zu, %zu, %zu\n", pid, ks.nr_vcpus, ks.nr_irqfds, ks.nr_ioeventfds, e->n_vcpus,
		       e->n_irqfds, e->n_ioeventfds);
		ret = -EINVAL;
	}
	if (!ret && e->n_routes && ks.nr_routes != e->n_routes) {
		pr_err("pid %d: the rebuilt VM has %u GSI routes, the dumped one %zu\n", pid,
		       ks.nr_routes, e->n_routes);
		ret = -EINVAL;
	}
	if (!ret && ks.msr_filter.present != !!e->msr_filter) {
		pr_err("pid %d: the rebuilt VM %s an MSR filter, the dumped one %s\n", pid,
		       ks.msr_filter.present ? "has" : "lacks", e->msr_filter ? "had" : "did not");
		ret = -EINVAL;
	}
	if (!ret)
		ret = verify_zones(pid, e, &ks);
	if (!ret)
		ret = verify_vmx(pid, e, &ks);
	kvm_bpf_free(&ks);
	return ret;
}

int kvm_restore_resume(pid_t pid)
{
	KvmVmEntry *e = NULL;
	struct rsys r = {};
	struct kvm_exec x = { &r };
	int ret;

	ret = read_vm(pid, &e);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	ret = rsys_attach_stopped(&r, pid);
	if (!ret) {
		fault_crash_point("kvm-rebuild");
		ret = rebuild_vm(&r, &x, e);
	}
	if (!ret)
		ret = verify(pid, e);
	if (r.pid && rsys_detach(&r) && !ret)
		ret = -EIO;
	if (!ret)
		pr_info("pid %d: KVM VM rebuilt: %zu vCPUs, %zu memslots, %zu irqfds, %zu ioeventfds, "
			"%zu coalesced zones\n", pid, e->n_vcpus, e->n_memslots, e->n_irqfds,
			e->n_ioeventfds, e->n_zones);
	else
		pr_err("pid %d: rebuilding its KVM VM failed: %s\n", pid, strerror(-ret));
	protobuf_c_message_free_unpacked(&e->base, NULL);
	return ret;
}

void kvm_restore_finish(void)
{
	kvm_bpf_release();
	if (files)
		protobuf_c_message_free_unpacked(&files->base, NULL);
	files = NULL;
}
