// SPDX-License-Identifier: GPL-2.0
/*
 * rsys: run system calls inside another, ptrace-stopped process.
 *
 * Why a self-written ptrace injector and not CRIU's compel API: compel's
 * infect-ctx layout is CRIU-internal and differs between CRIU 3.17 and 4.x,
 * while ptrace is a stable kernel ABI; and this code can be unit-tested
 * without CRIU.
 *
 * How: the task's registers are saved (with a pending syscall restart applied
 * by us, as compel's get_task_regs does), all signals are blocked in it, and
 * each syscall is run by pointing rip at an existing `syscall` instruction
 * (0f 05, found in the vdso or another r-x mapping: the task's text is never
 * written) and stepping over it with PTRACE_SYSCALL (entry stop, exit stop).
 * Syscall stops are recognised by siginfo (si_code SIGTRAP or SIGTRAP|0x80)
 * and PTRACE_GETEVENTMSG (1 entry, 2 exit), which works whether or not the
 * tracer set PTRACE_O_TRACESYSGOOD; PTRACE_GET_SYSCALL_INFO reports op NONE
 * without TRACESYSGOOD, so it cannot be used in CRIU's case.
 *
 * Surviving our own death: if the tracer (CRIU) is killed while the task
 * holds injected registers, the kernel detaches it and it would run on with
 * them. So the saved state is also written into the task as a signal frame
 * (rsys-frame.c: registers, signal mask, XSAVE state) below its stack
 * pointer, and each syscall runs from a `syscall; ret` sequence with rsp on
 * that frame, whose return slot points at a `mov $15,%rax; syscall`
 * (rt_sigreturn) sequence: both are found in the task's code (libc's
 * syscall wrappers and __restore_rt). A live tracer never lets the task
 * reach the `ret`; a task left alone returns into rt_sigreturn and is back
 * where it was stopped. Between calls, and from attach until the very last
 * step of detach, the task is parked on that `ret`.
 */
#define LOG_PREFIX "rsys: "

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "fault-inject.h"
#include "io.h"
#include "log.h"
#include "proc.h"
#include "rsys.h"
#include "rsys-frame.h"
#include "uapi-compat.h"

/* Kernel-internal errnos a syscall interrupted by a stop leaves in rax. */
#define RSYS_ERESTARTSYS		512
#define RSYS_ERESTARTNOINTR		513
#define RSYS_ERESTARTNOHAND		514
#define RSYS_ERESTART_RESTARTBLOCK	516

/* PTRACE_GETEVENTMSG at a syscall stop (Linux >= 5.3). */
#define RSYS_EVENTMSG_SYSCALL_ENTRY	1
#define RSYS_EVENTMSG_SYSCALL_EXIT	2

#define RSYS_USER_CS_64		0x33
#define RSYS_MAX_STOPS		64	/* foreign stops tolerated per wait */
#define RSYS_MAX_RESTARTS	4
#define RSYS_SCAN_CHUNK		(64 * 1024)

enum stop_kind {
	STOP_SYSCALL_ENTRY,
	STOP_SYSCALL_EXIT,
	STOP_SYSCALL,	/* a syscall stop, direction unknown (kernel < 5.3) */
	STOP_EVENT,	/* PTRACE_EVENT_* stop: group-stop, interrupt, seccomp... */
	STOP_SIGNAL,	/* signal-delivery-stop */
	STOP_GONE,	/* exited, killed, or in PTRACE_EVENT_EXIT */
	STOP_ERROR,
};

static bool is_err_addr(long v)
{
	return (unsigned long)v >= (unsigned long)-4095;
}

/* ---------------------------------------------------------------- ptrace */

static int wait_task(pid_t pid, int *status)
{
	for (;;) {
		pid_t ret = waitpid(pid, status, __WALL);

		if (ret == pid)
			return 0;
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0) {
			int err = errno;

			pr_perror("waitpid(%d)", pid);
			return err == ECHILD ? -ESRCH : -err;
		}
	}
}

static int get_regs(pid_t pid, struct user_regs_struct *regs)
{
	if (ptrace(PTRACE_GETREGS, pid, NULL, regs)) {
		int err = errno;

		pr_perror("PTRACE_GETREGS(%d)", pid);
		return -err;
	}
	return 0;
}

static int set_regs(pid_t pid, const struct user_regs_struct *regs)
{
	if (ptrace(PTRACE_SETREGS, pid, NULL, regs)) {
		int err = errno;

		pr_perror("PTRACE_SETREGS(%d)", pid);
		return -err;
	}
	return 0;
}

static int set_sigmask(pid_t pid, uint64_t mask)
{
	if (ptrace(PTRACE_SETSIGMASK, pid, (void *)sizeof(mask), &mask)) {
		int err = errno;

		pr_perror("PTRACE_SETSIGMASK(%d)", pid);
		return -err;
	}
	return 0;
}

static int resume(pid_t pid, enum __ptrace_request req, int sig)
{
	if (ptrace(req, pid, NULL, (void *)(long)sig)) {
		int err = errno;

		pr_perror("resume %d (request %d, signal %d)", pid, (int)req, sig);
		return -err;
	}
	return 0;
}

/*
 * The task stopped inside an interrupted syscall: do the restart the kernel
 * would have done on its way back to user space, and set orig_rax = -1 so
 * the kernel applies no restart logic to the regs we install later.
 */
static void apply_syscall_restart(struct user_regs_struct *regs)
{
	if ((long)regs->orig_rax >= 0) {
		switch ((long)regs->rax) {
		case -RSYS_ERESTARTSYS:
		case -RSYS_ERESTARTNOINTR:
		case -RSYS_ERESTARTNOHAND:
			regs->rax = regs->orig_rax;
			regs->rip -= 2;
			break;
		case -RSYS_ERESTART_RESTARTBLOCK:
			regs->rax = SYS_restart_syscall;
			regs->rip -= 2;
			break;
		}
	}
	regs->orig_rax = -1;
}

static enum stop_kind syscall_stop_dir(pid_t pid)
{
	unsigned long msg = 0;

	if (ptrace(PTRACE_GETEVENTMSG, pid, NULL, &msg))
		return errno == ESRCH ? STOP_GONE : STOP_ERROR;
	if (msg == RSYS_EVENTMSG_SYSCALL_ENTRY)
		return STOP_SYSCALL_ENTRY;
	if (msg == RSYS_EVENTMSG_SYSCALL_EXIT)
		return STOP_SYSCALL_EXIT;
	return STOP_SYSCALL;
}

static enum stop_kind classify_stop(pid_t pid, int status, int *sig)
{
	int event = (unsigned int)status >> 16;
	siginfo_t si;

	*sig = 0;
	if (WIFEXITED(status) || WIFSIGNALED(status))
		return STOP_GONE;
	if (!WIFSTOPPED(status))
		return STOP_ERROR;
	if (event == PTRACE_EVENT_EXIT)
		return STOP_GONE;
	if (event)
		return STOP_EVENT;
	if (WSTOPSIG(status) == (SIGTRAP | 0x80))
		return syscall_stop_dir(pid);
	if (WSTOPSIG(status) == SIGTRAP) {
		/* Without PTRACE_O_TRACESYSGOOD syscall stops look like SIGTRAP. */
		if (ptrace(PTRACE_GETSIGINFO, pid, NULL, &si))
			return errno == ESRCH ? STOP_GONE : STOP_ERROR;
		if (si.si_code == SIGTRAP || si.si_code == (SIGTRAP | 0x80))
			return syscall_stop_dir(pid);
	}
	*sig = WSTOPSIG(status);
	return STOP_SIGNAL;
}

/*
 * Resume the task with PTRACE_SYSCALL until it reaches the wanted syscall
 * stop. Stops we did not ask for are passed through: event stops (group-stop,
 * interrupt, seccomp) are resumed with no signal, a real signal is re-injected.
 */
static int run_to_syscall_stop(pid_t pid, enum stop_kind want)
{
	int sig = 0, status, ret, i;
	enum stop_kind kind;

	for (i = 0; i < RSYS_MAX_STOPS; i++) {
		ret = resume(pid, PTRACE_SYSCALL, sig);
		if (ret)
			return ret;
		ret = wait_task(pid, &status);
		if (ret)
			return ret;
		kind = classify_stop(pid, status, &sig);
		switch (kind) {
		case STOP_SYSCALL:
			return 0;	/* trust the order entry, exit */
		case STOP_SYSCALL_ENTRY:
		case STOP_SYSCALL_EXIT:
			if (kind == want)
				return 0;
			pr_err("%d: unexpected syscall %s stop\n", pid,
			       want == STOP_SYSCALL_ENTRY ? "exit" : "entry");
			return -EPROTO;
		case STOP_EVENT:
			pr_debug("%d: event stop 0x%x while injecting\n", pid, status >> 8);
			continue;
		case STOP_SIGNAL:
			pr_warn("%d: signal %d while injecting, re-injected\n", pid, sig);
			continue;
		case STOP_GONE:
			pr_err("%d: task exited or was killed (status 0x%x)\n", pid, status);
			return -ESRCH;
		case STOP_ERROR:
			pr_err("%d: unexpected wait status 0x%x\n", pid, status);
			return -EPROTO;
		}
	}
	pr_err("%d: too many foreign stops\n", pid);
	return -EAGAIN;
}

/* ---------------------------------------------------------------- memory */

static int mem_rw(pid_t pid, unsigned long remote, void *buf, size_t len, bool write)
{
	size_t done = 0;
	ssize_t n;
	int fd, err = 0;

	fd = proc_mem_open(pid, write);
	if (fd < 0) {
		pr_perror("open /proc/%d/mem", pid);
		return fd;
	}
	while (done < len) {
		if (write)
			n = pwrite(fd, (char *)buf + done, len - done, (off_t)(remote + done));
		else
			n = pread(fd, (char *)buf + done, len - done, (off_t)(remote + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : EIO;
			break;
		}
		done += n;
	}
	close(fd);
	if (err) {
		errno = err;
		pr_perror("%s %zu bytes at 0x%lx in %d", write ? "write" : "read",
			  len - done, remote + done, pid);
	}
	return -err;
}

static int vm_rw(pid_t pid, unsigned long remote, void *buf, size_t len, bool write)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		struct iovec l = { (char *)buf + done, len - done };
		struct iovec r = { (void *)(remote + done), len - done };

		if (write)
			n = process_vm_writev(pid, &l, 1, &r, 1, 0);
		else
			n = process_vm_readv(pid, &l, 1, &r, 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += n;
	}
	if (done == len)
		return 0;
	return mem_rw(pid, remote + done, (char *)buf + done, len - done, write);
}

int rsys_write(struct rsys *r, unsigned long remote, const void *buf, size_t len)
{
	if (!r->pid)
		return -EINVAL;
	return vm_rw(r->pid, remote, (void *)buf, len, true);
}

int rsys_read(struct rsys *r, unsigned long remote, void *buf, size_t len)
{
	if (!r->pid)
		return -EINVAL;
	return vm_rw(r->pid, remote, buf, len, false);
}

/* ------------------------------------------------------ finding gadgets */

/* Byte sequences we run in the task; its code is never written. */
enum gadget { GADGET_SYSCALL, GADGET_SYSCALL_RET, GADGET_RESTORER, NR_GADGETS };

static const struct {
	const char *code;
	size_t len;
} gadget_code[NR_GADGETS] = {
	[GADGET_SYSCALL] = { "\x0f\x05", 2 },					/* syscall */
	[GADGET_SYSCALL_RET] = { "\x0f\x05\xc3", 3 },				/* syscall; ret */
	[GADGET_RESTORER] = { "\x48\xc7\xc0\x0f\x00\x00\x00\x0f\x05", 9 },	/* mov $15,%rax; syscall */
};

#define GADGET_MAX_LEN 9

static bool all_found(const unsigned long *found)
{
	int g;

	for (g = 0; g < NR_GADGETS; g++)
		if (!found[g])
			return false;
	return true;
}

/* Record the first address of each gadget not found yet in [start, end). */
static void scan_for_gadgets(pid_t pid, unsigned long start, unsigned long end,
			     unsigned long *found)
{
	unsigned char *buf = malloc(RSYS_SCAN_CHUNK);
	unsigned long addr = start;
	int g;

	if (!buf)
		return;
	while (addr + 1 < end && !all_found(found)) {
		size_t len = end - addr < RSYS_SCAN_CHUNK ? end - addr : RSYS_SCAN_CHUNK;
		struct iovec l = { buf, len }, r = { (void *)addr, len };
		ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);

		if (n < 2)
			break;
		for (g = 0; g < NR_GADGETS; g++) {
			unsigned char *p;

			if (found[g])
				continue;
			p = memmem(buf, n, gadget_code[g].code, gadget_code[g].len);
			if (p)
				found[g] = addr + (p - buf);
		}
		/* overlap chunks by the longest gadget less one byte */
		addr += n > GADGET_MAX_LEN ? n - (GADGET_MAX_LEN - 1) : n;
	}
	free(buf);
}

static bool is_libc(const char *name)
{
	const char *base = strrchr(name, '/');

	base = base ? base + 1 : name;
	return !strncmp(base, "libc.so", 7) || !strncmp(base, "libc-", 5) ||
	       !strncmp(base, "ld-musl", 7);
}

/*
 * Where to look, best first: the vdso (small, always there), libc (never
 * unloaded; holds __restore_rt and `syscall; ret` wrappers), then other
 * file-backed code. Never anonymous or memfd code: a JIT (TCG) rewrites it.
 */
static bool pass_wants(int pass, const char *name)
{
	switch (pass) {
	case 0:
		return !strcmp(name, "[vdso]");
	case 1:
		return name[0] == '/' && is_libc(name);
	default:
		return name[0] == '/' && !is_libc(name) && strncmp(name, "/memfd:", 7) &&
		       !strstr(name, " (deleted)");
	}
}

static int find_gadgets(pid_t pid, unsigned long *found)
{
	struct proc_vma v;
	struct proc_maps m;
	int pass;

	if (proc_maps_open(&m, pid, "maps")) {
		pr_perror("open /proc/%d/maps", pid);
		return -ESRCH;
	}
	for (pass = 0; pass < 3 && !all_found(found); pass++) {
		rewind(m.f);
		while (!all_found(found) && proc_maps_next(&m, &v) > 0) {
			if (strcmp(v.perms, "r-xp") && strcmp(v.perms, "r-xs"))
				continue;
			if (pass_wants(pass, v.path))
				scan_for_gadgets(pid, v.start, v.end, found);
		}
	}
	proc_maps_close(&m);
	if (!found[GADGET_SYSCALL]) {
		pr_err("no syscall instruction found in %d\n", pid);
		return -ENOENT;
	}
	pr_debug("%d: syscall at 0x%lx, syscall;ret at 0x%lx, rt_sigreturn at 0x%lx\n", pid,
		 found[GADGET_SYSCALL], found[GADGET_SYSCALL_RET], found[GADGET_RESTORER]);
	return 0;
}

/* rt_sigreturn wants a restore token on an enabled shadow stack; we forge none. */
static bool shadow_stack_on(pid_t pid)
{
	char features[256];

	return !proc_status_field(pid, "x86_Thread_features", features, sizeof(features)) &&
	       strstr(features, "shstk");
}

/* --------------------------------------------------------- attach/detach */

/* The x86-64 syscall ABI: arguments in rdi, rsi, rdx, r10, r8, r9. */
static void set_syscall_args(struct user_regs_struct *regs, const long a[6])
{
	regs->rdi = a[0];
	regs->rsi = a[1];
	regs->rdx = a[2];
	regs->r10 = a[3];
	regs->r8 = a[4];
	regs->r9 = a[5];
}

/* Between calls: on the `ret` after the gadget's syscall, rsp on the frame. */
static int park(struct rsys *r)
{
	struct user_regs_struct regs = r->saved;

	regs.rip = r->syscall_ip + 2;
	regs.rsp = r->frame;
	regs.orig_rax = -1;	/* no restart logic on whatever the last call left in rax */
	return set_regs(r->pid, &regs);
}

/*
 * Write the frame and run calls from `syscall; ret` (see the top of the
 * file). Without the gadgets or a frame the calls run unprotected, as
 * before: a tracer that dies mid-call then leaves the task on garbage.
 */
static void protect(struct rsys *r, const unsigned long *gadget)
{
	struct rsys_frame f = { 0 };
	const char *why = NULL;
	int ret = 0;

	if (!gadget[GADGET_SYSCALL_RET] || !gadget[GADGET_RESTORER])
		why = "no `syscall; ret` or rt_sigreturn code in the task";
	else if (shadow_stack_on(r->pid))
		why = "shadow stack enabled";
	else
		ret = rsys_frame_build(&f, r->pid, &r->saved, r->saved_sigmask, gadget[GADGET_RESTORER]);
	if (!why && !ret)
		ret = rsys_write(r, f.addr, f.buf, f.len);
	rsys_frame_free(&f);
	if (!why && ret)
		why = strerror(-ret);
	if (why) {
		pr_warn("%d: no signal frame (%s): the task is not restored if we die mid-call\n",
			r->pid, why);
		return;
	}
	r->frame = f.addr;
	r->syscall_ip = gadget[GADGET_SYSCALL_RET];
	pr_debug("%d: frame at 0x%lx (fpstate 0x%lx, %zu bytes, xfeatures 0x%llx)\n", r->pid,
		 f.addr, f.fpstate, f.xstate_size, (unsigned long long)f.xfeatures);
}

int rsys_attach_stopped(struct rsys *r, pid_t pid)
{
	unsigned long gadget[NR_GADGETS] = { 0 };
	struct user_regs_struct regs;
	uint64_t mask;
	int pidfd, ret;

	memset(r, 0, sizeof(*r));
	r->pidfd = -1;

	ret = get_regs(pid, &regs);
	if (ret)
		return ret;
	if (regs.cs != RSYS_USER_CS_64) {
		pr_err("%d is not a 64-bit task (cs 0x%llx)\n", pid, regs.cs);
		return -EINVAL;
	}
	apply_syscall_restart(&regs);

	if (ptrace(PTRACE_GETSIGMASK, pid, (void *)sizeof(mask), &mask)) {
		ret = -errno;
		pr_perror("PTRACE_GETSIGMASK(%d)", pid);
		return ret;
	}

	ret = find_gadgets(pid, gadget);
	if (ret)
		return ret;

	pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0 && errno == ENOENT)	/* a thread, not a leader (Linux >= 6.9) */
		pidfd = syscall(SYS_pidfd_open, pid, PIDFD_THREAD);
	if (pidfd < 0) {
		ret = -errno;
		pr_perror("pidfd_open(%d)", pid);
		return ret;
	}

	r->pid = pid;
	r->saved = regs;
	r->saved_sigmask = mask;
	r->syscall_ip = gadget[GADGET_SYSCALL];
	r->pidfd = pidfd;
	protect(r, gadget);

	/*
	 * Last steps: from here on the task must be restored. Parked on the
	 * frame before signals are blocked, so that there is no moment in
	 * which our death would leave them blocked.
	 */
	ret = r->frame ? park(r) : 0;
	if (!ret)
		ret = set_sigmask(pid, ~0ULL);
	if (ret) {
		if (r->frame)
			set_regs(pid, &r->saved);
		close(pidfd);
		memset(r, 0, sizeof(*r));
		r->pidfd = -1;
		return ret;
	}
	pr_debug("attached to %d (rip 0x%llx rax %lld)\n", pid, regs.rip, (long long)regs.rax);
	return 0;
}

/* Wait for the PTRACE_EVENT_STOP that PTRACE_INTERRUPT asked for. */
static int wait_interrupt_stop(pid_t pid, enum __ptrace_request resume_req)
{
	int status, sig, ret, i;

	for (i = 0; i < RSYS_MAX_STOPS; i++) {
		ret = wait_task(pid, &status);
		if (ret)
			return ret;
		switch (classify_stop(pid, status, &sig)) {
		case STOP_EVENT:
			if ((status >> 16) == PTRACE_EVENT_STOP)
				return 0;
			sig = 0;
			break;
		case STOP_GONE:
			return -ESRCH;
		case STOP_ERROR:
			pr_err("%d: unexpected wait status 0x%x\n", pid, status);
			return -EPROTO;
		default:
			break;	/* a signal on its way in: let it go, the trap stays pending */
		}
		ret = resume(pid, resume_req, sig);
		if (ret)
			return ret;
	}
	pr_err("%d: no interrupt stop\n", pid);
	return -EAGAIN;
}

int rsys_seize(struct rsys *r, pid_t pid)
{
	long opts = PTRACE_O_TRACESYSGOOD;
	int ret;

	memset(r, 0, sizeof(*r));
	r->pidfd = -1;

	/* Suspending seccomp needs CAP_SYS_ADMIN; without it seccomp may veto our syscalls. */
	if (ptrace(PTRACE_SEIZE, pid, NULL, (void *)(opts | PTRACE_O_SUSPEND_SECCOMP)) &&
	    ptrace(PTRACE_SEIZE, pid, NULL, (void *)opts)) {
		ret = -errno;
		pr_perror("PTRACE_SEIZE(%d)", pid);
		return ret;
	}
	if (ptrace(PTRACE_INTERRUPT, pid, NULL, NULL)) {
		ret = -errno;
		pr_perror("PTRACE_INTERRUPT(%d)", pid);
		goto detach;
	}
	ret = wait_interrupt_stop(pid, PTRACE_CONT);
	if (ret)
		goto detach;
	ret = rsys_attach_stopped(r, pid);
	if (ret)
		goto detach;
	r->seized_by_us = true;
	return 0;
detach:
	if (ptrace(PTRACE_DETACH, pid, NULL, NULL) && errno != ESRCH)
		pr_perror("PTRACE_DETACH(%d)", pid);
	return ret;
}

/*
 * Leave the task in a PTRACE_EVENT_STOP again, as CRIU's seize left it
 * (rather than in our last syscall-exit-stop). The jobctl trap is taken on
 * the way back to user space, before any user instruction runs (so the
 * parked regs never run); all signals are still blocked.
 */
static int repark(pid_t pid)
{
	if (ptrace(PTRACE_INTERRUPT, pid, NULL, NULL)) {
		pr_debug("%d: no PTRACE_INTERRUPT (%m), left in syscall stop\n", pid);
		return 0;
	}
	if (resume(pid, PTRACE_CONT, 0))
		return -ESRCH;
	return wait_interrupt_stop(pid, PTRACE_CONT);
}

int rsys_detach(struct rsys *r)
{
	pid_t pid = r->pid;
	int ret = 0, err;
	long res;

	if (!pid)
		return 0;

	if (r->scratch) {
		res = rsys_call(r, SYS_munmap, r->scratch, r->scratch_len, 0, 0, 0, 0);
		if (res < 0) {
			pr_err("%d: munmap scratch 0x%lx: %ld\n", pid, r->scratch, res);
			ret = (int)res;
		}
		r->scratch = 0;
		r->scratch_len = 0;
		if (ret == -ESRCH)
			goto out;	/* the task is gone: nothing left to restore */
	}

	/*
	 * With a frame the task stays parked on it until the saved registers
	 * go back as the very last step: repark and the mask come first.
	 */
	err = r->frame ? park(r) : set_regs(pid, &r->saved);
	if (!err && !r->seized_by_us)
		err = repark(pid);
	ret = ret ? ret : err;
	if (ret == -ESRCH)
		goto out;

	err = set_sigmask(pid, r->saved_sigmask);
	ret = ret ? ret : err;
	if (r->frame) {
		err = set_regs(pid, &r->saved);
		ret = ret ? ret : err;
	}

	if (r->seized_by_us && ptrace(PTRACE_DETACH, pid, NULL, NULL)) {
		err = -errno;
		pr_perror("PTRACE_DETACH(%d)", pid);
		ret = ret ? ret : err;
	}
out:
	if (r->pidfd >= 0)
		close(r->pidfd);
	r->pidfd = -1;
	r->pid = 0;
	r->frame = 0;
	r->seized_by_us = false;
	pr_debug("detached from %d: %d\n", pid, ret);
	return ret;
}

/*
 * Detach, leaving the task armed: when it next runs, whoever resumes it
 * (CRIU after the dump, the restored task, or the kernel after our death),
 * it first makes syscall nr from the `syscall; ret` code and then returns
 * through its frame to where it was stopped, with its signal mask back.
 * Until then all signals stay blocked. The registers CRIU dumps are these
 * armed ones, so a restored task makes the call too.
 */
int rsys_detach_armed(struct rsys *r, long nr, const long args[6])
{
	struct user_regs_struct regs;
	long res;
	int ret = 0;

	if (!r->pid)
		return -ESRCH;
	if (!r->frame) {
		pr_err("%d: no signal frame to return through: cannot arm a call\n", r->pid);
		return -EOPNOTSUPP;
	}
	if (r->scratch) {
		res = rsys_call(r, SYS_munmap, r->scratch, r->scratch_len, 0, 0, 0, 0);
		if (res < 0)
			return (int)res;
		r->scratch = 0;
		r->scratch_len = 0;
	}
	regs = r->saved;
	regs.rip = r->syscall_ip;
	regs.rsp = r->frame;
	regs.orig_rax = -1;
	regs.rax = nr;
	set_syscall_args(&regs, args);
	ret = set_regs(r->pid, &regs);
	if (!ret && !r->seized_by_us)
		ret = repark(r->pid);
	if (!ret && r->seized_by_us && ptrace(PTRACE_DETACH, r->pid, NULL, NULL))
		ret = -errno;
	if (r->pidfd >= 0)
		close(r->pidfd);
	pr_debug("%d: left armed with syscall %ld: %d\n", r->pid, nr, ret);
	memset(r, 0, sizeof(*r));
	r->pidfd = -1;
	return ret;
}

/* ---------------------------------------------------------------- calls */

/* No syscall: the number a task enters the kernel with until we arm it. */
#define RSYS_NR_NONE	(-1L)

/*
 * Fault injection (fault-inject.c): CRIU_QEMU_TEST_CRASH=rsys-entry or
 * rsys-exit kills us (the tracer) with the task at that stop of an injected
 * syscall; "rsys-exit:N" only at the Nth injected syscall of this process.
 */
/* Number the injected syscalls of this process (a forked child counts afresh). */
static unsigned long next_call_nr(void)
{
	static unsigned long nth;
	static pid_t counting;

	if (counting != getpid()) {
		counting = getpid();
		nth = 0;
	}
	return ++nth;
}

/* At the entry stop: the syscall the task will run is orig_rax's. */
static int arm_syscall(pid_t pid, long nr)
{
	struct user_regs_struct regs;
	int ret = get_regs(pid, &regs);

	if (ret)
		return ret;
	if ((long)regs.orig_rax != RSYS_NR_NONE) {
		pr_err("%d: entry stop of syscall %lld, not of ours\n", pid, (long long)regs.orig_rax);
		return -EPROTO;
	}
	regs.orig_rax = nr;
	return set_regs(pid, &regs);
}

static long call_once(struct rsys *r, long nr, const long a[6])
{
	struct user_regs_struct regs = r->saved;
	unsigned long nth = next_call_nr();
	int ret;

	regs.rip = r->syscall_ip;
	if (r->frame)
		regs.rsp = r->frame;
	/*
	 * The task enters the kernel asking for no syscall at all (-ENOSYS);
	 * only at its entry stop does orig_rax become nr. If CRIU dies before
	 * that, the task gets -ENOSYS and returns through the frame: a call
	 * that changes QEMU (the handoff's mremap frees guest pages) then never
	 * runs untraced, while QEMU's other threads, let go, run on.
	 */
	regs.rax = RSYS_NR_NONE;
	regs.orig_rax = -1;
	set_syscall_args(&regs, a);

	ret = set_regs(r->pid, &regs);
	if (!ret)
		ret = run_to_syscall_stop(r->pid, STOP_SYSCALL_ENTRY);
	if (!ret)
		fault_crash_point_at("rsys-entry", nth);
	if (!ret)
		ret = arm_syscall(r->pid, nr);
	if (!ret)
		ret = run_to_syscall_stop(r->pid, STOP_SYSCALL_EXIT);
	if (!ret)
		fault_crash_point_at("rsys-exit", nth);
	if (!ret)
		ret = get_regs(r->pid, &regs);
	if (ret)
		return ret;
	if (regs.rip != r->syscall_ip + 2 || (long)regs.orig_rax != nr) {
		pr_err("%d: syscall %ld stopped at rip 0x%llx orig_rax %lld\n", r->pid, nr,
		       regs.rip, (long long)regs.orig_rax);
		return -EPROTO;
	}
	return (long)regs.rax;
}

long rsys_call(struct rsys *r, long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	const long args[6] = { a1, a2, a3, a4, a5, a6 };
	long ret = -EINVAL;
	int i;

	if (!r->pid || !r->syscall_ip) {
		pr_err("call %ld: not attached\n", nr);
		return -EINVAL;
	}
	for (i = 0; i < RSYS_MAX_RESTARTS; i++) {
		ret = call_once(r, nr, args);
		/* Interrupted by a stop (only SIGKILL/SIGSTOP/freezer get through): run it again. */
		if (ret != -RSYS_ERESTARTSYS && ret != -RSYS_ERESTARTNOINTR &&
		    ret != -RSYS_ERESTARTNOHAND)
			break;
	}
	if (ret == -RSYS_ERESTARTSYS || ret == -RSYS_ERESTARTNOINTR ||
	    ret == -RSYS_ERESTARTNOHAND || ret == -RSYS_ERESTART_RESTARTBLOCK)
		ret = -EINTR;
	pr_debug("%d: syscall %ld(0x%lx, 0x%lx, 0x%lx, ...) = %ld\n", r->pid, nr, a1, a2, a3, ret);
	return ret;
}

unsigned long rsys_scratch(struct rsys *r, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	long addr, res;

	len = (len ? len + page - 1 : page) & ~(page - 1);
	if (r->scratch && r->scratch_len >= len)
		return r->scratch;
	if (r->scratch) {
		res = rsys_call(r, SYS_munmap, r->scratch, r->scratch_len, 0, 0, 0, 0);
		if (res < 0)
			pr_err("%d: munmap old scratch 0x%lx: %ld\n", r->pid, r->scratch, res);
		r->scratch = 0;
		r->scratch_len = 0;
	}
	addr = rsys_call(r, SYS_mmap, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (is_err_addr(addr)) {
		pr_err("%d: mmap scratch of %zu bytes: %ld\n", r->pid, len, addr);
		return 0;
	}
	r->scratch = addr;
	r->scratch_len = len;
	return r->scratch;
}

/* ------------------------------------------------------------------- fds */

int rsys_get_fd(struct rsys *r, int remote_fd)
{
	int fd, err;

	if (!r->pid)
		return -EINVAL;
	fd = syscall(SYS_pidfd_getfd, r->pidfd, remote_fd, 0);
	if (fd < 0) {
		err = errno;
		pr_perror("pidfd_getfd(%d, %d)", r->pid, remote_fd);
		return -err;
	}
	return fd;
}

/* Layout of the scratch area during rsys_put_fd. */
struct put_fd_area {
	int sv[2];
	struct msghdr msg;
	struct iovec iov;
	char data[8];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cmsg;
};

#define AREA_ADDR(base, field) ((base) + offsetof(struct put_fd_area, field))

static int send_fd(int sock, int fd)
{
	char byte = 'F';
	int ret = send_with_fd(sock, &byte, 1, fd, MSG_DONTWAIT);

	if (ret)
		pr_err("sendmsg(SCM_RIGHTS %d): %s\n", fd, strerror(-ret));
	return ret;
}

/* Inject recvmsg on sock; returns the fd it brought into the task or -errno. */
static int remote_recv_fd(struct rsys *r, unsigned long base, int sock)
{
	struct put_fd_area a = {};
	struct cmsghdr *ch;
	long res;
	int ret, fd;

	a.iov.iov_base = (void *)AREA_ADDR(base, data);
	a.iov.iov_len = sizeof(a.data);
	a.msg.msg_iov = (struct iovec *)AREA_ADDR(base, iov);
	a.msg.msg_iovlen = 1;
	a.msg.msg_control = (void *)AREA_ADDR(base, cmsg);
	a.msg.msg_controllen = sizeof(a.cmsg.buf);
	ret = rsys_write(r, AREA_ADDR(base, msg), &a.msg,
			 sizeof(a) - offsetof(struct put_fd_area, msg));
	if (ret)
		return ret;

	res = rsys_call(r, SYS_recvmsg, sock, AREA_ADDR(base, msg), MSG_DONTWAIT | MSG_CMSG_CLOEXEC, 0, 0, 0);
	if (res < 0) {
		pr_err("%d: injected recvmsg: %ld\n", r->pid, res);
		return (int)res;
	}
	ret = rsys_read(r, base, &a, sizeof(a));
	if (ret)
		return ret;

	/* Parse with local pointers. */
	a.msg.msg_control = a.cmsg.buf;
	ch = CMSG_FIRSTHDR(&a.msg);
	if ((a.msg.msg_flags & MSG_CTRUNC) || !ch || ch->cmsg_level != SOL_SOCKET ||
	    ch->cmsg_type != SCM_RIGHTS || ch->cmsg_len != CMSG_LEN(sizeof(int))) {
		pr_err("%d: no fd in injected recvmsg (flags 0x%x)\n", r->pid, a.msg.msg_flags);
		return -EPROTO;
	}
	memcpy(&fd, CMSG_DATA(ch), sizeof(fd));
	return fd;
}

int rsys_put_fd(struct rsys *r, int local_fd)
{
	unsigned long base;
	int sv[2] = { -1, -1 };
	int lsock = -1, ret, i;
	long res;

	base = rsys_scratch(r, sizeof(struct put_fd_area));
	if (!base)
		return -ENOMEM;

	res = rsys_call(r, SYS_socketpair, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0,
			AREA_ADDR(base, sv), 0, 0);
	if (res < 0) {
		pr_err("%d: injected socketpair: %ld\n", r->pid, res);
		return (int)res;
	}
	ret = rsys_read(r, AREA_ADDR(base, sv), sv, sizeof(sv));
	if (ret)
		return ret;	/* cannot know the fds to close; should not happen on RW scratch */

	lsock = rsys_get_fd(r, sv[0]);
	ret = lsock < 0 ? lsock : send_fd(lsock, local_fd);
	if (!ret)
		ret = remote_recv_fd(r, base, sv[1]);

	if (lsock >= 0)
		close(lsock);
	for (i = 0; i < 2; i++) {
		res = rsys_call(r, SYS_close, sv[i], 0, 0, 0, 0, 0);
		if (res < 0)
			pr_err("%d: injected close(%d): %ld\n", r->pid, sv[i], res);
	}
	return ret;
}
