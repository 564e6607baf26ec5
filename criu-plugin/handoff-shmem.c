// SPDX-License-Identifier: GPL-2.0
/*
 * Shared guest RAM: may its shmem object be punched, and which of its pages
 * does pagemap not show. See handoff-shmem.h.
 */
#define LOG_PREFIX "handoff: "

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/vfs.h>

#include "handoff-shmem.h"
#include "log.h"
#include "proc.h"
#include "sparse.h"
#include "uapi-compat.h"

#define TOUCH_BATCH	512	/* pages per process_vm_readv (IOV_MAX is 1024) */

static uint64_t page_size(void)
{
	return (uint64_t)sysconf(_SC_PAGESIZE);
}

/* ------------------------------------------------------------ may we punch it */

static int open_seg(pid_t pid, struct handoff_seg *s)
{
	s->fd = proc_map_files_open(pid, s->vm_start, s->vm_end, O_RDONLY);
	if (s->fd < 0) {
		pr_perror("open /proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, s->vm_start, s->vm_end);
		return -errno;
	}
	return 0;
}

/* Why the file of s must not be punched, or NULL. */
static const char *check_file(const struct handoff_seg *s)
{
	struct statfs sfs;
	struct stat st;
	int seals;

	if (fstat(s->fd, &st) || fstatfs(s->fd, &sfs))
		return "cannot stat the file";
	if (st.st_ino != s->ino || major(st.st_dev) != s->dev_major || minor(st.st_dev) != s->dev_minor)
		return "the mapping changed";
	if (sfs.f_type != TMPFS_MAGIC)
		return "not shmem (a file on disk or hugetlbfs)";
	/* A named file outlives QEMU: a hole punched in it would stay if the VM is killed. */
	if (st.st_nlink)
		return "a file with a name (only memfd or shared anonymous memory is handed over)";
	seals = fcntl(s->fd, F_GET_SEALS);
	if (seals > 0 && (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
		return "sealed against writes: it cannot be punched";
	return NULL;
}

static bool is_seg_vma(const struct handoff_seg *segs, size_t n, uint64_t start)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (segs[i].vm_start == start)
			return true;
	return false;
}

/*
 * Does a VMA in /proc/<who>/maps map the file of s? In pid itself only the
 * block's own VMAs may. Another mapping would read zeros (or write into a
 * hole) while the pages are held, without a fault we could serve.
 */
static bool mapped_by(pid_t who, pid_t pid, const struct handoff_seg *segs, size_t n)
{
	struct proc_vma v;
	struct proc_maps m;
	bool found = false;

	if (proc_maps_open(&m, who, "maps"))
		return false;	/* gone, or a kernel thread */
	while (!found && proc_maps_next(&m, &v) > 0) {
		if (v.inode != segs[0].ino || v.dev_major != segs[0].dev_major ||
		    v.dev_minor != segs[0].dev_minor)
			continue;
		found = who != pid || !is_seg_vma(segs, n, v.start);
	}
	proc_maps_close(&m);
	return found;
}

struct segs {
	pid_t pid;
	const struct handoff_seg *segs;
	size_t n;
};

static int maps_segs(pid_t who, void *arg)
{
	const struct segs *s = arg;

	return mapped_by(who, s->pid, s->segs, s->n) ? who : 0;
}

/* pid of a process (or pid itself, elsewhere) mapping the file of segs, 0 if none. */
static pid_t other_mapper(pid_t pid, const struct handoff_seg *segs, size_t n)
{
	struct segs s = { .pid = pid, .segs = segs, .n = n };

	return proc_pid_for_each(maps_segs, &s);
}

void handoff_shmem_close(struct handoff_seg *segs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (segs[i].fd >= 0)
			close(segs[i].fd);
		segs[i].fd = -1;
	}
}

int handoff_shmem_check(pid_t pid, const char *name, struct handoff_seg *segs, size_t n)
{
	const char *why = NULL;
	char buf[96];
	pid_t other;
	size_t i;
	int ret = 0;

	for (i = 0; i < n && !why; i++) {
		if (segs[i].ino != segs[0].ino || segs[i].dev_major != segs[0].dev_major ||
		    segs[i].dev_minor != segs[0].dev_minor)
			why = "its VMAs map different files";
		else if (open_seg(pid, &segs[i]))
			why = "cannot open the file behind it";
		else
			why = check_file(&segs[i]);
	}
	if (!why) {
		other = other_mapper(pid, segs, n);
		if (other < 0) {
			why = "cannot list processes";
		} else if (other == pid) {
			why = "QEMU maps the file a second time";
		} else if (other) {
			snprintf(buf, sizeof(buf), "process %d maps the file too (vhost-user?)", other);
			why = buf;
		}
	}
	if (why) {
		pr_warn("pid %d: shared block '%s': %s: it stays with CRIU\n", pid, name, why);
		handoff_shmem_close(segs, n);
		ret = -EBUSY;
	}
	return ret;
}

/* ------------------------------------------------------------ pages pagemap does not see */

typedef int (*unseen_fn)(void *arg, const struct handoff_seg *s, uint64_t start, uint64_t end);

static int emit_unseen(const struct page_range *r, size_t nr, size_t *k, uint64_t a0, uint64_t a1,
		       const struct handoff_seg *s, unseen_fn fn, void *arg)
{
	uint64_t cur = a0;
	size_t j;
	int ret = 0;

	while (*k < nr && r[*k].end <= a0)
		(*k)++;
	for (j = *k; j < nr && r[j].start < a1 && !ret; j++) {
		if (r[j].start > cur)
			ret = fn(arg, s, cur, r[j].start);
		if (r[j].end > cur)
			cur = r[j].end;
	}
	if (!ret && cur < a1)
		ret = fn(arg, s, cur, a1);
	return ret;
}

/*
 * Call fn for every run of addresses of s whose pages are in the file
 * (SEEK_DATA: resident or swapped) but have no page table entry in pid.
 */
static int for_each_unseen(int pagemap, const struct handoff_seg *s, unseen_fn fn, void *arg)
{
	uint64_t ps = page_size(), end = s->pgoff + (s->end - s->start), off = s->pgoff;
	struct page_range *r;
	size_t nr, k = 0;
	off_t d, h;
	int ret;

	ret = sparse_scan(pagemap, s->start, s->end, &r, &nr);
	if (ret)
		return ret;
	while (!ret && off < end) {
		d = lseek(s->fd, off, SEEK_DATA);
		if (d < 0 || (uint64_t)d >= end) {
			ret = d < 0 && errno != ENXIO ? -errno : 0;
			break;
		}
		h = lseek(s->fd, d, SEEK_HOLE);
		if (h < 0) {
			ret = -errno;
			break;
		}
		d &= ~(ps - 1);
		h = ((uint64_t)h > end ? end : ((uint64_t)h + ps - 1) & ~(ps - 1));
		ret = emit_unseen(r, nr, &k, s->start + (d - s->pgoff), s->start + (h - s->pgoff), s, fn, arg);
		off = h;
	}
	free(r);
	return ret;
}

static int open_pagemap(pid_t pid)
{
	int fd = proc_pagemap_open(pid);

	if (fd < 0)
		pr_perror("open /proc/%d/pagemap", pid);
	return fd;
}

static long walk_unseen(pid_t pid, const struct handoff_seg *segs, size_t n, unseen_fn fn, void *arg)
{
	int pagemap = open_pagemap(pid);
	size_t i;
	int ret = 0;

	if (pagemap < 0)
		return pagemap;
	for (i = 0; i < n && !ret; i++)
		ret = for_each_unseen(pagemap, &segs[i], fn, arg);
	close(pagemap);
	return ret;
}

struct touch {
	pid_t pid;
	uint64_t pages;
};

/* Read one byte of every page of [start, end) through pid's address space: the faults map them. */
static int touch_run(void *arg, const struct handoff_seg *s, uint64_t start, uint64_t end)
{
	struct iovec remote[TOUCH_BATCH], local;
	char buf[TOUCH_BATCH];
	struct touch *t = arg;
	uint64_t ps = page_size();
	ssize_t got;
	size_t i;

	(void)s;
	while (start < end) {
		for (i = 0; i < TOUCH_BATCH && start < end; i++, start += ps)
			remote[i] = (struct iovec){ (void *)(uintptr_t)start, 1 };
		local = (struct iovec){ buf, i };
		got = process_vm_readv(t->pid, &local, 1, remote, i, 0);
		if (got != (ssize_t)i) {
			pr_err("pid %d: mapping shared pages at %#" PRIx64 ": %s\n", t->pid,
			       start - i * ps, got < 0 ? strerror(errno) : "short read");
			return got < 0 ? -errno : -EFAULT;
		}
		t->pages += i;
	}
	return 0;
}

long handoff_shmem_map_unseen(pid_t pid, const struct handoff_seg *segs, size_t n)
{
	struct touch t = { .pid = pid };
	long ret = walk_unseen(pid, segs, n, touch_run, &t);

	return ret ? ret : (long)t.pages;
}

struct missing {
	const struct fr_block *b;
	char *page;
	uint64_t pages;
};

static bool all_zero(const char *p, size_t len)
{
	return !p[0] && !memcmp(p, p + 1, len - 1);
}

/* Unseen pages the image lacks: fine only if they are zero. */
static int missing_run(void *arg, const struct handoff_seg *s, uint64_t start, uint64_t end)
{
	struct missing *m = arg;
	uint64_t ps = m->b->page_size, a;
	ssize_t got;

	for (a = start; a < end; a += ps) {
		if (fr_bit_test(m->b->bitmap, (a - m->b->host_addr) / ps))
			continue;
		got = pread(s->fd, m->page, ps, s->pgoff + (a - s->start));
		if (got != (ssize_t)ps)
			return got < 0 ? -errno : -EIO;
		if (!all_zero(m->page, ps))
			m->pages++;
	}
	return 0;
}

long handoff_shmem_missing(pid_t pid, const struct fr_block *b, const struct handoff_seg *segs, size_t n)
{
	struct missing m = { .b = b };
	long ret;

	m.page = malloc(b->page_size);
	if (!m.page)
		return -ENOMEM;
	ret = walk_unseen(pid, segs, n, missing_run, &m);
	free(m.page);
	return ret ? ret : (long)m.pages;
}

int handoff_shmem_has_data(const struct handoff_seg *s)
{
	off_t d = lseek(s->fd, s->pgoff, SEEK_DATA);

	if (d < 0)
		return errno == ENXIO ? 0 : -errno;
	return (uint64_t)d < s->pgoff + (s->end - s->start);
}
