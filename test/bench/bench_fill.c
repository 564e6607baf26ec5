// SPDX-License-Identifier: GPL-2.0
/*
 * What limits filling guest RAM at restore (issue 13, goal 2): each
 * candidate mechanism puts -m MiB (default 1024) of page-cache-resident
 * image data into fresh anonymous memory, with THP off and on, and the
 * machine's raw first-touch rate is measured beside them:
 *
 *   touch        memset of fresh memory: the page-fault + zeroing floor
 *   pread        pread() from the file straight into fresh memory
 *   pvm_writev   process_vm_writev() into a child's fresh memory, 1 MiB
 *                at a time from a buffer (the eager filler's way)
 *   uffd_4k      UFFDIO_COPY of 4 KiB pages into a registered range
 *   uffd_2m      UFFDIO_COPY of 2 MiB at a time
 *   mmap_priv    MAP_PRIVATE of the file, every page read (the zero-copy
 *                restore: pages come from the page cache on demand)
 *
 * Each runs -r times (default 3) on new memory; the first run may meet
 * memory this VM gave back to its host (slow first touch), so the first
 * and the best run are printed, in MiB/s of -m MiB. The uffd rows copy
 * into our own memory (a user-mode userfaultfd), so no root is needed.
 *
 *   build/test/bench/bench_fill [-m MiB] [-r reps] [-d dir]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "../unit/helpers.h"
#include "clock.h"

#define MIB		(1ULL << 20)
#define HUGE		(2 * MIB)

static uint64_t size = 1024 * MIB;
static int reps = 3;
static const char *dir = "/var/tmp";
static int file = -1;
static char path[4096];

/* Fresh anonymous memory, 2 MiB aligned, THP as asked. */
static void *fresh(bool thp)
{
	uint8_t *p = mmap(NULL, size + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	uint8_t *a;

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	a = (uint8_t *)(((uintptr_t)p + HUGE - 1) & ~(HUGE - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + size, p + HUGE - a);
	madvise(a, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return a;
}

static double mibs(double ms)
{
	return (size / (double)MIB) / (ms / 1000.0);
}

static void fill_touch(uint8_t *p)
{
	memset(p, 1, size);
}

static void fill_pread(uint8_t *p)
{
	for (uint64_t off = 0; off < size; off += 64 * MIB)
		if (pread(file, p + off, size - off < 64 * MIB ? size - off : 64 * MIB, off) <= 0) {
			perror("pread");
			exit(1);
		}
}

/* A child that maps fresh memory and waits: the target of process_vm_writev. */
static void fill_pvm(uint8_t *p, bool thp)
{
	int to_child[2], to_parent[2];
	uint8_t *buf = malloc(MIB);
	uint64_t addr;
	pid_t pid;
	char c;

	(void)p;
	if (pipe(to_child) || pipe(to_parent) || !buf)
		exit(1);
	pid = fork();
	if (!pid) {
		uint8_t *mem = fresh(thp);

		addr = (uintptr_t)mem;
		if (write(to_parent[1], &addr, sizeof(addr)) != sizeof(addr))
			_exit(1);
		if (read(to_child[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	if (read(to_parent[0], &addr, sizeof(addr)) != sizeof(addr))
		exit(1);
	for (uint64_t off = 0; off < size; off += MIB) {
		struct iovec l = { buf, MIB }, r = { (void *)(uintptr_t)(addr + off), MIB };

		if (pread(file, buf, MIB, off) != (ssize_t)MIB ||
		    process_vm_writev(pid, &l, 1, &r, 1, 0) != (ssize_t)MIB) {
			perror("process_vm_writev");
			exit(1);
		}
	}
	if (write(to_child[1], "x", 1) != 1)
		exit(1);
	waitpid(pid, NULL, 0);
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
	free(buf);
}

static void fill_uffd(uint8_t *p, uint64_t step)
{
	int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .range = { (uintptr_t)p, size }, .mode = UFFDIO_REGISTER_MODE_MISSING };
	uint8_t *buf = malloc(HUGE);

	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg) || !buf) {
		perror("userfaultfd");
		exit(1);
	}
	for (uint64_t off = 0; off < size; off += HUGE) {
		if (pread(file, buf, HUGE, off) != (ssize_t)HUGE)
			exit(1);
		for (uint64_t o = 0; o < HUGE; o += step) {
			struct uffdio_copy cp = { .dst = (uintptr_t)p + off + o, .src = (uintptr_t)buf + o,
						  .len = step };

			if (ioctl(uffd, UFFDIO_COPY, &cp)) {
				perror("UFFDIO_COPY");
				exit(1);
			}
		}
	}
	close(uffd);
	free(buf);
}

static void fill_mmap(uint8_t *p)
{
	volatile uint8_t *m;
	uint64_t sum = 0;

	(void)p;
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, file, 0);
	if (m == MAP_FAILED) {
		perror("mmap file");
		exit(1);
	}
	for (uint64_t off = 0; off < size; off += 4096)
		sum += m[off];
	munmap((void *)m, size);
	if (sum == 1)
		printf(" ");	/* keep the reads */
}

enum how { TOUCH, PREAD, PVM, UFFD_4K, UFFD_2M, MMAP };
static const char *const names[] = { "touch", "pread", "pvm_writev", "uffd_4k", "uffd_2m", "mmap_priv" };

static double run_one(enum how h, bool thp)
{
	uint8_t *p = fresh(thp);
	double t0 = now_ms(), t;

	switch (h) {
	case TOUCH: fill_touch(p); break;
	case PREAD: fill_pread(p); break;
	case PVM: fill_pvm(p, thp); break;
	case UFFD_4K: fill_uffd(p, 4096); break;
	case UFFD_2M: fill_uffd(p, HUGE); break;
	case MMAP: fill_mmap(p); break;
	}
	t = now_ms() - t0;
	munmap(p, size);
	return t;
}

static void make_file(void)
{
	uint8_t *buf = malloc(64 * MIB);

	snprintf(path, sizeof(path), "%s/bench-fill.XXXXXX", dir);
	file = mkstemp(path);
	if (file < 0 || !buf) {
		perror("mkstemp");
		exit(1);
	}
	unlink(path);
	for (uint64_t i = 0; i < 64 * MIB / 8; i++)
		((uint64_t *)buf)[i] = i * 0x9e3779b97f4a7c15ULL;
	for (uint64_t off = 0; off < size; off += 64 * MIB)
		if (pwrite(file, buf, 64 * MIB, off) != (ssize_t)(64 * MIB)) {
			perror("pwrite");
			exit(1);
		}
	free(buf);
	fill_mmap(NULL);	/* every page of it in the page cache */
}

int main(int argc, char **argv)
{
	int opt;

	while ((opt = getopt(argc, argv, "m:r:d:")) != -1) {
		switch (opt) {
		case 'm': size = strtoull(optarg, NULL, 0) * MIB; break;
		case 'r': reps = atoi(optarg); break;
		case 'd': dir = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-m MiB] [-r reps] [-d dir]\n", argv[0]);
			return 2;
		}
	}
	size = (size + HUGE - 1) & ~(HUGE - 1);
	make_file();
	printf("bench_fill: %llu MiB from the page cache into fresh memory, MiB/s (first run / best of %d)\n",
	       (unsigned long long)(size / MIB), reps);
	printf("%-12s %18s %18s\n", "mechanism", "4 KiB pages", "THP");
	for (enum how h = TOUCH; h <= MMAP; h++) {
		double first[2] = {}, best[2] = {};

		for (int thp = 0; thp < 2; thp++)
			for (int r = 0; r < reps; r++) {
				double ms = run_one(h, thp);

				if (!r)
					first[thp] = ms;
				if (!r || ms < best[thp])
					best[thp] = ms;
			}
		printf("%-12s %8.0f / %7.0f %8.0f / %7.0f\n", names[h], mibs(first[0]), mibs(best[0]),
		       mibs(first[1]), mibs(best[1]));
	}
	close(file);
	return 0;
}
