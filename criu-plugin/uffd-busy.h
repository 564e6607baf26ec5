/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Is some of a process's memory registered with a userfaultfd? Then
 * someone else serves its faults: the guardian of an earlier dump still
 * giving pages back after --leave-running, or QEMU's own postcopy. Pages
 * not given back yet look unpopulated, so a dump now (ours or CRIU's)
 * would save them as zero: wait until the registration is gone.
 */
#ifndef CRIU_QEMU_UFFD_BUSY_H
#define CRIU_QEMU_UFFD_BUSY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Any VMA of pid registered (VmFlags um, uw or ui)? Returns 1 and the
 * first such VMA's start in *addr, 0, or -errno.
 */
int uffd_registered(pid_t pid, uint64_t *addr);

/* Poll uffd_registered() until 0 or timeout_ms; -EBUSY on timeout. */
int uffd_wait_unregistered(pid_t pid, unsigned timeout_ms);

#endif
