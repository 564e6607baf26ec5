// SPDX-License-Identifier: GPL-2.0
/* userfaultfd ioctls and image page access for the guardian. */
#define LOG_PREFIX "guardian: "

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/userfaultfd.h>

#include "guardian-uffd.h"
#include "io.h"
#include "log.h"

/*
 * The ioctls report progress in .copy / .zeropage: bytes done, or -errno
 * when the first page failed. A partial result comes back as -EAGAIN from
 * the ioctl with a positive count.
 */
static long fill_result(int ret, int64_t done)
{
	if (done > 0)
		return done;
	if (done < 0)
		return done;
	return ret ? -errno : -EIO;
}

long gd_uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len)
{
	struct uffdio_copy c = {
		.dst = dst,
		.src = (uintptr_t)src,
		.len = len,
	};
	int ret;

	ret = ioctl(uffd, UFFDIO_COPY, &c);
	if (!ret)
		return len;
	return fill_result(ret, c.copy);
}

long gd_uffd_zero(int uffd, uint64_t dst, uint64_t len)
{
	struct uffdio_zeropage z = { .range = { .start = dst, .len = len } };
	int ret;

	ret = ioctl(uffd, UFFDIO_ZEROPAGE, &z);
	if (!ret)
		return len;
	return fill_result(ret, z.zeropage);
}

int gd_uffd_wake(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	return ioctl(uffd, UFFDIO_WAKE, &r) ? -errno : 0;
}

int gd_uffd_unregister(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	return ioctl(uffd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

int gd_pages_init(struct gd_pages *p, const struct fr_image *img)
{
	memset(p, 0, sizeof(*p));
	p->img = img;
	p->chunk_block = -1;
	return 0;
}

void gd_pages_free(struct gd_pages *p)
{
	free(p->chunk);
	free(p->page);
	memset(p, 0, sizeof(*p));
	p->chunk_block = -1;
}

/* Page-aligned buffer of at least len bytes in *buf (capacity *cap). */
static int ensure_buf(char **buf, size_t *cap, size_t len)
{
	void *n;

	if (*cap >= len)
		return 0;
	if (posix_memalign(&n, 4096, len))
		return -ENOMEM;
	free(*buf);
	*buf = n;
	*cap = len;
	return 0;
}

static bool cached(const struct gd_pages *p, uint32_t b, uint64_t chunk)
{
	return p->chunk_block == (long)b && p->chunk_idx == chunk;
}

const void *gd_pages_one(struct gd_pages *p, uint32_t b, uint64_t page)
{
	const struct fr_block *fb = &p->img->blocks[b];
	uint64_t chunk = page / fb->chunk_pages;
	ssize_t n;

	if (cached(p, b, chunk))
		return p->chunk + (page - chunk * fb->chunk_pages) * fb->page_size;
	if (ensure_buf(&p->page, &p->page_cap, fb->page_size))
		return NULL;
	n = pread_full(p->img->fd, p->page, fb->page_size, fr_page_offset(fb, page));
	if (n >= 0 && n < fb->page_size)
		n = -EIO;	/* the image ends inside a page it has data for */
	if (n < 0) {
		pr_err("reading page %" PRIu64 " of block '%s' from the image: %s\n", page,
		       fb->name, strerror((int)-n));
		return NULL;
	}
	return p->page;
}

const void *gd_pages_chunk(struct gd_pages *p, uint32_t b, uint64_t page)
{
	const struct fr_block *fb = &p->img->blocks[b];
	uint64_t chunk = page / fb->chunk_pages;
	int ret;

	if (!cached(p, b, chunk)) {
		if (ensure_buf(&p->chunk, &p->chunk_cap, (size_t)fb->chunk_pages * fb->page_size))
			return NULL;
		p->chunk_block = -1;
		ret = fr_read_chunk(p->img, fb, chunk, p->chunk);
		if (ret == -EBADMSG) {
			p->bad_chunks++;
			pr_err("block '%s' chunk %" PRIu64 " fails its checksum; giving it back as stored\n",
			       fb->name, chunk);
		} else if (ret) {
			return NULL;
		}
		p->chunk_block = b;
		p->chunk_idx = chunk;
	}
	return p->chunk + (page - chunk * fb->chunk_pages) * fb->page_size;
}
