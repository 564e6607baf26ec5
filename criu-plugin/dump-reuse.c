// SPDX-License-Identifier: GPL-2.0
/*
 * Reuse of an earlier image's chunks in an incremental dump (see dump-reuse.h).
 */
#define LOG_PREFIX "incremental: "

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/fs.h>

#include "log.h"
#include "dump-reuse.h"

static bool same_shape(const struct fr_block *a, const struct fr_block *b)
{
	return !strcmp(a->name, b->name) && a->length == b->length &&
	       a->page_size == b->page_size && a->chunk_pages == b->chunk_pages;
}

int reuse_init(struct reuse_ctx *r, const struct fr_image *img, const struct fr_image *base,
	       bool verify)
{
	uint32_t i, k;

	memset(r, 0, sizeof(*r));
	if (!base)
		return 0;
	r->map = calloc(img->nr_blocks + 1, sizeof(*r->map));
	if (!r->map)
		return -ENOMEM;
	r->base = base;
	r->verify = verify;
	for (i = 0; i < img->nr_blocks; i++) {
		r->map[i] = -1;
		for (k = 0; k < base->nr_blocks; k++)
			if (same_shape(&img->blocks[i], &base->blocks[k]))
				r->map[i] = k;
		if (r->map[i] < 0)
			pr_info("block '%s' is not in the base image (or changed size)\n",
				img->blocks[i].name);
	}
	return 0;
}

void reuse_fini(struct reuse_ctx *r)
{
	free(r->map);
	r->map = NULL;
}

bool reuse_needs_cmp(const struct reuse_ctx *r)
{
	return r->base && r->verify;
}

static bool same_summary(const struct fr_block *b, const struct fr_block *bb, uint64_t chunk)
{
	uint64_t w0 = chunk * b->chunk_pages / 64, nw = (fr_chunk_nr_pages(b, chunk) + 63) / 64;

	return b->csums[chunk] == bb->csums[chunk] &&
	       !memcmp(b->bitmap + w0, bb->bitmap + w0, nw * sizeof(uint64_t));
}

/* The present pages of the chunk, from memory (buf) and from the base (cmp). */
static bool same_bytes(const struct fr_block *b, uint64_t chunk, const char *buf, const char *cmp)
{
	uint64_t first = chunk * b->chunk_pages, n = fr_chunk_nr_pages(b, chunk), s, e = 0;

	while (bitmap_next_run(b->bitmap + first / 64, e, n, &s, &e))
		if (memcmp(buf + s * b->page_size, cmp + s * b->page_size, (e - s) * b->page_size))
			return false;
	return true;
}

/* Share the present runs of the chunk with the base; false: not (all) shared. */
static bool clone_chunk(struct reuse_ctx *r, struct fr_image *img, struct fr_block *b,
			const struct fr_block *bb, uint64_t chunk)
{
	uint64_t first = chunk * b->chunk_pages, n = fr_chunk_nr_pages(b, chunk), s, e = 0;
	uint64_t bytes = 0;

	/* The chunk's own slot, which a failed clone leaves to the writes. */
	fr_place_chunk(img, b, chunk);

	while (bitmap_next_run(b->bitmap + first / 64, e, n, &s, &e)) {
		struct file_clone_range fcr = {
			.src_fd = r->base->fd,
			.src_offset = fr_page_offset(bb, first + s),
			.src_length = (e - s) * b->page_size,
			.dest_offset = fr_page_offset(b, first + s),
		};

		if (ioctl(img->fd, FICLONERANGE, &fcr)) {
			if (!atomic_exchange(&r->no_reflink, true))
				pr_info("no reflink from the base image (%s); "
					"unchanged pages are written again\n", strerror(errno));
			return false;
		}
		bytes += fcr.src_length;
	}
	atomic_fetch_add(&r->chunks_cloned, 1);
	atomic_fetch_add(&r->bytes_cloned, bytes);
	return true;
}

bool reuse_chunk(struct reuse_ctx *r, struct fr_image *img, uint32_t bi, uint64_t chunk,
		 const char *buf, char *cmp)
{
	struct fr_block *b = &img->blocks[bi];
	const struct fr_block *bb;

	if (!r->base || r->map[bi] < 0 || atomic_load_explicit(&r->no_reflink, memory_order_relaxed))
		return false;
	bb = &r->base->blocks[r->map[bi]];
	/* A chunk without data has nothing to write or share. */
	if (!same_summary(b, bb, chunk) ||
	    !bitmap_any(b->bitmap, chunk * b->chunk_pages, fr_chunk_nr_pages(b, chunk)))
		return false;
	atomic_fetch_add(&r->chunks_same, 1);
	/* A damaged base chunk fails its checksum here and is written anew. */
	if (r->verify && (fr_read_chunk(r->base, bb, chunk, cmp) || !same_bytes(b, chunk, buf, cmp))) {
		atomic_fetch_add(&r->chunks_differ, 1);
		return false;
	}
	return clone_chunk(r, img, b, bb, chunk);
}
