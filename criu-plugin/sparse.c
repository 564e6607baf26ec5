// SPDX-License-Identifier: GPL-2.0
/*
 * Populated-page scan of another process through /proc/PID/pagemap.
 *
 * PAGEMAP_SCAN (Linux 6.7) walks the page tables in the kernel and returns
 * merged ranges, so a mostly empty 1 TiB guest costs a few ioctls. Older
 * kernels only offer the 8-bytes-per-page pagemap file.
 */
#define LOG_PREFIX "sparse: "

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/fs.h>

#include "log.h"
#include "proc.h"
#include "sparse.h"

#include "uapi-compat.h"

#define SCAN_VEC_LEN	512	/* regions per ioctl */
#define READ_ENTRIES	4096	/* pagemap entries per pread */

int range_vec_add(struct range_vec *v, uint64_t start, uint64_t end)
{
	struct page_range *r;

	if (v->nr && v->r[v->nr - 1].end == start) {
		v->r[v->nr - 1].end = end;
		return 0;
	}
	if (v->nr == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;

		r = realloc(v->r, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		v->r = r;
		v->cap = cap;
	}
	v->r[v->nr].start = start;
	v->r[v->nr].end = end;
	v->nr++;
	return 0;
}

static int rv_done(struct range_vec *v, int ret, struct page_range **ranges, size_t *nr)
{
	if (ret || !v->nr) {
		free(v->r);
		v->r = NULL;
		v->nr = 0;
	}
	*ranges = v->r;
	*nr = v->nr;
	return ret;
}

static int check_args(uint64_t start, uint64_t end)
{
	uint64_t mask = (uint64_t)sysconf(_SC_PAGESIZE) - 1;

	if ((start | end) & mask || start > end) {
		pr_err("bad range %#llx-%#llx\n",
		       (unsigned long long)start, (unsigned long long)end);
		return -EINVAL;
	}
	return 0;
}

int sparse_scan_read(int pagemap_fd, uint64_t start, uint64_t end,
		     struct page_range **ranges, size_t *nr)
{
	uint64_t psize = sysconf(_SC_PAGESIZE);
	struct range_vec v = {};
	uint64_t *ent, addr;
	int ret;

	ret = check_args(start, end);
	if (ret)
		return rv_done(&v, ret, ranges, nr);
	ent = malloc(READ_ENTRIES * sizeof(*ent));
	if (!ent)
		return rv_done(&v, -ENOMEM, ranges, nr);

	for (addr = start; addr < end && !ret;) {
		uint64_t n = (end - addr) / psize;
		ssize_t got;
		uint64_t i;

		if (n > READ_ENTRIES)
			n = READ_ENTRIES;
		got = proc_pagemap_read(pagemap_fd, addr, psize, ent, n);
		if (got < 0) {
			ret = got;
			pr_err("pagemap read at %#llx: %s\n",
			       (unsigned long long)addr, strerror(-ret));
			break;
		}
		for (i = 0; i < (uint64_t)got && !ret; i++, addr += psize)
			if (ent[i] & (PROC_PM_PRESENT | PROC_PM_SWAPPED))
				ret = range_vec_add(&v, addr, addr + psize);
	}
	free(ent);
	return rv_done(&v, ret, ranges, nr);
}

/*
 * Match present-or-swapped pages that are not the zero page. Only
 * PFNZERO is returned, so present and swapped neighbours merge into one
 * region.
 */
static void scan_arg_init(struct pm_scan_arg *arg, struct page_region *vec,
			  uint64_t start, uint64_t end)
{
	memset(arg, 0, sizeof(*arg));
	arg->size = sizeof(*arg);
	arg->start = start;
	arg->end = end;
	arg->vec = (uintptr_t)vec;
	arg->vec_len = SCAN_VEC_LEN;
	arg->category_inverted = PAGE_IS_PFNZERO;
	arg->category_mask = PAGE_IS_PFNZERO;
	arg->category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	arg->return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
}

int sparse_scan(int pagemap_fd, uint64_t start, uint64_t end,
		struct page_range **ranges, size_t *nr)
{
	struct page_region *vec;
	struct range_vec v = {};
	struct pm_scan_arg arg;
	uint64_t addr = start;
	int ret = check_args(start, end);

	if (ret)
		return rv_done(&v, ret, ranges, nr);
	vec = malloc(SCAN_VEC_LEN * sizeof(*vec));
	if (!vec)
		return rv_done(&v, -ENOMEM, ranges, nr);

	/* The kernel stops early when vec is full: go on from walk_end. */
	while (addr < end && !ret) {
		long i, n;

		scan_arg_init(&arg, vec, addr, end);
		n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);
		if (n < 0) {
			ret = -errno;
			if (addr == start && (ret == -ENOTTY || ret == -EINVAL)) {
				free(vec);
				pr_debug("no PAGEMAP_SCAN, reading pagemap\n");
				return sparse_scan_read(pagemap_fd, start, end, ranges, nr);
			}
			pr_err("PAGEMAP_SCAN at %#llx: %s\n",
			       (unsigned long long)addr, strerror(-ret));
			break;
		}
		for (i = 0; i < n && !ret; i++)
			ret = range_vec_add(&v, vec[i].start, vec[i].end);
		if (arg.walk_end <= addr) {
			pr_err("PAGEMAP_SCAN made no progress at %#llx\n",
			       (unsigned long long)addr);
			ret = -EIO;
		}
		addr = arg.walk_end;
	}
	free(vec);
	return rv_done(&v, ret, ranges, nr);
}

uint64_t sparse_bytes(const struct page_range *ranges, size_t nr)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < nr; i++)
		sum += ranges[i].end - ranges[i].start;
	return sum;
}
