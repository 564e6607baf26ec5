/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Logging for code that runs inside CRIU (the plugin) and outside it (the
 * guardian, the image tool, unit tests). Inside CRIU the lines go through
 * CRIU's own print_on_level(), so they land in dump.log / restore.log with
 * CRIU's timestamps; elsewhere they go to stderr.
 */
#ifndef CRIU_QEMU_LOG_H
#define CRIU_QEMU_LOG_H

/* Same numbers as CRIU's log levels (criu/include/log.h). */
#define LOG_MSG   0
#define LOG_ERROR 1
#define LOG_WARN  2
#define LOG_INFO  3
#define LOG_DEBUG 4

/*
 * Every line says it comes from the plugin (LOG_TAG) and, as in CRIU, a file
 * names its part with its own LOG_PREFIX, defined before its first include:
 *	#define LOG_PREFIX "handoff: "
 */
#define LOG_TAG "qemu_plugin: "
#ifndef LOG_PREFIX
#define LOG_PREFIX ""
#endif

void qp_log(unsigned int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Where messages go when not inside CRIU: stderr by default. */
void qp_log_set_level(unsigned int level);

#define pr_err(fmt, ...)   qp_log(LOG_ERROR, "Error (%s:%d): " LOG_TAG LOG_PREFIX fmt, __FILE__, __LINE__, ##__VA_ARGS__)
#define pr_warn(fmt, ...)  qp_log(LOG_WARN, "Warn  (%s:%d): " LOG_TAG LOG_PREFIX fmt, __FILE__, __LINE__, ##__VA_ARGS__)
#define pr_info(fmt, ...)  qp_log(LOG_INFO, LOG_TAG LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) qp_log(LOG_DEBUG, LOG_TAG LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_perror(fmt, ...) pr_err(fmt ": %m\n", ##__VA_ARGS__)

#endif
