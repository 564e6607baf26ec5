/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared guest RAM (memory-backend-memfd share=on, memory-backend-ram
 * share=on): a MAP_SHARED mapping of a shmem object. The handoff keeps the
 * mapping and punches the object instead (see handoff.c); this module says
 * whether an object may be punched and finds its pages where pagemap is
 * blind: a shmem page in the file but not mapped in QEMU (written through
 * the fd, swapped out, never touched since a restore) has no page table
 * entry, so a pagemap-driven writer would miss it.
 */
#ifndef CRIU_QEMU_HANDOFF_SHMEM_H
#define CRIU_QEMU_HANDOFF_SHMEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fixedram.h"
#include "handoff-vma.h"

/*
 * Open the file behind every segment (s->fd, O_CLOEXEC, through
 * /proc/PID/map_files) and check that punching it is safe: a shmem object
 * that lives only while it is used (no name in any filesystem: memfd or
 * shared anonymous memory), not sealed against writes, mapped by no other
 * process and by no other VMA of pid. 0, or -errno with the reason logged
 * (the block then stays with CRIU). On error the fds are closed.
 */
int handoff_shmem_check(pid_t pid, const char *name, struct handoff_seg *segs, size_t n);

void handoff_shmem_close(struct handoff_seg *segs, size_t n);

/*
 * Map, in pid, every page of the segments that is in the file but not in
 * pid's page tables, by reading a byte of each through pid's address space
 * (the fault maps it; holes are never touched, so nothing is allocated).
 * Afterwards pagemap sees every page of the block. Returns the number of
 * pages mapped, or -errno.
 */
long handoff_shmem_map_unseen(pid_t pid, const struct handoff_seg *segs, size_t n);

/*
 * Pages of the segments that are in the file, not mapped in pid, not in
 * the image block b and not zero: data the image lacks. 0 means the
 * image holds the block completely. Returns the count, or -errno.
 */
long handoff_shmem_missing(pid_t pid, const struct fr_block *b, const struct handoff_seg *segs, size_t n);

/* 1 if the file range of s holds any page (data or swapped), 0 if none, -errno. */
int handoff_shmem_has_data(const struct handoff_seg *s);

#endif
