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

#include "criu-plugin.h"

#include "detect.h"
#include "dump.h"
#include "fixedram.h"
#include "handoff.h"
#include "log.h"
#include "ramblocks.h"
#include "writer.h"

#define MAX_QEMUS 16

struct qemu_dump {
	pid_t pid;
	struct ram_want want[RAM_MAX_BLOCKS];
	int nr_want;		/* 0: no monitor answer, use the command line */
	struct handoff *handoff;
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
	return &qemus[nr_qemus++];
}

/*
 * Fault injection for the safety tests: CRIU_QEMU_TEST_CRASH=<point> makes
 * CRIU die by SIGKILL there, as a crash or an OOM kill would.
 */
static void test_crash_point(const char *point)
{
	const char *want = getenv("CRIU_QEMU_TEST_CRASH");

	if (want && !strcmp(want, point)) {
		pr_warn("test crash point %s: killing CRIU\n", point);
		kill(getpid(), SIGKILL);
	}
}

pid_t qp_ns_pid(pid_t pid)
{
	char path[64], line[256];
	pid_t ns_pid = pid;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return pid;
	while (fgets(line, sizeof(line), f)) {
		char *last;

		if (strncmp(line, "NSpid:", 6))
			continue;
		last = strrchr(line, '\t');
		ns_pid = atoi(last ? last + 1 : line + 6);
	}
	fclose(f);
	return ns_pid > 0 ? ns_pid : pid;
}

int qp_dump_pause(const struct qp_config *c, const struct qemu_proc *q)
{
	struct qemu_dump *d;

	if (!c->enabled)
		return 0;
	d = find_qemu(q->pid, true);
	if (!d)
		return -ENOSPC;
	if (ram_query_monitor(q, c->qmp_timeout_ms, d->want, &d->nr_want))
		d->nr_want = 0;
	else
		pr_info("pid %d: monitor reports %d RAM blocks\n", q->pid, d->nr_want);
	return 0;
}

/*
 * The handoff replaces a range by a private anonymous mapping; doing that to
 * a shared (memfd, file) or hugetlb block would change what QEMU shares with
 * other processes, so those blocks stay with CRIU's own dump for now.
 */
static void drop_unsupported(pid_t pid, struct ram_layout *l)
{
	int i, n = 0;

	for (i = 0; i < l->nr; i++) {
		if (l->blocks[i].backing == FR_BACKING_ANON_PRIVATE) {
			l->blocks[n++] = l->blocks[i];
			continue;
		}
		pr_warn("pid %d: RAM block %s is %s: left to CRIU\n", pid, l->blocks[i].name,
			fr_backing_name(l->blocks[i].backing));
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
	for (i = 0; i < layout->nr; i++)
		pr_info("pid %d: RAM block %s at %#llx, %llu MiB, %s\n", q->pid, layout->blocks[i].name,
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
	}
	return fr_layout(img);
}

static void log_write_stats(pid_t pid, const struct ram_io_stats *st, double finish_ms)
{
	double mb = st->bytes_written / 1048576.0;

	pr_info("pid %d: RAM saved: %llu pages, %llu populated, %llu zero skipped, %llu written "
		"(%.1f MiB) in %.1f ms (%.0f MiB/s), fsync+header %.1f ms\n",
		pid, (unsigned long long)st->pages_total, (unsigned long long)st->pages_scanned_present,
		(unsigned long long)st->pages_zero, (unsigned long long)st->pages_written, mb, st->ms,
		st->ms > 0 ? mb * 1000 / st->ms : 0, finish_ms);
}

/* Write and fsync the image; the task is not touched. */
static int save_ram(const struct qp_config *c, pid_t pid, struct fr_image *img, const char *name)
{
	struct ram_io_opts o = { .workers = c->workers, .odirect = c->odirect };
	struct ram_io_stats st;
	double t0;
	int ret;

	ret = fr_create(img, criu_get_image_dir(), name, c->odirect ? O_DIRECT : 0);
	if (ret) {
		pr_err("pid %d: cannot create %s: %s\n", pid, name, strerror(-ret));
		return ret;
	}
	ret = ram_write_image(pid, img, &o, &st);
	if (ret) {
		pr_err("pid %d: writing guest RAM failed: %s\n", pid, strerror(-ret));
		return ret;
	}
	t0 = ram_io_now_ms();
	ret = fr_finish(img);
	if (ret) {
		pr_err("pid %d: completing %s failed: %s\n", pid, name, strerror(-ret));
		return ret;
	}
	log_write_stats(pid, &st, ram_io_now_ms() - t0);
	return 0;
}

int qp_dump_checkpoint(const struct qp_config *c, const struct qemu_proc *q)
{
	struct fr_image img = { .fd = -1, .meta_fd = -1 };
	pid_t pid = q->pid, ns_pid = qp_ns_pid(q->pid);
	struct ram_layout layout;
	struct qemu_dump *d;
	char name[64];
	int ret;

	if (!c->enabled)
		return 0;
	d = find_qemu(pid, true);
	if (!d)
		return -ENOSPC;
	ret = discover(c, q, d, &layout);
	if (ret || !layout.nr) {
		pr_warn("pid %d: no guest RAM found; CRIU dumps all memory itself\n", pid);
		return ret;
	}
	fr_image_name(name, sizeof(name), ns_pid);
	ret = image_from_layout(&img, ns_pid, &layout);
	if (!ret)
		ret = save_ram(c, pid, &img, name);
	if (!ret)
		ret = handoff_start(pid, &img, name, &d->handoff);
	fr_close(&img);
	if (!ret)
		test_crash_point("after-handoff");
	if (ret && !d->handoff)
		unlinkat(criu_get_image_dir(), name, 0);
	return ret;
}

/*
 * Will CRIU let the tasks run on after a successful dump? CRIU's options
 * struct is internal, so read its command line. In RPC mode (runc, Podman)
 * the flag is not visible; the guardian then learns it from the task staying
 * alive past its timeout and gives the pages back all the same.
 */
static bool leave_running(void)
{
	static char buf[8192];
	ssize_t n, i;
	int fd;

	fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	for (i = 0; i < n; i += strlen(buf + i) + 1) {
		buf[n] = 0;
		if (!strcmp(buf + i, "--leave-running") || !strcmp(buf + i, "-R") ||
		    !strcmp(buf + i, "--leave-stopped"))
			return true;
	}
	return false;
}

void qp_dump_finish(int ret)
{
	enum handoff_verdict v = HANDOFF_GIVE_BACK;
	int i;

	if (ret == 0 && !leave_running())
		v = HANDOFF_DONE;
	for (i = 0; i < nr_qemus; i++) {
		if (!qemus[i].handoff)
			continue;
		pr_info("pid %d: dump %s: guardian %s\n", qemus[i].pid, ret ? "failed" : "done",
			v == HANDOFF_DONE ? "exits with the task" : "gives the pages back");
		handoff_finish(qemus[i].handoff, v);
		qemus[i].handoff = NULL;
	}
	nr_qemus = 0;
}
