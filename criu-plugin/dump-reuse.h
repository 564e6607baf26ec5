/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Incremental dumps: a chunk whose pages are the same as in a base image
 * (an earlier dump of the same VM) is shared with the base by a reflink
 * (FICLONERANGE) instead of written. The new image stays complete and
 * self-contained: the filesystem keeps the shared blocks alive when the
 * base is deleted. On a filesystem without reflinks every chunk is written
 * as usual, after one failed attempt.
 *
 * A chunk is taken as unchanged when its new bitmap words and checksum
 * (computed from memory) equal the base's, and, with verify on, its
 * present pages compare equal byte for byte with the base's (a 64-bit
 * hash alone is not proof: a guest could craft a collision).
 */
#ifndef CRIU_QEMU_DUMP_REUSE_H
#define CRIU_QEMU_DUMP_REUSE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fixedram.h"

struct reuse_ctx {
	const struct fr_image *base;
	bool verify;
	int32_t *map;			/* per block of the new image: base block or -1 */
	atomic_bool no_reflink;		/* the filesystem said no: stop trying */
	atomic_uint_fast64_t chunks_same;	/* unchanged per bitmap + checksum */
	atomic_uint_fast64_t chunks_differ;	/* same checksum, other bytes, or base damaged */
	atomic_uint_fast64_t chunks_cloned;
	atomic_uint_fast64_t bytes_cloned;
};

/*
 * Match the blocks of img (laid out) with those of base (fr_open'ed) by
 * name, length, page size and chunk size. Returns 0 (r usable, possibly
 * with no block matched) or -ENOMEM. base may be NULL: nothing is reused.
 */
int reuse_init(struct reuse_ctx *r, const struct fr_image *img, const struct fr_image *base,
	       bool verify);
void reuse_fini(struct reuse_ctx *r);

/* Does reuse_chunk() need a cmp buffer (verify on, some block matched)? */
bool reuse_needs_cmp(const struct reuse_ctx *r);

/*
 * The chunk of block bi of img has its bitmap words and checksum computed
 * from buf (pages laid out as in memory). If it is unchanged since the
 * base, clone its data from the base into img->fd and return true; false:
 * the caller writes it. cmp: a scratch buffer of one chunk when verifying.
 */
bool reuse_chunk(struct reuse_ctx *r, struct fr_image *img, uint32_t bi, uint64_t chunk,
		 const char *buf, char *cmp);

#endif
