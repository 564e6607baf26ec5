// SPDX-License-Identifier: GPL-2.0
/*
 * The guardian joins QEMU's cgroups (see guardian-cgroup.h); the
 * hierarchies' mount points come from common/cgroup.c.
 */
#define LOG_PREFIX "guardian: "

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "guardian-cgroup.h"
#include "log.h"
#include "proc.h"

static int join(const char *mnt, const char *path)
{
	char procs[PATH_MAX + 600], pid[16];	/* mount point + cgroup + "/cgroup.procs" */
	int fd, n, ret = 0;

	snprintf(procs, sizeof(procs), "%s%s/cgroup.procs", mnt, strcmp(path, "/") ? path : "");
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = snprintf(pid, sizeof(pid), "%d", getpid());
	if (write(fd, pid, n) != n)
		ret = -errno;
	close(fd);
	return ret;
}

/* Is the line the cgroup c of the same hierarchy? */
static int is_same_cgroup(const char *line, void *arg)
{
	const struct proc_cgroup *c = arg;
	struct proc_cgroup mine;

	if (proc_cgroup_parse(line, &mine))
		return 0;
	return !strcmp(mine.controllers, c->controllers) && !strcmp(mine.path, c->path);
}

/* Are we already in cgroup c of that hierarchy? */
static bool same_as_ours(const struct proc_cgroup *c)
{
	return proc_lines_for_each(PROC_SELF, "cgroup", is_same_cgroup, (void *)c) > 0;
}

static int join_line(const char *line, void *arg)
{
	struct proc_cgroup c;
	char mnt[512];
	int *joined = arg, ret;

	if (proc_cgroup_parse(line, &c))
		return 0;
	if (strstr(c.controllers, "freezer") || same_as_ours(&c) ||
	    cgroup_hierarchy_mount(c.controllers, mnt, sizeof(mnt)))
		return 0;
	ret = join(mnt, c.path);
	if (ret)
		pr_warn("cannot join QEMU's cgroup %s:%s: %s\n", c.controllers[0] ? c.controllers : "(v2)",
			c.path, strerror(-ret));
	else
		(*joined)++;
	return 0;
}

int guardian_join_cgroups(pid_t qemu)
{
	int joined = 0;

	proc_lines_for_each(qemu, "cgroup", join_line, &joined);	/* gone: nothing to join */
	if (joined)
		pr_info("joined QEMU's cgroups in %d hierarchies\n", joined);
	return joined;
}
