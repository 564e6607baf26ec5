/* SPDX-License-Identifier: GPL-2.0 */
#ifndef CRIU_QEMU_RESTORE_H
#define CRIU_QEMU_RESTORE_H

#include <sys/types.h>

#include "config.h"

/* init(RESTORE): open and validate every RAM image; failure fails restore. */
int qp_restore_init(const struct qp_config *c);
/* RESUME_DEVICES_LATE: fill the task's guest RAM from its image. */
int qp_restore_resume(const struct qp_config *c, pid_t pid);
void qp_restore_finish(void);

#endif
