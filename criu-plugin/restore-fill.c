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
 * Page data from the page cache as far as the image is there (RWF_NOWAIT
 * reads only cached pages), the rest from the O_DIRECT fd: an image just
 * written, copied or unpacked from an archive is read from memory, a cold
 * one goes from the disk into buf without page cache pages to allocate
 * first (on a VM that gave its free memory back to its host that costs as
 * much as the fill itself). dst, off and len are page aligned.
 */
static ssize_t read_pages(const struct fr_image *img, char *dst, size_t len, uint64_t off)
{
	size_t done = 0;
	ssize_t n;

	while (img->meta_fd >= 0 && done < len) {
		struct iovec iov = { dst + done, len - done };

		n = preadv2(img->meta_fd, &iov, 1, (off_t)(off + done), RWF_NOWAIT);
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	done &= ~(size_t)4095;	/* O_DIRECT goes on from a page boundary */
	if (done == len)
		return (ssize_t)len;
	n = pread_full(img->fd, dst + done, len - done, off + done);
	/* The file system refused O_DIRECT for this read: the buffered fd takes it. */
	if (n == -EINVAL && img->meta_fd >= 0)
		n = pread_full(img->meta_fd, dst + done, len - done, off + done);
	return n < 0 ? n : (ssize_t)done + n;
}

/*
 * The chunk's present pages into buf with one read from the first to the
 * last of them, then the checksum. Holes in between cost no I/O, and one
 * large read beats fr_read_chunk()'s read per run (1.3x from the page
 * cache). Absent pages in buf are junk, never written into the process.
 */
static int read_chunk(const struct fr_image *img, const struct fr_block *b, uint64_t chunk,
		      char *buf)
{
	uint64_t first = chunk * b->chunk_pages, end = first + fr_chunk_nr_pages(b, chunk);
	uint64_t s, e, csum;
	char *dst;
	size_t len;
	ssize_t n;

	if (!bitmap_next_run(b->bitmap, first, end, &s, &e))
		return 0;
	e = bitmap_last_end(b->bitmap, s, end);
	dst = buf + (s - first) * b->page_size;
	len = (e - s) * b->page_size;
	n = read_pages(img, dst, len, fr_page_offset(b, s));
	if (n != (ssize_t)len) {
		pr_err("block '%s' chunk %llu: cannot read %zu bytes at offset %#llx: %s\n",
		       b->name, (unsigned long long)chunk, len,
		       (unsigned long long)fr_page_offset(b, s), n < 0 ? strerror(-n) : "short read");
		return n < 0 ? (int)n : -EIO;
	}
	csum = fr_chunk_csum(b, chunk, buf);
	if (csum == b->csums[chunk])
		return 0;
	pr_err("block '%s' chunk %llu (pages %llu..%llu): checksum %#llx, expected %#llx: "
	       "the RAM image is corrupt\n", b->name, (unsigned long long)chunk,
	       (unsigned long long)first, (unsigned long long)end - 1,
	       (unsigned long long)csum, (unsigned long long)b->csums[chunk]);
	return -EBADMSG;
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
