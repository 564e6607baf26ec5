/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The chunk work queue of the RAM data paths and the threads that drain
 * it: (block, chunk) pairs of an image handed out once each, in file
 * order, to up to RAM_IO_MAX_WORKERS threads; the first error stops them
 * all.
 */
#ifndef CRIU_QEMU_RAM_WORK_H
#define CRIU_QEMU_RAM_WORK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fixedram.h"

struct ram_job {
	uint32_t block;
	uint64_t chunk;
};

struct ram_work {
	const struct fr_image *img;
	const struct ram_job *jobs;	/* NULL: every chunk of img */
	uint64_t total;			/* chunks to hand out */
	atomic_uint_fast64_t next;
	atomic_int err;			/* first error; stops every worker */
};

/* Every chunk of every block of img. */
void ram_work_init(struct ram_work *w, const struct fr_image *img);
/* Only jobs[0..n), in that order; jobs must outlive w. */
void ram_work_init_jobs(struct ram_work *w, const struct fr_image *img,
			const struct ram_job *jobs, uint64_t n);

/* false when all chunks are taken or a worker failed. */
bool ram_work_next(struct ram_work *w, uint32_t *block, uint64_t *chunk);
void ram_work_fail(struct ram_work *w, int err);

/* Run fn(arg) in n threads (capped at RAM_IO_MAX_WORKERS), join them; returns the first error. */
int ram_work_run(struct ram_work *w, unsigned n, void *(*fn)(void *), void *arg);

/*
 * The same with each thread holding a chunk buffer of buf_bytes
 * (ram_io_buf) and calling chunk_fn for each chunk it takes, until all are
 * done or one returns an error.
 */
typedef int (*ram_chunk_fn)(void *arg, uint32_t block, uint64_t chunk, char *buf);
int ram_work_run_chunks(struct ram_work *w, unsigned n, size_t buf_bytes, ram_chunk_fn chunk_fn,
			void *arg);

#endif
