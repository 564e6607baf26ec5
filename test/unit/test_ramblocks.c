// SPDX-License-Identifier: GPL-2.0
/*
 * Parsers of QEMU's monitor output used to place RAM blocks: HMP
 * "info mtree -f" and "gpa2hva", with text as QEMU 7.2 prints it; and
 * TCG's code buffer found in this process's own maps. Needs no root and
 * no QEMU.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "ramblocks.h"

static const char mtree[] =
	"FlatView #0\n"
	" AS \"memory\", root: system\n"
	" Root memory region: system\n"
	"  0000000000000000-00000000000bffff (prio 0, ram): m0\n"
	"  00000000000c0000-00000000000dffff (prio 1, rom): pc.rom\n"
	"  0000000000100000-000000000fffffff (prio 0, ram): m0 @0000000000100000\n"
	"  0000000010000000-000000001fffffff (prio 0, ram): m1 @0000000000200000 KVM\n"
	"  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic\n"
	"\n"
	"FlatView #1\n"
	" AS \"cpu-smm-0\", root: memory\n"
	"  0000000020000000-000000002fffffff (prio 0, ram): m2\n";

static void test_mtree_first_range(void **state)
{
	uint64_t gpa = 1, off = 1;

	(void)state;
	assert_int_equal(ram_parse_mtree(mtree, "m0", &gpa, &off), 0);
	assert_int_equal(gpa, 0);
	assert_int_equal(off, 0);
	assert_int_equal(ram_parse_mtree(mtree, "m1", &gpa, &off), 0);
	assert_int_equal(gpa, 0x10000000);
	assert_int_equal(off, 0x200000);
}

static void test_mtree_not_ram_or_other_view(void **state)
{
	uint64_t gpa, off;

	(void)state;
	assert_int_equal(ram_parse_mtree(mtree, "pc.rom", &gpa, &off), -ENOENT);
	assert_int_equal(ram_parse_mtree(mtree, "m", &gpa, &off), -ENOENT);
	assert_int_equal(ram_parse_mtree(mtree, "m2", &gpa, &off), -ENOENT);
	assert_int_equal(ram_parse_mtree("", "m0", &gpa, &off), -ENOENT);
}

static void test_gpa2hva(void **state)
{
	uint64_t hva = 0;

	(void)state;
	assert_int_equal(ram_parse_gpa2hva("Host virtual address for 0x10000000 (m1) is 0x7fca3bc00000\r\n",
					   &hva), 0);
	assert_int_equal(hva, 0x7fca3bc00000ULL);
	assert_int_equal(ram_parse_gpa2hva("Memory at address 0x10000000 is not RAM\r\n", &hva), -EBADMSG);
	assert_int_equal(ram_parse_gpa2hva("", &hva), -EBADMSG);
}

static void *map(size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

/*
 * A large rwx anonymous mapping is the code buffer; a small one, a rw-
 * one and a name a RAM block already has are not taken.
 */
static void test_tcg_code_from_maps(void **state)
{
	const int rwx = PROT_READ | PROT_WRITE | PROT_EXEC;
	/* small, a guard page (else the two would be one VMA), code */
	char *small = map((72 << 20) + 4096, PROT_NONE), *code = small + (8 << 20) + 4096;
	void *data = map(64 << 20, PROT_READ | PROT_WRITE);
	struct ram_layout l = { .nr = 1 };

	(void)state;
	assert_int_equal(mprotect(small, 8 << 20, rwx), 0);
	assert_int_equal(mprotect(code, 64 << 20, rwx), 0);
	strcpy(l.blocks[0].name, "pc.ram");
	assert_int_equal(ram_locate_tcg_code(getpid(), 64 << 20, &l), 0);
	assert_int_equal(l.nr, 2);
	assert_string_equal(l.blocks[1].name, "tcg-code");
	assert_int_equal(l.blocks[1].host_addr, (uintptr_t)code);
	assert_int_equal(l.blocks[1].length, 64 << 20);
	assert_int_equal(l.blocks[1].backing, FR_BACKING_ANON_PRIVATE);
	assert_true(l.blocks[1].exec);

	l.nr = 1;
	strcpy(l.blocks[0].name, "tcg-code");
	assert_int_equal(ram_locate_tcg_code(getpid(), 64 << 20, &l), 0);
	assert_int_equal(l.nr, 1);

	l.nr = 0;
	assert_int_equal(ram_locate_tcg_code(getpid(), 4 << 20, &l), 0);
	assert_int_equal(l.nr, 2);
	assert_string_equal(l.blocks[1].name, "tcg-code.1");
	munmap(small, (72 << 20) + 4096);
	munmap(data, 64 << 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mtree_first_range),
		cmocka_unit_test(test_mtree_not_ram_or_other_view),
		cmocka_unit_test(test_gpa2hva),
		cmocka_unit_test(test_tcg_code_from_maps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
