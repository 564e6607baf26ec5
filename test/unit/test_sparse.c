// SPDX-License-Identifier: GPL-2.0
/*
 * sparse_scan(): a child maps regions and leaves pages written, zero-page
 * mapped (read of a never-written page, UFFDIO_ZEROPAGE), dropped
 * (MADV_DONTNEED) and untouched; the parent scans the child's pagemap.
 *
 * Some kernels (this project's CI VM among them) allocate a real page on a
 * read fault instead of mapping the zero page; the test learns from the
 * PFNs which one happened. UFFDIO_ZEROPAGE always maps the zero page.
 */
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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>
#include <cmocka.h>

#include "helpers.h"
#include "proc.h"
#include "sparse.h"

#define A_PAGES	64
#define B_PAGES	2048	/* every other page written: more regions than one ioctl returns */

static long psize;

enum page_state { UNTOUCHED, WRITTEN, READ_ZERO, UFFD_ZERO, DROPPED };

/* Region A layout, page by page. */
static enum page_state a_state(int i)
{
	switch (i) {
	case 0: case 1: case 10: case 40: case 63:
		return WRITTEN;
	case 2: case 25:
		return DROPPED;
	case 5: case 6: case 30: case 31: case 32: case 33:
		return READ_ZERO;
	case 50: case 51: case 52:
		return UFFD_ZERO;
	}
	if (i >= 20 && i < 30)
		return WRITTEN;
	return UNTOUCHED;
}

struct child {
	pid_t pid;
	int pagemap;
	int go;		/* write end: closing it lets the child exit */
	uint64_t a, b;
	bool uffd_ok;	/* UFFD_ZERO pages are mapped */
	const char *no_pfns;	/* why zero[] cannot be known, or NULL */
	bool zero[A_PAGES];	/* page maps the zero page */
};

/* Map the zero page at [addr, addr + len) with userfaultfd. */
static bool uffd_zeropage(uint64_t addr, uint64_t len)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .range = { addr, len }, .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_zeropage zp = { .range = { addr, len } };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = !ioctl(fd, UFFDIO_API, &api) && !ioctl(fd, UFFDIO_REGISTER, &reg) &&
	     !ioctl(fd, UFFDIO_ZEROPAGE, &zp);
	close(fd);
	return ok;
}

static void child_main(int ready, int go)
{
	volatile char *a, *b;
	uint64_t addr[3];
	char c;
	int i;

	a = mmap(NULL, A_PAGES * psize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	b = mmap(NULL, B_PAGES * psize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED || b == MAP_FAILED)
		_exit(2);
	/* THP would populate whole 2 MiB extents: keep the layout exact. */
	madvise((void *)a, A_PAGES * psize, MADV_NOHUGEPAGE);
	madvise((void *)b, B_PAGES * psize, MADV_NOHUGEPAGE);

	for (i = 0; i < A_PAGES; i++) {
		switch (a_state(i)) {
		case WRITTEN:
		case DROPPED:
			a[i * psize + 7] = 1;
			break;
		case READ_ZERO:
			c = a[i * psize];
			(void)c;
			break;
		case UFFD_ZERO:
		case UNTOUCHED:
			break;
		}
	}
	for (i = 0; i < A_PAGES; i++)
		if (a_state(i) == DROPPED)
			madvise((void *)(a + i * psize), psize, MADV_DONTNEED);
	for (i = 0; i < B_PAGES; i += 2)
		b[i * psize] = 1;

	addr[0] = (uintptr_t)a;
	addr[1] = (uintptr_t)b;
	addr[2] = uffd_zeropage(addr[0] + 50 * psize, 3 * psize);
	if (write(ready, addr, sizeof(addr)) != sizeof(addr))
		_exit(3);
	while (read(go, &c, 1) > 0)
		;
	_exit(0);
}

static uint64_t pfn_of(int pagemap, uint64_t addr)
{
	uint64_t e = 0;

	if (proc_pagemap_read(pagemap, addr, psize, &e, 1) != 1)
		return 0;
	return e & ((1ULL << 55) - 1);
}

/*
 * A page maps the zero page when it shares its PFN with another page that
 * never was written.
 */
static void find_zero_pages(struct child *ch)
{
	uint64_t zero_pfn = 0, pfn;
	int i;

	if (ch->uffd_ok)
		zero_pfn = pfn_of(ch->pagemap, ch->a + 50 * psize);
	else if (pfn_of(ch->pagemap, ch->a + 5 * psize) == pfn_of(ch->pagemap, ch->a + 6 * psize))
		zero_pfn = pfn_of(ch->pagemap, ch->a + 5 * psize);
	for (i = 0; i < A_PAGES; i++) {
		pfn = pfn_of(ch->pagemap, ch->a + i * psize);
		ch->zero[i] = zero_pfn && pfn == zero_pfn;
	}
	/* Page 0 is written: a PFN of 0 there means pagemap hides PFNs from us. */
	if (!pfn_of(ch->pagemap, ch->a))
		ch->no_pfns = "needs CAP_SYS_ADMIN: pagemap hides the PFNs that tell the zero page "
			      "from data";
	if (!ch->zero[5])
		print_message("note: read faults map no zero page on this kernel\n");
	if (!ch->uffd_ok)
		print_message("note: no userfaultfd, UFFDIO_ZEROPAGE pages untested\n");
}

/* Pages sparse_scan() must report: written, and read-only ones that got a real page. */
static bool expect_data(const struct child *ch, int i)
{
	switch (a_state(i)) {
	case WRITTEN:
		return true;
	case READ_ZERO:
		return !ch->zero[i];
	default:
		return false;
	}
}

/* Pages the pagemap fallback reports: everything mapped. */
static bool expect_mapped(const struct child *ch, int i)
{
	switch (a_state(i)) {
	case WRITTEN:
	case READ_ZERO:
		return true;
	case UFFD_ZERO:
		return ch->uffd_ok;
	default:
		return false;
	}
}

static int child_start(struct child *ch)
{
	int ready[2], go[2];
	uint64_t addr[3];

	if (pipe(ready) || pipe(go))
		return -1;
	ch->pid = fork();
	if (ch->pid < 0)
		return -1;
	if (ch->pid == 0) {
		close(ready[0]);
		close(go[1]);
		child_main(ready[1], go[0]);
	}
	close(ready[1]);
	close(go[0]);
	ch->go = go[1];
	if (read(ready[0], addr, sizeof(addr)) != sizeof(addr)) {
		close(ready[0]);
		return -1;
	}
	close(ready[0]);
	ch->a = addr[0];
	ch->b = addr[1];
	ch->uffd_ok = addr[2];
	ch->pagemap = proc_pagemap_open(ch->pid);
	if (ch->pagemap < 0)
		return -1;
	find_zero_pages(ch);
	return 0;
}

static int child_stop(struct child *ch)
{
	int status = -1;

	if (ch->pagemap >= 0)
		close(ch->pagemap);
	close(ch->go);
	while (waitpid(ch->pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

static int setup(void **state)
{
	struct child *ch = calloc(1, sizeof(*ch));

	psize = sysconf(_SC_PAGESIZE);
	if (!ch || child_start(ch))
		return -1;
	*state = ch;
	return 0;
}

static int teardown(void **state)
{
	struct child *ch = *state;
	int status = child_stop(ch);

	free(ch);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Expand ranges to one flag per page of [base, base + n pages). */
static void expand(const struct page_range *r, size_t nr, uint64_t base, int n, bool *out)
{
	size_t i;
	uint64_t a;

	memset(out, 0, n * sizeof(*out));
	for (i = 0; i < nr; i++) {
		assert_true(r[i].start < r[i].end);
		assert_true(r[i].start >= base && r[i].end <= base + n * psize);
		if (i)	/* sorted, merged */
			assert_true(r[i - 1].end < r[i].start);
		for (a = r[i].start; a < r[i].end; a += psize)
			out[(a - base) / psize] = true;
	}
}

static void test_scan_exact(void **state)
{
	struct child *ch = *state;
	struct page_range *r;
	bool got[A_PAGES];
	size_t nr;
	int i;

	TH_SKIP_IF(ch->no_pfns);
	assert_int_equal(sparse_scan(ch->pagemap, ch->a, ch->a + A_PAGES * psize, &r, &nr), 0);
	expand(r, nr, ch->a, A_PAGES, got);
	for (i = 0; i < A_PAGES; i++) {
		if (got[i] != expect_data(ch, i))
			print_error("page %d: got %d, state %d\n", i, got[i], a_state(i));
		assert_int_equal(got[i], expect_data(ch, i));
	}
	if (ch->zero[5] && ch->zero[30]) {
		/* 0-1, 10, 20-24, 26-29, 40, 63 */
		assert_int_equal(nr, 6);
		assert_int_equal(sparse_bytes(r, nr), 14 * psize);
	}
	free(r);
}

static void test_scan_subrange(void **state)
{
	struct child *ch = *state;
	struct page_range *r;
	size_t nr;

	/* Pages 21..27: 21-24 and 26-27. */
	assert_int_equal(sparse_scan(ch->pagemap, ch->a + 21 * psize, ch->a + 28 * psize, &r, &nr), 0);
	assert_int_equal(nr, 2);
	assert_int_equal(r[0].start, ch->a + 21 * psize);
	assert_int_equal(r[0].end, ch->a + 25 * psize);
	assert_int_equal(r[1].start, ch->a + 26 * psize);
	assert_int_equal(r[1].end, ch->a + 28 * psize);
	free(r);
}

static void test_scan_many_regions(void **state)
{
	struct child *ch = *state;
	struct page_range *r;
	size_t nr, i;

	assert_int_equal(sparse_scan(ch->pagemap, ch->b, ch->b + B_PAGES * psize, &r, &nr), 0);
	assert_int_equal(nr, B_PAGES / 2);
	for (i = 0; i < nr; i++) {
		assert_int_equal(r[i].start, ch->b + 2 * i * psize);
		assert_int_equal(r[i].end, ch->b + (2 * i + 1) * psize);
	}
	free(r);
}

static void test_scan_empty_and_bad(void **state)
{
	struct child *ch = *state;
	struct page_range *r = (void *)1;
	size_t nr = 1;

	/* Untouched pages 41..49 and zero pages 50..52. */
	assert_int_equal(sparse_scan(ch->pagemap, ch->a + 41 * psize, ch->a + 53 * psize, &r, &nr), 0);
	assert_int_equal(nr, 0);
	assert_null(r);
	assert_int_equal(sparse_scan(ch->pagemap, ch->a, ch->a, &r, &nr), 0);
	assert_int_equal(nr, 0);
	assert_int_equal(sparse_scan(ch->pagemap, ch->a + 1, ch->a + psize, &r, &nr), -EINVAL);
	assert_int_equal(sparse_scan_read(ch->pagemap, ch->a + 1, ch->a + psize, &r, &nr), -EINVAL);
	assert_int_equal(sparse_scan(-1, ch->a, ch->a + psize, &r, &nr), -EBADF);
	assert_int_equal(nr, 0);
}

/* Without the ioctl the zero page counts as present. */
static void test_fallback(void **state)
{
	struct child *ch = *state;
	struct page_range *r;
	bool got[A_PAGES];
	size_t nr, i;
	int p;

	assert_int_equal(sparse_scan_read(ch->pagemap, ch->a, ch->a + A_PAGES * psize, &r, &nr), 0);
	expand(r, nr, ch->a, A_PAGES, got);
	for (p = 0; p < A_PAGES; p++)
		assert_int_equal(got[p], expect_mapped(ch, p));
	free(r);

	assert_int_equal(sparse_scan_read(ch->pagemap, ch->b, ch->b + B_PAGES * psize, &r, &nr), 0);
	assert_int_equal(nr, B_PAGES / 2);
	for (i = 0; i < nr; i++)
		assert_int_equal(r[i].start, ch->b + 2 * i * psize);
	free(r);
}

/*
 * A file that rejects the ioctl (ENOTTY) but holds pagemap entries: sparse_scan()
 * must fall back to reading them. Bit 63 present, bit 62 swapped.
 */
static void test_fallback_auto(void **state)
{
	uint64_t ent[32] = {};
	struct page_range *r;
	size_t nr;
	int fd;

	(void)state;
	ent[0] = 1ULL << 63;
	ent[1] = 1ULL << 63 | 0x1234;
	ent[4] = 1ULL << 63;
	ent[5] = 1ULL << 62;
	ent[31] = 1ULL << 62;
	fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	assert_true(fd >= 0);
	/* Entries for pages 16..47 at offset 16 * 8. */
	assert_int_equal(pwrite(fd, ent, sizeof(ent), 16 * sizeof(ent[0])), sizeof(ent));
	assert_int_equal(sparse_scan(fd, 16 * psize, 48 * psize, &r, &nr), 0);
	close(fd);
	assert_int_equal(nr, 3);
	assert_int_equal(r[0].start, 16 * psize);
	assert_int_equal(r[0].end, 18 * psize);
	assert_int_equal(r[1].start, 20 * psize);
	assert_int_equal(r[1].end, 22 * psize);
	assert_int_equal(r[2].start, 47 * psize);
	assert_int_equal(r[2].end, 48 * psize);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_exact),
		cmocka_unit_test(test_scan_subrange),
		cmocka_unit_test(test_scan_many_regions),
		cmocka_unit_test(test_scan_empty_and_bad),
		cmocka_unit_test(test_fallback),
		cmocka_unit_test(test_fallback_auto),
	};

	return th_run_group(tests, setup, teardown);
}
