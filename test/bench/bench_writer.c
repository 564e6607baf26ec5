// SPDX-License-Identifier: GPL-2.0
/*
 * Dump and restore throughput of the data path (dump-writer.c,
 * restore-fill.c) against plain process_vm_readv / /proc/PID/mem copies.
 * Built by make bench-c, run by make bench (test/bench.py):
 *
 *   build/test/bench/bench_writer [-m MiB] [-d dir] [-r reps] [-o name-substring] [-q depth]
 *
 * A child holds an anonymous region (THP off): 69% random data pages, 6%
 * pages written with zeros, 25% never touched. Reported: wall ms of the
 * copy alone and with fsync, and MB/s of guest RAM (region size / time).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "../unit/helpers.h"
#include "restore-fill.h"
#include "log.h"
#include "dump-writer.h"
#include "sparse.h"

#define CHUNK	(1 << 20)

static uint64_t size = 1ULL << 30;
static const char *dir = "/var/tmp";
static int reps = 3;
static unsigned qd;		/* -q: io_uring queue depth */
static const char *only;	/* -o: run the benchmarks whose name holds this */
static long ps;
static struct th_child ch;	/* holds the region; ends at EOF of ch.cmd */
static pid_t child;		/* ch.pid */
static uint64_t base;

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static void child_main(int cmd, int ready, void *arg)
{
	uint64_t i, n = size / ps, addr, x;
	char *a, c;

	(void)arg;
	a = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		_exit(1);
	madvise(a, size, MADV_NOHUGEPAGE);
	for (i = 0; i < n; i++) {
		uint64_t r = mix(i) % 100, *w = (uint64_t *)(a + i * ps), j;

		if (r < 69) {
			for (j = 0, x = mix(i + 1); j < (uint64_t)ps / 8; j++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				w[j] = x;
			}
		} else if (r < 75) {
			memset(w, 0, ps);
		}
	}
	addr = (uintptr_t)a;
	if (write(ready, &addr, sizeof(addr)) != sizeof(addr))
		_exit(2);
	while (read(cmd, &c, 1) > 0)
		;
	_exit(0);
}

static void start_child(void)
{
	TH_CHECK(th_child_start(&ch, child_main, NULL) == 0);
	TH_CHECK(th_child_recv(&ch, &base, sizeof(base), 600000) == 0);
	child = ch.pid;
}

static struct page_range *ranges;
static size_t nr_ranges;

static void scan(void)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", child);
	fd = open(path, O_RDONLY);
	if (fd < 0 || sparse_scan(fd, base, base + size, &ranges, &nr_ranges))
		exit(1);
	close(fd);
}

/* Each populated range, cut at CHUNK boundaries: (addr, len) pieces. */
typedef int (*piece_fn)(uint64_t addr, size_t len, char *buf, void *arg);

static int for_pieces(piece_fn fn, void *arg)
{
	static char *buf;
	size_t i;

	if (!buf)
		buf = aligned_alloc(4096, CHUNK);
	for (i = 0; i < nr_ranges; i++) {
		uint64_t a = ranges[i].start;

		while (a < ranges[i].end) {
			uint64_t end = (a / CHUNK + 1) * CHUNK;
			size_t len = (end < ranges[i].end ? end : ranges[i].end) - a;

			if (fn(a, len, buf + a % CHUNK, arg))
				return -1;
			a += len;
		}
	}
	return 0;
}

static int read_vm(uint64_t addr, size_t len, char *buf, void *arg)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };

	(void)arg;
	return process_vm_readv(child, &l, 1, &r, 1, 0) == (ssize_t)len ? 0 : -1;
}

/* The writer's way: all runs of a chunk in one process_vm_readv. */
struct batch {
	struct iovec l[256], r[256];
	int cnt;
	uint64_t chunk;
};

static int batch_flush(struct batch *b)
{
	ssize_t want = 0, got;
	int i;

	for (i = 0; i < b->cnt; i++)
		want += b->l[i].iov_len;
	got = b->cnt ? process_vm_readv(child, b->l, b->cnt, b->r, b->cnt, 0) : 0;
	b->cnt = 0;
	return got == want ? 0 : -1;
}

static int read_vm_batch(uint64_t addr, size_t len, char *buf, void *arg)
{
	struct batch *b = arg;

	if ((b->cnt && addr / CHUNK != b->chunk) || b->cnt == 256)
		if (batch_flush(b))
			return -1;
	b->chunk = addr / CHUNK;
	b->l[b->cnt] = (struct iovec){ buf, len };
	b->r[b->cnt++] = (struct iovec){ (void *)(uintptr_t)addr, len };
	return 0;
}

static int read_mem(uint64_t addr, size_t len, char *buf, void *arg)
{
	return pread(*(int *)arg, buf, len, addr) == (ssize_t)len ? 0 : -1;
}

struct base_arg {
	int mem, out;
};

/* Baseline: read each populated piece, pwrite it at its fixed offset. */
static int base_piece(uint64_t addr, size_t len, char *buf, void *arg)
{
	struct base_arg *b = arg;

	if (b->mem >= 0 ? read_mem(addr, len, buf, &b->mem) : read_vm(addr, len, buf, NULL))
		return -1;
	return pwrite(b->out, buf, len, addr - base + (1 << 20)) == (ssize_t)len ? 0 : -1;
}

/* Let the discards of the last unlink (ext4 -o discard) finish first. */
static void settle(void)
{
	int fd = open(dir, O_DIRECTORY | O_RDONLY);

	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
	sleep(1);
}

static bool wanted(const char *name)
{
	return !only || strstr(name, only);
}

static void report(const char *name, double *ms, double *sync_ms)
{
	double best = ms[0], best_s = sync_ms ? sync_ms[0] : 0;
	int i;

	for (i = 1; i < reps; i++) {
		if (ms[i] < best)
			best = ms[i];
		if (sync_ms && sync_ms[i] < best_s)
			best_s = sync_ms[i];
	}
	printf("%-34s %8.0f ms %7.0f MB/s", name, best, size / 1e3 / best);
	if (sync_ms)
		printf("   +fsync %8.0f ms %7.0f MB/s", best_s, size / 1e3 / best_s);
	printf("\n");
	fflush(stdout);
}

static void bench_read(const char *name, bool mem, bool batch)
{
	struct batch bt = { .cnt = 0 };
	double ms[16];
	char path[64];
	int i, fd = -1;

	if (!wanted(name))
		return;
	snprintf(path, sizeof(path), "/proc/%d/mem", child);
	if (mem && (fd = open(path, O_RDONLY)) < 0)
		exit(1);
	for (i = 0; i < reps; i++) {
		double t = now_ms();

		if (batch ? for_pieces(read_vm_batch, &bt) || batch_flush(&bt) :
			    for_pieces(mem ? read_mem : read_vm, &fd))
			exit(1);
		ms[i] = now_ms() - t;
	}
	if (fd >= 0)
		close(fd);
	report(name, ms, NULL);
}

static void bench_baseline(const char *name, bool mem)
{
	double ms[16], sms[16];
	struct base_arg b = { -1, -1 };
	char path[256];
	int i;

	if (!wanted(name))
		return;
	for (i = 0; i < reps; i++) {
		double t = now_ms();

		snprintf(path, sizeof(path), "/proc/%d/mem", child);
		b.mem = mem ? open(path, O_RDONLY) : -1;
		snprintf(path, sizeof(path), "%s/bench-baseline.img", dir);
		b.out = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (b.out < 0 || ftruncate(b.out, size + (1 << 20)))
			exit(1);
		free(ranges);
		scan();	/* the same pagemap scan the writer does */
		if (for_pieces(base_piece, &b))
			exit(1);
		ms[i] = now_ms() - t;
		fsync(b.out);
		sms[i] = now_ms() - t;
		close(b.out);
		if (b.mem >= 0)
			close(b.mem);
		unlink(path);
		settle();
	}
	report(name, ms, sms);
}

static void bench_writer(unsigned workers, bool odirect)
{
	struct ram_io_opts o = { .workers = workers, .odirect = odirect, .queue_depth = qd };
	double ms[16], sms[16];
	struct ram_io_stats st;
	struct fr_image img;
	char name[64];
	int i, dfd;

	snprintf(name, sizeof(name), "ram_write_image w=%u %s", workers,
		 odirect ? "O_DIRECT" : "buffered");
	if (!wanted(name))
		return;
	dfd = open(dir, O_DIRECTORY | O_RDONLY);
	for (i = 0; i < reps; i++) {
		double t;

		if (fr_image_init(&img, child, 1))
			exit(1);
		strcpy(img.blocks[0].name, "pc.ram");
		img.blocks[0].host_addr = base;
		img.blocks[0].length = size;
		img.blocks[0].page_size = ps;
		if (fr_layout(&img) || fr_create(&img, dfd, "bench.img", odirect ? O_DIRECT : 0))
			exit(1);
		t = now_ms();
		if (ram_write_image(child, &img, &o, &st))
			exit(1);
		ms[i] = now_ms() - t;
		if (fr_finish(&img))
			exit(1);
		sms[i] = now_ms() - t;
		fr_close(&img);
		unlinkat(dfd, "bench.img", 0);
		settle();
	}
	close(dfd);
	report(name, ms, sms);
	if (workers == 1 && !odirect)
		printf("  (pages %llu, populated %llu, zero %llu, written %llu)\n",
		       (unsigned long long)st.pages_total, (unsigned long long)st.pages_scanned_present,
		       (unsigned long long)st.pages_zero, (unsigned long long)st.pages_written);
}

/* cold: the image leaves the page cache before each run; odirect: bypasses it. */
static void bench_fill(unsigned workers, bool cold, bool odirect)
{
	struct ram_io_opts o = { .workers = workers };
	double ms[16];
	struct ram_io_stats st;
	struct fr_image img;
	char name[64], err[256];
	int i, dfd;
	pid_t target;

	snprintf(name, sizeof(name), "ram_fill_from_image w=%u %s", workers,
		 odirect ? "O_DIRECT" : cold ? "cold" : "cached");
	if (!wanted(name))
		return;
	dfd = open(dir, O_DIRECTORY | O_RDONLY);
	if (fr_image_init(&img, child, 1))
		exit(1);
	strcpy(img.blocks[0].name, "pc.ram");
	img.blocks[0].host_addr = base;
	img.blocks[0].length = size;
	img.blocks[0].page_size = ps;
	if (fr_layout(&img) || fr_create(&img, dfd, "bench.img", 0) ||
	    ram_write_image(child, &img, &o, NULL) || fr_finish(&img))
		exit(1);
	fr_close(&img);
	if (fr_open(&img, dfd, "bench.img", err, sizeof(err)))
		exit(1);
	o.odirect = odirect;	/* reads from the disk, not the page cache */
	for (i = 0; i < reps; i++) {
		int p[2];
		char c;

		/* A fresh mapping at the same address in a new process. */
		if (pipe(p))
			exit(1);
		target = fork();
		if (!target) {
			if (mmap((void *)(uintptr_t)base, size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
				_exit(1);
			madvise((void *)(uintptr_t)base, size, MADV_NOHUGEPAGE);
			close(p[1]);
			(void)!read(p[0], &c, 1);
			_exit(0);
		}
		close(p[0]);
		usleep(100000);
		if (cold)
			posix_fadvise(img.meta_fd, 0, 0, POSIX_FADV_DONTNEED);
		if (ram_fill_from_image(target, &img, &o, &st))
			exit(1);
		ms[i] = st.ms;
		close(p[1]);
		waitpid(target, NULL, 0);
	}
	fr_close(&img);
	unlinkat(dfd, "bench.img", 0);
	close(dfd);
	report(name, ms, NULL);
}

int main(int argc, char **argv)
{
	int opt;

	while ((opt = getopt(argc, argv, "m:d:r:o:q:")) != -1) {
		switch (opt) {
		case 'm':
			size = strtoull(optarg, NULL, 0) << 20;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		case 'o':
			only = optarg;
			break;
		case 'q':
			qd = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-m MiB] [-d dir] [-r reps] [-o name] [-q depth]\n", argv[0]);
			return 1;
		}
	}
	if (reps < 1 || reps > 16)
		reps = 3;
	qp_log_set_level(LOG_WARN);
	ps = sysconf(_SC_PAGESIZE);
	start_child();
	scan();
	printf("%llu MiB, %zu populated ranges, %llu MiB populated, dir %s, best of %d\n",
	       (unsigned long long)(size >> 20), nr_ranges,
	       (unsigned long long)(sparse_bytes(ranges, nr_ranges) >> 20), dir, reps);

	bench_read("read: process_vm_readv per run", false, false);
	bench_read("read: process_vm_readv per chunk", false, true);
	bench_read("read: pread /proc/PID/mem per run", true, false);
	bench_baseline("baseline process_vm_readv+pwrite", false);
	bench_baseline("baseline /proc/PID/mem+pwrite", true);
	bench_writer(1, false);
	bench_writer(2, false);
	bench_writer(1, true);
	bench_writer(2, true);
	bench_fill(1, false, false);
	bench_fill(2, false, false);
	bench_fill(1, true, false);
	bench_fill(2, true, false);
	bench_fill(1, true, true);
	bench_fill(2, true, true);

	TH_CHECK(th_child_end(&ch) == 0);
	free(ranges);
	return 0;
}
