/* SPDX-License-Identifier: GPL-2.0 */
/* Reading /proc of the tasks the plugin works on. */
#ifndef CRIU_QEMU_PROC_H
#define CRIU_QEMU_PROC_H

#include <stddef.h>
#include <sys/types.h>

/*
 * The value of field `key` (e.g. "NSpid") in /proc/PID/status, without the
 * key, the colon and leading blanks, or the trailing newline. 0, -ENOENT (no
 * such field) or -errno.
 */
int proc_status_field(pid_t pid, const char *key, char *val, size_t len);

#endif
