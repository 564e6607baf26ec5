// SPDX-License-Identifier: GPL-2.0
/*
 * qp_log() outside CRIU (guardian, image tool): lines go to stderr. errno
 * must be the caller's again afterwards, also when writing stderr fails
 * (a full disk under the guardian's log), and lines from many threads
 * arrive whole. test_log.c covers the path through CRIU's logger.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"
#include "log.h"

#define THREADS	4
#define LINES	2000

/* Point stderr at fd (taken over) for one test; restore_stderr() undoes it, also after a failure. */
static void stderr_to(int fd)
{
	assert_true(fd >= 0);
	assert_int_equal(th_stderr_to(fd), 0);
	close(fd);
}

static int restore_stderr(void **state)
{
	(void)state;
	th_stderr_restore();
	return 0;
}

static void test_errno_kept_when_stderr_full(void **state)
{
	(void)state;
	stderr_to(open("/dev/full", O_WRONLY | O_CLOEXEC));
	errno = EXDEV;
	pr_err("lost on a full disk\n");
	assert_int_equal(errno, EXDEV);
	errno = ENOENT;
	pr_perror("with %%m");
	assert_int_equal(errno, ENOENT);
}

static void test_errno_kept_when_logged(void **state)
{
	(void)state;
	stderr_to(open("/dev/null", O_WRONLY | O_CLOEXEC));
	errno = EAGAIN;
	pr_warn("a line\n");
	assert_int_equal(errno, EAGAIN);
}

static void *logger(void *arg)
{
	/* Info: errors and warnings of one call site are rate-limited. */
	for (int n = 0; n < LINES; n++)
		pr_info("t%d n%d %.*s\n", (int)(intptr_t)arg, n, n % 50,
			"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
	return NULL;
}

static void test_threads_lines_whole(void **state)
{
	char path[64], line[256];
	static unsigned char seen[THREADS][LINES];
	pthread_t tid[THREADS];
	int fd, t, n, lines = 0;
	FILE *f;

	(void)state;
	fd = th_tmpfile(path, sizeof(path), "test_log_stderr");
	stderr_to(fd);
	qp_log_set_level(LOG_INFO);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, logger, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(tid[i], NULL);
	restore_stderr(NULL);

	f = fopen(path, "r");
	assert_non_null(f);
	unlink(path);
	while (fgets(line, sizeof(line), f)) {
		char *tail = strstr(line, LOG_TAG);

		lines++;
		assert_non_null(tail);
		assert_int_equal(sscanf(tail, LOG_TAG "t%d n%d", &t, &n), 2);
		assert_true(t >= 0 && t < THREADS && n >= 0 && n < LINES);
		assert_int_equal(strspn(strrchr(line, ' ') + 1, "y\n"), strlen(strrchr(line, ' ') + 1));
		seen[t][n]++;
	}
	fclose(f);
	assert_int_equal(lines, THREADS * LINES);
	for (t = 0; t < THREADS; t++)
		for (n = 0; n < LINES; n++)
			assert_int_equal(seen[t][n], 1);
}

/* The same error 1000 times at once, then once more a second later. */
static void test_errors_rate_limited(void **state)
{
	char path[64], line[256];
	int fd, errors = 0, notes = 0;
	struct timespec t0, t1;
	FILE *f;

	(void)state;
	fd = th_tmpfile(path, sizeof(path), "test_log_rate");
	stderr_to(fd);
	/* Start at the beginning of a second: the burst must not straddle two. */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC_COARSE, &t1);
	while (t1.tv_sec == t0.tv_sec);
	for (int i = 0; i < 1000; i++)
		pr_err("disk failed at %d\n", i);
	sleep(1);
	pr_err("disk failed at %d\n", 1000);
	restore_stderr(NULL);
	f = fopen(path, "r");
	assert_non_null(f);
	unlink(path);
	while (fgets(line, sizeof(line), f)) {
		errors += !!strstr(line, "disk failed at");
		if (strstr(line, "more lines like the next one left out")) {
			notes++;
			assert_non_null(strstr(line, "(990 more lines"));
		}
	}
	fclose(f);
	assert_int_equal(errors, 11);	/* a burst of 10, then the one after a second */
	assert_int_equal(notes, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_errno_kept_when_stderr_full, restore_stderr),
		cmocka_unit_test_teardown(test_errno_kept_when_logged, restore_stderr),
		cmocka_unit_test_teardown(test_threads_lines_whole, restore_stderr),
		cmocka_unit_test_teardown(test_errors_rate_limited, restore_stderr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
