// SPDX-License-Identifier: GPL-2.0
/*
 * common/cgroup.c: hierarchy mount points, and cgroup_task_frozen() on a
 * child moved into a freezer cgroup of the test's own (v1 freezer.state,
 * v2 cgroup.freeze, and v2 with the parent cgroup frozen), frozen and
 * thawed as an engine pausing a container does. Needs root and the
 * hierarchy; skips without.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>
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

static const char *make_freezer(struct freezer *f, bool v2, const char *parent)
{
	char mnt[512];

	if (th_need_root())
		return th_need_root();
	if (cgroup_hierarchy_mount(v2 ? "" : "freezer", mnt, sizeof(mnt)))
		return v2 ? "no cgroup2 hierarchy mounted" : "no v1 freezer hierarchy mounted";
	f->frozen = v2 ? "1" : "FROZEN";
	f->thawed = v2 ? "0" : "THAWED";
	if (parent)
		snprintf(f->dir, sizeof(f->dir), "%s/child", parent);
	else
		snprintf(f->dir, sizeof(f->dir), "%s/criu-qemu-test-%d", mnt, getpid());
	snprintf(f->ctl, sizeof(f->ctl), "%s/%s", f->dir, v2 ? "cgroup.freeze" : "freezer.state");
	if (mkdir(f->dir, 0755) && errno != EEXIST)
		return "cannot create a freezer cgroup";
	if (v2 && access(f->ctl, F_OK))
		return "this cgroup2 hierarchy has no cgroup.freeze";
	return NULL;
}

static void put_in(const struct freezer *f, pid_t pid)
{
	char procs[PATH_MAX + 32], text[16];

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", f->dir);
	snprintf(text, sizeof(text), "%d", pid);
	assert_int_equal(th_write_file(procs, text), 0);
}

static void remove_cgroup(const char *dir)
{
	int i;

	for (i = 0; i < 100 && rmdir(dir); i++)
		usleep(10000);	/* a cgroup goes once its last task is gone */
	assert_int_equal(access(dir, F_OK), -1);
}

static pid_t sleeper(void)
{
	pid_t child = fork();

	assert_true(child >= 0);
	if (!child) {
		for (;;)
			pause();
	}
	return child;
}

/*
 * A child in a cgroup of ours, frozen and thawed there (nested: its
 * parent cgroup is the one frozen, as a pod's or a parent's freeze).
 */
static void frozen_child(bool v2, bool nested)
{
	struct freezer top, f;
	pid_t child;

	TH_SKIP_IF(make_freezer(&top, v2, NULL));
	if (nested)
		TH_SKIP_IF(make_freezer(&f, v2, top.dir));
	else
		f = top;
	child = sleeper();
	put_in(&f, child);
	assert_int_equal(cgroup_task_frozen(child), 0);
	assert_int_equal(th_write_file(top.ctl, top.frozen), 0);
	usleep(100000);		/* v2 reports "frozen" once every task stopped */
	assert_int_equal(cgroup_task_frozen(child), 1);
	assert_int_equal(cgroup_task_frozen(getpid()), 0);	/* not ours */
	assert_int_equal(th_write_file(top.ctl, top.thawed), 0);
	usleep(100000);
	assert_int_equal(cgroup_task_frozen(child), 0);
	kill(child, SIGKILL);
	th_reap(child);
	if (nested)
		remove_cgroup(f.dir);
	remove_cgroup(top.dir);
}

static void test_frozen_v1(void **state)
{
	(void)state;
	frozen_child(false, false);
}

static void test_frozen_v2(void **state)
{
	(void)state;
	frozen_child(true, false);
}

static void test_frozen_v2_parent(void **state)
{
	(void)state;
	frozen_child(true, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hierarchy_mount),
		cmocka_unit_test(test_not_a_task),
		cmocka_unit_test(test_frozen_v1),
		cmocka_unit_test(test_frozen_v2),
		cmocka_unit_test(test_frozen_v2_parent),
	};

	return th_run_group(tests, NULL, NULL);
}
