/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm-quiesce: bring a vCPU thread that CRIU froze in the middle of QEMU's
 * device emulation back to the return of KVM_RUN, with its pending I/O
 * completed by KVM, so that its vCPU's state is whole.
 */
#ifndef CRIU_QEMU_KVM_QUIESCE_H
#define CRIU_QEMU_KVM_QUIESCE_H

#include <stdint.h>
#include <sys/types.h>

#include "kvm-find.h"

/*
 * Is tid stopped on the return of ioctl(fd, KVM_RUN) with -EINTR? Then fd,
 * else -1. 1 if it is inside a syscall that waits for others (ppoll,
 * futex, ...) is stored in *blocked.
 */
int kvm_thread_parked_fd(pid_t tid, int *blocked);

/*
 * Let thread tid (ptrace-stopped by us) run until it enters KVM_RUN on a
 * vCPU of k that has no thread yet; let that KVM_RUN return at once with
 * immediate_exit (KVM completes the I/O QEMU just emulated), then stop it
 * again as CRIU left it. Within budget_ms. Returns the vCPU, or NULL (the
 * thread is stopped again, wherever it got to).
 */
struct kvm_found_vcpu *kvm_drive_to_kvm_run(pid_t pid, pid_t tid, struct kvm_found *k,
					    double budget_ms);

#endif
