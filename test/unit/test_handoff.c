// SPDX-License-Identifier: GPL-2.0
/*
 * The handoff and the guardian against a real child process ("QEMU"): it
 * owns three RAM blocks (block 0 in two VMAs: MADV_HUGEPAGE, then
 * MADV_HUGEPAGE + MADV_DONTFORK; block 1 MADV_DONTDUMP; block 2 a sealed
 * memfd mapped MAP_SHARED, as memory-backend-memfd share=on) with data
 * pages, written zero pages, read-only-touched and untouched pages, and in
 * block 2 pages written through the memfd only (in the file, not mapped:
 * pagemap cannot see them). The test keeps its own fd of the memfd to look
 * at the file itself. The test is
 * its tracer like CRIU (PTRACE_SEIZE + PTRACE_INTERRUPT), writes the image
 * with the dump writer, hands the ranges over, and then plays each ending:
 * give back, done + killed, done but alive (timeout, or faulting), CRIU
 * killed at several points, the guardian killed during the handoff, a task
 * without CAP_SYS_PTRACE, and the guest discarding memory meanwhile. The
 * child checks its memory itself, byte for byte.
 *
 * The guardian is this very binary (main() runs guardian_main() when
 * called with --ctl), unless $CRIU_QEMU_GUARDIAN names another one. The
 * test is a child subreaper, so the guardian becomes its child and its
 * exit status can be checked.
 *
 * The tests with a child need root (ptrace, a userfaultfd for another task,
 * map_files) and skip without it; the guardian's bookkeeping tests run
 * anywhere. What the handoff costs is measured by test/bench/bench_handoff.
 * TEST_HANDOFF_VERBOSE=1 shows debug logs and the guardian's log;
 * TEST_HANDOFF_DIR: image directory (/dev/shm, else /tmp).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/capability.h>
#include <cmocka.h>

#include "fixedram.h"
#include "guardian.h"
#include "guardian-map.h"
#include "handoff.h"
#include "handoff-spawn.h"
#include "handoff-vma.h"
#include "log.h"
#include "proc.h"
#include "rsys.h"
#include "dump-writer.h"
#include "helpers.h"

#define MIB		(1UL << 20)
#define B0_LEN		(16 * MIB)
#define B0_SPLIT	(12 * MIB)	/* MADV_DONTFORK from here on: a second VMA */
#define B1_OFF		(18 * MIB)
#define B1_LEN		(4 * MIB)
#define B2_OFF		(24 * MIB)	/* the shared block */
#define B2_LEN		(4 * MIB)
#define RESERVE		(30 * MIB)
#define DISCARD_OFF	(2 * MIB + 5 * 4096UL)	/* inside block 0, not THP aligned */
#define DISCARD_LEN	(1 * MIB)
#define DISCARD2_OFF	(1 * MIB + 3 * 4096UL)	/* inside block 2 */
#define DISCARD2_LEN	(512 * 1024UL)
#define SEG_SHARED	3		/* block 0: segments 0 and 1, block 1: 2, block 2: 3 */
#define REPLY_MS	20000

enum kind { DATA, ZERO_WRITTEN, UNTOUCHED, READ, FD_WRITTEN };

struct report {
	char cmd;
	uint64_t bad;
	uint64_t first_bad;	/* address */
	uint64_t pages;
	double ms;
	double touch_us_avg, touch_us_max;	/* 'v': first touch of each sampled page */
};

static uint64_t ps;
static char *base;		/* RESERVE bytes, 2 MiB aligned, PROT_NONE in the parent */
static char dir[256];
static int dirfd_ = -1;
static const char *img_name = "qemu-ram-test.img";
static struct th_child ch;
static struct fr_image img;
static int mfd = -1;		/* the shared block's memfd: the child maps it, we look at it */
static bool no_prepare;		/* write the image without handoff_shared_prepare() */
static bool memfd_unsealed;	/* no F_SEAL_SEAL: a test may seal it later */

/* ---------------------------------------------------------------- layout */

static int nr_blocks(void)
{
	return 3;
}

static bool block_shared(int blk)
{
	return blk == 2;
}

static int shared_block(void)
{
	return 2;
}

static char *block_addr(int blk)
{
	static const uint64_t off[] = { 0, B1_OFF, B2_OFF };

	return base + off[blk];
}

static uint64_t block_len(int blk)
{
	static const uint64_t len[] = { B0_LEN, B1_LEN, B2_LEN };

	return len[blk];
}

static enum kind page_kind(int blk, uint64_t p)
{
	uint32_t h = (uint32_t)((blk * 1000003u + p) * 2654435761u) >> 24;

	if (h < 130)
		return DATA;
	if (h < 160)
		return block_shared(blk) ? FD_WRITTEN : DATA;
	if (h < 190)
		return ZERO_WRITTEN;
	if (h < 230)
		return UNTOUCHED;
	return READ;
}

static uint64_t word(int blk, uint64_t p, uint64_t i)
{
	return ((uint64_t)blk << 60) ^ (p << 24) ^ (i * 0x9e3779b97f4a7c15ULL) ^ 0x5a5a;
}

/* ---------------------------------------------------------------- child */

static bool discarded;

static bool in_discard(int blk, uint64_t p)
{
	uint64_t off = p * ps;

	if (!discarded)
		return false;
	if (blk == 0)
		return off + ps > DISCARD_OFF && off < DISCARD_OFF + DISCARD_LEN;
	return blk == 2 && off + ps > DISCARD2_OFF && off < DISCARD2_OFF + DISCARD2_LEN;
}

/* What page p of block blk must hold. */
static bool page_has_data(int blk, uint64_t p)
{
	enum kind k = page_kind(blk, p);

	return (k == DATA || k == FD_WRITTEN) && !in_discard(blk, p);
}

static void child_map(void)
{
	int blk;

	for (blk = 0; blk < nr_blocks(); blk++) {
		void *want = block_addr(blk), *got;

		if (block_shared(blk))
			got = mmap(want, block_len(blk), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, mfd, 0);
		else
			got = mmap(want, block_len(blk), PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (got == MAP_FAILED)
			_exit(10);
		/* As QEMU does for all guest RAM. */
		if (block_shared(blk) && (madvise(want, block_len(blk), MADV_HUGEPAGE) ||
					  madvise(want, block_len(blk), MADV_DONTFORK)))
			_exit(11);
	}
	if (madvise(base, B0_LEN, MADV_HUGEPAGE) || madvise(base + B0_SPLIT, B0_LEN - B0_SPLIT, MADV_DONTFORK) ||
	    madvise(block_addr(1), B1_LEN, MADV_DONTDUMP))
		_exit(11);
}

/* A page written through the memfd only: in the file, not in our page tables. */
static void fill_through_fd(int blk, uint64_t p)
{
	uint64_t buf[512], i;

	for (i = 0; i < ps / 8; i++)
		buf[i] = word(blk, p, i);
	if (pwrite(mfd, buf, ps, p * ps) != (ssize_t)ps)
		_exit(17);
}

static void child_fill(void)
{
	volatile char sink;
	uint64_t p, i;
	int blk;

	for (blk = 0; blk < nr_blocks(); blk++) {
		for (p = 0; p < block_len(blk) / ps; p++) {
			uint64_t *w = (uint64_t *)(block_addr(blk) + p * ps);

			switch (page_kind(blk, p)) {
			case DATA:
				for (i = 0; i < ps / 8; i++)
					w[i] = word(blk, p, i);
				break;
			case FD_WRITTEN:
				fill_through_fd(blk, p);
				break;
			case ZERO_WRITTEN:
				memset(w, 0, ps);
				break;
			case READ:
				sink = *(volatile char *)w;
				(void)sink;
				break;
			case UNTOUCHED:
				break;
			}
		}
	}
}

/* Pages wrong, first wrong address; sample: every stride-th page, timing its first touch. */
static void child_verify(struct report *rp, uint64_t stride)
{
	double t0 = now_ms(), t, sum = 0;
	uint64_t p, i, n;
	int blk;

	for (blk = nr_blocks() - 1; blk >= 0; blk--) {
		n = block_len(blk) / ps;
		for (p = n; p-- > 0;) {	/* backwards: against the give-back's direction */
			volatile uint64_t *w = (uint64_t *)(block_addr(blk) + p * ps);
			bool data = page_has_data(blk, p);

			if (p % stride)
				continue;
			t = now_ms();
			(void)w[0];
			t = now_ms() - t;
			sum += t;
			if (t * 1000 > rp->touch_us_max)
				rp->touch_us_max = t * 1000;
			for (i = 0; i < ps / 8; i++) {
				if (w[i] != (data ? word(blk, p, i) : 0)) {
					if (!rp->bad++)
						rp->first_bad = (uintptr_t)&w[i];
					break;
				}
			}
			rp->pages++;
		}
	}
	rp->ms = now_ms() - t0;
	rp->touch_us_avg = rp->pages ? sum * 1000 / rp->pages : 0;
}

static void child_discard(void)
{
	volatile char sink;
	uint64_t off;

	/* Fault half of it in first: those pages must not come back either. */
	for (off = DISCARD_OFF; off < DISCARD_OFF + DISCARD_LEN / 2; off += ps)
		sink = base[off];
	(void)sink;
	if (madvise(base + DISCARD_OFF, DISCARD_LEN, MADV_DONTNEED))
		_exit(12);
	/* QEMU's discard of a shared block: punch the file, then drop the mapping. */
	for (off = DISCARD2_OFF; off < DISCARD2_OFF + DISCARD2_LEN / 2; off += ps)
		sink = block_addr(2)[off];
	if (fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, DISCARD2_OFF, DISCARD2_LEN) ||
	    madvise(block_addr(2) + DISCARD2_OFF, DISCARD2_LEN, MADV_DONTNEED))
		_exit(12);
	discarded = true;
}

static bool child_unprivileged;	/* child drops CAP_SYS_PTRACE: no userfaultfd() for it */

static void drop_cap_sys_ptrace(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		_exit(15);
	data[CAP_SYS_PTRACE / 32].effective &= ~(1u << (CAP_SYS_PTRACE % 32));
	data[CAP_SYS_PTRACE / 32].permitted &= ~(1u << (CAP_SYS_PTRACE % 32));
	if (syscall(SYS_capset, &hdr, data))
		_exit(16);
}

static void child_main(int cmd, int rep, void *arg)
{
	struct report rp;
	char c;

	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (child_unprivileged)
		drop_cap_sys_ptrace();
	child_map();
	child_fill();
	memset(&rp, 0, sizeof(rp));
	rp.cmd = 'R';
	if (write(rep, &rp, sizeof(rp)) != sizeof(rp))
		_exit(13);
	for (;;) {
		if (read(cmd, &c, 1) != 1)
			_exit(0);
		memset(&rp, 0, sizeof(rp));
		rp.cmd = c;
		if (c == 'V' || c == 'v')
			child_verify(&rp, c == 'V' ? 1 : 8);
		else if (c == 'D')
			child_discard();
		if (write(rep, &rp, sizeof(rp)) != sizeof(rp))
			_exit(14);
	}
}

/* ---------------------------------------------------------------- parent */

static int get_report(struct report *rp)
{
	return th_child_recv(&ch, rp, sizeof(*rp), REPLY_MS);
}

static void command(char c, struct report *rp)
{
	assert_int_equal(th_child_send(&ch, &c, 1), 0);
	assert_int_equal(get_report(rp), 0);
	assert_int_equal(rp->cmd, c);
	if (c == 'D')
		discarded = true;	/* our copy of the flag, for verify_memfd() */
}

/* The guardian's log for the task pid, whole: a failure's first witness. */
static void print_guardian_log(pid_t pid)
{
	char name[64], line[512];
	FILE *f;
	int fd;

	snprintf(name, sizeof(name), "guardian-%d.log", pid);
	fd = openat(dirfd_, name, O_RDONLY | O_CLOEXEC);
	f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		print_message("    (no guardian log %s)\n", name);
		if (fd >= 0)
			close(fd);
		return;
	}
	while (fgets(line, sizeof(line), f))
		print_message("    %s", line);
	fclose(f);
}

static void show_log(pid_t pid)
{
	if (getenv("TEST_HANDOFF_VERBOSE"))
		print_guardian_log(pid);
}

static void verify_child(const char *when)
{
	struct report rp;

	command('V', &rp);
	if (rp.bad) {
		print_message("%s: %" PRIu64 " bad pages, first at %#" PRIx64 "\n", when, rp.bad, rp.first_bad);
		print_guardian_log(ch.pid);
	}
	assert_int_equal(rp.bad, 0);
}

/* Like QEMU's memory-backend-memfd (seal=on): grow/shrink sealed, writable. */
static int make_memfd(void)
{
	int blk = shared_block();

	if (blk < 0)
		return 0;
	mfd = memfd_create("memory-backend-memfd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0 || ftruncate(mfd, block_len(blk)) ||
	    fcntl(mfd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | (memfd_unsealed ? 0 : F_SEAL_SEAL)))
		return -1;
	return 0;
}

static int setup_child(void **state)
{
	struct report rp;

	(void)state;
	discarded = false;
	no_prepare = false;
	if (make_memfd() || th_child_start(&ch, child_main, NULL))
		return -1;
	if (get_report(&rp) || rp.cmd != 'R')
		return -1;
	return 0;
}

static int setup_child_unprivileged(void **state)
{
	int ret;

	child_unprivileged = true;
	ret = setup_child(state);
	child_unprivileged = false;
	return ret;
}

static int setup_child_unsealed(void **state)
{
	int ret;

	memfd_unsealed = true;
	ret = setup_child(state);
	memfd_unsealed = false;
	return ret;
}

static int teardown_child(void **state)
{
	(void)state;
	th_child_kill(&ch);
	if (mfd >= 0)
		close(mfd);
	mfd = -1;
	fr_close(&img);
	unlinkat(dirfd_, img_name, 0);
	return 0;
}

/* CRIU's way: seize, interrupt, wait for the PTRACE_EVENT_STOP. */
static void seize(pid_t pid)
{
	int status;

	assert_int_equal(ptrace(PTRACE_SEIZE, pid, NULL, (void *)PTRACE_O_TRACESYSGOOD), 0);
	assert_int_equal(ptrace(PTRACE_INTERRUPT, pid, NULL, NULL), 0);
	for (;;) {
		assert_int_equal(waitpid(pid, &status, __WALL), pid);
		assert_true(WIFSTOPPED(status));
		if (status >> 16 == PTRACE_EVENT_STOP)
			return;
		assert_int_equal(ptrace(PTRACE_CONT, pid, NULL, (void *)(long)WSTOPSIG(status)), 0);
	}
}

static void release(pid_t pid)
{
	assert_int_equal(ptrace(PTRACE_DETACH, pid, NULL, NULL), 0);
}

/* As CRIU's CHECKPOINT_DEVICES: drop_unsupported() (prepare shared blocks), then the writer. */
static void write_image(pid_t pid)
{
	static const char *const names[] = { "pc.ram", "vga.vram", "ram0" };
	struct ram_io_stats st;
	int blk;

	memset(&img, 0, sizeof(img));
	assert_int_equal(fr_image_init(&img, pid, nr_blocks()), 0);
	for (blk = 0; blk < nr_blocks(); blk++) {
		struct fr_block *b = &img.blocks[blk];

		strcpy(b->name, names[blk]);
		b->host_addr = (uintptr_t)block_addr(blk);
		b->length = block_len(blk);
		b->page_size = ps;
		b->backing = block_shared(blk) ? FR_BACKING_SHARED_FD : FR_BACKING_ANON_PRIVATE;
		if (block_shared(blk) && !no_prepare)
			assert_int_equal(handoff_shared_prepare(pid, b->name, b->host_addr, b->length, ps), 0);
	}
	assert_int_equal(fr_layout(&img), 0);
	assert_int_equal(fr_create(&img, dirfd_, img_name, 0), 0);
	assert_int_equal(ram_write_image(pid, &img, NULL, &st), 0);
	assert_int_equal(fr_finish(&img), 0);
}

static uint64_t present_pages(pid_t pid, uint64_t start, uint64_t len)
{
	uint64_t e, n = 0, off;
	int fd = proc_pagemap_open(pid);

	assert_true(fd >= 0);
	for (off = 0; off < len; off += ps) {
		assert_int_equal(proc_pagemap_read(fd, start + off, ps, &e, 1), 1);
		if (e & (PROC_PM_PRESENT | PROC_PM_SWAPPED))
			n++;
	}
	close(fd);
	return n;
}

static bool vmflag(pid_t pid, const void *addr, const char *flag)
{
	char flags[256];

	assert_int_equal(handoff_vmflags(pid, (uintptr_t)addr, flags, sizeof(flags)), 0);
	return proc_vmflag(flags, flag);
}

static void check_flags(pid_t pid, bool registered)
{
	assert_true(vmflag(pid, base, "hg"));
	assert_false(vmflag(pid, base, "dc"));
	assert_true(vmflag(pid, base + B0_SPLIT, "hg"));
	assert_true(vmflag(pid, base + B0_SPLIT, "dc"));
	assert_true(vmflag(pid, block_addr(1), "dd"));
	/* The shared block keeps its very VMA: still shared, flags untouched. */
	assert_true(vmflag(pid, block_addr(2), "sh"));
	assert_true(vmflag(pid, block_addr(2), "hg"));
	assert_true(vmflag(pid, block_addr(2), "dc"));
	assert_int_equal(vmflag(pid, base, "um"), registered);
	assert_int_equal(vmflag(pid, base + B0_SPLIT, "um"), registered);
	assert_int_equal(vmflag(pid, block_addr(1), "um"), registered);
	assert_int_equal(vmflag(pid, block_addr(2), "um"), registered);
}

/* Pages of the memfd that hold data (resident or swapped), by SEEK_DATA/SEEK_HOLE. */
static uint64_t memfd_data_pages(void)
{
	off_t off = 0, d, h;
	uint64_t n = 0;

	for (;;) {
		d = lseek(mfd, off, SEEK_DATA);
		if (d < 0) {
			assert_int_equal(errno, ENXIO);
			return n;
		}
		h = lseek(mfd, d, SEEK_HOLE);
		assert_true(h > d);
		n += (h - d) / ps;
		off = h;
	}
}

/* The punch emptied the file itself, not only our mapping of it. */
static void check_memfd_empty(void)
{
	struct stat st;

	if (mfd < 0)
		return;
	assert_int_equal(fstat(mfd, &st), 0);
	assert_int_equal(memfd_data_pages(), 0);
	assert_int_equal(st.st_blocks, 0);
}

/* After give-back: the file, read through our fd, holds exactly what it must. */
static void verify_memfd(const char *when)
{
	int blk = shared_block();
	uint64_t buf[512], p, i, bad = 0;

	if (blk < 0)
		return;
	for (p = 0; p < block_len(blk) / ps; p++) {
		bool data = page_has_data(blk, p);

		assert_int_equal(pread(mfd, buf, ps, p * ps), ps);
		for (i = 0; i < ps / 8; i++) {
			if (buf[i] != (data ? word(blk, p, i) : 0)) {
				bad++;
				break;
			}
		}
	}
	if (bad)
		print_message("%s: %" PRIu64 " bad pages in the memfd\n", when, bad);
	assert_int_equal(bad, 0);
}

static void check_empty(pid_t pid)
{
	int blk;

	for (blk = 0; blk < nr_blocks(); blk++)
		assert_int_equal(present_pages(pid, (uintptr_t)block_addr(blk), block_len(blk)), 0);
	check_memfd_empty();
}

static struct handoff_opts default_opts(void)
{
	/* Verbose: the guardian logs every event too. */
	return (struct handoff_opts){
		.log_dirfd = dirfd_,
		.log_level = getenv("TEST_HANDOFF_VERBOSE") ? LOG_DEBUG : 0,
	};
}

/* As CRIU's CHECKPOINT_DEVICES: seize, write the image, hand over. */
static struct handoff *dump(const struct handoff_opts *o, double *ms)
{
	struct handoff *h = NULL;
	double t;

	seize(ch.pid);
	write_image(ch.pid);
	t = now_ms();
	assert_int_equal(handoff_start_opts(ch.pid, &img, img_name, o, &h), 0);
	if (ms)
		*ms = now_ms() - t;
	assert_non_null(h);
	assert_true(handoff_guardian_pid(h) > 0);
	check_empty(ch.pid);
	return h;
}

/* Exit status of pid within timeout_ms, or -1; *ms: how long it took. */
static int wait_exit(pid_t pid, int timeout_ms, double *ms)
{
	double t0 = now_ms();
	int status;
	pid_t ret;

	for (;;) {
		ret = waitpid(pid, &status, WNOHANG);
		if (ret == pid)
			break;
		if (ret < 0 || now_ms() - t0 > timeout_ms)
			return -1;
		usleep(1000);
	}
	if (ms)
		*ms = now_ms() - t0;
	return status;
}

/* Another child of ours than the QEMU child: the guardian of a dead "CRIU". */
static pid_t find_guardian(void)
{
	char path[64], buf[256];
	pid_t pid = 0, p;
	FILE *f;
	int off = 0, n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f))
		while (sscanf(buf + off, "%d%n", &p, &n) == 1) {
			off += n;
			if (p != ch.pid)
				pid = p;
		}
	fclose(f);
	return pid;
}

static int check_guardian_fd(int fd, const char *link, void *ours)
{
	assert_string_not_equal(link, ours);
	if (fd == 1)
		assert_string_equal(link, "/dev/null");
	return 0;
}

/* The guardian holds no fd of ours but what the handoff passed; stdout is /dev/null. */
static void check_guardian_fds(pid_t g, int leaked)
{
	char ours[256];

	assert_true(proc_fd_link(PROC_SELF, leaked, ours, sizeof(ours)) > 0);
	assert_int_equal(proc_fd_for_each(g, check_guardian_fd, ours), 0);
}

/* ---------------------------------------------------------------- tests */

static void test_give_back(void **state)
{
	struct handoff_opts o = default_opts();
	struct report rp;
	struct handoff *h;
	pid_t g;

	int leaked = dup(ch.cmd);	/* not O_CLOEXEC, as CRIU has plenty */

	(void)state;
	TH_SKIP_IF(th_need_root());
	h = dump(&o, NULL);
	g = handoff_guardian_pid(h);
	check_guardian_fds(g, leaked);
	close(leaked);
	if (getenv("TEST_HANDOFF_VERBOSE")) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "grep -A25 ^%lx /proc/%d/smaps | grep -v kB", (unsigned long)base, ch.pid);
		if (system(cmd))
			print_message("no smaps\n");
	}
	check_flags(ch.pid, true);
	release(ch.pid);

	/* Held, no verdict yet: every first touch is a fault served from the image. */
	command('v', &rp);
	assert_int_equal(rp.bad, 0);

	/* Give back while the child reads everything backwards. */
	handoff_finish(h, HANDOFF_GIVE_BACK);
	verify_child("during give-back");
	assert_int_equal(wait_exit(g, 5000, NULL), 0);
	verify_child("after give-back");
	verify_memfd("after give-back");
	check_flags(ch.pid, false);
	show_log(ch.pid);
}

static const char *need_dev_userfaultfd(void)
{
	if (access("/dev/userfaultfd", R_OK | W_OK))
		return "no /dev/userfaultfd to open (Linux 6.1+, readable and writable)";
	return NULL;
}

/* QEMU without CAP_SYS_PTRACE: its uffd comes from our /dev/userfaultfd. */
static void test_unprivileged_task(void **state)
{
	struct handoff_opts o = default_opts();
	struct handoff *h;
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	TH_SKIP_IF(need_dev_userfaultfd());
	h = dump(&o, NULL);
	g = handoff_guardian_pid(h);
	check_flags(ch.pid, true);
	handoff_finish(h, HANDOFF_GIVE_BACK);
	release(ch.pid);
	verify_child("unprivileged task");
	assert_int_equal(wait_exit(g, 5000, NULL), 0);
	check_flags(ch.pid, false);
}

static void test_done_killed(void **state)
{
	struct handoff_opts o = default_opts();
	struct handoff *h;
	double ms;
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	h = dump(&o, NULL);
	g = handoff_guardian_pid(h);
	handoff_finish(h, HANDOFF_DONE);
	th_reap(ch.pid);
	ch.pid = 0;
	assert_int_equal(wait_exit(g, 2000, &ms), 0);
	print_message("  guardian exited %.1f ms after the task was killed\n", ms);
}

/* A dump whose verdict is "done" (the task is to be killed): its guardian. */
static pid_t dump_done(unsigned done_timeout_ms)
{
	struct handoff_opts o = default_opts();
	struct handoff *h;
	pid_t g;

	o.done_timeout_ms = done_timeout_ms;
	h = dump(&o, NULL);
	g = handoff_guardian_pid(h);
	handoff_finish(h, HANDOFF_DONE);
	return g;
}

/* A done verdict, but the task stays traced and alive: the timeout decides. */
static void test_done_but_alive(void **state)
{
	double ms;
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	g = dump_done(300);
	assert_int_equal(wait_exit(g, 5000, &ms), 0);
	assert_true(ms >= 290);
	release(ch.pid);
	verify_child("after the done timeout");
	check_flags(ch.pid, false);
}

/*
 * A done verdict, then CRIU lets go of the task (a failed post-dump script,
 * or --leave-running where the plugin could not tell): the guardian sees it
 * untraced and gives back at once, long before the timeout.
 */
static void test_done_but_released(void **state)
{
	double ms;
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	g = dump_done(10000);
	release(ch.pid);
	assert_int_equal(wait_exit(g, 5000, &ms), 0);
	assert_true(ms < 2000);
	verify_child("after give-back on release");
	check_flags(ch.pid, false);
}

static void test_done_then_fault(void **state)
{
	double ms;
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	g = dump_done(10000);
	release(ch.pid);
	verify_child("running after a done verdict");
	assert_int_equal(wait_exit(g, 5000, &ms), 0);
	verify_child("after give-back");
	show_log(ch.pid);
}

static void test_discard(void **state)
{
	struct handoff_opts o = default_opts();
	struct handoff *h;
	struct report rp;
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	h = dump(&o, NULL);
	g = handoff_guardian_pid(h);
	release(ch.pid);
	command('D', &rp);	/* balloon: MADV_DONTNEED (shared: punch + DONTNEED) while held */
	handoff_finish(h, HANDOFF_GIVE_BACK);
	assert_int_equal(wait_exit(g, 5000, NULL), 0);
	verify_child("discarded before give-back");
	verify_memfd("discarded before give-back");
}

static void test_discard_during_give_back(void **state)
{
	struct handoff_opts o = default_opts();
	struct handoff *h;
	struct report rp;
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	h = dump(&o, NULL);
	g = handoff_guardian_pid(h);
	handoff_finish(h, HANDOFF_GIVE_BACK);
	release(ch.pid);
	command('D', &rp);
	verify_child("discarded during give-back");
	assert_int_equal(wait_exit(g, 5000, NULL), 0);
	verify_child("discarded during give-back, after");
	verify_memfd("discarded during give-back, after");
}

/* ---------------------------------------------------- CRIU killed */

struct kill_at {
	enum handoff_step step;
	unsigned seg;
};

/* Leave the task with its own registers (as between two injections), then die. */
static void die_hook(void *arg, struct rsys *r, enum handoff_step step, unsigned seg)
{
	struct kill_at *k = arg;

	if (step != k->step || seg != k->seg)
		return;
	rsys_detach(r);
	raise(SIGKILL);
}

/* A forked "CRIU" traces the child, hands over, and is SIGKILLed; returns the guardian. */
static pid_t criu_dies(struct kill_at *k)
{
	pid_t criu, g;
	int status;

	criu = fork();
	assert_true(criu >= 0);
	if (criu == 0) {
		struct handoff_opts o = default_opts();
		struct handoff *h;

		o.hook = k ? die_hook : NULL;
		o.hook_arg = k;
		seize(ch.pid);
		write_image(ch.pid);
		handoff_start_opts(ch.pid, &img, img_name, &o, &h);
		raise(SIGKILL);
	}
	assert_int_equal(waitpid(criu, &status, 0), criu);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	g = find_guardian();
	assert_true(g > 0);
	return g;
}

static void test_criu_dies_after_handoff(void **state)
{
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	g = criu_dies(NULL);
	verify_child("CRIU died after the handoff");
	assert_int_equal(wait_exit(g, 5000, NULL), 0);
	check_flags(ch.pid, false);
	verify_child("CRIU died after the handoff, given back");
	verify_memfd("CRIU died after the handoff, given back");
}

static void test_criu_dies_midway(void **state)
{
	struct kill_at k = { HANDOFF_STEP_PLACED, 0 };	/* 1 of 3 ranges placed */
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	g = criu_dies(&k);
	verify_child("CRIU died midway");
	assert_int_equal(wait_exit(g, 5000, NULL), 0);
	assert_false(vmflag(ch.pid, base, "um"));
	verify_child("CRIU died midway, given back");
	show_log(ch.pid);
}

static void test_criu_dies_holding_uffd(void **state)
{
	struct kill_at k = { HANDOFF_STEP_UFFD_HELD, 0 };	/* nothing placed yet */
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	g = criu_dies(&k);
	assert_int_equal(wait_exit(g, 5000, NULL), 0);
	verify_child("CRIU died before any range");
}

static void test_criu_dies_before_mremap(void **state)
{
	struct kill_at k = { HANDOFF_STEP_PREPARED, 1 };	/* range 1 registered, announced */
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	g = criu_dies(&k);
	verify_child("CRIU died before an mremap");
	/* The guardian cannot know the mremap will never come: it stays. */
	assert_int_equal(wait_exit(g, 300, NULL), -1);
	assert_false(vmflag(ch.pid, base, "um"));
	show_log(ch.pid);
	th_reap(ch.pid);
	assert_int_equal(wait_exit(g, 2000, NULL), 0);
	ch.pid = 0;
}

/* Registered and announced, never punched: the guardian cannot know the punch will not come. */
static void test_criu_dies_before_punch(void **state)
{
	struct kill_at k = { HANDOFF_STEP_PREPARED, SEG_SHARED };
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	g = criu_dies(&k);
	/* Its holes fault while registered: served as holes, never taken for placed. */
	verify_child("CRIU died before a punch");
	assert_int_equal(wait_exit(g, 300, NULL), -1);
	assert_false(vmflag(ch.pid, base, "um"));
	assert_true(vmflag(ch.pid, block_addr(2), "um"));
	verify_memfd("CRIU died before a punch");
	show_log(ch.pid);
	th_reap(ch.pid);
	assert_int_equal(wait_exit(g, 2000, NULL), 0);
	ch.pid = 0;
}

/* Punched, CRIU gone before it could say PLACED: the REMOVE event alone placed it. */
static void test_criu_dies_after_punch(void **state)
{
	struct kill_at k = { HANDOFF_STEP_PLACED, SEG_SHARED };
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	g = criu_dies(&k);
	verify_child("CRIU died after a punch");
	assert_int_equal(wait_exit(g, 5000, NULL), 0);
	check_flags(ch.pid, false);
	verify_memfd("CRIU died after a punch, given back");
}

/* ---------------------------------------------------- shared blocks refused */

static void check_shared_untouched(void)
{
	assert_false(vmflag(ch.pid, block_addr(2), "um"));
	assert_true(memfd_data_pages() > 0);
}

/* Hand over without handoff_shared_prepare(): the image lacks the fd-written pages. */
static void test_shared_unseen_pages_stay(void **state)
{
	struct handoff_opts o = default_opts();
	struct handoff *h = NULL;
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	no_prepare = true;
	seize(ch.pid);
	write_image(ch.pid);
	assert_int_equal(handoff_start_opts(ch.pid, &img, img_name, &o, &h), 0);
	assert_int_equal(present_pages(ch.pid, (uintptr_t)base, B0_LEN), 0);
	check_shared_untouched();
	g = handoff_guardian_pid(h);
	handoff_finish(h, HANDOFF_GIVE_BACK);
	release(ch.pid);
	assert_int_equal(wait_exit(g, 5000, NULL), 0);
	verify_child("shared block left alone");
	verify_memfd("shared block left alone");
}

/* Another process maps the memfd (vhost-user): a punch would pull the pages from under it. */
static void test_shared_mapped_elsewhere(void **state)
{
	struct handoff_opts o = default_opts();
	struct handoff *h = NULL;
	void *other;
	pid_t g;

	(void)state;
	TH_SKIP_IF(th_need_root());
	other = mmap(NULL, B2_LEN, PROT_READ, MAP_SHARED, mfd, 0);
	assert_true(other != MAP_FAILED);
	seize(ch.pid);
	assert_int_not_equal(handoff_shared_prepare(ch.pid, "ram0", (uintptr_t)block_addr(2), B2_LEN, ps), 0);
	no_prepare = true;
	write_image(ch.pid);
	assert_int_equal(handoff_start_opts(ch.pid, &img, img_name, &o, &h), 0);
	check_shared_untouched();
	munmap(other, B2_LEN);
	g = handoff_guardian_pid(h);
	handoff_finish(h, HANDOFF_GIVE_BACK);
	release(ch.pid);
	assert_int_equal(wait_exit(g, 5000, NULL), 0);
	verify_child("shared block mapped elsewhere");
}

/* Sealed against writes between the checks and the punch: MADV_REMOVE fails after its REMOVE event. */
static void seal_hook(void *arg, struct rsys *r, enum handoff_step step, unsigned seg)
{
	(void)arg;
	(void)r;
	if (step == HANDOFF_STEP_PREPARED && seg == SEG_SHARED)
		assert_int_equal(fcntl(mfd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), 0);
}

/* The handoff fails, and every block comes back: the shared one was never punched. */
static void test_punch_fails(void **state)
{
	struct handoff_opts o = default_opts();
	struct handoff *h = NULL;

	(void)state;
	TH_SKIP_IF(th_need_root());
	o.hook = seal_hook;
	seize(ch.pid);
	write_image(ch.pid);
	assert_int_equal(handoff_start_opts(ch.pid, &img, img_name, &o, &h), -EPERM);
	assert_null(h);
	check_flags(ch.pid, false);
	release(ch.pid);
	verify_child("punch failed");
	verify_memfd("punch failed");
}

/* ---------------------------------------------------- guardian killed */

struct kill_guardian {
	enum handoff_step step;
	unsigned seg;
	pid_t killed;
};

static void kill_guardian_hook(void *arg, struct rsys *r, enum handoff_step step, unsigned seg)
{
	struct kill_guardian *k = arg;
	pid_t g;

	(void)r;
	if (step != k->step || seg != k->seg)
		return;
	g = find_guardian();
	if (g <= 0)
		return;
	th_reap(g);	/* gone before the next message or event */
	k->killed = g;
}

/* The handoff notices, a second guardian adopts the placed ranges and gives them back. */
static void guardian_dies(struct kill_guardian *k)
{
	struct handoff_opts o = default_opts();
	struct handoff *h = NULL;
	pid_t g;

	o.hook = kill_guardian_hook;
	o.hook_arg = k;
	seize(ch.pid);
	write_image(ch.pid);
	alarm(20);	/* a hang here is the failure this guards against */
	assert_int_not_equal(handoff_start_opts(ch.pid, &img, img_name, &o, &h), 0);
	alarm(0);
	assert_null(h);
	assert_true(k->killed > 0);
	g = find_guardian();
	assert_true(g > 0 && g != k->killed);
	assert_int_equal(wait_exit(g, 5000, NULL), 0);
	assert_false(vmflag(ch.pid, base, "um"));
	assert_false(vmflag(ch.pid, base + B0_SPLIT, "um"));
	assert_false(vmflag(ch.pid, block_addr(2), "um"));
	release(ch.pid);
	verify_child("guardian died");
	verify_memfd("guardian died");
	show_log(ch.pid);
}

static void test_guardian_dies_midway(void **state)
{
	struct kill_guardian k = { HANDOFF_STEP_PLACED, 0, 0 };

	(void)state;
	TH_SKIP_IF(th_need_root());
	guardian_dies(&k);
}

/* Killed after PREPARE: our mremap's REMAP event has no reader but the watcher. */
static void test_guardian_dies_during_mremap(void **state)
{
	struct kill_guardian k = { HANDOFF_STEP_PREPARED, 1, 0 };

	(void)state;
	TH_SKIP_IF(th_need_root());
	guardian_dies(&k);
}

/* Killed after PREPARE of the shared range: its punch's REMOVE has no reader but the watcher. */
static void test_guardian_dies_during_punch(void **state)
{
	struct kill_guardian k = { HANDOFF_STEP_PREPARED, SEG_SHARED, 0 };

	(void)state;
	TH_SKIP_IF(th_need_root());
	guardian_dies(&k);
}

/* ---------------------------------------------------- the protocol */

/* Start a guardian for the child as start_guardian() does; returns our end of its socket. */
static int spawn_guardian(void)
{
	struct handoff_spawn s = { .image = img.fd };
	char path[4096], name[64];
	int sv[2], ret;

	assert_int_equal(handoff_guardian_path(path, sizeof(path)), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	snprintf(name, sizeof(name), "guardian-%d.log", ch.pid);
	s.path = path;
	s.ctl = sv[1];
	s.pidfd = syscall(SYS_pidfd_open, ch.pid, 0);
	s.log = openat(dirfd_, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	assert_true(s.pidfd >= 0 && s.log >= 0);
	ret = handoff_spawn(&s);
	close(sv[1]);
	close(s.pidfd);
	close(s.log);
	assert_int_equal(ret, 0);
	return sv[0];
}

static int prepare_status(int sock, const struct gp_range *r)
{
	struct gp_msg m = { .range = *r }, ack;

	assert_int_equal(gp_send(sock, GP_PREPARE, &m, -1), 0);
	assert_int_equal(gp_recv_type(sock, GP_PREPARE_ACK, &ack, NULL, REPLY_MS), 0);
	return ack.status;
}

/*
 * The guardian acks each PREPARE once it tracks the range, and the plugin
 * moves or punches only then: without that order a slow guardian read the
 * REMOVE of a punch before its PREPARE and held the whole block as
 * discarded (every data page of the shared block came back as zeros, about
 * once in 250 runs). A range it refuses is refused before anything moves.
 */
static void test_prepare_acked(void **state)
{
	int blk = shared_block();
	struct gp_range r = { .block = blk, .flags = GP_RANGE_SHARED, .offset = 0,
			      .len = block_len(blk), .addr = (uintptr_t)block_addr(blk) };
	struct gp_msg m = { .hello = { .pid = ch.pid, .nr_blocks = nr_blocks() } }, ack;
	int sock;

	(void)state;
	TH_SKIP_IF(th_need_root());
	seize(ch.pid);
	write_image(ch.pid);
	release(ch.pid);
	sock = spawn_guardian();
	assert_int_equal(gp_send(sock, GP_HELLO, &m, -1), 0);
	assert_int_equal(gp_recv_type(sock, GP_HELLO_ACK, &ack, NULL, REPLY_MS), 0);
	assert_int_equal(ack.status, 0);

	assert_int_equal(prepare_status(sock, &r), 0);
	r.len += ps;	/* past the end of its block */
	assert_int_equal(prepare_status(sock, &r), -EINVAL);

	close(sock);	/* no verdict, no userfaultfd: it has nothing to give back */
	assert_int_equal(wait_exit(ack.pid, 5000, NULL), 0);
	verify_child("after a guardian that held nothing");
}

/* ---------------------------------------------------- bookkeeping only */

static void test_map_bookkeeping(void **state)
{
	struct fr_image mi = { .fd = -1, .meta_fd = -1 };
	struct gp_range r = { .block = 0, .offset = 0, .len = 64 * 4096, .tmp = 0x7000000, .addr = 0x100000 };
	struct gd_map m;
	struct gd_run run;
	uint64_t page;

	(void)state;
	assert_int_equal(fr_image_init(&mi, 1, 1), 0);
	strcpy(mi.blocks[0].name, "ram");
	mi.blocks[0].host_addr = 0x100000;
	mi.blocks[0].length = 64 * 4096;
	mi.blocks[0].page_size = 4096;
	assert_int_equal(fr_layout(&mi), 0);
	memset(mi.blocks[0].bitmap, 0xff, 8);	/* all 64 pages present */
	assert_int_equal(gd_map_init(&m, &mi), 0);

	assert_int_equal(gd_map_prepare(&m, &r), 0);
	assert_int_equal(gd_map_remap(&m, 0x7000000, 0x100000, 64 * 4096), 0);	/* placement */
	assert_int_equal(m.nr_pending, 0);
	assert_int_equal(gd_map_lookup(&m, 0x100000 + 5 * 4096, &page), 0);
	assert_int_equal(page, 5);

	/* The task moves pages 16..31 away, discards 8..9 and unmaps 40..47. */
	assert_int_equal(gd_map_remap(&m, 0x100000 + 16 * 4096, 0x900000, 16 * 4096), 0);
	assert_true(gd_map_lookup(&m, 0x900000 + 4096, &page) >= 0);
	assert_int_equal(page, 17);
	assert_true(gd_map_lookup(&m, 0x100000 + 17 * 4096, &page) < 0);
	assert_int_equal(gd_map_discard(&m, 0x100000 + 8 * 4096, 0x100000 + 10 * 4096, false), 2);
	assert_int_equal(gd_map_discard(&m, 0x100000 + 40 * 4096, 0x100000 + 44 * 4096, false), 4);
	assert_int_equal(gd_map_discard(&m, 0x100000 + 40 * 4096, 0x100000 + 48 * 4096, true), 4);
	assert_true(gd_map_lookup(&m, 0x100000 + 40 * 4096, &page) < 0);
	assert_true(gd_map_lookup(&m, 0x100000 + 47 * 4096, &page) < 0);
	assert_true(gd_map_lookup(&m, 0x100000 + 48 * 4096, &page) >= 0);

	/*
	 * A fault's neighbours: the todo pages of [from, end) inside one range,
	 * so a run stops at a discarded page, at the moved part and at end.
	 */
	assert_true(gd_map_run_in(&m, 0, 3, 6, &run));
	assert_int_equal(run.page, 3);
	assert_int_equal(run.n, 3);
	assert_int_equal(run.addr, 0x100000 + 3 * 4096);
	assert_true(gd_map_run_in(&m, 0, 8, 64, &run));
	assert_int_equal(run.page, 10);
	assert_int_equal(run.n, 6);
	assert_true(gd_map_run_in(&m, 0, 16, 64, &run));
	assert_int_equal(run.addr, 0x900000);
	assert_int_equal(run.n, 16);
	assert_false(gd_map_run_in(&m, 0, 8, 10, &run));

	/* Give-back runs skip discarded and unmapped pages and follow the move. */
	assert_true(gd_map_next_run(&m, 512, &run));
	assert_int_equal(run.page, 0);
	assert_int_equal(run.n, 8);
	for (page = 0; page < 8; page++)
		fr_bit_set(m.blocks[0].filled, page);
	assert_true(gd_map_next_run(&m, 512, &run));
	assert_int_equal(run.page, 10);
	assert_int_equal(run.n, 6);
	assert_int_equal(run.addr, 0x100000 + 10 * 4096);
	for (page = 10; page < 16; page++)
		fr_bit_set(m.blocks[0].filled, page);
	assert_true(gd_map_next_run(&m, 512, &run));
	assert_int_equal(run.page, 16);
	assert_int_equal(run.addr, 0x900000);
	assert_int_equal(run.n, 16);
	for (page = 16; page < 40; page++)
		fr_bit_set(m.blocks[0].filled, page);
	assert_true(gd_map_next_run(&m, 512, &run));
	assert_int_equal(run.page, 48);
	assert_int_equal(run.n, 16);
	for (page = 48; page < 64; page++)
		fr_bit_set(m.blocks[0].filled, page);
	assert_false(gd_map_next_run(&m, 512, &run));

	gd_map_free(&m);
	fr_close(&mi);
}

/* A shared range is placed by the REMOVE of exactly its range, and by nothing else. */
static void test_map_shared(void **state)
{
	struct fr_image mi = { .fd = -1, .meta_fd = -1 };
	struct gp_range lo = { .block = 0, .flags = GP_RANGE_SHARED, .offset = 0, .len = 32 * 4096,
			       .addr = 0x100000 };
	struct gp_range hi = lo;
	uint64_t page, end = 0x100000 + 64 * 4096;
	uint32_t block;
	struct gd_map m;
	struct gd_run run;

	(void)state;
	hi.offset = 32 * 4096;
	hi.addr = 0x100000 + 32 * 4096;
	assert_int_equal(fr_image_init(&mi, 1, 1), 0);
	strcpy(mi.blocks[0].name, "ram0");
	mi.blocks[0].host_addr = 0x100000;
	mi.blocks[0].length = 64 * 4096;
	mi.blocks[0].page_size = 4096;
	mi.blocks[0].backing = FR_BACKING_SHARED_FD;
	assert_int_equal(fr_layout(&mi), 0);
	memset(mi.blocks[0].bitmap, 0xff, 8);
	assert_int_equal(gd_map_init(&m, &mi), 0);

	assert_int_equal(gd_map_prepare(&m, &lo), 0);
	assert_int_equal(gd_map_prepare(&m, &hi), 0);
	/* Before the punch a fault proves nothing: served in place, not placed. */
	assert_int_equal(gd_map_fault_placement(&m, 0x100000 + 4096), -1);
	assert_int_equal(gd_map_lookup_pending(&m, 0x100000 + 37 * 4096, &block, &page), 0);
	assert_int_equal(page, 37);
	assert_false(gd_map_next_run(&m, 512, &run));
	/* A REMOVE of part of it is a discard. */
	assert_int_equal(gd_map_punch(&m, 0x100000, 0x100000 + 16 * 4096), -ENOENT);
	assert_int_equal(gd_map_punch(&m, 0x100000, 0x100000 + 32 * 4096), 0);
	assert_int_equal(m.nr_pending, 1);
	assert_true(gd_map_lookup(&m, 0x100000 + 5 * 4096, &page) >= 0);
	assert_int_equal(gd_map_lookup_pending(&m, 0x100000 + 5 * 4096, &block, &page), -1);
	/* The same REMOVE again is the guest's. */
	assert_int_equal(gd_map_punch(&m, 0x100000, 0x100000 + 32 * 4096), -ENOENT);
	assert_int_equal(gd_map_resolve(&m, &lo, true), 0);
	assert_int_equal(m.nr_ranges, 1);

	/* hi: PLACED without its REMOVE (madvise failed early, or a new guardian): adopted. */
	assert_int_equal(gd_map_resolve(&m, &hi, true), 0);
	assert_int_equal(m.nr_pending, 0);
	assert_int_equal(m.nr_ranges, 2);
	assert_true(gd_map_lookup(&m, end - 4096, &page) >= 0);
	assert_int_equal(page, 63);

	assert_true(gd_map_next_run(&m, 512, &run));
	assert_int_equal(run.page, 0);
	assert_int_equal(run.n, 32);
	gd_map_free(&m);
	fr_close(&mi);
}

/* ---------------------------------------------------------------- main */

static int setup_all(void)
{
	ps = sysconf(_SC_PAGESIZE);
	if (th_guardian_self())
		return -1;
	base = mmap(NULL, RESERVE + 2 * MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -1;
	base = (char *)(((uintptr_t)base + 2 * MIB - 1) & ~(2 * MIB - 1));
	/* tmpfs: unlinking a big sparse image on ext4 with discard takes ~0.7 s. */
	if (th_tmpdir(dir, sizeof(dir), getenv("TEST_HANDOFF_DIR"), "test_handoff"))
		return -1;
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return dirfd_ < 0 ? -1 : 0;
}

static void cleanup_all(void)
{
	close(dirfd_);
	th_rmtree(dir);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_child, teardown_child)
#define T_UNPRIV(fn) cmocka_unit_test_setup_teardown(fn, setup_child_unprivileged, teardown_child)
#define T_UNSEALED(fn) cmocka_unit_test_setup_teardown(fn, setup_child_unsealed, teardown_child)

/*
 * The handoff reads smaps once for all blocks (it runs while QEMU is
 * frozen): only VMAs that meet a block are kept, in order, and each
 * block's segments come from them.
 */
static void test_vmas_one_read(void **state)
{
	long ps = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, 8 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct fr_block b[3] = {
		{ .host_addr = (uintptr_t)p, .length = 2 * ps },
		{ .host_addr = (uintptr_t)p + 4 * ps, .length = 4 * ps },
		{ .host_addr = (uintptr_t)p, .length = 4 * ps },	/* over the hole */
	};
	struct handoff_seg *segs = NULL;
	struct handoff_vmas vm;
	size_t n = 0, i;

	(void)state;
	assert_ptr_not_equal(p, MAP_FAILED);
	for (i = 0; i < 3; i++) {
		b[i].page_size = ps;
		b[i].backing = FR_BACKING_ANON_PRIVATE;
		snprintf(b[i].name, sizeof(b[i].name), "b%zu", i);
	}
	/* VMAs: [0, 2) rw, a hole, [3, 6) rw, [6, 8) r (pages) */
	assert_int_equal(munmap(p + 2 * ps, ps), 0);
	assert_int_equal(mprotect(p + 6 * ps, 2 * ps, PROT_READ), 0);

	assert_int_equal(handoff_vmas_read(getpid(), b, 2, &vm), 0);
	assert_int_equal(vm.n, 3);
	assert_true(vm.v[0].vma.end == (uintptr_t)p + 2 * ps);
	assert_true(vm.v[1].vma.start == (uintptr_t)p + 3 * ps);

	assert_int_equal(handoff_block_segments(&vm, getpid(), &b[0], 0, &segs, &n), 0);
	assert_int_equal(handoff_block_segments(&vm, getpid(), &b[1], 1, &segs, &n), 0);
	assert_int_equal(n, 3);
	assert_true(segs[0].start == (uintptr_t)p && segs[0].end == (uintptr_t)p + 2 * ps);
	assert_true(segs[1].start == (uintptr_t)p + 4 * ps && segs[1].end == (uintptr_t)p + 6 * ps);
	assert_int_equal(segs[1].prot, PROT_READ | PROT_WRITE);
	assert_int_equal(segs[2].block, 1);
	assert_int_equal(segs[2].prot, PROT_READ);
	assert_int_equal(handoff_block_segments(&vm, getpid(), &b[2], 2, &segs, &n), -EINVAL);
	assert_int_equal(n, 3);
	handoff_vmas_free(&vm);
	assert_int_equal(vm.n, 0);
	free(segs);
	munmap(p, 8 * ps);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_bookkeeping),
		cmocka_unit_test(test_vmas_one_read),
		cmocka_unit_test(test_map_shared),
		T(test_give_back),
		T_UNPRIV(test_unprivileged_task),
		T(test_done_killed),
		T(test_done_but_alive),
		T(test_done_but_released),
		T(test_done_then_fault),
		T(test_discard),
		T(test_discard_during_give_back),
		T(test_criu_dies_after_handoff),
		T(test_criu_dies_midway),
		T(test_criu_dies_holding_uffd),
		T(test_criu_dies_before_mremap),
		T(test_criu_dies_before_punch),
		T(test_criu_dies_after_punch),
		T(test_shared_unseen_pages_stay),
		T(test_shared_mapped_elsewhere),
		T_UNSEALED(test_punch_fails),
		T(test_guardian_dies_midway),
		T(test_guardian_dies_during_mremap),
		T(test_guardian_dies_during_punch),
		T(test_prepare_acked),
	};
	int ret;

	if (th_guardian_mode(argc, argv))
		return guardian_main(argc, argv);
	if (setup_all())
		return 1;
	if (getenv("TEST_HANDOFF_VERBOSE"))
		qp_log_set_level(LOG_DEBUG);
	ret = th_run_group(tests, NULL, NULL);
	cleanup_all();
	return ret;
}
