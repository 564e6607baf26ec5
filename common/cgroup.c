// SPDX-License-Identifier: GPL-2.0
/*
 * cgroup hierarchies and freezer state (see cgroup.h). Hierarchies are
 * found in /proc/self/mountinfo: cgroup2 for the "0::" line of
 * /proc/PID/cgroup, and for a v1 line the cgroup mount whose super options
 * name its controllers.
 */
#define LOG_PREFIX "cgroup: "

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "io.h"
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

int cgroup_hierarchy_mount(const char *controllers, char *mnt, size_t len)
{
	struct hierarchy h = { .controllers = controllers, .mnt = mnt, .len = len };
	int ret = proc_lines_for_each(PROC_SELF, "mountinfo", is_hierarchy, &h);

	if (ret < 0)
		return ret;
	return ret ? 0 : -ENOENT;
}

struct frozen {
	int state;	/* 1, 0, or -errno; -ENOENT until a freezer line is found */
};

/* The text of mnt/path/file, NUL-terminated, in buf. */
static int read_text(const char *mnt, const char *path, const char *file, char *buf, size_t len)
{
	char name[PATH_MAX + 600];
	ssize_t n;
	int fd;

	snprintf(name, sizeof(name), "%s%s/%s", mnt, strcmp(path, "/") ? path : "", file);
	fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread_full(fd, buf, len - 1, 0);
	close(fd);
	if (n < 0)
		return n;
	buf[n] = '\0';
	return 0;
}

/* v1: freezer.state is THAWED, FREEZING or FROZEN (an ancestor's counts). */
static int v1_frozen(const char *mnt, const char *path)
{
	char text[64];
	int ret = read_text(mnt, path, "freezer.state", text, sizeof(text));

	if (ret == -ENOENT)
		return 0;	/* the root cgroup has no freezer.state */
	return ret ? ret : strncmp(text, "THAWED", 6) != 0;
}

/*
 * v2: cgroup.freeze says what was asked of this cgroup (freezing counts),
 * cgroup.events' "frozen" whether it is frozen, an ancestor's freeze too.
 * The root cgroup has neither: not frozen.
 */
static int v2_frozen(const char *mnt, const char *path)
{
	char text[256];
	int ret = read_text(mnt, path, "cgroup.freeze", text, sizeof(text));

	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	if (text[0] == '1')
		return 1;
	ret = read_text(mnt, path, "cgroup.events", text, sizeof(text));
	if (ret)
		return ret;
	return !strncmp(text, "frozen 1", 8) || strstr(text, "\nfrozen 1") != NULL;
}

static int freezer_line(const char *line, void *arg)
{
	struct frozen *f = arg;
	struct proc_cgroup c;
	char mnt[512];
	bool v2;
	int ret;

	if (proc_cgroup_parse(line, &c))
		return 0;
	v2 = !c.controllers[0];
	if (!v2 && !options_have(c.controllers, "freezer"))
		return 0;
	ret = cgroup_hierarchy_mount(v2 ? "" : "freezer", mnt, sizeof(mnt));
	if (ret == -ENOENT)
		return 0;	/* that hierarchy is not mounted here: another may tell */
	if (!ret)
		ret = v2 ? v2_frozen(mnt, c.path) : v1_frozen(mnt, c.path);
	if (ret < 0) {
		f->state = ret;
		return 1;
	}
	if (f->state < 0)
		f->state = 0;
	f->state |= ret;
	return f->state;	/* frozen in one hierarchy is enough */
}

int cgroup_task_frozen(pid_t pid)
{
	struct frozen f = { .state = -ENOENT };
	int ret = proc_lines_for_each(pid, "cgroup", freezer_line, &f);

	if (ret < 0)
		return ret;
	return f.state == -ENOENT ? 0 : f.state;	/* no freezer at all: not frozen */
}
