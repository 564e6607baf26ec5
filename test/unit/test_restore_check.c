// SPDX-License-Identifier: GPL-2.0
/*
 * restore_match_block() against /proc/PID/maps texts, and
 * restore_check_criu_pages() against pagemap images built here the way CRIU
 * writes them. Pure logic: needs no root.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "criu-pagemap.pb-c.h"
#include "fixedram.h"
#include "helpers.h"
#include "restore-check.h"

#define GIB (1ULL << 30)
#define BASE 0x7f0000000000ULL

/* QEMU's usual neighbourhood of a 1 GiB private RAM block. */
#define MAPS_OK                                                                  \
	"7effffe00000-7f0000000000 rwxp 00000000 00:00 0 \n"                     \
	"7f0000000000-7f0040000000 rw-p 00000000 00:00 0 \n"                     \
	"7f0040000000-7f0040001000 ---p 00000000 00:00 0 \n"                     \
	"7f0040001000-7f0040100000 r--p 00000000 fe:01 1234 /usr/bin/qemu\n"

static struct fr_block block(uint64_t addr, uint64_t len, enum fr_backing backing)
{
	struct fr_block b = { .host_addr = addr, .length = len, .page_size = 4096, .backing = backing };

	snprintf(b.name, sizeof(b.name), "pc.ram");
	return b;
}

static void expect_reason(const char *reason, const char *why)
{
	if (why && !strstr(reason, why)) {
		print_error("reason '%s' lacks '%s'\n", reason, why);
		fail();
	}
}

static void expect_match(const char *maps, struct fr_block b, int ret, const char *why)
{
	char buf[512] = "";

	assert_int_equal(restore_match_block(maps, &b, buf, sizeof(buf)), ret);
	expect_reason(buf, why);
}

static void test_exact_block_fits(void **state)
{
	(void)state;
	expect_match(MAPS_OK, block(BASE, GIB, FR_BACKING_ANON_PRIVATE), 0, NULL);
}

/* madvise() on part of the block splits its VMA; the pieces still fit. */
static void test_split_block_fits(void **state)
{
	(void)state;
	expect_match("7f0000000000-7f0010000000 rw-p 00000000 00:00 0 \n"
		     "7f0010000000-7f0040000000 rw-p 00000000 00:00 0 \n",
		     block(BASE, GIB, FR_BACKING_ANON_PRIVATE), 0, NULL);
}

static void test_shifted_block(void **state)
{
	(void)state;
	expect_match(MAPS_OK, block(BASE + 4096, GIB, FR_BACKING_ANON_PRIVATE), -ENOENT,
		     "starts earlier");
}

static void test_shorter_block(void **state)
{
	(void)state;
	expect_match(MAPS_OK, block(BASE, GIB / 2, FR_BACKING_ANON_PRIVATE), -ENOENT,
		     "ends inside the mapping");
}

static void test_longer_block(void **state)
{
	(void)state;
	expect_match(MAPS_OK, block(BASE, 2 * GIB, FR_BACKING_ANON_PRIVATE), -ENOENT, "---p");
}

/* TCG's code buffer is rwx: never guest RAM. */
static void test_code_buffer(void **state)
{
	(void)state;
	expect_match(MAPS_OK, block(0x7effffe00000ULL, 2 << 20, FR_BACKING_ANON_PRIVATE), -ENOENT,
		     "rwxp");
}

/* ...but it is a block of its own, marked executable: then only rwx fits. */
static void test_code_buffer_block(void **state)
{
	struct fr_block code = block(0x7effffe00000ULL, 2 << 20, FR_BACKING_ANON_PRIVATE);
	struct fr_block ram = block(BASE, GIB, FR_BACKING_ANON_PRIVATE);

	(void)state;
	code.exec = true;
	expect_match(MAPS_OK, code, 0, NULL);
	ram.exec = true;
	expect_match(MAPS_OK, ram, -ENOENT, "is rw-p anonymous, not executable anon-private");
}

static void test_file_mapping(void **state)
{
	(void)state;
	expect_match("7f0000000000-7f0040000000 rw-p 00000000 fe:01 99 /var/lib/x\n",
		     block(BASE, GIB, FR_BACKING_ANON_PRIVATE), -ENOENT, "rw-p with a file");
}

static void test_backing_mismatch(void **state)
{
	(void)state;
	expect_match("7f0000000000-7f0040000000 rw-s 00000000 00:01 77 /memfd:mem0 (deleted)\n",
		     block(BASE, GIB, FR_BACKING_ANON_PRIVATE), -ENOENT, "rw-s with a file, not anon-private");
	expect_match("7f0000000000-7f0040000000 rw-s 00000000 00:01 77 /memfd:mem0 (deleted)\n",
		     block(BASE, GIB, FR_BACKING_SHARED_FD), 0, NULL);
	expect_match(MAPS_OK, block(BASE, GIB, FR_BACKING_SHARED_FD), -ENOENT, "rw-p anonymous");
}

static void test_hole_in_block(void **state)
{
	(void)state;
	expect_match("7f0000000000-7f0010000000 rw-p 00000000 00:00 0 \n"
		     "7f0010001000-7f0040000000 rw-p 00000000 00:00 0 \n",
		     block(BASE, GIB, FR_BACKING_ANON_PRIVATE), -ENOENT, "is missing");
}

static void test_nothing_mapped(void **state)
{
	(void)state;
	expect_match("7e0000000000-7e0000001000 rw-p 00000000 00:00 0 \n",
		     block(BASE, GIB, FR_BACKING_ANON_PRIVATE), -ENOENT, "nothing is mapped");
	expect_match("", block(BASE, GIB, FR_BACKING_ANON_PRIVATE), -ENOENT, "nothing is mapped");
}

/* ---- CRIU's pagemap ---- */

static int dirfd_ = -1;
static char dir_[64];

static void put_le32(FILE *f, uint32_t v)
{
	uint8_t b[4] = { v, v >> 8, v >> 16, v >> 24 };

	assert_int_equal(fwrite(b, 1, 4, f), 4);
}

static void put_msg(FILE *f, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n + 1);

	protobuf_c_message_pack(m, buf);
	put_le32(f, n);
	assert_int_equal(fwrite(buf, 1, n, f), n);
	free(buf);
}

/* pagemap-<pid>.img with the given (vaddr, nr_pages) entries; cut bytes off the end. */
static void write_pagemap(uint32_t pid, const uint64_t (*ent)[2], int n, int cut)
{
	CriuPagemapHead head = CRIU_PAGEMAP_HEAD__INIT;
	char path[128];
	FILE *f;
	long len;

	snprintf(path, sizeof(path), "%s/pagemap-%u.img", dir_, pid);
	f = fopen(path, "w+");
	assert_non_null(f);
	put_le32(f, 0x54564319);
	put_le32(f, 0x56084025);
	head.pages_id = 1;
	put_msg(f, &head.base);
	for (int i = 0; i < n; i++) {
		CriuPagemapEntry e = CRIU_PAGEMAP_ENTRY__INIT;

		e.vaddr = ent[i][0];
		e.nr_pages = ent[i][1];
		e.has_flags = true;
		e.flags = 2;
		put_msg(f, &e.base);
	}
	len = ftell(f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(truncate(path, len - cut), 0);
}

/* pc.ram at BASE and TCG's code buffer of 2 MiB right below it. */
static struct fr_image one_block_image(uint32_t pid)
{
	static struct fr_block b[2];
	struct fr_image img = { .fd = -1, .meta_fd = -1, .pid = pid, .nr_blocks = 2, .blocks = b };

	b[0] = block(BASE, GIB, FR_BACKING_ANON_PRIVATE);
	b[1] = block(BASE - (2 << 20), 2 << 20, FR_BACKING_ANON_PRIVATE);
	snprintf(b[1].name, sizeof(b[1].name), "tcg-code");
	b[1].exec = true;
	return img;
}

static int setup_dir(void **state)
{
	(void)state;
	if (th_tmpdir(dir_, sizeof(dir_), "/tmp", "test_restore_check"))
		return -1;
	dirfd_ = open(dir_, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return dirfd_ < 0;
}

static int teardown_dir(void **state)
{
	(void)state;
	close(dirfd_);
	return th_rmtree(dir_);
}

static void expect_pages(uint32_t pid, int ret, const char *why)
{
	struct fr_image img = one_block_image(pid);
	char buf[512] = "";

	assert_int_equal(restore_check_criu_pages(dirfd_, &img, buf, sizeof(buf)), ret);
	expect_reason(buf, why);
}

/* CRIU stored QEMU's other memory only: the image fits. */
static void test_pagemap_outside_blocks(void **state)
{
	static const uint64_t ent[][2] = { { 0x55550000, 10 }, { BASE - (4 << 20), 1 }, { BASE + GIB, 4 } };

	(void)state;
	write_pagemap(10, ent, 3, 0);
	expect_pages(10, 0, NULL);
}

/*
 * CRIU's vdso probe faults in the first page of the code buffer and stores
 * it; that page alone, and only of an executable block, is allowed.
 */
static void test_pagemap_vdso_probe_page(void **state)
{
	static const uint64_t probe[][2] = { { BASE - (4 << 20), 1 }, { BASE - (2 << 20), 1 } };
	static const uint64_t two[][2] = { { BASE - (2 << 20), 2 } };
	static const uint64_t second[][2] = { { BASE - (2 << 20) + 4096, 1 } };
	static const uint64_t ram[][2] = { { BASE, 1 } };

	(void)state;
	write_pagemap(15, probe, 2, 0);
	expect_pages(15, 0, NULL);
	write_pagemap(16, two, 1, 0);
	expect_pages(16, -EEXIST, "inside RAM block tcg-code");
	write_pagemap(17, second, 1, 0);
	expect_pages(17, -EEXIST, "inside RAM block tcg-code");
	write_pagemap(18, ram, 1, 0);
	expect_pages(18, -EEXIST, "inside RAM block pc.ram");
}

/* A dump without the plugin: CRIU has the guest's pages itself. */
static void test_pagemap_inside_block(void **state)
{
	static const uint64_t ent[][2] = { { 0x55550000, 10 }, { BASE + GIB - 8192, 1 } };

	(void)state;
	write_pagemap(11, ent, 2, 0);
	expect_pages(11, -EEXIST, "inside RAM block pc.ram");
}

static void test_pagemap_straddles_block(void **state)
{
	static const uint64_t ent[][2] = { { BASE - 4096, 2 } };

	(void)state;
	/* The code buffer's last page and pc.ram's first. */
	write_pagemap(12, ent, 1, 0);
	expect_pages(12, -EEXIST, "not of one dump");
}

static void test_pagemap_damaged(void **state)
{
	static const uint64_t ent[][2] = { { 0x55550000, 10 } };

	(void)state;
	write_pagemap(13, ent, 1, 3);
	expect_pages(13, -EBADMSG, "truncated entry");
	expect_pages(14, -ENOENT, "cannot read CRIU's pagemap-14.img");
}

int main(void)
{
	const struct CMUnitTest maps_tests[] = {
		cmocka_unit_test(test_exact_block_fits),
		cmocka_unit_test(test_split_block_fits),
		cmocka_unit_test(test_shifted_block),
		cmocka_unit_test(test_shorter_block),
		cmocka_unit_test(test_longer_block),
		cmocka_unit_test(test_code_buffer),
		cmocka_unit_test(test_code_buffer_block),
		cmocka_unit_test(test_file_mapping),
		cmocka_unit_test(test_backing_mismatch),
		cmocka_unit_test(test_hole_in_block),
		cmocka_unit_test(test_nothing_mapped),
	};
	const struct CMUnitTest pagemap_tests[] = {
		cmocka_unit_test(test_pagemap_outside_blocks),
		cmocka_unit_test(test_pagemap_vdso_probe_page),
		cmocka_unit_test(test_pagemap_inside_block),
		cmocka_unit_test(test_pagemap_straddles_block),
		cmocka_unit_test(test_pagemap_damaged),
	};

	return cmocka_run_group_tests(maps_tests, NULL, NULL) |
	       cmocka_run_group_tests(pagemap_tests, setup_dir, teardown_dir);
}
