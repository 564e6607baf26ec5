/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rsys: run system calls inside another, ptrace-stopped process (QEMU), with
 * argument buffers in a scratch mapping in that process, and move file
 * descriptors in both directions. x86_64 only.
 *
 * All calls must come from the thread that is the tracer of the task.
 * Signals are blocked in the task between attach and detach; only the
 * thread-group leader is stopped, other threads keep running.
 *
 * If the tracer dies (SIGKILL) while attached, even mid-call, the task
 * finishes the call in flight and then restores its own registers, signal
 * mask and FPU state through rt_sigreturn from a frame rsys wrote below its
 * stack pointer (frame != 0; see rsys.c). Scratch memory stays mapped then.
 */
#ifndef CRIU_QEMU_RSYS_H
#define CRIU_QEMU_RSYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

struct rsys {
	pid_t pid;			/* 0: not attached */
	bool seized_by_us;		/* we did PTRACE_SEIZE and must detach */
	struct user_regs_struct saved;	/* regs to restore, syscall restart already applied */
	uint64_t saved_sigmask;
	unsigned long syscall_ip;	/* `syscall` (frame: `syscall; ret`) in the task */
	unsigned long frame;		/* rsp during calls: a signal frame of saved state; 0: none */
	unsigned long scratch;		/* scratch mapping in the task, 0 if none */
	size_t scratch_len;
	int pidfd;			/* pidfd_open(pid), for pidfd_getfd */
};

/* The caller is already the tracer and pid is in a ptrace-stop (CRIU's case). */
int rsys_attach_stopped(struct rsys *r, pid_t pid);

/*
 * Seize pid ourselves (PTRACE_SEIZE + PTRACE_INTERRUPT, wait for the stop),
 * then as above. Only the thread-group leader is stopped; other threads keep
 * running (they never run our code).
 */
int rsys_seize(struct rsys *r, pid_t pid);

/*
 * Run one syscall in the task; returns the raw result (>= 0 or -errno from
 * the task). Our own failures are negative -errno too (-ESRCH: the task is
 * gone); they are logged, results from the task are not.
 */
long rsys_call(struct rsys *r, long nr, long a1, long a2, long a3, long a4, long a5, long a6);

/* Map a scratch RW area of at least len bytes in the task (reused if big enough). Returns its remote address or 0. */
unsigned long rsys_scratch(struct rsys *r, size_t len);

/* Copy to/from the task's memory: process_vm_writev/readv, fallback /proc/pid/mem. 0 or -errno. */
int rsys_write(struct rsys *r, unsigned long remote, const void *buf, size_t len);
int rsys_read(struct rsys *r, unsigned long remote, void *buf, size_t len);

/* Duplicate the task's fd into our process (pidfd_getfd, O_CLOEXEC). Returns local fd or -errno. */
int rsys_get_fd(struct rsys *r, int remote_fd);

/*
 * Install our fd into the task (SCM_RIGHTS over an injected socketpair; the
 * task's copy is O_CLOEXEC). Returns the task's new fd number or -errno.
 */
int rsys_put_fd(struct rsys *r, int local_fd);

/*
 * Unmap scratch, restore sigmask and registers (the registers last: until
 * then the task is parked on its frame); detach if we seized. If we
 * did not seize, the task is left in a PTRACE_EVENT_STOP (as after CRIU's
 * PTRACE_INTERRUPT) for the tracer to go on with. Safe to call after partial
 * failure, on a zeroed struct and twice. Returns 0 or the first -errno.
 */
int rsys_detach(struct rsys *r);

/*
 * Detach but leave the task armed to make syscall nr(args) first when it
 * next runs, then return through its frame to where it was stopped (see
 * rsys.c). Needs the frame; the result of the call is dropped.
 */
int rsys_detach_armed(struct rsys *r, long nr, const long args[6]);

#endif
