// SPDX-License-Identifier: GPL-2.0
/*
 * Fixed-ram page images: layout, creation, completion, validation and
 * chunk reads. See fixedram.h and Documentation/image-format.md.
 */
#define LOG_PREFIX "image: "

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY	/* XXH3_state_t on the stack */
#include <xxhash.h>

#include "detach.h"
#include "fixedram.h"
#include "io.h"
#include "proc.h"
#include "log.h"
#include "qemu-ram.pb-c.h"

_Static_assert(sizeof(struct fr_prefix) == FR_PREFIX_SIZE, "fr_prefix must be 32 bytes");
_Static_assert(FR_CHUNK_PAGES % 64 == 0, "a chunk must own whole bitmap words");
_Static_assert((int)FR_BACKING_ANON_PRIVATE == (int)RAM_BACKING__ANON_PRIVATE &&
		       (int)FR_BACKING_SHARED_FD == (int)RAM_BACKING__SHARED_FD &&
		       (int)FR_BACKING_HUGETLB == (int)RAM_BACKING__HUGETLB,
	       "enum fr_backing must match proto ram_backing");

#define FR_MIN_PAGE_SIZE 4096u
#define FR_HEADER_MAX	 (FR_ALIGN - FR_PREFIX_SIZE)

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* *res = align_up(v, FR_ALIGN); false on overflow. */
static bool align_up_ok(uint64_t v, uint64_t *res)
{
	if (v > UINT64_MAX - (FR_ALIGN - 1))
		return false;
	*res = (v + FR_ALIGN - 1) & ~(FR_ALIGN - 1);
	return true;
}

static uint64_t bitmap_bytes(uint64_t nr_pages)
{
	return bitmap_words(nr_pages) * 8;
}

/* Path of an open fd for log lines; falls back to "fd N". */
static const char *fd_path(int fd, char *buf, size_t len)
{
	if (proc_fd_link(PROC_SELF, fd, buf, len) <= 0)
		snprintf(buf, len, "fd %d", fd);
	return buf;
}

static int fsync_retry(int fd)
{
	while (fsync(fd)) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

#if __BYTE_ORDER == __LITTLE_ENDIAN
#define le64_array_to_disk(dst, src, n) ((void)(dst), (const void *)(src))
static void le64_array_from_disk(uint64_t *a, uint64_t n)
{
	(void)a;
	(void)n;
}
#else
static const void *le64_array_to_disk(uint64_t *dst, const uint64_t *src, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		dst[i] = htole64(src[i]);
	return dst;
}
static void le64_array_from_disk(uint64_t *a, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		a[i] = le64toh(a[i]);
}
#endif

/* ------------------------------------------------------------------------ */
/* Naming, init, layout                                                      */
/* ------------------------------------------------------------------------ */

int fr_image_name(char *buf, size_t len, pid_t pid)
{
	int n = snprintf(buf, len, "qemu-ram-%d.img", (int)pid);

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int fr_image_init(struct fr_image *img, uint32_t pid, uint32_t nr_blocks)
{
	memset(img, 0, sizeof(*img));
	img->fd = -1;
	img->meta_fd = -1;
	img->pid = pid;
	if (nr_blocks) {
		img->blocks = calloc(nr_blocks, sizeof(*img->blocks));
		if (!img->blocks)
			return -ENOMEM;
	}
	img->nr_blocks = nr_blocks;
	return 0;
}

const char *fr_backing_name(enum fr_backing backing)
{
	switch (backing) {
	case FR_BACKING_ANON_PRIVATE:
		return "anon-private";
	case FR_BACKING_SHARED_FD:
		return "shared-fd";
	case FR_BACKING_HUGETLB:
		return "hugetlb";
	}
	return "unknown";
}

static void free_block_contents(struct fr_block *b)
{
	free(b->bitmap);
	free(b->csums);
	free(b->chunk_off);
	b->bitmap = NULL;
	b->csums = NULL;
	b->chunk_off = NULL;
}

/*
 * The tables of all blocks one after the other from FR_ALIGN, then the data
 * area. file_size is the most the slots can take (every chunk placed); what
 * the file finally takes is what fr_place_chunk() gave out.
 */
int fr_layout(struct fr_image *img)
{
	uint64_t off = FR_ALIGN, data = 0, start;
	uint32_t i;

	for (i = 0; i < img->nr_blocks; i++) {
		struct fr_block *b = &img->blocks[i];
		uint64_t bm_bytes, cs_bytes, slot, slots;
		size_t nlen = strnlen(b->name, FR_NAME_MAX);

		if (nlen == 0 || nlen >= FR_NAME_MAX) {
			pr_err("block %u: name must be 1..%d bytes\n", i, FR_NAME_MAX - 1);
			return -EINVAL;
		}
		if (b->page_size < FR_MIN_PAGE_SIZE || !is_pow2(b->page_size)) {
			pr_err("block '%s': page size %u is not a power of two >= %u\n", b->name,
			       b->page_size, FR_MIN_PAGE_SIZE);
			return -EINVAL;
		}
		if (b->length == 0 || b->length % b->page_size) {
			pr_err("block '%s': length %" PRIu64 " is not a non-zero multiple of page size %u\n",
			       b->name, b->length, b->page_size);
			return -EINVAL;
		}
		if ((unsigned)b->backing > FR_BACKING_HUGETLB) {
			pr_err("block '%s': unknown backing %d\n", b->name, (int)b->backing);
			return -EINVAL;
		}
		if (b->host_addr > UINT64_MAX - b->length) {
			pr_err("block '%s': host range 0x%" PRIx64 " + %" PRIu64 " overflows\n", b->name,
			       b->host_addr, b->length);
			return -EINVAL;
		}

		if (b->chunk_pages % 64) {
			pr_err("block '%s': chunk size %u pages is not a multiple of 64\n", b->name,
			       b->chunk_pages);
			return -EINVAL;
		}
		b->nr_pages = b->length / b->page_size;
		if (!b->chunk_pages)
			b->chunk_pages = FR_CHUNK_PAGES;
		if ((uint64_t)b->chunk_pages * b->page_size > FR_CHUNK_MAX_BYTES) {
			pr_err("block '%s': chunks of %u pages of %u bytes exceed %llu MiB\n", b->name,
			       b->chunk_pages, b->page_size, FR_CHUNK_MAX_BYTES >> 20);
			return -EINVAL;
		}
		b->nr_chunks = b->nr_pages / b->chunk_pages + (b->nr_pages % b->chunk_pages ? 1 : 0);
		bm_bytes = bitmap_bytes(b->nr_pages);
		cs_bytes = b->nr_chunks * 8;

		/* bm_bytes, cs_bytes <= length / 4096 * 8: no overflow of their own */
		if (off > (uint64_t)INT64_MAX - bm_bytes - 2 * cs_bytes)
			goto overflow;
		b->bitmap_offset = off;
		b->csum_offset = off + bm_bytes;
		b->chunks_offset = b->csum_offset + cs_bytes;
		off = b->chunks_offset + cs_bytes;

		/* Room for every chunk's slot: the full chunks, then the last one. */
		slot = fr_slot_bytes(b, 0);
		if (b->nr_chunks - 1 > (uint64_t)INT64_MAX / slot)
			goto overflow;
		slots = (b->nr_chunks - 1) * slot + fr_slot_bytes(b, b->nr_chunks - 1);
		if (slots > (uint64_t)INT64_MAX || data > (uint64_t)INT64_MAX - slots)
			goto overflow;
		data += slots;

		free_block_contents(b);
		b->bitmap = calloc(bitmap_words(b->nr_pages), sizeof(uint64_t));
		b->csums = calloc(b->nr_chunks, sizeof(uint64_t));
		b->chunk_off = calloc(b->nr_chunks, sizeof(uint64_t));
		if (!b->bitmap || !b->csums || !b->chunk_off) {
			free_block_contents(b);
			pr_err("block '%s': cannot allocate bitmap for %" PRIu64 " pages\n", b->name,
			       b->nr_pages);
			return -ENOMEM;
		}
		b->nr_present = 0;
	}
	if (!align_up_ok(off, &start) || start > (uint64_t)INT64_MAX - data) {
		i = img->nr_blocks - 1;
		goto overflow;
	}
	for (i = 0; i < img->nr_blocks; i++)
		img->blocks[i].pages_offset = start;
	img->data_end = start;
	img->file_size = start + data;
	img->version = FR_VERSION;
	return 0;

overflow:
	pr_err("block '%s': image layout overflows the file offset range\n", img->blocks[i].name);
	return -EFBIG;
}

/* The chunk's pages, rounded up to FR_ALIGN: every slot starts aligned. */
uint64_t fr_slot_bytes(const struct fr_block *b, uint64_t chunk)
{
	/* a chunk is < 2^63 bytes: chunk_pages < 2^32, page_size <= 2^31 */
	return (fr_chunk_nr_pages(b, chunk) * b->page_size + FR_ALIGN - 1) & ~(FR_ALIGN - 1);
}

uint64_t fr_place_chunk(struct fr_image *img, struct fr_block *b, uint64_t chunk)
{
	if (!b->chunk_off[chunk])
		b->chunk_off[chunk] = __atomic_fetch_add(&img->data_end, fr_slot_bytes(b, chunk),
							 __ATOMIC_RELAXED);
	return b->chunk_off[chunk];
}

uint64_t fr_chunk_nr_pages(const struct fr_block *b, uint64_t chunk)
{
	uint64_t first;

	if (chunk >= b->nr_chunks || !b->chunk_pages)
		return 0;
	first = chunk * b->chunk_pages;
	return b->nr_pages - first < b->chunk_pages ? b->nr_pages - first : b->chunk_pages;
}

/* ------------------------------------------------------------------------ */
/* Create / finish                                                           */
/* ------------------------------------------------------------------------ */

struct aside {
	int dirfd;
	char name[FR_NAME_MAX + 64];
};

/* In the detached process: raw system calls only (detach.h). */
static void unlink_aside(void *arg)
{
	const struct aside *a = arg;

	/* Hold none of the caller's files: one may wait for a pipe's EOF. */
	if (a->dirfd > 0)
		syscall(SYS_close_range, 0, a->dirfd - 1, 0);
	syscall(SYS_close_range, a->dirfd + 1, ~0U, 0);
	syscall(SYS_unlinkat, a->dirfd, a->name, 0);
}

/*
 * An older image of the same name goes out of the way at once and is
 * removed by a detached process: truncating or unlinking it frees its
 * blocks and its page cache, which took 0.3 s for 328 MiB here and
 * seconds on slower storage, all before the new dump could start. Not a
 * thread: while one lives CRIU cannot setns() into a container's mount
 * namespace, and a second checkpoint of a container failed that way. A
 * process still reading the old image (a guardian) keeps its open file.
 */
static void remove_old_image(int dirfd, const char *name)
{
	static unsigned long seq;
	struct aside a = { .dirfd = dirfd };

	snprintf(a.name, sizeof(a.name), ".%s.old.%d.%lu", name, (int)getpid(), ++seq);
	if (renameat(dirfd, name, dirfd, a.name))
		return;		/* O_TRUNC below does it, slowly */
	if (detach_run(unlink_aside, &a))
		unlinkat(dirfd, a.name, 0);
}

int fr_create(struct fr_image *img, int dirfd, const char *name, int extra_flags)
{
	const int flags = O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC;
	struct fr_prefix zero = {};
	int ret;

	if (img->file_size < FR_ALIGN) {
		pr_err("%s: fr_create() before fr_layout()\n", name);
		return -EINVAL;
	}
	remove_old_image(dirfd, name);

	img->meta_fd = openat(dirfd, name, flags, 0600);
	if (img->meta_fd < 0) {
		ret = -errno;
		pr_perror("cannot create RAM image %s", name);
		return ret;
	}

	img->fd = openat(dirfd, name, flags | extra_flags, 0600);
	if (img->fd < 0 && errno == EINVAL && (extra_flags & O_DIRECT)) {
		pr_warn("%s: filesystem does not support O_DIRECT, using buffered I/O\n", name);
		img->fd = openat(dirfd, name, flags | (extra_flags & ~O_DIRECT), 0600);
	}
	if (img->fd < 0) {
		ret = -errno;
		pr_perror("cannot open RAM image %s for page data", name);
		goto err;
	}

	/* An all-zero prefix: fr_open() rejects the file until fr_finish(). */
	ret = pwrite_full(img->meta_fd, &zero, sizeof(zero), 0);
	if (ret) {
		pr_err("%s: cannot write image prefix: %s\n", name, strerror(-ret));
		goto err;
	}
	if (ftruncate(img->meta_fd, (off_t)img->file_size)) {
		ret = -errno;
		pr_perror("%s: cannot size image to %" PRIu64 " bytes", name, img->file_size);
		goto err;
	}
	return 0;

err:
	if (img->fd >= 0)
		close(img->fd);
	close(img->meta_fd);
	img->fd = img->meta_fd = -1;
	unlinkat(dirfd, name, 0);
	return ret;
}

uint64_t fr_chunk_csum(const struct fr_block *b, uint64_t chunk, const void *buf)
{
	uint64_t n = fr_chunk_nr_pages(b, chunk), first = chunk * b->chunk_pages, s, e = first;
	const char *p = buf;
	XXH3_state_t st;

	/*
	 * A state on the stack must be initialized before a _withSeed reset:
	 * that reset skips deriving the secret when the state's seed already
	 * matches, and stack garbage from an earlier state often does.
	 */
	XXH3_INITSTATE(&st);
	XXH3_64bits_reset_withSeed(&st, chunk);
	while (bitmap_next_run(b->bitmap, e, first + n, &s, &e))
		XXH3_64bits_update(&st, p + (s - first) * b->page_size, (e - s) * b->page_size);
	return XXH3_64bits_digest(&st);
}

/* Write an LE u64 array via meta_fd; returns XXH3 of the on-disk bytes. */
static int write_le64_array(int fd, const uint64_t *a, uint64_t n, uint64_t off, uint64_t *csum)
{
	const void *disk;
	uint64_t *tmp = NULL;
	int ret;

#if __BYTE_ORDER != __LITTLE_ENDIAN
	tmp = malloc(n * 8);
	if (!tmp)
		return -ENOMEM;
#endif
	disk = le64_array_to_disk(tmp, a, n);
	*csum = XXH3_64bits(disk, n * 8);
	ret = pwrite_full(fd, disk, n * 8, off);
	free(tmp);
	return ret;
}

/*
 * The block's bitmap and checksum table, and its header entry e (whose
 * name points into b). Stray bits beyond the last page are cleared: they
 * would make fr_open() reject the image.
 */
static int write_block_tables(int fd, const char *path, struct fr_block *b, RamBlockEntry *e)
{
	uint64_t nw = bitmap_words(b->nr_pages);
	int ret;

	if (!b->bitmap || !b->csums) {
		pr_err("%s: block '%s' has no bitmap (fr_layout() not called?)\n", path, b->name);
		return -EINVAL;
	}
	if (b->bitmap[nw - 1] & bitmap_tail_mask(b->nr_pages)) {
		pr_warn("%s: block '%s': bits beyond page %" PRIu64 " set, clearing them\n", path,
			b->name, b->nr_pages);
		b->bitmap[nw - 1] &= ~bitmap_tail_mask(b->nr_pages);
	}
	b->nr_present = bitmap_weight(b->bitmap, nw);

	ram_block_entry__init(e);
	e->name = b->name;
	e->host_addr = b->host_addr;
	e->length = b->length;
	e->page_size = b->page_size;
	e->backing = (RamBacking)b->backing;
	e->has_executable = b->exec;
	e->executable = b->exec;
	e->bitmap_offset = b->bitmap_offset;
	e->csum_offset = b->csum_offset;
	e->pages_offset = b->pages_offset;
	e->chunk_pages = b->chunk_pages;
	e->nr_present = b->nr_present;

	e->has_chunks_offset = e->has_chunks_csum = true;
	e->chunks_offset = b->chunks_offset;

	ret = write_le64_array(fd, b->bitmap, nw, b->bitmap_offset, &e->bitmap_csum);
	if (!ret)
		ret = write_le64_array(fd, b->csums, b->nr_chunks, b->csum_offset, &e->csum_table_csum);
	if (!ret)
		ret = write_le64_array(fd, b->chunk_off, b->nr_chunks, b->chunks_offset, &e->chunks_csum);
	if (ret)
		pr_err("%s: block '%s': cannot write bitmap/checksum/chunk table: %s\n", path, b->name,
		       strerror(-ret));
	return ret;
}

/*
 * A chunk that holds a present page must have a slot; the file ends where
 * the data of the last slot given out can end (fr_create() sized it for
 * every chunk's), or where the data area starts if there is none.
 */
static int trim_to_slots(struct fr_image *img, const char *path)
{
	uint64_t end = 0;
	int ret;

	for (uint32_t i = 0; i < img->nr_blocks; i++) {
		const struct fr_block *b = &img->blocks[i];

		if (!b->chunk_off)
			return -EINVAL;
		for (uint64_t c = 0; c < b->nr_chunks; c++) {
			uint64_t n = fr_chunk_nr_pages(b, c), off = b->chunk_off[c];

			if (!off && bitmap_any(b->bitmap, c * b->chunk_pages, n)) {
				pr_err("%s: block '%s' chunk %" PRIu64 " has present pages but no slot\n",
				       path, b->name, c);
				return -EINVAL;
			}
			if (off && off + n * b->page_size > end)
				end = off + n * b->page_size;
		}
	}
	if (!end)
		end = img->data_end;
	if (img->data_end > img->file_size || end > img->file_size) {
		pr_err("%s: slots end at %" PRIu64 ", beyond the layout's %" PRIu64 "\n", path,
		       img->data_end, img->file_size);
		return -EINVAL;
	}
	img->file_size = end;
	if (ftruncate(img->meta_fd, (off_t)end)) {
		ret = -errno;
		pr_perror("%s: cannot trim image to %" PRIu64 " bytes", path, end);
		return ret;
	}
	return 0;
}

/* Page data (written via fd, possibly O_DIRECT) and metadata durable first. */
static int sync_contents(const struct fr_image *img, const char *path)
{
	int ret = fsync_retry(img->fd);

	if (!ret)
		ret = fsync_retry(img->meta_fd);
	if (ret)
		pr_err("%s: fsync of page data failed: %s\n", path, strerror(-ret));
	return ret;
}

/* The packed header for blocks (malloc'ed into *buf), or -errno. */
static int pack_header(struct fr_image *img, RamBlockEntry **blocks, const char *path,
		       uint8_t **buf, size_t *len)
{
	RamImageEntry hdr = RAM_IMAGE_ENTRY__INIT;

	if (!img->dump_time_ns) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		img->dump_time_ns = (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	}
	hdr.pid = img->pid;
	hdr.file_size = img->file_size;
	hdr.n_blocks = img->nr_blocks;
	hdr.blocks = blocks;
	hdr.has_dump_time_ns = true;
	hdr.dump_time_ns = img->dump_time_ns;
	if (img->criu_run_id[0])
		hdr.criu_run_id = img->criu_run_id;

	*len = ram_image_entry__get_packed_size(&hdr);
	if (*len == 0 || *len > FR_HEADER_MAX) {
		pr_err("%s: header is %zu bytes, does not fit in %llu (too many RAM blocks: %u)\n", path,
		       *len, (unsigned long long)FR_HEADER_MAX, img->nr_blocks);
		return -E2BIG;
	}
	*buf = malloc(*len);
	if (!*buf)
		return -ENOMEM;
	ram_image_entry__pack(&hdr, *buf);
	return 0;
}

/*
 * Header, then (after it is durable) the prefix that makes it valid. A
 * crash in between leaves a zero prefix; a torn prefix fails its magic or
 * the header checksum.
 */
static int write_header(const struct fr_image *img, const uint8_t *buf, size_t len,
			const char *path)
{
	struct fr_prefix prefix = {};
	int ret;

	memcpy(prefix.magic, FR_MAGIC, sizeof(prefix.magic));
	prefix.version = htole32(FR_VERSION);
	prefix.header_len = htole32((uint32_t)len);
	prefix.header_csum = htole64(XXH3_64bits(buf, len));
	prefix.reserved = 0;

	ret = pwrite_full(img->meta_fd, buf, len, FR_PREFIX_SIZE);
	if (!ret)
		ret = fsync_retry(img->meta_fd);
	if (!ret)
		ret = pwrite_full(img->meta_fd, &prefix, sizeof(prefix), 0);
	if (!ret)
		ret = fsync_retry(img->meta_fd);
	if (ret)
		pr_err("%s: cannot write image header: %s\n", path, strerror(-ret));
	return ret;
}

int fr_finish(struct fr_image *img)
{
	RamBlockEntry *entries = NULL, **eptrs = NULL;
	char path[PATH_MAX];
	uint8_t *buf = NULL;
	size_t hlen;
	uint32_t i;
	int ret = 0;

	if (img->meta_fd < 0 || img->fd < 0)
		return -EBADF;
	fd_path(img->meta_fd, path, sizeof(path));
	if (img->nr_blocks) {
		entries = calloc(img->nr_blocks, sizeof(*entries));
		eptrs = calloc(img->nr_blocks, sizeof(*eptrs));
		if (!entries || !eptrs)
			ret = -ENOMEM;
	}
	if (!ret)
		ret = trim_to_slots(img, path);
	for (i = 0; !ret && i < img->nr_blocks; i++) {
		ret = write_block_tables(img->meta_fd, path, &img->blocks[i], &entries[i]);
		eptrs[i] = &entries[i];
	}
	if (!ret)
		ret = sync_contents(img, path);
	if (!ret)
		ret = pack_header(img, eptrs, path, &buf, &hlen);
	if (!ret)
		ret = write_header(img, buf, hlen, path);
	free(buf);
	free(eptrs);
	free(entries);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Open / validate                                                           */
/* ------------------------------------------------------------------------ */

struct region {
	uint64_t start, end;
	uint32_t block;
	const char *what;
};

static int region_cmp(const void *a, const void *b)
{
	const struct region *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

struct name_ref {
	const char *name;
	uint32_t block;
};

static int name_cmp(const void *a, const void *b)
{
	const struct name_ref *x = a, *y = b;
	int r = strcmp(x->name, y->name);

	return r ? r : (x->block > y->block) - (x->block < y->block);
}

/* What fr_open() has read and opened so far, and where its error goes. */
struct open_ctx {
	const char *path;	/* for messages: the name, then the fd's path */
	char path_buf[PATH_MAX];
	char *err;
	size_t errlen;
	int meta_fd, fd;
	struct stat st;		/* of meta_fd */
	uint32_t version;	/* from the prefix */
	uint32_t hlen;
	uint64_t hcsum;
	uint8_t *hbuf;
	RamImageEntry *h;
	struct fr_block *blocks;
	uint32_t nr_blocks;
};

__attribute__((format(printf, 3, 4))) static int fail(struct open_ctx *c, int ret, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s: %s", c->path, msg);
	pr_debug("fr_open: %s: %s\n", c->path, msg);
	return ret;
}

/* Read a LE u64 array region, check its XXH3, convert to native. */
static int read_le64_array(int fd, uint64_t off, uint64_t n, uint64_t want_csum, uint64_t **out,
			   uint64_t *got_csum)
{
	uint64_t *a;
	ssize_t r;

	if (n > SIZE_MAX / 8)
		return -ENOMEM;
	a = malloc(n * 8);
	if (!a)
		return -ENOMEM;
	r = pread_full(fd, a, n * 8, off);
	if (r < 0 || (uint64_t)r != n * 8) {
		free(a);
		return r < 0 ? (int)r : -EIO;
	}
	*got_csum = XXH3_64bits(a, n * 8);
	if (*got_csum != want_csum) {
		free(a);
		return -EBADMSG;
	}
	le64_array_from_disk(a, n);
	*out = a;
	return 0;
}

static int validate_block(struct open_ctx *c, const RamImageEntry *h, uint32_t i, struct fr_block *b,
			  struct region *regs)
{
	const RamBlockEntry *e = h->blocks[i];
	size_t nlen;

	if (!e->name)
		return fail(c, -EBADMSG, "block %u: no name", i);
	nlen = strlen(e->name);
	if (nlen == 0 || nlen >= FR_NAME_MAX)
		return fail(c, -EBADMSG, "block %u: name is %zu bytes, must be 1..%d", i, nlen,
			    FR_NAME_MAX - 1);
	memcpy(b->name, e->name, nlen + 1);

#define BFAIL(fmt, ...) fail(c, -EBADMSG, "block %u '%s': " fmt, i, b->name, ##__VA_ARGS__)
	if (e->page_size < FR_MIN_PAGE_SIZE || !is_pow2(e->page_size))
		return BFAIL("page size %u is not a power of two >= %u", e->page_size, FR_MIN_PAGE_SIZE);
	if (e->length == 0 || e->length % e->page_size)
		return BFAIL("length %" PRIu64 " is not a non-zero multiple of page size %u", e->length,
			     e->page_size);
	if ((unsigned)e->backing > FR_BACKING_HUGETLB)
		return BFAIL("unknown backing type %d", (int)e->backing);
	if (e->executable && e->backing != RAM_BACKING__ANON_PRIVATE)
		return BFAIL("only private anonymous blocks can be executable");
	if (e->chunk_pages == 0 || e->chunk_pages % 64)
		return BFAIL("chunk size %u pages is not a non-zero multiple of 64", e->chunk_pages);
	if ((uint64_t)e->chunk_pages * e->page_size > FR_CHUNK_MAX_BYTES)
		return BFAIL("chunks of %u pages of %u bytes exceed %llu MiB", e->chunk_pages,
			     e->page_size, FR_CHUNK_MAX_BYTES >> 20);
	if (e->host_addr > UINT64_MAX - e->length)
		return BFAIL("host range 0x%" PRIx64 " + %" PRIu64 " wraps around", e->host_addr,
			     e->length);

	b->host_addr = e->host_addr;
	b->length = e->length;
	b->page_size = e->page_size;
	b->backing = (enum fr_backing)e->backing;
	b->exec = e->executable;
	b->nr_pages = e->length / e->page_size;
	b->chunk_pages = e->chunk_pages;
	b->nr_chunks = b->nr_pages / b->chunk_pages + (b->nr_pages % b->chunk_pages ? 1 : 0);
	b->bitmap_offset = e->bitmap_offset;
	b->csum_offset = e->csum_offset;
	b->pages_offset = e->pages_offset;
	b->chunks_offset = c->version >= 3 ? e->chunks_offset : 0;

	if (c->version >= 3 && (!e->has_chunks_offset || !e->has_chunks_csum))
		return BFAIL("no chunk table in a version %u image", c->version);
	if (e->nr_present > b->nr_pages)
		return BFAIL("header says %" PRIu64 " pages present, block has only %" PRIu64,
			     e->nr_present, b->nr_pages);
	if (e->pages_offset % FR_ALIGN)
		return BFAIL("page data offset 0x%" PRIx64 " is not aligned to %llu bytes",
			     e->pages_offset, (unsigned long long)FR_ALIGN);

	/*
	 * Version 3: the third region is the chunk table; the data area only
	 * has to start in the file (the slots in it are checked one by one).
	 * Version 2: it is the block's whole page region.
	 */
	if (c->version >= 3 && e->pages_offset > h->file_size)
		return BFAIL("data area at 0x%" PRIx64 " starts beyond the end of the image (%" PRIu64
			     " bytes)", e->pages_offset, h->file_size);
	regs[0] = (struct region){ e->bitmap_offset, 0, i, "bitmap" };
	regs[1] = (struct region){ e->csum_offset, 0, i, "checksum table" };
	if (c->version >= 3)
		regs[2] = (struct region){ e->chunks_offset, 0, i, "chunk table" };
	else
		regs[2] = (struct region){ e->pages_offset, 0, i, "page data" };
	{
		const uint64_t lens[3] = { bitmap_bytes(b->nr_pages), b->nr_chunks * 8,
					   c->version >= 3 ? b->nr_chunks * 8 : e->length };

		for (int k = 0; k < 3; k++) {
			struct region *r = &regs[k];

			if (r->start < FR_ALIGN)
				return BFAIL("%s at offset 0x%" PRIx64 " overlaps the header area [0, 0x%llx)",
					     r->what, r->start, (unsigned long long)FR_ALIGN);
			if (r->start > h->file_size || lens[k] > h->file_size - r->start)
				return BFAIL("%s [0x%" PRIx64 ", +%" PRIu64 ") lies beyond the end of the image "
					     "(%" PRIu64 " bytes)",
					     r->what, r->start, lens[k], h->file_size);
			r->end = r->start + lens[k];
		}
	}
#undef BFAIL
	return 0;
}

/* One of a block's checksummed tables: the bitmap or the chunk checksums. */
struct block_table {
	const char *name;	/* "bitmap" */
	const char *what;	/* "present-page bitmap" */
	uint64_t offset, words, csum;
	uint64_t **dst;
};

static int load_table(struct open_ctx *c, int fd, uint32_t i, const struct fr_block *b,
		      const struct block_table *t)
{
	uint64_t got = 0;
	int ret = read_le64_array(fd, t->offset, t->words, t->csum, t->dst, &got);

	if (ret == -EBADMSG)
		return fail(c, ret,
			    "block %u '%s': %s checksum mismatch (stored 0x%016" PRIx64
			    ", computed 0x%016" PRIx64 "): %s at offset 0x%" PRIx64 " is corrupt",
			    i, b->name, t->name, t->csum, got, t->what, t->offset);
	if (ret)
		return fail(c, ret, "block %u '%s': cannot read %s (%" PRIu64 " bytes at 0x%" PRIx64 "): %s",
			    i, b->name, t->name, t->words * 8, t->offset, strerror(-ret));
	return 0;
}

/* A version 2 image: chunk c at pages_offset + c * chunk_pages * page_size. */
static int v2_chunk_table(struct open_ctx *c, uint32_t i, struct fr_block *b)
{
	b->chunk_off = calloc(b->nr_chunks, sizeof(uint64_t));
	if (!b->chunk_off)
		return fail(c, -ENOMEM, "block %u '%s': out of memory for %" PRIu64 " chunks", i,
			    b->name, b->nr_chunks);
	for (uint64_t k = 0; k < b->nr_chunks; k++)
		b->chunk_off[k] = b->pages_offset + k * b->chunk_pages * b->page_size;
	return 0;
}

static int load_block_tables(struct open_ctx *c, int fd, const RamBlockEntry *e, uint32_t i,
			     struct fr_block *b)
{
	uint64_t present, nw = bitmap_words(b->nr_pages);
	const struct block_table bitmap = { "bitmap", "present-page bitmap", b->bitmap_offset, nw,
					    e->bitmap_csum, &b->bitmap };
	const struct block_table csums = { "checksum table", "chunk checksum table", b->csum_offset,
					   b->nr_chunks, e->csum_table_csum, &b->csums };
	const struct block_table chunks = { "chunk table", "chunk table", b->chunks_offset,
					    b->nr_chunks, e->chunks_csum, &b->chunk_off };
	int ret;

	ret = load_table(c, fd, i, b, &bitmap);
	if (!ret)
		ret = load_table(c, fd, i, b, &csums);
	if (!ret)
		ret = c->version >= 3 ? load_table(c, fd, i, b, &chunks) : v2_chunk_table(c, i, b);
	if (ret)
		return ret;

	if (b->bitmap[nw - 1] & bitmap_tail_mask(b->nr_pages))
		return fail(c, -EBADMSG, "block %u '%s': bitmap has bits set beyond the last page %" PRIu64,
			    i, b->name, b->nr_pages - 1);
	present = bitmap_weight(b->bitmap, nw);
	if (present != e->nr_present)
		return fail(c, -EBADMSG, "block %u '%s': bitmap has %" PRIu64 " pages set, header says %" PRIu64,
			    i, b->name, present, e->nr_present);
	b->nr_present = present;
	return 0;
}

static int check_unique_names(struct open_ctx *c, const struct fr_block *blocks, uint32_t nb)
{
	struct name_ref *names = calloc(nb, sizeof(*names));
	uint32_t i;
	int ret = 0;

	if (!names)
		return fail(c, -ENOMEM, "out of memory for %u block names", nb);
	for (i = 0; i < nb; i++)
		names[i] = (struct name_ref){ blocks[i].name, i };
	qsort(names, nb, sizeof(*names), name_cmp);
	for (i = 1; i < nb && !ret; i++)
		if (!strcmp(names[i - 1].name, names[i].name))
			ret = fail(c, -EBADMSG, "blocks %u and %u have the same name '%s'", names[i - 1].block,
				   names[i].block, names[i].name);
	free(names);
	return ret;
}

/* Bitmaps, checksum tables and page data of all blocks never share bytes. */
static int check_file_regions(struct open_ctx *c, const struct fr_block *blocks, struct region *regs,
			      uint32_t nr)
{
	uint32_t i;

	qsort(regs, nr, sizeof(*regs), region_cmp);
	for (i = 1; i < nr; i++) {
		const struct region *a = &regs[i - 1], *b = &regs[i];

		if (b->start < a->end)
			return fail(c, -EBADMSG,
				    "block %u '%s' %s [0x%" PRIx64 ", 0x%" PRIx64 ") overlaps block %u '%s' "
				    "%s [0x%" PRIx64 ", 0x%" PRIx64 ")",
				    b->block, blocks[b->block].name, b->what, b->start, b->end, a->block,
				    blocks[a->block].name, a->what, a->start, a->end);
	}
	return 0;
}

/*
 * Two blocks can never be mapped at the same QEMU address: a header that
 * says so is forged or corrupt, and filling it would write one block's
 * pages over the other's.
 */
static int check_host_ranges(struct open_ctx *c, const struct fr_block *blocks, uint32_t nb)
{
	uint32_t i, j;

	for (i = 0; i < nb; i++)
		for (j = i + 1; j < nb; j++) {
			const struct fr_block *a = &blocks[i], *b = &blocks[j];

			if (a->host_addr < b->host_addr + b->length && b->host_addr < a->host_addr + a->length)
				return fail(c, -EBADMSG,
					    "blocks %u '%s' and %u '%s' overlap in QEMU's address space "
					    "([0x%" PRIx64 ", +%" PRIu64 ") and [0x%" PRIx64 ", +%" PRIu64 "))",
					    i, a->name, j, b->name, a->host_addr, a->length, b->host_addr, b->length);
		}
	return 0;
}

/*
 * Version 3: every chunk with a present page has a slot; a slot is aligned,
 * in the data area and in the file, and shares no byte with another slot or
 * a table (meta: the nr_meta table regions, already checked).
 */
static int check_slots(struct open_ctx *c, const struct region *meta, uint32_t nr_meta)
{
	uint64_t size = c->h->file_size, nr = nr_meta, k;
	struct region *regs;
	uint32_t i;
	int ret;

	for (i = 0; i < c->nr_blocks; i++)
		for (k = 0; k < c->blocks[i].nr_chunks; k++)
			nr += !!c->blocks[i].chunk_off[k];
	regs = calloc(nr, sizeof(*regs));
	if (!regs)
		return fail(c, -ENOMEM, "out of memory for %" PRIu64 " chunk slots", nr);
	memcpy(regs, meta, nr_meta * sizeof(*regs));
	nr = nr_meta;
	for (i = 0; i < c->nr_blocks; i++) {
		const struct fr_block *b = &c->blocks[i];

		for (k = 0; k < b->nr_chunks; k++) {
			uint64_t off = b->chunk_off[k], len = fr_chunk_nr_pages(b, k) * b->page_size;

			ret = -EBADMSG;
			if (!off && bitmap_any(b->bitmap, k * b->chunk_pages, fr_chunk_nr_pages(b, k)))
				ret = fail(c, ret, "block %u '%s' chunk %" PRIu64 " has present pages "
					   "but no slot", i, b->name, k);
			else if (off && (off % FR_ALIGN || off < b->pages_offset))
				ret = fail(c, ret, "block %u '%s' chunk %" PRIu64 ": slot at 0x%" PRIx64
					   " is not an aligned place in the data area (from 0x%" PRIx64 ")",
					   i, b->name, k, off, b->pages_offset);
			else if (off && (off > size || len > size - off))
				ret = fail(c, ret, "block %u '%s' chunk %" PRIu64 ": slot [0x%" PRIx64
					   ", +%" PRIu64 ") lies beyond the end of the image (%" PRIu64
					   " bytes)", i, b->name, k, off, len, size);
			else
				ret = 0;
			if (ret) {
				free(regs);
				return ret;
			}
			if (off)
				regs[nr++] = (struct region){ off, off + len, i, "chunk slot" };
		}
	}
	ret = check_file_regions(c, c->blocks, regs, nr);
	free(regs);
	return ret;
}

static void free_blocks(struct fr_block *blocks, uint32_t n)
{
	if (!blocks)
		return;
	for (uint32_t i = 0; i < n; i++)
		free_block_contents(&blocks[i]);
	free(blocks);
}

/* O_NONBLOCK: a FIFO planted under the image name must not hang restore. */
static int open_nonblock(int dirfd, const char *name)
{
	return openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
}

static void clear_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
}

/* The metadata fd, on a regular file; from here on errors name its path. */
static int open_regular(struct open_ctx *c, int dirfd, const char *name)
{
	int ret;

	c->meta_fd = open_nonblock(dirfd, name);
	if (c->meta_fd < 0) {
		ret = -errno;
		return fail(c, ret, "cannot open RAM image: %s", strerror(-ret));
	}
	c->path = fd_path(c->meta_fd, c->path_buf, sizeof(c->path_buf));
	if (fstat(c->meta_fd, &c->st))
		return fail(c, -errno, "cannot stat: %s", strerror(errno));
	if (!S_ISREG(c->st.st_mode))
		return fail(c, -EINVAL, "not a regular file");
	clear_nonblock(c->meta_fd);
	return 0;
}

static int check_magic(struct open_ctx *c, const struct fr_prefix *p)
{
	static const char zero[sizeof(p->magic)];

	if (!memcmp(p->magic, FR_MAGIC, sizeof(p->magic)))
		return 0;
	if (!memcmp(p->magic, zero, sizeof(zero)))
		return fail(c, -EINVAL,
			    "not a criu-qemu RAM image: prefix is all zeros (the dump that wrote it "
			    "did not finish; the header is written last)");
	return fail(c, -EINVAL, "not a criu-qemu RAM image (bad magic)");
}

/* Magic, version and header length; the file must hold the header. */
static int read_prefix(struct open_ctx *c)
{
	struct fr_prefix p;
	uint32_t version;
	ssize_t r;
	int ret;

	if (c->st.st_size == 0)
		return fail(c, -EINVAL, "empty file (0 bytes): not a criu-qemu RAM image");
	if (c->st.st_size < FR_PREFIX_SIZE)
		return fail(c, -EINVAL, "truncated: file is %lld bytes, smaller than the %d-byte prefix",
			    (long long)c->st.st_size, FR_PREFIX_SIZE);
	r = pread_full(c->meta_fd, &p, sizeof(p), 0);
	if (r != sizeof(p))
		return fail(c, r < 0 ? (int)r : -EIO, "cannot read prefix: %s",
			    r < 0 ? strerror((int)-r) : "short read");
	ret = check_magic(c, &p);
	if (ret)
		return ret;
	version = le32toh(p.version);
	c->hlen = le32toh(p.header_len);
	c->hcsum = le64toh(p.header_csum);
	if (version < FR_VERSION_MIN || version > FR_VERSION)
		return fail(c, -EPROTONOSUPPORT, "image version %u, this build reads %d..%d%s", version,
			    FR_VERSION_MIN, FR_VERSION, version == 1 ? " (version 1 images are not bound "
			    "to their checkpoint and cannot be verified: dump again)" : "");
	c->version = version;
	if (c->hlen == 0 || c->hlen > FR_HEADER_MAX)
		return fail(c, -EBADMSG, "header length %u out of range (1..%llu): prefix is corrupt",
			    c->hlen, (unsigned long long)FR_HEADER_MAX);
	if ((uint64_t)c->st.st_size < FR_PREFIX_SIZE + (uint64_t)c->hlen)
		return fail(c, -EBADMSG, "truncated: file is %lld bytes, header ends at %llu",
			    (long long)c->st.st_size, (unsigned long long)FR_PREFIX_SIZE + c->hlen);
	return 0;
}

/* The header bytes, checked against the prefix's checksum, then unpacked. */
static int read_header(struct open_ctx *c)
{
	uint64_t got;
	ssize_t r;

	c->hbuf = malloc(c->hlen);
	if (!c->hbuf)
		return fail(c, -ENOMEM, "out of memory for %u-byte header", c->hlen);
	r = pread_full(c->meta_fd, c->hbuf, c->hlen, FR_PREFIX_SIZE);
	if (r != (ssize_t)c->hlen)
		return fail(c, r < 0 ? (int)r : -EIO, "cannot read header: %s",
			    r < 0 ? strerror((int)-r) : "short read");
	got = XXH3_64bits(c->hbuf, c->hlen);
	if (got != c->hcsum)
		return fail(c, -EBADMSG,
			    "header checksum mismatch (stored 0x%016" PRIx64 ", computed 0x%016" PRIx64
			    "): header is corrupt",
			    c->hcsum, got);
	c->h = ram_image_entry__unpack(NULL, c->hlen, c->hbuf);
	if (!c->h)
		return fail(c, -EBADMSG, "header is not a valid ram_image_entry protobuf");
	return 0;
}

/* The header's own fields: file size, block count, run id. */
static int check_header(struct open_ctx *c)
{
	const RamImageEntry *h = c->h;
	uint64_t size = c->st.st_size;

	if (h->file_size != size) {
		if (size < h->file_size)
			return fail(c, -EBADMSG, "truncated: file is %lld bytes, header says %" PRIu64,
				    (long long)size, h->file_size);
		return fail(c, -EBADMSG,
			    "size mismatch: file is %lld bytes, header says %" PRIu64 " (trailing data)",
			    (long long)size, h->file_size);
	}
	if (h->n_blocks == 0)
		return fail(c, -EBADMSG, "header lists no RAM blocks: no dump writes such an image");
	if (h->n_blocks > UINT32_MAX / 3)
		return fail(c, -EBADMSG, "too many blocks (%zu)", h->n_blocks);
	if (h->criu_run_id && strlen(h->criu_run_id) >= FR_RUN_ID_MAX)
		return fail(c, -EBADMSG, "CRIU run id is %zu bytes, at most %d", strlen(h->criu_run_id),
			    FR_RUN_ID_MAX - 1);
	return 0;
}

/*
 * Every block's fields and file regions, then how blocks relate (names,
 * regions, host ranges), then bitmaps and checksum tables: those reads are
 * bounded by the (checked) file size.
 */
static int load_blocks(struct open_ctx *c)
{
	uint32_t i, nb = c->h->n_blocks;
	struct region *regs;
	int ret = 0;

	c->blocks = calloc(nb, sizeof(*c->blocks));
	regs = calloc((size_t)nb * 3, sizeof(*regs));
	if (!c->blocks || !regs) {
		free(regs);
		return fail(c, -ENOMEM, "out of memory for %u blocks", nb);
	}
	c->nr_blocks = nb;
	for (i = 0; !ret && i < nb; i++)
		ret = validate_block(c, c->h, i, &c->blocks[i], &regs[3 * i]);
	if (!ret)
		ret = check_unique_names(c, c->blocks, nb);
	if (!ret)
		ret = check_file_regions(c, c->blocks, regs, nb * 3);
	if (!ret)
		ret = check_host_ranges(c, c->blocks, nb);
	for (i = 0; !ret && i < nb; i++)
		ret = load_block_tables(c, c->meta_fd, c->h->blocks[i], i, &c->blocks[i]);
	if (!ret && c->version >= 3)
		ret = check_slots(c, regs, nb * 3);
	free(regs);
	return ret;
}

/* Own open file description for page data, so callers may e.g. set O_DIRECT on it. */
static int open_data_fd(struct open_ctx *c, int dirfd, const char *name)
{
	struct stat st;

	c->fd = open_nonblock(dirfd, name);
	if (c->fd < 0)
		return fail(c, -errno, "cannot reopen for page data: %s", strerror(errno));
	if (fstat(c->fd, &st) || st.st_dev != c->st.st_dev || st.st_ino != c->st.st_ino)
		return fail(c, -ESTALE, "file was replaced while being opened");
	clear_nonblock(c->fd);
	return 0;
}

/* All checks passed: img takes the fds and blocks. */
static void take_image(struct open_ctx *c, struct fr_image *img)
{
	const RamImageEntry *h = c->h;

	img->fd = c->fd;
	img->meta_fd = c->meta_fd;
	img->pid = h->pid;
	img->nr_blocks = c->nr_blocks;
	img->blocks = c->blocks;
	img->file_size = h->file_size;
	img->data_end = h->file_size;
	img->version = c->version;
	img->dump_time_ns = h->has_dump_time_ns ? h->dump_time_ns : 0;
	snprintf(img->criu_run_id, sizeof(img->criu_run_id), "%s", h->criu_run_id ? h->criu_run_id : "");
	c->fd = c->meta_fd = -1;
	c->blocks = NULL;
}

static void open_ctx_fini(struct open_ctx *c)
{
	if (c->h)
		ram_image_entry__free_unpacked(c->h, NULL);
	free_blocks(c->blocks, c->nr_blocks);
	free(c->hbuf);
	if (c->fd >= 0)
		close(c->fd);
	if (c->meta_fd >= 0)
		close(c->meta_fd);
}

int fr_open(struct fr_image *img, int dirfd, const char *name, char *err, size_t errlen)
{
	struct open_ctx c = { .path = name, .err = err, .errlen = errlen, .fd = -1, .meta_fd = -1 };
	int ret;

	if (err && errlen)
		err[0] = '\0';
	fr_image_init(img, 0, 0);
	ret = open_regular(&c, dirfd, name);
	if (!ret)
		ret = read_prefix(&c);
	if (!ret)
		ret = read_header(&c);
	if (!ret)
		ret = check_header(&c);
	if (!ret)
		ret = load_blocks(&c);
	if (!ret)
		ret = open_data_fd(&c, dirfd, name);
	if (!ret)
		take_image(&c, img);
	open_ctx_fini(&c);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Chunk reads                                                               */
/* ------------------------------------------------------------------------ */

/* cachestat(2), Linux 6.5; Debian 12's headers predate it. */
#define CACHESTAT_NR	451

struct cachestat_range {
	uint64_t off, len;
};

struct cachestat {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/*
 * Is all of the range in the page cache? cachestat only looks: a read
 * with RWF_NOWAIT, the obvious probe, starts readahead when it misses
 * (tried on 6.18: 16 such reads of 1 MiB left 30 MiB cached), which read
 * every chunk of a cold image from the disk twice. An older kernel
 * (ENOSYS) answers no.
 */
static bool range_cached(int fd, uint64_t off, uint64_t len)
{
	struct cachestat_range range = { off, len };
	struct cachestat cs;

	if (syscall(CACHESTAT_NR, fd, &range, &cs, 0))
		return false;
	return cs.nr_cache * (uint64_t)sysconf(_SC_PAGESIZE) >= len;
}

/*
 * The fd to read a range of page data with: the buffered one if the range
 * is in the page cache (an image just written buffered, copied or unpacked
 * is read from memory) or not aligned for O_DIRECT, else the data fd (set
 * O_DIRECT by restore: a cold image goes from the disk into the buffer
 * without page cache pages to allocate, which on a VM that gave its free
 * memory back to its host costs as much as the fill itself).
 */
static int data_read_fd(const struct fr_image *img, const void *dst, uint64_t len, uint64_t off)
{
	bool aligned = !((uintptr_t)dst % FR_MIN_PAGE_SIZE) && !(len % FR_MIN_PAGE_SIZE);

	if (img->fd < 0 || !aligned)
		return img->meta_fd;
	if (img->meta_fd >= 0 && range_cached(img->meta_fd, off, len))
		return img->meta_fd;
	return img->fd;
}

/*
 * Read len bytes of page data from byte block_off of the block (a run of
 * pages inside one chunk, so inside its slot) into dst; log and fail on
 * errors/EOF.
 */
static int read_pages(const struct fr_image *img, const struct fr_block *b, uint64_t chunk,
		      uint64_t block_off, uint64_t len, char *dst)
{
	uint64_t page = block_off / b->page_size, last = (block_off + len - 1) / b->page_size;
	uint64_t off = fr_page_offset(b, page) + block_off % b->page_size;
	int fd = data_read_fd(img, dst, len, off);
	char path[PATH_MAX];
	ssize_t r;

	if (fd < 0)
		return -EBADF;
	r = pread_full(fd, dst, len, off);
	if (r == -EINVAL && fd == img->fd && img->meta_fd >= 0) {
		/* O_DIRECT refused this buffer/offset: go through the page cache. */
		fd = img->meta_fd;
		r = pread_full(fd, dst, len, off);
	}
	if (r < 0) {
		pr_err("%s: block '%s' chunk %" PRIu64 ": reading pages %" PRIu64 "..%" PRIu64
		       " at offset 0x%" PRIx64 " failed: %s\n",
		       fd_path(fd, path, sizeof(path)), b->name, chunk, page, last, off, strerror((int)-r));
		return (int)r;
	}
	if ((uint64_t)r != len) {
		pr_err("%s: block '%s' chunk %" PRIu64 ": truncated page data: got %zd of %" PRIu64
		       " bytes at offset 0x%" PRIx64 " (pages %" PRIu64 "..%" PRIu64 ")\n",
		       fd_path(fd, path, sizeof(path)), b->name, chunk, r, len, off, page, last);
		return -EIO;
	}
	return 0;
}

static int csum_mismatch(const struct fr_image *img, const struct fr_block *b, uint64_t chunk, uint64_t csum)
{
	uint64_t first = chunk * b->chunk_pages, n = fr_chunk_nr_pages(b, chunk);
	char path[PATH_MAX];

	pr_err("%s: block '%s' chunk %" PRIu64 " (pages %" PRIu64 "..%" PRIu64 ", file offset 0x%" PRIx64
	       "): checksum mismatch (stored 0x%016" PRIx64 ", computed 0x%016" PRIx64
	       "): page data is corrupt\n",
	       fd_path(img->meta_fd >= 0 ? img->meta_fd : img->fd, path, sizeof(path)), b->name, chunk,
	       first, first + n - 1, fr_page_offset(b, first), b->csums[chunk], csum);
	return -EBADMSG;
}

int fr_read_chunk(const struct fr_image *img, const struct fr_block *b, uint64_t chunk, void *buf)
{
	uint64_t n = fr_chunk_nr_pages(b, chunk), first = chunk * b->chunk_pages, s, e = first, csum;
	uint64_t done = 0;	/* pages of buf filled */
	char *p = buf;
	int ret;

	if (chunk >= b->nr_chunks || !b->bitmap || !b->csums)
		return -EINVAL;

	/*
	 * One read from the first present page to the end of the last: holes
	 * in between cost no I/O, and one large read beats a read per run
	 * (a busy guest's chunk has dozens). Then absent pages are zeroed.
	 */
	if (bitmap_next_run(b->bitmap, first, first + n, &s, &e)) {
		e = bitmap_last_end(b->bitmap, s, first + n);
		ret = read_pages(img, b, chunk, s * b->page_size, (e - s) * b->page_size,
				 p + (s - first) * b->page_size);
		if (ret)
			return ret;
	}
	e = first;
	while (bitmap_next_run(b->bitmap, e, first + n, &s, &e)) {
		memset(p + done * b->page_size, 0, (s - first - done) * b->page_size);
		done = e - first;
	}
	memset(p + done * b->page_size, 0, (n - done) * b->page_size);

	csum = fr_chunk_csum(b, chunk, buf);
	if (csum != b->csums[chunk])
		return csum_mismatch(img, b, chunk, csum);
	return 0;
}

/* fr_scan_chunk() of one run of present pages, buf_len bytes at a time. */
static int scan_run(const struct fr_image *img, const struct fr_block *b, uint64_t chunk,
		    uint64_t s, uint64_t e, void *buf, size_t buf_len, XXH3_state_t *st,
		    fr_scan_cb cb, void *arg)
{
	uint64_t done, bytes = (e - s) * b->page_size;
	int ret;

	for (done = 0; done < bytes; done += buf_len) {
		uint64_t len = bytes - done < buf_len ? bytes - done : buf_len;
		uint64_t block_off = s * b->page_size + done;

		ret = read_pages(img, b, chunk, block_off, len, buf);
		if (ret)
			return ret;
		XXH3_64bits_update(st, buf, len);
		ret = cb ? cb(arg, block_off, buf, len) : 0;
		if (ret)
			return ret;
	}
	return 0;
}

int fr_scan_chunk(const struct fr_image *img, const struct fr_block *b, uint64_t chunk, void *buf,
		  size_t buf_len, fr_scan_cb cb, void *arg)
{
	uint64_t n = fr_chunk_nr_pages(b, chunk), first = chunk * b->chunk_pages, s, e = first, csum;
	XXH3_state_t st;
	int ret;

	if (chunk >= b->nr_chunks || !b->bitmap || !b->csums || buf_len < FR_MIN_PAGE_SIZE ||
	    buf_len % FR_MIN_PAGE_SIZE)
		return -EINVAL;

	XXH3_INITSTATE(&st);	/* see fr_chunk_csum() */
	XXH3_64bits_reset_withSeed(&st, chunk);
	while (bitmap_next_run(b->bitmap, e, first + n, &s, &e)) {
		ret = scan_run(img, b, chunk, s, e, buf, buf_len, &st, cb, arg);
		if (ret)
			return ret;
	}
	csum = XXH3_64bits_digest(&st);
	if (csum != b->csums[chunk])
		return csum_mismatch(img, b, chunk, csum);
	return 0;
}

void fr_close(struct fr_image *img)
{
	if (img->fd >= 0)
		close(img->fd);
	if (img->meta_fd >= 0)
		close(img->meta_fd);
	img->fd = img->meta_fd = -1;
	free_blocks(img->blocks, img->nr_blocks);
	img->blocks = NULL;
	img->nr_blocks = 0;
}
