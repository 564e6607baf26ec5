/* SPDX-License-Identifier: GPL-2.0 */
/* The one clock every part of criu-qemu times itself and its deadlines by. */
#ifndef CRIU_QEMU_CLOCK_H
#define CRIU_QEMU_CLOCK_H

#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC (not moved by clock changes or a restore). */
static inline double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#endif
