// SPDX-License-Identifier: GPL-2.0
/*
 * Live pre-dump (criu-plugin/live.c) against a child that keeps writing:
 * two RAM blocks (24 MiB without THP, 8 MiB of THPs); every data page holds
 * (block, page, generation). The child dirties a spread-out hot set,
 * discards and zeroes pages while the passes run, or does single steps on
 * command. After the freeze (PTRACE_SEIZE + PTRACE_INTERRUPT, as CRIU) and
 * live_final(), every page of the image must equal the child's memory, and
 * a page has its bit iff it is not all zero.
 *
 * Needs ptrace of a child, asynchronous userfaultfd write-protection and
 * PAGEMAP_SCAN (Linux 6.7+); test_unprivileged needs root (its child drops
 * to nobody). LIVE_VERBOSE=1 shows the pass log. What the passes cost is
 * measured by test/bench/bench_live.c (make bench).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/fs.h>
#include <cmocka.h>

#include "helpers.h"
#include "live.h"
#include "live-patch.h"
#include "log.h"
#include "dump-writer.h"
#include "uapi-compat.h"

#define NP0		6144		/* block 0, pages: 24 MiB */
#define NP1		2048		/* block 1: 8 MiB, THP */
#define B1_OFF		(32UL << 20)
#define RESERVE		(B1_OFF + (10UL << 20))
#define HUGE		(2UL << 20)
#define EMPTY_CHUNK	5		/* of block 0: never touched */
#define HOT		512		/* pages the running child rewrites */

enum op { OP_WRITE = 1, OP_DISCARD, OP_ZERO, OP_READ, OP_FAULTS, OP_MODE, OP_PIPE };
enum mode { IDLE, RUN };

/* Shared with the child: one command at a time, acknowledged. */
struct ctl {
	atomic_uint cmd_seq, ack_seq;
	int op, blk, mode;
	uint32_t page, count, gen;
	bool unprivileged;	/* child drops root after mapping */
	long result;
	atomic_ulong writes;	/* by the running child */
};

static long ps;
static char *base;	/* PROT_NONE reservation the child maps its blocks over */
static char dir[64];
static int dirfd_;
static const char *img_name = "qemu-ram-live.img";

static struct {
	pid_t pid;
	struct ctl *ctl;
} ch;

static char *block_addr(int blk)
{
	return base + (blk ? B1_OFF : 0);
}

static uint64_t block_pages(int blk)
{
	return blk ? NP1 : NP0;
}

static void fill_page(char *a, int blk, uint64_t p, uint32_t gen)
{
	uint64_t *w = (uint64_t *)a, v = 0xA5ULL << 56 | (uint64_t)blk << 52 | p << 28 | gen;
	long i;

	for (i = 0; i < ps / 8; i++)
		w[i] = v + i * 0x9E3779B97F4A7C15ULL;
}

static bool is_zero(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- child ---- */

static void child_map(void)
{
	char *b0 = mmap(block_addr(0), NP0 * ps, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	char *b1 = mmap(block_addr(1), NP1 * ps, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	uint64_t p;

	if (b0 == MAP_FAILED || b1 == MAP_FAILED)
		_exit(10);
	madvise(b0, NP0 * ps, MADV_NOHUGEPAGE);
	madvise(b1, NP1 * ps, MADV_HUGEPAGE);
	for (p = 0; p < NP0; p++) {
		if (p / FR_CHUNK_PAGES == EMPTY_CHUNK || p % 8 == 7)
			continue;
		if (p % 16 == 3)
			memset(b0 + p * ps, 0, ps);
		else
			fill_page(b0 + p * ps, 0, p, 0);
	}
	for (p = 0; p < NP1; p++)
		fill_page(b1 + p * ps, 1, p, 0);
}

/* Data pages of block 0 (never zero-written, not in the empty chunk) for OP_FAULTS. */
static uint64_t quiet_page(uint32_t k)
{
	return 8 * k;
}

static long child_faults(uint32_t count, uint32_t gen)
{
	struct rusage a, b;
	uint32_t k;

	getrusage(RUSAGE_SELF, &a);
	for (k = 0; k < count; k++)
		fill_page(block_addr(0) + quiet_page(k) * ps, 0, quiet_page(k), gen);
	getrusage(RUSAGE_SELF, &b);
	return b.ru_minflt - a.ru_minflt;
}

/* The page written by the kernel: read() from a pipe into it. */
static long child_pipe(char *a, int blk, uint32_t page, uint32_t gen)
{
	char *tmp = malloc(ps);
	long ret = -EIO;
	int p[2];

	if (!tmp || pipe(p))
		return -ENOMEM;
	fill_page(tmp, blk, page, gen);
	if (write(p[1], tmp, ps) == ps && read(p[0], a, ps) == ps)
		ret = 0;
	close(p[0]);
	close(p[1]);
	free(tmp);
	return ret;
}

static long child_op(struct ctl *c)
{
	char *a = block_addr(c->blk) + (uint64_t)c->page * ps;
	size_t len = (c->count ? c->count : 1) * ps;

	switch (c->op) {
	case OP_WRITE:
		fill_page(a, c->blk, c->page, c->gen);
		return 0;
	case OP_DISCARD:
		return madvise(a, len, MADV_DONTNEED) ? -errno : 0;
	case OP_ZERO:
		memset(a, 0, ps);
		return 0;
	case OP_READ:
		return *(volatile char *)a;
	case OP_FAULTS:
		return child_faults(c->count, c->gen);
	case OP_MODE:
		return 0;
	case OP_PIPE:
		return child_pipe(a, c->blk, c->page, c->gen);
	}
	return -EINVAL;
}

/*
 * RUN: rewrite a hot set spread over all chunks of block 0 and some THP
 * pages, discard and zero pages now and then; 1 MiB per ~300 us at most.
 */
static void child_step(uint64_t i, uint32_t gen)
{
	uint64_t k = i * 2654435761ULL % HOT, p = (k * 23 + 1) % NP0;
	char *b0 = block_addr(0);

	fill_page(b0 + p * ps, 0, p, gen);
	if (i % 16 == 5)
		madvise(b0 + (k * 37 + 5) % NP0 * ps, ps, MADV_DONTNEED);
	if (i % 29 == 7)
		memset(b0 + (k * 41 + 9) % NP0 * ps, 0, ps);
	if (i % 64 == 11)
		fill_page(block_addr(1) + k * 3 % NP1 * ps, 1, k * 3 % NP1, gen);
}

static __attribute__((noreturn)) void child_main(struct ctl *c)
{
	unsigned seen = 0;
	uint32_t gen = 1000000;
	uint64_t i = 0;
	int mode = IDLE;

	child_map();
	if (c->unprivileged && (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)))
		_exit(13);
	atomic_store(&c->ack_seq, 0);
	for (;;) {
		unsigned seq = atomic_load(&c->cmd_seq);

		if (seq != seen) {
			if (c->op == OP_MODE)
				mode = c->mode;
			c->result = child_op(c);
			seen = seq;
			atomic_store(&c->ack_seq, seq);
		}
		if (mode == IDLE) {
			usleep(100);
			continue;
		}
		child_step(i++, ++gen);
		atomic_fetch_add(&c->writes, 1);
		if (i % 256 == 0)
			usleep(300);
	}
}

/* ---- parent side ---- */

static long cmd(int op, int blk, uint32_t page, uint32_t count, uint32_t gen)
{
	struct ctl *c = ch.ctl;
	unsigned seq = atomic_load(&c->cmd_seq) + 1;
	double t0 = now_ms();

	c->op = op;
	c->blk = blk;
	c->page = page;
	c->count = count;
	c->gen = gen;
	atomic_store(&c->cmd_seq, seq);
	while (atomic_load(&c->ack_seq) != seq) {
		assert_true(now_ms() - t0 < 5000);
		usleep(50);
	}
	return c->result;
}

static void set_mode(int mode)
{
	ch.ctl->mode = mode;
	cmd(OP_MODE, 0, 0, 0, 0);
}

static int start_child(bool unprivileged)
{
	ch.ctl = mmap(NULL, sizeof(*ch.ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ch.ctl == MAP_FAILED)
		return -1;
	memset(ch.ctl, 0, sizeof(*ch.ctl));
	ch.ctl->ack_seq = ~0U;
	ch.ctl->unprivileged = unprivileged;
	ch.pid = fork();
	if (ch.pid < 0)
		return -1;
	if (ch.pid == 0)
		child_main(ch.ctl);
	/* Ready once the blocks are filled. */
	while (atomic_load(&ch.ctl->ack_seq) != 0) {
		if (waitpid(ch.pid, NULL, WNOHANG) == ch.pid) {
			ch.pid = 0;
			return -1;
		}
		usleep(100);
	}
	return 0;
}

static int setup_child(void **state)
{
	(void)state;
	return start_child(false);
}

/* Not root: the child cannot drop to nobody, and test_unprivileged skips. */
static int setup_unprivileged(void **state)
{
	(void)state;
	return start_child(!th_need_root());
}

static void reap(void)
{
	th_reap(ch.pid);
	ch.pid = 0;
}

static int teardown_child(void **state)
{
	(void)state;
	reap();
	munmap(ch.ctl, sizeof(*ch.ctl));
	memset(&ch, 0, sizeof(ch));
	unlinkat(dirfd_, img_name, 0);
	return 0;
}

/* As CRIU: seize, interrupt, wait for the stop. */
static void freeze(void)
{
	int status;

	assert_int_equal(ptrace(PTRACE_SEIZE, ch.pid, NULL, NULL), 0);
	assert_int_equal(ptrace(PTRACE_INTERRUPT, ch.pid, NULL, NULL), 0);
	while (waitpid(ch.pid, &status, __WALL) < 0)
		assert_int_equal(errno, EINTR);
	assert_true(WIFSTOPPED(status));
	assert_int_equal(status >> 16, PTRACE_EVENT_STOP);
}

static void thaw(void)
{
	assert_int_equal(ptrace(PTRACE_DETACH, ch.pid, NULL, NULL), 0);
}

static void image_create(struct fr_image *img)
{
	int blk;

	assert_int_equal(fr_image_init(img, ch.pid, 2), 0);
	for (blk = 0; blk < 2; blk++) {
		struct fr_block *b = &img->blocks[blk];

		strcpy(b->name, blk ? "vga.vram" : "pc.ram");
		b->host_addr = (uintptr_t)block_addr(blk);
		b->length = block_pages(blk) * ps;
		b->page_size = ps;
		b->backing = FR_BACKING_ANON_PRIVATE;
	}
	assert_int_equal(fr_layout(img), 0);
	assert_int_equal(fr_create(img, dirfd_, img_name, 0), 0);
}

static void read_child(uint64_t addr, char *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };

	assert_int_equal(process_vm_readv(ch.pid, &l, 1, &r, 1, 0), (ssize_t)len);
}

/*
 * The child is frozen: finish the image, read it back (checksums) and
 * compare every page with the child's memory.
 */
static void verify_frozen(struct fr_image *img)
{
	size_t bytes = FR_CHUNK_PAGES * ps;
	char *mem = malloc(bytes), *buf = aligned_alloc(4096, bytes), err[256];
	uint64_t c, i, bad = 0, present = 0;
	struct fr_image rd;
	int blk;

	assert_int_equal(fr_finish(img), 0);
	fr_close(img);
	assert_int_equal(fr_open(&rd, dirfd_, img_name, err, sizeof(err)), 0);
	for (blk = 0; blk < 2; blk++) {
		const struct fr_block *b = &rd.blocks[blk];

		for (c = 0; c < b->nr_chunks; c++) {
			uint64_t n = fr_chunk_nr_pages(b, c);

			read_child(b->host_addr + c * bytes, mem, n * ps);
			assert_int_equal(fr_read_chunk(&rd, b, c, buf), 0);
			for (i = 0; i < n; i++) {
				uint64_t p = c * b->chunk_pages + i;
				bool data = !is_zero(mem + i * ps, ps);

				present += fr_bit_test(b->bitmap, p);
				if (fr_bit_test(b->bitmap, p) == data &&
				    !memcmp(buf + i * ps, mem + i * ps, ps))
					continue;
				if (bad++ < 10)
					print_message("block %d page %llu: bit %d, data %d, %s\n", blk,
						      (unsigned long long)p, fr_bit_test(b->bitmap, p), data,
						      memcmp(buf + i * ps, mem + i * ps, ps) ? "differs" : "same");
			}
		}
	}
	print_message("verified %llu present pages\n", (unsigned long long)present);
	fr_close(&rd);
	free(mem);
	free(buf);
	assert_int_equal(bad, 0);
}

/* Page p of block blk in the child holds (blk, p, gen). */
static void assert_page(int blk, uint64_t p, uint32_t gen)
{
	char *want = malloc(ps), *got = malloc(ps);

	fill_page(want, blk, p, gen);
	read_child((uintptr_t)block_addr(blk) + p * ps, got, ps);
	assert_memory_equal(got, want, ps);
	free(want);
	free(got);
}

static bool child_has_uffd(void)
{
	char path[300], link[256];
	struct dirent *de;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", ch.pid);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d))) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/%d/fd/%s", ch.pid, de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		found |= strstr(link, "userfaultfd") != NULL;
	}
	closedir(d);
	return found;
}

/* "uw" (VM_UFFD_WP) in the VmFlags of the VMA at addr. */
static bool vma_uffd_wp(uint64_t addr)
{
	char path[64], line[512];
	bool in = false, uw = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", ch.pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = addr >= s && addr < e;
		else if (in && !strncmp(line, "VmFlags:", 8))
			uw = strstr(line, " uw") != NULL;
	}
	fclose(f);
	return uw;
}

/* Pages of a block whose pagemap entry has the bit: 57 uffd-wp, 63 present. */
static uint64_t pagemap_count(int blk, int bit)
{
	char path[64];
	uint64_t p, n = 0, *e = malloc(block_pages(blk) * 8);
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", ch.pid);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, e, block_pages(blk) * 8, (uintptr_t)block_addr(blk) / ps * 8),
			 (ssize_t)(block_pages(blk) * 8));
	for (p = 0; p < block_pages(blk); p++)
		n += e[p] >> bit & 1;
	close(fd);
	free(e);
	return n;
}

#define PM_UFFD_WP	57
#define PM_PRESENT	63

/* Bytes of block 1 mapped by huge PMDs. */
static uint64_t thp_bytes(void)
{
	struct page_region v[64];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)block_addr(1),
		.end = (uintptr_t)block_addr(1) + NP1 * ps,
		.vec = (uintptr_t)v,
		.vec_len = 64,
		.category_mask = PAGE_IS_HUGE,
		.return_mask = PAGE_IS_HUGE,
	};
	char path[64];
	uint64_t n = 0;
	long i, got;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", ch.pid);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	got = ioctl(fd, PAGEMAP_SCAN, &arg);
	assert_true(got >= 0);
	for (i = 0; i < got; i++)
		n += v[i].end - v[i].start;
	close(fd);
	return n;
}

/* A decimal field of the child's /proc/PID/status (the first number of it). */
static uint64_t status_num(const char *key)
{
	uint64_t v;

	assert_int_equal(th_status_u64(ch.pid, key, 10, &v), 0);
	return v;
}

/* ---- tests ---- */

/* Nothing left in the task but the protection; nothing at all after stop. */
static void test_start_stop(void **state)
{
	struct fr_image img;
	struct live_ctx *lc;
	long before, after;

	(void)state;
	image_create(&img);
	assert_int_equal(live_start(ch.pid, &img, NULL, &lc), 0);
	assert_false(child_has_uffd());
	assert_int_equal(status_num("TracerPid"), 0);
	assert_true(vma_uffd_wp((uintptr_t)block_addr(0)));
	assert_true(vma_uffd_wp((uintptr_t)block_addr(1)));
	/* Populated pages are protected, untouched ones carry no marker. */
	assert_int_equal(pagemap_count(0, PM_UFFD_WP), pagemap_count(0, PM_PRESENT));
	assert_true(pagemap_count(0, PM_UFFD_WP) < NP0);
	assert_int_equal(pagemap_count(1, PM_UFFD_WP), NP1);

	/* Async WP: each first write to a protected page is one minor fault. */
	before = cmd(OP_FAULTS, 0, 0, 100, 1);
	assert_true(before >= 100);
	assert_true(cmd(OP_FAULTS, 0, 0, 100, 2) <= 5);
	assert_int_equal(live_pass(lc, NULL), 0);
	/* A scan protects the written pages again. */
	assert_int_equal(live_pass(lc, NULL), 0);
	assert_true(cmd(OP_FAULTS, 0, 0, 100, 3) >= 100);
	assert_int_equal(live_pass(lc, NULL), 0);

	live_stop(lc);
	assert_false(vma_uffd_wp((uintptr_t)block_addr(0)));
	assert_false(vma_uffd_wp((uintptr_t)block_addr(1)));
	assert_int_equal(pagemap_count(0, PM_UFFD_WP), 0);
	assert_int_equal(pagemap_count(1, PM_UFFD_WP), 0);
	after = cmd(OP_FAULTS, 0, 0, 100, 4);
	assert_true(after <= 5);
	fr_close(&img);
}

/* The child keeps writing through the passes and up to the freeze. */
static void test_converge_final(void **state)
{
	/* A target no pass meets while the child writes: more than one pass. */
	struct live_opts o = { .downtime_ms = 1, .max_passes = 4, .max_ms = 4000 };
	struct live_pass_stat st;
	struct fr_image img;
	struct live_ctx *lc;
	unsigned long w0;

	(void)state;
	image_create(&img);
	set_mode(RUN);
	assert_int_equal(live_start(ch.pid, &img, NULL, &lc), 0);
	w0 = atomic_load(&ch.ctl->writes);
	assert_int_equal(live_converge(lc, &o), 0);
	assert_true(live_passes(lc, &st) >= 2);
	usleep(20000);
	freeze();
	assert_true(atomic_load(&ch.ctl->writes) > w0);	/* it did write meanwhile */
	assert_int_equal(live_final(lc, &st), 0);
	assert_true(st.pages > 0);
	live_stop(lc);
	verify_frozen(&img);
	thaw();
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/* As above with SIGALRM every 500 us and no SA_RESTART (CRIU's timer). */
static void test_signals(void **state)
{
	struct itimerval on = { { 0, 500 }, { 0, 500 } }, off = {};
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct live_opts o = { .downtime_ms = 5, .max_passes = 4 };
	struct live_pass_stat st;
	struct fr_image img;
	struct live_ctx *lc;

	(void)state;
	image_create(&img);
	set_mode(RUN);
	alarms = 0;
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	assert_int_equal(setitimer(ITIMER_REAL, &on, NULL), 0);
	assert_int_equal(live_start(ch.pid, &img, NULL, &lc), 0);
	assert_int_equal(live_converge(lc, &o), 0);
	freeze();
	assert_int_equal(live_final(lc, &st), 0);
	live_stop(lc);
	assert_int_equal(setitimer(ITIMER_REAL, &off, NULL), 0);
	assert_int_equal(sigaction(SIGALRM, &old, NULL), 0);
	assert_true(alarms > 10);
	verify_frozen(&img);
	thaw();
}

/* Passes shrink to nothing once the child stops writing. */
static void test_shrink(void **state)
{
	struct live_pass_stat st[6];
	struct fr_image img;
	struct live_ctx *lc;
	int i;

	(void)state;
	image_create(&img);
	set_mode(RUN);
	assert_int_equal(live_start(ch.pid, &img, NULL, &lc), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(live_pass(lc, &st[i]), 0);
		usleep(20000);
	}
	assert_true(st[1].pages > 0 && st[2].pages > 0);
	assert_true(st[2].pages < st[0].pages);
	set_mode(IDLE);
	assert_int_equal(live_pass(lc, &st[3]), 0);
	assert_int_equal(live_pass(lc, &st[4]), 0);
	assert_int_equal(st[4].pages, 0);
	assert_int_equal(st[4].written, 0);
	/* Nothing dirty: converges at once. */
	assert_int_equal(live_converge(lc, NULL), 0);
	assert_int_equal(live_passes(lc, &st[5]), 6);
	assert_int_equal(st[5].pages, 0);
	live_stop(lc);
	fr_close(&img);
}

/*
 * The subtle cases, one step at a time with the child idle:
 * A discarded after its copy, B discarded then rewritten, T one byte in a
 * THP; after the last live pass: C written, K written by the kernel (read()
 * from a pipe), D discarded (in a chunk with nothing else going on), Z
 * zeroed, R discarded then read, a whole 2 MiB of block 0 discarded (its
 * page table may go away), and a whole THP of block 1 discarded and one
 * page of it written again (may fault in a THP).
 */
enum { P_A = 100, P_B = 200, P_C = 300, P_Z = 400, P_R = 500, P_K = 600, P_D = 1600, P_T = 5,
       P_BIG = 2048, P_THP = 1024 /* of block 1 */ };

static void test_subtle(void **state)
{
	struct live_pass_stat st;
	struct fr_image img;
	struct live_ctx *lc;
	uint64_t thp;
	int i;

	(void)state;
	image_create(&img);
	thp = thp_bytes();
	if (!thp)
		print_message("no THP in block 1: the THP split is not checked\n");
	assert_int_equal(live_start(ch.pid, &img, NULL, &lc), 0);
	assert_int_equal(live_pass(lc, &st), 0);
	assert_true(fr_bit_test(img.blocks[0].bitmap, P_A));
	assert_true(fr_bit_test(img.blocks[0].bitmap, P_D));

	assert_int_equal(cmd(OP_DISCARD, 0, P_A, 1, 0), 0);
	assert_int_equal(cmd(OP_DISCARD, 0, P_B, 1, 0), 0);
	cmd(OP_WRITE, 0, P_B, 1, 7);
	cmd(OP_WRITE, 1, P_T, 1, 8);
	assert_int_equal(live_pass(lc, &st), 0);
	/* B and T written, A dropped. */
	assert_int_equal(st.pages, 2);	/* T: 4 KiB, not its THP */
	assert_int_equal(st.dropped, 1);
	assert_false(fr_bit_test(img.blocks[0].bitmap, P_A));
	if (thp)
		assert_true(thp_bytes() <= thp - HUGE);	/* split by the write */

	cmd(OP_WRITE, 0, P_C, 1, 9);
	assert_int_equal(cmd(OP_PIPE, 0, P_K, 1, 11), 0);
	assert_int_equal(cmd(OP_DISCARD, 0, P_D, 1, 0), 0);
	cmd(OP_ZERO, 0, P_Z, 1, 0);
	assert_int_equal(cmd(OP_DISCARD, 0, P_R, 1, 0), 0);
	cmd(OP_READ, 0, P_R, 1, 0);
	assert_int_equal(cmd(OP_DISCARD, 0, P_BIG, HUGE / ps, 0), 0);
	thp = thp_bytes();
	assert_int_equal(cmd(OP_DISCARD, 1, P_THP, HUGE / ps, 0), 0);
	cmd(OP_WRITE, 1, P_THP + 6, 1, 10);
	freeze();
	assert_int_equal(live_final(lc, &st), 0);
	assert_false(fr_bit_test(img.blocks[0].bitmap, P_A));
	assert_false(fr_bit_test(img.blocks[0].bitmap, P_D));
	assert_false(fr_bit_test(img.blocks[0].bitmap, P_Z));
	assert_false(fr_bit_test(img.blocks[0].bitmap, P_R));
	for (i = 0; i < (int)(HUGE / ps); i++)
		assert_false(fr_bit_test(img.blocks[0].bitmap, P_BIG + i));
	assert_true(fr_bit_test(img.blocks[0].bitmap, P_B));
	assert_true(fr_bit_test(img.blocks[0].bitmap, P_C));
	assert_page(0, P_B, 7);
	assert_page(0, P_C, 9);
	assert_page(0, P_K, 11);
	assert_true(fr_bit_test(img.blocks[0].bitmap, P_K));
	assert_page(1, P_T, 8);
	assert_page(1, P_THP + 6, 10);
	assert_true(fr_bit_test(img.blocks[1].bitmap, P_THP + 6));
	assert_false(fr_bit_test(img.blocks[1].bitmap, P_THP + 7));
	live_stop(lc);
	verify_frozen(&img);
	thaw();
}

/*
 * live_patch() with nothing reported: a page discarded after its copy
 * loses its bit; its chunk's checksum is redone from the remaining pages.
 */
static void test_sweep(void **state)
{
	struct live_patch_stats ps_;
	struct fr_image img;
	struct live_ctx *lc;
	char path[64];
	int fd;

	(void)state;
	image_create(&img);
	assert_int_equal(live_start(ch.pid, &img, NULL, &lc), 0);
	assert_int_equal(live_pass(lc, NULL), 0);
	assert_int_equal(cmd(OP_DISCARD, 0, P_D, 1, 0), 0);
	freeze();
	snprintf(path, sizeof(path), "/proc/%d/pagemap", ch.pid);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(fr_bit_test(img.blocks[0].bitmap, P_D));
	assert_int_equal(live_patch(ch.pid, &img, NULL, 0, fd, NULL, &ps_), 0);
	assert_int_equal(ps_.chunks, 1);
	assert_int_equal(ps_.pages_dropped, 1);
	assert_int_equal(ps_.pages_written, 0);
	assert_false(fr_bit_test(img.blocks[0].bitmap, P_D));
	close(fd);
	live_stop(lc);
	verify_frozen(&img);
	thaw();
}

/*
 * QEMU not root: the injected userfaultfd() fails with EPERM and live
 * falls back to a user-mode-only one; writes by the kernel are tracked.
 */
static void test_unprivileged(void **state)
{
	struct live_pass_stat st;
	struct fr_image img;
	struct live_ctx *lc;

	(void)state;
	TH_SKIP_IF(th_need_root());
	image_create(&img);
	assert_int_equal(status_num("Uid"), 65534);
	assert_int_equal(live_start(ch.pid, &img, NULL, &lc), 0);
	assert_int_equal(live_pass(lc, NULL), 0);
	assert_int_equal(cmd(OP_PIPE, 0, P_K, 1, 12), 0);
	cmd(OP_WRITE, 0, P_C, 1, 13);
	assert_int_equal(live_pass(lc, &st), 0);
	assert_int_equal(st.pages, 2);
	assert_int_equal(cmd(OP_PIPE, 0, P_B, 1, 14), 0);
	freeze();
	assert_int_equal(live_final(lc, &st), 0);
	assert_int_equal(st.pages, 1);
	live_stop(lc);
	assert_page(0, P_B, 14);
	assert_page(0, P_K, 12);
	verify_frozen(&img);
	thaw();
}

static void test_child_died(void **state)
{
	struct fr_image img;
	struct live_ctx *lc;

	(void)state;
	image_create(&img);
	assert_int_equal(live_start(ch.pid, &img, NULL, &lc), 0);
	assert_int_equal(live_pass(lc, NULL), 0);
	reap();
	assert_true(live_pass(lc, NULL) < 0);
	live_stop(lc);
	live_stop(NULL);
	fr_close(&img);
}

static void test_unsupported(void **state)
{
	struct fr_image img;
	struct live_ctx *lc = (void *)1;

	(void)state;
	image_create(&img);
	img.blocks[1].backing = FR_BACKING_HUGETLB;
	assert_int_equal(live_start(ch.pid, &img, NULL, &lc), -EOPNOTSUPP);
	assert_null(lc);
	assert_false(child_has_uffd());
	fr_close(&img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_start_stop, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_converge_final, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_signals, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_shrink, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_subtle, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_sweep, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_unprivileged, setup_unprivileged, teardown_child),
		cmocka_unit_test_setup_teardown(test_child_died, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_unsupported, setup_child, teardown_child),
	};
	int ret;

	th_skip_program_if(th_need_ptrace());
	th_skip_program_if(th_need_uffd_wp_async());
	th_skip_program_if(th_need_pagemap_scan());
	ps = sysconf(_SC_PAGESIZE);
	/* 2 MiB aligned, so block 1 can hold THPs. */
	base = mmap(NULL, RESERVE + HUGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return 1;
	base = (char *)(((uintptr_t)base + HUGE - 1) & ~(HUGE - 1));
	/* tmpfs: unlinking a fragmented image on ext4 mounted with discard takes seconds. */
	if (th_tmpdir(dir, sizeof(dir), NULL, "test_live"))
		return 1;
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
	if (getenv("LIVE_VERBOSE"))
		qp_log_set_level(LOG_INFO);
	ret = th_run_group(tests, NULL, NULL);
	close(dirfd_);
	rmdir(dir);
	return ret;
}
