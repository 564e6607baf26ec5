// SPDX-License-Identifier: GPL-2.0
/*
 * rsys-frame: build the signal frame through which every injected syscall
 * returns (rsys.c). It mirrors what the kernel's signal delivery writes on
 * x86-64: the frame sits below the red zone, its XSAVE area 64-byte aligned
 * below that, and the frame itself aligned so that rsp + 8 is 16-byte
 * aligned, as after a call. rt_sigreturn reads the frame at rsp - 8 after
 * the restorer's address has been popped by a `ret`.
 */
#define LOG_PREFIX "rsys: "

#include <cpuid.h>
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>

#include "log.h"
#include "rsys-frame.h"

#define UC_FP_XSTATE		0x1
#define UC_SIGCONTEXT_SS	0x2
#define UC_STRICT_RESTORE_SS	0x4

#define CPUID_XSTATE		0xd
#define CPUID_XSTATE_XFD	(1U << 2)	/* sub-leaf ECX: component can be XFD-armed */
#define MAX_XSTATE_BUF		(1U << 20)
#define MIN_SANE_SP		(1UL << 16)

_Static_assert(sizeof(struct rsys_sigcontext) == 256, "sigcontext_64 layout");
_Static_assert(offsetof(struct rsys_ucontext, uc_mcontext) == 40, "ucontext layout");
_Static_assert(sizeof(struct rsys_ucontext) == 304, "ucontext layout");
_Static_assert(sizeof(struct rsys_sigframe) == 440, "rt_sigframe layout");
_Static_assert(sizeof(struct rsys_fpx_sw_bytes) == RSYS_XSAVE_HDR_OFF - RSYS_XSAVE_SW_OFF,
	       "_fpx_sw_bytes fill the software-reserved bytes");

static bool have_xstate_leaf(void)
{
	return __get_cpuid_max(0, NULL) >= CPUID_XSTATE;
}

/*
 * Components the kernel gives a task only once it asks for them (AMX tile
 * data, armed with XFD until then): the kernel's frame for a task that does
 * not use them is smaller and must not name them, or XRSTOR faults.
 */
static uint64_t dynamic_components(uint64_t xcr0)
{
	unsigned int a, b, c, d, i;
	uint64_t dyn = 0;

	for (i = 2; i < 63; i++) {
		if (!(xcr0 & (1ULL << i)))
			continue;
		__cpuid_count(CPUID_XSTATE, i, a, b, c, d);
		if (c & CPUID_XSTATE_XFD)
			dyn |= 1ULL << i;
	}
	return dyn;
}

/* Size of the standard-format XSAVE area holding features (the kernel's user_size). */
static size_t xstate_size(uint64_t features)
{
	unsigned int a, b, c, d, i;
	size_t size = RSYS_XSAVE_MIN;

	for (i = 2; i < 63; i++) {
		if (!(features & (1ULL << i)))
			continue;
		__cpuid_count(CPUID_XSTATE, i, a, b, c, d);
		if (a && (size_t)a + b > size)
			size = (size_t)a + b;
	}
	return size;
}

static void fill_sigframe(struct rsys_sigframe *sf, const struct user_regs_struct *r,
			  uint64_t sigmask, unsigned long restorer, unsigned long fp)
{
	struct rsys_sigcontext *sc = &sf->uc.uc_mcontext;

	sf->pretcode = restorer;
	sf->uc.uc_flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
	/*
	 * Invalid on purpose: rt_sigreturn passes uc_stack to sigaltstack()
	 * and ignores its -EINVAL, so the task's alternate stack stays as it
	 * is (we cannot read it without an injected call).
	 */
	sf->uc.uc_stack.ss_flags = SS_ONSTACK | SS_DISABLE;
	sf->uc.uc_sigmask = sigmask;

	sc->r8 = r->r8;
	sc->r9 = r->r9;
	sc->r10 = r->r10;
	sc->r11 = r->r11;
	sc->r12 = r->r12;
	sc->r13 = r->r13;
	sc->r14 = r->r14;
	sc->r15 = r->r15;
	sc->rdi = r->rdi;
	sc->rsi = r->rsi;
	sc->rbp = r->rbp;
	sc->rbx = r->rbx;
	sc->rdx = r->rdx;
	sc->rax = r->rax;
	sc->rcx = r->rcx;
	sc->rsp = r->rsp;
	sc->rip = r->rip;
	sc->eflags = r->eflags;
	sc->cs = r->cs;
	sc->ss = r->ss;
	/* fs, gs stay 0, as the kernel writes them: it keeps fs/gs bases itself. */
	sc->oldmask = sigmask;
	sc->fpstate = fp;
}

/* The XSAVE area as the kernel's signal code writes it: software bytes, header, magic2. */
static void fill_xstate(unsigned char *xs, const struct rsys_frame *f, uint64_t xstate_bv)
{
	const uint32_t magic2 = RSYS_FP_XSTATE_MAGIC2;
	struct rsys_fpx_sw_bytes sw = {
		.magic1 = RSYS_FP_XSTATE_MAGIC1,
		.extended_size = f->xstate_size + sizeof(magic2),
		.xfeatures = f->xfeatures,
		.xstate_size = f->xstate_size,
	};

	memcpy(xs + RSYS_XSAVE_SW_OFF, &sw, sizeof(sw));
	xstate_bv &= f->xfeatures;
	memset(xs + RSYS_XSAVE_HDR_OFF, 0, 64);	/* xcomp_bv 0: standard format */
	memcpy(xs + RSYS_XSAVE_HDR_OFF, &xstate_bv, sizeof(xstate_bv));
	memcpy(xs + f->xstate_size, &magic2, sizeof(magic2));
}

int rsys_frame_make(struct rsys_frame *f, const struct user_regs_struct *regs, uint64_t sigmask,
		    unsigned long restorer, const void *xsave, size_t xlen)
{
	const unsigned char *x = xsave;
	struct rsys_sigframe sf = { 0 };
	uint64_t xcr0, bv, dyn;
	unsigned long fp;

	memset(f, 0, sizeof(*f));
	if (xlen < RSYS_XSAVE_MIN || regs->rsp < MIN_SANE_SP || !have_xstate_leaf())
		return -EINVAL;
	/* The regset's first software bytes hold XCR0 (for debuggers), not a signal frame's. */
	memcpy(&xcr0, x + RSYS_XSAVE_SW_OFF, sizeof(xcr0));
	memcpy(&bv, x + RSYS_XSAVE_HDR_OFF, sizeof(bv));
	if ((xcr0 & 3) != 3)
		return -EINVAL;
	dyn = dynamic_components(xcr0);
	f->xfeatures = (bv & dyn) ? xcr0 : xcr0 & ~dyn;
	f->xstate_size = xstate_size(f->xfeatures);
	if (f->xstate_size > xlen)
		return -EINVAL;

	fp = (regs->rsp - RSYS_RED_ZONE - f->xstate_size - sizeof(uint32_t)) & ~63UL;
	f->fpstate = fp;
	f->addr = ((fp - sizeof(sf)) & ~15UL) - 8;
	f->len = fp + f->xstate_size + sizeof(uint32_t) - f->addr;
	f->buf = calloc(1, f->len);
	if (!f->buf)
		return -ENOMEM;

	fill_sigframe(&sf, regs, sigmask, restorer, fp);
	memcpy(f->buf, &sf, sizeof(sf));
	memcpy(f->buf + (fp - f->addr), x, f->xstate_size);
	fill_xstate(f->buf + (fp - f->addr), f, bv);
	return 0;
}

int rsys_frame_build(struct rsys_frame *f, pid_t pid, const struct user_regs_struct *regs,
		     uint64_t sigmask, unsigned long restorer)
{
	unsigned int a, b, c = 0, d;
	struct iovec iov;
	int ret;

	memset(f, 0, sizeof(*f));
	if (!have_xstate_leaf())
		return -ENODEV;
	__cpuid_count(CPUID_XSTATE, 0, a, b, c, d);	/* ECX: size for all supported components */
	iov.iov_len = c < RSYS_XSAVE_MIN ? RSYS_XSAVE_MIN : c > MAX_XSTATE_BUF ? MAX_XSTATE_BUF : c;
	iov.iov_base = calloc(1, iov.iov_len);
	if (!iov.iov_base)
		return -ENOMEM;
	if (ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &iov)) {
		ret = -errno;
		pr_debug("%d: PTRACE_GETREGSET(NT_X86_XSTATE): %s\n", pid, strerror(-ret));
	} else {
		ret = rsys_frame_make(f, regs, sigmask, restorer, iov.iov_base, iov.iov_len);
	}
	free(iov.iov_base);
	return ret;
}

void rsys_frame_free(struct rsys_frame *f)
{
	free(f->buf);
	f->buf = NULL;
	f->len = 0;
}
