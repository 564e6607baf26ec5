// SPDX-License-Identifier: GPL-2.0
/*
 * Quiescing vCPUs (see kvm-quiesce.h).
 *
 * After an exit for port or MMIO I/O, KVM completes the instruction on the
 * next KVM_RUN (an IN's value goes into RAX, RIP moves on), and nothing a
 * get ioctl returns shows that this is pending. A vCPU thread frozen on
 * KVM_RUN's -EINTR return owes nothing (KVM completes pending I/O before it
 * can return -EINTR). One frozen in QEMU's emulation of an exit does: it is
 * run on alone, syscall by syscall, until it enters KVM_RUN again, which
 * returns at once with immediate_exit set (as cloud-hypervisor does before
 * it saves a vCPU), and stopped again there. The other threads stay
 * frozen; a thread that would wait for one of them (QEMU's big lock) runs
 * out of its budget and the dump fails, asking to try again.
 */
#define LOG_PREFIX "kvm: "

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <linux/kvm.h>

#include "clock.h"
#include "kvm-quiesce.h"
#include "log.h"

#define POLL_NS		200000	/* how often a running thread is looked at */

/* Syscalls a thread waits in for others: driving it would only time out. */
static int waits_for_others(long nr)
{
	switch (nr) {
	case SYS_ppoll: case SYS_poll: case SYS_select: case SYS_pselect6:
	case SYS_epoll_wait: case SYS_epoll_pwait: case SYS_futex:
	case SYS_rt_sigtimedwait: case SYS_nanosleep: case SYS_clock_nanosleep:
	case SYS_io_uring_enter: case SYS_read: case SYS_recvmsg:
		return 1;
	default:
		return 0;
	}
}

int kvm_thread_parked_fd(pid_t tid, int *blocked)
{
	struct user_regs_struct regs;

	*blocked = 0;
	if (ptrace(PTRACE_GETREGS, tid, NULL, &regs))
		return -1;
	if (regs.orig_rax == SYS_ioctl && regs.rsi == KVM_RUN && (long)regs.rax == -EINTR)
		return (int)regs.rdi;
	*blocked = (long)regs.orig_rax >= 0 && waits_for_others(regs.orig_rax);
	return -1;
}

/* waitpid with a deadline: 1 stopped (status), 0 timed out, -errno. */
static int wait_until(pid_t tid, int *status, double deadline)
{
	struct timespec ts = { 0, POLL_NS };
	pid_t r;

	for (;;) {
		r = waitpid(tid, status, __WALL | WNOHANG);
		if (r == tid)
			return 1;
		if (r < 0)
			return -errno;
		if (now_ms() >= deadline)
			return 0;
		nanosleep(&ts, NULL);
	}
}

static int set_immediate_exit(pid_t pid, const struct kvm_found_vcpu *v, uint8_t on)
{
	struct iovec local = { &on, 1 };
	struct iovec remote = { (void *)(uintptr_t)(v->run_addr + offsetof(struct kvm_run,
									 immediate_exit)), 1 };

	return process_vm_writev(pid, &local, 1, &remote, 1, 0) == 1 ? 0 : -EIO;
}

/* At a syscall-entry stop: KVM_RUN on a vCPU still without a thread? */
static struct kvm_found_vcpu *entering_kvm_run(pid_t tid, struct kvm_found *k)
{
	struct user_regs_struct regs;
	struct kvm_found_vcpu *v;

	if (ptrace(PTRACE_GETREGS, tid, NULL, &regs) || regs.orig_rax != SYS_ioctl ||
	    regs.rsi != KVM_RUN)
		return NULL;
	v = kvm_found_vcpu_by_fd(k, (int)regs.rdi);
	return v && v->tid <= 0 ? v : NULL;
}

/* The signal to pass on from a stop: only a signal-delivery stop has one. */
static int stop_signal(int status)
{
	int sig = WSTOPSIG(status);

	if (!WIFSTOPPED(status) || sig == (SIGTRAP | 0x80) || sig == SIGTRAP || (status >> 16))
		return 0;
	return sig;
}

/* Step one syscall stop on. */
static int step(pid_t tid, int status)
{
	return ptrace(PTRACE_SYSCALL, tid, NULL, (void *)(long)stop_signal(status)) ? -errno : 0;
}

/*
 * Back into the PTRACE_EVENT_STOP CRIU expects (as rsys's repark, which
 * only knows stopped tasks): PTRACE_INTERRUPT, and, when the thread sits in
 * a stop of ours rather than running, PTRACE_CONT to take it; syscall and
 * signal stops met on the way are stepped over, signals passed on.
 */
static int restop(pid_t tid, bool stopped)
{
	int status, ret;

	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL))
		return -errno;
	if (stopped && ptrace(PTRACE_CONT, tid, NULL, NULL))
		return -errno;
	for (;;) {
		ret = wait_until(tid, &status, now_ms() + 1000);
		if (ret <= 0)
			return ret ? ret : -ETIMEDOUT;
		if (!WIFSTOPPED(status))
			return -ESRCH;
		if ((status >> 16) == PTRACE_EVENT_STOP)
			return 0;
		if (ptrace(PTRACE_CONT, tid, NULL, (void *)(long)stop_signal(status)))
			return -errno;
	}
}

struct kvm_found_vcpu *kvm_drive_to_kvm_run(pid_t pid, pid_t tid, struct kvm_found *k,
					    double budget_ms)
{
	double deadline = now_ms() + budget_ms;
	struct kvm_found_vcpu *v = NULL;
	bool stopped = false;	/* in a stop of ours (else running, or gone) */
	int status = 0, ret;

	ret = step(tid, status);
	while (!ret && !v) {
		ret = wait_until(tid, &status, deadline);
		if (ret <= 0)
			break;
		if (!WIFSTOPPED(status)) {
			ret = -ESRCH;
			break;
		}
		v = entering_kvm_run(tid, k);
		if (v && set_immediate_exit(pid, v, 1))
			v = NULL;
		ret = step(tid, status);
	}
	if (v) {
		/* Its KVM_RUN: completes the I/O, returns -EINTR at once. */
		ret = wait_until(tid, &status, now_ms() + 1000);
		set_immediate_exit(pid, v, 0);
		stopped = ret == 1 && WIFSTOPPED(status);
		if (!stopped)
			v = NULL;
	}
	if (restop(tid, stopped) && v) {
		pr_err("thread %d: cannot stop it again after KVM_RUN\n", tid);
		v = NULL;
	}
	if (v)
		pr_info("thread %d: brought vCPU %u back to KVM_RUN (it was in device emulation)\n",
			tid, v->id);
	return v;
}
