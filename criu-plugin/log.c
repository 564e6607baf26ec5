// SPDX-License-Identifier: GPL-2.0
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

/* Exported by the criu binary; NULL when we are not loaded by CRIU. */
extern void print_on_level(unsigned int loglevel, const char *format, ...) __attribute__((weak));
extern unsigned int log_get_loglevel(void) __attribute__((weak));

static unsigned int stderr_level = LOG_WARN;

void qp_log_set_level(unsigned int level)
{
	stderr_level = level;
}

void qp_log(unsigned int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);

	if (print_on_level) {
		print_on_level(level, "%s", buf);
		return;
	}
	if (level <= stderr_level)
		fputs(buf, stderr);
}
