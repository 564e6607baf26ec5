/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Dump data path: copy the populated pages of a process's RAM blocks into
 * a fixed-ram image with parallel workers (process_vm_readv + io_uring).
 */
#ifndef CRIU_QEMU_DUMP_WRITER_H
#define CRIU_QEMU_DUMP_WRITER_H

#include <sys/types.h>

#include "fixedram.h"
#include "ram-io.h"

/*
 * Dump every page of every block of img from process pid. img is laid out
 * and created (fr_layout + fr_create); sets bitmaps and chunk checksums,
 * does not call fr_finish. o and st may be NULL. Returns 0 or -errno.
 */
int ram_write_image(pid_t pid, struct fr_image *img, const struct ram_io_opts *o,
		    struct ram_io_stats *st);

#endif
