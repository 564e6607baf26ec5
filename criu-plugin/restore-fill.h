/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Restore data path: fill a process's freshly mapped (empty) RAM blocks
 * from a fixed-ram image with parallel workers (fr_read_chunk +
 * process_vm_writev). Absent pages are never touched, so they stay
 * unpopulated zero memory in the target.
 */
#ifndef CRIU_QEMU_RESTORE_FILL_H
#define CRIU_QEMU_RESTORE_FILL_H

#include <stdint.h>
#include <sys/types.h>

#include "fixedram.h"
#include "dump-writer.h"	/* struct ram_io_opts, struct ram_io_stats */

/*
 * Write every present page of img into process pid at host_addr +
 * page * page_size. o and st may be NULL (o->queue_depth is unused).
 * Returns 0, -EBADMSG when a chunk fails its checksum (logged with block
 * and chunk), or -errno.
 */
int ram_fill_from_image(pid_t pid, const struct fr_image *img, const struct ram_io_opts *o,
			struct ram_io_stats *st);

/*
 * One chunk: read and verify it into buf (chunk_pages * page_size bytes,
 * 4096 aligned), then write its present pages into pid. Returns the
 * number of pages written or -errno / -EBADMSG.
 */
int64_t ram_fill_chunk(pid_t pid, const struct fr_image *img, const struct fr_block *b,
		       uint64_t chunk, void *buf);

/*
 * One page of b into buf (page_size bytes; 4096 aligned if img->fd is
 * O_DIRECT): from the image if present, zeros if not. The chunk checksum
 * is not verified. Returns 0 or -errno.
 */
int ram_read_page(const struct fr_image *img, const struct fr_block *b, uint64_t page, void *buf);

#endif
