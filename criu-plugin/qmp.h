/* SPDX-License-Identifier: GPL-2.0 */
#ifndef CRIU_QEMU_QMP_H
#define CRIU_QEMU_QMP_H

#include <jansson.h>
#include <sys/types.h>

/*
 * Minimal QMP client. jansson parses and builds the JSON: it is a small,
 * well-kept C library with strict parsing and json_unpack() format strings
 * that keep reply handling short and explicit.
 *
 * Every read and write is bounded by a deadline: QEMU may be busy, have a
 * client connected already (a QMP socket serves one client at a time), or
 * be about to be frozen. Callers treat any failure as "no monitor".
 */
struct qmp {
	int fd;
	double deadline_ms;	/* now_ms() clock */
	char buf[65536];
	size_t len;
};

/*
 * Connect to the QMP socket at `path` as seen inside pid's mount
 * namespace (through /proc/PID/root), negotiate capabilities.
 */
int qmp_open(struct qmp *q, pid_t pid, const char *path, unsigned timeout_ms);

/*
 * 1 if the QMP socket at `path` of QEMU pid already has a client or a
 * queued connection, 0 if not, -errno if that cannot be told. qmp_open()
 * waits up to its timeout for a busy monitor to become free, then returns
 * -EBUSY without having connected.
 */
int qmp_monitor_busy(pid_t pid, const char *path);

/* Run a command; *ret receives the "return" value (caller json_decref). */
int qmp_execute(struct qmp *q, const char *command, json_t *args, json_t **ret);

void qmp_close(struct qmp *q);

#endif
