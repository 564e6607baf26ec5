// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests for the plugin's configuration (criu-plugin/config.c): the
 * file format (comments, quotes, line numbers in errors), number ranges,
 * the config path (missing, a directory), and environment overrides.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "helpers.h"
#include "log.h"

static char tmpdir[64];
static char conf[128];

/* Every variable qp_config_load() reads: tests start from a clean slate. */
static const char *const env_names[] = {
	"CRIU_QEMU_CONFIG", "CRIU_QEMU_ENABLED", "CRIU_QEMU_WORKERS", "CRIU_QEMU_ODIRECT",
	"CRIU_QEMU_MIN_BLOCK_MB", "CRIU_QEMU_QMP_TIMEOUT_MS", "CRIU_QEMU_LIVE",
	"CRIU_QEMU_DOWNTIME_MS", "CRIU_QEMU_LIVE_MAX_PASSES", "CRIU_QEMU_LIVE_MAX_MS",
	"CRIU_QEMU_INCREMENTAL", "CRIU_QEMU_BASE_IMAGE", "CRIU_QEMU_INCREMENTAL_VERIFY",
	"CRIU_QEMU_LAZY_RESTORE",
};

/* Log capture: stderr goes to a memfd between capture_start/capture_end. */
static int cap_fd = -1;
static char captured[8192];

static void capture_start(void)
{
	cap_fd = memfd_create("log", MFD_CLOEXEC);
	assert_true(cap_fd >= 0);
	assert_int_equal(th_stderr_to(cap_fd), 0);
	qp_log_set_level(LOG_DEBUG);
}

static const char *capture_end(void)
{
	ssize_t n;

	th_stderr_restore();
	qp_log_set_level(LOG_WARN);
	n = pread(cap_fd, captured, sizeof(captured) - 1, 0);
	close(cap_fd);
	captured[n > 0 ? n : 0] = '\0';
	return captured;
}

static void write_conf(const char *text)
{
	assert_int_equal(th_write_file(conf, text), 0);
	setenv("CRIU_QEMU_CONFIG", conf, 1);
}

/* qp_config_load() with text as the config file; log lines in *log. */
static int load_text(struct qp_config *c, const char *text, const char **log)
{
	int ret;

	write_conf(text);
	capture_start();
	ret = qp_config_load(c);
	*log = capture_end();
	return ret;
}

static int setup(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
		unsetenv(env_names[i]);
	assert_int_equal(th_tmpdir(tmpdir, sizeof(tmpdir), "/tmp", "test_config"), 0);
	snprintf(conf, sizeof(conf), "%s/qemu_plugin.conf", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_stderr_restore();	/* a failed test may leave it captured */
	return th_rmtree(tmpdir);
}

static void test_defaults_missing_file(void **state)
{
	struct qp_config c;
	const char *log;

	(void)state;
	setenv("CRIU_QEMU_CONFIG", conf, 1);	/* not created */
	capture_start();
	assert_int_equal(qp_config_load(&c), 0);
	log = capture_end();
	assert_true(c.enabled);
	assert_int_equal(c.workers, 0);
	assert_int_equal(c.min_block_bytes, 64ULL << 20);
	assert_true(c.tcg_code);
	assert_int_equal(c.qmp_timeout_ms, 1000);
	assert_string_equal(c.base_image, "");
	/* The plugin's "loaded" line says which file was looked for, and that there is none. */
	(void)log;
	assert_non_null(strstr(c.source, conf));
	assert_non_null(strstr(c.source, "none, defaults"));
}

static void test_log_names_file(void **state)
{
	struct qp_config c;
	const char *log;

	(void)state;
	assert_int_equal(load_text(&c, "workers = 3\ntcg_code = no\n", &log), 0);
	assert_int_equal(c.workers, 3);
	assert_false(c.tcg_code);
	assert_non_null(strstr(c.source, conf));
	assert_non_null(strstr(c.source, "26 bytes"));
}

/* 2^44 MiB is 2^64 bytes: it used to wrap to 0 and be accepted. */
static void test_min_block_overflow(void **state)
{
	struct qp_config c;
	const char *log;

	(void)state;
	qp_config_defaults(&c);
	assert_int_not_equal(qp_config_set(&c, "min_block_mb", "17592186044416"), 0);
	assert_int_equal(c.min_block_bytes, 64ULL << 20);
	assert_int_equal(qp_config_set(&c, "min_block_mb", "17592186044415"), 0);
	assert_int_equal(c.min_block_bytes, 17592186044415ULL << 20);

	assert_int_equal(load_text(&c, "min_block_mb = 17592186044416\n", &log), -EINVAL);
	assert_non_null(strstr(log, "min_block_mb"));
	assert_non_null(strstr(log, "17592186044416"));
	assert_non_null(strstr(log, "out of range"));
	assert_non_null(strstr(log, ":1:"));

	setenv("CRIU_QEMU_MIN_BLOCK_MB", "35184372088832", 1);
	unlink(conf);
	capture_start();
	assert_int_equal(qp_config_load(&c), -EINVAL);
	log = capture_end();
	assert_non_null(strstr(log, "CRIU_QEMU_MIN_BLOCK_MB"));
	assert_non_null(strstr(log, "35184372088832"));
	unsetenv("CRIU_QEMU_MIN_BLOCK_MB");
}

/* Every numeric key: overflowing, negative and out-of-range values fail. */
static void test_numbers_out_of_range(void **state)
{
	static const char *const keys[] = { "workers",	   "qmp_timeout_ms",  "downtime_ms",
					    "live_max_passes", "live_max_ms", "min_block_mb" };
	static const char *const bad[] = { "18446744073709551616", "99999999999999999999999", "-1",
					   " -1", "\t-5", "-0", "" , "12abc", "0x" };
	struct qp_config c, orig;

	(void)state;
	qp_config_defaults(&orig);
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
			c = orig;
			if (!qp_config_set(&c, keys[k], bad[b]))
				fail_msg("%s = '%s' accepted", keys[k], bad[b]);
			assert_memory_equal(&c, &orig, sizeof(c));
		}
		c = orig;
		assert_int_equal(qp_config_set(&c, keys[k], "0x10"), 0);
	}
	/* The unsigned keys stop at 2^20 (workers, milliseconds, passes). */
	assert_int_equal(qp_config_set(&c, "live_max_ms", "1048576"), 0);
	assert_int_equal(c.live_max_ms, 1048576);
	assert_int_equal(qp_config_set(&c, "live_max_ms", "1048577"), -ERANGE);
	assert_int_equal(qp_config_set(&c, "workers", "4294967296"), -ERANGE);
	assert_int_equal(c.workers, 0);
}

static void test_inline_comment(void **state)
{
	struct qp_config c;
	const char *log;

	(void)state;
	assert_int_equal(load_text(&c,
				   "# whole-line comment\n"
				   "workers = 4   # four threads\n"
				   "enabled = no\t# off\n"
				   "live = yes #\n"
				   "min_block_mb = 128# not a comment: no blank before it\n",
				   &log),
			 -EINVAL);
	assert_int_equal(c.workers, 4);
	assert_false(c.enabled);
	assert_true(c.live);
	assert_non_null(strstr(log, ":5:"));

	/* '#' inside a value is kept; a blank before it starts a comment. */
	assert_int_equal(load_text(&c, "base_image = /srv/vm#1 # the first one\n", &log), 0);
	assert_string_equal(c.base_image, "/srv/vm#1");
	assert_int_equal(load_text(&c, "base_image = # nothing: CRIU's parent link\n", &log), 0);
	assert_string_equal(c.base_image, "");
}

static void test_quotes(void **state)
{
	struct qp_config c;
	const char *log;

	(void)state;
	assert_int_equal(load_text(&c, "base_image = \"/srv/vm #1 \"  # comment\nworkers=\"2\"\n", &log), 0);
	assert_string_equal(c.base_image, "/srv/vm #1 ");
	assert_int_equal(c.workers, 2);
	assert_int_equal(load_text(&c, "base_image = \"/srv/vm\n", &log), -EINVAL);
	assert_non_null(strstr(log, "quote"));
	assert_int_equal(load_text(&c, "base_image = \"/a\" /b\n", &log), -EINVAL);
}

static void test_directory(void **state)
{
	struct qp_config c;
	const char *log;

	(void)state;
	setenv("CRIU_QEMU_CONFIG", tmpdir, 1);
	capture_start();
	assert_int_equal(qp_config_load(&c), -EISDIR);
	log = capture_end();
	assert_non_null(strstr(log, tmpdir));
	assert_non_null(strstr(log, "directory"));
}

static void test_errors_keep_going(void **state)
{
	struct qp_config c;
	const char *log;

	(void)state;
	assert_int_equal(load_text(&c, "workers = 2\nno equals sign\nbogus = 1\nodirect = maybe\nlive = no\n",
				   &log),
			 -EINVAL);
	assert_non_null(strstr(log, ":2:"));
	assert_non_null(strstr(log, ":3:"));
	assert_non_null(strstr(log, "bogus"));
	assert_non_null(strstr(log, ":4:"));
	assert_non_null(strstr(log, "maybe"));
	/* Good lines around the bad ones still apply (the dump fails anyway). */
	assert_int_equal(c.workers, 2);
	assert_false(c.live);
}

/* A line longer than any fixed line buffer: a long base_image path. */
static void test_long_line(void **state)
{
	char text[5000], path[4000];
	struct qp_config c;
	const char *log;

	(void)state;
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	snprintf(text, sizeof(text), "base_image = %s\nworkers = 1\n", path);
	assert_int_equal(load_text(&c, text, &log), 0);
	assert_string_equal(c.base_image, path);
	assert_int_equal(c.workers, 1);
}

static void test_base_image_too_long(void **state)
{
	char path[sizeof(((struct qp_config *)0)->base_image) + 1];
	struct qp_config c;

	(void)state;
	qp_config_defaults(&c);
	memset(path, 'b', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	assert_int_not_equal(qp_config_set(&c, "base_image", path), 0);
	path[sizeof(path) - 2] = '\0';
	assert_int_equal(qp_config_set(&c, "base_image", path), 0);
	assert_int_equal(strlen(c.base_image), sizeof(c.base_image) - 1);
}

static void test_env_overrides_file(void **state)
{
	struct qp_config c;
	const char *log;

	(void)state;
	setenv("CRIU_QEMU_WORKERS", "7", 1);
	setenv("CRIU_QEMU_LAZY_RESTORE", "on", 1);
	setenv("CRIU_QEMU_BASE_IMAGE", "../dump1", 1);
	assert_int_equal(load_text(&c, "workers = 3\nodirect = yes\n", &log), 0);
	assert_int_equal(c.workers, 7);
	assert_true(c.odirect);
	assert_true(c.lazy_restore);
	assert_string_equal(c.base_image, "../dump1");
	setenv("CRIU_QEMU_WORKERS", "many", 1);
	assert_int_equal(load_text(&c, "", &log), -EINVAL);
	assert_non_null(strstr(log, "CRIU_QEMU_WORKERS"));
	assert_non_null(strstr(log, "many"));
	unsetenv("CRIU_QEMU_WORKERS");
	unsetenv("CRIU_QEMU_LAZY_RESTORE");
	unsetenv("CRIU_QEMU_BASE_IMAGE");
}

/* qp_config_parse() takes a length: no NUL terminator, NUL bytes inside. */
static void test_parse_buffer(void **state)
{
	static const char text[] = "workers = 5\nlive = no";
	static const char nul[] = "workers = 6\0junk\nlive = no\n";
	struct qp_config c;

	(void)state;
	qp_config_defaults(&c);
	assert_int_equal(qp_config_parse(&c, text, strlen("workers = 5"), "buf"), 0);
	assert_int_equal(c.workers, 5);
	assert_true(c.live);
	assert_int_equal(qp_config_parse(&c, text, sizeof(text) - 1, "buf"), 0);
	assert_false(c.live);
	assert_int_equal(qp_config_parse(&c, "", 0, "buf"), 0);
	assert_int_equal(qp_config_parse(&c, "\n\n  \r\n", 5, "buf"), 0);

	qp_config_defaults(&c);
	capture_start();
	assert_int_equal(qp_config_parse(&c, nul, sizeof(nul) - 1, "buf"), -EINVAL);
	assert_non_null(strstr(capture_end(), "buf:1:"));
	assert_int_equal(c.workers, 0);
	assert_false(c.live);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_names_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_min_block_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_numbers_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inline_comment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quotes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_keep_going, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_base_image_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_overrides_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_buffer, setup, teardown),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
