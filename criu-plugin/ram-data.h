/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Which pages of a block hold data, for the dump writer and the live
 * patch: populated per the process's page tables, then not all zero in
 * the copy read from it. A bitmap word of the image is set from them, and
 * pages that lose their bit lose their disk blocks too.
 */
#ifndef CRIU_QEMU_RAM_DATA_H
#define CRIU_QEMU_RAM_DATA_H

#include <stdint.h>

#include "fixedram.h"

/* Set the bits of pop (one per page of b) of the pages populated per pagemap (/proc/PID/pagemap). */
int ram_scan_populated(int pagemap, const struct fr_block *b, uint64_t *pop);

/*
 * Of the pages in mask (bits of bitmap word w of b), those whose copy in
 * buf is not all zero. buf holds the chunk whose first page is first
 * (page p at buf + (p - first) * page_size); untouched when mask is 0.
 */
uint64_t ram_data_bits(const struct fr_block *b, uint64_t first, uint64_t w, uint64_t mask,
		       const char *buf);

/*
 * Set bitmap word w of b to data. Pages that lose their bit (held data in
 * an earlier pass, no longer do) have their disk blocks in fd punched.
 * Returns how many lost it.
 */
unsigned ram_set_data_word(int fd, struct fr_block *b, uint64_t w, uint64_t data);

#endif
