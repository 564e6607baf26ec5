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
#include <stdbool.h>
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
#include <sys/uio.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "helpers.h"
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

static struct th_child ch;	/* blocked in read() of its commands */
static bool child_seccomp;	/* child denies getppid() with EPERM via seccomp */

/* Why a test cannot run here, or NULL: set in main(). */
static const char *no_ptrace, *no_sibling_ptrace, *no_uffd, *not_root;

/* ---------------------------------------------------------------- child */

static volatile sig_atomic_t usr1_count;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
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

static void child_main(int cmd, int rep, void *arg)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
	struct timespec ts = { 0, SLEEP_MS * 1000000L };
	sigset_t set;

	(void)arg;
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
			double t0 = now_ms();

			rp.sleep_rc = syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ts, NULL);
			if (rp.sleep_rc < 0)
				rp.sleep_rc = -errno;
			rp.sleep_ms = (long)(now_ms() - t0);
		}
		if (n > 0)
			memcpy(rp.data, buf, n);
		rp.usr1 = usr1_count;
		if (write(rep, &rp, sizeof(rp)) != sizeof(rp))
			_exit(3);
	}
}

/* --------------------------------------------------------------- helpers */

static int setup_child(void **state)
{
	(void)state;
	return th_child_start(&ch, child_main, NULL);
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
	th_child_kill(&ch);
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
	uint64_t v;

	assert_int_equal(th_status_u64(pid, key, 16, &v), 0);
	return v;
}

static char proc_state(pid_t pid)
{
	char s = th_proc_state(pid);

	assert_true(s != 0);
	return s;
}

static int count_fds(pid_t pid)
{
	int n = th_count_fds(pid);

	assert_true(n >= 0);
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
	struct report rp;

	assert_int_equal(th_child_send(&ch, cmd, strlen(cmd)), 0);
	assert_int_equal(th_child_recv(&ch, &rp, sizeof(rp), 5000), 0);
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
	TH_SKIP_IF(no_ptrace);
	TH_SKIP_IF(no_uffd);
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
	TH_SKIP_IF(no_ptrace);
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
	TH_SKIP_IF(no_ptrace);
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
	struct rsys r;

	(void)state;
	TH_SKIP_IF(no_ptrace);
	wait_blocked_in(ch.pid, SYS_read);
	assert_int_equal(write(ch.cmd, "S", 1), 1);
	wait_blocked_in(ch.pid, SYS_clock_nanosleep);

	assert_int_equal(rsys_seize(&r, ch.pid), 0);
	assert_int_equal((long)r.saved.rax, SYS_restart_syscall);
	assert_int_equal(rsys_call(&r, SYS_getpid, 0, 0, 0, 0, 0, 0), ch.pid);
	assert_true(rsys_scratch(&r, 1) != 0);
	assert_int_equal(rsys_detach(&r), 0);

	assert_int_equal(th_child_recv(&ch, &rp, sizeof(rp), 5000), 0);
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
	TH_SKIP_IF(no_ptrace);
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
	TH_SKIP_IF(no_ptrace);
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
	th_reap(ch.pid);
	ch.pid = 0;
}

/* SIGSTOP is the one signal that gets through while we inject: it must not be lost. */
static void test_sigstop_while_injecting(void **state)
{
	struct rsys r;

	(void)state;
	TH_SKIP_IF(no_ptrace);
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
	TH_SKIP_IF(no_ptrace);
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
	th_reap(ch.pid);
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
	TH_SKIP_IF(no_ptrace);
	TH_SKIP_IF(not_root);
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

/* ------------------------------------------- surviving the tracer's death */

/*
 * A victim whose whole user state is known: victim_run() loads every GPR,
 * the flags, MXCSR, ymm0-15 and, with AVX-512, zmm31, the upper half of
 * zmm15 and k1 from victim_in, then either spins (jumping through
 * victim_resume, which touches no register or flag) or makes the one
 * syscall its registers describe, and stores all of it to victim_out.
 * A tracer process seizes it, attaches rsys and dies mid-call; the victim
 * must go on with exactly that state.
 */
enum { G_RAX, G_RBX, G_RCX, G_RDX, G_RSI, G_RDI, G_RBP, G_RSP,
       G_R8, G_R9, G_R10, G_R11, G_R12, G_R13, G_R14, G_R15, NR_G };

struct vstate {
	uint64_t gpr[NR_G];	/* 0 */
	uint64_t flags;		/* 128 */
	uint64_t mxcsr;		/* 136 */
	uint64_t k1;		/* 144 */
	uint64_t pad[5];
	uint8_t ymm[16][32];	/* 192 */
	uint8_t zmm31[64];	/* 704 */
	uint8_t zmm15hi[32];	/* 768 */
};

_Static_assert(offsetof(struct vstate, flags) == 128, "asm offsets");
_Static_assert(offsetof(struct vstate, mxcsr) == 136, "asm offsets");
_Static_assert(offsetof(struct vstate, k1) == 144, "asm offsets");
_Static_assert(offsetof(struct vstate, ymm) == 192, "asm offsets");
_Static_assert(offsetof(struct vstate, zmm31) == 704, "asm offsets");
_Static_assert(offsetof(struct vstate, zmm15hi) == 768, "asm offsets");

struct vstate victim_in, victim_out;
uint64_t victim_op, victim_resume, victim_spinning, victim_saved_rsp;
uint32_t victim_saved_mxcsr;
uint8_t victim_avx512;
void victim_run(void);
extern char victim_spin[], victim_sys[], victim_done[];

#define YMM_ALL "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15"
#define R8_15 "8,9,10,11,12,13,14,15"

asm(".text\n"
    ".globl victim_run\n"
    ".type victim_run, @function\n"
    "victim_run:\n"
    "	push %rbx\n	push %rbp\n	push %r12\n	push %r13\n	push %r14\n	push %r15\n"
    "	mov %rsp, victim_saved_rsp(%rip)\n"
    "	stmxcsr victim_saved_mxcsr(%rip)\n"
    "	ldmxcsr victim_in+136(%rip)\n"
    "	.irp i," YMM_ALL "\n"
    "	vmovdqu victim_in+192+32*\\i(%rip), %ymm\\i\n"
    "	.endr\n"
    "	cmpb $0, victim_avx512(%rip)\n"
    "	je 1f\n"
    "	vmovdqu64 victim_in+704(%rip), %zmm31\n"
    "	vinserti64x4 $1, victim_in+768(%rip), %zmm15, %zmm15\n"
    "	kmovw victim_in+144(%rip), %k1\n"
    "1:	pushq victim_in+128(%rip)\n"
    "	popfq\n"
    "	mov victim_in+0(%rip), %rax\n"
    "	mov victim_in+8(%rip), %rbx\n"
    "	mov victim_in+16(%rip), %rcx\n"
    "	mov victim_in+24(%rip), %rdx\n"
    "	mov victim_in+32(%rip), %rsi\n"
    "	mov victim_in+40(%rip), %rdi\n"
    "	mov victim_in+48(%rip), %rbp\n"
    "	.irp i," R8_15 "\n"
    "	mov victim_in+8*\\i(%rip), %r\\i\n"
    "	.endr\n"
    "	movq $1, victim_spinning(%rip)\n"
    "	jmp *victim_op(%rip)\n"
    ".globl victim_spin\n"
    "victim_spin:\n"
    "	pause\n"
    "	jmp *victim_resume(%rip)\n"
    ".globl victim_sys\n"
    "victim_sys:\n"
    "	syscall\n"
    ".globl victim_done\n"
    "victim_done:\n"
    "	mov %rax, victim_out+0(%rip)\n"
    "	mov %rbx, victim_out+8(%rip)\n"
    "	mov %rcx, victim_out+16(%rip)\n"
    "	mov %rdx, victim_out+24(%rip)\n"
    "	mov %rsi, victim_out+32(%rip)\n"
    "	mov %rdi, victim_out+40(%rip)\n"
    "	mov %rbp, victim_out+48(%rip)\n"
    "	mov %rsp, victim_out+56(%rip)\n"
    "	.irp i," R8_15 "\n"
    "	mov %r\\i, victim_out+8*\\i(%rip)\n"
    "	.endr\n"
    "	pushfq\n"
    "	popq victim_out+128(%rip)\n"
    "	cld\n"
    "	stmxcsr victim_out+136(%rip)\n"
    "	.irp i," YMM_ALL "\n"
    "	vmovdqu %ymm\\i, victim_out+192+32*\\i(%rip)\n"
    "	.endr\n"
    "	cmpb $0, victim_avx512(%rip)\n"
    "	je 2f\n"
    "	vmovdqu64 %zmm31, victim_out+704(%rip)\n"
    "	vextracti64x4 $1, %zmm15, victim_out+768(%rip)\n"
    "	kmovw %k1, victim_out+144(%rip)\n"
    "2:	ldmxcsr victim_saved_mxcsr(%rip)\n"
    "	vzeroupper\n"
    "	mov victim_saved_rsp(%rip), %rsp\n"
    "	pop %r15\n	pop %r14\n	pop %r13\n	pop %r12\n	pop %rbp\n	pop %rbx\n"
    "	ret\n"
    ".size victim_run, .-victim_run\n");

/* CF AF SF DF set, PF ZF OF clear: the arithmetic flags and DF are compared. */
#define VFLAGS		0x491ULL
#define VFLAGS_MASK	0xcd5ULL
#define VMXCSR		0xffc0ULL	/* FTZ, round to zero, DAZ, all masked */
#define VSLEEP_MS	300

enum vmode { V_SPIN, V_READ, V_SLEEP, V_SLEEP_ABS };

struct vreport {
	struct vstate out;
	uint64_t rsp;		/* victim_run's stack pointer */
	sigset_t mask;
	stack_t ss;
	int usr1;
	struct timespec rem, deadline, end;
};

struct victim {
	pid_t pid;
	enum vmode mode;
	int rep;	/* we read its report */
	int feed;	/* V_READ: we write the byte it reads */
};

static char victim_buf[8];
static struct timespec victim_ts, victim_rem;
static char victim_altstack[64 * 1024];

static sigset_t victim_mask(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGWINCH);
	sigaddset(&set, SIGRTMIN + 2);
	return set;
}

static uint64_t victim_mask_bits(void)
{
	return 1ULL << (SIGUSR2 - 1) | 1ULL << (SIGWINCH - 1) | 1ULL << (SIGRTMIN + 2 - 1);
}

/* The state victim_run() loads; also run in the test process to know what to expect. */
static void victim_fill(enum vmode mode, int fd)
{
	uint64_t *g = victim_in.gpr;
	int i, j;

	for (i = 0; i < NR_G; i++)
		g[i] = 0xc0de000000000000ULL | (uint64_t)i << 32 | 0x01010101U * (i + 1);
	victim_in.flags = VFLAGS;
	victim_in.mxcsr = VMXCSR;
	victim_in.k1 = 0xa5c3;
	for (i = 0; i < 16; i++)
		for (j = 0; j < 32; j++)
			victim_in.ymm[i][j] = (uint8_t)((i * 32 + j) * 7 + 1);
	for (j = 0; j < 64; j++)
		victim_in.zmm31[j] = (uint8_t)(j * 13 + 3);
	for (j = 0; j < 32; j++)
		victim_in.zmm15hi[j] = (uint8_t)(j * 5 + 11);
	victim_avx512 = __builtin_cpu_supports("avx512f") != 0;
	victim_op = (uint64_t)(mode == V_SPIN ? victim_spin : victim_sys);
	victim_resume = (uint64_t)victim_spin;

	if (mode == V_READ) {
		g[G_RAX] = SYS_read;
		g[G_RDI] = fd;
		g[G_RSI] = (uint64_t)victim_buf;
		g[G_RDX] = 1;
	} else if (mode != V_SPIN) {
		clock_gettime(CLOCK_MONOTONIC, &victim_ts);
		victim_ts = th_ts_add_ms(victim_ts, VSLEEP_MS);
		if (mode == V_SLEEP)
			victim_ts = th_ts_add_ms((struct timespec){ 0, 0 }, VSLEEP_MS);
		g[G_RAX] = SYS_clock_nanosleep;
		g[G_RDI] = CLOCK_MONOTONIC;
		g[G_RSI] = mode == V_SLEEP_ABS ? TIMER_ABSTIME : 0;
		g[G_RDX] = (uint64_t)&victim_ts;
		g[G_R10] = (uint64_t)&victim_rem;
	}
}

static __attribute__((noreturn)) void victim_main(int rep, int feed)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
	stack_t ss = { .ss_sp = victim_altstack, .ss_size = sizeof(victim_altstack) };
	sigset_t set = victim_mask();
	struct vreport rp;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (sigaction(SIGUSR1, &sa, NULL) || sigaltstack(&ss, NULL) ||
	    sigprocmask(SIG_SETMASK, &set, NULL))
		_exit(5);
	victim_run();
	memset(&rp, 0, sizeof(rp));
	rp.out = victim_out;
	rp.rsp = victim_saved_rsp;
	sigprocmask(SIG_SETMASK, NULL, &rp.mask);
	sigaltstack(NULL, &rp.ss);
	rp.usr1 = usr1_count;
	rp.rem = victim_rem;
	rp.deadline = victim_ts;
	clock_gettime(CLOCK_MONOTONIC, &rp.end);
	if (write(rep, &rp, sizeof(rp)) != sizeof(rp))
		_exit(3);
	while (read(feed, victim_buf, 1) > 0)
		;	/* stay until the test closes feed: not a zombie while it checks */
	_exit(0);
}

static uint64_t peek_u64(pid_t pid, void *addr)
{
	uint64_t v = 0;
	struct iovec l = { &v, sizeof(v) }, r = { addr, sizeof(v) };

	assert_int_equal(process_vm_readv(pid, &l, 1, &r, 1, 0), sizeof(v));
	return v;
}

static void poke_u64(pid_t pid, void *addr, uint64_t v)
{
	struct iovec l = { &v, sizeof(v) }, r = { addr, sizeof(v) };

	assert_int_equal(process_vm_writev(pid, &l, 1, &r, 1, 0), sizeof(v));
}

static void start_victim(struct victim *v, enum vmode mode)
{
	int rep[2], feed[2];
	int i;

	TH_SKIP_IF(no_sibling_ptrace);
	TH_SKIP_IF(__builtin_cpu_supports("avx") ? NULL : "the victim needs AVX");
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	assert_int_equal(pipe2(feed, O_CLOEXEC), 0);
	victim_fill(mode, feed[0]);
	v->mode = mode;
	v->pid = fork();
	assert_true(v->pid >= 0);
	if (v->pid == 0) {
		close(rep[0]);
		close(feed[1]);
		victim_main(rep[1], feed[0]);
	}
	close(rep[1]);
	close(feed[0]);
	v->rep = rep[0];
	v->feed = feed[1];
	if (mode == V_SPIN) {
		for (i = 0; i < 5000 && !peek_u64(v->pid, &victim_spinning); i++)
			usleep(1000);
		assert_int_equal(peek_u64(v->pid, &victim_spinning), 1);
	} else {
		wait_blocked_in(v->pid, mode == V_READ ? SYS_read : SYS_clock_nanosleep);
	}
}

/* A decimal field of /proc/PID/status (TracerPid). */
static long status_dec(pid_t pid, const char *key)
{
	uint64_t v;

	assert_int_equal(th_status_u64(pid, key, 10, &v), 0);
	return (long)v;
}

/* After its tracer died: untraced, and its own signal mask back (it ran rt_sigreturn). */
static void assert_victim_recovered(pid_t pid)
{
	int i;

	for (i = 0; i < 2000; i++) {
		if (status_dec(pid, "TracerPid") == 0 && status_hex(pid, "SigBlk") == victim_mask_bits())
			break;
		usleep(1000);
	}
	assert_int_equal(status_dec(pid, "TracerPid"), 0);
	assert_int_equal(status_hex(pid, "SigBlk"), victim_mask_bits());
	assert_true(th_proc_state(pid) == 'R' || th_proc_state(pid) == 'S');
}

/* Let the victim finish and check every register it reports against victim_in. */
static struct vreport finish_victim(struct victim *v, long rax)
{
	struct pollfd pfd = { .fd = v->rep, .events = POLLIN };
	sigset_t want = victim_mask();
	struct vreport rp;
	int i, status, sig;

	if (v->mode == V_SPIN)
		poke_u64(v->pid, &victim_resume, (uint64_t)victim_done);
	else if (v->mode == V_READ)
		assert_int_equal(write(v->feed, "!", 1), 1);
	if (poll(&pfd, 1, 5000) != 1) {
		kill(v->pid, SIGKILL);
		assert_int_equal(waitpid(v->pid, &status, 0), v->pid);
		fail_msg("victim sent no report (status 0x%x)", status);
	}
	assert_int_equal(read(v->rep, &rp, sizeof(rp)), sizeof(rp));
	close(v->rep);
	close(v->feed);
	assert_int_equal(waitpid(v->pid, &status, 0), v->pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	for (i = 0; i < NR_G; i++) {
		if (i == G_RSP || (v->mode != V_SPIN && (i == G_RCX || i == G_R11)))
			continue;	/* the syscall insn clobbers rcx, r11 */
		if (i == G_RAX && v->mode != V_SPIN)
			assert_int_equal((long)rp.out.gpr[i], rax);
		else if (rp.out.gpr[i] != victim_in.gpr[i])
			fail_msg("gpr %d: 0x%llx, want 0x%llx", i, (unsigned long long)rp.out.gpr[i],
				 (unsigned long long)victim_in.gpr[i]);
	}
	assert_int_equal(rp.out.gpr[G_RSP], rp.rsp);
	assert_int_equal(rp.out.flags & VFLAGS_MASK, VFLAGS);
	assert_int_equal(rp.out.mxcsr, VMXCSR);
	assert_memory_equal(rp.out.ymm, victim_in.ymm, sizeof(victim_in.ymm));
	if (victim_avx512) {
		assert_memory_equal(rp.out.zmm31, victim_in.zmm31, sizeof(victim_in.zmm31));
		assert_memory_equal(rp.out.zmm15hi, victim_in.zmm15hi, sizeof(victim_in.zmm15hi));
		assert_int_equal(rp.out.k1, victim_in.k1);
	}
	for (sig = 1; sig < SIGRTMAX; sig++)
		if (sigismember(&rp.mask, sig) != sigismember(&want, sig))
			fail_msg("signal %d: blocked %d, want %d", sig, sigismember(&rp.mask, sig),
				 sigismember(&want, sig));
	assert_ptr_equal(rp.ss.ss_sp, victim_altstack);
	assert_int_equal(rp.ss.ss_size, sizeof(victim_altstack));
	assert_int_equal(rp.ss.ss_flags, 0);
	return rp;
}

struct tracer_plan {
	const char *crash;	/* CRIU_QEMU_TEST_CRASH while attached */
	bool die_attached;	/* SIGKILL ourselves right after attach */
	bool usr1;		/* send the victim SIGUSR1 while it is attached */
	bool forever;		/* attach, work, detach, again, until killed */
};

/*
 * The victims' injected writes go here; the test holds the read end, so that
 * a write finished after the tracer died raises no SIGPIPE in the victim.
 */
static int tracer_pipe[2] = { -1, -1 };

/* Injected calls of every kind: plain, scratch, memory, fd transfer. */
static void tracer_work(struct rsys *r, pid_t victim)
{
	unsigned long s;
	int rfd;

	if (rsys_call(r, SYS_getpid, 0, 0, 0, 0, 0, 0) != victim)
		_exit(10);
	s = rsys_scratch(r, 64);
	if (!s || rsys_write(r, s, "x", 1))
		_exit(11);
	rfd = rsys_put_fd(r, tracer_pipe[1]);
	if (rfd < 0 || rsys_call(r, SYS_write, rfd, s, 1, 0, 0, 0) != 1 ||
	    rsys_call(r, SYS_close, rfd, 0, 0, 0, 0, 0))
		_exit(13);
}

static __attribute__((noreturn)) void tracer_main(pid_t victim, const struct tracer_plan *p)
{
	struct rsys r;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	do {
		if (rsys_seize(&r, victim))
			_exit(2);
		if (!r.frame)
			_exit(3);	/* unprotected: the test would only crash the victim */
		if (p->usr1)
			kill(victim, SIGUSR1);
		if (p->crash)
			setenv("CRIU_QEMU_TEST_CRASH", p->crash, 1);
		if (p->die_attached)
			kill(getpid(), SIGKILL);
		tracer_work(&r, victim);
		if (rsys_detach(&r))
			_exit(4);
	} while (p->forever);
	_exit(0);
}

/* Run a tracer on the victim; its wait status. */
static int run_tracer(pid_t victim, const struct tracer_plan *p, int kill_after_us)
{
	char drain[4096];
	int status;
	pid_t t;

	if (tracer_pipe[0] < 0)
		assert_int_equal(pipe2(tracer_pipe, O_CLOEXEC | O_NONBLOCK), 0);
	t = fork();
	assert_true(t >= 0);
	if (t == 0)
		tracer_main(victim, p);
	if (kill_after_us >= 0) {
		usleep(kill_after_us);
		kill(t, SIGKILL);
	}
	assert_int_equal(waitpid(t, &status, 0), t);
	while (read(tracer_pipe[0], drain, sizeof(drain)) > 0)
		;
	return status;
}

static void assert_killed(int status)
{
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail_msg("tracer was not killed: status 0x%x", status);
}

/* The normal path keeps all of it too, and a signal sent meanwhile arrives once. */
static void test_frame_normal_path(void **state)
{
	struct tracer_plan p = { .usr1 = true };
	struct victim v;

	(void)state;
	start_victim(&v, V_SPIN);
	assert_int_equal(run_tracer(v.pid, &p, -1), 0);
	assert_int_equal(finish_victim(&v, 0).usr1, 1);

	start_victim(&v, V_READ);
	assert_int_equal(run_tracer(v.pid, &p, -1), 0);
	assert_int_equal(finish_victim(&v, 1).usr1, 1);
}

/* Tracer dies at an injected syscall's entry stop while the victim spins in user code. */
static void test_frame_tracer_dies_at_entry(void **state)
{
	struct tracer_plan p = { .crash = "rsys-entry", .usr1 = true };
	struct victim v;

	(void)state;
	start_victim(&v, V_SPIN);
	assert_killed(run_tracer(v.pid, &p, -1));
	assert_victim_recovered(v.pid);
	assert_int_equal(finish_victim(&v, 0).usr1, 1);
}

/* ... at the exit stop, the victim blocked in read(): the read restarts and gets the byte. */
static void test_frame_tracer_dies_at_exit(void **state)
{
	struct tracer_plan p = { .crash = "rsys-exit", .usr1 = true };
	struct vreport rp;
	struct victim v;

	(void)state;
	start_victim(&v, V_READ);
	assert_killed(run_tracer(v.pid, &p, -1));
	assert_victim_recovered(v.pid);
	wait_blocked_in(v.pid, SYS_read);	/* restarted, waiting again */
	rp = finish_victim(&v, 1);
	assert_int_equal(rp.usr1, 1);
	assert_int_equal(victim_buf[0], 0);	/* ours; the victim's got the byte */
}

/*
 * Sleeps: an absolute clock_nanosleep (-ERESTARTNOHAND) restarts and ends at
 * its deadline. A relative one (-ERESTART_RESTARTBLOCK) returns -EINTR with
 * the time left in rem, as after a signal handler: rt_sigreturn resets the
 * kernel's restart block, so restart_syscall cannot resume it.
 */
static void test_frame_tracer_dies_in_sleep(void **state)
{
	struct tracer_plan p = { .crash = "rsys-exit" };
	struct vreport rp;
	struct victim v;
	long rem_ms;

	(void)state;
#ifdef __SANITIZE_ADDRESS__
	/*
	 * Under ASan the absolute sleep came back -EINTR instead of restarting
	 * in 2 to 4 runs of 10 (never in 10 plain runs): not understood yet.
	 * The plain build runs this test; see the issue notes.
	 */
	TH_SKIP_IF("under ASan (flaky there, under study)");
#endif
	start_victim(&v, V_SLEEP_ABS);
	assert_killed(run_tracer(v.pid, &p, -1));
	assert_victim_recovered(v.pid);
	rp = finish_victim(&v, 0);
	assert_true(rp.end.tv_sec > rp.deadline.tv_sec ||
		    (rp.end.tv_sec == rp.deadline.tv_sec && rp.end.tv_nsec >= rp.deadline.tv_nsec));

	start_victim(&v, V_SLEEP);
	assert_killed(run_tracer(v.pid, &p, -1));
	assert_victim_recovered(v.pid);
	rp = finish_victim(&v, -EINTR);
	rem_ms = rp.rem.tv_sec * 1000 + rp.rem.tv_nsec / 1000000;
	assert_true(rem_ms > 0 && rem_ms <= VSLEEP_MS);
}

/* Death at every stop of every injected call of an attach-work-detach cycle. */
static void test_frame_tracer_dies_at_every_call(void **state)
{
	static const char *const points[] = { "rsys-entry", "rsys-exit" };
	static const enum vmode modes[] = { V_SPIN, V_READ };
	struct tracer_plan p = { 0 };
	char crash[32];
	struct victim v;
	int m, i, n, status, deaths;

	(void)state;
	for (m = 0; m < 2; m++) {
		start_victim(&v, modes[m]);
		for (i = 0; i < 2; i++) {
			deaths = 0;
			for (n = 1; n < 100; n++) {
				snprintf(crash, sizeof(crash), "%s:%d", points[i], n);
				p.crash = crash;
				status = run_tracer(v.pid, &p, -1);
				if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
					break;	/* fewer calls than n */
				assert_killed(status);
				assert_victim_recovered(v.pid);
				deaths++;
			}
			assert_true(deaths >= 8);	/* mmap, socketpair, recvmsg, ..., munmap */
		}
		finish_victim(&v, modes[m] == V_READ ? 1 : 0);
	}
}

/* Killed from outside at random points: in attach, between calls, in detach. */
static void test_frame_tracer_killed_anywhere(void **state)
{
	struct tracer_plan forever = { .forever = true }, attached = { .die_attached = true };
	struct victim v;
	int i;

	(void)state;
	srand(12345);
	start_victim(&v, V_SPIN);
	assert_killed(run_tracer(v.pid, &attached, -1));
	assert_victim_recovered(v.pid);
	for (i = 0; i < 40; i++) {
		assert_killed(run_tracer(v.pid, &forever, rand() % 8000));
		assert_victim_recovered(v.pid);
	}
	finish_victim(&v, 0);
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

/* Tracing a process that is not our child: root, or no Yama restriction. */
static const char *sibling_ptrace(void)
{
	char scope = '0';
	FILE *f;

	if (!geteuid())
		return NULL;
	f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
	if (f) {
		scope = (char)fgetc(f);
		fclose(f);
	}
	return scope == '0' ? NULL : "tracing a sibling needs root or kernel.yama.ptrace_scope = 0";
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
		cmocka_unit_test(test_frame_layout),
		cmocka_unit_test(test_frame_normal_path),
		cmocka_unit_test(test_frame_tracer_dies_at_entry),
		cmocka_unit_test(test_frame_tracer_dies_at_exit),
		cmocka_unit_test(test_frame_tracer_dies_in_sleep),
		cmocka_unit_test(test_frame_tracer_dies_at_every_call),
		cmocka_unit_test(test_frame_tracer_killed_anywhere),
	};

	not_root = th_need_root();
	no_ptrace = th_need_ptrace();
	no_sibling_ptrace = no_ptrace ? no_ptrace : sibling_ptrace();
	no_uffd = th_need_userfaultfd();
	return th_run_group(tests, NULL, NULL);
}
