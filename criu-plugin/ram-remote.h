/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Copies of a chunk's pages between a local buffer and another process:
 * the runs of a bitmap batched into process_vm_readv/writev calls.
 */
#ifndef CRIU_QEMU_RAM_REMOTE_H
#define CRIU_QEMU_RAM_REMOTE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fixedram.h"

/*
 * Copy the pages of block b whose bit is set in bits (bit i = page first + i
 * of b, i < n) between process pid and buf, laid out as in the process
 * (page first + i at buf + i * page_size); into the process when write is
 * set. A page the process cannot access fails with -EFAULT, logged with
 * its address. Returns the number of pages copied or -errno.
 */
int64_t ram_copy_runs(pid_t pid, const struct fr_block *b, const uint64_t *bits, uint64_t first,
		      uint64_t n, char *buf, bool write);

#endif
