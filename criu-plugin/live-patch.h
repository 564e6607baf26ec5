/* SPDX-License-Identifier: GPL-2.0 */
/*
 * In-place update of a fixed-ram image that ram_write_image() filled, to
 * match the process again: the pages written since are copied, the pages
 * that no longer hold data lose their bit, and only the chunks concerned
 * are touched. Used by the live pre-dump passes and by the final copy at
 * the freeze.
 */
#ifndef CRIU_QEMU_LIVE_PATCH_H
#define CRIU_QEMU_LIVE_PATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fixedram.h"
#include "ram-io.h"
#include "sparse.h"

struct live_patch_stats {
	uint64_t chunks;	/* chunks redone */
	uint64_t pages_read;	/* from the process */
	uint64_t pages_written;	/* to the image */
	uint64_t bytes_written;
	uint64_t pages_dropped;	/* held data, no longer do: bit cleared, blocks punched */
};

/*
 * dirty: the pages written since the image last saw them (addresses in pid,
 * any order). Every chunk holding a dirty page, or a page whose bit is set
 * but that is no longer populated (per a scan of pagemap_fd =
 * /proc/pid/pagemap), is redone: its populated pages that are dirty or have
 * their bit are read, bitmap words and checksum recomputed, the dirty pages
 * with data written. o and st may be NULL. Returns 0 or -errno.
 */
int live_patch(pid_t pid, struct fr_image *img, const struct page_range *dirty, size_t nr,
	       int pagemap_fd, const struct ram_io_opts *o, struct live_patch_stats *st);

#endif
