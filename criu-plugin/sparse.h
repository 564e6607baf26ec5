/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Which pages of an address range in another process hold data: present or
 * swapped, and not the shared zero page. Used to skip never-touched guest
 * RAM without reading it.
 */
#ifndef CRIU_QEMU_SPARSE_H
#define CRIU_QEMU_SPARSE_H

#include <stddef.h>
#include <stdint.h>

/* [start, end) in bytes of the scanned process, page aligned. */
struct page_range {
	uint64_t start;
	uint64_t end;
};

/* A growing array of ranges; zeroed, it is empty. The owner frees r. */
struct range_vec {
	struct page_range *r;
	size_t nr;
	size_t cap;
};

/* Append [start, end), merged into the last range when adjacent. 0 or -ENOMEM. */
int range_vec_add(struct range_vec *v, uint64_t start, uint64_t end);

/*
 * Scan [start, end) (page aligned) of the process whose /proc/PID/pagemap is
 * open as pagemap_fd. Returns 0 and a sorted, merged array of ranges in
 * *ranges (NULL when *nr is 0; the caller frees it), or -errno.
 * Uses the PAGEMAP_SCAN ioctl and falls back to sparse_scan_read() on
 * kernels without it.
 */
int sparse_scan(int pagemap_fd, uint64_t start, uint64_t end,
		struct page_range **ranges, size_t *nr);

/*
 * The fallback: read 64-bit pagemap entries (present or swapped). It cannot
 * tell the shared zero page from data, so it reports more pages than
 * sparse_scan() does with the ioctl.
 */
int sparse_scan_read(int pagemap_fd, uint64_t start, uint64_t end,
		     struct page_range **ranges, size_t *nr);

/* Total bytes covered by ranges. */
uint64_t sparse_bytes(const struct page_range *ranges, size_t nr);

#endif
