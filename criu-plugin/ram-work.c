// SPDX-License-Identifier: GPL-2.0
/*
 * Chunk work queue and worker threads of the RAM data paths (ram-work.h).
 * A shared counter hands out chunks: a chunk owns whole bitmap words, so
 * workers never share a word and need no atomics on the bitmap.
 */
#define LOG_PREFIX "ram: "

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "log.h"
#include "ram-io.h"
#include "ram-work.h"

static void work_init(struct ram_work *w, const struct fr_image *img, const struct ram_job *jobs,
		      uint64_t total)
{
	w->img = img;
	w->jobs = jobs;
	w->total = total;
	atomic_init(&w->next, 0);
	atomic_init(&w->err, 0);
}

void ram_work_init(struct ram_work *w, const struct fr_image *img)
{
	uint64_t total = 0;
	uint32_t i;

	for (i = 0; i < img->nr_blocks; i++)
		total += img->blocks[i].nr_chunks;
	work_init(w, img, NULL, total);
}

void ram_work_init_jobs(struct ram_work *w, const struct fr_image *img,
			const struct ram_job *jobs, uint64_t n)
{
	work_init(w, img, jobs, n);
}

static bool failed(struct ram_work *w)
{
	return atomic_load_explicit(&w->err, memory_order_relaxed);
}

bool ram_work_next(struct ram_work *w, uint32_t *block, uint64_t *chunk)
{
	uint64_t g;
	uint32_t i;

	if (failed(w))
		return false;
	g = atomic_fetch_add_explicit(&w->next, 1, memory_order_relaxed);
	if (g >= w->total)
		return false;
	if (w->jobs) {
		*block = w->jobs[g].block;
		*chunk = w->jobs[g].chunk;
		return true;
	}
	/* A handful of RAM blocks: a linear walk is cheaper than a search. */
	for (i = 0; g >= w->img->blocks[i].nr_chunks; i++)
		g -= w->img->blocks[i].nr_chunks;
	*block = i;
	*chunk = g;
	return true;
}

void ram_work_fail(struct ram_work *w, int err)
{
	int zero = 0;

	atomic_compare_exchange_strong(&w->err, &zero, err);
}

int ram_work_run(struct ram_work *w, unsigned n, void *(*fn)(void *), void *arg)
{
	pthread_t tid[RAM_IO_MAX_WORKERS];
	unsigned i, started = 0;
	sigset_t all, old;

	if (n < 1)
		n = 1;
	if (n > RAM_IO_MAX_WORKERS)
		n = RAM_IO_MAX_WORKERS;
	/* Signals stay with the caller's thread (CRIU's handlers). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < n; i++) {
		int ret = pthread_create(&tid[i], NULL, fn, arg);

		if (ret) {
			pr_err("cannot start RAM worker %u: %s\n", i, strerror(ret));
			ram_work_fail(w, -ret);
			break;
		}
		started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	for (i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	return atomic_load(&w->err);
}

struct chunk_run {
	struct ram_work *w;
	size_t buf_bytes;
	ram_chunk_fn fn;
	void *arg;
};

static void *chunk_worker(void *arg)
{
	struct chunk_run *r = arg;
	uint64_t chunk;
	uint32_t bi;
	char *buf;
	int ret = 0;

	buf = ram_io_buf(r->buf_bytes);
	if (!buf) {
		ram_work_fail(r->w, -ENOMEM);
		return NULL;
	}
	while (!ret && ram_work_next(r->w, &bi, &chunk))
		ret = r->fn(r->arg, bi, chunk, buf);
	if (ret)
		ram_work_fail(r->w, ret);
	ram_io_buf_free(buf, r->buf_bytes);
	return NULL;
}

int ram_work_run_chunks(struct ram_work *w, unsigned n, size_t buf_bytes, ram_chunk_fn chunk_fn,
			void *arg)
{
	struct chunk_run r = { .w = w, .buf_bytes = buf_bytes, .fn = chunk_fn, .arg = arg };

	return ram_work_run(w, n, chunk_worker, &r);
}
