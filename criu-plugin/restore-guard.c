// SPDX-License-Identifier: GPL-2.0
/*
 * Stop guard for the restore fill; see restore-guard.h. Thread-directed
 * SIGSTOP (tgkill) rather than one kill(): a process-directed signal sets
 * TIF_SIGPENDING on one thread only, and the others could return to user
 * space before the group stop reaches them.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "log.h"
#include "proc.h"
#include "restore-guard.h"

struct guard {
	pid_t pid, except;
	int n;
};

static int stop_thread(pid_t tid, void *arg)
{
	struct guard *g = arg;

	if (tid == g->except)
		return 0;
	if (syscall(SYS_tgkill, g->pid, tid, SIGSTOP)) {
		int err = errno;

		pr_err("pid %d: cannot queue the stop guard on thread %d: %s\n", g->pid, tid,
		       strerror(err));
		return -err;
	}
	g->n++;
	return 0;
}

int restore_guard_arm(pid_t pid, pid_t except)
{
	struct guard g = { .pid = pid, .except = except };
	int ret;

	ret = proc_task_for_each(pid, stop_thread, &g);
	if (!ret)
		pr_debug("pid %d: stop guard on %d threads while RAM is filled\n", pid, g.n);
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
