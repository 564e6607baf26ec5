// SPDX-License-Identifier: GPL-2.0
/*
 * Dump writer, live patch and restore filler against real child
 * processes: a "dumpee" holds two RAM blocks with data, explicit zero,
 * dropped, read-only and untouched pages; its image is checked page by
 * page, then a "restoree" with fresh mappings at the same addresses is
 * filled and checks itself.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "dump-writer.h"
#include "helpers.h"
#include "live-patch.h"
#include "restore-fill.h"

#define NP0	(3 * FR_CHUNK_PAGES + 100)	/* "pc.ram": short last chunk */
#define NP1	300				/* "vga.vram" */
#define GAP	16

enum kind { UNTOUCHED, DATA, DATA2, LAST_BYTE, ZERO_WRITTEN, DROPPED, READ };

static long ps;
static char *base;	/* PROT_NONE reservation the children map over */
static char dir[64];
static int dirfd_;
static const char *img_name = "qemu-ram-test.img";

static char *block_addr(int blk)
{
	return base + (blk ? (NP0 + GAP) * ps : 0);
}

static uint64_t block_pages(int blk)
{
	return blk ? NP1 : NP0;
}

/*
 * What the dumpee did to each page; mod: after the 'M' command. Chunk 0 of
 * block 0 mixes every kind page by page; the rest has longer runs, because
 * each run is a file extent and ext4 (mounted with discard) frees extents
 * slowly on unlink.
 */
static enum kind page_kind(int blk, uint64_t p, bool mod)
{
	if (blk == 1)
		return p % 16 == 3 ? ZERO_WRITTEN : (p / 16) % 2 ? UNTOUCHED : DATA;
	if (mod) {
		if (p == 0 || p == 300)
			return DATA2;
		if (p == 9)
			return ZERO_WRITTEN;
		if (p == 12)
			return DROPPED;
	}
	if (p >= FR_CHUNK_PAGES && p < 2 * FR_CHUNK_PAGES)
		return UNTOUCHED;	/* a whole empty chunk */
	if (p >= 2 * FR_CHUNK_PAGES)
		return p % 64 == 5 ? ZERO_WRITTEN : p % 64 == 40 ? LAST_BYTE :
		       (p / 32) % 4 == 3 ? UNTOUCHED : DATA;
	if (p % 13 == 5)
		return LAST_BYTE;
	if (p % 11 == 2)
		return DROPPED;
	if (p % 7 == 1)
		return ZERO_WRITTEN;
	if (p % 17 == 3)
		return READ;
	return p % 3 == 0 ? DATA : UNTOUCHED;
}

static bool has_data(enum kind k)
{
	return k == DATA || k == DATA2 || k == LAST_BYTE;
}

/* Expected contents of a page (zeros for everything without data). */
static void expected(int blk, uint64_t p, bool mod, char *buf)
{
	enum kind k = page_kind(blk, p, mod);
	uint64_t *w = (uint64_t *)buf, seed;
	long i;

	memset(buf, 0, ps);
	if (k == LAST_BYTE) {
		buf[ps - 1] = (char)(p | 1);
	} else if (k == DATA || k == DATA2) {
		seed = (blk + 1) * 0x9E3779B97F4A7C15ULL ^ p << 20 ^ (k == DATA2 ? 0xabcdULL << 40 : 0);
		for (i = 0; i < ps / 8; i++)
			w[i] = seed + i;
	}
}

/* ---- children ---- */

struct child {
	pid_t pid;
	int cmd;	/* write end */
	int reply;	/* read end */
};

static void map_blocks(void)
{
	int blk;

	for (blk = 0; blk < 2; blk++) {
		char *a = mmap(block_addr(blk), block_pages(blk) * ps, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

		if (a == MAP_FAILED)
			_exit(10);
		/* THP would populate whole 2 MiB extents. */
		madvise(a, block_pages(blk) * ps, MADV_NOHUGEPAGE);
	}
}

static void touch_page(int blk, uint64_t p, bool mod)
{
	char *a = block_addr(blk) + p * ps;
	volatile char *v = a;

	switch (page_kind(blk, p, mod)) {
	case DATA:
	case DATA2:
	case LAST_BYTE:
		expected(blk, p, mod, a);
		break;
	case ZERO_WRITTEN:
		memset(a, 0, ps);
		break;
	case DROPPED:
		memset(a, 0x5a, ps);
		madvise(a, ps, MADV_DONTNEED);
		break;
	case READ:
		(void)v[0];
		break;
	case UNTOUCHED:
		break;
	}
}

static void fill_blocks(void)
{
	uint64_t p;
	int blk;

	for (blk = 0; blk < 2; blk++)
		for (p = 0; p < block_pages(blk); p++)
			touch_page(blk, p, false);
}

static void modify_blocks(void)
{
	static const uint64_t pages[] = { 0, 9, 12, 300 };
	unsigned i;

	for (i = 0; i < 4; i++)
		touch_page(0, pages[i], true);
}

/* Restoree: absent pages never touched, then contents byte-exact. */
static int verify_blocks(bool mod)
{
	char *want = malloc(ps);
	uint64_t p, e;
	int blk, fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0 || !want)
		return 20;
	for (blk = 0; blk < 2; blk++) {
		for (p = 0; p < block_pages(blk); p++) {
			uintptr_t a = (uintptr_t)block_addr(blk) + p * ps;

			if (pread(fd, &e, 8, a / ps * 8) != 8)
				return 21;
			if (!has_data(page_kind(blk, p, mod)) && (e >> 62)) {
				fprintf(stderr, "block %d page %llu: absent but populated\n", blk,
					(unsigned long long)p);
				return 22;
			}
		}
	}
	for (blk = 0; blk < 2; blk++) {
		for (p = 0; p < block_pages(blk); p++) {
			expected(blk, p, mod, want);
			if (memcmp(block_addr(blk) + p * ps, want, ps)) {
				fprintf(stderr, "block %d page %llu differs\n", blk, (unsigned long long)p);
				return 23;
			}
		}
	}
	close(fd);
	free(want);
	return 0;
}

static void child_main(int cmd, int reply, bool dumpee)
{
	char c, r;

	map_blocks();
	if (dumpee)
		fill_blocks();
	r = 'R';
	if (write(reply, &r, 1) != 1)
		_exit(11);
	while (read(cmd, &c, 1) == 1) {
		r = 0;
		switch (c) {
		case 'M':
			modify_blocks();
			break;
		case 'P':	/* a populated page the dumper cannot read */
			r = mprotect(block_addr(1), ps, PROT_NONE) ? 30 : 0;
			break;
		case 'V':
		case 'W':
			r = verify_blocks(c == 'W');
			break;
		default:
			_exit(0);
		}
		if (write(reply, &r, 1) != 1)
			_exit(12);
	}
	_exit(0);
}

/* Children a failed assertion left behind; killed by the test teardown. */
static pid_t live[4];

static void live_set(pid_t old, pid_t pid)
{
	unsigned i;

	for (i = 0; i < 4; i++)
		if (live[i] == old) {
			live[i] = pid;
			return;
		}
}

static int reap_children(void **state)
{
	unsigned i;

	(void)state;
	for (i = 0; i < 4; i++) {
		if (live[i] <= 0)
			continue;
		kill(live[i], SIGKILL);
		while (waitpid(live[i], NULL, 0) < 0 && errno == EINTR)
			;
		live[i] = 0;
	}
	return 0;
}

static void child_start(struct child *ch, bool dumpee)
{
	int cmd[2], reply[2];
	char r;

	assert_int_equal(pipe2(cmd, O_CLOEXEC), 0);
	assert_int_equal(pipe2(reply, O_CLOEXEC), 0);
	ch->pid = fork();
	assert_true(ch->pid >= 0);
	if (ch->pid == 0) {
		close(cmd[1]);
		close(reply[0]);
		child_main(cmd[0], reply[1], dumpee);
	}
	live_set(0, ch->pid);
	close(cmd[0]);
	close(reply[1]);
	ch->cmd = cmd[1];
	ch->reply = reply[0];
	assert_int_equal(read(ch->reply, &r, 1), 1);
	assert_int_equal(r, 'R');
}

static int child_cmd(struct child *ch, char c)
{
	char r = -1;

	if (write(ch->cmd, &c, 1) != 1 || read(ch->reply, &r, 1) != 1)
		return -1;
	return r;
}

/* Always reaped, even after a failed assertion elsewhere. */
static void child_stop(struct child *ch)
{
	int status;

	if (ch->pid <= 0)
		return;
	close(ch->cmd);
	close(ch->reply);
	while (waitpid(ch->pid, &status, 0) < 0 && errno == EINTR)
		;
	live_set(ch->pid, 0);
	ch->pid = 0;
}

/* ---- image helpers ---- */

static void image_layout(struct fr_image *img, pid_t pid)
{
	int blk;

	assert_int_equal(fr_image_init(img, pid, 2), 0);
	for (blk = 0; blk < 2; blk++) {
		struct fr_block *b = &img->blocks[blk];

		strcpy(b->name, blk ? "vga.vram" : "pc.ram");
		b->host_addr = (uintptr_t)block_addr(blk);
		b->length = block_pages(blk) * ps;
		b->page_size = ps;
		b->backing = FR_BACKING_ANON_PRIVATE;
	}
	assert_int_equal(fr_layout(img), 0);
}

static uint64_t count_kind(bool mod, bool (*pred)(enum kind))
{
	uint64_t n = 0, p;
	int blk;

	for (blk = 0; blk < 2; blk++)
		for (p = 0; p < block_pages(blk); p++)
			n += pred(page_kind(blk, p, mod));
	return n;
}

static bool is_zero_written(enum kind k)
{
	return k == ZERO_WRITTEN;
}

static bool is_read(enum kind k)
{
	return k == READ;
}

static void check_bitmaps(const struct fr_image *img, bool mod)
{
	uint64_t p;
	int blk;

	for (blk = 0; blk < 2; blk++)
		for (p = 0; p < block_pages(blk); p++)
			assert_int_equal(fr_bit_test(img->blocks[blk].bitmap, p),
					 has_data(page_kind(blk, p, mod)));
}

/*
 * A chunk has a slot in the file once it holds data, and only the slots
 * make up the data area: block 0's empty chunk 1 takes no room (until a
 * live pass writes page 300 there: mod).
 */
static void check_slots(const struct fr_image *img, bool mod)
{
	uint64_t room = 0, c;
	int blk;

	for (blk = 0; blk < 2; blk++) {
		const struct fr_block *b = &img->blocks[blk];

		for (c = 0; c < b->nr_chunks; c++) {
			if (bitmap_any(b->bitmap, c * b->chunk_pages, fr_chunk_nr_pages(b, c)))
				assert_true(b->chunk_off[c] != 0);
			if (b->chunk_off[c])
				room += fr_slot_bytes(b, c);
		}
	}
	if (!mod)
		assert_int_equal(img->blocks[0].chunk_off[FR_CHUNK_PAGES / img->blocks[0].chunk_pages], 0);
	assert_true(img->file_size <= img->blocks[0].pages_offset + room);
}

/*
 * Every chunk through fr_read_chunk (checksums) with O_DIRECT on, into an
 * aligned buffer and into an unaligned one (which falls back to meta_fd).
 */
static void check_image(bool mod)
{
	struct fr_image img;
	char err[256], *buf, *want, *raw, *unaligned;
	uint64_t c, i;
	int blk;

	assert_int_equal(fr_open(&img, dirfd_, img_name, err, sizeof(err)), 0);
	check_bitmaps(&img, mod);
	check_slots(&img, mod);
	assert_int_equal(fcntl(img.fd, F_SETFL, O_DIRECT), 0);
	buf = aligned_alloc(4096, FR_CHUNK_PAGES * ps);
	want = malloc(ps);
	raw = aligned_alloc(4096, (FR_CHUNK_PAGES + 1) * ps);
	unaligned = raw + 8;
	for (blk = 0; blk < 2; blk++) {
		const struct fr_block *b = &img.blocks[blk];

		for (c = 0; c < b->nr_chunks; c++) {
			assert_int_equal(fr_read_chunk(&img, b, c, buf), 0);
			assert_int_equal(fr_read_chunk(&img, b, c, unaligned), 0);
			for (i = 0; i < fr_chunk_nr_pages(b, c); i++) {
				expected(blk, c * b->chunk_pages + i, mod, want);
				assert_memory_equal(buf + i * ps, want, ps);
				assert_memory_equal(unaligned + i * ps, want, ps);
			}
		}
	}
	free(raw);
	free(want);
	free(buf);
	fr_close(&img);
}

/* Disk blocks of the image: the written pages plus a little metadata. */
static void check_allocation(uint64_t data_pages)
{
	struct stat st;

	assert_int_equal(fstatat(dirfd_, img_name, &st, 0), 0);
	assert_true((uint64_t)st.st_blocks * 512 >= data_pages * ps);
	assert_true((uint64_t)st.st_blocks * 512 <= data_pages * ps + 64 * 1024);
}

/* Fresh mappings at the same addresses, filled, then checked by the child. */
static void check_restore(const struct ram_io_opts *o, bool mod)
{
	struct ram_io_stats st;
	struct child ch;
	struct fr_image img;
	char err[256];
	uint64_t data = count_kind(mod, has_data);

	assert_int_equal(fr_open(&img, dirfd_, img_name, err, sizeof(err)), 0);
	child_start(&ch, false);
	assert_int_equal(ram_fill_from_image(ch.pid, &img, o, &st), 0);
	assert_int_equal(st.pages_total, NP0 + NP1);
	assert_int_equal(st.pages_scanned_present, data);
	assert_int_equal(st.pages_written, data);
	assert_int_equal(st.bytes_written, data * ps);
	assert_int_equal(child_cmd(&ch, mod ? 'W' : 'V'), 0);
	child_stop(&ch);
	fr_close(&img);
}

static void dump(struct child *ch, const struct ram_io_opts *o, int create_flags)
{
	struct ram_io_stats st;
	struct fr_image img;
	uint64_t data = count_kind(false, has_data);
	uint64_t zero = count_kind(false, is_zero_written);

	image_layout(&img, ch->pid);
	assert_int_equal(fr_create(&img, dirfd_, img_name, create_flags), 0);
	assert_int_equal(ram_write_image(ch->pid, &img, o, &st), 0);
	assert_int_equal(st.pages_total, NP0 + NP1);
	assert_int_equal(st.pages_written, data);
	assert_int_equal(st.bytes_written, data * ps);
	assert_int_equal(st.pages_scanned_present, data + st.pages_zero);
	/* Read-only pages are zero-page mapped or, on some kernels, real zero pages. */
	assert_true(st.pages_zero >= zero && st.pages_zero <= zero + count_kind(false, is_read));
	check_bitmaps(&img, false);
	assert_int_equal(fr_finish(&img), 0);
	fr_close(&img);
}

static void roundtrip(unsigned workers, bool odirect)
{
	struct ram_io_opts o = { .workers = workers, .odirect = odirect };
	struct child ch;

	child_start(&ch, true);
	dump(&ch, &o, odirect ? O_DIRECT : 0);
	child_stop(&ch);
	check_image(false);
	check_allocation(count_kind(false, has_data));
	check_restore(&o, false);
	unlinkat(dirfd_, img_name, 0);
}

static void test_w1_buffered(void **state)
{
	(void)state;
	roundtrip(1, false);
}

static void test_w2_buffered(void **state)
{
	(void)state;
	roundtrip(2, false);
}

static void test_w1_odirect(void **state)
{
	(void)state;
	roundtrip(1, true);
}

static void test_w2_odirect(void **state)
{
	(void)state;
	roundtrip(2, true);
}

/* Pages of the image's data area in the page cache (mincore of a mapping of it). */
static uint64_t cached_data_pages(void)
{
	struct fr_image img;
	struct stat st;
	uint64_t start, n = 0, i;
	unsigned char *vec;
	char err[256];
	void *map;
	int fd;

	assert_int_equal(fr_open(&img, dirfd_, img_name, err, sizeof(err)), 0);
	start = img.blocks[0].pages_offset;
	fr_close(&img);
	fd = openat(dirfd_, img_name, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	map = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	vec = malloc(st.st_size / ps + 1);
	assert_int_equal(mincore(map, st.st_size, vec), 0);
	for (i = start / ps; i < (uint64_t)st.st_size / ps; i++)
		n += vec[i] & 1;
	free(vec);
	munmap(map, st.st_size);
	close(fd);
	return n;
}

static void drop_cached_image(void)
{
	int fd = openat(dirfd_, img_name, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fdatasync(fd), 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	close(fd);
}

static void read_whole_image(void)
{
	char buf[65536];
	int fd = openat(dirfd_, img_name, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

/*
 * Restore reads a cold image with O_DIRECT and leaves the page cache as it
 * was (a probe that starts readahead read every chunk twice), and reads a
 * cached image from the page cache, correctly either way.
 */
static void test_restore_reads_cold_image_around_page_cache(void **state)
{
	struct ram_io_opts o = { .workers = 2, .odirect = true };
	struct child ch;

	(void)state;
	child_start(&ch, true);
	dump(&ch, &o, O_DIRECT);
	child_stop(&ch);
	drop_cached_image();
	assert_int_equal(cached_data_pages(), 0);
	check_restore(&o, false);
	assert_int_equal(cached_data_pages(), 0);
	read_whole_image();
	assert_true(cached_data_pages() >= count_kind(false, has_data));
	check_restore(&o, false);
	unlinkat(dirfd_, img_name, 0);
}

/* O_DIRECT asked in the options on a buffered image fd; tiny ring. */
static void test_odirect_opt_small_ring(void **state)
{
	struct ram_io_opts o = { .workers = 3, .odirect = true, .queue_depth = 1 };
	struct child ch;

	(void)state;
	child_start(&ch, true);
	dump(&ch, &o, 0);
	child_stop(&ch);
	check_image(false);
	unlinkat(dirfd_, img_name, 0);
}

/* Chunks of chunk_pages pages (a multiple of 64) instead of FR_CHUNK_PAGES. */
static void rechunk(struct fr_image *img, uint32_t chunk_pages)
{
	int blk;

	for (blk = 0; blk < 2; blk++)
		img->blocks[blk].chunk_pages = chunk_pages;
	assert_int_equal(fr_layout(img), 0);
}

/*
 * A live pass after the dump (live_patch): only the chunks with a dirty or
 * dropped page are redone; written, zeroed and dropped pages come out
 * right, dropped ones punched.
 */
static void patch_roundtrip(uint32_t chunk_pages)
{
	struct ram_io_opts o = { .workers = 2 };
	struct live_patch_stats st;
	struct page_range r[3];
	struct fr_image img;
	struct child ch;
	uintptr_t a = (uintptr_t)block_addr(0);
	char path[64];
	int pagemap;

	child_start(&ch, true);
	image_layout(&img, ch.pid);
	rechunk(&img, chunk_pages);
	assert_int_equal(fr_create(&img, dirfd_, img_name, 0), 0);
	assert_int_equal(ram_write_image(ch.pid, &img, &o, NULL), 0);
	assert_int_equal(child_cmd(&ch, 'M'), 0);

	r[0] = (struct page_range){ a + 12 * ps, a + 13 * ps };
	r[1] = (struct page_range){ a, a + 10 * ps };
	r[2] = (struct page_range){ a + 300 * ps, a + 301 * ps };
	snprintf(path, sizeof(path), "/proc/%d/pagemap", ch.pid);
	pagemap = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(pagemap >= 0);
	assert_int_equal(live_patch(ch.pid, &img, r, 3, pagemap, &o, &st), 0);
	close(pagemap);
	child_stop(&ch);
	assert_int_equal(st.chunks, 2);	/* pages 0-12 and page 300 */
	assert_int_equal(st.pages_dropped, 2);	/* 9 zeroed, 12 discarded */
	check_bitmaps(&img, true);
	assert_int_equal(fr_finish(&img), 0);
	fr_close(&img);

	check_image(true);
	check_allocation(count_kind(true, has_data));	/* dropped pages punched */
	check_restore(&o, true);
	unlinkat(dirfd_, img_name, 0);
}

static void test_patch(void **state)
{
	(void)state;
	patch_roundtrip(FR_CHUNK_PAGES);
}

/* The smallest chunks an image may have, through dump, patch and restore. */
static void test_patch_64_page_chunks(void **state)
{
	(void)state;
	patch_roundtrip(64);
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Threads (including io_uring workers) go away asynchronously. */
static bool settles(const char *path, int want)
{
	int i;

	for (i = 0; i < 200; i++) {
		if (count_dir(path) == want)
			return true;
		usleep(10000);
	}
	return false;
}

/* Unreadable populated page: the dump fails, no thread or fd leaks. */
static void test_read_error(void **state)
{
	struct ram_io_opts o = { .workers = 2 };
	struct fr_image img;
	struct child ch;
	int fds, tasks;

	(void)state;
	child_start(&ch, true);
	assert_int_equal(child_cmd(&ch, 'P'), 0);
	image_layout(&img, ch.pid);
	assert_int_equal(fr_create(&img, dirfd_, img_name, 0), 0);
	fds = count_dir("/proc/self/fd");
	tasks = count_dir("/proc/self/task");
	assert_int_equal(ram_write_image(ch.pid, &img, &o, NULL), -EFAULT);
	assert_true(settles("/proc/self/fd", fds));
	assert_true(settles("/proc/self/task", tasks));
	child_stop(&ch);
	fr_close(&img);
	unlinkat(dirfd_, img_name, 0);
}

/* A flipped byte in a present page: restore fails with -EBADMSG. */
static void test_corrupt(void **state)
{
	struct ram_io_opts o = { .workers = 2 };
	struct fr_image img;
	struct child ch;
	uint64_t off;
	char c, err[256];
	int fd;

	(void)state;
	child_start(&ch, true);
	dump(&ch, &o, 0);
	child_stop(&ch);

	assert_int_equal(fr_open(&img, dirfd_, img_name, err, sizeof(err)), 0);
	assert_true(fr_bit_test(img.blocks[0].bitmap, 520));
	off = fr_page_offset(&img.blocks[0], 520) + 100;
	fd = openat(dirfd_, img_name, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x10;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);

	child_start(&ch, false);
	assert_int_equal(ram_fill_from_image(ch.pid, &img, &o, NULL), -EBADMSG);
	child_stop(&ch);
	fr_close(&img);
	unlinkat(dirfd_, img_name, 0);
}

/* ---- incremental dumps: chunks shared with a base image (dump-reuse.c) ---- */

static const char *base_name = "qemu-ram-base.img";
static char xfs_dir[80];	/* XFS scratch mount (reflinks), made by setup as root */

/* Mounting the XFS scratch file system needs root. */
static const char *need_xfs(void)
{
	return xfs_dir[0] ? NULL : "needs root (it mounts an XFS scratch file system for reflinks)";
}

/* Data pages of block blk in chunks [c0, c1). */
static uint64_t data_in_chunks(int blk, uint64_t c0, uint64_t c1, bool mod)
{
	uint64_t p, n = 0, end = c1 * FR_CHUNK_PAGES;

	for (p = c0 * FR_CHUNK_PAGES; p < end && p < block_pages(blk); p++)
		n += has_data(page_kind(blk, p, mod));
	return n;
}

/* Flip one byte of a data page (block 0, chunk 2) of the base image. */
static void damage_base(void)
{
	struct fr_image img;
	char c, err[256];
	uint64_t off;
	int fd;

	assert_int_equal(fr_open(&img, dirfd_, base_name, err, sizeof(err)), 0);
	assert_true(fr_bit_test(img.blocks[0].bitmap, 2 * FR_CHUNK_PAGES + 1));
	off = fr_page_offset(&img.blocks[0], 2 * FR_CHUNK_PAGES + 1) + 7;
	fr_close(&img);
	fd = openat(dirfd_, base_name, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 1;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/*
 * Dump, rename the image to the base, modify chunks 0 and 1 of block 0,
 * dump again with the base. Chunks 2-3 of block 0 and both of block 1 are
 * unchanged: shared on XFS, written on ext4 (no reflink). Then the base is
 * deleted and the new image must be complete on its own.
 */
static void incremental(bool on_xfs, bool damaged, bool verify, bool odirect)
{
	struct ram_io_opts o = { .workers = 2, .base_verify = verify, .odirect = odirect };
	uint64_t same_chunks = 4, changed = data_in_chunks(0, 0, 2, true);
	uint64_t all = count_kind(true, has_data), damaged_pages = data_in_chunks(0, 2, 3, true);
	struct fr_image img, base;
	struct ram_io_stats st;
	int saved_dirfd = dirfd_;
	struct child ch;
	char err[256];

	if (on_xfs)
		dirfd_ = open(xfs_dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	assert_true(dirfd_ >= 0);
	child_start(&ch, true);
	dump(&ch, &o, 0);
	assert_int_equal(renameat(dirfd_, img_name, dirfd_, base_name), 0);
	if (damaged)
		damage_base();
	assert_int_equal(child_cmd(&ch, 'M'), 0);

	assert_int_equal(fr_open(&base, dirfd_, base_name, err, sizeof(err)), 0);
	o.base = &base;
	image_layout(&img, ch.pid);
	assert_int_equal(fr_create(&img, dirfd_, img_name, 0), 0);
	assert_int_equal(ram_write_image(ch.pid, &img, &o, &st), 0);
	child_stop(&ch);
	check_bitmaps(&img, true);
	assert_int_equal(fr_finish(&img), 0);
	fr_close(&img);
	fr_close(&base);
	assert_int_equal(unlinkat(dirfd_, base_name, 0), 0);

	if (!on_xfs) {
		assert_int_equal(st.chunks_reused, 0);
		assert_int_equal(st.pages_written, all);
	} else if (damaged && verify) {
		assert_int_equal(st.chunks_mismatch, 1);
		assert_int_equal(st.chunks_reused, same_chunks - 1);
		assert_int_equal(st.pages_written, changed + damaged_pages);
	} else {
		assert_int_equal(st.chunks_mismatch, 0);
		assert_int_equal(st.chunks_reused, same_chunks);
		assert_int_equal(st.pages_written, changed);
		assert_int_equal(st.bytes_reused, (all - changed) * ps);
	}
	if (damaged && !verify) {
		/* The damage was shared, but checksums come from memory: caught. */
		char *buf = aligned_alloc(4096, FR_CHUNK_PAGES * ps);

		assert_int_equal(fr_open(&img, dirfd_, img_name, err, sizeof(err)), 0);
		assert_int_equal(fr_read_chunk(&img, &img.blocks[0], 2, buf), -EBADMSG);
		free(buf);
		fr_close(&img);
	} else {
		check_image(true);
		check_restore(&o, true);
	}
	unlinkat(dirfd_, img_name, 0);
	if (on_xfs)
		close(dirfd_);
	dirfd_ = saved_dirfd;
}

static void test_incremental_reflink(void **state)
{
	(void)state;
	TH_SKIP_IF(need_xfs());
	incremental(true, false, true, false);
}

/* O_DIRECT writes of the changed chunks beside the clones. */
static void test_incremental_no_verify(void **state)
{
	(void)state;
	TH_SKIP_IF(need_xfs());
	incremental(true, false, false, true);
}

static void test_incremental_damaged_base(void **state)
{
	(void)state;
	TH_SKIP_IF(need_xfs());
	incremental(true, true, true, false);
}

static void test_incremental_damaged_unverified(void **state)
{
	(void)state;
	TH_SKIP_IF(need_xfs());
	incremental(true, true, false, false);
}

static void test_incremental_no_reflink(void **state)
{
	(void)state;
	incremental(false, false, true, false);
}

static int run_script(const char *verb, const char *where)
{
	const char *script = getenv("REFLINK_FS") ? getenv("REFLINK_FS") : "test/reflink-fs.sh";
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "%s %s %s", script, verb, where);
	return system(cmd);
}

static int setup(void **state)
{
	(void)state;
	ps = sysconf(_SC_PAGESIZE);
	base = mmap(NULL, (NP0 + GAP + NP1) * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return -1;
	/* ext4 (not tmpfs) for O_DIRECT and st_blocks. */
	if (th_tmpdir(dir, sizeof(dir), "/var/tmp", "test_writer"))
		return -1;
	dirfd_ = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dirfd_ < 0)
		return -1;
	if (th_need_root())
		return 0;	/* xfs_dir stays empty: need_xfs() */
	snprintf(xfs_dir, sizeof(xfs_dir), "%s.xfs", dir);
	if (run_script("mount", xfs_dir)) {
		fprintf(stderr, "cannot mount an XFS scratch file system at %s\n", xfs_dir);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlinkat(dirfd_, img_name, 0);
	close(dirfd_);
	rmdir(dir);
	if (xfs_dir[0])
		run_script("umount", xfs_dir);
	munmap(base, (NP0 + GAP + NP1) * ps);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_w1_buffered, reap_children),
		cmocka_unit_test_teardown(test_w2_buffered, reap_children),
		cmocka_unit_test_teardown(test_w1_odirect, reap_children),
		cmocka_unit_test_teardown(test_w2_odirect, reap_children),
		cmocka_unit_test_teardown(test_odirect_opt_small_ring, reap_children),
		cmocka_unit_test_teardown(test_restore_reads_cold_image_around_page_cache, reap_children),
		cmocka_unit_test_teardown(test_patch, reap_children),
		cmocka_unit_test_teardown(test_patch_64_page_chunks, reap_children),
		cmocka_unit_test_teardown(test_read_error, reap_children),
		cmocka_unit_test_teardown(test_corrupt, reap_children),
		cmocka_unit_test_teardown(test_incremental_reflink, reap_children),
		cmocka_unit_test_teardown(test_incremental_no_verify, reap_children),
		cmocka_unit_test_teardown(test_incremental_damaged_base, reap_children),
		cmocka_unit_test_teardown(test_incremental_damaged_unverified, reap_children),
		cmocka_unit_test_teardown(test_incremental_no_reflink, reap_children),
	};

	return th_run_group(tests, setup, teardown);
}
