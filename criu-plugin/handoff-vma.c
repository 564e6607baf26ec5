// SPDX-License-Identifier: GPL-2.0
/*
 * VMAs under a RAM block, read from /proc/PID/smaps (the only place with
 * VmFlags and ShmemPmdMapped), and an emptiness check of a range via
 * PAGEMAP_SCAN.
 */
#define LOG_PREFIX "handoff: "

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/fs.h>

#include "handoff-vma.h"
#include "log.h"
#include "proc.h"
#include "uapi-compat.h"

static const struct {
	char flag[3];
	int advice;
} madv_flags[HO_MADV_NR] = {
	{ "hg", MADV_HUGEPAGE },
	{ "nh", MADV_NOHUGEPAGE },
	{ "dc", MADV_DONTFORK },
	{ "dd", MADV_DONTDUMP },
	{ "mg", MADV_MERGEABLE },
	{ "wf", MADV_WIPEONFORK },
};

/* VmFlags the handoff cannot carry over: reason, or NULL. */
static const char *refused_flag(const char *flag)
{
	if (!strcmp(flag, "lo"))
		return "mlock()ed: a replacement VMA would be populated at once";
	if (!strcmp(flag, "um") || !strcmp(flag, "uw") || !strcmp(flag, "ui"))
		return "already registered with a userfaultfd (postcopy?)";
	if (!strcmp(flag, "io") || !strcmp(flag, "pf"))
		return "VM_IO/VM_PFNMAP";
	if (!strcmp(flag, "ht"))
		return "hugetlb";
	return NULL;
}

int handoff_madv_advice(unsigned bit)
{
	return bit < HO_MADV_NR ? madv_flags[bit].advice : -1;
}

/* Shared blocks: a read-write shared mapping of a file (memfd, shmem); which kind is handoff-shmem's call. */
static const char *check_vma(const struct proc_smaps_vma *sv, bool shared)
{
	const struct proc_vma *v = &sv->vma;
	char tok[4];
	int off = 0, n;
	const char *why;

	if (shared && (v->perms[3] != 's' || v->perms[0] != 'r' || v->perms[1] != 'w'))
		return "not a read-write shared mapping";
	if (shared && !v->inode)
		return "not a file mapping";
	if (!shared && v->perms[3] != 'p')
		return "shared mapping";
	if (!shared && (v->inode || (v->path[0] && strncmp(v->path, "[anon:", 6))))
		return "not anonymous memory";
	while (sscanf(sv->vmflags + off, "%3s%n", tok, &n) == 1) {
		why = refused_flag(tok);
		if (why)
			return why;
		off += n;
	}
	return NULL;
}

static void vma_to_seg(const struct proc_smaps_vma *sv, const struct fr_block *b, uint32_t block,
		       struct handoff_seg *s)
{
	const struct proc_vma *v = &sv->vma;
	unsigned i;

	s->block = block;
	s->start = v->start > b->host_addr ? v->start : b->host_addr;
	s->end = v->end < b->host_addr + b->length ? v->end : b->host_addr + b->length;
	s->prot = (v->perms[0] == 'r' ? PROT_READ : 0) | (v->perms[1] == 'w' ? PROT_WRITE : 0) |
		  (v->perms[2] == 'x' ? PROT_EXEC : 0);
	s->noreserve = proc_vmflag(sv->vmflags, "nr");
	s->madv = 0;
	for (i = 0; i < HO_MADV_NR; i++)
		if (proc_vmflag(sv->vmflags, madv_flags[i].flag))
			s->madv |= 1u << i;
	s->shared = v->perms[3] == 's';
	s->pmd_mapped = sv->shmem_pmd_kb > 0;
	s->vm_start = v->start;
	s->vm_end = v->end;
	s->pgoff = v->offset + (s->start - v->start);
	s->dev_major = v->dev_major;
	s->dev_minor = v->dev_minor;
	s->ino = v->inode;
	s->fd = -1;
}

static int add_seg(struct handoff_seg **segs, size_t *nr, const struct handoff_seg *s)
{
	struct handoff_seg *n = realloc(*segs, (*nr + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	n[(*nr)++] = *s;
	*segs = n;
	return 0;
}

static int open_smaps(struct proc_maps *m, pid_t pid)
{
	int ret = proc_maps_open(m, pid, "smaps");

	if (ret)
		pr_perror("open /proc/%d/smaps", pid);
	return ret;
}

static bool meets_a_block(const struct proc_vma *v, const struct fr_block *blocks, uint32_t nr)
{
	uint32_t i;

	for (i = 0; i < nr; i++)
		if (v->end > blocks[i].host_addr && v->start < blocks[i].host_addr + blocks[i].length)
			return true;
	return false;
}

static int keep_vma(struct handoff_vmas *vm, const struct proc_smaps_vma *v)
{
	struct proc_smaps_vma *n = realloc(vm->v, (vm->n + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	n[vm->n++] = *v;
	vm->v = n;
	return 0;
}

/*
 * One read of smaps for all blocks: it walks QEMU's page tables to count
 * RSS (~2.4 ms with 2 GiB of THP and the TCG buffer, measured here), and
 * the handoff runs while QEMU is frozen.
 */
int handoff_vmas_read(pid_t pid, const struct fr_block *blocks, uint32_t nr, struct handoff_vmas *out)
{
	struct proc_smaps_vma v;
	struct proc_maps m;
	int ret = open_smaps(&m, pid);

	*out = (struct handoff_vmas){ 0 };
	while (!ret && proc_smaps_next(&m, &v) > 0)
		if (meets_a_block(&v.vma, blocks, nr))
			ret = keep_vma(out, &v);
	proc_maps_close(&m);
	if (ret)
		handoff_vmas_free(out);
	return ret;
}

void handoff_vmas_free(struct handoff_vmas *vm)
{
	free(vm->v);
	*vm = (struct handoff_vmas){ 0 };
}

int handoff_block_segments(const struct handoff_vmas *vm, pid_t pid, const struct fr_block *b,
			   uint32_t block, struct handoff_seg **segs, size_t *nr)
{
	uint64_t covered = b->host_addr, end = b->host_addr + b->length;
	struct handoff_seg s;
	size_t first = *nr, i;
	const char *why = NULL;
	int ret = 0;

	for (i = 0; !ret && covered < end && i < vm->n; i++) {
		const struct proc_smaps_vma *v = &vm->v[i];

		if (v->vma.end <= covered || v->vma.start >= end)
			continue;
		why = v->vma.start > covered ? "a hole in the block" :
		      check_vma(v, b->backing == FR_BACKING_SHARED_FD);
		if (why) {
			ret = -EINVAL;
			break;
		}
		vma_to_seg(v, b, block, &s);
		ret = add_seg(segs, nr, &s);
		covered = s.end;
	}
	if (!ret && covered < end)
		why = "not mapped to the end";
	if (why && b->backing == FR_BACKING_SHARED_FD)
		pr_warn("pid %d: shared block '%s' at %#" PRIx64 ": %s (at %#" PRIx64 "): it stays with CRIU\n",
			pid, b->name, b->host_addr, why, covered);
	else if (why)
		pr_err("pid %d: block '%s' at %#" PRIx64 " cannot be handed over: %s (at %#" PRIx64 ")\n",
		       pid, b->name, b->host_addr, why, covered);
	if (why)
		ret = -EINVAL;
	if (ret)
		*nr = first;
	return ret;
}

int handoff_vmflags(pid_t pid, uint64_t addr, char *buf, size_t len)
{
	struct proc_smaps_vma v;
	struct proc_maps m;
	int ret = open_smaps(&m, pid);

	if (ret)
		return ret;
	ret = -ENOENT;
	while (ret && proc_smaps_next(&m, &v) > 0) {
		if (addr >= v.vma.start && addr < v.vma.end) {
			snprintf(buf, len, "%s", v.vmflags);
			ret = 0;
		}
	}
	proc_maps_close(&m);
	return ret;
}

int handoff_range_mapped(pid_t pid, uint64_t start, uint64_t end)
{
	uint64_t covered = start;
	struct proc_vma v;
	struct proc_maps m;
	int ret = proc_maps_open(&m, pid, "maps");

	if (ret)
		return ret;
	while (covered < end && proc_maps_next(&m, &v) > 0) {
		if (v.end <= covered)
			continue;
		if (v.start > covered)
			break;
		covered = v.end;
	}
	proc_maps_close(&m);
	return covered >= end;
}

/* Fallback without PAGEMAP_SCAN: 8 bytes of pagemap per page. */
static int range_empty_read(int fd, uint64_t start, uint64_t end)
{
	uint64_t buf[512], addr = start, ps = sysconf(_SC_PAGESIZE);
	ssize_t n, i;

	while (addr < end) {
		size_t want = (end - addr) / ps;

		if (want > 512)
			want = 512;
		n = proc_pagemap_read(fd, addr, ps, buf, want);
		if (n < 0)
			return n;
		for (i = 0; i < n; i++)
			if (buf[i] & (PROC_PM_PRESENT | PROC_PM_SWAPPED))
				return 0;
		addr += n * ps;
	}
	return 1;
}

int handoff_range_empty(pid_t pid, uint64_t start, uint64_t end)
{
	struct page_region r;
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = start,
		.end = end,
		.vec = (uintptr_t)&r,
		.vec_len = 1,
		.max_pages = 1,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
	};
	int fd = proc_pagemap_open(pid), ret;

	if (fd < 0)
		return fd;
	ret = ioctl(fd, PAGEMAP_SCAN, &arg);
	if (ret >= 0)
		ret = ret == 0;
	else if (errno == ENOTTY || errno == EINVAL)
		ret = range_empty_read(fd, start, end);
	else
		ret = -errno;
	close(fd);
	return ret;
}
