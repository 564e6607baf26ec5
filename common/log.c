// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "criu-weak.h"
#include "log.h"

static unsigned int stderr_level = LOG_WARN;

/*
 * CRIU's print_on_level() formats into one static buffer and then writes
 * it: two of our worker threads logging at once mix their lines (doubled
 * lines, NUL bytes in dump.log). CRIU's own thread is inside one of our
 * hooks while our threads run, so serializing our callers is enough.
 */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * A failing disk makes every write or read of a worker, or every retry of
 * the guardian, log the same error: hundreds of lines a second into a log
 * that may live on that same disk. Errors and warnings of one call site
 * (its format string) are limited to RATE_BURST a second; the count of
 * those left out comes with the next line of that site.
 */
#define RATE_SLOTS	32
#define RATE_BURST	10

struct rate {
	const char *fmt;
	time_t sec;
	unsigned n, dropped;
};

static struct rate rates[RATE_SLOTS];

static struct rate *rate_slot(const char *fmt, time_t now)
{
	struct rate *r = &rates[((unsigned long)fmt >> 4) % RATE_SLOTS];

	if (r->fmt != fmt) {
		r->fmt = fmt;
		r->sec = now;
		r->n = r->dropped = 0;
	}
	return r;
}

/* With log_lock held. Returns how many lines were left out before this one, or -1: leave it out. */
static long rate_check(unsigned int level, const char *fmt)
{
	struct timespec ts;
	struct rate *r;
	long dropped;

	if (level > LOG_WARN)
		return 0;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	r = rate_slot(fmt, ts.tv_sec);
	if (r->sec != ts.tv_sec) {
		r->sec = ts.tv_sec;
		r->n = 0;
	}
	if (r->n++ >= RATE_BURST) {
		r->dropped++;
		return -1;
	}
	dropped = r->dropped;
	r->dropped = 0;
	return dropped;
}

static void emit(unsigned int level, const char *line)
{
	if (print_on_level)
		print_on_level(level, "%s", line);
	else if (level <= stderr_level)
		fputs(line, stderr);
}

void qp_log_set_level(unsigned int level)
{
	stderr_level = level;
}

/* Callers log between a failing call and their use of errno: keep it. */
void qp_log(unsigned int level, const char *fmt, ...)
{
	int saved_errno = errno;
	char buf[1024];
	long dropped;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&log_lock);
	dropped = rate_check(level, fmt);
	if (dropped > 0) {
		char note[96];

		snprintf(note, sizeof(note), LOG_TAG "(%ld more lines like the next one left out)\n",
			 dropped);
		emit(level, note);
	}
	if (dropped >= 0)
		emit(level, buf);
	pthread_mutex_unlock(&log_lock);
	errno = saved_errno;
}
