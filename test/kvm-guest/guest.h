/* SPDX-License-Identifier: MIT */
/*
 * guest.h - shared definitions of the bare-metal KVM test guest.
 *
 * Included by the ring-0 code (boot.S, kernel.c), the ring-3 workload
 * (workload.c) and lib.c; boot.S sees only the plain #defines.
 */
#ifndef KVM_GUEST_H
#define KVM_GUEST_H

#define HZ		100		/* PIT rate: the guest's clock */
#define MAX_CPUS	2
#define KSTACK_SIZE	16384		/* ring-0 stack per CPU */
#define USTACK_SIZE	16384		/* ring-3 stack per CPU */
#define TRAMP_BASE	0x8000		/* AP trampoline: SIPI vector 0x08 */

/* Selectors: must match the GDT in boot.S. */
#define KERNEL_CS	0x08
#define KERNEL_DS	0x10
#define USER_DS		(0x18 | 3)
#define USER_CS		(0x20 | 3)
#define CODE32_CS	0x28
#define TSS_SEL(cpu)	(0x30 + 16 * (cpu))

/* Interrupt vectors. */
#define VEC_PIT		0x20		/* PIC master remapped to 0x20 */
#define VEC_PIC1_SPUR	0x27
#define VEC_PIC2_SPUR	0x2f
#define VEC_LAPIC_TIMER	0x40
#define VEC_LAPIC_SPUR	0xff

/*
 * Ring 3 -> ring 0 call: "ud2" with %rax = number, %rdi and %rsi =
 * arguments, result in %rax.  The #UD handler recognises it and resumes
 * after the ud2.  Under PVM "int $n" from ring 3 arrives as #UD (for any
 * n) and "syscall" reaches LSTAR still at CPL 3, but exceptions from
 * ring 3 are delivered right.
 */
#define SYS_WRITE	0		/* (buf, len): one console line */
#define SYS_NAP		1		/* wait for this CPU's next interrupt */
#define SYS_EXIT	2		/* stop this CPU for good */

#ifndef __ASSEMBLER__

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAGE_SIZE	4096u
#define PAGE_WORDS	(PAGE_SIZE / 8)
#define MIB		(1ul << 20)
#define REGION_BASE	(16 * MIB)	/* workload memory, BSP's then AP's */
#define RAM_TOP_MAX	(3ul << 30)	/* boot.S maps 4 GiB; stay below MMIO */

#define READ_ONCE(x)	(*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))
#define barrier()	__asm__ __volatile__("" ::: "memory")

/*
 * One CPU's workload.  Ring 0 fills in the first block before it drops to
 * ring 3; the rest is the workload's own state.  Everything lives in guest
 * RAM, so a restore that loses or mixes up any of it shows.
 */
struct wl {
	/* set by ring 0 (kernel.c) */
	unsigned int cpu, ncpus;
	uint64_t *mem;
	uint64_t npages, mb, rate_kbs, zero_every, seed;
	int64_t corrupt_after;		/* ticks after ready, -1: never */
	bool nap;			/* wait for a tick after each pass */
	const volatile uint64_t *clock;	/* PIT ticks: the time base */
	const volatile uint64_t *irqs;	/* timer interrupts this CPU took */
	struct wl *ap;			/* BSP only: the AP's workload */

	/* w and sum change under seq (odd while changing): the BSP reads them */
	uint64_t seq, w, sum, pass, corrupt;
	bool ready;			/* pages hold generation 0 */

	uint64_t vcursor;
	unsigned int pass_reports;
	uint64_t credit, credit_max, last_tick;
	uint64_t start_tick, ready_tick, last_status_tick;
};

/* lib.c: used by both rings */
void *memset(void *s, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
int ksnprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* workload.c: ring 3 entry point */
void wl_run(struct wl *wl) __attribute__((noreturn));

#endif /* __ASSEMBLER__ */
#endif /* KVM_GUEST_H */
