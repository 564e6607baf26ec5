// SPDX-License-Identifier: GPL-2.0
/*
 * vCPU state capture and rebuild (criu-plugin/kvm-vcpu.c) on real KVM VMs
 * made by the test: a vCPU given known state is read, written into a fresh
 * vCPU of another VM and read again, locally and -- as the plugin does it --
 * inside another process with injected ioctls (rsys).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <linux/kvm.h>
#include <cmocka.h>

#include "helpers.h"
#include "kvm-exec.h"
#include "kvm-vcpu.h"
#include "rsys.h"

#define MSR_IA32_TSC		0x10
#define MSR_IA32_SYSENTER_CS	0x174
#define MSR_KERNEL_GS_BASE	0xc0000102
#define MSR_STAR		0xc0000081
#define APIC_TASKPRI		0x80

static int kvm_fd = -1;

/* A VM with an in-kernel irqchip and one vCPU of the given id. */
struct vm {
	int fd;
	int vcpu;
};

static void vm_create(struct vm *vm, unsigned vcpu_id)
{
	vm->fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	assert_true(vm->fd >= 0);
	assert_int_equal(ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0), 0);
	vm->vcpu = ioctl(vm->fd, KVM_CREATE_VCPU, vcpu_id);
	assert_true(vm->vcpu >= 0);
}

static void vm_destroy(struct vm *vm)
{
	close(vm->vcpu);
	close(vm->fd);
}

static void set_supported_cpuid(int vcpu)
{
	struct {
		struct kvm_cpuid2 c;
		struct kvm_cpuid_entry2 e[256];
	} cpuid = { .c.nent = 256 };

	assert_int_equal(ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, &cpuid), 0);
	assert_int_equal(ioctl(vcpu, KVM_SET_CPUID2, &cpuid), 0);
}

static void set_msr(int vcpu, uint32_t index, uint64_t value)
{
	struct {
		struct kvm_msrs m;
		struct kvm_msr_entry e;
	} msrs = { .m.nmsrs = 1, .e = { .index = index, .data = value } };

	assert_int_equal(ioctl(vcpu, KVM_SET_MSRS, &msrs), 1);
}

/* State no fresh vCPU has: what a capture must carry over. */
static void give_known_state(int vcpu)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_lapic_state lapic;
	struct kvm_debugregs dregs;

	set_supported_cpuid(vcpu);
	assert_int_equal(ioctl(vcpu, KVM_GET_REGS, &regs), 0);
	regs.rax = 0x1122334455667788ull;
	regs.r15 = 0xfeedfacecafebeefull;
	regs.rip = 0xfff0;
	regs.rflags = 0x246;
	assert_int_equal(ioctl(vcpu, KVM_SET_REGS, &regs), 0);
	assert_int_equal(ioctl(vcpu, KVM_GET_SREGS, &sregs), 0);
	sregs.ds.base = 0x12340;
	sregs.ds.selector = 0x1234;
	sregs.gdt.base = 0x5000;
	sregs.gdt.limit = 0x27;
	assert_int_equal(ioctl(vcpu, KVM_SET_SREGS, &sregs), 0);
	set_msr(vcpu, MSR_IA32_SYSENTER_CS, 0x10);
	set_msr(vcpu, MSR_KERNEL_GS_BASE, 0xdead0000ull);
	set_msr(vcpu, MSR_STAR, 0x0023001000000000ull);
	assert_int_equal(ioctl(vcpu, KVM_GET_LAPIC, &lapic), 0);
	lapic.regs[APIC_TASKPRI] = 0x20;
	assert_int_equal(ioctl(vcpu, KVM_SET_LAPIC, &lapic), 0);
	assert_int_equal(ioctl(vcpu, KVM_GET_DEBUGREGS, &dregs), 0);
	dregs.db[0] = 0x4000;
	dregs.db[1] = 0x8000;
	assert_int_equal(ioctl(vcpu, KVM_SET_DEBUGREGS, &dregs), 0);
}

static void capture(struct kvm_exec *x, int vm_fd, int vcpu, unsigned id, struct kvm_vcpu_state *st)
{
	uint32_t *index, nr;

	assert_int_equal(kvm_msr_index(kvm_fd, &index, &nr), 0);
	assert_true(nr > 0);
	st->id = id;
	assert_int_equal(kvm_vcpu_capture(x, vm_fd, vcpu, index, nr, st), 0);
	free(index);
}

static uint64_t msr_of(const struct kvm_vcpu_state *st, uint32_t index)
{
	const struct kvm_msrs *m = st->piece[KVP_MSRS].data;
	uint32_t i;

	for (i = 0; i < m->nmsrs; i++)
		if (m->entries[i].index == index)
			return m->entries[i].data;
	fail_msg("MSR %#x not captured", index);
	return 0;
}

static void assert_known_state(const struct kvm_vcpu_state *st)
{
	const struct kvm_regs *regs = st->piece[KVP_REGS].data;
	const struct kvm_lapic_state *lapic = st->piece[KVP_LAPIC].data;
	const struct kvm_debugregs *dregs = st->piece[KVP_DEBUGREGS].data;
	uint64_t ds_base, gdt_base;

	assert_non_null(regs);
	assert_int_equal(regs->rax, 0x1122334455667788ull);
	assert_int_equal(regs->r15, 0xfeedfacecafebeefull);
	assert_int_equal(regs->rip, 0xfff0);
	if (st->sregs2) {
		const struct kvm_sregs2 *s = st->piece[KVP_SREGS].data;

		ds_base = s->ds.base;
		gdt_base = s->gdt.base;
	} else {
		const struct kvm_sregs *s = st->piece[KVP_SREGS].data;

		ds_base = s->ds.base;
		gdt_base = s->gdt.base;
	}
	assert_int_equal(ds_base, 0x12340);
	assert_int_equal(gdt_base, 0x5000);
	assert_int_equal(msr_of(st, MSR_IA32_SYSENTER_CS), 0x10);
	assert_int_equal(msr_of(st, MSR_KERNEL_GS_BASE), 0xdead0000ull);
	assert_int_equal(msr_of(st, MSR_STAR), 0x0023001000000000ull);
	assert_non_null(lapic);
	assert_int_equal((unsigned char)lapic->regs[APIC_TASKPRI], 0x20);
	assert_int_equal(dregs->db[0], 0x4000);
	assert_true(st->piece[KVP_CPUID].len > sizeof(struct kvm_cpuid2));
	assert_true(st->piece[KVP_XSAVE].len >= sizeof(struct kvm_xsave));
	assert_true(st->tsc_khz > 0);
}

/* Every piece equal, but for the TSC, which ran on in between. */
static void assert_same_state(const struct kvm_vcpu_state *a, const struct kvm_vcpu_state *b)
{
	enum kvm_vcpu_piece p;

	assert_int_equal(a->sregs2, b->sregs2);
	assert_int_equal(a->tsc_khz, b->tsc_khz);
	for (p = 0; p < KVP_NR; p++) {
		const struct kvm_blob *x = &a->piece[p], *y = &b->piece[p];

		if (p == KVP_MSRS) {
			const struct kvm_msrs *m = x->data, *n = y->data;
			uint32_t i;

			assert_int_equal(m->nmsrs, n->nmsrs);
			for (i = 0; i < m->nmsrs; i++) {
				assert_int_equal(m->entries[i].index, n->entries[i].index);
				if (m->entries[i].index != MSR_IA32_TSC &&
				    m->entries[i].data != n->entries[i].data)
					fail_msg("MSR %#x: %#llx became %#llx", m->entries[i].index,
						 (unsigned long long)m->entries[i].data,
						 (unsigned long long)n->entries[i].data);
			}
			continue;
		}
		if (x->len != y->len || memcmp(x->data, y->data, x->len))
			fail_msg("%s differs after the rebuild (%u and %u bytes)", kvm_vcpu_piece_name(p),
				 x->len, y->len);
	}
}

static void test_local_round_trip(void **state)
{
	struct kvm_exec local = { NULL };
	struct kvm_vcpu_state a = {}, b = {};
	struct vm src, dst;

	(void)state;
	vm_create(&src, 0);
	give_known_state(src.vcpu);
	capture(&local, src.fd, src.vcpu, 0, &a);
	assert_known_state(&a);

	vm_create(&dst, 0);
	assert_int_equal(kvm_vcpu_rebuild(&local, dst.vcpu, &a), 0);
	capture(&local, dst.fd, dst.vcpu, 0, &b);
	assert_same_state(&a, &b);

	kvm_vcpu_state_free(&a);
	kvm_vcpu_state_free(&b);
	vm_destroy(&src);
	vm_destroy(&dst);
}

/* A refused piece fails the rebuild and names it. */
static void test_rebuild_refuses_bad_state(void **state)
{
	struct kvm_exec local = { NULL };
	struct kvm_vcpu_state a = {};
	struct kvm_msrs *m;
	struct vm src, dst;

	(void)state;
	vm_create(&src, 0);
	give_known_state(src.vcpu);
	capture(&local, src.fd, src.vcpu, 0, &a);
	m = a.piece[KVP_MSRS].data;
	m->entries[m->nmsrs / 2].index = 0x7fff0000;	/* no such MSR */
	vm_create(&dst, 0);
	assert_int_equal(kvm_vcpu_rebuild(&local, dst.vcpu, &a), -EINVAL);
	kvm_vcpu_state_free(&a);
	vm_destroy(&src);
	vm_destroy(&dst);
}

/* ------------------------------------------------ inside another process */

struct child_fds {
	int vm, vcpu0, vcpu1;
};

static __attribute__((noreturn)) void child_main(int rep, int cmd)
{
	struct child_fds fds;
	struct vm vm;
	struct kvm_regs regs;
	char c;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	vm_create(&vm, 0);
	give_known_state(vm.vcpu);
	fds.vm = vm.fd;
	fds.vcpu0 = vm.vcpu;
	fds.vcpu1 = ioctl(vm.fd, KVM_CREATE_VCPU, 1);
	if (write(rep, &fds, sizeof(fds)) != sizeof(fds))
		_exit(2);
	/* Blocked here while the parent works in us; then say what vCPU 1 holds. */
	if (read(cmd, &c, 1) != 1)
		_exit(3);
	if (ioctl(fds.vcpu1, KVM_GET_REGS, &regs))
		_exit(4);
	if (write(rep, &regs, sizeof(regs)) != sizeof(regs))
		_exit(5);
	_exit(0);
}

static void test_remote_capture_and_rebuild(void **state)
{
	struct kvm_vcpu_state a = {}, b = {};
	struct child_fds fds;
	struct kvm_regs regs;
	struct rsys r = {};
	struct kvm_exec x = { &r };
	int rep[2], cmd[2], status;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(rep), 0);
	assert_int_equal(pipe(cmd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid)
		child_main(rep[1], cmd[0]);
	assert_int_equal(read(rep[0], &fds, sizeof(fds)), sizeof(fds));
	assert_true(fds.vcpu1 >= 0);

	assert_int_equal(rsys_seize(&r, pid), 0);
	/* In our own process these fds are not the child's VM. */
	capture(&x, fds.vm, fds.vcpu0, 0, &a);
	assert_known_state(&a);
	a.id = 1;
	assert_int_equal(kvm_vcpu_rebuild(&x, fds.vcpu1, &a), 0);
	capture(&x, fds.vm, fds.vcpu1, 1, &b);
	assert_same_state(&a, &b);
	assert_int_equal(rsys_detach(&r), 0);

	assert_int_equal(write(cmd[1], "g", 1), 1);
	assert_int_equal(read(rep[0], &regs, sizeof(regs)), sizeof(regs));
	assert_int_equal(regs.rax, 0x1122334455667788ull);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	kvm_vcpu_state_free(&a);
	kvm_vcpu_state_free(&b);
	close(rep[0]);
	close(rep[1]);
	close(cmd[0]);
	close(cmd[1]);
}

/* KVM refuses VM ioctls from another process: why kvm-exec exists. */
static void test_other_mm_refused(void **state)
{
	struct vm vm;
	struct kvm_regs regs;
	int status;
	pid_t pid;

	(void)state;
	vm_create(&vm, 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid)
		_exit(ioctl(vm.vcpu, KVM_GET_REGS, &regs) < 0 && errno == EIO ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	vm_destroy(&vm);
}

/* Every test makes VMs: the binary skips without /dev/kvm. */
static const char *open_kvm(void)
{
	static char why[128];

	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd >= 0)
		return NULL;
	snprintf(why, sizeof(why), "cannot open /dev/kvm: %s", strerror(errno));
	return why;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local_round_trip),
		cmocka_unit_test(test_rebuild_refuses_bad_state),
		cmocka_unit_test(test_other_mm_refused),
		cmocka_unit_test(test_remote_capture_and_rebuild),
	};

	th_skip_program_if(open_kvm());
	th_skip_program_if(th_need_root());	/* ptrace of a child for the remote case */
	return th_run_group(tests, NULL, NULL);
}
