/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the three RAM data paths share: the dump writer (dump-writer.c),
 * the live patch (live-patch.c) and the restore filler (restore-fill.c)
 * take the same options, report the same statistics, run the same number
 * of workers and give each one page-aligned chunk buffers.
 */
#ifndef CRIU_QEMU_RAM_IO_H
#define CRIU_QEMU_RAM_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fixedram.h"

#define RAM_IO_MAX_WORKERS	16
#define RAM_IO_QUEUE_DEPTH	64	/* default io_uring entries per worker */

struct ram_io_opts {
	unsigned workers;	/* 0: online CPUs; capped at RAM_IO_MAX_WORKERS */
	bool odirect;		/* page data with O_DIRECT (set on img->fd if missing) */
	unsigned queue_depth;	/* io_uring entries per worker; 0: RAM_IO_QUEUE_DEPTH */
	/* Dump only: an earlier image of the same VM whose unchanged chunks
	 * are shared instead of written (dump-reuse.h); NULL: none. */
	const struct fr_image *base;
	bool base_verify;	/* compare bytes, not only checksums */
};

struct ram_io_stats {
	uint64_t pages_total;		/* pages of the chunks processed */
	uint64_t pages_scanned_present;	/* populated (dump) / present in image (restore) */
	uint64_t pages_zero;		/* populated but all zero: not written */
	uint64_t pages_written;		/* to the image (dump) / into the process (restore) */
	uint64_t bytes_written;
	uint64_t chunks_reused;		/* shared with the base image (dump) */
	uint64_t bytes_reused;
	uint64_t chunks_mismatch;	/* same checksum as the base, other bytes */
	double ms;			/* wall clock */
};

unsigned ram_io_nr_workers(const struct ram_io_opts *o);

/* Turn O_DIRECT on for fd when o asks for it; warns and goes on without. */
void ram_io_set_odirect(int fd, const struct ram_io_opts *o);

/*
 * Check that every block of img is laid out (bitmap, checksums, chunks of
 * a non-zero multiple of 64 pages: a chunk owns whole bitmap words) and
 * set *bytes to the size of its largest chunk. 0 or -EINVAL (logged).
 */
int ram_io_chunk_bytes(const struct fr_image *img, size_t *bytes);

/* A chunk buffer: mmap, so page aligned for O_DIRECT, and untouched parts cost nothing. */
char *ram_io_buf(size_t bytes);
void ram_io_buf_free(char *buf, size_t bytes);

#endif
