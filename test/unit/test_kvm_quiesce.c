// SPDX-License-Identifier: GPL-2.0
/*
 * kvm-quiesce: a vCPU thread stopped in the middle of handling a port I/O
 * exit (as CRIU may freeze one) is run on to its next KVM_RUN, which
 * returns at once, and is stopped again on KVM_RUN's -EINTR return; the
 * guest then goes on counting as if nothing happened.
 *
 * The guest is four bytes of real-mode code, `inc %ax; out %al,$0x10;
 * jmp .-3`: every OUT is an exit; the test holds the vCPU thread in its
 * "device emulation" between two of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/kvm.h>
#include <cmocka.h>

#include "kvm-find.h"
#include "kvm-quiesce.h"

#define GUEST_CODE	0x1000
#define IO_PORT		0x10

struct shared {
	volatile int hold;		/* the test wants the vCPU thread in "device emulation" */
	volatile int in_device;		/* it is there, spinning until hold is cleared */
	volatile uint64_t outs;		/* port writes the child handled */
	volatile uint64_t gaps;		/* writes whose value was not the last one + 1 */
	volatile uint8_t last_ax;
	volatile pid_t vcpu_tid;
	int vcpu_fd;
	uint64_t run_addr;
	uint32_t run_len;
};

static struct shared *sh;

/* What QEMU's device code does between two KVM_RUNs; the test can hold it here. */
static void emulate_device(void)
{
	if (!sh->hold)
		return;
	sh->in_device = 1;
	while (sh->hold)
		;
	sh->in_device = 0;
}

static void *vcpu_thread(void *arg)
{
	struct kvm_run *run = arg;
	uint8_t al;

	sh->vcpu_tid = syscall(SYS_gettid);
	for (;;) {
		if (ioctl(sh->vcpu_fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			_exit(10);
		}
		if (run->exit_reason != KVM_EXIT_IO || run->io.port != IO_PORT)
			_exit(11);
		al = *((uint8_t *)run + run->io.data_offset);
		/* inc %ax before every OUT: each value is the last one + 1. */
		if (sh->outs && al != (uint8_t)(sh->last_ax + 1))
			sh->gaps++;
		sh->last_ax = al;
		sh->outs++;
		emulate_device();
	}
	return NULL;
}

static __attribute__((noreturn)) void child_main(void)
{
	static const uint8_t code[] = { 0x40, 0xe6, IO_PORT, 0xeb, 0xfb };	/* inc ax; out; jmp */
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm, size;
	struct kvm_userspace_memory_region mem;
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = GUEST_CODE, .rflags = 2 };
	struct kvm_run *run;
	pthread_t t;
	void *ram;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	ram = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memcpy((char *)ram + GUEST_CODE, code, sizeof(code));
	mem = (struct kvm_userspace_memory_region){ .memory_size = 0x10000,
						    .userspace_addr = (uintptr_t)ram };
	if (vm < 0 || ioctl(vm, KVM_SET_USER_MEMORY_REGION, &mem))
		_exit(2);
	sh->vcpu_fd = ioctl(vm, KVM_CREATE_VCPU, 0);
	size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, sh->vcpu_fd, 0);
	if (run == MAP_FAILED || ioctl(sh->vcpu_fd, KVM_GET_SREGS, &sregs))
		_exit(3);
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(sh->vcpu_fd, KVM_SET_SREGS, &sregs) || ioctl(sh->vcpu_fd, KVM_SET_REGS, &regs))
		_exit(4);
	sh->run_addr = (uintptr_t)run;
	sh->run_len = size;
	pthread_create(&t, NULL, vcpu_thread, run);
	pthread_join(t, NULL);
	_exit(0);
}

static void wait_outs(uint64_t more)
{
	uint64_t want = sh->outs + more;
	int i;

	for (i = 0; i < 5000 && sh->outs < want; i++)
		usleep(1000);
	assert_true(sh->outs >= want);
}

static void stop_thread(pid_t tid)
{
	int status;

	assert_int_equal(ptrace(PTRACE_SEIZE, tid, NULL, NULL), 0);
	assert_int_equal(ptrace(PTRACE_INTERRUPT, tid, NULL, NULL), 0);
	assert_int_equal(waitpid(tid, &status, __WALL), tid);
	assert_true(WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP);
}

static void test_drive_from_device_emulation(void **state)
{
	struct kvm_found k = { .vm_fd = -1, .nr_vcpus = 1 };
	struct kvm_found_vcpu *v;
	int blocked, tries, status;
	uint64_t outs_at_drive;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (!pid)
		child_main();
	while (!sh->vcpu_tid)
		usleep(1000);
	wait_outs(100);
	if (!sh->outs)
		skip();

	/* Catch it in "device emulation", between an exit and the next KVM_RUN. */
	sh->hold = 1;
	for (tries = 0; tries < 5000 && !sh->in_device; tries++)
		usleep(1000);
	assert_true(sh->in_device);
	stop_thread(sh->vcpu_tid);
	assert_int_equal(kvm_thread_parked_fd(sh->vcpu_tid, &blocked), -1);
	assert_false(blocked);
	sh->hold = 0;	/* read when it runs on, driven */

	k.vcpus[0] = (struct kvm_found_vcpu){ .fd = sh->vcpu_fd, .run_addr = sh->run_addr,
					      .run_len = sh->run_len, .tid = -1 };
	v = kvm_drive_to_kvm_run(pid, sh->vcpu_tid, &k, 1000);
	assert_ptr_equal(v, &k.vcpus[0]);
	/* Now as on KVM_RUN's -EINTR return, in the stop CRIU would expect. */
	assert_int_equal(kvm_thread_parked_fd(sh->vcpu_tid, &blocked), sh->vcpu_fd);
	outs_at_drive = sh->outs;

	assert_int_equal(ptrace(PTRACE_DETACH, sh->vcpu_tid, NULL, NULL), 0);
	wait_outs(100);
	/* The guest went on counting from where it was, no OUT lost or done twice. */
	assert_true(sh->outs > outs_at_drive);
	assert_int_equal(sh->gaps, 0);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_drive_from_device_emulation),
	};
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0 || geteuid()) {
		printf("test_kvm_quiesce: skipped, needs root and /dev/kvm (%s)\n",
		       fd < 0 ? strerror(errno) : "not root");
		return 77;
	}
	close(fd);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
