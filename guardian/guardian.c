// SPDX-License-Identifier: GPL-2.0
/*
 * The guardian process: holds a QEMU task's userfaultfd after the handoff
 * and keeps its guest RAM safe. One thread, one poll loop over the task's
 * pidfd, the control socket and the userfaultfd:
 *
 *   HOLD       serve faults from the image, follow REMAP/REMOVE/UNMAP
 *              (a REMOVE of an announced shared range is its punch, not
 *              a discard); wait for the verdict
 *   WAIT_EXIT  "done": the task is about to be killed while still stopped;
 *              if it faults, CRIU lets go of it (it is no longer traced but
 *              alive), or it is still alive after the timeout, the verdict
 *              was wrong -- CRIU resumed it after a failed post-dump
 *              script, or ran with --leave-running where the plugin could
 *              not tell -- and everything is given back at once
 *   GIVE_BACK  copy every missing page back in runs of up to a chunk,
 *              looking at the userfaultfd between 2 MiB batches so faults
 *              wait little; then unregister and exit
 *
 * The task's death ends everything at any time. Nothing else does: an exit
 * while a range is registered and not given back would turn guest RAM into
 * zeros, so errors are logged and retried, never fatal, once the
 * userfaultfd is held.
 */
#define LOG_PREFIX "guardian: "

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/userfaultfd.h>

#include "clock.h"
#include "fixedram.h"
#include "guardian.h"
#include "guardian-cgroup.h"
#include "guardian-map.h"
#include "guardian-proto.h"
#include "guardian-uffd.h"
#include "log.h"
#include "proc.h"
#include "uapi-compat.h"

#define GD_BATCH_BYTES		(2u << 20)	/* give-back between looks at the userfaultfd */
#define GD_MSGS			64		/* uffd messages per read */
#define GD_HELLO_TIMEOUT_MS	10000
#define GD_DONE_TIMEOUT_MS	10000		/* default for HELLO's 0 */
#define GD_TRACER_POLL_MS	5		/* WAIT_EXIT: does CRIU still trace the task? */
#define GD_RETRY_MS		1		/* after EAGAIN: the address space is changing */
#define GD_IO_RETRY_MAX_MS	1000		/* image unreadable: retry at most this seldom */
#define GP_RANGE_COLLAPSE	(1u << 31)	/* private: unregistered, MADV_COLLAPSE pending */

enum gd_state {
	GD_HOLD,
	GD_WAIT_EXIT,
	GD_GIVE_BACK,
};

struct gd_stats {
	uint64_t faults, fault_copy, fault_zero, fault_exist, fault_around;
	double fault_ms_sum, fault_ms_max;
	uint64_t gb_pages, gb_skipped, gb_calls;
	uint64_t remaps, punches, removed_pages, unmapped_pages;
};

struct guardian {
	int ctl, uffd, pidfd;
	pid_t pid;
	char image[GP_NAME_MAX];
	struct fr_image img;
	struct gd_map map;
	struct gd_pages pages;
	enum gd_state state;
	unsigned done_timeout_ms;
	double t0, t_state, deadline;
	bool retry;		/* last attempt met EAGAIN */
	bool io_failing;	/* this round could not read the image */
	unsigned io_backoff_ms;	/* image unreadable: wait this long between rounds */
	uint64_t io_rounds;	/* rounds in a row that could not read it */
	bool strict;		/* GP_HELLO_STRICT: lazy restore */
	bool lingering;		/* given back, but a PREPAREd range is still unresolved */
	bool exit;
	uint64_t *deferred;	/* fault addresses to serve again (EAGAIN) */
	size_t nr_deferred, cap_deferred;
	struct gd_stats st;
};

static double mib(uint64_t bytes)
{
	return bytes / 1048576.0;
}

/* ------------------------------------------------------------ faults */

static void defer_fault(struct guardian *g, uint64_t addr)
{
	if (g->nr_deferred == g->cap_deferred) {
		size_t cap = g->cap_deferred ? g->cap_deferred * 2 : 64;
		uint64_t *n = realloc(g->deferred, cap * sizeof(*n));

		if (!n) {
			/* Let the thread fault again: a new message will come. */
			pr_err("out of memory deferring a fault at %#" PRIx64 "\n", addr);
			gd_uffd_wake(g->uffd, addr & ~4095ULL, 4096);
			return;
		}
		g->deferred = n;
		g->cap_deferred = cap;
	}
	g->deferred[g->nr_deferred++] = addr;
	g->retry = true;
}

static void mark_filled(struct guardian *g, uint32_t block, uint64_t page, uint64_t n)
{
	uint64_t *filled = g->map.blocks[block].filled;

	while (n--)
		fr_bit_set(filled, page++);
}

/*
 * The image's copy of a page: from its verified chunk (whole), or read
 * alone. After a dump the task had these pages a moment ago and a damaged
 * chunk is given back as stored (gd_pages_chunk logs it); in strict mode
 * (lazy restore) the task never had them: kill it rather than let it run
 * on memory that fails its checksum.
 */
static const void *image_page(struct guardian *g, uint32_t block, uint64_t page, bool whole)
{
	uint64_t bad = g->pages.bad_chunks;
	const void *src = whole ? gd_pages_chunk(&g->pages, block, page) : gd_pages_one(&g->pages, block, page);

	if (!g->strict || g->pages.bad_chunks == bad)
		return src;
	pr_err("lazy restore of pid %d: the image is corrupt; killing the task so that it "
	       "never runs with wrong memory\n", g->pid);
	syscall(SYS_pidfd_send_signal, g->pidfd, SIGKILL, NULL, 0);
	return NULL;
}

/* What a fault at a known page gets: the image page or zeros. */
static long fill_page(struct guardian *g, uint32_t block, uint64_t page, uint64_t dst, uint64_t ps)
{
	const struct gd_block *b = &g->map.blocks[block];
	const void *src;

	/* Discarded by the guest, or never written: zero, as without us. */
	if (fr_bit_test(b->removed, page) || !fr_bit_test(b->fb->bitmap, page)) {
		g->st.fault_zero++;
		return gd_uffd_zero(g->uffd, dst, ps);
	}
	/* Whole when fault_around() places the rest of the chunk next. */
	src = image_page(g, block, page, g->strict || g->state == GD_GIVE_BACK);
	if (!src)
		return g->strict && g->pages.bad_chunks ? -ESRCH : -EIO;
	g->st.fault_copy++;
	return gd_uffd_copy(g->uffd, dst, src, ps);
}

static long give_back_run(struct guardian *g, const struct gd_run *run);

/*
 * Once pages go back, a fault also places the rest of its chunk, read and
 * verified for it anyway: a guest touching memory in order would otherwise
 * fault once per page, and wait on the guardian each time. Not while the
 * dump holds the task: a page placed then would be in CRIU's images too.
 */
static void fault_around(struct guardian *g, uint32_t block, uint64_t page)
{
	uint64_t cp = g->map.blocks[block].fb->chunk_pages, from = page / cp * cp, end = from + cp;
	uint64_t ps = gd_page_size(&g->map, block);
	struct gd_run run;
	long ret;

	if (g->state != GD_GIVE_BACK)
		return;
	while (gd_map_run_in(&g->map, block, from, end, &run)) {
		ret = give_back_run(g, &run);
		if (ret <= 0)
			return;
		g->st.fault_around += ret / ps;
		from = run.page + ret / ps;
	}
}

static int serve_fault(struct guardian *g, uint64_t addr)
{
	double t = now_ms();
	uint64_t page = 0, ps = 4096, dst;
	long ri = gd_map_lookup(&g->map, addr, &page);
	uint32_t block = 0;
	bool known;
	long ret;

	if (ri < 0 && gd_map_fault_placement(&g->map, addr) >= 0)
		ri = gd_map_lookup(&g->map, addr, &page);
	if (ri >= 0)
		block = g->map.ranges[ri].block;
	/* A shared range before its punch: filled, but never marked so (the punch may follow). */
	known = ri >= 0 || !gd_map_lookup_pending(&g->map, addr, &block, &page);
	if (known)
		ps = gd_page_size(&g->map, block);
	dst = addr & ~(ps - 1);
	if (known) {
		ret = fill_page(g, block, page, dst, ps);
	} else {
		/* Registered but not guest RAM we know: never leave a thread hanging. */
		pr_warn("fault at %#" PRIx64 " outside every range, zero page\n", addr);
		ret = gd_uffd_zero(g->uffd, dst, ps);
	}
	if (ret == -EAGAIN || ret == -ENOMEM || ret == -EIO) {
		g->io_failing |= ret == -EIO;
		defer_fault(g, addr);
		return 0;
	}
	if (ret == -ESRCH)
		return -ESRCH;
	if (ret == -EEXIST)
		g->st.fault_exist++;
	if (ret < 0) {
		/* Filled meanwhile (EEXIST) or gone: the faulting thread must retry. */
		if (ret != -EEXIST)
			pr_warn("fault at %#" PRIx64 ": %s\n", addr, strerror((int)-ret));
		gd_uffd_wake(g->uffd, dst, ps);
	}
	if (ri >= 0 && (ret > 0 || ret == -EEXIST))
		mark_filled(g, block, page, 1);
	if (ri >= 0 && ret > 0)
		fault_around(g, block, page);
	t = now_ms() - t;
	g->st.faults++;
	g->st.fault_ms_sum += t;
	if (t > g->st.fault_ms_max)
		g->st.fault_ms_max = t;
	return 0;
}

static int retry_deferred(struct guardian *g)
{
	size_t n = g->nr_deferred, i;
	uint64_t *list = g->deferred;
	int ret = 0;

	g->deferred = NULL;
	g->nr_deferred = g->cap_deferred = 0;
	for (i = 0; i < n && !ret; i++)
		ret = serve_fault(g, list[i]);
	free(list);
	return ret;
}

/* ------------------------------------------------------------ state */

static void start_give_back(struct guardian *g, const char *why)
{
	if (g->state == GD_GIVE_BACK)
		return;
	pr_info("giving guest RAM back: %s (%.0f ms after start)\n", why, now_ms() - g->t0);
	g->state = GD_GIVE_BACK;
	g->t_state = now_ms();
}

/*
 * CRIU traces the task from the freeze until it kills or releases it: a
 * task that is alive and not traced once the done verdict is here was let
 * go (--leave-running, --leave-stopped, a failed post-dump script) or CRIU
 * died -- also when that happened before the guardian read the verdict.
 * True while the task is traced, or when that cannot be read.
 */
static bool task_traced(pid_t pid)
{
	char tracer[32], state[32];

	if (proc_status_field(pid, "TracerPid", tracer, sizeof(tracer)) || atoi(tracer) != 0)
		return true;
	/* Untraced: read its state only then (this runs every few ms). */
	if (proc_status_field(pid, "State", state, sizeof(state)))
		return true;
	/* Dead or dying: released by its death, not by CRIU. */
	return state[0] == 'Z' || state[0] == 'X';
}

static void watch_tracer(struct guardian *g)
{
	struct pollfd p = { .fd = g->pidfd, .events = POLLIN };

	if (g->state != GD_WAIT_EXIT || task_traced(g->pid))
		return;
	if (poll(&p, 1, 0) == 1)
		return;	/* it just exited: the main loop sees it */
	start_give_back(g, "CRIU let go of the task after the done verdict: it runs again");
}

static void on_pagefault(struct guardian *g, const struct uffd_msg *m)
{
	if (g->state == GD_WAIT_EXIT)
		start_give_back(g, "the task faults after the done verdict: it runs again");
	if (serve_fault(g, m->arg.pagefault.address) == -ESRCH)
		g->exit = true;
}

static void on_remap(struct guardian *g, const struct uffd_msg *m)
{
	uint64_t from = m->arg.remap.from, to = m->arg.remap.to, len = m->arg.remap.len;
	int ret;

	g->st.remaps++;
	ret = gd_map_remap(&g->map, from, to, len);
	pr_debug("REMAP %#" PRIx64 " -> %#" PRIx64 " (%" PRIu64 " KiB): %d\n", from, to,
		 len >> 10, ret);
	if (ret)
		pr_err("cannot track REMAP %#" PRIx64 " -> %#" PRIx64 ": %s\n", from, to,
		       strerror(-ret));
}

static void on_discard(struct guardian *g, uint64_t start, uint64_t end, bool unmapped)
{
	uint64_t n = gd_map_discard(&g->map, start, end, unmapped);

	if (unmapped)
		g->st.unmapped_pages += n;
	else
		g->st.removed_pages += n;
	pr_debug("%s %#" PRIx64 "-%#" PRIx64 ": %" PRIu64 " pages never to come back\n",
		 unmapped ? "UNMAP" : "REMOVE", start, end, n);
}

/*
 * A REMOVE that is exactly an announced shared range is the handoff's
 * punch: from the moment we read it, the kernel frees the pages and only
 * the image holds them. Any other REMOVE is the guest discarding memory.
 * The punch starts only once we have acked its PREPARE, so a REMOVE of no
 * announced range is never a punch. (Reading the control socket here
 * instead once took a PLACED too, and a punch for a discard of it all.)
 */
static void on_remove(struct guardian *g, uint64_t start, uint64_t end)
{
	long ri = gd_map_punch(&g->map, start, end);

	if (ri == -ENOENT) {
		on_discard(g, start, end, false);
		return;
	}
	if (ri < 0) {
		pr_err("cannot track the punch of %#" PRIx64 "-%#" PRIx64 ": %s; serving it unplaced\n",
		       start, end, strerror((int)-ri));
		return;
	}
	g->st.punches++;
	pr_debug("REMOVE %#" PRIx64 "-%#" PRIx64 ": the punch of block %u, placed\n", start, end,
		 g->map.ranges[ri].block);
}

static void on_uffd_msg(struct guardian *g, const struct uffd_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		on_pagefault(g, m);
		break;
	case UFFD_EVENT_REMAP:
		on_remap(g, m);
		break;
	case UFFD_EVENT_REMOVE:
		on_remove(g, m->arg.remove.start, m->arg.remove.end);
		break;
	case UFFD_EVENT_UNMAP:
		on_discard(g, m->arg.remove.start, m->arg.remove.end, true);
		break;
	default:
		pr_warn("unexpected userfaultfd event %u\n", m->event);
	}
}

/* Read and handle every queued message; events unblock the task once read. */
static void drain_uffd(struct guardian *g)
{
	struct uffd_msg msgs[GD_MSGS];
	ssize_t n, i;

	if (g->uffd < 0)
		return;
	for (;;) {
		n = read(g->uffd, msgs, sizeof(msgs));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno != EAGAIN)
				pr_perror("read userfaultfd");
			break;
		}
		for (i = 0; i < n / (ssize_t)sizeof(msgs[0]) && !g->exit; i++)
			on_uffd_msg(g, &msgs[i]);
		if (n < (ssize_t)sizeof(msgs))
			break;
	}
	if (g->nr_deferred && !g->exit && retry_deferred(g) == -ESRCH)
		g->exit = true;
}

/* ------------------------------------------------------------ control */

static bool is_userfaultfd(int fd)
{
	char link[64];

	return proc_fd_link(PROC_SELF, fd, link, sizeof(link)) > 0 &&
	       !strcmp(link, "anon_inode:[userfaultfd]");
}

static void on_uffd(struct guardian *g, int fd)
{
	struct gp_msg ack = { .status = 0 };

	if (g->uffd >= 0 || fd < 0 || !is_userfaultfd(fd)) {
		pr_err("UFFD message without a (new) userfaultfd\n");
		ack.status = -EINVAL;
		if (fd >= 0)
			close(fd);
	} else {
		g->uffd = fd;
		pr_info("holding the userfaultfd of pid %d (%.0f ms after start)\n", g->pid,
			now_ms() - g->t0);
	}
	if (gp_send(g->ctl, GP_UFFD_ACK, &ack, -1))
		pr_warn("cannot ack the userfaultfd\n");
}

/* The plugin moves or punches the range only after this (guardian-proto.h). */
static void ack_prepare(struct guardian *g, int status)
{
	struct gp_msg ack = { .status = status };

	if (gp_send(g->ctl, GP_PREPARE_ACK, &ack, -1))
		pr_warn("cannot ack a PREPARE\n");
}

static void on_range(struct guardian *g, const struct gp_msg *m)
{
	const struct gp_range *r = &m->range;
	int ret;

	if (m->type == GP_PREPARE) {
		ret = gd_map_prepare(&g->map, r);
		ack_prepare(g, ret);
	} else {
		ret = gd_map_resolve(&g->map, r, m->type == GP_PLACED);
	}
	if (m->type == GP_PLACED)
		pr_info("block %u '%s' +%#" PRIx64 " (%.0f MiB) is empty in the task at %#" PRIx64
			"%s, backed by the image\n", r->block, r->block < g->img.nr_blocks ?
			g->img.blocks[r->block].name : "?", r->offset, mib(r->len), r->addr,
			r->flags & GP_RANGE_SHARED ? " (shared, punched)" : "");
	else if (m->type == GP_PLACE_FAILED)
		pr_warn("block %u +%#" PRIx64 " was not placed; nothing held for it\n",
			r->block, r->offset);
	if (ret)
		pr_err("%s of block %u +%#" PRIx64 ": %s\n", gp_type_name(m->type), r->block,
		       r->offset, strerror(-ret));
}

static void on_ctl_msg(struct guardian *g, const struct gp_msg *m, int fd)
{
	if (m->type != GP_UFFD && fd >= 0)
		close(fd);
	switch (m->type) {
	case GP_UFFD:
		on_uffd(g, fd);
		break;
	case GP_PREPARE:
	case GP_PLACED:
	case GP_PLACE_FAILED:
		on_range(g, m);
		break;
	case GP_VERDICT_DONE:
		if (g->state != GD_HOLD)
			break;
		pr_info("verdict: dump done, the task will be killed; waiting up to %u ms\n",
			g->done_timeout_ms);
		g->state = GD_WAIT_EXIT;
		g->t_state = now_ms();
		g->deadline = g->t_state + g->done_timeout_ms;
		break;
	case GP_VERDICT_GIVE_BACK:
		start_give_back(g, "verdict: the task runs again");
		break;
	default:
		pr_warn("unexpected %s\n", gp_type_name(m->type));
	}
}

static void ctl_closed(struct guardian *g, int err)
{
	if (err)
		pr_warn("control channel: %s\n", strerror(-err));
	close(g->ctl);
	g->ctl = -1;
	if (g->state == GD_HOLD)
		start_give_back(g, "CRIU went away without a verdict");
}

static void drain_ctl(struct guardian *g)
{
	struct gp_msg m;
	int fd, ret;

	while (g->ctl >= 0) {
		ret = gp_recv(g->ctl, &m, &fd);
		if (ret == -EAGAIN)
			return;
		if (ret == -EPROTO)
			continue;
		if (ret <= 0) {
			ctl_closed(g, ret);
			return;
		}
		on_ctl_msg(g, &m, fd);
	}
}

/* ------------------------------------------------------------ give-back */

/* One run: the bytes placed, or -EAGAIN (try later) / -ESRCH (task gone). */
static long give_back_run(struct guardian *g, const struct gd_run *run)
{
	uint64_t ps = gd_page_size(&g->map, run->block);
	const void *src = image_page(g, run->block, run->page, true);
	long ret;

	if (!src && g->strict && g->pages.bad_chunks)
		return -ESRCH;	/* killed */
	if (!src) {
		g->io_failing = true;
		return -EAGAIN;	/* image I/O error, logged: retry rather than lose the page */
	}
	g->st.gb_calls++;
	ret = gd_uffd_copy(g->uffd, run->addr, src, run->n * ps);
	if (ret > 0) {
		mark_filled(g, run->block, run->page, ret / ps);
		g->st.gb_pages += ret / ps;
		return ret;
	}
	if (ret == -EEXIST) {
		/* Faulted in (by us) meanwhile. */
		mark_filled(g, run->block, run->page, 1);
		g->st.gb_skipped++;
		return ps;
	}
	if (ret == -EAGAIN || ret == -ENOMEM || ret == -ESRCH)
		return ret == -ENOMEM ? -EAGAIN : ret;
	/* Not registered where we think: the task must have changed it; never retry. */
	pr_err("giving back %" PRIu64 " pages at %#" PRIx64 ": %s; skipped\n", run->n,
	       run->addr, strerror((int)-ret));
	for (uint64_t i = 0; i < run->n; i++)
		fr_bit_set(g->map.blocks[run->block].removed, run->page + i);
	return ps;
}

/* Up to GD_BATCH_BYTES: 1 more to do, 0 finished, -EAGAIN, -ESRCH. */
static int give_back_batch(struct guardian *g)
{
	uint64_t done = 0;
	struct gd_run run;
	long ret;

	while (done < GD_BATCH_BYTES) {
		if (!gd_map_next_run(&g->map, GD_BATCH_BYTES / 4096, &run))
			return 0;
		ret = give_back_run(g, &run);
		if (ret < 0)
			return (int)ret;
		done += ret;
	}
	return 1;
}

/* MADV_COLLAPSE one PMD at a time: the kernel stops a range at its first failing PMD. */
#define GD_COLLAPSE_BYTES	(2u << 20)

static long collapse_piece(struct guardian *g, uint64_t addr, uint64_t len)
{
	struct iovec iov = { (void *)(uintptr_t)addr, len };
	long ret = -1;

	/* EAGAIN: a running task holds a page lock or the LRU is busy; try again. */
	for (int i = 0; i < 3; i++) {
		ret = syscall(SYS_process_madvise, g->pidfd, &iov, 1, MADV_COLLAPSE, 0);
		if (ret >= 0 || errno != EAGAIN)
			break;
	}
	return ret < 0 ? -errno : 0;
}

/*
 * One call for a whole range gave EINVAL on every restored 2 GiB guest:
 * the kernel gives up a range at the first PMD it may not collapse, and
 * one such PMD anywhere cost all the huge pages behind it. One call per
 * PMD also keeps each call's hold on the task's mm short while its vCPUs
 * run.
 */
static void collapse_thp(struct guardian *g, const struct gd_range *r)
{
	uint64_t off, len, failed = 0;
	double t = now_ms();
	long ret, err = 0;

	for (off = 0; off < r->len; off += len) {
		len = r->len - off < GD_COLLAPSE_BYTES ? r->len - off : GD_COLLAPSE_BYTES;
		ret = collapse_piece(g, r->addr + off, len);
		if (ret == -ESRCH)
			return;
		if (ret) {
			failed += len;
			err = ret;
		}
	}
	if (failed)
		pr_info("MADV_COLLAPSE %#" PRIx64 " (%.0f MiB) in %.1f ms; %.0f MiB in pieces left "
			"as they were (never touched, or busy): %s\n", r->addr, mib(r->len), now_ms() - t,
			mib(failed), strerror((int)-err));
	else
		pr_info("MADV_COLLAPSE %#" PRIx64 " (%.0f MiB) in %.1f ms\n", r->addr, mib(r->len),
			now_ms() - t);
}

/* Every page is back: absent ones now read as zero without us. Returns how many. */
static size_t unregister_ranges(struct guardian *g)
{
	size_t i, n = 0;
	int ret;

	for (i = 0; i < g->map.nr_ranges; i++) {
		struct gd_range *r = &g->map.ranges[i];

		if (r->unregistered)
			continue;
		ret = gd_uffd_unregister(g->uffd, r->addr, r->len);
		if (ret)
			pr_warn("UFFDIO_UNREGISTER %#" PRIx64 " (%" PRIu64 " KiB): %s\n",
				r->addr, r->len >> 10, strerror(-ret));
		r->unregistered = true;
		r->flags |= r->flags & GP_RANGE_THP ? GP_RANGE_COLLAPSE : 0;
		n++;
	}
	return n;
}

/* UFFDIO_COPY maps 4 KiB pages; THP ranges get their huge pages back (slow, so last). */
static void collapse_ranges(struct guardian *g)
{
	size_t i;

	for (i = 0; i < g->map.nr_ranges; i++) {
		struct gd_range *r = &g->map.ranges[i];

		if (!(r->flags & GP_RANGE_COLLAPSE))
			continue;
		r->flags &= ~GP_RANGE_COLLAPSE;
		collapse_thp(g, r);
	}
}

static void report_give_back(struct guardian *g)
{
	double ms = now_ms() - g->t_state;
	uint64_t bytes = g->st.gb_pages * 4096;
	struct gp_msg m = {
		.gave_back = {
			.pages_copied = g->st.gb_pages,
			.pages_skipped = g->st.gb_skipped,
			.ms = (uint64_t)ms,
		},
	};

	pr_info("gave back %" PRIu64 " pages (%.1f MiB) in %" PRIu64 " copies, %.1f ms (%.0f MiB/s); "
		"%" PRIu64 " already faulted in, %" PRIu64 " discarded, %" PRIu64 " unmapped by the task\n",
		g->st.gb_pages, mib(bytes), g->st.gb_calls, ms, ms > 0 ? mib(bytes) * 1000 / ms : 0,
		g->st.gb_skipped, g->st.removed_pages, g->st.unmapped_pages);
	if (g->ctl >= 0 && gp_send(g->ctl, GP_GAVE_BACK, &m, -1))
		pr_debug("CRIU no longer listens\n");
}

static void finish_give_back(struct guardian *g)
{
	if (unregister_ranges(g))
		report_give_back(g);
	collapse_ranges(g);
	if (!g->map.nr_pending) {
		g->exit = true;
		return;
	}
	/*
	 * CRIU died between PREPARE and PLACED: the injected mremap may still
	 * run (a tracee runs on when its tracer dies). Exiting now would drop
	 * the registration it is about to carry over guest RAM; stay until it
	 * shows up as REMAP, is called off, or the task dies.
	 */
	if (!g->lingering)
		pr_warn("%zu range(s) prepared but never confirmed; staying until the task exits\n",
			g->map.nr_pending);
	g->lingering = true;
}

static void step_give_back(struct guardian *g)
{
	int ret;

	g->retry = false;
	if (g->uffd < 0) {
		pr_info("no userfaultfd was handed over, nothing to give back\n");
		g->exit = true;
		return;
	}
	ret = give_back_batch(g);
	if (ret == -ESRCH) {
		g->exit = true;
	} else if (ret == -EAGAIN) {
		g->retry = true;
	} else if (ret == 0) {
		finish_give_back(g);
	} else {
		g->lingering = false;
	}
}

/* ------------------------------------------------------------ main loop */

static int poll_timeout(const struct guardian *g)
{
	double left;

	if (g->retry || g->nr_deferred)
		return g->io_backoff_ms ? (int)g->io_backoff_ms : GD_RETRY_MS;
	if (g->state == GD_GIVE_BACK && !g->lingering)
		return 0;
	if (g->state == GD_WAIT_EXIT) {
		left = g->deadline - now_ms();
		if (left > GD_TRACER_POLL_MS)
			return GD_TRACER_POLL_MS;
		return left > 0 ? (int)left + 1 : 0;
	}
	return -1;
}

/*
 * An image that cannot be read (a failing disk) is tried again, but less
 * and less often, up to once a second: the guest waits for those pages
 * either way, and a retry every millisecond would only hammer the disk.
 */
static void update_io_backoff(struct guardian *g)
{
	if (!g->io_failing) {
		if (g->io_rounds)
			pr_info("the image reads again, after %" PRIu64 " failed rounds\n",
				g->io_rounds);
		g->io_backoff_ms = 0;
		g->io_rounds = 0;
		return;
	}
	if (!g->io_rounds++)
		pr_err("pid %d: the image cannot be read; the guest waits for those pages; "
		       "retrying up to every %d ms\n", g->pid, GD_IO_RETRY_MAX_MS);
	g->io_backoff_ms = g->io_backoff_ms ? g->io_backoff_ms * 2 : GD_RETRY_MS;
	if (g->io_backoff_ms > GD_IO_RETRY_MAX_MS)
		g->io_backoff_ms = GD_IO_RETRY_MAX_MS;
	g->io_failing = false;
}

static void log_faults(const struct guardian *g)
{
	const struct gd_stats *s = &g->st;

	pr_info("served %" PRIu64 " faults (%" PRIu64 " from the image, %" PRIu64 " zero, %" PRIu64
		" already present; %" PRIu64 " pages placed around them), %.1f us average, %.1f us max; %"
		PRIu64 " REMAP events, %" PRIu64 " punches\n",
		s->faults, s->fault_copy, s->fault_zero, s->fault_exist, s->fault_around,
		s->faults ? s->fault_ms_sum * 1000 / s->faults : 0, s->fault_ms_max * 1000, s->remaps,
		s->punches);
}

static void loop(struct guardian *g)
{
	struct pollfd p[3];
	int ret;

	while (!g->exit) {
		p[0] = (struct pollfd){ .fd = g->pidfd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = g->ctl, .events = POLLIN };
		p[2] = (struct pollfd){ .fd = g->uffd, .events = POLLIN };
		ret = poll(p, 3, poll_timeout(g));
		if (ret < 0 && errno != EINTR) {
			pr_perror("poll");
			usleep(10000);
			continue;
		}
		if (ret > 0 && p[0].revents) {
			pr_info("pid %d exited (%.0f ms after start)\n", g->pid, now_ms() - g->t0);
			break;
		}
		if (ret > 0 && p[1].revents)
			drain_ctl(g);
		if ((ret > 0 && p[2].revents) || g->nr_deferred)
			drain_uffd(g);
		if (g->exit)
			break;
		watch_tracer(g);
		if (g->state == GD_WAIT_EXIT && now_ms() >= g->deadline)
			start_give_back(g, "the task is still alive after the done verdict");
		if (g->state == GD_GIVE_BACK)
			step_give_back(g);
		update_io_backoff(g);
	}
	log_faults(g);
}

/* ------------------------------------------------------------ setup */

/* The guardian must outlive casual signals: it may hold the only copy of guest RAM. */
static void setup_process(void)
{
	sigset_t all;
	int fd;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "-1000", 5) != 5)
			pr_debug("cannot protect from the OOM killer: %m\n");
		close(fd);
	}
	if (chdir("/"))
		pr_debug("chdir /: %m\n");
}

/* The pid a pidfd refers to (fdinfo "Pid:"), or -1. */
static pid_t pidfd_pid(int pidfd)
{
	char val[32];
	pid_t pid;

	if (proc_fdinfo_field(PROC_SELF, pidfd, "Pid", val, sizeof(val)) || sscanf(val, "%d", &pid) != 1)
		return -1;
	return pid;
}

static int open_image(struct guardian *g, int image_fd)
{
	char path[64], err[256] = "";
	int ret;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", image_fd);
	ret = fr_open(&g->img, AT_FDCWD, path, err, sizeof(err));
	if (ret) {
		pr_err("image %s: %s\n", g->image, err);
		return ret;
	}
	ret = gd_map_init(&g->map, &g->img);
	if (!ret)
		ret = gd_pages_init(&g->pages, &g->img);
	return ret;
}

/* HELLO -> open and check the image -> HELLO_ACK. */
static int handshake(struct guardian *g, int image_fd)
{
	struct gp_msg m, ack = { .status = 0 };
	int ret;

	ret = gp_recv_type(g->ctl, GP_HELLO, &m, NULL, GD_HELLO_TIMEOUT_MS);
	if (ret) {
		pr_err("no HELLO from the plugin: %s\n", strerror(-ret));
		return ret;
	}
	g->pid = m.hello.pid;
	memcpy(g->image, m.hello.image, sizeof(g->image));
	g->image[sizeof(g->image) - 1] = 0;
	g->done_timeout_ms = m.hello.done_timeout_ms ? m.hello.done_timeout_ms : GD_DONE_TIMEOUT_MS;
	if (m.hello.log_level)
		qp_log_set_level(m.hello.log_level);
	g->strict = m.hello.flags & GP_HELLO_STRICT;

	ret = open_image(g, image_fd);
	if (!ret && g->img.nr_blocks != m.hello.nr_blocks)
		ret = -EBADMSG;
	if (!ret && pidfd_pid(g->pidfd) != g->pid)
		ret = -ESRCH;
	if (ret)
		pr_err("pid %d, image %s: %s\n", g->pid, g->image, strerror(-ret));
	else
		pr_info("pid %d, image %s (%u blocks), done timeout %u ms\n", g->pid, g->image,
			g->img.nr_blocks, g->done_timeout_ms);
	ack.status = ret;
	ack.pid = getpid();
	if (gp_send(g->ctl, GP_HELLO_ACK, &ack, -1) && !ret)
		ret = -EPIPE;
	return ret;
}

static int parse_fd(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return (*s && !*end && v >= 0 && v < 1 << 20) ? (int)v : -1;
}

static int parse_args(int argc, char **argv, struct guardian *g, int *image_fd)
{
	const char *log = NULL;
	int i, fd;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--ctl"))
			g->ctl = parse_fd(argv[i + 1]);
		else if (!strcmp(argv[i], "--image"))
			*image_fd = parse_fd(argv[i + 1]);
		else if (!strcmp(argv[i], "--pidfd"))
			g->pidfd = parse_fd(argv[i + 1]);
		else if (!strcmp(argv[i], "--log"))
			log = argv[i + 1];
		else
			break;
	}
	if (i != argc || g->ctl < 0 || *image_fd < 0 || g->pidfd < 0) {
		fprintf(stderr, "usage: %s --ctl FD --image FD --pidfd FD [--log PATH]\n", argv[0]);
		return -EINVAL;
	}
	if (log) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
			fprintf(stderr, "%s: cannot log to %s: %m\n", argv[0], log);
			return -EINVAL;
		}
		close(fd);
	}
	return 0;
}

static void cleanup(struct guardian *g)
{
	gd_pages_free(&g->pages);
	if (g->map.blocks)
		gd_map_free(&g->map);
	fr_close(&g->img);
	free(g->deferred);
	if (g->uffd >= 0)
		close(g->uffd);
	if (g->ctl >= 0)
		close(g->ctl);
}

/* The guardian's CPU time goes into make bench's cost per GiB. */
static void log_exit(const struct guardian *g)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru)) {
		pr_info("pid %d: exiting (%.0f ms after start)\n", g->pid, now_ms() - g->t0);
		return;
	}
	pr_info("pid %d: exiting (%.0f ms after start; cpu user %.3f s, sys %.3f s)\n", g->pid,
		now_ms() - g->t0, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
		ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
}

int guardian_main(int argc, char **argv)
{
	struct guardian g = { .ctl = -1, .uffd = -1, .pidfd = -1 };
	int image_fd = -1, ret;

	g.img.fd = g.img.meta_fd = -1;
	g.t0 = now_ms();
	qp_log_set_level(LOG_INFO);
	if (parse_args(argc, argv, &g, &image_fd))
		return 2;
	setup_process();
	if (fcntl(g.ctl, F_SETFL, O_NONBLOCK))
		pr_perror("non-blocking control socket");
	ret = handshake(&g, image_fd);
	close(image_fd);
	if (!ret)
		guardian_join_cgroups(g.pid);
	if (!ret)
		loop(&g);
	log_exit(&g);
	cleanup(&g);
	return ret ? 1 : 0;
}
