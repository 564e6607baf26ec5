/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Dump data path: copy the populated pages of a process's RAM blocks into
 * a fixed-ram image with parallel workers (process_vm_readv + io_uring).
 * Also the pieces the restore filler shares: options, statistics, the
 * chunk work queue and cross-process copies.
 */
#ifndef CRIU_QEMU_DUMP_WRITER_H
#define CRIU_QEMU_DUMP_WRITER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "fixedram.h"
#include "sparse.h"

#define RAM_IO_MAX_WORKERS	16
#define RAM_IO_QUEUE_DEPTH	64	/* default io_uring entries per worker */

struct ram_io_opts {
	unsigned workers;	/* 0: online CPUs; capped at RAM_IO_MAX_WORKERS */
	bool odirect;		/* page data with O_DIRECT (set on img->fd if missing) */
	unsigned queue_depth;	/* io_uring entries per worker; 0: RAM_IO_QUEUE_DEPTH */
	/* Dump only: an earlier image of the same VM whose unchanged chunks
	 * are shared instead of written (reuse.h); NULL: none. */
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

/*
 * Dump every page of every block of img from process pid. img is laid out
 * and created (fr_layout + fr_create); sets bitmaps and chunk checksums,
 * does not call fr_finish. o and st may be NULL. Returns 0 or -errno.
 */
int ram_write_image(pid_t pid, struct fr_image *img, const struct ram_io_opts *o,
		    struct ram_io_stats *st);

/*
 * Rewrite only the chunks that intersect ranges (addresses in pid, any
 * order), for incremental passes over an image ram_write_image() filled.
 * A chunk is redone whole: bitmap words, checksum, and pages that no
 * longer hold data lose their bit (and their disk blocks).
 */
int ram_write_ranges(pid_t pid, struct fr_image *img, const struct page_range *ranges,
		     size_t nr, const struct ram_io_opts *o, struct ram_io_stats *st);

/* ---- shared with the restore filler ---- */

unsigned ram_io_nr_workers(const struct ram_io_opts *o);

/* Turn O_DIRECT on for fd when o asks for it; warns and goes on without. */
void ram_io_set_odirect(int fd, const struct ram_io_opts *o);

/* (block, chunk) pairs of an image handed out once each, in file order. */
struct ram_work {
	const struct fr_image *img;
	uint64_t total;		/* chunks of all blocks */
	atomic_uint_fast64_t next;
	atomic_int err;		/* first error; stops every worker */
};

void ram_work_init(struct ram_work *w, const struct fr_image *img);
/* false when all chunks are taken or a worker failed. */
bool ram_work_next(struct ram_work *w, uint32_t *block, uint64_t *chunk);
void ram_work_fail(struct ram_work *w, int err);
/* Run fn(arg) in n threads, join them; returns the first error. */
int ram_work_run(struct ram_work *w, unsigned n, void *(*fn)(void *), void *arg);

/*
 * Copy between local and remote iovecs paired one to one (same lengths),
 * into the process when write is set. A page the process cannot access
 * fails with -EFAULT naming the address. Modifies the iovecs.
 */
int ram_vm_copy(pid_t pid, struct iovec *local, struct iovec *remote, int cnt, bool write);

/* Next run [*start, *stop) of set bits of bm at or after from, below end. */
bool ram_next_run(const uint64_t *bm, uint64_t from, uint64_t end, uint64_t *start, uint64_t *stop);

/* Set bits [s, e) of bm. */
void ram_set_bits(uint64_t *bm, uint64_t s, uint64_t e);

/* Is any bit of bm in [s, s + n) set? */
bool ram_any_bit(const uint64_t *bm, uint64_t s, uint64_t n);


/* Is the page all zero? */
bool ram_page_is_zero(const void *p, size_t len);

/*
 * Read the pages of block b whose bit is set in bits (bit i = page first+i,
 * first a multiple of 64) from pid into buf, laid out as in the process.
 */
int ram_read_runs(pid_t pid, const struct fr_block *b, const uint64_t *bits, uint64_t first,
		  uint64_t n, char *buf);

#endif
