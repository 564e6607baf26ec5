// SPDX-License-Identifier: GPL-2.0
/*
 * Detached processes (detach.h). The middle child is created by a raw
 * clone() with no exit signal: CRIU gets no SIGCHLD for it, and CRIU's
 * handler (waitpid(-1) without __WALL) cannot reap it; we do, with
 * __WALL. The grandchild, orphaned at once, belongs to the nearest
 * subreaper or init. Every signal is blocked across the clones, so no
 * handler of CRIU's runs in either child.
 */
#define LOG_PREFIX "detach: "

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "detach.h"
#include "log.h"

static long raw_clone(unsigned long flags)
{
	return syscall(SYS_clone, flags, 0, NULL, NULL, 0);
}

void __attribute__((noreturn)) detach_raw_exit(int code)
{
	for (;;)
		syscall(SYS_exit_group, code);
}

static void __attribute__((noreturn)) middle_child(void (*fn)(void *), void *arg)
{
	long pid = raw_clone(SIGCHLD);

	if (pid == 0) {
		fn(arg);
		detach_raw_exit(0);
	}
	detach_raw_exit(pid < 0 ? 1 : 0);
}

static int reap(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, __WALL) < 0) {
		if (errno != EINTR) {
			pr_perror("waitpid(%d)", pid);
			return -ECHILD;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		pr_err("detached process could not be started (status %#x)\n", status);
		return -ECHILD;
	}
	return 0;
}

int detach_run(void (*fn)(void *arg), void *arg)
{
	sigset_t all, old;
	long pid;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = raw_clone(0);
	if (pid == 0)
		middle_child(fn, arg);
	err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		pr_err("clone: %s\n", strerror(err));
		return -err;
	}
	return reap(pid);
}
