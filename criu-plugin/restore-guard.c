// SPDX-License-Identifier: GPL-2.0
/*
 * Stop guard for the restore fill; see restore-guard.h. Thread-directed
 * SIGSTOP (tgkill) rather than one kill(): a process-directed signal sets
 * TIF_SIGPENDING on one thread only, and the others could return to user
 * space before the group stop reaches them.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "log.h"
#include "restore-guard.h"

int restore_guard_arm(pid_t pid, pid_t except)
{
	char path[64];
	struct dirent *de;
	int n = 0, ret = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		pid_t tid = atoi(de->d_name);

		if (tid <= 0 || tid == except)
			continue;
		if (syscall(SYS_tgkill, pid, tid, SIGSTOP)) {
			ret = -errno;
			pr_err("pid %d: cannot queue the stop guard on thread %d: %s\n", pid, tid,
			       strerror(errno));
			break;
		}
		n++;
	}
	closedir(d);
	if (!ret)
		pr_debug("pid %d: stop guard on %d threads while RAM is filled\n", pid, n);
	return ret;
}

int restore_guard_disarm(pid_t pid)
{
	if (kill(pid, SIGCONT)) {
		pr_err("pid %d: cannot lift the stop guard: %s\n", pid, strerror(errno));
		return -errno;
	}
	return 0;
}
