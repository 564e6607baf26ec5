// SPDX-License-Identifier: GPL-2.0
/*
 * Guardian bookkeeping: ranges of image blocks registered in the task, and
 * per page whether the task has it or threw it away. See guardian-map.h.
 *
 * Ranges are few (one per VMA of each block), so they live in an unsorted
 * array and every lookup is a linear scan.
 */
#define LOG_PREFIX "guardian: "

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "guardian-map.h"
#include "log.h"

int gd_map_init(struct gd_map *m, const struct fr_image *img)
{
	uint32_t i;

	memset(m, 0, sizeof(*m));
	m->img = img;
	m->blocks = calloc(img->nr_blocks ? img->nr_blocks : 1, sizeof(*m->blocks));
	if (!m->blocks)
		return -ENOMEM;
	for (i = 0; i < img->nr_blocks; i++) {
		struct gd_block *b = &m->blocks[i];

		b->fb = &img->blocks[i];
		b->cursor = b->fb->nr_pages;	/* nothing to do until a range appears */
		b->filled = bitmap_alloc(b->fb->nr_pages);
		b->removed = bitmap_alloc(b->fb->nr_pages);
		if (!b->filled || !b->removed) {
			gd_map_free(m);
			return -ENOMEM;
		}
	}
	return 0;
}

void gd_map_free(struct gd_map *m)
{
	uint32_t i;

	for (i = 0; m->blocks && i < m->img->nr_blocks; i++) {
		free(m->blocks[i].filled);
		free(m->blocks[i].removed);
	}
	free(m->blocks);
	free(m->ranges);
	free(m->pending);
	memset(m, 0, sizeof(*m));
}

static uint64_t range_end(const struct gd_range *r)
{
	return r->addr + r->len;
}

static uint64_t range_pages(const struct gd_map *m, const struct gd_range *r)
{
	return r->len / gd_page_size(m, r->block);
}

static int add_range(struct gd_map *m, const struct gd_range *r)
{
	struct gd_block *b = &m->blocks[r->block];

	if (m->nr_ranges == m->cap_ranges) {
		size_t cap = m->cap_ranges ? m->cap_ranges * 2 : 16;
		struct gd_range *n = realloc(m->ranges, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		m->ranges = n;
		m->cap_ranges = cap;
	}
	m->ranges[m->nr_ranges++] = *r;
	/* New work below the give-back cursor (a late placement). */
	if (r->first < b->cursor)
		b->cursor = r->first;
	return 0;
}

static void del_range(struct gd_map *m, size_t i)
{
	m->ranges[i] = m->ranges[--m->nr_ranges];
}

/* Make addr a range boundary: split the range that has it strictly inside. */
static int split_at(struct gd_map *m, uint64_t addr)
{
	struct gd_range tail;
	size_t i;

	for (i = 0; i < m->nr_ranges; i++) {
		struct gd_range *r = &m->ranges[i];

		if (addr <= r->addr || addr >= range_end(r))
			continue;
		tail = *r;
		tail.addr = addr;
		tail.len = range_end(r) - addr;
		tail.first = r->first + (addr - r->addr) / gd_page_size(m, r->block);
		r->len = addr - r->addr;
		return add_range(m, &tail);
	}
	return 0;
}

static bool overlaps(const struct gd_range *r, uint64_t start, uint64_t end)
{
	return r->addr < end && start < range_end(r);
}

static bool any_overlap(const struct gd_map *m, uint64_t start, uint64_t end)
{
	size_t i;

	for (i = 0; i < m->nr_ranges; i++)
		if (overlaps(&m->ranges[i], start, end))
			return true;
	return false;
}

/* Block whose host range contains [addr, addr + len), or -1. */
static long block_at(const struct gd_map *m, uint64_t addr, uint64_t len)
{
	uint32_t i;

	for (i = 0; i < m->img->nr_blocks; i++) {
		const struct fr_block *b = &m->img->blocks[i];

		if (addr >= b->host_addr && addr + len <= b->host_addr + b->length)
			return i;
	}
	return -1;
}

static bool valid_range(const struct gd_map *m, const struct gp_range *r)
{
	const struct fr_block *b;

	if (r->block >= m->img->nr_blocks)
		return false;
	b = &m->img->blocks[r->block];
	return r->len && r->offset % b->page_size == 0 && r->len % b->page_size == 0 &&
	       r->offset <= b->length && r->len <= b->length - r->offset;
}

int gd_map_prepare(struct gd_map *m, const struct gp_range *r)
{
	if (!valid_range(m, r)) {
		pr_err("PREPARE of a range outside block %u\n", r->block);
		return -EINVAL;
	}
	if (m->nr_pending == m->cap_pending) {
		size_t cap = m->cap_pending ? m->cap_pending * 2 : 8;
		struct gp_range *n = realloc(m->pending, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		m->pending = n;
		m->cap_pending = cap;
	}
	m->pending[m->nr_pending++] = *r;
	return 0;
}

static long find_pending(const struct gd_map *m, uint32_t block, uint64_t offset)
{
	size_t i;

	for (i = 0; i < m->nr_pending; i++)
		if (m->pending[i].block == block && m->pending[i].offset == offset)
			return i;
	return -1;
}

static void drop_pending(struct gd_map *m, size_t i)
{
	m->pending[i] = m->pending[--m->nr_pending];
}

/* The piece of block r->block at [offset, offset + len) now lives at addr. */
static int place(struct gd_map *m, const struct gp_range *r, uint64_t addr)
{
	struct gd_range nr = {
		.addr = addr,
		.len = r->len,
		.block = r->block,
		.first = r->offset / m->img->blocks[r->block].page_size,
		.flags = r->flags,
	};

	return add_range(m, &nr);
}

int gd_map_resolve(struct gd_map *m, const struct gp_range *r, bool placed)
{
	long p = find_pending(m, r->block, r->offset);
	long i;
	uint64_t page;

	if (!valid_range(m, r))
		return -EINVAL;
	if (p >= 0)
		drop_pending(m, p);
	if (!placed)
		return 0;
	i = gd_map_lookup(m, r->addr, &page);
	if (i >= 0 && m->ranges[i].block == r->block) {
		m->ranges[i].flags |= r->flags;
		return 0;
	}
	pr_warn("block %u +%#" PRIx64 " placed at %#" PRIx64 " without its %s event seen; adopting it\n",
		r->block, r->offset, r->addr, r->flags & GP_RANGE_SHARED ? "REMOVE" : "REMAP");
	if (any_overlap(m, r->addr, r->addr + r->len))
		return -EEXIST;
	return place(m, r, r->addr);
}

/* A REMAP whose source we do not track: the handoff's tmp -> host_addr move. */
static int remap_placement(struct gd_map *m, uint64_t from, uint64_t to, uint64_t len)
{
	struct gp_range r = {};
	size_t i;
	long b;

	for (i = 0; i < m->nr_pending; i++) {
		if (!(m->pending[i].flags & GP_RANGE_SHARED) && m->pending[i].tmp == from &&
		    m->pending[i].len == len && m->pending[i].addr == to) {
			r = m->pending[i];
			drop_pending(m, i);
			return place(m, &r, to);
		}
	}
	if (any_overlap(m, to, to + len)) {
		pr_debug("REMAP %#" PRIx64 " -> %#" PRIx64 ": placed already (a fault came first)\n",
			 from, to);
		return 0;
	}
	/* No PREPARE (should not happen): trust the image's block table. */
	b = block_at(m, to, len);
	if (b < 0) {
		pr_warn("REMAP %#" PRIx64 " -> %#" PRIx64 " (%#" PRIx64 ") is not guest RAM, ignored\n",
			from, to, len);
		return 0;
	}
	pr_warn("REMAP %#" PRIx64 " -> %#" PRIx64 " without PREPARE, taken as block %ld\n",
		from, to, b);
	r.block = b;
	r.offset = to - m->img->blocks[b].host_addr;
	r.len = len;
	return place(m, &r, to);
}

long gd_map_fault_placement(struct gd_map *m, uint64_t addr)
{
	struct gp_range r;
	size_t i;

	for (i = 0; i < m->nr_pending; i++) {
		if (addr < m->pending[i].addr || addr >= m->pending[i].addr + m->pending[i].len ||
		    (m->pending[i].flags & GP_RANGE_SHARED))
			continue;
		r = m->pending[i];
		drop_pending(m, i);
		pr_warn("fault at %#" PRIx64 " before the REMAP of block %u +%#" PRIx64 ": placed\n",
			addr, r.block, r.offset);
		if (place(m, &r, r.addr))
			return -1;
		return m->nr_ranges - 1;
	}
	return -1;
}

long gd_map_punch(struct gd_map *m, uint64_t start, uint64_t end)
{
	struct gp_range r;
	size_t i;

	for (i = 0; i < m->nr_pending; i++) {
		r = m->pending[i];
		if (!(r.flags & GP_RANGE_SHARED) || r.addr != start || r.addr + r.len != end)
			continue;
		/* Still pending if it cannot be tracked: its faults are then served unplaced. */
		if (place(m, &r, r.addr))
			return -ENOMEM;
		drop_pending(m, i);
		return m->nr_ranges - 1;
	}
	return -ENOENT;
}

int gd_map_lookup_pending(const struct gd_map *m, uint64_t addr, uint32_t *block, uint64_t *page)
{
	const struct gp_range *r;
	size_t i;

	for (i = 0; i < m->nr_pending; i++) {
		r = &m->pending[i];
		if (!(r->flags & GP_RANGE_SHARED) || addr < r->addr || addr >= r->addr + r->len)
			continue;
		*block = r->block;
		*page = (r->offset + (addr - r->addr)) / m->img->blocks[r->block].page_size;
		return 0;
	}
	return -1;
}

int gd_map_remap(struct gd_map *m, uint64_t from, uint64_t to, uint64_t len)
{
	uint64_t end = from + len;
	size_t i;
	int ret;

	if (!any_overlap(m, from, end))
		return remap_placement(m, from, to, len);
	ret = split_at(m, from);
	if (!ret)
		ret = split_at(m, end);
	if (ret)
		return ret;
	for (i = 0; i < m->nr_ranges; i++) {
		struct gd_range *r = &m->ranges[i];

		if (r->addr >= from && range_end(r) <= end)
			r->addr = r->addr - from + to;
	}
	return 0;
}

static uint64_t mark_removed(struct gd_map *m, const struct gd_range *r, uint64_t start, uint64_t end)
{
	uint64_t ps = gd_page_size(m, r->block), a, n = 0;
	struct gd_block *b = &m->blocks[r->block];

	if (start < r->addr)
		start = r->addr;
	if (end > range_end(r))
		end = range_end(r);
	start -= (start - r->addr) % ps;	/* a partly discarded page counts */
	for (a = start; a < end; a += ps) {
		uint64_t page = r->first + (a - r->addr) / ps;

		if (!fr_bit_test(b->removed, page)) {
			fr_bit_set(b->removed, page);
			n++;
		}
	}
	return n;
}

uint64_t gd_map_discard(struct gd_map *m, uint64_t start, uint64_t end, bool unmapped)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < m->nr_ranges; i++)
		if (overlaps(&m->ranges[i], start, end))
			n += mark_removed(m, &m->ranges[i], start, end);
	if (!unmapped || !any_overlap(m, start, end))
		return n;
	/* Gone from the task: forget where it was (a split failing only keeps more). */
	if (split_at(m, start) || split_at(m, end))
		pr_warn("out of memory splitting ranges\n");
	for (i = 0; i < m->nr_ranges;) {
		struct gd_range *r = &m->ranges[i];

		if (r->addr >= start && range_end(r) <= end)
			del_range(m, i);
		else
			i++;
	}
	return n;
}

long gd_map_lookup(const struct gd_map *m, uint64_t addr, uint64_t *page)
{
	size_t i;

	for (i = 0; i < m->nr_ranges; i++) {
		const struct gd_range *r = &m->ranges[i];

		if (addr >= r->addr && addr < range_end(r)) {
			*page = r->first + (addr - r->addr) / gd_page_size(m, r->block);
			return i;
		}
	}
	return -1;
}

/* Pages of block b needing give-back: present in the image, not filled, not removed. */
static uint64_t todo_word(const struct gd_block *b, uint64_t w)
{
	return b->fb->bitmap[w] & ~b->filled[w] & ~b->removed[w];
}

static bool todo(const struct gd_block *b, uint64_t page)
{
	return todo_word(b, page / 64) & (1ULL << (page % 64));
}

/* First page >= from needing give-back, or nr_pages. */
static uint64_t next_todo(const struct gd_block *b, uint64_t from)
{
	uint64_t nr = b->fb->nr_pages, w, bits;

	if (from >= nr)
		return nr;
	w = from / 64;
	bits = todo_word(b, w) & (~0ULL << (from % 64));
	while (!bits) {
		if (++w >= bitmap_words(nr))
			return nr;
		bits = todo_word(b, w);
	}
	from = w * 64 + __builtin_ctzll(bits);
	return from < nr ? from : nr;
}

/* Range of block holding page, or -1; else *next gets the next range's first page. */
static long range_of_page(const struct gd_map *m, uint32_t block, uint64_t page, uint64_t *next)
{
	size_t i;

	*next = m->blocks[block].fb->nr_pages;
	for (i = 0; i < m->nr_ranges; i++) {
		const struct gd_range *r = &m->ranges[i];

		if (r->block != block || r->unregistered)
			continue;
		if (page >= r->first && page < r->first + range_pages(m, r))
			return i;
		if (r->first > page && r->first < *next)
			*next = r->first;
	}
	return -1;
}

/* The todo pages from page on, below end and inside range i, as one run. */
static void make_run(const struct gd_map *m, uint32_t block, uint64_t page, uint64_t end, long i,
		     struct gd_run *run)
{
	const struct gd_block *b = &m->blocks[block];
	const struct gd_range *r = &m->ranges[i];

	if (end > r->first + range_pages(m, r))
		end = r->first + range_pages(m, r);
	run->block = block;
	run->page = page;
	for (run->n = 1; page + run->n < end && todo(b, page + run->n); run->n++)
		;
	run->addr = r->addr + (page - r->first) * b->fb->page_size;
}

bool gd_map_run_in(struct gd_map *m, uint32_t block, uint64_t from, uint64_t end, struct gd_run *run)
{
	uint64_t page = next_todo(&m->blocks[block], from), next;
	long i;

	if (page >= end)
		return false;
	i = range_of_page(m, block, page, &next);
	if (i < 0)
		return false;
	make_run(m, block, page, end, i, run);
	return true;
}

static bool block_next_run(struct gd_map *m, uint32_t block, uint64_t max_pages, struct gd_run *run)
{
	struct gd_block *b = &m->blocks[block];
	uint64_t page, next, end;
	long i;

	for (;;) {
		page = next_todo(b, b->cursor);
		if (page >= b->fb->nr_pages) {
			b->cursor = page;
			return false;
		}
		i = range_of_page(m, block, page, &next);
		if (i >= 0)
			break;
		b->cursor = next > page ? next : page + 1;	/* not registered in the task */
	}
	b->cursor = page;
	end = (page / b->fb->chunk_pages + 1) * b->fb->chunk_pages;
	if (end > page + max_pages)
		end = page + max_pages;
	make_run(m, block, page, end, i, run);
	return true;
}

bool gd_map_next_run(struct gd_map *m, uint64_t max_pages, struct gd_run *run)
{
	uint32_t i;

	for (i = 0; i < m->img->nr_blocks; i++)
		if (block_next_run(m, i, max_pages, run))
			return true;
	return false;
}
