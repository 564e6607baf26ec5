// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

/* Exported by the criu binary; NULL when we are not loaded by CRIU. */
extern void print_on_level(unsigned int loglevel, const char *format, ...) __attribute__((weak));
extern unsigned int log_get_loglevel(void) __attribute__((weak));

static unsigned int stderr_level = LOG_WARN;

/*
 * CRIU's print_on_level() formats into one static buffer and then writes
 * it: two of our worker threads logging at once mix their lines (doubled
 * lines, NUL bytes in dump.log). CRIU's own thread is inside one of our
 * hooks while our threads run, so serializing our callers is enough.
 */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void qp_log_set_level(unsigned int level)
{
	stderr_level = level;
}

/* Callers log between a failing call and their use of errno: keep it. */
void qp_log(unsigned int level, const char *fmt, ...)
{
	int saved_errno = errno;
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&log_lock);
	if (print_on_level)
		print_on_level(level, "%s", buf);
	else if (level <= stderr_level)
		fputs(buf, stderr);
	pthread_mutex_unlock(&log_lock);
	errno = saved_errno;
}
