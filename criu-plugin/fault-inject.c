// SPDX-License-Identifier: GPL-2.0
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault-inject.h"
#include "log.h"

/* A crash or an OOM kill of CRIU, at a point of the test's choosing. */
void fault_crash_point(const char *point)
{
	const char *want = getenv("CRIU_QEMU_TEST_CRASH");

	if (want && !strcmp(want, point)) {
		pr_warn("test crash point %s: killing CRIU\n", point);
		kill(getpid(), SIGKILL);
	}
}

unsigned fault_pause_ms(void)
{
	const char *ms = getenv("CRIU_QEMU_TEST_PAUSE_MS");

	return ms ? (unsigned)atoi(ms) : 0;
}
