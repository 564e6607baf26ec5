/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The guardian's two hands: userfaultfd ioctls on the task's address space,
 * and the image pages they put there (one verified chunk cached).
 */
#ifndef CRIU_QEMU_GUARDIAN_UFFD_H
#define CRIU_QEMU_GUARDIAN_UFFD_H

#include <stdint.h>

#include "fixedram.h"

/*
 * UFFDIO_COPY of len bytes from src to dst in the task, waking waiters.
 * Returns the bytes placed (> 0, maybe fewer than len), or -EEXIST (the
 * first page is already present), -EAGAIN (the address space is changing:
 * read events first), -ENOENT (no registered VMA there), -ESRCH (the task's
 * mm is gone), -ENOMEM, or another -errno.
 */
long gd_uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len);

/* UFFDIO_ZEROPAGE, same returns. */
long gd_uffd_zero(int uffd, uint64_t dst, uint64_t len);

int gd_uffd_wake(int uffd, uint64_t start, uint64_t len);
int gd_uffd_unregister(int uffd, uint64_t start, uint64_t len);

struct gd_pages {
	const struct fr_image *img;
	char *chunk;		/* the cached chunk, as in guest memory */
	size_t chunk_cap;
	long chunk_block;	/* -1: nothing cached */
	uint64_t chunk_idx;
	char *page;		/* one page read around the cache */
	size_t page_cap;
	uint64_t bad_chunks;	/* checksum mismatches seen */
};

int gd_pages_init(struct gd_pages *p, const struct fr_image *img);
void gd_pages_free(struct gd_pages *p);

/*
 * Page `page` of block b: from the cached chunk if it holds it, else read
 * alone (unverified: a fault must not wait for a whole chunk). NULL on error.
 */
const void *gd_pages_one(struct gd_pages *p, uint32_t b, uint64_t page);

/*
 * Pages from `page` on, inside page's chunk, after reading and verifying
 * the whole chunk into the cache. A checksum mismatch is logged and the
 * data still returned: the image is the only copy left, and wrong bytes in
 * one chunk beat zeros. NULL on I/O error.
 */
const void *gd_pages_chunk(struct gd_pages *p, uint32_t b, uint64_t page);

#endif
