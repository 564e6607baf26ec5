/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Restore data path: fill a process's freshly mapped (empty) RAM blocks
 * from a fixed-ram image with parallel workers (one read per chunk +
 * process_vm_writev). Absent pages are never touched, so they stay
 * unpopulated zero memory in the target.
 */
#ifndef CRIU_QEMU_RESTORE_FILL_H
#define CRIU_QEMU_RESTORE_FILL_H

#include <sys/types.h>

#include "fixedram.h"
#include "ram-io.h"

/*
 * Write every present page of img into process pid at host_addr +
 * page * page_size. o and st may be NULL (o->queue_depth is unused).
 * Returns 0, -EBADMSG when a chunk fails its checksum (logged with block
 * and chunk), or -errno.
 */
int ram_fill_from_image(pid_t pid, const struct fr_image *img, const struct ram_io_opts *o,
			struct ram_io_stats *st);

#endif
