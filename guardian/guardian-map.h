/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The guardian's view of guest RAM: which parts of which image block are
 * registered in the task and at what address (ranges move with
 * UFFD_EVENT_REMAP), which pages the task already has (filled) and which it
 * threw away (removed: MADV_DONTNEED or munmap; their image data must never
 * come back). Pure bookkeeping, no syscalls.
 */
#ifndef CRIU_QEMU_GUARDIAN_MAP_H
#define CRIU_QEMU_GUARDIAN_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fixedram.h"
#include "guardian-proto.h"

struct gd_block {
	const struct fr_block *fb;
	uint64_t *filled;	/* in the task: copied, zero-mapped, or found present */
	uint64_t *removed;	/* discarded by the task */
	uint64_t cursor;	/* give-back: no work below this page */
};

struct gd_range {
	uint64_t addr;		/* where it is in the task now */
	uint64_t len;
	uint32_t block;
	uint64_t first;		/* block page mapped at addr */
	uint32_t flags;		/* GP_RANGE_* */
	bool unregistered;	/* given back and UFFDIO_UNREGISTERed */
};

struct gd_map {
	const struct fr_image *img;
	struct gd_block *blocks;
	struct gd_range *ranges;
	size_t nr_ranges, cap_ranges;
	struct gp_range *pending;	/* PREPAREd, neither PLACED nor FAILED yet */
	size_t nr_pending, cap_pending;
};

/* One run of pages to give back: pages [page, page + n) of block at addr. */
struct gd_run {
	uint32_t block;
	uint64_t page;
	uint64_t n;
	uint64_t addr;
};

int gd_map_init(struct gd_map *m, const struct fr_image *img);
void gd_map_free(struct gd_map *m);

/*
 * PREPARE: a registered empty VMA at r->tmp is about to replace the range,
 * or (GP_RANGE_SHARED) the registered range is about to be punched.
 */
int gd_map_prepare(struct gd_map *m, const struct gp_range *r);

/*
 * PLACED / PLACE_FAILED from the plugin. PLACED normally finds the range
 * already tracked (the REMAP or punch event came first); if not, it is
 * added (a new guardian adopting ranges after the first one died, or a
 * punch whose madvise failed before its REMOVE event).
 */
int gd_map_resolve(struct gd_map *m, const struct gp_range *r, bool placed);

/*
 * UFFD_EVENT_REMOVE [start, end): if it is exactly a PREPAREd shared range,
 * it is that range's punch, about to happen: place it and return the new
 * range. -ENOENT: an ordinary discard. -ENOMEM: the punch, but it stays
 * pending (untracked).
 */
long gd_map_punch(struct gd_map *m, uint64_t start, uint64_t end);

/*
 * A fault at addr in a PREPAREd shared range whose punch has not been seen:
 * the page was a hole before any punch. 0 and *block, *page, or -1.
 */
int gd_map_lookup_pending(const struct gd_map *m, uint64_t addr, uint32_t *block, uint64_t *page);

/* UFFD_EVENT_REMAP: tracked pieces move; an untracked source is a placement. */
int gd_map_remap(struct gd_map *m, uint64_t from, uint64_t to, uint64_t len);

/*
 * A fault at addr outside every range. If addr lies in a PREPAREd range's
 * destination, its mremap has happened (only our VMA there is registered)
 * and other threads fault before we read the REMAP (faults are read before
 * events): place it now. Returns the new range or -1. Never for shared
 * ranges: they are registered before their punch, so a fault there proves
 * nothing (see gd_map_lookup_pending).
 */
long gd_map_fault_placement(struct gd_map *m, uint64_t addr);

/* UFFD_EVENT_REMOVE (unmapped false) / UFFD_EVENT_UNMAP (true). Returns pages marked. */
uint64_t gd_map_discard(struct gd_map *m, uint64_t start, uint64_t end, bool unmapped);

/* Range holding addr, or -1; *page gets the block page. */
long gd_map_lookup(const struct gd_map *m, uint64_t addr, uint64_t *page);

/*
 * Next run of pages to give back (present in the image, not filled, not
 * removed, inside one range and one chunk, at most max_pages). false when
 * there is none left in any tracked range.
 */
bool gd_map_next_run(struct gd_map *m, uint64_t max_pages, struct gd_run *run);
/*
 * The first run of pages still to give back in [from, end) of block,
 * within one registered range: a fault's neighbours in its chunk.
 */
bool gd_map_run_in(struct gd_map *m, uint32_t block, uint64_t from, uint64_t end, struct gd_run *run);

static inline uint64_t gd_page_size(const struct gd_map *m, uint32_t block)
{
	return m->blocks[block].fb->page_size;
}

#endif
