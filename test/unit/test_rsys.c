// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests for the remote-syscall layer (criu-plugin/rsys.c): a forked
 * child sits blocked in read() (or clock_nanosleep) and we inject syscalls
 * into it, move fds both ways, and check that the interrupted syscall is
 * restarted correctly after we let go.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "rsys.h"
#include "rsys-frame.h"

#define SLEEP_MS 400

/* What the child sends back for each command it reads. */
struct report {
	long n;			/* bytes read, or -errno */
	int usr1;		/* SIGUSR1 handler runs so far */
	long sleep_rc;		/* 'S' command: clock_nanosleep result */
	long sleep_ms;
	char data[32];
};

struct child {
	pid_t pid;
	int cmd;		/* we write commands */
	int rep;		/* we read reports */
};

static struct child ch;
static bool child_seccomp;	/* child denies getppid() with EPERM via seccomp */

/* ---------------------------------------------------------------- child */

static volatile sig_atomic_t usr1_count;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deny_getppid(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		_exit(4);
}

static __attribute__((noreturn)) void child_main(int cmd, int rep)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
	struct timespec ts = { 0, SLEEP_MS * 1000000L };
	sigset_t set;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);	/* a non-trivial mask to see restored */
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (child_seccomp)
		deny_getppid();

	for (;;) {
		struct report rp = { 0 };
		char buf[sizeof(rp.data)];
		long n = syscall(SYS_read, cmd, buf, sizeof(buf));

		if (n == 0)
			_exit(0);
		rp.n = n < 0 ? -errno : n;
		if (n > 0 && buf[0] == 'S') {
			long t0 = now_ms();

			rp.sleep_rc = syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ts, NULL);
			if (rp.sleep_rc < 0)
				rp.sleep_rc = -errno;
			rp.sleep_ms = now_ms() - t0;
		}
		if (n > 0)
			memcpy(rp.data, buf, n);
		rp.usr1 = usr1_count;
		if (write(rep, &rp, sizeof(rp)) != sizeof(rp))
			_exit(3);
	}
}

/* --------------------------------------------------------------- helpers */

static void reap(pid_t pid)
{
	int status;

	kill(pid, SIGKILL);
	while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR)
		;	/* ECHILD: rsys already collected it */
}

static int setup_child(void **state)
{
	int cmd[2], rep[2];

	(void)state;
	if (pipe2(cmd, O_CLOEXEC) || pipe2(rep, O_CLOEXEC))
		return -1;
	ch.pid = fork();
	if (ch.pid < 0)
		return -1;
	if (ch.pid == 0) {
		close(cmd[1]);
		close(rep[0]);
		child_main(cmd[0], rep[1]);
	}
	close(cmd[0]);
	close(rep[1]);
	ch.cmd = cmd[1];
	ch.rep = rep[0];
	return 0;
}

static int setup_child_seccomp(void **state)
{
	int ret;

	child_seccomp = true;
	ret = setup_child(state);
	child_seccomp = false;
	return ret;
}

static int teardown_child(void **state)
{
	(void)state;
	if (ch.pid > 0)
		reap(ch.pid);
	close(ch.cmd);
	close(ch.rep);
	memset(&ch, 0, sizeof(ch));
	return 0;
}

/* First field of /proc/PID/syscall: the syscall it is blocked in, -1 if none. */
static long blocked_in(pid_t pid)
{
	char path[64], buf[64] = "";
	long nr = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/syscall", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f) || sscanf(buf, "%ld", &nr) != 1)
		nr = -1;
	fclose(f);
	return nr;
}

static void wait_blocked_in(pid_t pid, long nr)
{
	int i;

	for (i = 0; i < 5000; i++) {
		if (blocked_in(pid) == nr)
			return;
		usleep(1000);
	}
	fail_msg("child %d never blocked in syscall %ld", pid, nr);
}

/* A hex field of /proc/PID/status (SigBlk, SigPnd, ...). */
static uint64_t status_hex(pid_t pid, const char *key)
{
	char path[64], line[256];
	uint64_t v = 0;
	size_t klen = strlen(key);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':')
			v = strtoull(line + klen + 1, NULL, 16);
	fclose(f);
	return v;
}

static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	p = strrchr(buf, ')');
	assert_non_null(p);
	return p[2];
}

static int count_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Is addr inside any mapping of pid? */
static bool mapped(pid_t pid, unsigned long addr)
{
	char path[64], line[512];
	unsigned long s, e;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && addr >= s && addr < e)
			found = true;
	fclose(f);
	return found;
}

/* Send a command to the child and wait (5 s at most) for its report. */
static struct report child_cmd(const char *cmd)
{
	struct pollfd pfd = { .fd = ch.rep, .events = POLLIN };
	struct report rp;

	assert_int_equal(write(ch.cmd, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(read(ch.rep, &rp, sizeof(rp)), sizeof(rp));
	return rp;
}

static void assert_echo(const char *cmd)
{
	struct report rp = child_cmd(cmd);

	assert_int_equal(rp.n, strlen(cmd));
	assert_memory_equal(rp.data, cmd, strlen(cmd));
}

static bool is_err(long v)
{
	return (unsigned long)v >= (unsigned long)-4095;
}

/* ----------------------------------------------------------------- tests */

static void test_seize_call_mem_uffd(void **state)
{
	const long page = sysconf(_SC_PAGESIZE), len = 4 * page;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { 0 };
	static char out[3 * 4096 + 200], in[sizeof(out)];
	uint64_t sigblk;
	struct rsys r;
	long addr, ufd;
	int lfd, i;

	(void)state;
	wait_blocked_in(ch.pid, SYS_read);
	sigblk = status_hex(ch.pid, "SigBlk");

	assert_int_equal(rsys_seize(&r, ch.pid), 0);
	assert_true(r.seized_by_us);
	assert_int_equal(proc_state(ch.pid), 't');
	/* read() was interrupted: restart applied to the saved regs */
	assert_int_equal((long)r.saved.rax, SYS_read);
	assert_int_equal((long)r.saved.orig_rax, -1);
	assert_int_equal(status_hex(ch.pid, "SigBlk"), ~(1ULL << (SIGKILL - 1) | 1ULL << (SIGSTOP - 1)));

	assert_int_equal(rsys_call(&r, SYS_getpid, 0, 0, 0, 0, 0, 0), ch.pid);

	addr = rsys_call(&r, SYS_mmap, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_false(is_err(addr));
	assert_true(mapped(ch.pid, addr));
	for (i = 0; i < (int)sizeof(out); i++)
		out[i] = (char)(i * 7 + 3);
	assert_int_equal(rsys_write(&r, addr + 100, out, sizeof(out)), 0);
	assert_int_equal(rsys_read(&r, addr + 100, in, sizeof(in)), 0);
	assert_memory_equal(in, out, sizeof(out));

	/* read-only memory: process_vm_writev fails, the /proc/pid/mem fallback works */
	assert_int_equal(rsys_call(&r, SYS_mprotect, addr, len, PROT_READ, 0, 0, 0), 0);
	out[0] = 'X';
	assert_int_equal(rsys_write(&r, addr + 100, out, 1), 0);
	assert_int_equal(rsys_read(&r, addr + 100, in, 1), 0);
	assert_int_equal(in[0], 'X');

	/* a userfaultfd made in the child, used from here */
	ufd = rsys_call(&r, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK, 0, 0, 0, 0, 0);
	assert_true(ufd >= 0);
	lfd = rsys_get_fd(&r, ufd);
	assert_true(lfd >= 0);
	assert_int_equal(ioctl(lfd, UFFDIO_API, &api), 0);
	reg.range.start = addr;
	reg.range.len = len;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	assert_int_equal(ioctl(lfd, UFFDIO_REGISTER, &reg), 0);	/* the child's range */
	close(lfd);
	assert_int_equal(rsys_call(&r, SYS_close, ufd, 0, 0, 0, 0, 0), 0);
	assert_int_equal(rsys_call(&r, SYS_fcntl, ufd, F_GETFD, 0, 0, 0, 0), -EBADF);
	assert_int_equal(rsys_get_fd(&r, ufd), -EBADF);

	assert_int_equal(rsys_call(&r, SYS_munmap, addr, len, 0, 0, 0, 0), 0);
	assert_false(mapped(ch.pid, addr));

	assert_int_equal(rsys_detach(&r), 0);
	assert_int_equal(r.pid, 0);
	assert_int_equal(rsys_detach(&r), 0);	/* twice is fine */
	assert_int_equal(status_hex(ch.pid, "SigBlk"), sigblk);
	assert_echo("hello");
}

static void test_put_fd(void **state)
{
	int fds_before, p[2], rfd;
	unsigned long s, big;
	struct rsys r;
	char buf[16];

	(void)state;
	wait_blocked_in(ch.pid, SYS_read);
	fds_before = count_fds(ch.pid);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);

	assert_int_equal(rsys_seize(&r, ch.pid), 0);
	rfd = rsys_put_fd(&r, p[1]);
	assert_true(rfd >= 0);
	assert_int_equal(rsys_call(&r, SYS_fcntl, rfd, F_GETFD, 0, 0, 0, 0), FD_CLOEXEC);
	assert_int_equal(count_fds(ch.pid), fds_before + 1);	/* no socket left behind */

	s = rsys_scratch(&r, 64);
	assert_true(s != 0);
	assert_int_equal(rsys_write(&r, s, "via-child", 9), 0);
	assert_int_equal(rsys_call(&r, SYS_write, rfd, s, 9, 0, 0, 0), 9);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 9);
	assert_memory_equal(buf, "via-child", 9);

	assert_int_equal(rsys_call(&r, SYS_close, rfd, 0, 0, 0, 0, 0), 0);
	assert_int_equal(count_fds(ch.pid), fds_before);
	close(p[1]);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 0);	/* no write end anywhere */
	close(p[0]);

	/* scratch: reused when big enough, replaced when not */
	assert_int_equal(rsys_scratch(&r, 100), s);
	big = rsys_scratch(&r, 1 << 20);
	assert_true(big != 0);
	assert_true(r.scratch_len >= 1 << 20);
	assert_true(mapped(ch.pid, big));

	assert_int_equal(rsys_put_fd(&r, 12345), -EBADF);	/* not our fd */
	assert_int_equal(count_fds(ch.pid), fds_before);

	assert_int_equal(rsys_detach(&r), 0);
	assert_false(mapped(ch.pid, big));
	assert_echo("after-put");
}

/* A signal sent while we hold the task is delivered afterwards, not lost. */
static void test_restart_read_with_signal(void **state)
{
	struct report rp;
	struct rsys r;
	int i;

	(void)state;
	wait_blocked_in(ch.pid, SYS_read);
	assert_int_equal(rsys_seize(&r, ch.pid), 0);
	assert_int_equal(kill(ch.pid, SIGUSR1), 0);
	for (i = 0; i < 10; i++)
		assert_int_equal(rsys_call(&r, SYS_getppid, 0, 0, 0, 0, 0, 0), getpid());
	assert_true(status_hex(ch.pid, "ShdPnd") & (1ULL << (SIGUSR1 - 1)));
	assert_true(rsys_scratch(&r, 1) != 0);
	assert_int_equal(rsys_detach(&r), 0);

	rp = child_cmd("ping");
	assert_int_equal(rp.n, 4);
	assert_memory_equal(rp.data, "ping", 4);
	assert_int_equal(rp.usr1, 1);
}

/* clock_nanosleep leaves -ERESTART_RESTARTBLOCK: restart_syscall must finish it. */
static void test_restart_nanosleep(void **state)
{
	struct report rp;
	struct pollfd pfd = { .fd = ch.rep, .events = POLLIN };
	struct rsys r;

	(void)state;
	wait_blocked_in(ch.pid, SYS_read);
	assert_int_equal(write(ch.cmd, "S", 1), 1);
	wait_blocked_in(ch.pid, SYS_clock_nanosleep);

	assert_int_equal(rsys_seize(&r, ch.pid), 0);
	assert_int_equal((long)r.saved.rax, SYS_restart_syscall);
	assert_int_equal(rsys_call(&r, SYS_getpid, 0, 0, 0, 0, 0, 0), ch.pid);
	assert_true(rsys_scratch(&r, 1) != 0);
	assert_int_equal(rsys_detach(&r), 0);

	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(read(ch.rep, &rp, sizeof(rp)), sizeof(rp));
	assert_int_equal(rp.sleep_rc, 0);
	assert_true(rp.sleep_ms >= SLEEP_MS - 1);
	assert_true(rp.sleep_ms < SLEEP_MS + 2000);
	assert_echo("woke");
}

static void seize_and_interrupt(pid_t pid)
{
	int status;

	assert_int_equal(ptrace(PTRACE_SEIZE, pid, NULL, NULL), 0);	/* no options, like CRIU */
	assert_int_equal(ptrace(PTRACE_INTERRUPT, pid, NULL, NULL), 0);
	assert_int_equal(waitpid(pid, &status, __WALL), pid);
	assert_true(WIFSTOPPED(status));
	assert_int_equal(status >> 16, PTRACE_EVENT_STOP);
}

/* Still our tracee, in a PTRACE_EVENT_STOP, with the regs and mask rsys restored. */
static void assert_parked(pid_t pid, const struct rsys *r, uint64_t mask)
{
	struct user_regs_struct regs;
	uint64_t m = 0;
	siginfo_t si;
	int status;

	assert_int_equal(waitpid(pid, &status, __WALL | WNOHANG), 0);
	assert_int_equal(proc_state(pid), 't');
	assert_int_equal(ptrace(PTRACE_GETREGS, pid, NULL, &regs), 0);
	assert_memory_equal(&regs, &r->saved, sizeof(regs));
	assert_int_equal(ptrace(PTRACE_GETSIGINFO, pid, NULL, &si), 0);
	assert_int_equal(si.si_code >> 8, PTRACE_EVENT_STOP);
	assert_int_equal(ptrace(PTRACE_GETSIGMASK, pid, (void *)sizeof(m), &m), 0);
	assert_int_equal(m, mask);
}

static void test_attach_stopped(void **state)
{
	struct user_regs_struct before;
	uint64_t mask = 0;
	struct rsys r;
	int p[2], rfd, cycle;
	unsigned long s;
	char buf[8];

	(void)state;
	wait_blocked_in(ch.pid, SYS_read);
	seize_and_interrupt(ch.pid);
	assert_int_equal(ptrace(PTRACE_GETREGS, ch.pid, NULL, &before), 0);
	assert_int_equal(ptrace(PTRACE_GETSIGMASK, ch.pid, (void *)sizeof(mask), &mask), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);

	for (cycle = 0; cycle < 2; cycle++) {
		assert_int_equal(rsys_attach_stopped(&r, ch.pid), 0);
		assert_false(r.seized_by_us);
		assert_int_equal(rsys_call(&r, SYS_getpid, 0, 0, 0, 0, 0, 0), ch.pid);
		rfd = rsys_put_fd(&r, p[1]);
		assert_true(rfd >= 0);
		s = rsys_scratch(&r, 8);
		assert_int_equal(rsys_write(&r, s, "stopped", 7), 0);
		assert_int_equal(rsys_call(&r, SYS_write, rfd, s, 7, 0, 0, 0), 7);
		assert_int_equal(rsys_call(&r, SYS_close, rfd, 0, 0, 0, 0, 0), 0);
		assert_int_equal(read(p[0], buf, sizeof(buf)), 7);
		assert_memory_equal(buf, "stopped", 7);
		assert_int_equal(rsys_detach(&r), 0);

		assert_parked(ch.pid, &r, mask);
		assert_int_equal(r.saved.rip, before.rip - 2);
		assert_int_equal((long)r.saved.rax, SYS_read);
	}
	close(p[0]);
	close(p[1]);

	assert_int_equal(ptrace(PTRACE_DETACH, ch.pid, NULL, NULL), 0);
	assert_echo("after-detach");
}

static void test_errors(void **state)
{
	struct rsys z, r;
	pid_t gone;
	int status;

	(void)state;
	memset(&z, 0, sizeof(z));
	assert_int_equal(rsys_detach(&z), 0);
	assert_int_equal(rsys_call(&z, SYS_getpid, 0, 0, 0, 0, 0, 0), -EINVAL);
	assert_int_equal(rsys_read(&z, 0x1000, &status, sizeof(status)), -EINVAL);
	assert_int_equal(rsys_get_fd(&z, 0), -EINVAL);

	/* not our tracee */
	wait_blocked_in(ch.pid, SYS_read);
	assert_true(rsys_attach_stopped(&r, ch.pid) < 0);
	assert_int_equal(r.pid, 0);
	assert_int_equal(rsys_detach(&r), 0);

	/* no such process */
	gone = fork();
	if (gone == 0)
		_exit(0);
	assert_int_equal(waitpid(gone, &status, 0), gone);
	assert_true(rsys_seize(&r, gone) < 0);
	assert_int_equal(rsys_detach(&r), 0);

	/* the task dies while we hold it */
	assert_int_equal(rsys_seize(&r, ch.pid), 0);
	assert_true(rsys_scratch(&r, 1) != 0);
	assert_int_equal(kill(ch.pid, SIGKILL), 0);
	assert_true(rsys_call(&r, SYS_getpid, 0, 0, 0, 0, 0, 0) < 0);
	assert_true(rsys_call(&r, SYS_getpid, 0, 0, 0, 0, 0, 0) < 0);
	assert_int_equal(rsys_scratch(&r, 1 << 20), 0);
	assert_true(rsys_detach(&r) < 0);
	assert_int_equal(rsys_detach(&r), 0);
	reap(ch.pid);
	ch.pid = 0;
}

/* SIGSTOP is the one signal that gets through while we inject: it must not be lost. */
static void test_sigstop_while_injecting(void **state)
{
	struct rsys r;

	(void)state;
	wait_blocked_in(ch.pid, SYS_read);
	assert_int_equal(rsys_seize(&r, ch.pid), 0);
	assert_int_equal(kill(ch.pid, SIGSTOP), 0);
	assert_int_equal(rsys_call(&r, SYS_getpid, 0, 0, 0, 0, 0, 0), ch.pid);
	assert_int_equal(rsys_call(&r, SYS_getpid, 0, 0, 0, 0, 0, 0), ch.pid);
	assert_int_equal(rsys_detach(&r), 0);
	usleep(50000);
	assert_int_equal(proc_state(ch.pid), 'T');	/* still job-control stopped */

	/* seizing a job-control-stopped task works and leaves it stopped */
	assert_int_equal(rsys_seize(&r, ch.pid), 0);
	assert_int_equal(rsys_call(&r, SYS_getpid, 0, 0, 0, 0, 0, 0), ch.pid);
	assert_int_equal(rsys_detach(&r), 0);
	usleep(50000);
	assert_int_equal(proc_state(ch.pid), 'T');

	assert_int_equal(kill(ch.pid, SIGCONT), 0);
	assert_echo("continued");
}

/* The task is killed at a random point while we inject: errors, no crash, no hang. */
static void test_killed_midflight(void **state)
{
	struct rsys r;
	pid_t killer;
	long ret = 0;
	int i;

	(void)state;
	wait_blocked_in(ch.pid, SYS_read);
	assert_int_equal(rsys_seize(&r, ch.pid), 0);
	killer = fork();
	if (killer == 0) {
		usleep(20000);
		kill(ch.pid, SIGKILL);
		_exit(0);
	}
	for (i = 0; i < 100000 && ret >= 0; i++)
		ret = rsys_call(&r, SYS_getpid, 0, 0, 0, 0, 0, 0);
	assert_true(ret < 0);
	assert_true(ret == -ESRCH);
	rsys_detach(&r);
	assert_int_equal(r.pid, 0);
	assert_int_equal(waitpid(killer, NULL, 0), killer);
	reap(ch.pid);
	ch.pid = 0;
}

/*
 * Our own seize suspends seccomp (PTRACE_O_SUSPEND_SECCOMP, root only);
 * a tracer that did not (plain PTRACE_SEIZE) leaves the filter in force.
 */
static void test_seccomp(void **state)
{
	struct rsys r;

	(void)state;
	wait_blocked_in(ch.pid, SYS_read);
	assert_int_equal(rsys_seize(&r, ch.pid), 0);
	assert_int_equal(rsys_call(&r, SYS_getppid, 0, 0, 0, 0, 0, 0), getpid());
	assert_int_equal(rsys_detach(&r), 0);

	seize_and_interrupt(ch.pid);
	assert_int_equal(rsys_attach_stopped(&r, ch.pid), 0);
	assert_int_equal(rsys_call(&r, SYS_getppid, 0, 0, 0, 0, 0, 0), -EPERM);
	assert_int_equal(rsys_call(&r, SYS_getpid, 0, 0, 0, 0, 0, 0), ch.pid);
	assert_int_equal(rsys_detach(&r), 0);
	assert_int_equal(ptrace(PTRACE_DETACH, ch.pid, NULL, NULL), 0);
	assert_echo("filtered");
}

static void test_cost(void **state)
{
	const int n = 5000;
	struct timespec t0, t1;
	struct rsys r;
	double us;
	int i;

	(void)state;
	wait_blocked_in(ch.pid, SYS_read);
	assert_int_equal(rsys_seize(&r, ch.pid), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++)
		assert_int_equal(rsys_call(&r, SYS_getpid, 0, 0, 0, 0, 0, 0), ch.pid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(rsys_detach(&r), 0);
	us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / n;
	printf("rsys: one injected syscall costs %.1f us (%d getpid calls)\n", us, n);
	assert_echo("bench");
}

/* The frame as the kernel lays out signal frames, with the state where rt_sigreturn looks. */
static void test_frame_layout(void **state)
{
	struct user_regs_struct regs = { 0 };
	struct rsys_fpx_sw_bytes sw;
	struct rsys_sigframe sf;
	static unsigned char xsave[16384];
	uint64_t xcr0 = 3, bv = 3;
	struct rsys_frame f;
	uint32_t magic2;
	size_t off;

	(void)state;
	regs.rsp = 0x7ffd12345678;
	regs.rip = 0x401234;
	regs.rax = 0xaa;
	regs.r15 = 0xff;
	regs.cs = 0x33;
	regs.ss = 0x2b;
	memcpy(xsave + RSYS_XSAVE_SW_OFF, &xcr0, sizeof(xcr0));
	memcpy(xsave + RSYS_XSAVE_HDR_OFF, &bv, sizeof(bv));
	memset(xsave, 0x5a, 160);	/* some legacy state */
	assert_int_equal(rsys_frame_make(&f, &regs, 0x1234, 0x7f0000001000, xsave, sizeof(xsave)), 0);

	assert_int_equal((f.addr + 8) % 16, 0);		/* as after a call */
	assert_int_equal(f.fpstate % 64, 0);
	assert_int_equal(f.xstate_size, RSYS_XSAVE_MIN);	/* x87 + SSE only */
	assert_true(f.addr + sizeof(sf) <= f.fpstate);
	assert_true(f.fpstate + f.xstate_size + 4 <= regs.rsp - RSYS_RED_ZONE);
	assert_int_equal(f.addr + f.len, f.fpstate + f.xstate_size + 4);

	memcpy(&sf, f.buf, sizeof(sf));
	assert_int_equal(sf.pretcode, 0x7f0000001000);
	assert_int_equal(sf.uc.uc_sigmask, 0x1234);
	assert_int_equal(sf.uc.uc_mcontext.rip, regs.rip);
	assert_int_equal(sf.uc.uc_mcontext.rsp, regs.rsp);
	assert_int_equal(sf.uc.uc_mcontext.rax, regs.rax);
	assert_int_equal(sf.uc.uc_mcontext.r15, regs.r15);
	assert_int_equal(sf.uc.uc_mcontext.cs, 0x33);
	assert_int_equal(sf.uc.uc_mcontext.ss, 0x2b);
	assert_int_equal(sf.uc.uc_mcontext.fpstate, f.fpstate);

	off = f.fpstate - f.addr;
	assert_memory_equal(f.buf + off, xsave, 160);
	memcpy(&sw, f.buf + off + RSYS_XSAVE_SW_OFF, sizeof(sw));
	assert_int_equal(sw.magic1, RSYS_FP_XSTATE_MAGIC1);
	assert_int_equal(sw.xstate_size, f.xstate_size);
	assert_int_equal(sw.extended_size, f.xstate_size + 4);
	assert_int_equal(sw.xfeatures, 3);
	memcpy(&magic2, f.buf + off + f.xstate_size, sizeof(magic2));
	assert_int_equal(magic2, RSYS_FP_XSTATE_MAGIC2);
	rsys_frame_free(&f);

	regs.rsp = 0x1000;	/* nonsense stack */
	assert_int_equal(rsys_frame_make(&f, &regs, 0, 1, xsave, sizeof(xsave)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_seize_call_mem_uffd, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_put_fd, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_restart_read_with_signal, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_restart_nanosleep, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_attach_stopped, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_errors, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_sigstop_while_injecting, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_killed_midflight, setup_child, teardown_child),
		cmocka_unit_test_setup_teardown(test_seccomp, setup_child_seccomp, teardown_child),
		cmocka_unit_test_setup_teardown(test_cost, setup_child, teardown_child),
		cmocka_unit_test(test_frame_layout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
