/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The VMAs under a RAM block, as the handoff must rebuild them: one segment
 * per VMA (mremap moves exactly one VMA), with its protection, accounting
 * and the madvise() flags that a replacement VMA would otherwise lose.
 * Shared (shmem) blocks keep their VMAs; their segments say which file
 * range each one maps.
 */
#ifndef CRIU_QEMU_HANDOFF_VMA_H
#define CRIU_QEMU_HANDOFF_VMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fixedram.h"
#include "proc.h"

/* VmFlags that madvise() can set again. */
#define HO_MADV_HUGEPAGE	(1u << 0)	/* hg */
#define HO_MADV_NOHUGEPAGE	(1u << 1)	/* nh */
#define HO_MADV_DONTFORK	(1u << 2)	/* dc */
#define HO_MADV_DONTDUMP	(1u << 3)	/* dd */
#define HO_MADV_MERGEABLE	(1u << 4)	/* mg */
#define HO_MADV_WIPEONFORK	(1u << 5)	/* wf */
#define HO_MADV_NR		6

struct handoff_seg {
	uint32_t block;
	uint64_t start, end;	/* intersection of the VMA with the block */
	int prot;
	bool noreserve;		/* "nr": not accounted */
	unsigned madv;		/* HO_MADV_* */
	/* Shared blocks only: */
	bool shared;		/* MAP_SHARED file mapping: punched, not replaced */
	bool pmd_mapped;	/* ShmemPmdMapped: it had huge pages */
	uint64_t vm_start, vm_end;	/* the whole VMA (its map_files name) */
	uint64_t pgoff;		/* file offset of start */
	unsigned dev_major, dev_minor;
	uint64_t ino;
	int fd;			/* the file, opened by the handoff; -1 if not */
};

/* madvise() advice for HO_MADV_* bit i. */
int handoff_madv_advice(unsigned bit);

/* The VMAs of a task that meet any of a set of blocks, in address order. */
struct handoff_vmas {
	struct proc_smaps_vma *v;
	size_t n;
};

/* Read them from one pass over /proc/PID/smaps; free with handoff_vmas_free(). */
int handoff_vmas_read(pid_t pid, const struct fr_block *blocks, uint32_t nr, struct handoff_vmas *out);
void handoff_vmas_free(struct handoff_vmas *vm);

/*
 * Append the segments of block b (index block) of pid, from vm, to *segs.
 * Fails with -EINVAL (logged) when the block is not covered by VMAs the
 * handoff can take: for FR_BACKING_ANON_PRIVATE private anonymous ones, for
 * FR_BACKING_SHARED_FD read-write shared file ones; never holes, mlock()ed
 * memory (a new VMA would be populated at once), a userfaultfd already
 * registered (QEMU's postcopy), VM_IO/PFNMAP or hugetlb.
 */
int handoff_block_segments(const struct handoff_vmas *vm, pid_t pid, const struct fr_block *b,
			   uint32_t block, struct handoff_seg **segs, size_t *nr);

/* VmFlags of the VMA at addr in pid, as a string ("" if none); for tests and logs. */
int handoff_vmflags(pid_t pid, uint64_t addr, char *buf, size_t len);

/* 1 if [start, end) of pid is covered by VMAs, 0 if not, -errno on error. */
int handoff_range_mapped(pid_t pid, uint64_t start, uint64_t end);

/*
 * 1 if [start, end) of pid has no page table entry at all (present, swapped
 * or zero page), 0 if it has, -errno on error.
 */
int handoff_range_empty(pid_t pid, uint64_t start, uint64_t end);

#endif
