// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests for the fixed-ram image library (images/fixedram.c): layout,
 * create/finish/open round trips, chunk reads, and rejection of corrupt or
 * hostile images without crashing.
 */
#include <endian.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#define XXH_STATIC_LINKING_ONLY	/* XXH3_state_t layout, for the stale-state test */
#include <xxhash.h>

#include "fixedram.h"
#include "helpers.h"
#include "log.h"
#include "qemu-ram.pb-c.h"

#define PS     4096u
#define IMG    "test.img"
#define NBLK   2

static char tmpdir[64];
static int dirfd_ = -1;

/*
 * Block 0: 3 MiB + 3 pages  -> 771 pages, chunks 256/256/256/3.
 * Block 1: 1 MiB + 65 pages -> 321 pages, chunks 256/65 (last chunk ends
 * one bit into a bitmap word).
 */
static const struct {
	const char *name;
	uint64_t host_addr, length;
	enum fr_backing backing;
} spec[NBLK] = {
	{ "pc.ram", 0x7f0000000000ULL, 3 * 1024 * 1024 + 3 * PS, FR_BACKING_ANON_PRIVATE },
	{ "vga.vram", 0x7f1000000000ULL, 1 * 1024 * 1024 + 65 * PS, FR_BACKING_SHARED_FD },
};

static const uint64_t present0[] = { 0, 1, 2, 100, 254, 255, 256, 511, 512, 700, 767, 768, 769, 770 };
static const uint64_t present1[] = { 0, 63, 64, 65, 255, 256, 300, 319, 320 };

/* Expected guest memory per block: present pages hold a pattern, the rest zero. */
static uint8_t *mem[NBLK];
/* Block 0 written as executable (TCG's code buffer) */
static bool exec0;

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill_page(uint8_t *p, unsigned blk, uint64_t page)
{
	uint64_t s = (uint64_t)blk << 32 | page;

	for (unsigned i = 0; i < PS; i += 8) {
		uint64_t v = splitmix(&s);

		memcpy(p + i, &v, 8);
	}
}

static void setup_blocks(struct fr_image *img)
{
	assert_int_equal(fr_image_init(img, 4242, NBLK), 0);
	for (int i = 0; i < NBLK; i++) {
		struct fr_block *b = &img->blocks[i];

		snprintf(b->name, sizeof(b->name), "%s", spec[i].name);
		b->host_addr = spec[i].host_addr;
		b->length = spec[i].length;
		b->page_size = PS;
		b->backing = spec[i].backing;
		b->exec = i == 0 && exec0;
	}
	assert_int_equal(fr_layout(img), 0);
}

static const uint64_t *present_list(int blk, size_t *n)
{
	*n = blk ? sizeof(present1) / 8 : sizeof(present0) / 8;
	return blk ? present1 : present0;
}

/* Dump-side: create, write pages, checksums, optionally finish. */
static void write_image(const char *name, int extra_flags, bool finish)
{
	struct fr_image img;

	setup_blocks(&img);
	assert_int_equal(fr_create(&img, dirfd_, name, extra_flags), 0);
	for (int i = 0; i < NBLK; i++) {
		struct fr_block *b = &img.blocks[i];
		size_t n;
		const uint64_t *pl = present_list(i, &n);

		for (size_t k = 0; k < n; k++) {
			ssize_t w;

			/* slots in page order: block 0's chunks at 2..5 MiB, block 1's at 6, 7 */
			fr_place_chunk(&img, b, pl[k] / b->chunk_pages);
			w = pwrite(img.fd, mem[i] + pl[k] * PS, PS, fr_page_offset(b, pl[k]));

			assert_int_equal(w, PS);
			fr_bit_set(b->bitmap, pl[k]);
		}
		for (uint64_t c = 0; c < b->nr_chunks; c++)
			b->csums[c] = fr_chunk_csum(b, c, mem[i] + c * b->chunk_pages * PS);
	}
	if (finish)
		assert_int_equal(fr_finish(&img), 0);
	fr_close(&img);
	fr_close(&img); /* idempotent */
}

static int open_image(struct fr_image *img, char *err, size_t len)
{
	return fr_open(img, dirfd_, IMG, err, len);
}

static void pwrite_at(const void *buf, size_t len, off_t off)
{
	int fd = openat(dirfd_, IMG, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static void pread_at(void *buf, size_t len, off_t off)
{
	int fd = openat(dirfd_, IMG, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static void flip_byte(off_t off)
{
	uint8_t c;

	pread_at(&c, 1, off);
	c ^= 0x5a;
	pwrite_at(&c, 1, off);
}

static void truncate_to(off_t size)
{
	int fd = openat(dirfd_, IMG, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

/* fr_open must fail with ret and an error containing every given substring. */
static void expect_open_error(int ret, ...)
{
	struct fr_image img;
	char err[1024];
	const char *want;
	va_list ap;
	int r;

	memset(err, 'x', sizeof(err));
	r = open_image(&img, err, sizeof(err));
	if (r == 0)
		fr_close(&img);
	assert_int_equal(r, ret);
	assert_true(strlen(err) < sizeof(err));
	assert_non_null(strstr(err, IMG)); /* names the file */
	va_start(ap, ret);
	while ((want = va_arg(ap, const char *))) {
		if (!strstr(err, want))
			fail_msg("error '%s' lacks '%s'", err, want);
	}
	va_end(ap);
	/* fds closed, nothing allocated on failure */
	assert_int_equal(img.fd, -1);
	assert_int_equal(img.meta_fd, -1);
	assert_null(img.blocks);
}

/* Capture what the library logs to stderr while fn runs. */
static char captured[4096];
static int capture_fd = -1;

static void capture_start(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/stderr.txt", tmpdir);
	fflush(stderr);
	capture_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(capture_fd >= 0);
	assert_int_equal(th_stderr_to(capture_fd), 0);
	qp_log_set_level(LOG_ERROR);
}

static const char *capture_stop(void)
{
	ssize_t n;

	th_stderr_restore();
	qp_log_set_level(LOG_MSG);
	n = pread(capture_fd, captured, sizeof(captured) - 1, 0);
	captured[n > 0 ? n : 0] = '\0';
	close(capture_fd);
	return captured;
}

static void *xmemalign(size_t len)
{
	void *p = NULL;

	assert_int_equal(posix_memalign(&p, 4096, len), 0);
	return p;
}

/* Read every chunk and compare with mem[]; absent pages must come back zero. */
static void check_all_chunks(const struct fr_image *img, size_t misalign)
{
	uint8_t *raw = xmemalign(FR_CHUNK_PAGES * PS + 4096), *buf = raw + misalign;

	for (int i = 0; i < NBLK; i++) {
		const struct fr_block *b = &img->blocks[i];

		for (uint64_t c = 0; c < b->nr_chunks; c++) {
			uint64_t n = fr_chunk_nr_pages(b, c);

			memset(buf, 0xaa, FR_CHUNK_PAGES * PS);
			assert_int_equal(fr_read_chunk(img, b, c, buf), 0);
			assert_memory_equal(buf, mem[i] + c * b->chunk_pages * PS, n * PS);
		}
		assert_int_equal(fr_read_chunk(img, b, b->nr_chunks, buf), -EINVAL);
	}
	free(raw);
}

/* ------------------------------------------------------------------------ */

static int group_setup(void **state)
{
	(void)state;
	if (th_tmpdir(tmpdir, sizeof(tmpdir), "/tmp", "test_fixedram"))
		return -1;
	dirfd_ = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd_ < 0)
		return -1;
	for (int i = 0; i < NBLK; i++) {
		size_t n;
		const uint64_t *pl = present_list(i, &n);

		if (posix_memalign((void **)&mem[i], 4096, spec[i].length))
			return -1;
		memset(mem[i], 0, spec[i].length);
		for (size_t k = 0; k < n; k++)
			fill_page(mem[i] + pl[k] * PS, i, pl[k]);
	}
	qp_log_set_level(LOG_MSG); /* corrupt-image tests log errors on purpose */
	return 0;
}

static int group_teardown(void **state)
{
	char path[128];

	(void)state;
	unlinkat(dirfd_, IMG, 0);
	unlinkat(dirfd_, "stderr.txt", 0);
	close(dirfd_);
	snprintf(path, sizeof(path), "%s", tmpdir);
	rmdir(path);
	for (int i = 0; i < NBLK; i++)
		free(mem[i]);
	return 0;
}

/* A fresh, good image before every test. */
static int fresh_image(void **state)
{
	(void)state;
	write_image(IMG, 0, true);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Layout                                                                    */
/* ------------------------------------------------------------------------ */

static void test_image_name(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(fr_image_name(buf, sizeof(buf), 1234), 0);
	assert_string_equal(buf, "qemu-ram-1234.img");
	assert_int_equal(fr_image_name(buf, 8, 1234), -ENAMETOOLONG);
}

static void test_layout(void **state)
{
	struct fr_image img;
	const struct fr_block *b0, *b1;

	(void)state;
	setup_blocks(&img);
	b0 = &img.blocks[0];
	b1 = &img.blocks[1];

	assert_int_equal(b0->nr_pages, 771);
	assert_int_equal(b0->nr_chunks, 4);
	assert_int_equal(b0->chunk_pages, FR_CHUNK_PAGES);
	assert_int_equal(fr_chunk_nr_pages(b0, 0), 256);
	assert_int_equal(fr_chunk_nr_pages(b0, 3), 3);
	assert_int_equal(fr_chunk_nr_pages(b0, 4), 0);
	/* tables: bitmap 13 words, checksums 4, chunk table 4 */
	assert_int_equal(b0->bitmap_offset, FR_ALIGN);
	assert_int_equal(b0->csum_offset, FR_ALIGN + 13 * 8);
	assert_int_equal(b0->chunks_offset, FR_ALIGN + 17 * 8);

	assert_int_equal(b1->nr_pages, 321);
	assert_int_equal(b1->nr_chunks, 2);
	assert_int_equal(fr_chunk_nr_pages(b1, 1), 65);
	/* block 1's tables right after block 0's (6 + 2 + 2 words) */
	assert_int_equal(b1->bitmap_offset, FR_ALIGN + 21 * 8);
	assert_int_equal(b1->csum_offset, FR_ALIGN + 27 * 8);
	assert_int_equal(b1->chunks_offset, FR_ALIGN + 29 * 8);
	/* one data area for all blocks, room for a slot per chunk */
	assert_int_equal(b0->pages_offset, 2 * FR_ALIGN);
	assert_int_equal(b1->pages_offset, 2 * FR_ALIGN);
	assert_int_equal(img.data_end, 2 * FR_ALIGN);
	assert_int_equal(img.file_size, 8 * FR_ALIGN);

	assert_non_null(b0->bitmap);
	assert_non_null(b1->csums);
	for (uint64_t w = 0; w < 13; w++)
		assert_int_equal(b0->bitmap[w], 0);
	for (uint64_t c = 0; c < 4; c++)
		assert_int_equal(b0->chunk_off[c], 0);

	/* slots in the order chunks are placed, once each, 1 MiB even when short */
	assert_int_equal(fr_slot_bytes(b1, 1), FR_ALIGN);
	assert_int_equal(fr_place_chunk(&img, &img.blocks[1], 1), 2 * FR_ALIGN);
	assert_int_equal(fr_place_chunk(&img, &img.blocks[0], 3), 3 * FR_ALIGN);
	assert_int_equal(fr_place_chunk(&img, &img.blocks[1], 1), 2 * FR_ALIGN);
	assert_int_equal(img.data_end, 4 * FR_ALIGN);
	assert_int_equal(fr_page_offset(b1, 256 + 5), 2 * FR_ALIGN + 5 * PS);
	assert_int_equal(fr_page_offset(b0, 770), 3 * FR_ALIGN + 2 * PS);
	fr_close(&img);
}

static void test_layout_invalid(void **state)
{
	static const struct {
		const char *name;
		uint32_t page_size;
		uint64_t length;
	} bad[] = {
		{ "ps", 4097, 4097 * 4 },
		{ "ps", 2048, 2048 * 4 },
		{ "ps", 0, 4096 },
		{ "ps", 12288, 12288 },
		{ "len", 4096, 0 },
		{ "len", 4096, 3 * 4096 + 1 },
		{ "", 4096, 4096 },
		{ "overflow", 4096, 0xfffffffffff00000ULL },
		{ "chunk", 1u << 30, 1ULL << 30 },	/* 256 pages of 1 GiB: > FR_CHUNK_MAX_BYTES */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fr_image img;

		assert_int_equal(fr_image_init(&img, 1, 1), 0);
		snprintf(img.blocks[0].name, FR_NAME_MAX, "%s", bad[i].name);
		img.blocks[0].page_size = bad[i].page_size;
		img.blocks[0].length = bad[i].length;
		assert_true(fr_layout(&img) < 0);
		fr_close(&img);
	}
}

/* ------------------------------------------------------------------------ */
/* Checksums                                                                 */
/* ------------------------------------------------------------------------ */

static void test_chunk_csum_definition(void **state)
{
	struct fr_block b = { .page_size = PS, .nr_pages = 300, .chunk_pages = 256, .nr_chunks = 2 };
	uint64_t bitmap[5] = {};
	uint8_t *buf = xmemalign(256 * PS), *cat = xmemalign(3 * PS);

	(void)state;
	b.bitmap = bitmap;
	for (int i = 0; i < 256; i++)
		fill_page(buf + i * PS, 9, i);

	/* no page present: hash of nothing, seeded with the chunk index */
	assert_true(fr_chunk_csum(&b, 1, buf) == XXH3_64bits_withSeed(NULL, 0, 1));

	/* pages 3, 4 and 200 present: their concatenation, seed = chunk */
	fr_bit_set(bitmap, 3);
	fr_bit_set(bitmap, 4);
	fr_bit_set(bitmap, 200);
	memcpy(cat, buf + 3 * PS, 2 * PS);
	memcpy(cat + 2 * PS, buf + 200 * PS, PS);
	assert_true(fr_chunk_csum(&b, 0, buf) == XXH3_64bits_withSeed(cat, 3 * PS, 0));
	assert_true(fr_chunk_csum(&b, 0, buf) != XXH3_64bits_withSeed(cat, 3 * PS, 1));

	/* all present: one-shot over the whole chunk */
	memset(bitmap, 0xff, sizeof(bitmap));
	assert_true(fr_chunk_csum(&b, 0, buf) == XXH3_64bits_withSeed(buf, 256 * PS, 0));
	/* chunk 1 covers pages 256..299 (44 pages) */
	assert_true(fr_chunk_csum(&b, 1, buf) == XXH3_64bits_withSeed(buf, 44 * PS, 1));
	free(buf);
	free(cat);
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                               */
/* ------------------------------------------------------------------------ */

static void check_header(const struct fr_image *img)
{
	assert_int_equal(img->pid, 4242);
	assert_int_equal(img->nr_blocks, NBLK);
	assert_true(img->dump_time_ns > 1600000000ULL * 1000000000ULL);
	assert_true(img->fd >= 0 && img->meta_fd >= 0);
	for (int i = 0; i < NBLK; i++) {
		const struct fr_block *b = &img->blocks[i];
		size_t n;

		present_list(i, &n);
		assert_string_equal(b->name, spec[i].name);
		assert_int_equal(b->host_addr, spec[i].host_addr);
		assert_int_equal(b->length, spec[i].length);
		assert_int_equal(b->page_size, PS);
		assert_int_equal(b->backing, spec[i].backing);
		assert_int_equal(b->nr_present, n);
		for (uint64_t p = 0; p < b->nr_pages; p++) {
			bool want = false;
			const uint64_t *pl = present_list(i, &n);

			for (size_t k = 0; k < n; k++)
				want |= pl[k] == p;
			assert_int_equal(fr_bit_test(b->bitmap, p), want);
		}
	}
}

static void test_roundtrip(void **state)
{
	struct fr_image img;
	char err[256] = "";

	(void)state;
	assert_int_equal(open_image(&img, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	check_header(&img);
	check_all_chunks(&img, 0);
	check_all_chunks(&img, 512); /* unaligned caller buffer */
	fr_close(&img);
	fr_close(&img);
}

static void test_roundtrip_odirect(void **state)
{
	struct fr_image img;
	char err[256];
	int dfd;

	(void)state;
	write_image(IMG, O_DIRECT, true); /* falls back on filesystems without O_DIRECT */
	assert_int_equal(open_image(&img, err, sizeof(err)), 0);
	check_header(&img);

	/* restore side with an O_DIRECT data fd: aligned and unaligned buffers */
	dfd = openat(dirfd_, IMG, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (dfd >= 0) {
		close(img.fd);
		img.fd = dfd;
	}
	check_all_chunks(&img, 0);
	check_all_chunks(&img, 512);
	fr_close(&img);
}

struct scan_out {
	uint8_t *dst;
	uint64_t calls;
};

static int scan_cb(void *arg, uint64_t block_off, const void *data, size_t len)
{
	struct scan_out *o = arg;

	memcpy(o->dst + block_off, data, len);
	o->calls++;
	return 0;
}

static int scan_cb_fail(void *arg, uint64_t block_off, const void *data, size_t len)
{
	(void)arg;
	(void)block_off;
	(void)data;
	(void)len;
	return -ENOSPC;
}

static void test_scan_chunk(void **state)
{
	struct fr_image img;
	char err[256];
	void *buf = xmemalign(8192);

	(void)state;
	assert_int_equal(open_image(&img, err, sizeof(err)), 0);
	for (int i = 0; i < NBLK; i++) {
		const struct fr_block *b = &img.blocks[i];
		struct scan_out o = { .dst = calloc(1, b->length) };

		for (uint64_t c = 0; c < b->nr_chunks; c++)
			assert_int_equal(fr_scan_chunk(&img, b, c, buf, 8192, scan_cb, &o), 0);
		assert_memory_equal(o.dst, mem[i], b->length);
		assert_true(o.calls > 0);
		free(o.dst);
		assert_int_equal(fr_scan_chunk(&img, b, 0, buf, 8192, NULL, NULL), 0);
		assert_int_equal(fr_scan_chunk(&img, b, 0, buf, 8192, scan_cb_fail, NULL), -ENOSPC);
		assert_int_equal(fr_scan_chunk(&img, b, 0, buf, 100, NULL, NULL), -EINVAL);
		assert_int_equal(fr_scan_chunk(&img, b, b->nr_chunks, buf, 8192, NULL, NULL), -EINVAL);
	}
	fr_close(&img);
	free(buf);
}

static void test_sparse(void **state)
{
	struct stat st;
	uint64_t file_size;

	(void)state;
	assert_int_equal(fstatat(dirfd_, IMG, &st, 0), 0);
	file_size = st.st_size;
	/* the last slot, block 1's chunk 1 (65 pages) at 7 MiB, ends the file */
	assert_int_equal(file_size, 7 * FR_ALIGN + 65 * PS);
	/* 23 pages + metadata written out of a 7+ MiB file */
	if ((uint64_t)st.st_blocks * 512 >= file_size / 8)
		fail_msg("image not sparse: %llu bytes allocated of %llu",
			 (unsigned long long)st.st_blocks * 512, (unsigned long long)file_size);
}

static void test_unfinished(void **state)
{
	(void)state;
	write_image(IMG, 0, false);
	expect_open_error(-EINVAL, "not a criu-qemu RAM image", "did not finish", NULL);
}

static void test_open_missing(void **state)
{
	struct fr_image img;
	char err[256];

	(void)state;
	assert_int_equal(fr_open(&img, dirfd_, "nonexistent.img", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "nonexistent.img"));
	assert_non_null(strstr(err, "No such file"));
	/* err may be NULL */
	assert_int_equal(fr_open(&img, dirfd_, "nonexistent.img", NULL, 0), -ENOENT);
}

/* ------------------------------------------------------------------------ */
/* Corruption                                                                */
/* ------------------------------------------------------------------------ */

static void test_bad_magic(void **state)
{
	(void)state;
	pwrite_at("QEMUFILE", 8, 0);
	expect_open_error(-EINVAL, "not a criu-qemu RAM image", "bad magic", NULL);
}

static void test_bad_version(void **state)
{
	uint32_t v = htole32(4);

	(void)state;
	pwrite_at(&v, 4, offsetof(struct fr_prefix, version));
	expect_open_error(-EPROTONOSUPPORT, "image version 4, this build reads 2..3", NULL);
	/* Version 1 had no checkpoint identity: say so, and what to do. */
	v = htole32(1);
	pwrite_at(&v, 4, offsetof(struct fr_prefix, version));
	expect_open_error(-EPROTONOSUPPORT, "image version 1", "not bound to their checkpoint", NULL);
}

static void test_header_flip(void **state)
{
	(void)state;
	flip_byte(FR_PREFIX_SIZE + 7);
	expect_open_error(-EBADMSG, "header checksum mismatch", NULL);
}

static void test_header_csum_flip(void **state)
{
	(void)state;
	flip_byte(offsetof(struct fr_prefix, header_csum));
	expect_open_error(-EBADMSG, "header checksum mismatch", NULL);
}

static void test_header_len_huge(void **state)
{
	uint32_t l = htole32(0xffffffffu);

	(void)state;
	pwrite_at(&l, 4, offsetof(struct fr_prefix, header_len));
	expect_open_error(-EBADMSG, "header length 4294967295 out of range", NULL);
	l = 0;
	pwrite_at(&l, 4, offsetof(struct fr_prefix, header_len));
	expect_open_error(-EBADMSG, "header length 0 out of range", NULL);
}

static void test_header_len_off_by_one(void **state)
{
	struct fr_prefix p;

	(void)state;
	pread_at(&p, sizeof(p), 0);
	p.header_len = htole32(le32toh(p.header_len) + 1);
	pwrite_at(&p, sizeof(p), 0);
	expect_open_error(-EBADMSG, "header checksum mismatch", NULL);
}

static void test_bitmap_flip(void **state)
{
	(void)state;
	/* block 1's bitmap starts after block 0's tables */
	flip_byte(FR_ALIGN + 21 * 8 + 2);
	expect_open_error(-EBADMSG, "block 1 'vga.vram'", "bitmap checksum mismatch", NULL);
}

static void test_csum_table_flip(void **state)
{
	(void)state;
	flip_byte(FR_ALIGN + 13 * 8 + 9); /* block 0, chunk 1's entry */
	expect_open_error(-EBADMSG, "block 0 'pc.ram'", "checksum table checksum mismatch", NULL);
}

static void test_page_flip(void **state)
{
	struct fr_image img;
	char err[256];
	uint8_t *buf = xmemalign(FR_CHUNK_PAGES * PS);
	const char *log;

	(void)state;
	/* block 0 page 511 (chunk 1, slot at 3 MiB) is present */
	flip_byte(3 * FR_ALIGN + 255 * PS + 100);
	assert_int_equal(open_image(&img, err, sizeof(err)), 0); /* page data is checked lazily */

	capture_start();
	assert_int_equal(fr_read_chunk(&img, &img.blocks[0], 1, buf), -EBADMSG);
	log = capture_stop();
	assert_non_null(strstr(log, IMG));
	assert_non_null(strstr(log, "block 'pc.ram' chunk 1"));
	assert_non_null(strstr(log, "checksum mismatch"));

	/* the streaming reader agrees, other chunks are fine */
	assert_int_equal(fr_scan_chunk(&img, &img.blocks[0], 1, buf, 65536, NULL, NULL), -EBADMSG);
	assert_int_equal(fr_read_chunk(&img, &img.blocks[0], 0, buf), 0);
	assert_int_equal(fr_read_chunk(&img, &img.blocks[0], 2, buf), 0);
	assert_int_equal(fr_read_chunk(&img, &img.blocks[1], 0, buf), 0);
	fr_close(&img);
	free(buf);
}

static void test_absent_page_garbage_ignored(void **state)
{
	struct fr_image img;
	char err[256];
	uint8_t *buf = xmemalign(FR_CHUNK_PAGES * PS);

	(void)state;
	/* block 0 page 3 is absent: whatever is in the file there is not data */
	pwrite_at("garbage", 7, 2 * FR_ALIGN + 3 * PS);
	assert_int_equal(open_image(&img, err, sizeof(err)), 0);
	assert_int_equal(fr_read_chunk(&img, &img.blocks[0], 0, buf), 0);
	assert_memory_equal(buf, mem[0], FR_CHUNK_PAGES * PS);
	fr_close(&img);
	free(buf);
}

static void test_truncated(void **state)
{
	char want[128];
	uint64_t size = 7 * FR_ALIGN + 65 * PS;

	(void)state;
	truncate_to(size - PS);
	snprintf(want, sizeof(want), "truncated: file is %" PRIu64 " bytes, header says %" PRIu64, size - PS,
		 size);
	expect_open_error(-EBADMSG, want, NULL);

	truncate_to(FR_ALIGN); /* metadata of every block gone */
	expect_open_error(-EBADMSG, "truncated: file is 1048576 bytes", NULL);

	truncate_to(FR_PREFIX_SIZE + 5); /* header cut */
	expect_open_error(-EBADMSG, "truncated: file is 37 bytes, header ends at", NULL);
}

static void test_trailing_data(void **state)
{
	(void)state;
	truncate_to(7 * FR_ALIGN + 65 * PS + PS);
	expect_open_error(-EBADMSG, "size mismatch", "trailing data", NULL);
}

static void test_truncated_tiny(void **state)
{
	(void)state;
	truncate_to(20);
	expect_open_error(-EINVAL, "truncated: file is 20 bytes, smaller than the 32-byte prefix", NULL);
}

static void test_empty(void **state)
{
	(void)state;
	truncate_to(0);
	expect_open_error(-EINVAL, "empty file", NULL);
}

static void test_not_regular(void **state)
{
	struct fr_image img;
	char err[256];

	(void)state;
	assert_int_equal(fr_open(&img, AT_FDCWD, tmpdir, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
}

static void test_fifo(void **state)
{
	struct fr_image img;
	char err[256];

	(void)state;
	assert_int_equal(mkfifoat(dirfd_, "fifo.img", 0600), 0);
	/* must not block waiting for a writer */
	assert_int_equal(fr_open(&img, dirfd_, "fifo.img", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	unlinkat(dirfd_, "fifo.img", 0);
}

static void test_truncated_after_open(void **state)
{
	struct fr_image img;
	char err[256];
	uint8_t *buf = xmemalign(FR_CHUNK_PAGES * PS);
	const char *log;

	(void)state;
	assert_int_equal(open_image(&img, err, sizeof(err)), 0);
	/* cut inside block 1's page 63 (present, chunk 0, slot at 6 MiB) */
	truncate_to(6 * FR_ALIGN + 63 * PS + 100);
	capture_start();
	assert_int_equal(fr_read_chunk(&img, &img.blocks[1], 0, buf), -EIO);
	log = capture_stop();
	assert_non_null(strstr(log, "truncated page data"));
	assert_non_null(strstr(log, "block 'vga.vram' chunk 0"));
	assert_int_equal(fr_scan_chunk(&img, &img.blocks[1], 0, buf, 8192, NULL, NULL), -EIO);
	/* block 0 is still intact */
	assert_int_equal(fr_read_chunk(&img, &img.blocks[0], 0, buf), 0);
	fr_close(&img);
	free(buf);
}

/* ------------------------------------------------------------------------ */
/* Hostile headers with a valid checksum                                     */
/* ------------------------------------------------------------------------ */

static uint8_t *read_header(uint32_t *len)
{
	struct fr_prefix p;
	uint8_t *h;

	pread_at(&p, sizeof(p), 0);
	*len = le32toh(p.header_len);
	h = malloc(*len);
	assert_non_null(h);
	pread_at(h, *len, FR_PREFIX_SIZE);
	return h;
}

/* Write hdr (len bytes) as the header of a version image with a matching prefix. */
static void write_header_v(const void *hdr, uint32_t len, uint32_t version)
{
	struct fr_prefix p = {};

	memcpy(p.magic, FR_MAGIC, 8);
	p.version = htole32(version);
	p.header_len = htole32(len);
	p.header_csum = htole64(XXH3_64bits(hdr, len));
	pwrite_at(&p, sizeof(p), 0);
	if (len)
		pwrite_at(hdr, len, FR_PREFIX_SIZE);
}

static void write_header(const void *hdr, uint32_t len)
{
	write_header_v(hdr, len, FR_VERSION);
}

typedef void (*mutate_fn)(RamImageEntry *h);

static void rewrite_header_v(mutate_fn fn, uint32_t version)
{
	uint32_t len;
	uint8_t *raw = read_header(&len), *out;
	RamImageEntry *h = ram_image_entry__unpack(NULL, len, raw);
	size_t n;

	assert_non_null(h);
	fn(h);
	n = ram_image_entry__get_packed_size(h);
	out = malloc(n + 1);
	ram_image_entry__pack(h, out);
	write_header_v(out, n, version);
	ram_image_entry__free_unpacked(h, NULL);
	free(out);
	free(raw);
}

static void rewrite_header(mutate_fn fn)
{
	rewrite_header_v(fn, FR_VERSION);
}

#define LONG_NAME "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

#define MUT(fn_name, body)                                 \
	static void fn_name(RamImageEntry *h)             \
	{                                                 \
		RamBlockEntry *b0 = h->blocks[0], *b1 = h->blocks[1]; \
		(void)b0;                                 \
		(void)b1;                                 \
		body;                                     \
	}

MUT(m_page_size_odd, b1->page_size = 5000)
MUT(m_page_size_zero, b0->page_size = 0)
MUT(m_page_size_small, b0->page_size = 1024)
MUT(m_length_zero, b0->length = 0)
MUT(m_length_unaligned, b0->length += 1)
MUT(m_chunk_zero, b1->chunk_pages = 0)
MUT(m_chunk_odd, b1->chunk_pages = 100)
MUT(m_pages_unaligned, b0->pages_offset += 4096)
MUT(m_bitmap_in_header, b0->bitmap_offset = 100)
MUT(m_overlap_chunks, b1->chunks_offset = b0->chunks_offset + 8)
MUT(m_overlap_bitmap, b1->bitmap_offset = b0->chunks_offset + 8)
MUT(m_bitmap_in_slot, b1->bitmap_offset = b0->pages_offset + 4096)
MUT(m_no_chunk_table, b1->has_chunks_offset = false)
MUT(m_chunks_csum, b0->chunks_csum ^= 1)
MUT(m_overlap_csum, b0->csum_offset = b0->bitmap_offset + 8)
MUT(m_csum_beyond, b1->csum_offset = h->file_size - 4)
MUT(m_bitmap_wrap, b1->bitmap_offset = UINT64_MAX - 3)
MUT(m_length_huge, b1->length = 1ULL << 62)
MUT(m_length_max, b1->length = UINT64_MAX - 4095; b1->page_size = 4096)
MUT(m_pages_wrap, b1->pages_offset = UINT64_MAX & ~(FR_ALIGN - 1))
MUT(m_nr_present_wrong, b0->nr_present -= 1)
MUT(m_nr_present_huge, b0->nr_present = 1ULL << 40)
MUT(m_backing_bad, b0->backing = (RamBacking)7)
MUT(m_name_empty, free(b1->name); b1->name = strdup(""))
MUT(m_name_long, free(b1->name); b1->name = strdup(LONG_NAME))
MUT(m_name_dup, free(b1->name); b1->name = strdup(b0->name))
MUT(m_host_wrap, b0->host_addr = UINT64_MAX - 4096)
MUT(m_host_overlap, b1->host_addr = b0->host_addr + b0->length - 4096)
MUT(m_host_same, b1->host_addr = b0->host_addr)
MUT(m_run_id_long, free(h->criu_run_id); h->criu_run_id = strdup(LONG_NAME))
MUT(m_file_size_small, h->file_size -= 4096)
MUT(m_file_size_big, h->file_size += 4096)
MUT(m_bitmap_csum, b1->bitmap_csum ^= 1)
MUT(m_noop, (void)0)
MUT(m_exec_shared, b1->has_executable = b1->executable = true)

static void test_hostile_headers(void **state)
{
	static const struct {
		mutate_fn fn;
		int ret;
		const char *want1, *want2;
	} cases[] = {
		{ m_page_size_odd, -EBADMSG, "block 1 'vga.vram'", "page size 5000 is not a power of two" },
		{ m_page_size_zero, -EBADMSG, "block 0 'pc.ram'", "page size 0" },
		{ m_page_size_small, -EBADMSG, "block 0 'pc.ram'", "page size 1024" },
		{ m_length_zero, -EBADMSG, "block 0 'pc.ram'", "length 0 is not" },
		{ m_length_unaligned, -EBADMSG, "block 0 'pc.ram'", "multiple of page size" },
		{ m_chunk_zero, -EBADMSG, "block 1 'vga.vram'", "chunk size 0 pages" },
		{ m_chunk_odd, -EBADMSG, "block 1 'vga.vram'", "chunk size 100 pages" },
		{ m_pages_unaligned, -EBADMSG, "block 0 'pc.ram'", "is not aligned" },
		{ m_bitmap_in_header, -EBADMSG, "bitmap at offset 0x64 overlaps the header area", NULL },
		{ m_overlap_chunks, -EBADMSG, "overlaps", "chunk table" },
		{ m_overlap_bitmap, -EBADMSG, "block 1 'vga.vram' bitmap", "overlaps block 0 'pc.ram' chunk table" },
		/* its checksum cannot match the page data it lies in */
		{ m_bitmap_in_slot, -EBADMSG, "block 1 'vga.vram'", "bitmap checksum mismatch" },
		{ m_no_chunk_table, -EBADMSG, "block 1 'vga.vram'", "no chunk table in a version 3 image" },
		{ m_chunks_csum, -EBADMSG, "block 0 'pc.ram'", "chunk table checksum mismatch" },
		{ m_overlap_csum, -EBADMSG, "overlaps", "checksum table" },
		{ m_csum_beyond, -EBADMSG, "block 1 'vga.vram'", "beyond the end of the image" },
		{ m_bitmap_wrap, -EBADMSG, "block 1 'vga.vram'", "beyond the end of the image" },
		{ m_length_huge, -EBADMSG, "block 1 'vga.vram'", "beyond the end of the image" },
		{ m_length_max, -EBADMSG, "block 1 'vga.vram'", "host range" },
		{ m_pages_wrap, -EBADMSG, "block 1 'vga.vram': data area", "beyond the end of the image" },
		{ m_nr_present_wrong, -EBADMSG, "block 0 'pc.ram'", "bitmap has 14 pages set, header says 13" },
		{ m_nr_present_huge, -EBADMSG, "block 0 'pc.ram'", "pages present, block has only 771" },
		{ m_backing_bad, -EBADMSG, "block 0 'pc.ram'", "unknown backing type 7" },
		{ m_name_empty, -EBADMSG, "block 1: name is 0 bytes", NULL },
		{ m_name_long, -EBADMSG, "block 1: name is 99 bytes", NULL },
		{ m_name_dup, -EBADMSG, "blocks 0 and 1 have the same name 'pc.ram'", NULL },
		{ m_host_wrap, -EBADMSG, "block 0 'pc.ram'", "host range" },
		{ m_host_overlap, -EBADMSG, "blocks 0 'pc.ram' and 1 'vga.vram' overlap in QEMU's address space", NULL },
		{ m_host_same, -EBADMSG, "overlap in QEMU's address space", NULL },
		{ m_run_id_long, -EBADMSG, "CRIU run id is 99 bytes", NULL },
		{ m_file_size_small, -EBADMSG, "size mismatch", NULL },
		{ m_file_size_big, -EBADMSG, "truncated: file is", NULL },
		{ m_bitmap_csum, -EBADMSG, "block 1 'vga.vram'", "bitmap checksum mismatch" },
		{ m_exec_shared, -EBADMSG, "block 1 'vga.vram'", "only private anonymous blocks can be executable" },
		{ m_noop, 0, NULL, NULL }, /* re-signing alone keeps it valid */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_image(IMG, 0, true);
		rewrite_header(cases[i].fn);
		if (cases[i].ret == 0) {
			struct fr_image img;
			char err[256];

			assert_int_equal(open_image(&img, err, sizeof(err)), 0);
			fr_close(&img);
			continue;
		}
		expect_open_error(cases[i].ret, cases[i].want1, cases[i].want2, NULL);
	}
}

/* The executable mark (TCG's code buffer) survives the round trip; absent means rw-. */
static void test_executable_block(void **state)
{
	struct fr_image img;
	char err[256];

	(void)state;
	for (int e = 0; e < 2; e++) {
		exec0 = e;
		write_image(IMG, 0, true);
		assert_int_equal(open_image(&img, err, sizeof(err)), 0);
		assert_int_equal(img.blocks[0].exec, e);
		assert_false(img.blocks[1].exec);
		check_all_chunks(&img, 0);
		fr_close(&img);
	}
	exec0 = false;
}

/*
 * The test image as version 2 wrote it: its slots happen to be each
 * block's chunks in order (block 0 at 2 MiB, block 1 at 6 MiB), which is
 * version 2's placement, so only the header changes.
 */
static void m_to_v2(RamImageEntry *h)
{
	for (int i = 0; i < NBLK; i++) {
		h->blocks[i]->has_chunks_offset = h->blocks[i]->has_chunks_csum = false;
		h->blocks[i]->chunks_offset = h->blocks[i]->chunks_csum = 0;
	}
	h->blocks[1]->pages_offset = 6 * FR_ALIGN;
}

static void test_v2_image(void **state)
{
	struct fr_image img;
	char err[256];

	(void)state;
	rewrite_header_v(m_to_v2, 2);
	assert_int_equal(open_image(&img, err, sizeof(err)), 0);
	assert_int_equal(img.version, 2);
	assert_int_equal(img.blocks[1].chunk_off[1], 7 * FR_ALIGN);
	check_header(&img);
	check_all_chunks(&img, 0);
	fr_close(&img);

	/* version 2 places block 1's pages at 6 MiB: they must fit in the file */
	write_image(IMG, 0, true);
	rewrite_header_v(m_to_v2, 2);
	truncate_to(7 * FR_ALIGN + 64 * PS);
	expect_open_error(-EBADMSG, "truncated", NULL);
}

/* Set block blk's chunk table entry for chunk to off, re-sign table and header. */
static void set_slot(int blk, uint64_t chunk, uint64_t off)
{
	uint32_t len;
	uint8_t *raw = read_header(&len), *out;
	RamImageEntry *h = ram_image_entry__unpack(NULL, len, raw);
	RamBlockEntry *e;
	uint64_t tab[4];
	size_t n;

	assert_non_null(h);
	e = h->blocks[blk];
	n = blk ? 2 : 4;
	pread_at(tab, n * 8, e->chunks_offset);
	tab[chunk] = htole64(off);
	pwrite_at(tab, n * 8, e->chunks_offset);
	e->chunks_csum = XXH3_64bits(tab, n * 8);
	n = ram_image_entry__get_packed_size(h);
	out = malloc(n);
	ram_image_entry__pack(h, out);
	write_header(out, n);
	ram_image_entry__free_unpacked(h, NULL);
	free(out);
	free(raw);
}

/* Chunk tables that are signed but wrong. */
static void test_hostile_slots(void **state)
{
	static const struct {
		int blk;
		uint64_t chunk, off;
		const char *want1, *want2;
	} cases[] = {
		{ 0, 1, 0, "block 0 'pc.ram' chunk 1 has present pages but no slot", NULL },
		{ 0, 1, 3 * FR_ALIGN + 512, "block 0 'pc.ram' chunk 1", "not an aligned place" },
		{ 1, 0, FR_ALIGN, "block 1 'vga.vram' chunk 0", "not an aligned place in the data area" },
		{ 1, 1, 7 * FR_ALIGN + FR_ALIGN, "block 1 'vga.vram' chunk 1", "beyond the end of the image" },
		{ 1, 1, UINT64_MAX & ~(FR_ALIGN - 1), "block 1 'vga.vram' chunk 1", "beyond the end" },
		{ 1, 0, 2 * FR_ALIGN, "chunk slot", "overlaps block 0 'pc.ram' chunk slot" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_image(IMG, 0, true);
		set_slot(cases[i].blk, cases[i].chunk, cases[i].off);
		expect_open_error(-EBADMSG, cases[i].want1, cases[i].want2, NULL);
	}
	/*
	 * Two slots swapped make a valid layout, but each chunk then reads the
	 * other's pages: the checksum, seeded with the chunk index, says so.
	 */
	{
		struct fr_image img;
		char err[256];
		uint8_t *buf = xmemalign(FR_CHUNK_PAGES * PS);

		write_image(IMG, 0, true);
		set_slot(0, 2, 5 * FR_ALIGN);	/* chunk 2 ends where block 1's slots start */
		set_slot(0, 3, 4 * FR_ALIGN);
		assert_int_equal(open_image(&img, err, sizeof(err)), 0);
		capture_start();
		assert_int_equal(fr_read_chunk(&img, &img.blocks[0], 2, buf), -EBADMSG);
		assert_int_equal(fr_read_chunk(&img, &img.blocks[0], 3, buf), -EBADMSG);
		capture_stop();
		assert_int_equal(fr_read_chunk(&img, &img.blocks[0], 1, buf), 0);
		fr_close(&img);
		free(buf);
	}
}

static void test_bitmap_tail_bits(void **state)
{
	uint32_t len;
	uint8_t *raw;
	RamImageEntry *h;
	uint64_t word;
	off_t off;
	size_t n;
	uint8_t *out;

	(void)state;
	/* set bit 321 (beyond the last page of block 1) and fix every checksum */
	raw = read_header(&len);
	h = ram_image_entry__unpack(NULL, len, raw);
	assert_non_null(h);
	off = h->blocks[1]->bitmap_offset + 5 * 8;
	pread_at(&word, 8, off);
	word = htole64(le64toh(word) | (1ULL << 1));
	pwrite_at(&word, 8, off);
	{
		uint64_t bm[6];

		pread_at(bm, sizeof(bm), h->blocks[1]->bitmap_offset);
		h->blocks[1]->bitmap_csum = XXH3_64bits(bm, sizeof(bm));
	}
	h->blocks[1]->nr_present += 1;
	n = ram_image_entry__get_packed_size(h);
	out = malloc(n);
	ram_image_entry__pack(h, out);
	write_header(out, n);
	ram_image_entry__free_unpacked(h, NULL);
	free(out);
	free(raw);
	/* nr_present = 10 > 9 real, but the tail bit must be named first */
	expect_open_error(-EBADMSG, "block 1 'vga.vram'", "bits set beyond the last page 320", NULL);
}

static void test_garbage_protobuf(void **state)
{
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02 };

	(void)state;
	write_header(junk, sizeof(junk));
	expect_open_error(-EBADMSG, "not a valid ram_image_entry protobuf", NULL);
}

/* No dump writes an image without blocks; one that claims none is rejected. */
static void test_zero_blocks(void **state)
{
	struct fr_image img;

	(void)state;
	assert_int_equal(fr_image_init(&img, 7, 0), 0);
	assert_int_equal(fr_layout(&img), 0);
	assert_int_equal(img.file_size, FR_ALIGN);
	assert_int_equal(fr_create(&img, dirfd_, IMG, 0), 0);
	assert_int_equal(fr_finish(&img), 0);
	fr_close(&img);
	expect_open_error(-EBADMSG, "lists no RAM blocks", NULL);
}

/* Files of dirfd_ whose name starts with prefix. */
static int count_named(const char *prefix)
{
	DIR *d = fdopendir(dup(dirfd_));
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += !strncmp(de->d_name, prefix, strlen(prefix));
	closedir(d);
	return n;
}

/*
 * An image over an older one of the same name: the older goes aside at
 * once (a process reading it keeps it) and is removed in the background;
 * the new one starts empty.
 */
static void test_create_over_old_image(void **state)
{
	char name[64], err[256];
	struct fr_image img, other;
	int keep, i;

	(void)state;
	write_image(IMG, 0, true);
	keep = openat(dirfd_, IMG, O_RDONLY);
	assert_true(keep >= 0);
	setup_blocks(&img);
	assert_int_equal(fr_create(&img, dirfd_, IMG, 0), 0);
	/* Not finished: the new file is not an image yet. */
	assert_true(open_image(&other, err, sizeof(err)) != 0);
	for (i = 0; i < 200 && count_named("." IMG ".old."); i++)
		usleep(10 * 1000);
	assert_int_equal(count_named("." IMG ".old."), 0);
	/* The reader of the old one still has it whole. */
	assert_int_equal(pread(keep, name, 8, 0), 8);
	close(keep);
	fr_close(&img);
}

/* The CRIU run id written at the dump comes back from fr_open(). */
static void test_run_id_roundtrip(void **state)
{
	static const char id[] = "0b4ad5e3-7c1d-4c55-9a37-3f1f8d2b6a10";
	struct fr_image img;
	char err[256];

	(void)state;
	setup_blocks(&img);
	snprintf(img.criu_run_id, sizeof(img.criu_run_id), "%s", id);
	assert_int_equal(fr_create(&img, dirfd_, IMG, 0), 0);
	assert_int_equal(fr_finish(&img), 0);
	fr_close(&img);
	assert_int_equal(open_image(&img, err, sizeof(err)), 0);
	assert_string_equal(img.criu_run_id, id);
	fr_close(&img);
}

/*
 * Random byte flips and cuts in the protobuf header, re-signed so they get
 * past the checksum: fr_open must reject or accept, never crash (run under
 * ASan/UBSan in `make check`), and accepted images must be readable safely.
 */
static void test_fuzz_header(void **state)
{
	uint32_t len;
	uint8_t *orig, *h, *buf = xmemalign(FR_CHUNK_PAGES * PS);
	uint64_t seed = 12345;

	(void)state;
	orig = read_header(&len);
	h = malloc(len);
	for (int it = 0; it < 3000; it++) {
		uint32_t n = len;
		struct fr_image img;
		char err[512];
		int flips = 1 + splitmix(&seed) % 4;

		memcpy(h, orig, len);
		for (int f = 0; f < flips; f++) {
			uint64_t r = splitmix(&seed);

			h[r % len] ^= (uint8_t)(1u << ((r >> 32) % 8));
			if ((r >> 40) % 4 == 0)
				h[r % len] = (uint8_t)(r >> 48);
		}
		if (splitmix(&seed) % 8 == 0)
			n = 1 + splitmix(&seed) % len;
		write_header(h, n);
		if (fr_open(&img, dirfd_, IMG, err, sizeof(err)) == 0) {
			for (uint32_t b = 0; b < img.nr_blocks; b++) {
				if (img.blocks[b].chunk_pages * (uint64_t)img.blocks[b].page_size >
				    FR_CHUNK_PAGES * PS)
					continue;
				for (uint64_t c = 0; c < img.blocks[b].nr_chunks && c < 8; c++)
					fr_read_chunk(&img, &img.blocks[b], c, buf);
			}
			fr_close(&img);
		} else {
			assert_true(err[0] != '\0');
		}
	}
	free(h);
	free(orig);
	free(buf);
}

/*
 * Leave, in the stack below us, what a previous XXH3 state would: at every
 * 64-byte-aligned place a matching seed, no external secret, and garbage
 * where the derived secret lives. XXH3_64bits_reset_withSeed() skips
 * deriving the secret when the seed already matches, so a state on the
 * stack that is not initialized (XXH3_INITSTATE) hashes with that garbage.
 */
static __attribute__((noinline)) void stale_states_below(uint64_t seed)
{
	uint64_t junk[2048] __attribute__((aligned(64)));
	size_t i, seed_slot = offsetof(XXH3_state_t, seed) % 64 / 8;
	size_t ext_slot = offsetof(XXH3_state_t, extSecret) % 64 / 8;

	for (i = 0; i < 2048; i++)
		junk[i] = i % 8 == seed_slot ? seed : i % 8 == ext_slot ? 0 : 0xA5A5A5A5A5A5A5A5ULL;
	__asm__ volatile("" : : "r"(junk) : "memory");	/* the stores must happen */
}

static __attribute__((noinline)) uint64_t csum_after_stale_stack(const struct fr_block *b,
								 uint64_t chunk, const void *buf)
{
	stale_states_below(chunk);
	return fr_chunk_csum(b, chunk, buf);
}

/* The chunk checksum must not depend on what the stack held before. */
static void test_chunk_csum_stale_stack(void **state)
{
	struct fr_block b = { .page_size = 4096, .chunk_pages = 64, .nr_pages = 256, .nr_chunks = 4 };
	uint64_t bitmap[4] = { ~0ULL, ~0ULL, ~0ULL, ~0ULL }, chunk;
	char *buf = malloc(64 * 4096);
	size_t i;

	(void)state;
	b.bitmap = bitmap;
	for (i = 0; i < 64 * 4096; i++)
		buf[i] = (char)(i * 7 + 3);
	for (chunk = 1; chunk < 4; chunk++)
		assert_int_equal(csum_after_stale_stack(&b, chunk, buf),
				 XXH3_64bits_withSeed(buf, 64 * 4096, chunk));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_image_name),
		cmocka_unit_test(test_create_over_old_image),
		cmocka_unit_test(test_chunk_csum_stale_stack),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_layout_invalid),
		cmocka_unit_test(test_chunk_csum_definition),
		cmocka_unit_test_setup(test_roundtrip, fresh_image),
		cmocka_unit_test(test_roundtrip_odirect),
		cmocka_unit_test_setup(test_scan_chunk, fresh_image),
		cmocka_unit_test_setup(test_sparse, fresh_image),
		cmocka_unit_test(test_unfinished),
		cmocka_unit_test(test_open_missing),
		cmocka_unit_test_setup(test_bad_magic, fresh_image),
		cmocka_unit_test_setup(test_bad_version, fresh_image),
		cmocka_unit_test_setup(test_run_id_roundtrip, fresh_image),
		cmocka_unit_test_setup(test_header_flip, fresh_image),
		cmocka_unit_test_setup(test_header_csum_flip, fresh_image),
		cmocka_unit_test_setup(test_header_len_huge, fresh_image),
		cmocka_unit_test_setup(test_header_len_off_by_one, fresh_image),
		cmocka_unit_test_setup(test_bitmap_flip, fresh_image),
		cmocka_unit_test_setup(test_csum_table_flip, fresh_image),
		cmocka_unit_test_setup(test_page_flip, fresh_image),
		cmocka_unit_test_setup(test_absent_page_garbage_ignored, fresh_image),
		cmocka_unit_test_setup(test_truncated, fresh_image),
		cmocka_unit_test_setup(test_trailing_data, fresh_image),
		cmocka_unit_test_setup(test_truncated_tiny, fresh_image),
		cmocka_unit_test_setup(test_empty, fresh_image),
		cmocka_unit_test(test_not_regular),
		cmocka_unit_test(test_fifo),
		cmocka_unit_test_setup(test_truncated_after_open, fresh_image),
		cmocka_unit_test(test_hostile_headers),
		cmocka_unit_test(test_executable_block),
		cmocka_unit_test_setup(test_v2_image, fresh_image),
		cmocka_unit_test(test_hostile_slots),
		cmocka_unit_test_setup(test_bitmap_tail_bits, fresh_image),
		cmocka_unit_test_setup(test_garbage_protobuf, fresh_image),
		cmocka_unit_test(test_zero_blocks),
		cmocka_unit_test_setup(test_fuzz_header, fresh_image),
	};

	return cmocka_run_group_tests_name("fixedram", tests, group_setup, group_teardown);
}
