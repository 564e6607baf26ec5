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

/* Mount point of the hierarchy with these controllers ("" for cgroup2). */
static int hierarchy_mount(const char *controllers, char *mnt, size_t len)
{
	char line[CG_LINE], point[512], fstype[64], super[512];
	int ret = -ENOENT;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return -errno;
	while (ret && fgets(line, sizeof(line), f)) {
		char *dash = strstr(line, " - ");

		if (!dash || sscanf(line, "%*s %*s %*s %*s %511s", point) != 1 ||
		    sscanf(dash + 3, "%63s %*s %511s", fstype, super) != 2)
			continue;
		if (controllers[0] ? !strcmp(fstype, "cgroup") && options_have(super, controllers)
				   : !strcmp(fstype, "cgroup2")) {
			snprintf(mnt, len, "%s", point);
			ret = 0;
		}
	}
	fclose(f);
	return ret;
}

static int join(const char *mnt, const char *path)
{
	char procs[1024], pid[16];
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

/* "ID:controllers:path" (controllers empty for cgroup2). */
static bool parse_line(char *line, const char **ctl, const char **cg)
{
	char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

	if (!c2)
		return false;
	*c1 = *c2 = 0;
	c2[1 + strcspn(c2 + 1, "\n")] = 0;
	*ctl = c1 + 1;
	*cg = c2 + 1;
	return true;
}

/* Are we already in cgroup cg of that hierarchy? */
static bool same_as_ours(const char *ctl, const char *cg)
{
	const char *my_ctl, *my_cg;
	char line[CG_LINE];
	bool same = false;
	FILE *f = fopen("/proc/self/cgroup", "re");

	if (!f)
		return false;
	while (!same && fgets(line, sizeof(line), f))
		if (parse_line(line, &my_ctl, &my_cg))
			same = !strcmp(my_ctl, ctl) && !strcmp(my_cg, cg);
	fclose(f);
	return same;
}

int guardian_join_cgroups(pid_t qemu)
{
	char path[64], line[CG_LINE], mnt[512];
	const char *ctl, *cg;
	int joined = 0, ret;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", qemu);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!parse_line(line, &ctl, &cg))
			continue;
		if (strstr(ctl, "freezer") || same_as_ours(ctl, cg) || hierarchy_mount(ctl, mnt, sizeof(mnt)))
			continue;
		ret = join(mnt, cg);
		if (ret)
			pr_warn("cannot join QEMU's cgroup %s:%s: %s\n", ctl[0] ? ctl : "(v2)", cg,
				strerror(-ret));
		else
			joined++;
	}
	fclose(f);
	if (joined)
		pr_info("joined QEMU's cgroups in %d hierarchies\n", joined);
	return joined;
}
