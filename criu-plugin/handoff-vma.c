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
#include "uapi-compat.h"

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

#define PM_PRESENT	(1ULL << 63)
#define PM_SWAPPED	(1ULL << 62)

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

struct vma {
	uint64_t start, end, offset;
	char perms[5];
	unsigned dev_major, dev_minor;
	unsigned long inode;
	char name[64];
	char flags[256];
	uint64_t pmd_kb;	/* ShmemPmdMapped */
};

/* Next VMA of an smaps file: header line, then scan to its VmFlags line. */
static int next_vma(FILE *f, struct vma *v, char **line, size_t *cap)
{
	struct vma h;
	int name_off;

	while (getline(line, cap, f) > 0) {
		if (!strncmp(*line, "VmFlags:", 8)) {
			snprintf(v->flags, sizeof(v->flags), "%s", *line + 8);
			return 1;
		}
		if (sscanf(*line, "ShmemPmdMapped: %" SCNu64, &v->pmd_kb) == 1)
			continue;
		/* Into a copy: "AnonHugePages:" half-matches as hex. */
		name_off = 0;
		if (sscanf(*line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %lu %n", &h.start, &h.end,
			   h.perms, &h.offset, &h.dev_major, &h.dev_minor, &h.inode, &name_off) < 7)
			continue;
		snprintf(h.name, sizeof(h.name), "%s", name_off ? *line + name_off : "");
		h.name[strcspn(h.name, "\n")] = 0;
		h.flags[0] = 0;
		h.pmd_kb = 0;
		*v = h;
	}
	return 0;
}

static bool has_flag(const char *flags, const char *flag)
{
	char tok[4];
	int off = 0, n;

	while (sscanf(flags + off, "%3s%n", tok, &n) == 1) {
		if (!strcmp(tok, flag))
			return true;
		off += n;
	}
	return false;
}

/* Shared blocks: a read-write shared mapping of a file (memfd, shmem); which kind is handoff-shmem's call. */
static const char *check_vma(const struct vma *v, bool shared)
{
	char tok[4];
	int off = 0, n;
	const char *why;

	if (shared && (v->perms[3] != 's' || v->perms[0] != 'r' || v->perms[1] != 'w'))
		return "not a read-write shared mapping";
	if (shared && !v->inode)
		return "not a file mapping";
	if (!shared && v->perms[3] != 'p')
		return "shared mapping";
	if (!shared && (v->inode || (v->name[0] && strncmp(v->name, "[anon:", 6))))
		return "not anonymous memory";
	while (sscanf(v->flags + off, "%3s%n", tok, &n) == 1) {
		why = refused_flag(tok);
		if (why)
			return why;
		off += n;
	}
	return NULL;
}

static void vma_to_seg(const struct vma *v, const struct fr_block *b, uint32_t block,
		       struct handoff_seg *s)
{
	unsigned i;

	s->block = block;
	s->start = v->start > b->host_addr ? v->start : b->host_addr;
	s->end = v->end < b->host_addr + b->length ? v->end : b->host_addr + b->length;
	s->prot = (v->perms[0] == 'r' ? PROT_READ : 0) | (v->perms[1] == 'w' ? PROT_WRITE : 0) |
		  (v->perms[2] == 'x' ? PROT_EXEC : 0);
	s->noreserve = has_flag(v->flags, "nr");
	s->madv = 0;
	for (i = 0; i < HO_MADV_NR; i++)
		if (has_flag(v->flags, madv_flags[i].flag))
			s->madv |= 1u << i;
	s->shared = v->perms[3] == 's';
	s->pmd_mapped = v->pmd_kb > 0;
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

static FILE *open_smaps(pid_t pid)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	if (!f)
		pr_perror("open %s", path);
	return f;
}

int handoff_block_segments(pid_t pid, const struct fr_block *b, uint32_t block,
			   struct handoff_seg **segs, size_t *nr)
{
	uint64_t covered = b->host_addr, end = b->host_addr + b->length;
	struct handoff_seg s;
	char *line = NULL;
	size_t cap = 0, first = *nr;
	const char *why = NULL;
	struct vma v;
	int ret = 0;
	FILE *f = open_smaps(pid);

	if (!f)
		return -errno;
	while (!ret && covered < end && next_vma(f, &v, &line, &cap)) {
		if (v.end <= covered || v.start >= end)
			continue;
		why = v.start > covered ? "a hole in the block" :
		      check_vma(&v, b->backing == FR_BACKING_SHARED_FD);
		if (why) {
			ret = -EINVAL;
			break;
		}
		vma_to_seg(&v, b, block, &s);
		ret = add_seg(segs, nr, &s);
		covered = s.end;
	}
	free(line);
	fclose(f);
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
	char *line = NULL;
	size_t cap = 0;
	struct vma v;
	int ret = -ENOENT;
	FILE *f = open_smaps(pid);

	if (!f)
		return -errno;
	while (next_vma(f, &v, &line, &cap)) {
		if (addr >= v.start && addr < v.end) {
			snprintf(buf, len, "%s", v.flags);
			buf[strcspn(buf, "\n")] = 0;
			ret = 0;
			break;
		}
	}
	free(line);
	fclose(f);
	return ret;
}

int handoff_range_mapped(pid_t pid, uint64_t start, uint64_t end)
{
	uint64_t covered = start, vs, ve;
	char path[64], *line = NULL;
	size_t cap = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (covered < end && getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%" SCNx64 "-%" SCNx64, &vs, &ve) != 2 || ve <= covered)
			continue;
		if (vs > covered)
			break;
		covered = ve;
	}
	free(line);
	fclose(f);
	return covered >= end;
}

/* Fallback without PAGEMAP_SCAN: 8 bytes of pagemap per page. */
static int range_empty_read(int fd, uint64_t start, uint64_t end)
{
	uint64_t buf[512], addr = start;
	ssize_t n, i;

	while (addr < end) {
		size_t want = (end - addr) / 4096;

		if (want > 512)
			want = 512;
		n = pread(fd, buf, want * 8, (addr / 4096) * 8);
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		for (i = 0; i < n / 8; i++)
			if (buf[i] & (PM_PRESENT | PM_SWAPPED))
				return 0;
		addr += (n / 8) * 4096;
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
	char path[64];
	int fd, ret;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
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
