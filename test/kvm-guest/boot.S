/* SPDX-License-Identifier: MIT */
/*
 * boot.S - multiboot entry, long mode switch, AP trampoline, interrupt
 * stubs and the drop to ring 3.
 *
 * QEMU's multiboot loader enters _start in 32-bit protected mode, paging
 * off, %eax = magic, %ebx = multiboot info.  We build page tables that
 * identity-map the first 4 GiB with 2 MiB pages (user-accessible: ring 3
 * runs the workload and reads the tick counter), switch to long mode and
 * call kmain().  Ring 0 runs emulated under PVM, so this code stays short
 * and uses no x87/SSE.
 */
#include "guest.h"

#define MB_MAGIC	0x1badb002
#define MB_FLAGS	0x00000003	/* page-aligned modules, memory info */
#define MSR_EFER	0xc0000080
#define EFER_LME	0x100
#define CR4_PAE		0x20
#define CR0_PE		0x1
#define CR0_PG		0x80000000
#define PDE_FLAGS	0x87		/* present, writable, user, 2 MiB */
#define PDE_UNCACHED	0x18		/* PWT | PCD: the top GiB is MMIO */

	.section .multiboot, "a"
	.align 4
	.long	MB_MAGIC
	.long	MB_FLAGS
	.long	-(MB_MAGIC + MB_FLAGS)

	.section .text.boot, "ax"
	.code32
	.globl	_start
_start:
	cli
	cld
	movl	%eax, mb_magic
	movl	%ebx, mb_info
	movl	$(kstacks + KSTACK_SIZE), %esp

	/* Zero .bss (one rep: cheap even when emulated). */
	movl	$__bss_start, %edi
	movl	$__bss_end, %ecx
	subl	%edi, %ecx
	shrl	$2, %ecx
	xorl	%eax, %eax
	rep stosl

	/* PML4[0] -> PDPT, PDPT[0..3] -> PD[0..3] (one PD per GiB). */
	movl	$(pdpt + 7), pml4
	movl	$(pd + 0x0007), pdpt
	movl	$(pd + 0x1007), pdpt + 8
	movl	$(pd + 0x2007), pdpt + 16
	movl	$(pd + 0x3007), pdpt + 24

	xorl	%ecx, %ecx
1:	movl	%ecx, %eax
	shll	$21, %eax
	orl	$PDE_FLAGS, %eax
	cmpl	$1536, %ecx
	jb	2f
	orl	$PDE_UNCACHED, %eax
2:	movl	%eax, pd(, %ecx, 8)
	incl	%ecx
	cmpl	$2048, %ecx
	jb	1b

	lgdt	gdt_ptr
	call	enter_long_mode
	ljmp	$KERNEL_CS, $bsp_long

/* PAE, our page tables, EFER.LME, paging on.  Shared with the AP. */
enter_long_mode:
	movl	%cr4, %eax
	orl	$CR4_PAE, %eax
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$(CR0_PG | CR0_PE), %eax
	movl	%eax, %cr0
	ret

	.code64
bsp_long:
	call	load_segments
	movq	$(kstacks + KSTACK_SIZE), %rsp
	xorl	%ebp, %ebp
	call	kmain
	jmp	halt_forever

ap_long:
	call	load_segments
	movq	$(kstacks + 2 * KSTACK_SIZE), %rsp
	xorl	%ebp, %ebp
	call	ap_main
	jmp	halt_forever

load_segments:
	movw	$KERNEL_DS, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	xorl	%eax, %eax
	movw	%ax, %fs
	movw	%ax, %gs
	ret

	.globl	halt_forever
halt_forever:
	cli
	hlt
	jmp	halt_forever

/*
 * enter_user(rip, rsp, arg): iretq to ring 3 at rip with the stack rsp and
 * interrupts on; arg arrives in %rdi.
 */
	.globl	enter_user
enter_user:
	pushq	$USER_DS
	pushq	%rsi
	pushq	$0x202
	pushq	$USER_CS
	pushq	%rdi
	movq	%rdx, %rdi
	iretq

/*
 * One 16-byte stub per vector: push a dummy error code where the CPU
 * pushes none, push the vector, go to trap_common.  kernel.c points IDT
 * entry v at isr_stubs + 16 * v.
 */
.macro	stub vec
	.align	16
	.if !(\vec == 8 || (\vec >= 10 && \vec <= 14) || \vec == 17 || \vec == 21 || \vec == 29 || \vec == 30)
	pushq	$0
	.endif
	pushq	$\vec
	jmp	trap_common
.endm

	.align	16
	.globl	isr_stubs
isr_stubs:
	.altmacro
.macro	stub_n n
	stub	%n
.endm
	.set	vec, 0
	.rept	256
	stub_n	%vec
	.set	vec, vec + 1
	.endr
	.noaltmacro

/* Saves the registers as struct frame (kernel.c) and calls trap(frame). */
trap_common:
	pushq	%rax
	pushq	%rbx
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%rbp
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, %rdi
	cld
	call	trap
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rbp
	popq	%rdi
	popq	%rsi
	popq	%rdx
	popq	%rcx
	popq	%rbx
	popq	%rax
	addq	$16, %rsp		/* vector, error code */
	iretq

/*
 * AP trampoline, copied to TRAMP_BASE by the BSP.  The AP starts here in
 * real mode at TRAMP_BASE:0 (CS = TRAMP_BASE >> 4, IP = 0), goes to 32-bit
 * protected mode with the kernel's GDT, then long mode like the BSP.
 */
#define TRAMP(sym)	(TRAMP_BASE + ((sym) - tramp_start))

	.code16
	.globl	tramp_start, tramp_end
tramp_start:
	cli
	cld
	xorw	%ax, %ax
	movw	%ax, %ds
	lgdtl	TRAMP(tramp_gdt_ptr)
	movl	%cr0, %eax
	orl	$CR0_PE, %eax
	movl	%eax, %cr0
	ljmpl	$CODE32_CS, $TRAMP(tramp32)

	.code32
tramp32:
	movw	$KERNEL_DS, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movl	$(kstacks + 2 * KSTACK_SIZE), %esp
	movl	$enter_long_mode, %eax	/* absolute: this code was moved */
	call	*%eax
	ljmp	$KERNEL_CS, $ap_long

	.align	4
tramp_gdt_ptr:
	.word	gdt_end - gdt - 1
	.long	gdt
tramp_end:

	.data
	.align	16
gdt:
	.quad	0
	.quad	0x00af9a000000ffff	/* 0x08 kernel code, 64-bit */
	.quad	0x00cf92000000ffff	/* 0x10 kernel data */
	.quad	0x00cff2000000ffff	/* 0x18 user data, DPL 3 */
	.quad	0x00affa000000ffff	/* 0x20 user code, 64-bit, DPL 3 */
	.quad	0x00cf9a000000ffff	/* 0x28 code, 32-bit: AP trampoline */
	.globl	gdt_tss
gdt_tss:
	.fill	2 * MAX_CPUS, 8, 0	/* 0x30, 0x40: a TSS per CPU (kernel.c) */
gdt_end:

/* 6 bytes for lgdt in 32-bit mode, 10 in 64-bit mode: base is below 4 GiB. */
	.align	8
gdt_ptr:
	.word	gdt_end - gdt - 1
	.long	gdt
	.long	0

	.globl	mb_magic, mb_info
mb_magic:
	.long	0
mb_info:
	.long	0

	.bss
	.align	4096
pml4:
	.skip	4096
pdpt:
	.skip	4096
pd:
	.skip	4 * 4096

	.section .note.GNU-stack, "", @progbits
