// SPDX-License-Identifier: GPL-2.0
/*
 * Userfaultfd registrations of another process, from /proc/PID/smaps
 * VmFlags (see uffd-busy.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "uffd-busy.h"
#include "dump-writer.h"

#define POLL_MS 10

static bool uffd_flag(const char *vmflags)
{
	return strstr(vmflags, " um") || strstr(vmflags, " uw") || strstr(vmflags, " ui");
}

int uffd_registered(pid_t pid, uint64_t *addr)
{
	char path[64], line[512];
	uint64_t start = 0, s, e;
	int ret = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (!ret && fgets(line, sizeof(line), f)) {
		/* A VMA header: "start-end perms ..."; field lines start with a name. */
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " ", &s, &e) == 2) {
			start = s;
			continue;
		}
		if (!strncmp(line, "VmFlags:", 8) && uffd_flag(line + 7)) {
			*addr = start;
			ret = 1;
		}
	}
	fclose(f);
	return ret;
}

int uffd_wait_unregistered(pid_t pid, unsigned timeout_ms)
{
	double t0 = now_ms();
	bool told = false;
	uint64_t addr;
	int ret;

	while ((ret = uffd_registered(pid, &addr)) == 1) {
		if (now_ms() - t0 >= timeout_ms) {
			pr_err("pid %d: memory at %#" PRIx64 " is still registered with a userfaultfd "
			       "after %u ms (an earlier dump's guardian still giving pages back, or "
			       "postcopy): not dumping it, its pages are not all in place\n",
			       pid, addr, timeout_ms);
			return -EBUSY;
		}
		if (!told)
			pr_info("pid %d: memory at %#" PRIx64 " is registered with a userfaultfd "
				"(an earlier dump's guardian?): waiting\n", pid, addr);
		told = true;
		usleep(POLL_MS * 1000);
	}
	if (told && !ret)
		pr_info("pid %d: userfaultfd registration gone after %.0f ms\n", pid,
			now_ms() - t0);
	return ret;
}
