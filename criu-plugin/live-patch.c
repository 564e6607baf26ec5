// SPDX-License-Identifier: GPL-2.0
/*
 * In-place patch of a fixed-ram image with the pages that changed.
 *
 * Why not the dump writer's way, rewriting every data page of each chunk
 * a dirty range touches: one dirty 4 KiB page would cost a 1 MiB write
 * (and its fsync), and a dirty set scattered over all chunks would rewrite
 * all of RAM. A chunk's checksum does cover all of its data, but reading
 * the chunk from the process costs memory bandwidth, not disk bandwidth:
 * read it, recompute bitmap words and checksum, write only the changed
 * pages.
 *
 * Page data goes through the image's buffered fd even when the data fd is
 * O_DIRECT: the pages of a pass are few and scattered, and a synchronous
 * O_DIRECT write waits for the disk for each of them (16384 pages: 2.3 s
 * here, against 0.4 s buffered with the fdatasync that follows).
 *
 * The populated-page scan of every block also finds the pages that lost
 * their data without a write (MADV_DONTNEED by a balloon): write tracking
 * does not report those.
 *
 * Between live passes the process runs, so a clean page read here may
 * already differ from its copy in the image, and the checksum from it. Such
 * a page was written after the scan that preceded this pass, so the next
 * scan reports it and its chunk is redone; after the final pass (task
 * frozen) every checksum is exact.
 */
#define LOG_PREFIX "live: "

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "live-patch.h"
#include "log.h"
#include "ram-data.h"
#include "ram-remote.h"
#include "ram-work.h"

struct lp_block {
	uint64_t *dirty;	/* pages reported written */
	uint64_t *want;		/* pages to read: populated, and dirty or with data */
	uint64_t *todo;		/* chunks to redo */
};

struct lp_ctx {
	struct ram_work work;
	pid_t pid;
	struct fr_image *img;
	int fd;			/* buffered image fd */
	struct lp_block *blk;
	struct ram_job *jobs;
	uint64_t nr_jobs;
	size_t buf_bytes;
	atomic_uint_fast64_t read, written, bytes, dropped;
};

/* ---- what to redo ---- */

/* Mark the pages of r[] inside b, and their chunks. */
static void mark_dirty(const struct fr_block *b, struct lp_block *lb,
		       const struct page_range *r, size_t nr)
{
	uint64_t end = b->host_addr + b->length;
	size_t i;

	for (i = 0; i < nr; i++) {
		uint64_t s = r[i].start, e = r[i].end;

		if (e <= b->host_addr || s >= end || s >= e)
			continue;
		s = (s < b->host_addr ? 0 : s - b->host_addr) / b->page_size;
		e = ((e > end ? end : e) - b->host_addr + b->page_size - 1) / b->page_size;
		bitmap_set_range(lb->dirty, s, e);
		bitmap_set_range(lb->todo, s / b->chunk_pages, (e - 1) / b->chunk_pages + 1);
	}
}

/*
 * lb->want holds the populated pages. Chunks with a page that has its bit
 * but is not populated any more are redone too; then want keeps only the
 * pages to read: dirty, or with data at their copy.
 */
static void mark_stale(const struct fr_block *b, struct lp_block *lb)
{
	uint64_t w, words = bitmap_words(b->nr_pages);

	for (w = 0; w < words; w++) {
		if (b->bitmap[w] & ~lb->want[w])
			fr_bit_set(lb->todo, w * 64 / b->chunk_pages);
		lb->want[w] &= lb->dirty[w] | b->bitmap[w];
	}
}

/* One walk of the whole block: cheap, the populated ranges come merged. */
static int prepare_block(struct lp_ctx *c, uint32_t bi, const struct page_range *r, size_t nr,
			 int pagemap)
{
	const struct fr_block *b = &c->img->blocks[bi];
	struct lp_block *lb = &c->blk[bi];
	int ret;

	lb->dirty = bitmap_alloc(b->nr_pages);
	lb->want = bitmap_alloc(b->nr_pages);
	lb->todo = bitmap_alloc(b->nr_chunks);
	if (!lb->dirty || !lb->want || !lb->todo)
		return -ENOMEM;
	mark_dirty(b, lb, r, nr);
	ret = ram_scan_populated(pagemap, b, lb->want);
	if (!ret)
		mark_stale(b, lb);
	return ret;
}

/* The (block, chunk) pairs to redo, in file order. */
static int make_jobs(struct lp_ctx *c)
{
	uint64_t n = 0, s, e;
	uint32_t bi;

	for (bi = 0; bi < c->img->nr_blocks; bi++)
		for (e = 0; bitmap_next_run(c->blk[bi].todo, e, c->img->blocks[bi].nr_chunks, &s, &e);)
			n += e - s;
	c->jobs = calloc(n + 1, sizeof(*c->jobs));
	if (!c->jobs)
		return -ENOMEM;
	for (bi = 0; bi < c->img->nr_blocks; bi++)
		for (e = 0; bitmap_next_run(c->blk[bi].todo, e, c->img->blocks[bi].nr_chunks, &s, &e);)
			for (; s < e; s++)
				c->jobs[c->nr_jobs++] = (struct ram_job){ .block = bi, .chunk = s };
	return 0;
}

/* ---- per chunk ---- */

/* Write the runs of pages in mask (bits of word w) from the chunk buffer. */
static int write_word(struct lp_ctx *c, struct fr_block *b, uint64_t first,
		      uint64_t w, uint64_t mask, const char *buf)
{
	uint64_t s, e = 0;
	int ret;

	if (mask)	/* the chunk's first data gives it a slot in the file */
		fr_place_chunk(c->img, b, first / b->chunk_pages);

	while (bitmap_next_run(&mask, e, 64, &s, &e)) {
		uint64_t page = w * 64 + s, len = (e - s) * b->page_size;

		ret = pwrite_full(c->fd, buf + (page - first) * b->page_size, len,
				  fr_page_offset(b, page));
		if (ret) {
			pr_err("writing %llu bytes at offset %#llx of the RAM image: %s\n",
			       (unsigned long long)len, (unsigned long long)fr_page_offset(b, page),
			       strerror(-ret));
			return ret;
		}
		atomic_fetch_add_explicit(&c->written, e - s, memory_order_relaxed);
		atomic_fetch_add_explicit(&c->bytes, len, memory_order_relaxed);
	}
	return 0;
}

static int patch_chunk(void *arg, uint32_t bi, uint64_t chunk, char *buf)
{
	struct lp_ctx *c = arg;
	struct fr_block *b = &c->img->blocks[bi];
	const struct lp_block *lb = &c->blk[bi];
	uint64_t first = chunk * b->chunk_pages, n = fr_chunk_nr_pages(b, chunk);
	uint64_t w, end = (first + n + 63) / 64;
	int64_t got;
	int ret;

	got = ram_copy_runs(c->pid, b, lb->want + first / 64, first, n, buf, false);
	if (got < 0) {
		pr_err("block '%s' chunk %llu: cannot read the pages of pid %d\n",
		       b->name, (unsigned long long)chunk, c->pid);
		return got;
	}
	atomic_fetch_add_explicit(&c->read, got, memory_order_relaxed);
	/* A chunk owns whole bitmap words: no other worker touches them. */
	for (w = first / 64; w < end; w++) {
		uint64_t old = b->bitmap[w], data = ram_data_bits(b, first, w, lb->want[w], buf);

		/* New data nobody reported cannot happen; written anyway, it is cheap. */
		ret = write_word(c, b, first, w, data & (lb->dirty[w] | ~old), buf);
		if (ret)
			return ret;
		atomic_fetch_add_explicit(&c->dropped, ram_set_data_word(c->fd, b, w, data),
					  memory_order_relaxed);
	}
	b->csums[chunk] = fr_chunk_csum(b, chunk, buf);
	return 0;
}

/* ---- a patch ---- */

static void ctx_fini(struct lp_ctx *c)
{
	uint32_t i;

	for (i = 0; c->blk && i < c->img->nr_blocks; i++) {
		free(c->blk[i].dirty);
		free(c->blk[i].want);
		free(c->blk[i].todo);
	}
	free(c->blk);
	free(c->jobs);
}

static int ctx_init(struct lp_ctx *c, pid_t pid, struct fr_image *img)
{
	memset(c, 0, sizeof(*c));
	c->pid = pid;
	c->img = img;
	c->fd = img->meta_fd >= 0 ? img->meta_fd : img->fd;
	if (c->fd < 0)
		return -EBADF;
	c->blk = calloc(img->nr_blocks + 1, sizeof(*c->blk));
	if (!c->blk)
		return -ENOMEM;
	return ram_io_chunk_bytes(img, &c->buf_bytes);
}

int live_patch(pid_t pid, struct fr_image *img, const struct page_range *dirty, size_t nr,
	       int pagemap_fd, const struct ram_io_opts *o, struct live_patch_stats *st)
{
	struct lp_ctx c;
	unsigned workers;
	uint32_t i;
	int ret;

	ret = ctx_init(&c, pid, img);
	for (i = 0; !ret && i < img->nr_blocks; i++)
		ret = prepare_block(&c, i, dirty, nr, pagemap_fd);
	if (!ret)
		ret = make_jobs(&c);
	if (!ret && c.nr_jobs) {
		workers = ram_io_nr_workers(o);
		if (workers > c.nr_jobs)
			workers = c.nr_jobs;
		ram_work_init_jobs(&c.work, img, c.jobs, c.nr_jobs);
		ret = ram_work_run_chunks(&c.work, workers, c.buf_bytes, patch_chunk, &c);
	}
	if (st) {
		st->chunks = c.nr_jobs;
		st->pages_read = atomic_load(&c.read);
		st->pages_written = atomic_load(&c.written);
		st->bytes_written = atomic_load(&c.bytes);
		st->pages_dropped = atomic_load(&c.dropped);
	}
	ctx_fini(&c);
	return ret;
}
