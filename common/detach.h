/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Run a function in a process detached from the caller's tree: a
 * grandchild made by raw clone()s, its middle parent reaped at once. For
 * work that must outlive the call without being a thread of CRIU -- a
 * thread shares CRIU's fs_struct, and while one lives CRIU's
 * setns(CLONE_NEWNS) fails with EINVAL (it dumps a container's mounts
 * that way) -- and without a SIGCHLD that CRIU's handler would take for
 * one of its own.
 */
#ifndef CRIU_QEMU_DETACH_H
#define CRIU_QEMU_DETACH_H

/*
 * fn(arg) in the grandchild, which then exits. fn runs after a bare clone
 * of a possibly multithreaded process: raw system calls only (no malloc,
 * no stdio, no locks), and what it needs prepared in arg beforehand. 0
 * once the middle child is reaped, or -errno.
 */
int detach_run(void (*fn)(void *arg), void *arg);

/* exit_group(code), for fn and its callers; never returns. */
void __attribute__((noreturn)) detach_raw_exit(int code);

#endif
