// SPDX-License-Identifier: GPL-2.0
/* proc_status_field() on the test's own /proc/PID/status. Needs no root. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "proc.h"

static void test_fields(void **state)
{
	char v[256];

	(void)state;
	assert_int_equal(proc_status_field(getpid(), "Pid", v, sizeof(v)), 0);
	assert_int_equal(atoi(v), getpid());
	assert_int_equal(proc_status_field(getpid(), "NSpid", v, sizeof(v)), 0);
	assert_null(strchr(v, '\n'));
	/* "Pid" must not match "PPid" or "TracerPid", nor a prefix of a key. */
	assert_int_equal(proc_status_field(getpid(), "PPid", v, sizeof(v)), 0);
	assert_int_equal(atoi(v), getppid());
	assert_int_equal(proc_status_field(getpid(), "Pi", v, sizeof(v)), -ENOENT);
	assert_int_equal(proc_status_field(getpid(), "No_such_field", v, sizeof(v)), -ENOENT);
	assert_int_equal(proc_status_field(-1, "Pid", v, sizeof(v)), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
