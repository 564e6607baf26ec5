/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Bitmaps of u64 words, bit i in word i / 64 at position i % 64: the
 * image's present-page bitmaps and everything that runs over them (the
 * dump writer, the live patch, the restore filler, the guardian).
 * Header only, so the image reader's fuzz build needs nothing more.
 */
#ifndef CRIU_QEMU_BITMAP_H
#define CRIU_QEMU_BITMAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static inline uint64_t bitmap_words(uint64_t nbits)
{
	return nbits / 64 + (nbits % 64 ? 1 : 0);
}

/* Zeroed, with one spare word so that an empty bitmap is not NULL. */
static inline uint64_t *bitmap_alloc(uint64_t nbits)
{
	return calloc(bitmap_words(nbits) + 1, sizeof(uint64_t));
}

static inline void fr_bit_set(uint64_t *bm, uint64_t bit)
{
	bm[bit / 64] |= 1ULL << (bit % 64);
}

static inline bool fr_bit_test(const uint64_t *bm, uint64_t bit)
{
	return bm[bit / 64] & (1ULL << (bit % 64));
}

/* Bits of the last word that lie beyond nbits (0 if none). */
static inline uint64_t bitmap_tail_mask(uint64_t nbits)
{
	unsigned int used = nbits % 64;

	return used ? ~((1ULL << used) - 1) : 0;
}

/* Set bits in the first words words. */
static inline uint64_t bitmap_weight(const uint64_t *bm, uint64_t words)
{
	uint64_t w, n = 0;

	for (w = 0; w < words; w++)
		n += __builtin_popcountll(bm[w]);
	return n;
}

/* Set bits [s, e). */
static inline void bitmap_set_range(uint64_t *bm, uint64_t s, uint64_t e)
{
	for (; s < e && s % 64; s++)
		fr_bit_set(bm, s);
	for (; s + 64 <= e; s += 64)
		bm[s / 64] = ~0ULL;
	for (; s < e; s++)
		fr_bit_set(bm, s);
}

/* First bit in [i, end) that is set (or clear, !set); end if none. */
static inline uint64_t bitmap_find(const uint64_t *bm, uint64_t i, uint64_t end, bool set)
{
	while (i < end) {
		uint64_t w = set ? bm[i / 64] : ~bm[i / 64];

		w &= ~0ULL << (i % 64);
		if (w) {
			i = (i & ~63ULL) + __builtin_ctzll(w);
			return i < end ? i : end;
		}
		i = (i | 63) + 1;
	}
	return end;
}

/* Next run [*start, *stop) of set bits at or after from, below end. */
static inline bool bitmap_next_run(const uint64_t *bm, uint64_t from, uint64_t end,
				   uint64_t *start, uint64_t *stop)
{
	*start = bitmap_find(bm, from, end, true);
	if (*start >= end)
		return false;
	*stop = bitmap_find(bm, *start, end, false);
	return true;
}

/* Is any bit in [s, s + n) set? */
static inline bool bitmap_any(const uint64_t *bm, uint64_t s, uint64_t n)
{
	return bitmap_find(bm, s, s + n, true) < s + n;
}

/* One past the last set bit in [from, end); from if none. */
static inline uint64_t bitmap_last_end(const uint64_t *bm, uint64_t from, uint64_t end)
{
	while (end > from) {
		uint64_t i = end - 1, w = bm[i / 64] & (~0ULL >> (63 - i % 64));

		if (w) {
			i = (i & ~63ULL) + 63 - __builtin_clzll(w);
			return i >= from ? i + 1 : from;
		}
		end = i & ~63ULL;
	}
	return from;
}

#endif
