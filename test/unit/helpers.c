// SPDX-License-Identifier: GPL-2.0
/* Shared by the unit tests and the C benchmarks: see helpers.h. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "helpers.h"
#include "proc.h"
#include "uapi-compat.h"

unsigned th_skipped;

/* ------------------------------------------------------ a child process */

static void close_fd(int *fd)
{
	if (*fd > STDERR_FILENO)	/* a zeroed struct holds 0: never ours */
		close(*fd);
	*fd = -1;
}

int th_child_start(struct th_child *c, th_child_fn fn, void *arg)
{
	int cmd[2], rep[2], ret;

	c->pid = 0;
	c->cmd = c->rep = -1;
	if (pipe2(cmd, O_CLOEXEC))
		return -errno;
	if (pipe2(rep, O_CLOEXEC)) {
		ret = -errno;
		close(cmd[0]);
		close(cmd[1]);
		return ret;
	}
	c->pid = fork();
	if (c->pid == 0) {
		close(cmd[1]);
		close(rep[0]);
		fn(cmd[0], rep[1], arg);
		_exit(127);	/* fn must not return */
	}
	ret = c->pid < 0 ? -errno : 0;
	close(cmd[0]);
	close(rep[1]);
	c->cmd = cmd[1];
	c->rep = rep[0];
	if (ret)
		th_child_kill(c);
	return ret;
}

int th_child_send(const struct th_child *c, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(c->cmd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= n;
	}
	return 0;
}

int th_child_recv(const struct th_child *c, void *buf, size_t len, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->rep, .events = POLLIN };
	double deadline = now_ms() + timeout_ms;
	char *p = buf;

	while (len) {
		int left = (int)(deadline - now_ms());
		ssize_t n;

		if (left < 0 || poll(&pfd, 1, left) == 0)
			return -ETIMEDOUT;
		n = read(c->rep, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		p += n;
		len -= n;
	}
	return 0;
}

int th_child_end(struct th_child *c)
{
	int status;

	close_fd(&c->cmd);
	close_fd(&c->rep);
	if (c->pid <= 0)
		return -ECHILD;
	status = th_wait(c->pid, __WALL);
	c->pid = 0;
	return status;
}

void th_child_kill(struct th_child *c)
{
	th_reap(c->pid);
	c->pid = 0;
	close_fd(&c->cmd);
	close_fd(&c->rep);
}

void th_reap(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	th_wait(pid, __WALL);
}

int th_wait(pid_t pid, int flags)
{
	int status;
	pid_t r;

	while ((r = waitpid(pid, &status, flags)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return -errno;
	return r ? status : -EAGAIN;	/* WNOHANG: still running */
}

/* -------------------------------------------------------------- /proc */

int th_status_u64(pid_t pid, const char *key, int base, uint64_t *val)
{
	char v[256], *end;
	int ret;

	ret = proc_status_field(pid, key, v, sizeof(v));
	if (ret)
		return ret;
	*val = strtoull(v, &end, base);
	return end == v ? -EINVAL : 0;
}

char th_proc_state(pid_t pid)
{
	struct proc_stat st;

	return proc_task_stat(pid, 0, &st) ? 0 : st.state;
}

static int count_fd(int fd, const char *link, void *arg)
{
	(void)fd;
	(void)link;
	(*(int *)arg)++;
	return 0;
}

int th_count_fds(pid_t pid)
{
	int n = 0, ret;

	ret = proc_fd_for_each(pid, count_fd, &n);
	return ret < 0 ? ret : n;
}

/* ------------------------------------------------------------- clocks */

struct timespec th_ts_add_ms(struct timespec ts, long ms)
{
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* ------------------------------------------------- temporary files */

int th_tmpdir(char *buf, size_t len, const char *base, const char *name)
{
	if (!base)
		base = access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm";
	if ((size_t)snprintf(buf, len, "%s/%s.XXXXXX", base, name) >= len)
		return -ENAMETOOLONG;
	return mkdtemp(buf) ? 0 : -errno;
}

int th_tmpfile(char *buf, size_t len, const char *name)
{
	int fd;

	if ((size_t)snprintf(buf, len, "/tmp/%s.XXXXXX", name) >= len)
		return -ENAMETOOLONG;
	fd = mkostemp(buf, O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) ? -errno : 0;
}

int th_rmtree(const char *path)
{
	int ret = nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);

	return ret > 0 ? -EIO : ret < 0 ? -errno : 0;
}

char *th_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (!fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET)) {
		buf = malloc(n + 1);
		if (buf && fread(buf, 1, n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[n] = 0;
			*len = n;
		}
	}
	fclose(f);
	return buf;
}

int th_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	int ret = 0;

	if (!f)
		return -errno;
	if (fputs(text, f) == EOF)
		ret = -EIO;
	if (fclose(f) && !ret)
		ret = -errno;
	return ret;
}

static int saved_stderr = -1;

int th_stderr_to(int fd)
{
	fflush(stderr);
	if (saved_stderr < 0) {
		saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
		if (saved_stderr < 0)
			return -errno;
	}
	return dup2(fd, STDERR_FILENO) < 0 ? -errno : 0;
}

void th_stderr_restore(void)
{
	if (saved_stderr < 0)
		return;
	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	saved_stderr = -1;
}

/* ------------------------------------- the guardian is this binary */

bool th_guardian_mode(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--ctl"))
			return true;
	return false;
}

int th_guardian_self(void)
{
	char exe[PATH_MAX];
	ssize_t n;

	n = proc_exe(PROC_SELF, exe, sizeof(exe));
	if (n < 0)
		return n;
	if (setenv("CRIU_QEMU_GUARDIAN", exe, 0))
		return -errno;
	return prctl(PR_SET_CHILD_SUBREAPER, 1) ? -errno : 0;
}

/* ------------------------------------------ can this test run here? */

static char why_buf[256];

static const char *why_errno(const char *what, int err)
{
	snprintf(why_buf, sizeof(why_buf), "%s: %s", what, strerror(err));
	return why_buf;
}

const char *th_need_root(void)
{
	return geteuid() ? "needs root" : NULL;
}

const char *th_need_ptrace(void)
{
	pid_t pid = fork();
	int err = 0;

	if (pid < 0)
		return why_errno("fork", errno);
	if (pid == 0) {
		pause();
		_exit(0);
	}
	if (ptrace(PTRACE_SEIZE, pid, NULL, NULL))
		err = errno;
	th_reap(pid);
	return err ? why_errno("ptrace is not allowed here (PTRACE_SEIZE of a child)", err) : NULL;
}

const char *th_need_userfaultfd(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int err;

	if (fd < 0 && errno == EPERM)
		return "userfaultfd(2) for kernel faults is not allowed here "
		       "(vm.unprivileged_userfaultfd = 0 and no CAP_SYS_PTRACE)";
	if (fd < 0)
		return why_errno("no userfaultfd(2)", errno);
	err = ioctl(fd, UFFDIO_API, &api) ? errno : 0;
	close(fd);
	return err ? why_errno("UFFDIO_API", err) : NULL;
}

const char *th_need_uffd_wp_async(void)
{
	const uint64_t want = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
	struct uffdio_api api = { .api = UFFD_API, .features = want };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	int err;

	if (fd < 0)
		return why_errno("no userfaultfd(2)", errno);
	err = ioctl(fd, UFFDIO_API, &api) ? errno : 0;
	close(fd);
	if (err)
		return why_errno("no asynchronous userfaultfd write-protection (Linux 6.7+): UFFDIO_API",
				 err);
	if ((api.features & want) != want)
		return "no asynchronous userfaultfd write-protection (Linux 6.7+)";
	return NULL;
}

const char *th_need_pagemap_scan(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	struct page_region r;
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.vec = (uintptr_t)&r,
		.vec_len = 1,
		.category_anyof_mask = PAGE_IS_PRESENT,
		.return_mask = PAGE_IS_PRESENT,
	};
	char *page = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd, err = 0;

	if (page == MAP_FAILED)
		return why_errno("mmap", errno);
	page[0] = 1;
	arg.start = (uintptr_t)page;
	arg.end = (uintptr_t)page + ps;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, PAGEMAP_SCAN, &arg) < 0)
		err = errno;
	if (fd >= 0)
		close(fd);
	munmap(page, ps);
	return err ? why_errno("no PAGEMAP_SCAN ioctl (Linux 6.7+)", err) : NULL;
}

void th_check_failed(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: check failed: %s (errno: %s)\n", file, line, what, strerror(errno));
	exit(1);
}

void th_skip_program_if(const char *why)
{
	if (!why)
		return;
	printf("%s: skipped, %s\n", program_invocation_short_name, why);
	fflush(stdout);
	exit(77);	/* make unit: SKIPPED */
}

int th_result(int failed, size_t nr)
{
	if (failed || th_skipped < nr)
		return failed;
	printf("%s: all %zu tests skipped\n", program_invocation_short_name, nr);
	return 77;
}
