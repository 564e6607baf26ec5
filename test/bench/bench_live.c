// SPDX-License-Identifier: GPL-2.0
/*
 * What live pre-dump (criu-plugin/live.c) costs: a child holds 2 x -m MiB
 * (default 1024) of anonymous memory, THP off, the first half written, the
 * second never touched (write-protect markers there cost page tables too).
 * Printed: live_start (and the child's page tables before and after),
 * passes after dirtying 1 page per 16 MiB, per chunk, in 16 and every page,
 * live_patch() for 1 page per chunk, and the frozen end: live_final,
 * live_stop and fr_finish. The image is in -d DIR (default /var/tmp, a disk:
 * the passes fdatasync), with O_DIRECT on -o. Needs ptrace of a child,
 * asynchronous userfaultfd write-protection and PAGEMAP_SCAN (Linux 6.7+).
 *
 *   bench_live [-m MiB] [-d dir] [-o]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "../unit/helpers.h"
#include "dump-writer.h"
#include "live.h"
#include "live-patch.h"
#include "log.h"

static const char *img_name = "qemu-ram-bench-live.img";
static long ps;
static char *base;		/* 2 x pages, the first half written */
static uint64_t pages;		/* populated */

static void fill_page(char *a, uint64_t p, uint32_t gen)
{
	uint64_t *w = (uint64_t *)a, v = 0xA5ULL << 56 | p << 28 | gen;
	long i;

	for (i = 0; i < ps / 8; i++)
		w[i] = v + i * 0x9E3779B97F4A7C15ULL;
}

/* Write the first half, say so, then wait: the parent writes through /proc/PID/mem. */
static void child_main(int cmd, int rep, void *arg)
{
	uint64_t p;
	char c;

	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (p = 0; p < pages; p++)
		fill_page(base + p * ps, p, 0);
	if (write(rep, "R", 1) != 1)
		_exit(1);
	while (read(cmd, &c, 1) > 0)
		;
	_exit(0);
}

/* Rewrite every stride-th populated page of the child. */
static void dirty(int memfd, uint64_t stride, uint32_t gen)
{
	char *page = malloc(ps);
	uint64_t p;

	TH_CHECK(page);
	for (p = 0; p < pages; p += stride) {
		fill_page(page, p, gen);
		TH_CHECK(pwrite(memfd, page, ps, (uintptr_t)base + p * ps) == ps);
	}
	free(page);
}

static void pass(struct live_ctx *lc, const char *what)
{
	struct live_pass_stat st;

	TH_CHECK(live_pass(lc, &st) == 0);
	printf("%-26s %6llu pages, %7.1f MiB written, %8.1f ms incl. fdatasync\n",
	       what, (unsigned long long)st.pages, st.written / 1048576.0, st.ms);
}

/* What live_patch() costs for one dirty page per chunk, given the pages. */
static void patch(pid_t pid, struct fr_image *img)
{
	struct page_range *rg = calloc(pages / FR_CHUNK_PAGES + 1, sizeof(*rg));
	struct live_patch_stats lps;
	uint64_t i, n = 0;
	char path[64];
	int pagemap;
	double t0;

	TH_CHECK(rg);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	pagemap = open(path, O_RDONLY | O_CLOEXEC);
	TH_CHECK(pagemap >= 0);
	for (i = 0; i < pages; i += FR_CHUNK_PAGES, n++)
		rg[n] = (struct page_range){ (uintptr_t)base + i * ps, (uintptr_t)base + (i + 1) * ps };
	t0 = now_ms();
	TH_CHECK(live_patch(pid, img, rg, n, pagemap, NULL, &lps) == 0);
	TH_CHECK(fdatasync(img->fd) == 0);
	printf("live_patch, 1 page per chunk: %llu chunks, %.1f MiB written, %.1f ms incl. fdatasync\n",
	       (unsigned long long)lps.chunks, lps.bytes_written / 1048576.0, now_ms() - t0);
	close(pagemap);
	free(rg);
}

/* As CRIU: seize, interrupt, wait for the stop. */
static void freeze(pid_t pid)
{
	int status;

	TH_CHECK(ptrace(PTRACE_SEIZE, pid, NULL, NULL) == 0);
	TH_CHECK(ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) == 0);
	status = th_wait(pid, __WALL);
	TH_CHECK(status >= 0 && WIFSTOPPED(status));
}

static uint64_t vm_pte_kb(pid_t pid)
{
	uint64_t v = 0;

	TH_CHECK(th_status_u64(pid, "VmPTE", 10, &v) == 0);
	return v;
}

static void image_create(struct fr_image *img, pid_t pid, int dirfd, bool odirect)
{
	TH_CHECK(fr_image_init(img, pid, 1) == 0);
	strcpy(img->blocks[0].name, "pc.ram");
	img->blocks[0].host_addr = (uintptr_t)base;
	img->blocks[0].length = 2 * pages * ps;
	img->blocks[0].page_size = ps;
	TH_CHECK(fr_layout(img) == 0);
	TH_CHECK(fr_create(img, dirfd, img_name, odirect ? O_DIRECT : 0) == 0);
}

static void run(uint64_t mib, int dirfd, bool odirect)
{
	struct ram_io_opts io = { .odirect = odirect };
	struct live_pass_stat st;
	struct th_child ch;
	struct fr_image img;
	struct live_ctx *lc;
	double t0, t1, t2;
	char path[64], r;
	uint64_t pte0;
	int memfd;

	pages = (mib << 20) / ps;
	base = mmap(NULL, 2 * pages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TH_CHECK(base != MAP_FAILED);
	madvise(base, 2 * pages * ps, MADV_NOHUGEPAGE);
	TH_CHECK(th_child_start(&ch, child_main, NULL) == 0);
	TH_CHECK(th_child_recv(&ch, &r, 1, 600000) == 0);
	snprintf(path, sizeof(path), "/proc/%d/mem", ch.pid);
	memfd = open(path, O_RDWR | O_CLOEXEC);
	TH_CHECK(memfd >= 0);
	image_create(&img, ch.pid, dirfd, odirect);

	printf("%llu MiB written + %llu MiB never touched, %s\n", (unsigned long long)mib,
	       (unsigned long long)mib, odirect ? "O_DIRECT" : "page cache");
	pte0 = vm_pte_kb(ch.pid);
	t0 = now_ms();
	TH_CHECK(live_start(ch.pid, &img, &io, &lc) == 0);
	printf("live_start: %.1f ms, VmPTE %llu -> %llu kB\n", now_ms() - t0,
	       (unsigned long long)pte0, (unsigned long long)vm_pte_kb(ch.pid));
	pass(lc, "pass 1 (everything)");
	pass(lc, "pass, nothing written");
	dirty(memfd, 4096, 1);
	pass(lc, "pass, 1 page per 16 MiB");
	dirty(memfd, FR_CHUNK_PAGES, 2);
	pass(lc, "pass, 1 page per chunk");
	dirty(memfd, 16, 3);
	pass(lc, "pass, 1 page in 16");
	dirty(memfd, 1, 4);
	pass(lc, "pass, every page");
	patch(ch.pid, &img);
	dirty(memfd, 4096, 5);
	pass(lc, "pass, 1 page per 16 MiB");

	dirty(memfd, FR_CHUNK_PAGES, 6);
	freeze(ch.pid);
	t0 = now_ms();
	TH_CHECK(live_final(lc, &st) == 0);
	t1 = now_ms();
	live_stop(lc);
	t2 = now_ms();
	TH_CHECK(fr_finish(&img) == 0);
	printf("freeze, 1 page per chunk: final %.1f ms, live_stop %.1f ms, fr_finish %.1f ms\n",
	       t1 - t0, t2 - t1, now_ms() - t2);
	fr_close(&img);
	close(memfd);
	th_child_kill(&ch);
	munmap(base, 2 * pages * ps);
}

int main(int argc, char **argv)
{
	const char *dir = "/var/tmp", *why;
	bool odirect = false;
	uint64_t mib = 1024;
	int opt, dirfd;

	while ((opt = getopt(argc, argv, "m:d:o")) != -1) {
		switch (opt) {
		case 'm':
			mib = strtoull(optarg, NULL, 0);
			break;
		case 'd':
			dir = optarg;
			break;
		case 'o':
			odirect = true;
			break;
		default:
			fprintf(stderr, "usage: %s [-m MiB] [-d dir] [-o]\n", argv[0]);
			return 1;
		}
	}
	why = th_need_ptrace();
	why = why ? why : th_need_uffd_wp_async();
	why = why ? why : th_need_pagemap_scan();
	if (why) {
		printf("bench_live: not run, %s\n", why);
		return 0;
	}
	if (!mib) {
		fprintf(stderr, "bench_live: -m must be at least 1\n");
		return 1;
	}
	ps = sysconf(_SC_PAGESIZE);
	qp_log_set_level(LOG_WARN);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	TH_CHECK(dirfd >= 0);
	run(mib, dirfd, odirect);
	unlinkat(dirfd, img_name, 0);
	close(dirfd);
	return 0;
}
