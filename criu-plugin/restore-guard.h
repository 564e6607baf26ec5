/* SPDX-License-Identifier: GPL-2.0 */
/*
 * While the plugin fills guest RAM in RESUME_DEVICES_LATE, the restored
 * QEMU is held only by CRIU's ptrace stop: if CRIU dies then, the kernel
 * detaches the threads and they would run on half-filled memory. The guard
 * queues SIGSTOP on every thread first (a traced, stopped thread does not
 * act on it), so that a thread let go without its memory stops before its
 * next user instruction; once the memory is complete, SIGCONT discards the
 * pending stops of all threads (the kernel flushes them) and nothing of the
 * guard remains.
 */
#ifndef CRIU_QEMU_RESTORE_GUARD_H
#define CRIU_QEMU_RESTORE_GUARD_H

#include <sys/types.h>

/*
 * Queue SIGSTOP on every thread of pid but `except` (0: none; the thread
 * the plugin itself still runs syscalls in through ptrace, which a pending
 * stop would disturb). 0 or -errno.
 */
int restore_guard_arm(pid_t pid, pid_t except);
/* Discard the pending stops: guest memory is complete. */
int restore_guard_disarm(pid_t pid);

#endif
