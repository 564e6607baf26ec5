// SPDX-License-Identifier: GPL-2.0
/*
 * qp_log() inside CRIU, from many threads at once. This binary provides
 * print_on_level() (log.c's weak reference then resolves to it, as to
 * CRIU's export in a dump), modelled on CRIU 4.1.1's vprint_on_level()
 * (criu/log.c): one static buffer, a timestamp written into it, the
 * message formatted after it, then write(2) of the buffer to the log fd.
 * Unserialized callers mix their lines there: a line twice, another lost,
 * NUL bytes. Every line must arrive whole, once, and no NUL byte.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"
#include "log.h"

#define THREADS	8
#define LINES	5000
#define TS_OFF	12	/* CRIU's TS_BUF_OFF: "(00.000000) " */

static int log_fd = -1;
static char buffer[1024];	/* CRIU's LOG_BUF_LEN */

void print_on_level(unsigned int loglevel, const char *format, ...);

void print_on_level(unsigned int loglevel, const char *format, ...)
{
	int _errno = errno, size, off = 0, ret;
	struct timeval tv;
	va_list params;

	(void)loglevel;
	gettimeofday(&tv, NULL);
	snprintf(buffer, TS_OFF, "(%02u.%06u", (unsigned)(tv.tv_sec % 100), (unsigned)tv.tv_usec);
	buffer[TS_OFF - 2] = ')';
	buffer[TS_OFF - 1] = ' ';
	va_start(params, format);
	size = vsnprintf(buffer + TS_OFF, sizeof(buffer) - TS_OFF, format, params);
	va_end(params);
	size += TS_OFF;
	while (off < size) {
		ret = write(log_fd, buffer + off, size - off);
		if (ret <= 0)
			break;
		off += ret;
	}
	errno = _errno;
}

/* Lines of different lengths, so that a shorter one leaves a NUL in a longer. */
static void *logger(void *arg)
{
	int t = (int)(intptr_t)arg;

	for (int n = 0; n < LINES; n++)
		qp_log(LOG_INFO, "t%02d n%05d %.*s end\n", t, n, (t * 7 + n) % 61,
		       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	return NULL;
}

/* One line as logger() writes it, after the timestamp; *t, *n out. */
static bool line_ok(const char *l, size_t len, int *t, int *n)
{
	const int pad = 11;	/* "tTT nNNNNN " */
	int end;

	if (len < TS_OFF + pad || l[0] != '(' || l[TS_OFF - 2] != ')')
		return false;
	l += TS_OFF;
	len -= TS_OFF;
	if (sscanf(l, "t%2d n%5d", t, n) != 2 || *t < 0 || *t >= THREADS || *n < 0 || *n >= LINES)
		return false;
	end = pad + (*t * 7 + *n) % 61;
	if ((size_t)end + 4 != len || strncmp(l + end, " end", 4))
		return false;
	for (int i = pad; i < end; i++)
		if (l[i] != 'x')
			return false;
	return true;
}

static void check_log(const char *text, size_t len)
{
	static unsigned char seen[THREADS][LINES];
	const char *p = text, *nl;
	size_t bad = 0, lines = 0;
	int t, n;

	assert_null(memchr(text, '\0', len));
	memset(seen, 0, sizeof(seen));
	for (; p < text + len; p = nl + 1) {
		nl = memchr(p, '\n', text + len - p);
		assert_non_null(nl);	/* the log ends with a whole line */
		lines++;
		if (!line_ok(p, nl - p, &t, &n)) {
			if (!bad++)
				fprintf(stderr, "mangled line: %.*s\n", (int)(nl - p), p);
			continue;
		}
		seen[t][n]++;
	}
	assert_int_equal(bad, 0);
	assert_int_equal(lines, THREADS * LINES);
	for (t = 0; t < THREADS; t++)
		for (n = 0; n < LINES; n++)
			assert_int_equal(seen[t][n], 1);
}

static void test_threads_lines_whole_once(void **state)
{
	char path[64], *text;
	pthread_t tid[THREADS];
	struct stat st;

	(void)state;
	log_fd = th_tmpfile(path, sizeof(path), "test_log");
	assert_true(log_fd >= 0);
	unlink(path);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, logger, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(tid[i], NULL);

	assert_int_equal(fstat(log_fd, &st), 0);
	text = malloc(st.st_size + 1);
	assert_non_null(text);
	assert_int_equal(pread(log_fd, text, st.st_size, 0), st.st_size);
	check_log(text, st.st_size);
	free(text);
	close(log_fd);
	log_fd = -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_lines_whole_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
