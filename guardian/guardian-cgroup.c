// SPDX-License-Identifier: GPL-2.0
/*
 * The guardian joins QEMU's cgroups (see guardian-cgroup.h). Hierarchies
 * are found in /proc/self/mountinfo: cgroup2 for the "0::" line, and for
 * a v1 line the cgroup mount whose super options name its controllers.
 */
#define LOG_PREFIX "guardian: "

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guardian-cgroup.h"
#include "log.h"
#include "proc.h"

#define CG_LINE 1024

/* Is every comma-separated word of want among the words of opts? */
static bool options_have(const char *opts, const char *want)
{
	char w[256], o[CG_LINE];
	char *save, *tok;

	snprintf(w, sizeof(w), "%s", want);
	for (tok = strtok_r(w, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *osave, *otok;
		bool found = false;

		snprintf(o, sizeof(o), "%s", opts);
		for (otok = strtok_r(o, ",", &osave); otok && !found; otok = strtok_r(NULL, ",", &osave))
			found = !strcmp(otok, tok);
		if (!found)
			return false;
	}
	return true;
}

struct hierarchy {
	const char *controllers;
	char *mnt;
	size_t len;
};

/* cgroup2 for no controllers, else the v1 mount whose super options name them. */
static bool mounts_hierarchy(const struct proc_mount *m, const char *controllers)
{
	if (!controllers[0])
		return !strcmp(m->fstype, "cgroup2");
	return !strcmp(m->fstype, "cgroup") && options_have(m->super, controllers);
}

static int is_hierarchy(const char *line, void *arg)
{
	struct hierarchy *h = arg;
	struct proc_mount m;

	if (proc_mountinfo_parse(line, &m) || !mounts_hierarchy(&m, h->controllers))
		return 0;
	snprintf(h->mnt, h->len, "%s", m.point);
	return 1;
}

/* Mount point of the hierarchy with these controllers ("" for cgroup2). */
static int hierarchy_mount(const char *controllers, char *mnt, size_t len)
{
	struct hierarchy h = { .controllers = controllers, .mnt = mnt, .len = len };
	int ret = proc_lines_for_each(PROC_SELF, "mountinfo", is_hierarchy, &h);

	if (ret < 0)
		return ret;
	return ret ? 0 : -ENOENT;
}

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
	    hierarchy_mount(c.controllers, mnt, sizeof(mnt)))
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
