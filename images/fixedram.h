/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fixed-ram page image: every guest page of a RAM block has a fixed place in
 * the file, inside the slot of its chunk (chunk_pages pages); a bitmap says
 * which pages hold data; pages whose bit is clear read as zero. Written out
 * of order by parallel workers, read back in parallel or mmap'ed. See
 * Documentation/image-format.md for the on-disk layout.
 *
 * File layout (version 3):
 *   0            struct fr_prefix (32 bytes, little endian)
 *   32           header: protobuf ram_image_entry, prefix.header_len bytes
 *   FR_ALIGN..   per block, one after the other: bitmap (nr_pages bits as LE
 *                u64 words), chunk checksum table (nr_chunks LE u64), chunk
 *                table (nr_chunks LE u64: file offset of the chunk's slot, 0
 *                for a chunk that has none)
 *   data area    at the next FR_ALIGN boundary (pages_offset): the slots,
 *                FR_ALIGN aligned, in the order writers first put data into
 *                their chunks. A chunk without data has no slot, so the
 *                file's apparent size follows the data, not the RAM size.
 *
 * Version 2 images (read, no longer written) had no chunk table: block i's
 * chunk c lived at pages_offset + c * chunk_pages * page_size.
 *
 * The prefix and header are written last (fr_finish), after everything else
 * is fsync'ed, so an interrupted dump leaves a file that fr_open() rejects.
 *
 * Chunk checksum: XXH3_64bits_withSeed over the present pages of the chunk
 * concatenated in ascending page order, seed = chunk index.
 */
#ifndef CRIU_QEMU_FIXEDRAM_H
#define CRIU_QEMU_FIXEDRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bitmap.h"

#define FR_MAGIC	"CRQMRAM1"	/* 8 bytes, no NUL stored */
#define FR_VERSION	3		/* 3: chunk slots; 2: criu_run_id binds an image to its checkpoint */
#define FR_VERSION_MIN	2		/* oldest version fr_open() reads */
#define FR_ALIGN	(1ULL << 20)	/* page regions aligned like QEMU's mapped-ram */
#define FR_CHUNK_PAGES	256		/* multiple of 64: a chunk owns whole bitmap words */
/*
 * The largest chunk (chunk_pages * page_size): 256 pages of 2 MiB. Readers
 * hold whole chunks in memory, so an image may not ask for more; version 3
 * no longer bounds a chunk without data by the file's size.
 */
#define FR_CHUNK_MAX_BYTES	(512ULL << 20)
#define FR_NAME_MAX	64
#define FR_PREFIX_SIZE	32
#define FR_RUN_ID_MAX	64		/* CRIU's run id: a UUID string (36 bytes) */

struct fr_prefix {
	char magic[8];
	uint32_t version;
	uint32_t header_len;
	uint64_t header_csum;	/* XXH3-64 of the header bytes */
	uint64_t reserved;
} __attribute__((packed));

enum fr_backing {
	FR_BACKING_ANON_PRIVATE = 0,
	FR_BACKING_SHARED_FD = 1,
	FR_BACKING_HUGETLB = 2,
};

struct fr_block {
	/* Identity: filled by the caller before fr_layout(). */
	char name[FR_NAME_MAX];
	uint64_t host_addr;
	uint64_t length;
	uint32_t page_size;
	enum fr_backing backing;
	bool exec;		/* mapped rwx (TCG's translation buffer), not rw- */

	/* Layout: computed by fr_layout() or read by fr_open(). */
	uint64_t nr_pages;
	uint64_t nr_chunks;
	uint32_t chunk_pages;
	uint64_t bitmap_offset;
	uint64_t csum_offset;
	uint64_t pages_offset;	/* v3: start of the data area; v2: page 0 */
	uint64_t chunks_offset;	/* v3: the chunk table; 0 in a v2 image */

	/* Contents, in memory while dumping / restoring. */
	uint64_t *bitmap;	/* nr_pages bits, word i covers pages 64i..64i+63 */
	uint64_t *csums;	/* nr_chunks entries */
	uint64_t *chunk_off;	/* nr_chunks entries: file offset of the chunk's slot, 0: none */
	uint64_t nr_present;	/* set by fr_finish() / fr_open() */
};

struct fr_image {
	int fd;			/* data fd; O_DIRECT if asked for at create */
	int meta_fd;		/* buffered fd for bitmap/csums/header */
	uint32_t pid;
	uint32_t nr_blocks;
	struct fr_block *blocks;
	uint64_t file_size;	/* while writing: the most the slots can take */
	uint64_t data_end;	/* while writing: where the next slot goes */
	uint32_t version;	/* of an opened image; FR_VERSION when written */
	uint64_t dump_time_ns;
	char criu_run_id[FR_RUN_ID_MAX];	/* the CRIU run that dumped it; "" if none */
};

/* "qemu-ram-<pid>.img" */
int fr_image_name(char *buf, size_t len, pid_t pid);

/* Allocate nr_blocks zeroed blocks; fds set to -1. */
int fr_image_init(struct fr_image *img, uint32_t pid, uint32_t nr_blocks);

/*
 * Compute every block's layout and file_size; allocate bitmaps, csums and
 * chunk tables. A block's chunk_pages is FR_CHUNK_PAGES if 0, else the
 * caller's (a multiple of 64).
 */
int fr_layout(struct fr_image *img);

/*
 * Create (truncate) the image file in dirfd, size it to file_size (sparse:
 * the most every chunk's slot can take; fr_finish() trims it),
 * and keep it open. extra_flags may hold O_DIRECT for the data fd.
 * Returns 0 or -errno.
 */
int fr_create(struct fr_image *img, int dirfd, const char *name, int extra_flags);

/* Bytes a chunk's slot takes in the data area: its pages, aligned up to FR_ALIGN. */
uint64_t fr_slot_bytes(const struct fr_block *b, uint64_t chunk);

/*
 * The file offset of the chunk's slot, given one now if it has none (the
 * next FR_ALIGN aligned place in the data area). A writer calls it before
 * it writes the first page of a chunk; threads may place different chunks
 * at the same time, never the same chunk (a chunk is one worker's).
 */
uint64_t fr_place_chunk(struct fr_image *img, struct fr_block *b, uint64_t chunk);

/*
 * Where a page lives in the file. Its chunk must have a slot: every chunk
 * with a present page has one (fr_open() checks), a writer places the
 * chunk first (fr_place_chunk()).
 */
static inline uint64_t fr_page_offset(const struct fr_block *b, uint64_t page)
{
	return b->chunk_off[page / b->chunk_pages] + page % b->chunk_pages * b->page_size;
}

/* Pages in chunk (the last chunk of a block may be short). */
uint64_t fr_chunk_nr_pages(const struct fr_block *b, uint64_t chunk);

/*
 * Checksum of one chunk. buf holds the chunk as in guest memory: the chunk's
 * page i at buf + i * page_size. Only pages whose bitmap bit is set count.
 */
uint64_t fr_chunk_csum(const struct fr_block *b, uint64_t chunk, const void *buf);

/*
 * Trim the file to the slots given out, write bitmaps, checksum tables and
 * chunk tables, fsync, then the header and prefix, fsync again. After this returns 0 the image is complete and durable.
 */
int fr_finish(struct fr_image *img);

/*
 * Open and validate an image: magic, version, header checksum, protobuf,
 * offsets (aligned, in bounds, not overlapping), file size (truncation),
 * bitmap and checksum-table checksums, nr_present. Page data is checked
 * chunk by chunk by fr_read_chunk(). On error returns -errno and writes a
 * human-readable reason to err.
 */
int fr_open(struct fr_image *img, int dirfd, const char *name, char *err, size_t errlen);

/*
 * Read one chunk into buf (laid out as in guest memory): present pages from
 * the file, absent pages zero-filled; verify the checksum.
 * Returns 0, -EBADMSG on checksum mismatch, or -errno.
 */
int fr_read_chunk(const struct fr_image *img, const struct fr_block *b, uint64_t chunk, void *buf);

/*
 * Like fr_read_chunk() without holding the whole chunk in memory (for tools:
 * a hugetlb chunk can be 256 x 1 GiB). Reads the chunk's present pages in
 * ascending order through buf (buf_len bytes, a non-zero multiple of 4096),
 * calls cb (if not NULL) for every piece with its byte offset inside the
 * block, and verifies the checksum at the end -- so cb sees data before it
 * is known to be good. Returns 0, -EBADMSG, cb's non-zero return, or -errno.
 */
typedef int (*fr_scan_cb)(void *arg, uint64_t block_off, const void *data, size_t len);
int fr_scan_chunk(const struct fr_image *img, const struct fr_block *b, uint64_t chunk, void *buf,
		  size_t buf_len, fr_scan_cb cb, void *arg);

void fr_close(struct fr_image *img);

const char *fr_backing_name(enum fr_backing backing);

#endif
