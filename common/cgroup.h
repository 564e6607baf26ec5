/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cgroup hierarchies as this process sees them (/proc/self/mountinfo), and
 * whether a task's freezer holds it: an engine (containerd, runc pause)
 * may have frozen a container before it asks CRIU to dump it.
 */
#ifndef CRIU_QEMU_CGROUP_H
#define CRIU_QEMU_CGROUP_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Mount point of the hierarchy with these controllers ("" for cgroup2,
 * else e.g. "cpu,cpuacct", "freezer"): 0, -ENOENT if not mounted, -errno.
 */
int cgroup_hierarchy_mount(const char *controllers, char *mnt, size_t len);

/*
 * Is pid's cgroup frozen or freezing (v1 freezer.state, v2
 * cgroup.freeze)? 1 or 0; -errno when that cannot be read.
 */
int cgroup_task_frozen(pid_t pid);

#endif
