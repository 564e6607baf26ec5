// SPDX-License-Identifier: GPL-2.0
/*
 * Does the RAM image fit the checkpoint CRIU restores? The identity check
 * (ckpt-id.c) says the image was written by the same CRIU run; these checks
 * hold even against a forged or damaged header whose checksums were
 * recomputed: a block must lie where the restored task has exactly such a
 * mapping, and CRIU must not hold pages of its own there.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "criu-pagemap.pb-c.h"
#include "log.h"
#include "proc.h"
#include "restore-check.h"

#define CRIU_IMG_COMMON_MAGIC	0x54564319u	/* criu/include/magic.h */
#define CRIU_PAGEMAP_MAGIC	0x56084025u
#define CRIU_PAGE_SIZE		4096u
#define PAGEMAP_MAX_BYTES	(256u << 20)	/* far beyond any real pagemap */

/* The whole file, NUL-terminated (one spare byte), for images and /proc text alike. */
static int read_file(int dirfd, const char *name, uint8_t **buf, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	uint8_t *b = NULL;
	int fd, ret = 0;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t r;

		if (!b || n + 1 >= cap) {
			uint8_t *bigger = cap > PAGEMAP_MAX_BYTES ? NULL : realloc(b, cap *= 2);

			if (!bigger) {
				ret = -EFBIG;
				break;
			}
			b = bigger;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r < 0 ? -errno : 0;
			break;
		}
		n += r;
	}
	close(fd);
	if (ret) {
		free(b);
		return ret;
	}
	b[n] = 0;
	*buf = b;
	*len = n;
	return 0;
}

static uint32_t le32_at(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * CRIU's parasite reads the first page of every private anonymous r-x
 * mapping (its vdso probe, PARASITE_CMD_CHECK_VDSO_MARK) after our
 * handoff, so the handoff leaves that page of TCG's code buffer in QEMU
 * (handoff.c, keep_first_page) and CRIU stores it. Those are the image's
 * own bytes, QEMU being frozen, which the fill writes again; that one page
 * is let through.
 */
static bool vdso_probe_page(const struct fr_block *b, uint64_t start, uint64_t end)
{
	uint64_t from = start > b->host_addr ? start : b->host_addr;
	uint64_t to = end < b->host_addr + b->length ? end : b->host_addr + b->length;

	return b->exec && from == b->host_addr && to <= b->host_addr + CRIU_PAGE_SIZE;
}

static const struct fr_block *block_hit(const struct fr_image *img, uint64_t start, uint64_t end)
{
	uint32_t i;

	for (i = 0; i < img->nr_blocks; i++) {
		const struct fr_block *b = &img->blocks[i];

		if (start < b->host_addr + b->length && b->host_addr < end && !vdso_probe_page(b, start, end))
			return b;
	}
	return NULL;
}

/* Each entry: one pagemap_entry; the first one of the file is the head. */
static int check_entry(const struct fr_image *img, const uint8_t *msg, size_t n, char *why, size_t len)
{
	CriuPagemapEntry *e = criu_pagemap_entry__unpack(NULL, n, msg);
	const struct fr_block *b;
	uint64_t end;
	int ret = 0;

	if (!e) {
		snprintf(why, len, "an entry is not a pagemap_entry");
		return -EBADMSG;
	}
	end = e->vaddr + (uint64_t)e->nr_pages * CRIU_PAGE_SIZE;
	b = block_hit(img, e->vaddr, end);
	if (b) {
		snprintf(why, len, "CRIU stored pages [0x%" PRIx64 ", 0x%" PRIx64 ") inside RAM block %s "
			 "[0x%" PRIx64 ", 0x%" PRIx64 "): the RAM image and CRIU's images are not of one dump",
			 e->vaddr, end, b->name, b->host_addr, b->host_addr + b->length);
		ret = -EEXIST;
	}
	criu_pagemap_entry__free_unpacked(e, NULL);
	return ret;
}

static int check_pagemap(const struct fr_image *img, const uint8_t *buf, size_t n, char *why, size_t len)
{
	size_t off = 8;
	bool head = true;
	int ret;

	if (n < 8 || le32_at(buf) != CRIU_IMG_COMMON_MAGIC || le32_at(buf + 4) != CRIU_PAGEMAP_MAGIC) {
		snprintf(why, len, "not a CRIU pagemap image (magic)");
		return -EBADMSG;
	}
	while (off < n) {
		uint32_t sz;

		if (n - off < 4 || (sz = le32_at(buf + off)) > n - off - 4) {
			snprintf(why, len, "truncated entry at offset %zu", off);
			return -EBADMSG;
		}
		off += 4;
		if (!head) {
			ret = check_entry(img, buf + off, sz, why, len);
			if (ret)
				return ret;
		}
		head = false;
		off += sz;
	}
	return 0;
}

int restore_check_criu_pages(int dirfd, const struct fr_image *img, char *why, size_t len)
{
	char name[64];
	uint8_t *buf;
	size_t n;
	int ret;

	snprintf(name, sizeof(name), "pagemap-%u.img", img->pid);
	ret = read_file(dirfd, name, &buf, &n);
	if (ret) {
		snprintf(why, len, "cannot read CRIU's %s: %s", name, strerror(-ret));
		return ret;
	}
	ret = check_pagemap(img, buf, n, why, len);
	free(buf);
	if (ret && ret != -EEXIST) {
		char inner[256];

		snprintf(inner, sizeof(inner), "%s", why);
		snprintf(why, len, "CRIU's %s: %s", name, inner);
	}
	return ret;
}

/* A private block must be plain anonymous memory: no inode, no name. */
static bool is_anon(const struct proc_vma *v)
{
	return !v->inode && !v->path[0];
}

static bool vma_fits(const struct proc_vma *v, const struct fr_block *b)
{
	if (strncmp(v->perms, b->exec ? "rwx" : "rw-", 3))
		return false;
	if (b->backing == FR_BACKING_ANON_PRIVATE)
		return v->perms[3] == 'p' && is_anon(v);
	return v->perms[3] == 's';
}

int restore_match_block(const char *maps, const struct fr_block *b, char *why, size_t len)
{
	uint64_t at = b->host_addr, end = b->host_addr + b->length;
	const char *line;

	for (line = maps; line && *line && at < end; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		struct proc_vma v;

		if (proc_maps_parse(line, &v) || v.end <= at)
			continue;
		if (v.start != at) {
			snprintf(why, len, "%s at 0x%" PRIx64 ": the mapping there %s 0x%" PRIx64, b->name, at,
				 v.start < at ? "starts earlier, at" : "is missing; the next starts at", v.start);
			return -ENOENT;
		}
		if (!vma_fits(&v, b)) {
			snprintf(why, len, "%s: the mapping at 0x%" PRIx64 " is %s %s, not %s%s RAM", b->name,
				 v.start, v.perms, is_anon(&v) ? "anonymous" : "with a file",
				 b->exec ? "executable " : "", fr_backing_name(b->backing));
			return -ENOENT;
		}
		if (v.end > end) {
			snprintf(why, len, "%s [0x%" PRIx64 ", 0x%" PRIx64 ") ends inside the mapping "
				 "[0x%" PRIx64 ", 0x%" PRIx64 ")", b->name, b->host_addr, end, v.start, v.end);
			return -ENOENT;
		}
		at = v.end;
	}
	if (at < end) {
		snprintf(why, len, "%s: nothing is mapped at 0x%" PRIx64 " (block [0x%" PRIx64 ", 0x%" PRIx64 "))",
			 b->name, at, b->host_addr, end);
		return -ENOENT;
	}
	return 0;
}

int restore_check_vmas(pid_t pid, const struct fr_image *img)
{
	char path[64], why[512];
	uint8_t *maps;
	size_t n;
	uint32_t i;
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	ret = read_file(AT_FDCWD, path, &maps, &n);
	if (ret) {
		pr_err("pid %d: cannot read %s: %s\n", pid, path, strerror(-ret));
		return ret;
	}
	for (i = 0; i < img->nr_blocks && !ret; i++) {
		ret = restore_match_block((const char *)maps, &img->blocks[i], why, sizeof(why));
		if (ret)
			pr_err("pid %d: RAM block %s does not fit the restored task: %s\n", pid,
			       img->blocks[i].name, why);
	}
	free(maps);
	return ret;
}
