// SPDX-License-Identifier: GPL-2.0
/*
 * Which pages of a block hold data, and the bitmap words that say so
 * (ram-data.h).
 */
#define LOG_PREFIX "ram: "

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ram-data.h"
#include "sparse.h"

int ram_scan_populated(int pagemap, const struct fr_block *b, uint64_t *pop)
{
	struct page_range *r;
	size_t nr, i;
	int ret;

	ret = sparse_scan(pagemap, b->host_addr, b->host_addr + b->length, &r, &nr);
	if (ret) {
		pr_err("block '%s': cannot scan pages: %s\n", b->name, strerror(-ret));
		return ret;
	}
	for (i = 0; i < nr; i++) {
		uint64_t s = (r[i].start - b->host_addr) / b->page_size;
		uint64_t e = (r[i].end - b->host_addr + b->page_size - 1) / b->page_size;

		bitmap_set_range(pop, s, e < b->nr_pages ? e : b->nr_pages);
	}
	free(r);
	return 0;
}

/* Most data pages differ from zero in their first bytes: check 64 at a time. */
static bool page_is_zero(const void *p, size_t len)
{
	const uint64_t *w = p, *end = w + len / 8;

	for (; w < end; w += 8)
		if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])
			return false;
	return true;
}

uint64_t ram_data_bits(const struct fr_block *b, uint64_t first, uint64_t w, uint64_t mask,
		       const char *buf)
{
	uint64_t data = 0;

	while (mask) {
		unsigned bit = __builtin_ctzll(mask);

		mask &= mask - 1;
		if (!page_is_zero(buf + (w * 64 + bit - first) * b->page_size, b->page_size))
			data |= 1ULL << bit;
	}
	return data;
}

unsigned ram_set_data_word(int fd, struct fr_block *b, uint64_t w, uint64_t data)
{
	uint64_t lost = b->bitmap[w] & ~data, s, e = 0;

	b->bitmap[w] = data;
	while (bitmap_next_run(&lost, e, 64, &s, &e))
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      fr_page_offset(b, w * 64 + s), (e - s) * b->page_size))
			pr_debug("punch hole in '%s': %s\n", b->name, strerror(errno));
	return __builtin_popcountll(lost);
}
