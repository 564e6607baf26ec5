// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer harness for the RAM image reader (images/fixedram.c): the input
 * (see fuzz_image.h for its form) becomes a file in a memfd; fr_open() it
 * through /proc/self/fd/N, then read every chunk of every block with
 * fr_read_chunk() and again with fr_scan_chunk(), then fr_close().
 *
 * With FUZZ_FIXUP, the harness first makes the checksums right (the header
 * with protobuf-c and XXH3 directly, the chunk checksums through a first
 * fr_open()), so that mutated headers, bitmaps and offsets get past them.
 *
 * Besides ASan/UBSan, it aborts when an image that fr_open() accepted has a
 * region beyond the file, when the two chunk readers disagree, when a
 * rejection has no reason in err, and when an fd is left open.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xxhash.h>

#include "fixedram.h"
#include "fuzz_image.h"
#include "log.h"
#include "qemu-ram.pb-c.h"

#define SCAN_BUF	(64 << 10)

static int memfd = -1;
static char memfd_path[64];
static uint8_t *chunk_buf;	/* FUZZ_MAX_FILE: no chunk with a slot can be larger than the file */
static uint8_t *scan_buf;
static uint8_t *hdr_buf;	/* FR_ALIGN: the header area, for the fix-up */
static bool verbose;		/* $FUZZ_IMAGE_VERBOSE: say what fr_open() made of it */

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "fuzz_image: check failed: %s: ", #cond); \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			abort();                                                \
		}                                                               \
	} while (0)

static int lowest_free_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0, "open /dev/null: %m");
	close(fd);
	return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	memfd = memfd_create("fuzz-image", MFD_CLOEXEC);
	CHECK(memfd >= 0, "memfd_create: %m");
	snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
	chunk_buf = malloc(FUZZ_MAX_FILE);
	scan_buf = malloc(SCAN_BUF);
	hdr_buf = malloc(FR_ALIGN);
	CHECK(chunk_buf && scan_buf && hdr_buf, "out of memory");
	verbose = getenv("FUZZ_IMAGE_VERBOSE");
	/* Every rejection logs an error: keep quiet unless asked. */
	qp_log_set_level(verbose ? LOG_DEBUG : LOG_MSG);
	return 0;
}

static void put(const void *p, size_t len, uint64_t off)
{
	CHECK(pwrite(memfd, p, len, off) == (ssize_t)len, "pwrite %zu at %llu: %m", len,
	      (unsigned long long)off);
}

/*
 * Lay the input out in the memfd (fuzz_image.h); false if it is too short.
 * *fixup: the file size if the checksums are to be made right, else 0.
 */
static bool build_file(const uint8_t *data, size_t size, uint64_t *fixup)
{
	const uint8_t *p = data + 8, *end = data + size;
	uint64_t file_size;
	bool fix;

	*fixup = 0;
	CHECK(!ftruncate(memfd, 0), "ftruncate: %m");
	if (size >= 8 && !memcmp(data, FR_MAGIC, 8)) {
		put(data, size, 0);
		return true;
	}
	if (size < 8)
		return false;
	memcpy(&file_size, data, 8);
	file_size = le64toh(file_size);
	fix = file_size & FUZZ_FIXUP;
	file_size &= ~FUZZ_FIXUP;
	if (file_size > FUZZ_MAX_FILE)
		file_size = FUZZ_MAX_FILE;
	for (uint64_t off = 0; off < file_size; off += FR_ALIGN) {
		const uint8_t *sep = memmem(p, end - p, FUZZ_SEP, FUZZ_SEP_LEN);
		size_t len = (sep ? sep : end) - p;

		if (len)
			put(p, len > FR_ALIGN ? FR_ALIGN : len, off);
		if (!sep)
			break;
		p = sep + FUZZ_SEP_LEN;
	}
	/* Also cuts off a last slot that reaches past file_size. */
	CHECK(!ftruncate(memfd, file_size), "ftruncate: %m");
	*fixup = fix ? file_size : 0;
	return true;
}

/* XXH3 (and bits set) of [off, +len) of the file; false if not inside it. */
static bool file_csum(uint64_t off, uint64_t len, uint64_t file_size, uint64_t *csum, uint64_t *bits)
{
	if (off > file_size || len > file_size - off || len > FUZZ_MAX_FILE ||
	    pread(memfd, chunk_buf, len, off) != (ssize_t)len)
		return false;
	*csum = XXH3_64bits(chunk_buf, len);
	if (bits) {
		*bits = 0;
		for (uint64_t i = 0; i + 8 <= len; i += 8) {
			uint64_t w;

			memcpy(&w, chunk_buf + i, 8);
			*bits += __builtin_popcountll(w);
		}
	}
	return true;
}

/* The header fields that describe a block's bitmap, checksum and chunk tables. */
static void fix_tables(RamBlockEntry *e, uint64_t file_size)
{
	uint64_t nr_pages, chunks;

	if (e->page_size < 4096 || (e->page_size & (e->page_size - 1)))
		return;
	nr_pages = e->length / e->page_size;
	file_csum(e->bitmap_offset, (nr_pages + 63) / 64 * 8, file_size, &e->bitmap_csum, &e->nr_present);
	if (!e->chunk_pages)
		return;
	chunks = nr_pages / e->chunk_pages + (nr_pages % e->chunk_pages ? 1 : 0);
	file_csum(e->csum_offset, chunks * 8, file_size, &e->csum_table_csum, NULL);
	if (e->has_chunks_offset)
		e->has_chunks_csum = file_csum(e->chunks_offset, chunks * 8, file_size, &e->chunks_csum,
					       NULL);
}

/* Header: file size, table checksums, nr_present; then the prefix's checksum. */
static bool fix_header(uint64_t file_size)
{
	struct fr_prefix p;
	RamImageEntry *h;
	uint32_t len;
	size_t n;

	if (pread(memfd, &p, sizeof(p), 0) != sizeof(p) || memcmp(p.magic, FR_MAGIC, 8))
		return false;
	len = le32toh(p.header_len);
	if (!len || len > FR_ALIGN - FR_PREFIX_SIZE || FR_PREFIX_SIZE + len > file_size ||
	    pread(memfd, hdr_buf, len, FR_PREFIX_SIZE) != len)
		return false;
	h = ram_image_entry__unpack(NULL, len, hdr_buf);
	if (!h)
		return false;
	h->file_size = file_size;
	for (size_t i = 0; i < h->n_blocks; i++)
		fix_tables(h->blocks[i], file_size);
	n = ram_image_entry__get_packed_size(h);
	if (n && n <= FR_ALIGN - FR_PREFIX_SIZE && FR_PREFIX_SIZE + n <= file_size) {
		ram_image_entry__pack(h, hdr_buf);
		put(hdr_buf, n, FR_PREFIX_SIZE);
		p.header_len = htole32(n);
		p.header_csum = htole64(XXH3_64bits(hdr_buf, n));
		put(&p, sizeof(p), 0);
	}
	ram_image_entry__free_unpacked(h, NULL);
	return true;
}

/* Chunk checksums of an image that opens; they change its table checksums. */
static bool fix_chunks(void)
{
	struct fr_image img;

	if (fr_open(&img, AT_FDCWD, memfd_path, NULL, 0))
		return false;
	for (uint32_t i = 0; i < img.nr_blocks; i++) {
		const struct fr_block *b = &img.blocks[i];

		for (uint64_t c = 0; c < b->nr_chunks; c++) {
			uint64_t le;
			int r;

			/* A larger chunk fails its check in read_block() below. */
			if (fr_chunk_nr_pages(b, c) * b->page_size > FUZZ_MAX_FILE)
				continue;
			r = fr_read_chunk(&img, b, c, chunk_buf);
			if (r && r != -EBADMSG)
				continue;
			le = htole64(fr_chunk_csum(b, c, chunk_buf));
			put(&le, 8, b->csum_offset + c * 8);
		}
	}
	fr_close(&img);
	return true;
}

/* Everything fr_open() promises about an image it accepted. */
static void check_block(const struct fr_image *img, const struct fr_block *b)
{
	uint64_t end = img->file_size;

	CHECK(b->bitmap && b->csums, "block '%s' without tables", b->name);
	CHECK(b->page_size >= 4096 && !(b->page_size & (b->page_size - 1)), "page size %u", b->page_size);
	CHECK(b->nr_pages == b->length / b->page_size, "block '%s' nr_pages", b->name);
	CHECK(b->nr_present <= b->nr_pages, "block '%s' nr_present", b->name);
	CHECK(b->chunk_off, "block '%s' without a chunk table", b->name);
	for (uint64_t c = 0; c < b->nr_chunks; c++) {
		uint64_t off = b->chunk_off[c], len = fr_chunk_nr_pages(b, c) * b->page_size;

		CHECK(!off || (off <= end && len <= end - off), "block '%s' chunk %llu beyond the file",
		      b->name, (unsigned long long)c);
		CHECK(off || !bitmap_any(b->bitmap, c * b->chunk_pages, fr_chunk_nr_pages(b, c)),
		      "block '%s' chunk %llu has present pages and no slot", b->name,
		      (unsigned long long)c);
	}
	CHECK(b->bitmap_offset <= end && (b->nr_pages + 63) / 64 * 8 <= end - b->bitmap_offset,
	      "block '%s' bitmap beyond the file", b->name);
	CHECK(b->csum_offset <= end && b->nr_chunks * 8 <= end - b->csum_offset,
	      "block '%s' checksum table beyond the file", b->name);
}

struct scan_ctx {
	uint64_t chunk_off;	/* of the chunk in the block */
	uint64_t chunk_len;
};

/* fr_scan_chunk() must deliver the bytes fr_read_chunk() put in chunk_buf. */
static int scan_cmp(void *arg, uint64_t block_off, const void *data, size_t len)
{
	const struct scan_ctx *s = arg;

	CHECK(block_off >= s->chunk_off && len <= s->chunk_len &&
		      block_off - s->chunk_off <= s->chunk_len - len,
	      "scan piece [%llu, +%zu) outside the chunk", (unsigned long long)block_off, len);
	CHECK(!memcmp(chunk_buf + (block_off - s->chunk_off), data, len),
	      "fr_scan_chunk and fr_read_chunk disagree at block offset %llu",
	      (unsigned long long)block_off);
	return 0;
}

static void read_block(const struct fr_image *img, const struct fr_block *b)
{
	for (uint64_t c = 0; c < b->nr_chunks; c++) {
		struct scan_ctx s = {
			.chunk_off = c * b->chunk_pages * b->page_size,
			.chunk_len = fr_chunk_nr_pages(b, c) * b->page_size,
		};
		int r1, r2;

		CHECK(s.chunk_len && s.chunk_len <= FR_CHUNK_MAX_BYTES, "chunk %llu is %llu bytes",
		      (unsigned long long)c, (unsigned long long)s.chunk_len);
		/*
		 * Version 3: a chunk without data has no slot, and only the
		 * chunk size limit bounds it; one with a slot lies in the file.
		 * Hashing the zeros of large empty chunks would only be slow.
		 */
		if (s.chunk_len > FUZZ_MAX_FILE) {
			CHECK(!b->chunk_off[c], "chunk %llu of %llu bytes has a slot in a smaller file",
			      (unsigned long long)c, (unsigned long long)s.chunk_len);
			continue;
		}
		r1 = fr_read_chunk(img, b, c, chunk_buf);
		CHECK(r1 == 0 || r1 == -EBADMSG, "fr_read_chunk: %d", r1);
		r2 = fr_scan_chunk(img, b, c, scan_buf, SCAN_BUF, r1 ? NULL : scan_cmp, &s);
		CHECK(r1 == r2, "fr_read_chunk %d, fr_scan_chunk %d", r1, r2);
		if (verbose)
			fprintf(stderr, "block '%s' chunk %llu: %d\n", b->name, (unsigned long long)c, r1);
	}
}

/*
 * Nothing a run opens may stay open: the lowest free fd must be the same
 * after it as before (between runs the sanitizers' symbolizer may open
 * pipes, so this is per run). Names the fd that stayed.
 */
static void check_fds(int free_fd)
{
	char link[64], target[256] = "?";
	ssize_t n;

	if (lowest_free_fd() == free_fd)
		return;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", free_fd);
	n = readlink(link, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = '\0';
	CHECK(0, "fd %d was left open: %s", free_fd, target);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fr_image img;
	char err[512] = "";
	int ret, free_fd = lowest_free_fd();
	uint64_t fixup;

	if (!build_file(data, size, &fixup))
		return 0;
	if (fixup && fix_header(fixup) && fix_chunks())
		fix_header(fixup);
	ret = fr_open(&img, AT_FDCWD, memfd_path, err, sizeof(err));
	if (verbose)
		fprintf(stderr, "fr_open: %d %s\n", ret, ret ? err : "");
	if (ret) {
		CHECK(ret < 0 && err[0], "fr_open returned %d with reason '%s'", ret, err);
	} else {
		for (uint32_t i = 0; i < img.nr_blocks; i++)
			check_block(&img, &img.blocks[i]);
		for (uint32_t i = 0; i < img.nr_blocks; i++)
			read_block(&img, &img.blocks[i]);
		fr_close(&img);
	}
	check_fds(free_fd);
	return 0;
}
