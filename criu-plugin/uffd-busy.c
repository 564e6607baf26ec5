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
#include "proc.h"
#include "uffd-busy.h"

#define POLL_MS 10

static bool uffd_flag(const char *vmflags)
{
	return proc_vmflag(vmflags, "um") || proc_vmflag(vmflags, "uw") || proc_vmflag(vmflags, "ui");
}

int uffd_registered(pid_t pid, uint64_t *addr)
{
	struct proc_smaps_vma v;
	struct proc_maps m;
	int ret = proc_maps_open(&m, pid, "smaps");

	if (ret)
		return ret;
	while (!ret && proc_smaps_next(&m, &v) > 0) {
		if (uffd_flag(v.vmflags)) {
			*addr = v.vma.start;
			ret = 1;
		}
	}
	proc_maps_close(&m);
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
