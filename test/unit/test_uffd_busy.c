// SPDX-License-Identifier: GPL-2.0
/*
 * uffd_registered() / uffd_wait_unregistered() against a child that
 * registers a range with its own userfaultfd (missing mode, as the
 * guardian of an earlier dump does; write-protect mode, as a live phase
 * does), then unregisters it on command. The child's userfaultfd handles
 * kernel faults, as the guardian's does: without one the tests that need
 * it skip.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>
#include <cmocka.h>

#include "helpers.h"
#include "uffd-busy.h"

#define PAGES 16

struct child {
	struct th_child c;
	uint64_t addr;
};

/* Map, register (*mode), report the address; unregister on 'u'; exit on EOF. */
static void child_main(int cmd, int reply, void *arg)
{
	uint64_t mode = *(uint64_t *)arg;
	long ps = sysconf(_SC_PAGESIZE);
	struct uffdio_api api = { .api = UFFD_API };
	char *a = mmap(NULL, PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uffdio_register reg = { .range = { (uintptr_t)a + 4 * ps, 4 * ps }, .mode = mode };
	int uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
	uint64_t addr = (uintptr_t)a + 4 * ps;
	char c;

	if (a == MAP_FAILED || uffd < 0 || ioctl(uffd, UFFDIO_API, &api) ||
	    ioctl(uffd, UFFDIO_REGISTER, &reg))
		addr = 0;
	if (write(reply, &addr, sizeof(addr)) != sizeof(addr))
		_exit(1);
	while (read(cmd, &c, 1) == 1) {
		if (c == 'u')
			ioctl(uffd, UFFDIO_UNREGISTER, &reg.range);
		if (write(reply, &c, 1) != 1)
			_exit(1);
	}
	_exit(0);
}

static void child_start(struct child *ch, uint64_t mode)
{
	assert_int_equal(th_child_start(&ch->c, child_main, &mode), 0);
	assert_int_equal(th_child_recv(&ch->c, &ch->addr, sizeof(ch->addr), 10000), 0);
	assert_true(ch->addr != 0);
}

static void child_cmd(struct child *ch, char c)
{
	assert_int_equal(th_child_send(&ch->c, &c, 1), 0);
	assert_int_equal(th_child_recv(&ch->c, &c, 1, 10000), 0);
}

static void child_stop(struct child *ch)
{
	th_child_end(&ch->c);
}

static void registered_then_not(uint64_t mode)
{
	struct child ch;
	uint64_t addr = 0;
	double t0;

	child_start(&ch, mode);
	assert_int_equal(uffd_registered(ch.c.pid, &addr), 1);
	assert_int_equal(addr, ch.addr);
	t0 = now_ms();
	assert_int_equal(uffd_wait_unregistered(ch.c.pid, 100), -EBUSY);
	assert_true(now_ms() - t0 >= 100);
	child_cmd(&ch, 'u');
	assert_int_equal(uffd_registered(ch.c.pid, &addr), 0);
	assert_int_equal(uffd_wait_unregistered(ch.c.pid, 100), 0);
	child_stop(&ch);
}

static void test_missing_mode(void **state)
{
	(void)state;
	TH_SKIP_IF(th_need_userfaultfd());
	registered_then_not(UFFDIO_REGISTER_MODE_MISSING);
}

static void test_wp_mode(void **state)
{
	(void)state;
	TH_SKIP_IF(th_need_userfaultfd());
	registered_then_not(UFFDIO_REGISTER_MODE_WP);
}

/* Unregistered while we wait: the wait ends early with 0. */
static void test_wait_ends(void **state)
{
	struct child ch;
	pid_t helper;

	(void)state;
	TH_SKIP_IF(th_need_userfaultfd());
	child_start(&ch, UFFDIO_REGISTER_MODE_MISSING);
	helper = fork();
	assert_true(helper >= 0);
	if (!helper) {
		usleep(200 * 1000);
		child_cmd(&ch, 'u');
		_exit(0);
	}
	assert_int_equal(uffd_wait_unregistered(ch.c.pid, 5000), 0);
	th_wait(helper, 0);
	child_stop(&ch);
}

static void test_no_such_task(void **state)
{
	uint64_t addr;
	pid_t pid = fork();

	(void)state;
	if (!pid)
		_exit(0);
	th_wait(pid, 0);
	assert_int_equal(uffd_registered(pid, &addr), -ENOENT);
	assert_int_equal(uffd_wait_unregistered(pid, 100), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing_mode),
		cmocka_unit_test(test_wp_mode),
		cmocka_unit_test(test_wait_ends),
		cmocka_unit_test(test_no_such_task),
	};

	return th_run_group(tests, NULL, NULL);
}
