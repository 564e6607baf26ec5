// SPDX-License-Identifier: GPL-2.0
/*
 * The dump verdict's two sources (criu-opts.c): CRIU's options struct,
 * laid out as criu-opts-layout.h says, with each guard failing on its own;
 * and CRIU's command line in CLI and RPC mode. The test binary exports no
 * `opts`: criu_final_state() falls back to our own command line (CLI, no
 * --leave-running: killed). The layout tests skip on a build without a
 * CRIU source tree.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "criu-opts.h"
#include "criu-opts-layout.h"
#include "helpers.h"

#define ARGV(s) s, sizeof(s)	/* a literal with embedded NULs, its final NUL included */

static void test_cmdline(void **state)
{
	enum criu_final f;

	(void)state;
	assert_int_equal(criu_cmdline_final(ARGV("criu\0dump\0-t\0001\0-D\0d"), &f), 0);
	assert_int_equal(f, CRIU_FINAL_DEAD);
	assert_int_equal(criu_cmdline_final(ARGV("criu\0dump\0-t\0001\0--leave-running"), &f), 0);
	assert_int_equal(f, CRIU_FINAL_ALIVE);
	assert_int_equal(criu_cmdline_final(ARGV("criu\0-R\0dump\0-t\0001"), &f), 0);
	assert_int_equal(f, CRIU_FINAL_ALIVE);
	assert_int_equal(criu_cmdline_final(ARGV("criu\0dump\0--leave-stopped\0-t\0001"), &f), 0);
	assert_int_equal(f, CRIU_FINAL_STOPPED);
	/* runc: `criu swrk 3`, retitled by CRIU; the verdict is in the RPC request only. */
	assert_int_equal(criu_cmdline_final(ARGV("criu: dump --rpc -t 7 -D /d"), &f), 1);
	assert_int_equal(f, CRIU_FINAL_UNKNOWN);
	assert_int_equal(criu_cmdline_final(ARGV("criu\0swrk\0003"), &f), 1);
	assert_int_equal(f, CRIU_FINAL_UNKNOWN);
	assert_int_equal(criu_cmdline_final(ARGV("/usr/sbin/criu\0service\0--address\0/s"), &f), 1);
	/* argv[0] itself is no mode, even if it were called swrk. */
	assert_int_equal(criu_cmdline_final(ARGV("swrk\0dump\0-t\0001"), &f), 0);
}

#if QP_CRIU_OPTS_KNOWN
static void set_int(char *opts, size_t off, int v)
{
	memcpy(opts + off, &v, sizeof(v));
}

static void test_layout(void **state)
{
	static char opts[QP_CRIU_OPTS_SIZE];
	enum criu_final f = CRIU_FINAL_UNKNOWN;
	char why[128] = "";

	(void)state;
	set_int(opts, QP_CRIU_OFF_MODE, QP_CRIU_MODE_DUMP);
	set_int(opts, QP_CRIU_OFF_FINAL_STATE, QP_CRIU_TASK_ALIVE);
	assert_int_equal(criu_opts_final(opts, sizeof(opts), &f, why, sizeof(why)), 0);
	assert_int_equal(f, CRIU_FINAL_ALIVE);
	set_int(opts, QP_CRIU_OFF_FINAL_STATE, QP_CRIU_TASK_STOPPED);
	assert_int_equal(criu_opts_final(opts, sizeof(opts), &f, why, sizeof(why)), 0);
	assert_int_equal(f, CRIU_FINAL_STOPPED);
	set_int(opts, QP_CRIU_OFF_FINAL_STATE, QP_CRIU_TASK_DEAD);
	assert_int_equal(criu_opts_final(opts, sizeof(opts), &f, why, sizeof(why)), 0);
	assert_int_equal(f, CRIU_FINAL_DEAD);
}

static void test_guards(void **state)
{
	static char opts[QP_CRIU_OPTS_SIZE];
	enum criu_final f = CRIU_FINAL_DEAD;
	char why[128] = "";

	(void)state;
	set_int(opts, QP_CRIU_OFF_MODE, QP_CRIU_MODE_DUMP);
	set_int(opts, QP_CRIU_OFF_FINAL_STATE, QP_CRIU_TASK_ALIVE);
	/* Another CRIU's struct: another size. */
	assert_int_equal(criu_opts_final(opts, sizeof(opts) - 8, &f, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "bytes"));
	/* The same size, but mode is not where we expect it. */
	set_int(opts, QP_CRIU_OFF_MODE, 77);
	assert_int_equal(criu_opts_final(opts, sizeof(opts), &f, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "mode"));
	/* final_state holds no task state. */
	set_int(opts, QP_CRIU_OFF_MODE, QP_CRIU_MODE_DUMP);
	set_int(opts, QP_CRIU_OFF_FINAL_STATE, 0x4000);
	assert_int_equal(criu_opts_final(opts, sizeof(opts), &f, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "final_state"));
	assert_int_equal(f, CRIU_FINAL_DEAD);	/* untouched on failure */
}
#else
static void test_layout(void **state)
{
	(void)state;
	TH_SKIP_IF("built without a CRIU source tree");
}

static void test_guards(void **state)
{
	test_layout(state);
}
#endif

static void test_outside_criu(void **state)
{
	char source[192];

	(void)state;
	assert_int_equal(criu_final_state(source, sizeof(source)), CRIU_FINAL_DEAD);
	assert_string_equal(source, "the command line");
	assert_string_equal(criu_final_name(CRIU_FINAL_ALIVE), "leave-running");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmdline),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_guards),
		cmocka_unit_test(test_outside_criu),
	};

	return th_run_group(tests, NULL, NULL);
}
