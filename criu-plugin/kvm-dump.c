// SPDX-License-Identifier: GPL-2.0
/*
 * The KVM part of a dump (see kvm-dump.h and Documentation/design.md,
 * "KVM"). In CHECKPOINT_DEVICES, with every QEMU thread stopped by CRIU:
 *
 *  1. find KVM's fds, vCPU mappings and worker threads (kvm-find), and what
 *     no ioctl tells (kvm-bpf: memslots, irqfds, ioeventfds, settings);
 *  2. find each vCPU's thread stopped on the return of KVM_RUN with
 *     -EINTR: KVM completes a vCPU's pending port or MMIO I/O at the start
 *     of KVM_RUN, before it can return -EINTR, so such a vCPU has nothing
 *     pending that its state would not show; a thread frozen in QEMU's
 *     emulation of an exit is brought there first (kvm-quiesce.c);
 *  3. read the VM and every vCPU with KVM's get ioctls inside QEMU
 *     (kvm-exec, kvm-vm, kvm-vcpu) and write kvm-PID.img;
 *  4. make the vCPU mappings dumpable: each vCPU thread is left armed
 *     (rsys_detach_armed) to mmap its vCPU fd back over the same address
 *     the moment it runs again, and the mapping is replaced by an
 *     anonymous copy of its contents, which CRIU dumps as plain memory.
 *     Whatever happens next -- the dump fails, --leave-running, CRIU dies,
 *     or a restore -- the thread's first act is to map kvm_run again;
 *  5. KVM's worker thread (NX huge page recovery, a kernel worker in
 *     QEMU's thread group since Linux 6.13) never runs user code: CRIU
 *     cannot dump it, so it needs a CRIU that leaves such threads out
 *     (scripts/criu-patches); a new VM gets a new one from KVM.
 *
 * Nothing is closed in QEMU: KVM's fds stay where they are and CRIU hands
 * them to DUMP_EXT_FILE, which claims them.
 */
#define LOG_PREFIX "kvm: "

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <linux/kvm.h>

#include "ckpt-id.h"
#include "criu-weak.h"
#include "dump.h"
#include "fault-inject.h"
#include "kvm-bpf.h"
#include "kvm-caps.h"
#include "kvm-dump.h"
#include "kvm-exec.h"
#include "kvm-find.h"
#include "kvm-image.h"
#include "kvm-quiesce.h"
#include "kvm-state.h"
#include "kvm-vcpu.h"
#include "kvm-vm.h"
#include "log.h"
#include "proc.h"
#include "rsys.h"

#define MAX_KVM_FILES	(KVM_FIND_MAX_VCPUS + KVM_FIND_MAX_FDS + 1)

/* Files CRIU left to us in this dump, for kvm-files.img. */
static KvmFileEntry files[MAX_KVM_FILES];
static KvmFileEntry *file_ptrs[MAX_KVM_FILES];
static unsigned nr_files;
/* VMs captured in this dump (their image names, removed if the dump fails) */
static pid_t captured[KVM_FIND_MAX_FDS];
static int nr_captured;
/* A fresh VM's fields, read once per dump (kvm_dump_prepare or the first capture) */
static struct kvm_kstate fresh;
static bool have_fresh;

struct kvm_dump {
	pid_t pid;
	struct kvm_found k;
	struct kvm_kstate ks;
	struct rsys leader;
	struct kvm_exec x;
	KvmVmEntry *e;
};

/* ------------------------------------------------------------ vCPU threads */

static bool is_worker(const struct kvm_found *k, pid_t tid)
{
	int i;

	for (i = 0; i < k->nr_workers; i++)
		if (k->workers[i] == tid)
			return true;
	return false;
}

#define QUIESCE_BUDGET_MS	200	/* per thread run on alone (kvm-quiesce.c) */

/* The threads CRIU froze elsewhere than on KVM_RUN's return, for step 2. */
struct busy_threads {
	int nr;
	pid_t tid[KVM_FIND_MAX_VCPUS];
};

struct thread_walk {
	struct kvm_dump *d;
	struct busy_threads *busy;
};

static int note_thread(pid_t tid, void *arg)
{
	struct thread_walk *w = arg;
	struct kvm_dump *d = w->d;
	struct busy_threads *busy = w->busy;
	struct kvm_found_vcpu *v;
	int blocked;

	if (is_worker(&d->k, tid))
		return 0;
	v = kvm_found_vcpu_by_fd(&d->k, kvm_thread_parked_fd(tid, &blocked));
	if (v)
		v->tid = tid;
	else if (!blocked && tid != d->pid && busy->nr < KVM_FIND_MAX_VCPUS)
		busy->tid[busy->nr++] = tid;	/* QEMU's main thread runs no vCPU */
	return 0;
}

static int note_threads(struct kvm_dump *d, struct busy_threads *busy)
{
	struct thread_walk w = { .d = d, .busy = busy };

	return proc_task_for_each(d->pid, note_thread, &w);
}

static int find_vcpu_threads(struct kvm_dump *d)
{
	struct busy_threads busy = { 0 };
	int i, missing = 0, ret;

	ret = note_threads(d, &busy);
	for (i = 0; !ret && i < d->k.nr_vcpus; i++)
		missing += d->k.vcpus[i].tid <= 0;
	for (i = 0; !ret && missing && i < busy.nr; i++) {
		struct kvm_found_vcpu *v = kvm_drive_to_kvm_run(d->pid, busy.tid[i], &d->k,
								 QUIESCE_BUDGET_MS);

		if (v) {
			v->tid = busy.tid[i];
			missing--;
		}
	}
	for (i = 0; !ret && i < d->k.nr_vcpus; i++) {
		if (d->k.vcpus[i].tid > 0)
			continue;
		/* Its thread is in QEMU's device emulation, waiting for another. */
		pr_err("pid %d: vCPU %u (fd %d) did not get back to KVM_RUN; try the dump again\n",
		       d->pid, d->k.vcpus[i].id, d->k.vcpus[i].fd);
		return -EAGAIN;
	}
	return ret;
}

/* ------------------------------------------------------------ what to refuse */

static int check_supported(struct kvm_dump *d)
{
	int i;

	if (!d->ks.vm_own_mm) {
		pr_err("pid %d: its VM belongs to another process's memory\n", d->pid);
		return -EOPNOTSUPP;
	}
	if (d->k.nr_workers && !&criu_skips_user_workers) {
		pr_err("pid %d: thread %d is KVM's own worker (Linux >= 6.13), which this CRIU would "
		       "wait for forever; it needs the patch that leaves kernel workers out "
		       "(scripts/criu-patches in criu-qemu)\n", d->pid, d->k.workers[0]);
		return -EOPNOTSUPP;
	}
	if (d->ks.vm_fd != d->k.vm_fd || !d->ks.nr_memslots) {
		/* What the kernel showed is not this VM: never save such a state. */
		pr_err("pid %d: the kernel showed VM fd %d with %u memslots; /proc shows fd %d\n",
		       d->pid, d->ks.vm_fd, d->ks.nr_memslots, d->k.vm_fd);
		return -EIO;
	}
	if (!d->k.nr_kvm_fds) {
		pr_err("pid %d: no /dev/kvm fd left open to create the VM again with\n", d->pid);
		return -EOPNOTSUPP;
	}
	if ((int)d->ks.nr_vcpus != d->k.nr_vcpus) {
		pr_err("pid %d: %d vCPU fds, but the VM has %u vCPUs\n", d->pid, d->k.nr_vcpus,
		       d->ks.nr_vcpus);
		return -EOPNOTSUPP;
	}
	if (d->ks.field[KVM_F_VM_TYPE]) {
		/* SEV, SEV-ES, SNP, TDX, protected VMs: state KVM never hands out. */
		pr_err("pid %d: a confidential or protected VM (KVM VM type %llu): not supported\n",
		       d->pid, (unsigned long long)d->ks.field[KVM_F_VM_TYPE]);
		return -EOPNOTSUPP;
	}
	if (d->ks.field[KVM_F_DIRTY_RING_SIZE]) {
		pr_err("pid %d: QEMU uses KVM's dirty ring (kvm.dirty_ring_size = %llu, -accel "
		       "kvm,dirty-ring-size=...), which the plugin cannot rebuild\n", d->pid,
		       (unsigned long long)d->ks.field[KVM_F_DIRTY_RING_SIZE]);
		return -EOPNOTSUPP;
	}
	if (d->k.nr_extra_maps) {
		pr_err("pid %d: %d vCPU mappings besides their kvm_run: not supported\n", d->pid,
		       d->k.nr_extra_maps);
		return -EOPNOTSUPP;
	}
	for (i = 0; i < d->k.nr_vcpus; i++) {
		if (d->k.vcpus[i].run_addr)
			continue;
		pr_err("pid %d: vCPU %u is not mapped (no kvm_run)\n", d->pid, d->k.vcpus[i].id);
		return -EOPNOTSUPP;
	}
	/* Breakpoints, single-stepping and KVM's DR7 of the debugger have no get ioctl. */
	for (i = 0; i < (int)d->ks.nr_vcpus; i++) {
		if (!d->ks.vcpus[i].guest_debug)
			continue;
		pr_err("pid %d: vCPU %u is being debugged (gdbstub, KVM_SET_GUEST_DEBUG)\n", d->pid,
		       d->ks.vcpus[i].id);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* ------------------------------------------------------------ capture */

static const struct kvm_bpf_vcpu *kernel_vcpu(const struct kvm_kstate *ks, int fd)
{
	unsigned i;

	for (i = 0; i < ks->nr_vcpus; i++)
		if (ks->vcpus[i].fd == fd)
			return &ks->vcpus[i];
	return NULL;
}

static int capture_vcpus(struct kvm_dump *d)
{
	uint32_t *msr_index = NULL, nr_msr = 0;
	int kvm_fd, i, ret;

	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0) {
		pr_perror("open /dev/kvm");
		return -errno;
	}
	ret = kvm_msr_index(kvm_fd, &msr_index, &nr_msr);
	close(kvm_fd);
	for (i = 0; !ret && i < d->k.nr_vcpus; i++) {
		struct kvm_found_vcpu *v = &d->k.vcpus[i];
		struct kvm_vcpu_state st = { .id = v->id };
		void *run = malloc(v->run_len);

		ret = run ? kvm_vcpu_capture(&d->x, d->k.vm_fd, v->fd, msr_index, nr_msr, &st) : -ENOMEM;
		if (!ret)
			ret = rsys_read(&d->leader, v->run_addr, run, v->run_len);
		if (!ret)
			ret = kvm_state_add_vcpu(d->e, &st, v, kernel_vcpu(&d->ks, v->fd), run);
		kvm_vcpu_state_free(&st);
		free(run);
	}
	free(msr_index);
	return ret;
}

static int capture(struct kvm_dump *d)
{
	int ret;

	d->e = kvm_state_new_vm(d->pid, ckpt_id_run_id(), &d->k, &d->ks);
	if (!d->e)
		return -ENOMEM;
	ret = kvm_caps_save(&d->ks, &fresh, d->e);
	if (!ret)
		ret = kvm_vm_capture(&d->x, d->k.vm_fd, d->e);
	if (!ret)
		ret = capture_vcpus(d);
	return ret;
}

static int save_image(struct kvm_dump *d)
{
	char name[64];
	int ret;

	kvm_state_image_name(name, sizeof(name), qp_ns_pid(d->pid));
	ret = kvm_img_write(criu_get_image_dir(), name, &d->e->base);
	if (ret)
		pr_err("pid %d: writing %s: %s\n", d->pid, name, strerror(-ret));
	else
		pr_info("pid %d: KVM state of %d vCPUs saved in %s\n", d->pid, d->k.nr_vcpus, name);
	return ret;
}

/* ------------------------------------------------------------ hand-over */

/* Step 4: the thread maps its vCPU again as its first act. */
static int arm_vcpu_thread(const struct kvm_found_vcpu *v)
{
	long args[6] = { (long)v->run_addr, v->run_len, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, v->fd, 0 };
	struct rsys t;
	int ret;

	ret = rsys_attach_stopped(&t, v->tid);
	if (!ret)
		ret = rsys_detach_armed(&t, SYS_mmap, args);
	if (ret)
		pr_err("vCPU %u: cannot leave thread %d armed to map kvm_run again: %s\n", v->id,
		       v->tid, strerror(-ret));
	return ret;
}

/* Step 4: an anonymous copy in place of the vCPU mapping, for CRIU. */
static int replace_mapping(struct kvm_dump *d, const struct kvm_found_vcpu *v, const void *run)
{
	long addr = rsys_call(&d->leader, SYS_mmap, v->run_addr, v->run_len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	if (addr != (long)v->run_addr) {
		pr_err("vCPU %u: replacing its mapping at %#llx: %ld\n", v->id,
		       (unsigned long long)v->run_addr, addr);
		return addr < 0 ? (int)addr : -EFAULT;
	}
	return rsys_write(&d->leader, v->run_addr, run, v->run_len);
}

static int hand_over(struct kvm_dump *d)
{
	int i, ret = 0;

	for (i = 0; !ret && i < d->k.nr_vcpus; i++)
		ret = arm_vcpu_thread(&d->k.vcpus[i]);
	for (i = 0; !ret && i < d->k.nr_vcpus; i++)
		ret = replace_mapping(d, &d->k.vcpus[i], d->e->vcpus[i]->run.data);
	return ret;
}

/* ------------------------------------------------------------ the hook */

static void dump_free(struct kvm_dump *d)
{
	rsys_detach(&d->leader);
	kvm_bpf_free(&d->ks);
	if (d->e)
		protobuf_c_message_free_unpacked(&d->e->base, NULL);
	free(d);
}

/* The BPF iterator loaded and a fresh VM read: the slow parts, done once. */
static int prepare(void)
{
	int ret = kvm_bpf_prepare();

	if (!ret && !have_fresh) {
		ret = kvm_bpf_defaults(&fresh);
		have_fresh = !ret;
	}
	return ret;
}

int kvm_dump_prepare(pid_t pid)
{
	struct kvm_found *k = malloc(sizeof(*k));
	int ret;

	if (!k)
		return -ENOMEM;
	ret = kvm_find(pid, k);
	if (!ret && k->vm_fd >= 0)
		ret = prepare();
	free(k);
	return ret;
}

static int read_kernel_state(struct kvm_dump *d)
{
	int ret = prepare();

	if (!ret)
		ret = kvm_bpf_read(d->pid, &d->ks);
	if (ret)
		pr_err("pid %d: cannot read KVM's state from the kernel: %s\n", d->pid, strerror(-ret));
	return ret;
}

int kvm_dump_checkpoint(pid_t pid)
{
	struct kvm_dump *d = calloc(1, sizeof(*d));
	int ret;

	if (!d)
		return -ENOMEM;
	d->pid = pid;
	d->x.r = &d->leader;
	ret = kvm_find(pid, &d->k);
	if (ret || d->k.vm_fd < 0)
		goto out;
	ret = read_kernel_state(d);
	if (!ret)
		ret = check_supported(d);
	if (!ret)
		ret = find_vcpu_threads(d);
	if (!ret)
		ret = rsys_attach_stopped(&d->leader, pid);
	if (!ret)
		ret = capture(d);
	if (!ret && nr_captured == KVM_FIND_MAX_FDS)
		ret = -EOPNOTSUPP;
	if (!ret)
		ret = save_image(d);
	if (!ret) {
		captured[nr_captured++] = d->pid;
		ret = ckpt_id_register();	/* this checkpoint needs the plugin to restore */
	}
	if (!ret) {
		fault_crash_point("kvm-captured");
		ret = hand_over(d);
	}
	if (!ret)
		fault_crash_point("kvm-handed-over");
out:
	dump_free(d);
	return ret;
}

static int write_files_image(void);

static int file_kind(int lfd, KvmFileKind *kind)
{
	char link[64];

	if (proc_fd_link(PROC_SELF, lfd, link, sizeof(link)) < 0)
		return -ENOTSUP;
	switch (kvm_file_of_link(link)) {
	case KVM_FILE_DEV: *kind = KVM_FILE_KIND__KVM_DEV; return 0;
	case KVM_FILE_VM: *kind = KVM_FILE_KIND__KVM_VM; return 0;
	case KVM_FILE_VCPU: *kind = KVM_FILE_KIND__KVM_VCPU; return 0;
	case KVM_FILE_VCPU_STATS: *kind = KVM_FILE_KIND__KVM_VCPU_STATS; return 0;
	default: return -ENOTSUP;
	}
}

int kvm_dump_ext_file(int lfd, int id)
{
	KvmFileKind kind;

	if (file_kind(lfd, &kind))
		return -ENOTSUP;
	if (!nr_captured) {
		pr_err("KVM file (id %#x) of a VM the plugin did not capture\n", id);
		return -ENOTSUP;
	}
	if (nr_files == MAX_KVM_FILES)
		return -ENOSPC;
	kvm_file_entry__init(&files[nr_files]);
	files[nr_files].id = id;
	files[nr_files].kind = kind;
	file_ptrs[nr_files] = &files[nr_files];
	nr_files++;
	return write_files_image();
}

/* kvm-files.img anew with every file so far: a dump that cannot write it fails. */
static int write_files_image(void)
{
	KvmFilesEntry fe = KVM_FILES_ENTRY__INIT;
	int ret;

	fe.criu_run_id = (char *)ckpt_id_run_id();
	fe.n_files = nr_files;
	fe.files = file_ptrs;
	ret = kvm_img_write(criu_get_image_dir(), KVM_FILES_IMG, &fe.base);
	if (ret)
		pr_err("writing %s: %s\n", KVM_FILES_IMG, strerror(-ret));
	return ret;
}

/* A failed dump leaves no KVM image that could pass for a checkpoint's. */
static void remove_images(void)
{
	char name[64];
	int i;

	for (i = 0; i < nr_captured; i++) {
		kvm_state_image_name(name, sizeof(name), qp_ns_pid(captured[i]));
		unlinkat(criu_get_image_dir(), name, 0);
	}
	if (nr_files)
		unlinkat(criu_get_image_dir(), KVM_FILES_IMG, 0);
}

void kvm_dump_finish(int ret)
{
	if (ret)
		remove_images();
	kvm_bpf_release();
	kvm_bpf_free(&fresh);
	have_fresh = false;
	nr_files = 0;
	nr_captured = 0;
}
