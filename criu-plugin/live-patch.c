// SPDX-License-Identifier: GPL-2.0
/*
 * In-place patch of a fixed-ram image with the pages that changed.
 *
 * Why not ram_write_ranges(): it rewrites every data page of each chunk a
 * range touches, so one dirty 4 KiB page costs a 1 MiB write (and its
 * fsync), and a dirty set scattered over all chunks rewrites all of RAM.
 * A chunk's checksum does cover all of its data, but reading the chunk
 * from the process costs memory bandwidth, not disk bandwidth: read it,
 * recompute bitmap words and checksum, write only the changed pages.
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
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "live-patch.h"
#include "log.h"
#include "sparse.h"

#define LP_IOV_BATCH	256

struct lp_block {
	uint64_t *dirty;	/* pages reported written */
	uint64_t *pop;		/* pages populated per the pagemap */
	uint64_t *todo;		/* chunks to redo */
};

struct lp_job {
	uint32_t block;
	uint64_t chunk;
};

struct lp_ctx {
	struct ram_work work;	/* only for the first error and ram_work_run() */
	pid_t pid;
	struct fr_image *img;
	int fd;			/* buffered image fd */
	struct lp_block *blk;
	struct lp_job *jobs;
	uint64_t nr_jobs;
	atomic_uint_fast64_t next;
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
		ram_set_bits(lb->dirty, s, e);
		ram_set_bits(lb->todo, s / b->chunk_pages, (e - 1) / b->chunk_pages + 1);
	}
}

/* One walk of the whole block: cheap, the populated ranges come merged. */
static int scan_pop(int pagemap, const struct fr_block *b, struct lp_block *lb)
{
	struct page_range *r;
	size_t nr, i;
	int ret;

	ret = sparse_scan(pagemap, b->host_addr, b->host_addr + b->length, &r, &nr);
	if (ret) {
		pr_err("block '%s': cannot scan pages: %s\n", b->name, strerror(-ret));
		return ret;
	}
	for (i = 0; i < nr; i++) {
		uint64_t s = (r[i].start - b->host_addr) / b->page_size;
		uint64_t e = (r[i].end - b->host_addr + b->page_size - 1) / b->page_size;

		ram_set_bits(lb->pop, s, e < b->nr_pages ? e : b->nr_pages);
	}
	free(r);
	return 0;
}

/* Chunks with a page that has its bit but is not populated any more. */
static void mark_stale(const struct fr_block *b, struct lp_block *lb)
{
	uint64_t w, words = (b->nr_pages + 63) / 64;

	for (w = 0; w < words; w++)
		if (b->bitmap[w] & ~lb->pop[w])
			fr_bit_set(lb->todo, w * 64 / b->chunk_pages);
}

static int prepare_block(struct lp_ctx *c, uint32_t bi, const struct page_range *r, size_t nr,
			 int pagemap)
{
	const struct fr_block *b = &c->img->blocks[bi];
	struct lp_block *lb = &c->blk[bi];
	int ret;

	lb->dirty = bitmap_alloc(b->nr_pages);
	lb->pop = bitmap_alloc(b->nr_pages);
	lb->todo = bitmap_alloc(b->nr_chunks);
	if (!lb->dirty || !lb->pop || !lb->todo)
		return -ENOMEM;
	mark_dirty(b, lb, r, nr);
	ret = scan_pop(pagemap, b, lb);
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
		for (e = 0; ram_next_run(c->blk[bi].todo, e, c->img->blocks[bi].nr_chunks, &s, &e);)
			n += e - s;
	c->jobs = calloc(n + 1, sizeof(*c->jobs));
	if (!c->jobs)
		return -ENOMEM;
	for (bi = 0; bi < c->img->nr_blocks; bi++)
		for (e = 0; ram_next_run(c->blk[bi].todo, e, c->img->blocks[bi].nr_chunks, &s, &e);)
			for (; s < e; s++)
				c->jobs[c->nr_jobs++] = (struct lp_job){ .block = bi, .chunk = s };
	return 0;
}

/* ---- per chunk ---- */

/* Pages of word w to read: populated, and dirty or with data at their copy. */
static uint64_t want_word(const struct fr_block *b, const struct lp_block *lb, uint64_t w)
{
	return lb->pop[w] & (lb->dirty[w] | b->bitmap[w]);
}

/* The chunk's pages to read into buf, laid out as in the process. */
static int read_chunk(struct lp_ctx *c, const struct fr_block *b, const struct lp_block *lb,
		      uint64_t first, uint64_t n, char *buf)
{
	uint64_t want[FR_CHUNK_PAGES / 64], w, pages = 0;

	/* first is a multiple of 64: want[] is indexed from the chunk's first page. */
	for (w = 0; w < (n + 63) / 64; w++) {
		want[w] = want_word(b, lb, first / 64 + w);
		pages += __builtin_popcountll(want[w]);
	}
	atomic_fetch_add_explicit(&c->read, pages, memory_order_relaxed);
	return ram_read_runs(c->pid, b, want, first, n, buf);
}

static int pwrite_all(int fd, const char *p, uint64_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? -errno : -EIO;

			pr_err("writing %llu bytes at offset %#llx of the RAM image: %s\n",
			       (unsigned long long)len, (unsigned long long)off, strerror(-err));
			return err;
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* Write the runs of pages in mask (bits of word w) from the chunk buffer. */
static int write_word(struct lp_ctx *c, const struct fr_block *b, uint64_t first,
		      uint64_t w, uint64_t mask, const char *buf)
{
	uint64_t s, e = 0;
	int ret;

	while (ram_next_run(&mask, e, 64, &s, &e)) {
		uint64_t page = w * 64 + s, len = (e - s) * b->page_size;

		ret = pwrite_all(c->fd, buf + (page - first) * b->page_size, len,
				 fr_page_offset(b, page));
		if (ret)
			return ret;
		atomic_fetch_add_explicit(&c->written, e - s, memory_order_relaxed);
		atomic_fetch_add_explicit(&c->bytes, len, memory_order_relaxed);
	}
	return 0;
}

/* Pages that lost their data: free their disk blocks too. */
static void punch_word(struct lp_ctx *c, const struct fr_block *b, uint64_t w, uint64_t mask)
{
	uint64_t s, e = 0;

	atomic_fetch_add_explicit(&c->dropped, __builtin_popcountll(mask), memory_order_relaxed);
	while (ram_next_run(&mask, e, 64, &s, &e))
		if (fallocate(c->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      fr_page_offset(b, w * 64 + s), (e - s) * b->page_size))
			pr_debug("punch hole in '%s': %s\n", b->name, strerror(errno));
}

static int patch_chunk(struct lp_ctx *c, const struct lp_job *j, char *buf)
{
	struct fr_block *b = &c->img->blocks[j->block];
	const struct lp_block *lb = &c->blk[j->block];
	uint64_t first = j->chunk * b->chunk_pages, n = fr_chunk_nr_pages(b, j->chunk);
	uint64_t w, end = (first + n + 63) / 64;
	int ret;

	ret = read_chunk(c, b, lb, first, n, buf);
	if (ret) {
		pr_err("block '%s' chunk %llu: cannot read the pages of pid %d\n",
		       b->name, (unsigned long long)j->chunk, c->pid);
		return ret;
	}
	/* A chunk owns whole bitmap words: no other worker touches them. */
	for (w = first / 64; w < end; w++) {
		uint64_t todo = want_word(b, lb, w), data = 0, old = b->bitmap[w];

		while (todo) {
			unsigned bit = __builtin_ctzll(todo);

			todo &= todo - 1;
			if (!ram_page_is_zero(buf + (w * 64 + bit - first) * b->page_size, b->page_size))
				data |= 1ULL << bit;
		}
		/* New data nobody reported cannot happen; written anyway, it is cheap. */
		ret = write_word(c, b, first, w, data & (lb->dirty[w] | ~old), buf);
		if (ret)
			return ret;
		if (old & ~data)
			punch_word(c, b, w, old & ~data);
		b->bitmap[w] = data;
	}
	b->csums[j->chunk] = fr_chunk_csum(b, j->chunk, buf);
	return 0;
}

static void *lp_main(void *arg)
{
	struct lp_ctx *c = arg;
	char *buf;
	int ret = 0;

	/* mmap: page aligned for an O_DIRECT image fd. */
	buf = mmap(NULL, c->buf_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		ram_work_fail(&c->work, -ENOMEM);
		return NULL;
	}
	while (!ret && !atomic_load_explicit(&c->work.err, memory_order_relaxed)) {
		uint64_t i = atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed);

		if (i >= c->nr_jobs)
			break;
		ret = patch_chunk(c, &c->jobs[i], buf);
	}
	if (ret)
		ram_work_fail(&c->work, ret);
	munmap(buf, c->buf_bytes);
	return NULL;
}

/* ---- a patch ---- */

static void ctx_fini(struct lp_ctx *c)
{
	uint32_t i;

	for (i = 0; c->blk && i < c->img->nr_blocks; i++) {
		free(c->blk[i].dirty);
		free(c->blk[i].pop);
		free(c->blk[i].todo);
	}
	free(c->blk);
	free(c->jobs);
}

static int ctx_init(struct lp_ctx *c, pid_t pid, struct fr_image *img)
{
	uint32_t i;

	memset(c, 0, sizeof(*c));
	c->pid = pid;
	c->img = img;
	ram_work_init(&c->work, img);
	atomic_init(&c->next, 0);
	c->fd = img->meta_fd >= 0 ? img->meta_fd : img->fd;
	if (c->fd < 0)
		return -EBADF;
	c->blk = calloc(img->nr_blocks + 1, sizeof(*c->blk));
	if (!c->blk)
		return -ENOMEM;
	for (i = 0; i < img->nr_blocks; i++) {
		const struct fr_block *b = &img->blocks[i];
		size_t bytes = (size_t)b->chunk_pages * b->page_size;

		if (!b->bitmap || !b->csums || b->chunk_pages != FR_CHUNK_PAGES) {
			pr_err("block '%s' is not laid out\n", b->name);
			return -EINVAL;
		}
		if (bytes > c->buf_bytes)
			c->buf_bytes = bytes;
	}
	return 0;
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
		ret = ram_work_run(&c.work, workers, lp_main, &c);
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
