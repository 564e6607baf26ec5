// SPDX-License-Identifier: GPL-2.0
/*
 * Dump side: for each QEMU process, find guest RAM, write it as a fixed-ram
 * image in parallel, make it durable, then hand the RAM ranges to the
 * guardian so that CRIU's own memory dump finds them empty. The timeline
 * and the safety argument are in Documentation/design.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "clock.h"
#include "criu-plugin.h"

#include "cgroup.h"
#include "ckpt-id.h"
#include "criu-opts.h"
#include "detect.h"
#include "dump.h"
#include "fault-inject.h"
#include "fixedram.h"
#include "handoff.h"
#include "kvm-dump.h"
#include "live.h"
#include "log.h"
#include "proc.h"
#include "ramblocks.h"
#include "uffd-busy.h"
#include "dump-writer.h"

#define MAX_QEMUS 16
#define UFFD_BUSY_WAIT_MS 60000	/* for an earlier dump's guardian to finish */

struct qemu_dump {
	pid_t pid;
	struct ram_want want[RAM_MAX_BLOCKS];
	int nr_want;		/* 0: no monitor answer, use the command line */
	struct fr_image img;	/* open from creation until the handoff */
	struct fr_image base;	/* incremental dump: the earlier image, if any */
	char name[64];		/* the image's file name */
	struct live_ctx *live;	/* write tracking of the live phase, if any */
	struct handoff *handoff;
	bool complete;		/* the image is complete: removed again if the dump fails */
};

static struct qemu_dump qemus[MAX_QEMUS];
static int nr_qemus;

static struct qemu_dump *find_qemu(pid_t pid, bool create)
{
	int i;

	for (i = 0; i < nr_qemus; i++)
		if (qemus[i].pid == pid)
			return &qemus[i];
	if (!create || nr_qemus == MAX_QEMUS)
		return NULL;
	memset(&qemus[nr_qemus], 0, sizeof(qemus[0]));
	qemus[nr_qemus].pid = pid;
	qemus[nr_qemus].img.fd = qemus[nr_qemus].img.meta_fd = -1;
	qemus[nr_qemus].base.fd = qemus[nr_qemus].base.meta_fd = -1;
	return &qemus[nr_qemus++];
}

/* The dump state of pid; NULL with *ret 0 (plugin disabled) or -ENOSPC. */
static struct qemu_dump *dump_state(const struct qp_config *c, pid_t pid, int *ret)
{
	struct qemu_dump *d = c->enabled ? find_qemu(pid, true) : NULL;

	*ret = c->enabled && !d ? -ENOSPC : 0;
	return d;
}

/* The pid in QEMU's own namespace: the last field of NSpid. */
pid_t qp_ns_pid(pid_t pid)
{
	char nspid[256], *last;
	pid_t ns_pid;

	if (proc_status_field(pid, "NSpid", nspid, sizeof(nspid)))
		return pid;
	last = strrchr(nspid, '\t');
	ns_pid = atoi(last ? last + 1 : nspid);
	return ns_pid > 0 ? ns_pid : pid;
}

/*
 * Private anonymous blocks are handed over by replacing their VMAs. Shared
 * blocks keep their VMAs and are punched instead, which is safe only for a
 * memfd or shared anonymous memory that no other process maps
 * (handoff_shared_prepare() checks, and maps the file pages QEMU has not,
 * so that the writer sees them). Named files and hugetlb stay with CRIU.
 */
static void drop_unsupported(pid_t pid, struct ram_layout *l)
{
	const struct ram_block *b;
	int i, n = 0;

	for (i = 0; i < l->nr; i++) {
		b = &l->blocks[i];
		if (b->backing == FR_BACKING_ANON_PRIVATE ||
		    (b->backing == FR_BACKING_SHARED_FD &&
		     !handoff_shared_prepare(pid, b->name, b->host_addr, b->length, b->page_size))) {
			l->blocks[n++] = *b;
			continue;
		}
		pr_warn("pid %d: RAM block %s is %s: left to CRIU\n", pid, b->name, fr_backing_name(b->backing));
	}
	l->nr = n;
}

static int discover(const struct qp_config *c, const struct qemu_proc *q, struct qemu_dump *d,
		    struct ram_layout *layout)
{
	struct ram_want cmdline_want;
	const struct ram_want *want = d->want;
	int nr = d->nr_want, ret, i;

	if (!nr) {
		ram_want_from_cmdline(q, &cmdline_want, &nr);
		want = &cmdline_want;
	}
	ret = ram_locate(q->pid, want, nr, c->min_block_bytes, layout);
	if (ret)
		return ret;
	drop_unsupported(q->pid, layout);
	/*
	 * TCG's code buffer is QEMU's largest memory besides guest RAM (45 MiB
	 * resident on a busy guest): saved like RAM, CRIU need not copy it
	 * while the VM is frozen. A KVM QEMU has none.
	 */
	if (c->tcg_code && !q->kvm) {
		ret = ram_locate_tcg_code(q->pid, c->min_block_bytes, layout);
		if (ret)
			return ret;
	}
	for (i = 0; i < layout->nr; i++)
		pr_info("pid %d: %s %s at %#llx, %llu MiB, %s\n", q->pid,
			layout->blocks[i].exec ? "TCG code buffer" : "RAM block", layout->blocks[i].name,
			(unsigned long long)layout->blocks[i].host_addr,
			(unsigned long long)layout->blocks[i].length >> 20,
			fr_backing_name(layout->blocks[i].backing));
	return 0;
}

static int image_from_layout(struct fr_image *img, pid_t ns_pid, const struct ram_layout *l)
{
	int i, ret;

	ret = fr_image_init(img, ns_pid, l->nr);
	if (ret)
		return ret;
	for (i = 0; i < l->nr; i++) {
		struct fr_block *b = &img->blocks[i];

		snprintf(b->name, sizeof(b->name), "%s", l->blocks[i].name);
		b->host_addr = l->blocks[i].host_addr;
		b->length = l->blocks[i].length;
		b->page_size = l->blocks[i].page_size;
		b->backing = l->blocks[i].backing;
		b->exec = l->blocks[i].exec;
	}
	return fr_layout(img);
}

static void log_write_stats(pid_t pid, const struct ram_io_stats *st)
{
	double mb = st->bytes_written / 1048576.0;

	pr_info("pid %d: RAM saved: %llu pages, %llu populated, %llu zero skipped, %llu written "
		"(%.1f MiB) in %.1f ms (%.0f MiB/s)\n",
		pid, (unsigned long long)st->pages_total, (unsigned long long)st->pages_scanned_present,
		(unsigned long long)st->pages_zero, (unsigned long long)st->pages_written, mb, st->ms,
		st->ms > 0 ? mb * 1000 / st->ms : 0);
}

static struct ram_io_opts io_opts(const struct qp_config *c, const struct qemu_dump *d)
{
	return (struct ram_io_opts){ .workers = c->workers, .odirect = c->odirect,
				     .base = d->base.fd >= 0 ? &d->base : NULL,
				     .base_verify = c->incremental_verify };
}

/*
 * Where the base lies: base_image (an image file or a directory holding
 * qemu-ram-<pid>.img; relative paths start at the image directory, like
 * --prev-images-dir), else CRIU's parent link. Returns a directory fd and
 * sets *name for a file, or -1: no base.
 */
static int base_dir(const struct qp_config *c, const char **name)
{
	int imgdir = criu_get_image_dir(), dfd;
	struct stat st;

	if (!c->base_image[0]) {
		/* criu dump --prev-images-dir DIR links DIR as "parent". */
		dfd = openat(imgdir, "parent", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 && errno != ENOENT)
			pr_warn("incremental: cannot open the parent image directory: %s\n",
				strerror(errno));
		return dfd;
	}
	if (fstatat(imgdir, c->base_image, &st, 0)) {
		pr_warn("incremental: base %s: %s; full dump\n", c->base_image, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		*name = c->base_image;
		return dup(imgdir);
	}
	dfd = openat(imgdir, c->base_image, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		pr_warn("incremental: base %s: %s; full dump\n", c->base_image, strerror(errno));
	return dfd;
}

static uint64_t present_bytes(const struct fr_image *img)
{
	uint64_t n = 0;
	uint32_t i;

	for (i = 0; i < img->nr_blocks; i++)
		n += img->blocks[i].nr_present * img->blocks[i].page_size;
	return n;
}

static bool same_file(int fd, int dfd, const char *name)
{
	struct stat a, b;

	return !fstat(fd, &a) && !fstatat(dfd, name, &b, 0) && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/*
 * The base of an incremental dump: the same VM's image from an earlier
 * dump. It is only read; a missing or unusable one means a full dump,
 * never a failed one (with incremental_verify, a wrong base costs time,
 * not correctness).
 */
static void open_base(const struct qp_config *c, pid_t pid, struct qemu_dump *d)
{
	const char *name = d->name;
	char err[512];
	int dfd, ret;

	if (!c->incremental)
		return;
	dfd = base_dir(c, &name);
	if (dfd < 0)
		return;
	if (same_file(d->img.fd, dfd, name)) {
		pr_warn("pid %d: the base image is the image being written; full dump\n", pid);
		ret = -EEXIST;
	} else {
		ret = fr_open(&d->base, dfd, name, err, sizeof(err));
	}
	close(dfd);
	if (ret) {
		if (ret != -ENOENT && ret != -EEXIST)
			pr_warn("pid %d: base image unusable (%s); full dump\n", pid, err);
		fr_close(&d->base);	/* what a failed fr_open() left */
		return;
	}
	pr_info("pid %d: incremental dump: base %s%s%s%s (%llu MiB of data)\n", pid,
		c->base_image[0] ? c->base_image : "parent", name == d->name ? "/" : "",
		name == d->name ? name : "", c->incremental_verify ? ", verified by bytes" : "",
		(unsigned long long)(present_bytes(&d->base) >> 20));
}

/* Discover guest RAM and create the (still incomplete) image for it. */
static int create_image(const struct qp_config *c, const struct qemu_proc *q, struct qemu_dump *d)
{
	pid_t ns_pid = qp_ns_pid(q->pid);
	struct ram_layout layout;
	int ret;

	ret = ckpt_id_dump_supported();
	if (ret)
		return ret;
	ret = discover(c, q, d, &layout);
	if (ret)
		return ret;
	if (!layout.nr) {
		pr_warn("pid %d: no guest RAM found; CRIU dumps all memory itself\n", q->pid);
		return -ENOENT;
	}
	fr_image_name(d->name, sizeof(d->name), ns_pid);
	ret = image_from_layout(&d->img, ns_pid, &layout);
	snprintf(d->img.criu_run_id, sizeof(d->img.criu_run_id), "%s", ckpt_id_run_id());
	if (!ret)
		ret = fr_create(&d->img, criu_get_image_dir(), d->name, c->odirect ? O_DIRECT : 0);
	if (ret) {
		pr_err("pid %d: cannot create %s: %s\n", q->pid, d->name, strerror(-ret));
		return ret;
	}
	open_base(c, q->pid, d);
	return 0;
}

/*
 * An image of a dump that did not succeed must not stay behind: beside
 * older CRIU images in the same directory it would look like a checkpoint.
 * A guardian that still gives pages back holds its own open file.
 */
static void drop_image(struct qemu_dump *d)
{
	live_stop(d->live);
	d->live = NULL;
	fr_close(&d->base);
	if ((d->img.fd >= 0 || d->complete) && unlinkat(criu_get_image_dir(), d->name, 0) && errno != ENOENT)
		pr_err("pid %d: cannot remove %s of the failed dump: %s\n", d->pid, d->name, strerror(errno));
	d->complete = false;
	fr_close(&d->img);
}

/*
 * For the discard tests: CRIU_QEMU_TEST_PAUSE_MS=<ms> makes the live phase
 * wait that long after pass 1 (logged), so that a test can make the guest
 * give memory back between passes.
 */
static int test_pause_after_pass_1(struct live_ctx *lc)
{
	unsigned ms = fault_pause_ms();
	int ret;

	if (!ms)
		return 0;
	ret = live_pass(lc, NULL);
	if (ret)
		return ret;
	pr_warn("test pause: %u ms after live pass 1\n", ms);
	usleep(ms * 1000);
	return 0;
}

static int live_phase(const struct qp_config *c, pid_t pid, struct qemu_dump *d)
{
	struct live_opts lo = { .downtime_ms = c->downtime_ms, .max_passes = c->live_max_passes,
				.max_ms = c->live_max_ms };
	struct ram_io_opts io = io_opts(c, d);
	double t0 = now_ms();
	int ret;

	ret = live_start(pid, &d->img, &io, &d->live);
	if (!ret)
		ret = test_pause_after_pass_1(d->live);
	if (!ret)
		ret = live_converge(d->live, &lo);
	if (ret) {
		pr_warn("pid %d: live pre-dump failed (%s); RAM is copied after the freeze\n", pid,
			strerror(-ret));
		return ret;
	}
	pr_info("pid %d: live phase done in %.1f ms\n", pid, now_ms() - t0);
	fault_crash_point("live");
	return 0;
}

/*
 * An engine may freeze the container before it asks for the dump
 * (containerd pauses the task for the whole checkpoint). A frozen QEMU
 * answers no monitor -- our connection would wait in its listen queue,
 * where CRIU refuses to dump the socket -- and cannot be stopped to set up
 * write tracking; nor would a live phase gain anything, since the guest
 * does not run. So neither is tried: blocks come from the command line and
 * the maps, and all of RAM is copied at CHECKPOINT_DEVICES.
 */
static bool frozen_before_dump(pid_t pid)
{
	int ret = cgroup_task_frozen(pid);

	if (ret < 0)
		pr_warn("pid %d: cannot read its freezer state (%s); assuming it runs\n", pid,
			strerror(-ret));
	if (ret <= 0)
		return false;
	pr_info("pid %d: its cgroup is frozen (an engine paused it): no monitor query, "
		"no live pre-dump; RAM is copied after the freeze\n", pid);
	return true;
}

static int pause_one(const struct qp_config *c, const struct qemu_proc *q, struct qemu_dump *d)
{
	int ret;

	ret = uffd_wait_unregistered(q->pid, UFFD_BUSY_WAIT_MS);
	if (ret < 0)
		return ret;
	if (frozen_before_dump(q->pid))
		return 0;
	if (ram_query_monitor(q, c->qmp_timeout_ms, d->want, &d->nr_want))
		d->nr_want = 0;
	else
		pr_info("pid %d: monitor reports %d RAM blocks\n", q->pid, d->nr_want);
	/* Without a live phase nothing is written before the freeze. */
	if (!c->live || create_image(c, q, d))
		return 0;
	if (live_phase(c, q->pid, d))
		drop_image(d);	/* CHECKPOINT_DEVICES starts afresh */
	return 0;
}

/*
 * CRIU arms alarm(opts.timeout) before PAUSE_DEVICES, and its SIGALRM
 * handler fails the dump: waiting for an earlier guardian and the live
 * phase may take longer than that, so the remaining time is put aside and
 * restored afterwards (CRIU disarms it itself before the freeze copy).
 */
int qp_dump_pause(const struct qp_config *c, const struct qemu_proc *q)
{
	unsigned alarm_left;
	struct qemu_dump *d;
	int ret;

	d = dump_state(c, q->pid, &ret);
	if (!d)
		return ret;
	fault_crash_point("pause-devices");
	alarm_left = alarm(0);
	ret = kvm_dump_prepare(q->pid);
	if (!ret)
		ret = pause_one(c, q, d);
	if (alarm_left)
		alarm(alarm_left);
	return ret;
}

/* Frozen: copy what the live phase has not, or everything. */
static int copy_frozen(const struct qp_config *c, pid_t pid, struct qemu_dump *d)
{
	struct ram_io_opts io = io_opts(c, d);
	struct live_pass_stat ls;
	struct ram_io_stats st;
	int ret;

	if (d->live) {
		ret = live_final(d->live, &ls);
		fault_crash_point("final-pass");
		live_stop(d->live);
		d->live = NULL;
		if (!ret)
			return 0;
		pr_warn("pid %d: live final pass failed (%s); copying all RAM\n", pid, strerror(-ret));
	}
	ret = ram_write_image(pid, &d->img, &io, &st);
	if (ret) {
		pr_err("pid %d: writing guest RAM failed: %s\n", pid, strerror(-ret));
		return ret;
	}
	log_write_stats(pid, &st);
	return 0;
}

int qp_dump_checkpoint(const struct qp_config *c, const struct qemu_proc *q)
{
	struct qemu_dump *d;
	double t0;
	int ret;

	/* KVM first: it fails alone, before any RAM is moved. */
	ret = kvm_dump_checkpoint(q->pid);
	if (ret)
		return ret;
	d = dump_state(c, q->pid, &ret);
	if (!d)
		return ret;
	fault_crash_point("checkpoint-devices");
	if (d->img.fd < 0 && create_image(c, q, d))
		return 0;	/* nothing of ours: CRIU dumps RAM itself */
	ret = copy_frozen(c, q->pid, d);
	fr_close(&d->base);
	t0 = now_ms();
	if (!ret)
		ret = fr_finish(&d->img);
	d->complete = !ret;
	if (!ret)
		ret = ckpt_id_register_image(d->name);
	if (ret) {
		pr_err("pid %d: saving guest RAM into %s failed: %s\n", q->pid, d->name, strerror(-ret));
		drop_image(d);
		return ret;
	}
	pr_info("pid %d: %s complete and durable (fsync + header %.1f ms), CRIU run %s\n", q->pid,
		d->name, now_ms() - t0, d->img.criu_run_id);
	fault_crash_point("before-handoff");
	ret = handoff_start(q->pid, &d->img, d->name, &d->handoff);
	if (ret && !d->handoff)
		drop_image(d);
	fr_close(&d->img);
	if (!ret)
		fault_crash_point("after-handoff");
	return ret;
}

/*
 * What CRIU does with the tasks after a successful dump, from its
 * opts.final_state in CLI and RPC mode alike (criu-opts.c). Unknown (RPC
 * mode with a CRIU whose options we cannot read) counts as "killed": the
 * guardian finds out from the task if it runs on after all (a fault, or
 * CRIU detaching from it) and gives the pages back at once, which costs
 * little; guessing "runs on" would copy every page into a task about to die.
 */
static enum handoff_verdict dump_verdict(void)
{
	char source[192];
	enum criu_final f = criu_final_state(source, sizeof(source));

	pr_info("verdict: %s (from %s)\n", criu_final_name(f), source);
	return f == CRIU_FINAL_ALIVE || f == CRIU_FINAL_STOPPED ? HANDOFF_GIVE_BACK : HANDOFF_DONE;
}

void qp_dump_finish(int ret)
{
	enum handoff_verdict v = HANDOFF_GIVE_BACK;
	int i;

	if (nr_qemus)
		fault_crash_point("exit-hook");
	if (ret == 0 && nr_qemus)
		v = dump_verdict();
	for (i = 0; i < nr_qemus; i++) {
		if (qemus[i].live || qemus[i].img.fd >= 0 || (ret && qemus[i].complete)) {
			pr_info("pid %d: dump %s; removing %s\n", qemus[i].pid,
				ret ? "failed" : "ended before the freeze copy", qemus[i].name);
			drop_image(&qemus[i]);
		}
		if (!qemus[i].handoff)
			continue;
		pr_info("pid %d: dump %s: guardian %s\n", qemus[i].pid, ret ? "failed" : "done",
			v == HANDOFF_DONE ? "exits with the task" : "gives the pages back");
		handoff_finish(qemus[i].handoff, v);
		qemus[i].handoff = NULL;
	}
	nr_qemus = 0;
	kvm_dump_finish(ret);
	ckpt_id_dump_done();
}
