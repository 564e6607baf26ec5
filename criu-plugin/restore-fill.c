// SPDX-License-Identifier: GPL-2.0
/*
 * Parallel restore filler: present pages of a fixed-ram image into a
 * process. Workers take chunks like the dump writer; a chunk is read and
 * checksummed whole, then only its present pages go into the target with
 * process_vm_writev (one call per chunk). Absent pages are not written: the
 * fresh anonymous mapping reads them as zero without allocating memory.
 */
#define LOG_PREFIX "restore: "

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "clock.h"
#include "io.h"
#include "log.h"
#include "ram-remote.h"
#include "ram-work.h"
#include "restore-fill.h"

struct fill_ctx {
	struct ram_work work;
	pid_t pid;
	atomic_uint_fast64_t written, bytes;
};

/*
 * The chunk, verified, into buf (fr_read_chunk: one read of its present
 * span, from the page cache if it is there, else O_DIRECT). It logs the
 * details; this adds what it means for the restore.
 */
static int read_chunk(const struct fr_image *img, const struct fr_block *b, uint64_t chunk,
		      char *buf)
{
	int ret = fr_read_chunk(img, b, chunk, buf);

	if (ret == -EBADMSG)
		pr_err("block '%s' chunk %llu: the RAM image is corrupt\n", b->name,
		       (unsigned long long)chunk);
	else if (ret)
		pr_err("block '%s' chunk %llu: cannot read it: %s\n", b->name,
		       (unsigned long long)chunk, strerror(-ret));
	return ret;
}

/* One chunk: read and verify it into buf, then write its present pages into the process. */
static int fill_chunk(void *arg, uint32_t bi, uint64_t chunk, char *buf)
{
	struct fill_ctx *c = arg;
	const struct fr_block *b = &c->work.img->blocks[bi];
	uint64_t first = chunk * b->chunk_pages;
	int64_t ret;

	ret = read_chunk(c->work.img, b, chunk, buf);
	if (ret)
		return ret;
	ret = ram_copy_runs(c->pid, b, b->bitmap + first / 64, first, fr_chunk_nr_pages(b, chunk),
			    buf, true);
	if (ret < 0) {
		pr_err("block '%s' chunk %llu: cannot write into pid %d\n",
		       b->name, (unsigned long long)chunk, c->pid);
		return ret;
	}
	atomic_fetch_add_explicit(&c->written, ret, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->bytes, ret * b->page_size, memory_order_relaxed);
	return 0;
}

int ram_fill_from_image(pid_t pid, const struct fr_image *img, const struct ram_io_opts *o,
			struct ram_io_stats *st)
{
	unsigned workers = ram_io_nr_workers(o);
	double t0 = now_ms();
	uint64_t total = 0, present = 0;
	struct fill_ctx c = { .pid = pid };
	size_t buf_bytes;
	uint32_t i;
	int ret;

	ret = ram_io_chunk_bytes(img, &buf_bytes);
	if (ret)
		return ret;
	for (i = 0; i < img->nr_blocks; i++) {
		total += img->blocks[i].nr_pages;
		present += img->blocks[i].nr_present;
	}
	ram_io_set_odirect(img->fd, o);
	ram_work_init(&c.work, img);
	ret = ram_work_run_chunks(&c.work, workers, buf_bytes, fill_chunk, &c);
	if (st) {
		memset(st, 0, sizeof(*st));
		st->pages_total = total;
		st->pages_scanned_present = present;
		st->pages_written = c.written;
		st->bytes_written = c.bytes;
		st->ms = now_ms() - t0;
	}
	if (!ret)
		pr_debug("%llu pages, %llu written (%llu MiB), %u workers, %.1f ms\n",
			(unsigned long long)total, (unsigned long long)c.written,
			(unsigned long long)(c.bytes >> 20), workers, now_ms() - t0);
	return ret;
}
