// SPDX-License-Identifier: GPL-2.0
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault-inject.h"
#include "log.h"

/* A crash or an OOM kill of CRIU, at a point of the test's choosing. */
void fault_crash_point_at(const char *point, unsigned long nth)
{
	const char *want = getenv("CRIU_QEMU_TEST_CRASH");
	size_t len = strlen(point);

	if (!want || strncmp(want, point, len))
		return;
	if (want[len] == ':' ? strtoul(want + len + 1, NULL, 10) != nth : want[len] != '\0')
		return;
	pr_warn("test crash point %s (%lu): killing CRIU\n", point, nth);
	kill(getpid(), SIGKILL);
}

void fault_crash_point(const char *point)
{
	fault_crash_point_at(point, 0);
}

unsigned fault_pause_ms(void)
{
	const char *ms = getenv("CRIU_QEMU_TEST_PAUSE_MS");

	return ms ? (unsigned)atoi(ms) : 0;
}
