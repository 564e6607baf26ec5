/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fault injection for the safety tests, in the manner of CRIU's
 * criu/fault-injection.c: environment variables name a point and the
 * plugin acts there. Unset, every call is one getenv(). The points are
 * listed in Documentation/design.md ("Fault injection").
 */
#ifndef CRIU_QEMU_FAULT_INJECT_H
#define CRIU_QEMU_FAULT_INJECT_H

/* CRIU_QEMU_TEST_CRASH=<point>: CRIU dies by SIGKILL at that point. */
void fault_crash_point(const char *point);
/* The same for a point passed many times: <point> every time, <point>:<nth> only the nth. */
void fault_crash_point_at(const char *point, unsigned long nth);

/* CRIU_QEMU_TEST_PAUSE_MS=<ms>: how long the live phase pauses after pass 1; 0: none. */
unsigned fault_pause_ms(void);

#endif
