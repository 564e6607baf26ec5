// SPDX-License-Identifier: GPL-2.0
/*
 * Batched copies between us and another process's memory (ram-remote.h).
 * One process_vm_readv per chunk takes 56 ms for 1 GiB of scattered runs,
 * one per run 176 ms (test/unit/bench_writer.c), so the runs of a chunk
 * go in IOV_BATCH iovecs at a time.
 */
#define LOG_PREFIX "ram: "

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "log.h"
#include "ram-remote.h"

#define IOV_BATCH	256	/* iovecs per call, <= IOV_MAX */

/* Advance paired iovecs (same lengths) past n bytes. */
static void iov_advance(struct iovec **l, struct iovec **r, int *cnt, size_t n)
{
	while (*cnt && (n || !(*l)->iov_len)) {
		size_t k = n < (*l)->iov_len ? n : (*l)->iov_len;

		(*l)->iov_base = (char *)(*l)->iov_base + k;
		(*l)->iov_len -= k;
		(*r)->iov_base = (char *)(*r)->iov_base + k;
		(*r)->iov_len -= k;
		n -= k;
		if (!(*l)->iov_len) {
			(*l)++;
			(*r)++;
			(*cnt)--;
		}
	}
}

/* Local and remote iovecs paired one to one; a partial copy is resumed. */
static int vm_copy(pid_t pid, struct iovec *local, struct iovec *remote, int cnt, bool write)
{
	while (cnt) {
		ssize_t n = write ? process_vm_writev(pid, local, cnt, remote, cnt, 0)
				  : process_vm_readv(pid, local, cnt, remote, cnt, 0);

		if (n < 0 && errno == EINTR)
			continue;
		/* A partial copy stops at a bad page: the retry names it. */
		if (n <= 0) {
			int err = n < 0 ? -errno : -EFAULT;

			pr_err("cannot %s pid %d memory at %p (%zu bytes): %s\n",
			       write ? "write" : "read", pid, remote->iov_base,
			       remote->iov_len, strerror(-err));
			return err;
		}
		iov_advance(&local, &remote, &cnt, n);
	}
	return 0;
}

int64_t ram_copy_runs(pid_t pid, const struct fr_block *b, const uint64_t *bits, uint64_t first,
		      uint64_t n, char *buf, bool write)
{
	struct iovec l[IOV_BATCH], r[IOV_BATCH];
	uint64_t s, e = 0, pages = 0;
	int cnt = 0, ret;

	while (bitmap_next_run(bits, e, n, &s, &e)) {
		l[cnt].iov_base = buf + s * b->page_size;
		r[cnt].iov_base = (void *)(uintptr_t)(b->host_addr + (first + s) * b->page_size);
		l[cnt].iov_len = r[cnt].iov_len = (e - s) * b->page_size;
		pages += e - s;
		if (++cnt < IOV_BATCH)
			continue;
		ret = vm_copy(pid, l, r, cnt, write);
		if (ret)
			return ret;
		cnt = 0;
	}
	ret = cnt ? vm_copy(pid, l, r, cnt, write) : 0;
	return ret ? ret : (int64_t)pages;
}
