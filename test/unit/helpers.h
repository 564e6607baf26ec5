/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the unit tests (test_*.c) and the C benchmarks (test/bench/bench_*.c)
 * share: a forked child with a pipe each way, reaping, fields of
 * /proc/PID/status, temporary files and directories, and the checks that
 * say whether a test can run here at all. Functions return 0 or -errno and
 * never assert, so the benchmarks link this file without cmocka; the
 * TH_SKIP_IF() and th_run_group() macros are for cmocka tests only.
 */
#ifndef CRIU_QEMU_TEST_HELPERS_H
#define CRIU_QEMU_TEST_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/types.h>

#include "clock.h"	/* now_ms(): the clock tests time themselves by */

/* ------------------------------------------------------ a child process */

/* A child and the parent's ends of its two pipes (both O_CLOEXEC). */
struct th_child {
	pid_t pid;
	int cmd;	/* write end: what the parent sends */
	int rep;	/* read end: what the child reports */
};

/*
 * The child's side: cmd is its read end, rep its write end. It must not
 * return (end with _exit()); a child that reads cmd until EOF ends when
 * the parent calls th_child_end().
 */
typedef void (*th_child_fn)(int cmd, int rep, void *arg);

/* Fork a child running fn(cmd, rep, arg). 0 or -errno; *c zeroed on failure. */
int th_child_start(struct th_child *c, th_child_fn fn, void *arg);

/* Write all of buf to the child. 0 or -errno (-EPIPE: it is gone). */
int th_child_send(const struct th_child *c, const void *buf, size_t len);

/* Read exactly len bytes from the child within timeout_ms. 0, -ETIMEDOUT or -EIO. */
int th_child_recv(const struct th_child *c, void *buf, size_t len, int timeout_ms);

/* Close the pipes and wait for the child to exit by itself: its wait status. */
int th_child_end(struct th_child *c);

/* SIGKILL the child, reap it and close the pipes; safe on a zeroed struct and twice. */
void th_child_kill(struct th_child *c);

/* SIGKILL pid and reap it, traced or not (__WALL); ECHILD (reaped already) is fine. */
void th_reap(pid_t pid);

/* waitpid() that retries on EINTR: the wait status, or -errno. */
int th_wait(pid_t pid, int flags);

/* -------------------------------------------------------------- /proc */

/* Numeric field `key` (e.g. "SigBlk" base 16, "TracerPid" base 10) of /proc/PID/status. */
int th_status_u64(pid_t pid, const char *key, int base, uint64_t *val);

/* The state letter of /proc/PID/stat ('R', 'S', 't', ...), or 0 if pid is gone. */
char th_proc_state(pid_t pid);

/* Open fds of pid, or -errno. */
int th_count_fds(pid_t pid);

/* ------------------------------------------------------------- clocks */

/* ts + ms, normalized. */
struct timespec th_ts_add_ms(struct timespec ts, long ms);

/* ------------------------------------------------- temporary files */

/*
 * mkdtemp() of base/name.XXXXXX into buf; base NULL: /dev/shm when
 * writable (unlinking big files there is fast), else /tmp. 0 or -errno.
 */
int th_tmpdir(char *buf, size_t len, const char *base, const char *name);

/* mkstemp() of /tmp/name.XXXXXX, path kept in buf (the caller unlinks): the fd, or -errno. */
int th_tmpfile(char *buf, size_t len, const char *name);

/* Remove path and everything below it, like rm -rf. 0 or -errno. */
int th_rmtree(const char *path);

/* A whole file, NUL-terminated, in malloc'ed memory; its length in *len. NULL on failure. */
char *th_read_file(const char *path, size_t *len);

/* Create or replace path with text. 0 or -errno. */
int th_write_file(const char *path, const char *text);

/* Point stderr at fd (fd stays the caller's) until th_stderr_restore(). 0 or -errno. */
int th_stderr_to(int fd);

/* stderr as before th_stderr_to(); nothing when it was not redirected. */
void th_stderr_restore(void);

/* ------------------------------------- the guardian is this binary */

/* Started as the guardian (a --ctl argument)? main() then returns guardian_main(). */
bool th_guardian_mode(int argc, char **argv);

/*
 * Make this binary the guardian a handoff spawns ($CRIU_QEMU_GUARDIAN,
 * unless already set) and its reaper (PR_SET_CHILD_SUBREAPER), so its exit
 * status can be checked. 0 or -errno.
 */
int th_guardian_self(void);

/* ------------------------------------------ can this test run here? */

/* Each returns NULL when it can, or why not, for the skip message. */
const char *th_need_root(void);
/* PTRACE_SEIZE of our own child (a seccomp policy or an LSM may forbid it). */
const char *th_need_ptrace(void);
/* userfaultfd(2) able to handle kernel faults (what another task's memory needs). */
const char *th_need_userfaultfd(void);
/* Asynchronous write-protection (UFFD_FEATURE_WP_ASYNC, Linux 6.7), user-mode fd. */
const char *th_need_uffd_wp_async(void);
/* The PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux 6.7). */
const char *th_need_pagemap_scan(void);

/* Tests skipped with TH_SKIP_IF() so far. */
extern unsigned th_skipped;

/*
 * Inside a cmocka test: when why is not NULL, say so and skip the test.
 * th_run_group() then knows whether anything ran at all.
 */
#define TH_SKIP_IF(why)								\
	do {									\
		const char *why_ = (why);					\
		if (why_) {							\
			print_message("%s: skipped, %s\n", __func__, why_);	\
			th_skipped++;						\
			skip();							\
		}								\
	} while (0)

/* In a benchmark (no cmocka): when cond is false, say where and exit 1. */
#define TH_CHECK(cond)								\
	do {									\
		if (!(cond))							\
			th_check_failed(__FILE__, __LINE__, #cond);		\
	} while (0)

__attribute__((noreturn)) void th_check_failed(const char *file, int line, const char *what);

/* In main(): when why is not NULL, say so and exit 77 (make unit: SKIPPED). */
void th_skip_program_if(const char *why);

/* cmocka's result of nr tests: 77 when none failed and all were skipped. */
int th_result(int failed, size_t nr);

/* cmocka_run_group_tests(), exit status as th_result(). */
#define th_run_group(tests, setup, teardown) \
	th_result(cmocka_run_group_tests(tests, setup, teardown), sizeof(tests) / sizeof((tests)[0]))

#endif
