// SPDX-License-Identifier: GPL-2.0
/*
 * Live pre-dump with userfaultfd asynchronous write-protection.
 *
 * CRIU's pre-dump needs soft-dirty, which this kernel lacks. Instead:
 * a userfaultfd made inside QEMU (injected syscall; we keep a copy, the
 * task's is closed before CRIU looks at its fds) is registered in WP mode
 * on every RAM block with UFFD_FEATURE_WP_ASYNC: a write to a protected
 * page is resolved by the kernel itself (it just drops the PTE's uffd-wp
 * bit), no message is ever queued and nobody has to read the uffd.
 * PAGEMAP_SCAN with PM_SCAN_WP_MATCHING then returns the pages written
 * since the last scan (PAGE_IS_WRITTEN: no uffd-wp bit) and protects them
 * again in the same page-table walk, under the page-table lock: a write
 * racing with the scan is either reported now or faults and is reported by
 * the next scan. Pages are read after their scan, so a copy is never older
 * than the protection that reports the next change.
 *
 * Only populated pages are ever protected (PAGE_IS_PRESENT or
 * PAGE_IS_SWAPPED in the scan), never holes, and UFFDIO_WRITEPROTECT is
 * not used. PAGEMAP_SCAN only protects with UFFD_FEATURE_WP_UNPOPULATED on,
 * and with it, protecting an unpopulated page installs a PTE marker: page
 * tables for all of guest RAM (2 MiB per GiB), and a marker is reported as
 * PAGE_IS_SWAPPED, so every populated-page scan (ram_write_image) would
 * read all never-touched RAM, which allocates it on this kernel (measured:
 * 1 GiB written + 1 GiB untouched, 2 GiB read, RSS +1 GiB). None of that
 * is needed: a write to a hole or a pte_none makes a fresh page without
 * the uffd-wp bit, which the next scan reports. So there are no markers,
 * the populated-page scans stay exact, and pass 1 is ram_write_image().
 *
 * What write tracking misses, live_patch() catches: a page that loses its
 * data without a write (MADV_DONTNEED, e.g. a balloon) is not reported, but
 * every pass compares the bitmap with a populated-page scan of the blocks.
 *
 * Verified on Linux 6.18 (test/unit/test_live.c):
 * - A page written after the last live pass, up to the freeze, is reported
 *   by the scan in live_final(); so is one written by the kernel (read()
 *   into it), also with a user-mode-only userfaultfd.
 * - A page discarded after its copy loses its bit in the next pass.
 * - A page discarded and then written again is a fresh page without the
 *   uffd-wp bit: reported, copied with its new content.
 * - THP: a huge page is reported and protected as one 2 MiB PMD; a later
 *   write splits it (async WP never keeps a PMD for a partial write) and
 *   only the written 4 KiB page is reported. A write into a hole may fault
 *   in a fresh THP, reported (and copied) as 2 MiB written.
 * - UFFDIO_UNREGISTER clears the uffd-wp bits: no PTE stays
 *   write-protected, writes after live_stop() do not fault.
 *
 * Not seen by page tables, so not tracked: DMA into pages pinned before
 * live_start (VFIO passthrough, in-flight O_DIRECT reads into guest RAM).
 */
#define LOG_PREFIX "live: "

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>

#include "clock.h"
#include "dump-writer.h"
#include "live.h"
#include "live-patch.h"
#include "log.h"
#include "proc.h"
#include "rsys.h"
#include "sparse.h"

#include "uapi-compat.h"

#define LIVE_VEC_LEN	1024	/* regions per PAGEMAP_SCAN */
#define LIVE_RETRIES	1000	/* EINTR / EAGAIN from an idempotent ioctl */

struct live_ctx {
	pid_t pid;
	struct fr_image *img;
	struct ram_io_opts io;
	int uffd;		/* our copy; the task's is closed */
	int pagemap;		/* /proc/pid/pagemap */
	uint32_t nr_registered;	/* blocks [0, n) are registered */
	unsigned passes;
	double last_scan;	/* when the last scan started, ms */
	struct live_pass_stat last;
	struct range_vec dirty;		/* reported by the last scan */
	struct page_region *vec;
};

static double mib(uint64_t bytes)
{
	return bytes / 1048576.0;
}

/* For ioctls that can be repeated: a signal or a busy mm. */
static int ioctl_retry(int fd, unsigned long req, void *arg)
{
	int i;

	for (i = 0; i < LIVE_RETRIES; i++) {
		if (!ioctl(fd, req, arg))
			return 0;
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
	return -EAGAIN;
}

static int check_blocks(const struct fr_image *img)
{
	long psize = sysconf(_SC_PAGESIZE);
	uint32_t i;

	for (i = 0; i < img->nr_blocks; i++) {
		const struct fr_block *b = &img->blocks[i];

		/* Shared: a memfd or shared anonymous memory only QEMU maps (dump.c). */
		if ((b->backing != FR_BACKING_ANON_PRIVATE && b->backing != FR_BACKING_SHARED_FD) ||
		    b->page_size != psize) {
			pr_warn("block '%s' (%s, %u-byte pages) cannot be tracked\n",
				b->name, fr_backing_name(b->backing), b->page_size);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

/* ---- the userfaultfd ---- */

/*
 * A userfaultfd is bound to the mm of the task that creates it, so QEMU
 * has to make it. The task's copy is closed right away: CRIU refuses to
 * dump an anon_inode:[userfaultfd], and ours keeps the context alive.
 *
 * A QEMU without CAP_SYS_PTRACE (vm.unprivileged_userfaultfd = 0) may only
 * make a user-mode-only one. That is enough here: asynchronous WP faults
 * are resolved in the fault handler and never reach handle_userfault(),
 * so writes by the kernel (read() into guest RAM) are tracked all the same
 * (tested).
 */
static long task_userfaultfd(struct rsys *r)
{
	long rfd = rsys_call(r, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK, 0, 0, 0, 0, 0);

	if (rfd != -EPERM)
		return rfd;
	pr_info("pid %d may not make a userfaultfd for kernel faults, using a user-mode one\n",
		r->pid);
	return rsys_call(r, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY,
			 0, 0, 0, 0, 0);
}

static int make_uffd(struct live_ctx *lc)
{
	struct rsys r;
	long rfd, ret, err;

	ret = rsys_seize(&r, lc->pid);
	if (ret) {
		pr_err("cannot stop pid %d: %s\n", lc->pid, strerror(-ret));
		return ret;
	}
	rfd = task_userfaultfd(&r);
	if (rfd < 0) {
		ret = rfd;
		pr_err("userfaultfd() in pid %d: %s\n", lc->pid, strerror(-ret));
	} else {
		ret = rsys_get_fd(&r, rfd);
		if (ret >= 0) {
			lc->uffd = ret;
			ret = 0;
		}
		err = rsys_call(&r, SYS_close, rfd, 0, 0, 0, 0, 0);
		if (err) {
			pr_err("close(%ld) in pid %d: %s\n", rfd, lc->pid, strerror(-err));
			ret = ret ? ret : err;
		}
	}
	err = rsys_detach(&r);
	return ret ? ret : err;
}

static bool any_shared(const struct fr_image *img)
{
	uint32_t i;

	for (i = 0; i < img->nr_blocks; i++)
		if (img->blocks[i].backing == FR_BACKING_SHARED_FD)
			return true;
	return false;
}

/* Write-protecting shmem (memfd-backed guest RAM) needs its own feature. */
static int uffd_api(struct live_ctx *lc)
{
	const uint64_t want = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED |
			      (any_shared(lc->img) ? UFFD_FEATURE_WP_HUGETLBFS_SHMEM : 0);
	struct uffdio_api api = { .api = UFFD_API, .features = want };
	int ret;

	ret = ioctl_retry(lc->uffd, UFFDIO_API, &api);
	if (ret || (api.features & want) != want) {
		pr_warn("no asynchronous userfaultfd write-protection: %s\n",
			ret ? strerror(-ret) : "features missing");
		return -EOPNOTSUPP;
	}
	return 0;
}

static int uffd_register(struct live_ctx *lc, const struct fr_block *b)
{
	struct uffdio_register reg = {
		.range = { .start = b->host_addr, .len = b->length },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	int ret;

	ret = ioctl_retry(lc->uffd, UFFDIO_REGISTER, &reg);
	if (ret) {
		pr_err("block '%s': UFFDIO_REGISTER: %s\n", b->name, strerror(-ret));
		return ret;
	}
	if (!(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
		pr_err("block '%s': no UFFDIO_WRITEPROTECT\n", b->name);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* Clears the uffd-wp bits and markers of the range too. */
static void uffd_unregister(struct live_ctx *lc, const struct fr_block *b)
{
	struct uffdio_range r = { .start = b->host_addr, .len = b->length };
	int ret;

	ret = ioctl_retry(lc->uffd, UFFDIO_UNREGISTER, &r);
	if (ret)
		/* The task is gone (ESRCH): closing our uffd is all that is left. */
		pr_debug("block '%s': UFFDIO_UNREGISTER: %s\n", b->name, strerror(-ret));
}

/* Protection starts with the first scan (see the top of the file). */
static int track(struct live_ctx *lc)
{
	uint32_t i;
	int ret;

	ret = uffd_api(lc);
	for (i = 0; !ret && i < lc->img->nr_blocks; i++) {
		ret = uffd_register(lc, &lc->img->blocks[i]);
		if (!ret)
			lc->nr_registered = i + 1;
	}
	return ret;
}

/* ---- written pages ---- */

/*
 * A failed WP scan may have protected pages it did not get to report: on
 * EINTR (fatal signal pending) or EAGAIN count everything it may have
 * walked as written, so nothing is lost; other errors end the live phase.
 */
static int scan_failed(struct live_ctx *lc, const struct fr_block *b, int err,
		       uint64_t *addr, uint64_t walk_end, uint64_t end)
{
	uint64_t stop = walk_end > *addr && walk_end <= end ? walk_end : end;
	int ret;

	if (err != -EINTR && err != -EAGAIN) {
		pr_err("block '%s': PAGEMAP_SCAN at %#llx: %s\n", b->name,
		       (unsigned long long)*addr, strerror(-err));
		return err;
	}
	ret = range_vec_add(&lc->dirty, *addr, stop);
	*addr = stop;
	return ret;
}

/*
 * Populated pages of b written since the last scan (all of them the first
 * time); protects them.
 */
static int scan_block(struct live_ctx *lc, const struct fr_block *b)
{
	uint64_t addr = b->host_addr, end = b->host_addr + b->length;
	struct pm_scan_arg arg;
	int ret = 0;

	while (addr < end && !ret) {
		long i, n;

		memset(&arg, 0, sizeof(arg));
		arg.size = sizeof(arg);
		arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
		arg.start = addr;
		arg.end = end;
		arg.vec = (uintptr_t)lc->vec;
		arg.vec_len = LIVE_VEC_LEN;
		arg.category_mask = PAGE_IS_WRITTEN;
		arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
		arg.return_mask = PAGE_IS_WRITTEN;
		n = ioctl(lc->pagemap, PAGEMAP_SCAN, &arg);
		if (n < 0) {
			ret = scan_failed(lc, b, -errno, &addr, arg.walk_end, end);
			continue;
		}
		for (i = 0; i < n && !ret; i++)
			ret = range_vec_add(&lc->dirty, lc->vec[i].start, lc->vec[i].end);
		/* vec full: the kernel stopped early, go on from walk_end. */
		if (!ret && arg.walk_end <= addr) {
			pr_err("PAGEMAP_SCAN made no progress at %#llx\n",
			       (unsigned long long)addr);
			ret = -EIO;
		}
		addr = arg.walk_end;
	}
	return ret;
}

static int scan_written(struct live_ctx *lc)
{
	uint32_t i;
	int ret = 0;

	lc->dirty.nr = 0;
	for (i = 0; i < lc->img->nr_blocks && !ret; i++)
		ret = scan_block(lc, &lc->img->blocks[i]);
	return ret;
}

/* ---- passes ---- */

static void log_pass(const char *what, const struct live_pass_stat *st)
{
	pr_info("live %s %u: %llu pages (%.1f MiB) written to, %llu dropped, %.1f MiB copied, "
		"%.1f ms, dirty rate %.1f MiB/s\n", what, st->pass, (unsigned long long)st->pages,
		mib(st->bytes), (unsigned long long)st->dropped, mib(st->written), st->ms,
		st->dirty_rate_mbs);
}

static int first_copy(struct live_ctx *lc, struct live_pass_stat *st)
{
	struct ram_io_stats ios;
	int ret;

	ret = ram_write_image(lc->pid, lc->img, &lc->io, &ios);
	if (ret) {
		pr_err("pass 1 of pid %d: %s\n", lc->pid, strerror(-ret));
		return ret;
	}
	st->pages = ios.pages_scanned_present;
	st->bytes = st->pages * sysconf(_SC_PAGESIZE);
	st->written = ios.bytes_written;
	return 0;
}

/* since: ms from the previous scan to this one, for the dirty rate. */
static int copy_dirty(struct live_ctx *lc, struct live_pass_stat *st, double since)
{
	struct live_patch_stats ps;
	int ret;

	ret = scan_written(lc);
	if (ret)
		return ret;
	st->bytes = sparse_bytes(lc->dirty.r, lc->dirty.nr);
	st->pages = st->bytes / sysconf(_SC_PAGESIZE);
	st->dirty_rate_mbs = since > 0 ? mib(st->bytes) * 1000 / since : 0;
	ret = live_patch(lc->pid, lc->img, lc->dirty.r, lc->dirty.nr, lc->pagemap, &lc->io, &ps);
	if (ret) {
		pr_err("pass %u of pid %d: %s\n", st->pass, lc->pid, strerror(-ret));
		return ret;
	}
	st->written = ps.bytes_written;
	st->dropped = ps.pages_dropped;
	return 0;
}

/*
 * Write-back of the pass's data while the VM still runs, so that the
 * fsync in fr_finish() at the freeze only has the final pass's to wait for;
 * then drop the clean pages from the page cache, it is no place for a
 * second copy of guest RAM.
 */
static int sync_pass(struct live_ctx *lc)
{
	int fd = lc->img->meta_fd >= 0 ? lc->img->meta_fd : lc->img->fd;
	int ret;

	do
		ret = fdatasync(fd) ? -errno : 0;
	while (ret == -EINTR);
	if (ret) {
		pr_err("fdatasync of the RAM image: %s\n", strerror(-ret));
		return ret;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	return 0;
}

static int do_pass(struct live_ctx *lc, struct live_pass_stat *st, bool final)
{
	double t0 = now_ms();
	struct live_pass_stat s = { .pass = lc->passes + 1 };
	int ret;

	if (!lc->passes && final) {
		pr_err("final pass without a first one\n");
		return -EINVAL;
	}
	/* Pass 1 copies what live_start()'s scan protected. */
	ret = lc->passes ? copy_dirty(lc, &s, t0 - lc->last_scan) : first_copy(lc, &s);
	if (!ret && !final && s.written)
		ret = sync_pass(lc);
	if (ret)
		return ret;
	s.ms = now_ms() - t0;
	if (lc->passes)
		lc->last_scan = t0;
	lc->passes++;
	lc->last = s;
	log_pass(final ? "final" : "pass", &s);
	if (st)
		*st = s;
	return 0;
}

int live_pass(struct live_ctx *lc, struct live_pass_stat *st)
{
	return do_pass(lc, st, false);
}

int live_final(struct live_ctx *lc, struct live_pass_stat *st)
{
	return do_pass(lc, st, true);
}

/*
 * Estimated downtime: the final pass costs about what the last pass did,
 * its dirty bytes at its own bandwidth plus the scan, i.e. its duration.
 */
static const char *converged(const struct live_ctx *lc, const struct live_opts *o,
			     uint64_t prev_bytes, double t0)
{
	const struct live_pass_stat *s = &lc->last;

	if (s->ms <= o->downtime_ms)
		return "downtime target met";
	if (s->pass > 1 && s->bytes * 10 > prev_bytes * 9)
		return "dirty set not shrinking";
	if (s->pass >= o->max_passes)
		return "pass limit";
	if (now_ms() - t0 >= o->max_ms)
		return "time limit";
	return NULL;
}

int live_converge(struct live_ctx *lc, const struct live_opts *o)
{
	struct live_opts d = { LIVE_DOWNTIME_MS, LIVE_MAX_PASSES, LIVE_MAX_MS };
	double t0 = now_ms();
	uint64_t prev = UINT64_MAX;
	const char *why;
	int ret;

	if (o) {
		d.downtime_ms = o->downtime_ms ? o->downtime_ms : d.downtime_ms;
		d.max_passes = o->max_passes ? o->max_passes : d.max_passes;
		d.max_ms = o->max_ms ? o->max_ms : d.max_ms;
	}
	for (;;) {
		if (lc->passes)
			prev = lc->last.bytes;
		ret = live_pass(lc, NULL);
		if (ret)
			return ret;
		why = converged(lc, &d, prev, t0);
		if (why)
			break;
	}
	pr_info("%s after %u passes, %.0f ms; the final copy should take about %.1f ms\n",
		why, lc->passes, now_ms() - t0, lc->last.ms);
	return 0;
}

unsigned live_passes(const struct live_ctx *lc, struct live_pass_stat *last)
{
	if (!lc)
		return 0;
	if (last)
		*last = lc->last;
	return lc->passes;
}

/* ---- start / stop ---- */

int live_start(pid_t pid, struct fr_image *img, const struct ram_io_opts *io,
	       struct live_ctx **out)
{
	struct live_ctx *lc;
	int ret;

	*out = NULL;
	ret = check_blocks(img);
	if (ret)
		return ret;
	lc = calloc(1, sizeof(*lc));
	if (!lc)
		return -ENOMEM;
	lc->pid = pid;
	lc->img = img;
	lc->uffd = -1;
	if (io)
		lc->io = *io;
	lc->vec = calloc(LIVE_VEC_LEN, sizeof(*lc->vec));
	lc->pagemap = proc_pagemap_open(pid);
	if (lc->pagemap < 0) {
		ret = lc->pagemap;
		pr_perror("cannot open /proc/%d/pagemap", pid);
	} else if (!lc->vec) {
		ret = -ENOMEM;
	}
	if (!ret)
		ret = make_uffd(lc);
	if (!ret)
		ret = track(lc);
	if (!ret) {
		lc->last_scan = now_ms();
		ret = scan_written(lc);
	}
	if (ret) {
		live_stop(lc);
		return ret;
	}
	pr_info("tracking writes to %u RAM blocks of pid %d\n", img->nr_blocks, pid);
	*out = lc;
	return 0;
}

void live_stop(struct live_ctx *lc)
{
	uint32_t i;

	if (!lc)
		return;
	for (i = 0; lc->uffd >= 0 && i < lc->nr_registered; i++)
		uffd_unregister(lc, &lc->img->blocks[i]);
	/* The last reference: the kernel unregisters whatever is left. */
	if (lc->uffd >= 0)
		close(lc->uffd);
	if (lc->pagemap >= 0)
		close(lc->pagemap);
	free(lc->dirty.r);
	free(lc->vec);
	free(lc);
}
