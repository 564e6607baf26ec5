/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rsys-frame: an x86-64 rt_sigreturn frame that holds a stopped task's
 * registers, signal mask and FPU/extended state, so that the task can put
 * them back itself (see rsys.c for why). The layouts are the kernel's
 * user ABI (struct rt_sigframe, ucontext, sigcontext_64, _fpx_sw_bytes);
 * glibc's ucontext_t differs (its sigset is 128 bytes), so they are ours.
 */
#ifndef CRIU_QEMU_RSYS_FRAME_H
#define CRIU_QEMU_RSYS_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#define RSYS_FP_XSTATE_MAGIC1	0x46505853U	/* in the FXSAVE area's software bytes */
#define RSYS_FP_XSTATE_MAGIC2	0x46505845U	/* right after the XSAVE area */
#define RSYS_XSAVE_SW_OFF	464		/* software-reserved bytes of the FXSAVE area */
#define RSYS_XSAVE_HDR_OFF	512		/* XSAVE header: xstate_bv, xcomp_bv */
#define RSYS_XSAVE_MIN		576		/* legacy area + header */
#define RSYS_RED_ZONE		128

struct rsys_sigcontext {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2;
	uint64_t fpstate;		/* address of the XSAVE area */
	uint64_t reserved1[8];
};

struct rsys_ucontext {
	uint64_t uc_flags;
	uint64_t uc_link;
	struct {
		uint64_t ss_sp;
		int32_t ss_flags;
		int32_t pad;
		uint64_t ss_size;
	} uc_stack;
	struct rsys_sigcontext uc_mcontext;
	uint64_t uc_sigmask;
};

struct rsys_sigframe {
	uint64_t pretcode;		/* the frame's return address: a restorer */
	struct rsys_ucontext uc;
	uint8_t info[128];		/* siginfo: rt_sigreturn does not read it */
};

struct rsys_fpx_sw_bytes {
	uint32_t magic1;
	uint32_t extended_size;		/* xstate_size + sizeof(magic2) */
	uint64_t xfeatures;
	uint32_t xstate_size;
	uint32_t padding[7];
};

/* A frame image and where it goes in the task. */
struct rsys_frame {
	unsigned char *buf;	/* [addr, addr + len): sigframe, gap, XSAVE area, magic2 */
	size_t len;
	unsigned long addr;	/* remote address of pretcode: the rsp to install */
	unsigned long fpstate;	/* remote address of the XSAVE area */
	size_t xstate_size;
	uint64_t xfeatures;
};

/*
 * Lay out a frame below regs->rsp, past the red zone and aligned as the
 * kernel aligns signal frames, from the task's NT_X86_XSTATE regset (xsave,
 * xlen bytes). On return (ret) to pretcode = restorer, a `mov $15,%rax;
 * syscall` sequence, the task gets regs, sigmask and its extended state
 * back. 0 or -errno; free with rsys_frame_free().
 */
int rsys_frame_make(struct rsys_frame *f, const struct user_regs_struct *regs, uint64_t sigmask,
		    unsigned long restorer, const void *xsave, size_t xlen);

/* The same with the extended state read from the stopped task pid. */
int rsys_frame_build(struct rsys_frame *f, pid_t pid, const struct user_regs_struct *regs,
		     uint64_t sigmask, unsigned long restorer);

void rsys_frame_free(struct rsys_frame *f);

#endif
