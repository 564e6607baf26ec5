// SPDX-License-Identifier: GPL-2.0
/*
 * Seed corpus for fuzz_image: a few small real images written with the
 * fixedram API, as the plugin writes them (fr_layout, fr_create, pages,
 * chunk checksums, fr_finish), then turned into fuzz_image's slot form
 * (fuzz_image.h). Built from the current images/fixedram.c, so the seeds
 * follow the format when it changes.
 *
 *   gen_corpus OUTDIR     writes OUTDIR/seed-*.img
 *
 * Present pages sit near the start of their slot, and page contents are
 * short, so every seed stays a few KiB: trailing zeros of a slot are holes.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixedram.h"
#include "fuzz_image.h"
#include "log.h"

#define MAX_BLOCKS	3
#define MAX_PRESENT	8

struct block_spec {
	const char *name;
	uint64_t nr_pages;
	uint32_t page_size;
	enum fr_backing backing;
	uint64_t present[MAX_PRESENT];
	unsigned nr_present;
	int zero_page;		/* a present page that holds only zeros; -1: none */
};

struct seed {
	const char *name;
	unsigned nr_blocks;
	struct block_spec blocks[MAX_BLOCKS];
};

#define KIB4 4096u
#define MIB2 (2u << 20)

static const struct seed seeds[] = {
	{ "one-block", 1, {
		{ "pc.ram", 16, KIB4, FR_BACKING_ANON_PRIVATE, { 0, 1, 2, 5 }, 4, 2 },
	} },
	/* Chunks of 256 and 44 pages; pages 256.. start the second slot. */
	{ "two-chunks", 1, {
		{ "pc.ram", 300, KIB4, FR_BACKING_ANON_PRIVATE, { 0, 3, 256, 258 }, 4, -1 },
	} },
	/* Slots in the order data came: chunk 2's first, then 1's, then 0's. */
	{ "slots-out-of-order", 1, {
		{ "pc.ram", 600, KIB4, FR_BACKING_ANON_PRIVATE, { 520, 300, 1 }, 3, -1 },
	} },
	{ "three-blocks", 3, {
		{ "mem-huge", 1, MIB2, FR_BACKING_HUGETLB, { 0 }, 1, -1 },
		{ "pc.ram", 300, KIB4, FR_BACKING_ANON_PRIVATE, { 1, 256 }, 2, -1 },
		{ "vga.vram", 64, KIB4, FR_BACKING_SHARED_FD, { 0, 1 }, 2, -1 },
	} },
	/* No page present in one block; a 65-page block ends one bit into a word. */
	{ "empty-and-tail", 2, {
		{ "pc.ram", 256, KIB4, FR_BACKING_ANON_PRIVATE, { 0 }, 0, -1 },
		{ "pc.rom", 65, KIB4, FR_BACKING_SHARED_FD, { 0, 1 }, 2, -1 },
	} },
};

/* The first 64 bytes of a page: its own pattern; the rest stays zero. */
static void fill_page(uint8_t *p, unsigned blk, uint64_t page)
{
	for (unsigned i = 0; i < 64; i++)
		p[i] = (uint8_t)(0x5a ^ (blk * 31 + page * 7 + i));
}

static int write_block(struct fr_image *img, unsigned i, const struct block_spec *s)
{
	struct fr_block *b = &img->blocks[i];
	size_t len = (size_t)b->length;
	uint8_t *mem = calloc(1, len);

	if (!mem)
		return -ENOMEM;
	for (unsigned k = 0; k < s->nr_present; k++) {
		uint64_t pg = s->present[k];
		uint8_t *p = mem + pg * b->page_size;

		if ((int)pg != s->zero_page)
			fill_page(p, i, pg);
		fr_place_chunk(img, b, pg / b->chunk_pages);
		if (pwrite(img->fd, p, b->page_size, fr_page_offset(b, pg)) != (ssize_t)b->page_size) {
			free(mem);
			return -EIO;
		}
		fr_bit_set(b->bitmap, pg);
	}
	for (uint64_t c = 0; c < b->nr_chunks; c++)
		b->csums[c] = fr_chunk_csum(b, c, mem + c * b->chunk_pages * b->page_size);
	free(mem);
	return 0;
}

static int write_image(const struct seed *sd, int dirfd, const char *name)
{
	struct fr_image img;
	int ret;

	ret = fr_image_init(&img, 4242, sd->nr_blocks);
	if (ret)
		return ret;
	for (unsigned i = 0; i < sd->nr_blocks; i++) {
		struct fr_block *b = &img.blocks[i];
		const struct block_spec *s = &sd->blocks[i];

		snprintf(b->name, sizeof(b->name), "%s", s->name);
		b->host_addr = 0x7f0000000000ULL + ((uint64_t)i << 32);
		b->page_size = s->page_size;
		b->length = s->nr_pages * s->page_size;
		b->backing = s->backing;
	}
	/* Fixed, so the seeds come out the same on every build. */
	img.dump_time_ns = 1700000000ULL * 1000000000ULL;
	snprintf(img.criu_run_id, sizeof(img.criu_run_id), "%s", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
	ret = fr_layout(&img);
	if (!ret)
		ret = fr_create(&img, dirfd, name, 0);
	for (unsigned i = 0; !ret && i < sd->nr_blocks; i++)
		ret = write_block(&img, i, &sd->blocks[i]);
	if (!ret)
		ret = fr_finish(&img);
	fr_close(&img);
	return ret;
}

/* Slot form of the file: size, then each slot without its trailing zeros. */
static int encode(int in, FILE *out, const char *name, bool fixup)
{
	static uint8_t slot[FR_ALIGN];
	struct stat st;
	uint64_t size, nslots, last = 0;

	if (fstat(in, &st))
		return -errno;
	size = st.st_size;
	if (size > FUZZ_MAX_FILE) {
		fprintf(stderr, "%s: %" PRIu64 " bytes, more than fuzz_image takes\n", name, size);
		return -EFBIG;
	}
	nslots = (size + FR_ALIGN - 1) / FR_ALIGN;
	fwrite(&(uint64_t){ htole64(size | (fixup ? FUZZ_FIXUP : 0)) }, 8, 1, out);
	for (uint64_t k = 0; k < nslots; k++) {
		ssize_t n = pread(in, slot, FR_ALIGN, k * FR_ALIGN);

		if (n < 0)
			return -errno;
		while (n > 0 && !slot[n - 1])
			n--;
		if (memmem(slot, n, FUZZ_SEP, FUZZ_SEP_LEN)) {
			fprintf(stderr, "%s: slot %" PRIu64 " holds the separator\n", name, k);
			return -EINVAL;
		}
		if (!n)
			continue;
		for (; last < k; last++)
			fwrite(FUZZ_SEP, FUZZ_SEP_LEN, 1, out);
		fwrite(slot, n, 1, out);
	}
	return ferror(out) ? -EIO : 0;
}

/* OUTDIR/seed-NAME[-exact].img from the image open at in. */
static int emit(int in, const char *dir, const char *name, bool fixup)
{
	char path[4096];
	FILE *out;
	int ret;

	snprintf(path, sizeof(path), "%s/seed-%s%s.img", dir, name, fixup ? "" : "-exact");
	out = fopen(path, "we");
	if (!out)
		return -errno;
	ret = encode(in, out, path, fixup);
	if (fclose(out) && !ret)
		ret = -errno;
	if (ret)
		fprintf(stderr, "%s: %s\n", path, strerror(-ret));
	return ret;
}

int main(int argc, char **argv)
{
	char tmp[] = "/tmp/gen_corpus.XXXXXX";
	int dirfd, ret = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	if (!mkdtemp(tmp) || (dirfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		perror(tmp);
		return 1;
	}
	for (size_t i = 0; !ret && i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		int in;

		ret = write_image(&seeds[i], dirfd, "image");
		in = ret ? -1 : openat(dirfd, "image", O_RDONLY | O_CLOEXEC);
		if (!ret && in < 0)
			ret = -errno;
		/* Fixed-up seeds for mutations; one exact, for the checksum checks. */
		if (!ret)
			ret = emit(in, argv[1], seeds[i].name, true);
		if (!ret && i == 0)
			ret = emit(in, argv[1], seeds[i].name, false);
		if (in >= 0)
			close(in);
		unlinkat(dirfd, "image", 0);
		if (ret)
			fprintf(stderr, "seed %s: %s\n", seeds[i].name, strerror(-ret));
	}
	close(dirfd);
	rmdir(tmp);
	return ret ? 1 : 0;
}
