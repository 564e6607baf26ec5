/* SPDX-License-Identifier: GPL-2.0 */
#ifndef CRIU_QEMU_GUARDIAN_CGROUP_H
#define CRIU_QEMU_GUARDIAN_CGROUP_H

#include <sys/types.h>

/*
 * Move the calling guardian into the cgroups of the QEMU it guards, in
 * every hierarchy but the freezer's: an engine that kills CRIU's cgroup
 * (a failed or cancelled checkpoint) must not take the only holder of guest
 * RAM with it, while the guardian still goes with the VM's own cgroup. The
 * freezer is left alone: CRIU may freeze QEMU's cgroup while the guardian
 * has work to do. Returns the number of hierarchies joined; failures are
 * logged, never fatal.
 */
int guardian_join_cgroups(pid_t qemu);

#endif
