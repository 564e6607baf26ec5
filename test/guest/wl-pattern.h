/* SPDX-License-Identifier: MIT */
/*
 * The memory pattern of the test guests' workloads (test/guest/workload.c,
 * test/kvm-guest/workload.c; test/guest/wlcheck.py checks the same): what
 * page p holds at generation g, which generation it is at after w rewrites,
 * and the running checksum. Header-only and freestanding (stdint only), so
 * that the Linux workload and the bare-metal one share one definition.
 */
#ifndef WL_PATTERN_H
#define WL_PATTERN_H

#include <stdint.h>

#define GOLDEN	0x9E3779B97F4A7C15ull

static inline uint64_t splitmix64(uint64_t x)
{
	uint64_t z = x + GOLDEN;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Word 0 of page p at generation gen; word i adds i * GOLDEN. */
static inline uint64_t wl_page_base(uint64_t seed, uint64_t p, uint64_t gen)
{
	return splitmix64(splitmix64(seed) ^ (gen << 32) ^ p);
}

/* The generation of page p after w rewrites of npages pages in order. */
static inline uint64_t wl_gen_of(uint64_t w, uint64_t npages, uint64_t p)
{
	return w / npages + (p < w % npages ? 1 : 0);
}

/* The checksum after rewrite k, from the one before it. */
static inline uint64_t wl_sum_next(uint64_t sum, uint64_t k)
{
	return splitmix64(sum ^ k);
}

#endif
