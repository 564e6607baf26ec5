// SPDX-License-Identifier: GPL-2.0
/*
 * What the handoff to the guardian costs (criu-plugin/handoff*.c): a child
 * holds one -m MiB block (default 1024) of data pages, private anonymous
 * memory (THP with -t) or a sealed memfd mapped MAP_SHARED (-s), as QEMU's
 * guest RAM. The benchmark is its tracer like CRIU, writes the image with
 * the dump writer into -d DIR (default /dev/shm, else /tmp), hands the
 * block over and prints: the handoff, the faults the child sees touching
 * 1 page in 64 while the guardian holds the pages, and how long the
 * guardian takes to give the rest back and exit. The child then checks
 * every page. Needs root (ptrace, a userfaultfd for another task,
 * map_files); the guardian is this binary (--ctl).
 *
 *   bench_handoff [-m MiB] [-d dir] [-t] [-s]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
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
#include "fixedram.h"
#include "guardian.h"
#include "handoff.h"
#include "log.h"

#define MIB		((uint64_t)1 << 20)
#define SAMPLE		64	/* the child touches 1 page in SAMPLE while the pages are held */

static const char *img_name = "qemu-ram-bench-handoff.img";
static uint64_t ps, len;
static char *base;		/* len bytes, 2 MiB aligned: PROT_NONE here, the block in the child */
static bool thp, shared;
static int mfd = -1;		/* the shared block's memfd */

/* What the child reports on 's' (sample) and 'V' (verify every page). */
struct report {
	uint64_t pages, bad;
	double touch_us_avg, touch_us_max;
};

static uint64_t word(uint64_t p, uint64_t i)
{
	return (p << 24) ^ (i * 0x9e3779b97f4a7c15ULL) ^ 0x5a5a;
}

static void child_map_fill(void)
{
	uint64_t p, i;
	void *got;

	if (shared)
		got = mmap(base, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, mfd, 0);
	else
		got = mmap(base, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (got == MAP_FAILED)
		_exit(10);
	if ((thp || shared) && madvise(base, len, MADV_HUGEPAGE))
		_exit(11);
	if (shared && madvise(base, len, MADV_DONTFORK))	/* as QEMU does for all guest RAM */
		_exit(11);
	for (p = 0; p < len / ps; p++)
		for (i = 0; i < ps / 8; i++)
			((uint64_t *)(base + p * ps))[i] = word(p, i);
}

/* Every stride-th page, backwards (against the give-back), its first touch timed. */
static void child_check(struct report *rp, uint64_t stride)
{
	uint64_t p, i;
	double t, sum = 0;

	memset(rp, 0, sizeof(*rp));
	for (p = len / ps; p-- > 0;) {
		volatile uint64_t *w = (uint64_t *)(base + p * ps);

		if (p % stride)
			continue;
		t = now_ms();
		(void)w[0];
		t = (now_ms() - t) * 1000;
		sum += t;
		if (t > rp->touch_us_max)
			rp->touch_us_max = t;
		for (i = 0; i < ps / 8; i++)
			if (w[i] != word(p, i)) {
				rp->bad++;
				break;
			}
		rp->pages++;
	}
	rp->touch_us_avg = rp->pages ? sum / rp->pages : 0;
}

static void child_main(int cmd, int rep, void *arg)
{
	struct report rp = { 0 };
	char c;

	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	child_map_fill();
	if (write(rep, &rp, sizeof(rp)) != sizeof(rp))
		_exit(12);
	while (read(cmd, &c, 1) == 1) {
		child_check(&rp, c == 's' ? SAMPLE : 1);
		if (write(rep, &rp, sizeof(rp)) != sizeof(rp))
			_exit(13);
	}
	_exit(0);
}

static void command(struct th_child *ch, char c, struct report *rp)
{
	TH_CHECK(th_child_send(ch, &c, 1) == 0);
	TH_CHECK(th_child_recv(ch, rp, sizeof(*rp), 600000) == 0);
}

/* CRIU's way: seize, interrupt, wait for the PTRACE_EVENT_STOP. */
static void seize(pid_t pid)
{
	int status;

	TH_CHECK(ptrace(PTRACE_SEIZE, pid, NULL, (void *)PTRACE_O_TRACESYSGOOD) == 0);
	TH_CHECK(ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) == 0);
	for (;;) {
		status = th_wait(pid, __WALL);
		TH_CHECK(status >= 0 && WIFSTOPPED(status));
		if (status >> 16 == PTRACE_EVENT_STOP)
			return;
		TH_CHECK(ptrace(PTRACE_CONT, pid, NULL, (void *)(long)WSTOPSIG(status)) == 0);
	}
}

static void write_image(pid_t pid, int dirfd, struct fr_image *img)
{
	struct fr_block *b;
	struct ram_io_stats st;

	memset(img, 0, sizeof(*img));
	TH_CHECK(fr_image_init(img, pid, 1) == 0);
	b = &img->blocks[0];
	strcpy(b->name, "pc.ram");
	b->host_addr = (uintptr_t)base;
	b->length = len;
	b->page_size = ps;
	b->backing = shared ? FR_BACKING_SHARED_FD : FR_BACKING_ANON_PRIVATE;
	if (shared)
		TH_CHECK(handoff_shared_prepare(pid, b->name, b->host_addr, b->length, ps) == 0);
	TH_CHECK(fr_layout(img) == 0);
	TH_CHECK(fr_create(img, dirfd, img_name, 0) == 0);
	TH_CHECK(ram_write_image(pid, img, NULL, &st) == 0);
	TH_CHECK(fr_finish(img) == 0);
}

/* ms until pid exits with status 0 (it is our child: we are a subreaper). */
static double wait_exit(pid_t pid)
{
	double t0 = now_ms();

	TH_CHECK(th_wait(pid, 0) == 0);
	return now_ms() - t0;
}

static void run(int dirfd)
{
	struct handoff_opts o = { .log_dirfd = dirfd };
	struct th_child ch;
	struct fr_image img;
	struct report rp;
	struct handoff *h;
	double t0, ms, gb_ms;
	pid_t g;

	if (shared) {
		mfd = memfd_create("memory-backend-memfd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		TH_CHECK(mfd >= 0 && ftruncate(mfd, len) == 0);
		TH_CHECK(fcntl(mfd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) == 0);
	}
	TH_CHECK(th_child_start(&ch, child_main, NULL) == 0);
	TH_CHECK(th_child_recv(&ch, &rp, sizeof(rp), 600000) == 0);
	seize(ch.pid);
	write_image(ch.pid, dirfd, &img);
	t0 = now_ms();
	TH_CHECK(handoff_start_opts(ch.pid, &img, img_name, &o, &h) == 0);
	ms = now_ms() - t0;
	g = handoff_guardian_pid(h);
	TH_CHECK(ptrace(PTRACE_DETACH, ch.pid, NULL, NULL) == 0);
	command(&ch, 's', &rp);
	printf("%" PRIu64 " MiB %s: handoff %.1f ms (%.1f ms/GiB); faults seen by the task %.1f us avg, "
	       "%.1f us max over %" PRIu64 " pages\n", len / MIB,
	       shared ? "shared memfd" : thp ? "private, THP" : "private", ms, ms * 1024 / (len / MIB),
	       rp.touch_us_avg, rp.touch_us_max, rp.pages);
	TH_CHECK(rp.bad == 0);
	handoff_finish(h, HANDOFF_GIVE_BACK);
	gb_ms = wait_exit(g);
	printf("guardian done %.1f ms after the verdict (%.0f MiB/s incl. exit)\n", gb_ms,
	       (double)len * (SAMPLE - 1) / SAMPLE / MIB * 1000.0 / gb_ms);
	command(&ch, 'V', &rp);
	TH_CHECK(rp.bad == 0);
	th_child_kill(&ch);
	fr_close(&img);
	if (mfd >= 0)
		close(mfd);
}

/* The guardian is this binary, and we reap it. */
static void setup(uint64_t mib)
{
	TH_CHECK(th_guardian_self() == 0);
	ps = sysconf(_SC_PAGESIZE);
	len = mib * MIB;
	base = mmap(NULL, len + 2 * MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TH_CHECK(base != MAP_FAILED);
	base = (char *)(((uintptr_t)base + 2 * MIB - 1) & ~(2 * MIB - 1));
	qp_log_set_level(LOG_WARN);
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *why;
	char tmp[256];
	uint64_t mib = 1024;
	int opt, dirfd;

	if (th_guardian_mode(argc, argv))
		return guardian_main(argc, argv);
	while ((opt = getopt(argc, argv, "m:d:ts")) != -1) {
		switch (opt) {
		case 'm':
			mib = strtoull(optarg, NULL, 0);
			break;
		case 'd':
			dir = optarg;
			break;
		case 't':
			thp = true;
			break;
		case 's':
			shared = true;
			break;
		default:
			fprintf(stderr, "usage: %s [-m MiB] [-d dir] [-t] [-s]\n", argv[0]);
			return 1;
		}
	}
	why = th_need_root();
	if (why) {
		printf("bench_handoff: not run, %s\n", why);
		return 0;
	}
	if (!mib) {
		fprintf(stderr, "bench_handoff: -m must be at least 1\n");
		return 1;
	}
	setup(mib);
	TH_CHECK(th_tmpdir(tmp, sizeof(tmp), dir, "bench_handoff") == 0);
	dirfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	TH_CHECK(dirfd >= 0);
	run(dirfd);
	close(dirfd);
	TH_CHECK(th_rmtree(tmp) == 0);
	return 0;
}
