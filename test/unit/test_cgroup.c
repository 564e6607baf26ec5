// SPDX-License-Identifier: GPL-2.0
/*
 * common/cgroup.c: hierarchy mount points, and cgroup_task_frozen() on a
 * child moved into a freezer cgroup of the test's own (v1 freezer.state
 * or v2 cgroup.freeze, whichever this host has), frozen and thawed as an
 * engine pausing a container does. Needs root and a freezer; skips
 * without.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "cgroup.h"
#include "helpers.h"

static void test_hierarchy_mount(void **state)
{
	char mnt[512];

	(void)state;
	assert_int_equal(cgroup_hierarchy_mount("no-such-controller", mnt, sizeof(mnt)), -ENOENT);
	/* This host has a cgroup2 mount or a v1 freezer (the frozen test below needs one). */
	if (cgroup_hierarchy_mount("", mnt, sizeof(mnt)) &&
	    cgroup_hierarchy_mount("freezer", mnt, sizeof(mnt)))
		skip();
	assert_true(mnt[0] == '/');
}

static void test_not_a_task(void **state)
{
	(void)state;
	assert_int_equal(cgroup_task_frozen(-1), -ENOENT);
	assert_int_equal(cgroup_task_frozen(getpid()), 0);
}

/* A freezer cgroup of ours: its directory and the file that freezes it. */
struct freezer {
	char dir[PATH_MAX];
	char ctl[PATH_MAX + 32];
	const char *frozen, *thawed;
};

static const char *make_freezer(struct freezer *f)
{
	char mnt[512];

	if (th_need_root())
		return th_need_root();
	if (!cgroup_hierarchy_mount("freezer", mnt, sizeof(mnt))) {
		f->frozen = "FROZEN";
		f->thawed = "THAWED";
		snprintf(f->dir, sizeof(f->dir), "%s/criu-qemu-test-%d", mnt, getpid());
		snprintf(f->ctl, sizeof(f->ctl), "%s/freezer.state", f->dir);
	} else if (!cgroup_hierarchy_mount("", mnt, sizeof(mnt))) {
		f->frozen = "1";
		f->thawed = "0";
		snprintf(f->dir, sizeof(f->dir), "%s/criu-qemu-test-%d", mnt, getpid());
		snprintf(f->ctl, sizeof(f->ctl), "%s/cgroup.freeze", f->dir);
	} else {
		return "no freezer hierarchy mounted";
	}
	if (mkdir(f->dir, 0755) && errno != EEXIST)
		return "cannot create a freezer cgroup";
	return NULL;
}

static void put_in(const struct freezer *f, pid_t pid)
{
	char procs[PATH_MAX + 32], text[16];

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", f->dir);
	snprintf(text, sizeof(text), "%d", pid);
	assert_int_equal(th_write_file(procs, text), 0);
}

static void test_frozen_child(void **state)
{
	struct freezer f;
	pid_t child;
	int i;

	(void)state;
	TH_SKIP_IF(make_freezer(&f));
	child = fork();
	assert_true(child >= 0);
	if (!child) {
		for (;;)
			pause();
	}
	put_in(&f, child);
	assert_int_equal(cgroup_task_frozen(child), 0);
	assert_int_equal(th_write_file(f.ctl, f.frozen), 0);
	assert_int_equal(cgroup_task_frozen(child), 1);
	assert_int_equal(cgroup_task_frozen(getpid()), 0);	/* not ours */
	assert_int_equal(th_write_file(f.ctl, f.thawed), 0);
	assert_int_equal(cgroup_task_frozen(child), 0);
	kill(child, SIGKILL);
	th_reap(child);
	for (i = 0; i < 100 && rmdir(f.dir); i++)
		usleep(10000);	/* a cgroup goes once its last task is gone */
	assert_int_equal(access(f.dir, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hierarchy_mount),
		cmocka_unit_test(test_not_a_task),
		cmocka_unit_test(test_frozen_child),
	};

	return th_run_group(tests, NULL, NULL);
}
