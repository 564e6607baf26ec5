/* SPDX-License-Identifier: GPL-2.0 */
#ifndef CRIU_QEMU_DETECT_H
#define CRIU_QEMU_DETECT_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

struct qemu_proc {
	pid_t pid;
	char exe[PATH_MAX];	/* resolved /proc/PID/exe */
	bool kvm;		/* holds an fd on /dev/kvm */
	char qmp_path[PATH_MAX];/* QMP unix socket from the command line, "" if none */
	unsigned long long mem_bytes; /* -m size, 0 if not given */
};

/*
 * Cheap test run for every process CRIU dumps: one readlink of
 * /proc/PID/exe. Only for QEMU binaries is the command line read.
 * Returns 1 for QEMU (q filled in), 0 for anything else, -errno on error.
 */
int qemu_detect(pid_t pid, struct qemu_proc *q);

/* Parse a QEMU command line (NUL-separated argv) into q. */
void qemu_parse_cmdline(struct qemu_proc *q, const char *argv, size_t len);

#endif
