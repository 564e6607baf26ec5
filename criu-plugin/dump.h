/* SPDX-License-Identifier: GPL-2.0 */
#ifndef CRIU_QEMU_DUMP_H
#define CRIU_QEMU_DUMP_H

#include <sys/types.h>

#include "config.h"
#include "detect.h"

/* PAUSE_DEVICES: the VM still runs; ask its monitor about RAM blocks. */
int qp_dump_pause(const struct qp_config *c, const struct qemu_proc *q);
/* CHECKPOINT_DEVICES: frozen; save guest RAM and hand it to the guardian. */
int qp_dump_checkpoint(const struct qp_config *c, const struct qemu_proc *q);
/* Plugin exit: tell every guardian whether the tasks die or run on. */
void qp_dump_finish(int ret);

/* The pid as QEMU sees it (innermost NSpid): names the image file. */
pid_t qp_ns_pid(pid_t pid);

#endif
