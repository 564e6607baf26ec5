// SPDX-License-Identifier: MIT
/*
 * kernel.c - ring 0 of the KVM test guest.
 *
 * Under PVM every ring-0 instruction is emulated (~1.5 us each) and x87/SSE
 * there stops QEMU, so ring 0 only sets the machine up and handles
 * interrupts: GDT/TSS/IDT, PIC + PIT at HZ on the BSP, the LAPIC timer on
 * the AP, the AP start (INIT/SIPI), serial output for ring 3, and
 * exception reports.  The memory workload runs in ring 3 (workload.c),
 * which PVM runs natively.
 *
 * Console lines from ring 0 start with "KG "; workload lines with "WL ".
 */
#include "guest.h"

#define COM1		0x3f8
#define MSR_GS_BASE	0xc0000101
#define MSR_KGS_BASE	0xc0000102

#define LAPIC_BASE	0xfee00000ul
#define LAPIC_SVR	0x0f0
#define LAPIC_EOI	0x0b0
#define LAPIC_ICR_LO	0x300
#define LAPIC_ICR_HI	0x310
#define LAPIC_LVT_TIMER	0x320
#define LAPIC_LVT_LINT0	0x350
#define LAPIC_LVT_LINT1	0x360
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR	0x390
#define LAPIC_TIMER_DIV	0x3e0
#define LVT_MASKED	0x10000
#define LVT_PERIODIC	0x20000
#define MB_BOOT_MAGIC	0x2badb002
#define CAL_TICKS	5		/* LAPIC timer calibration, in PIT ticks */

struct mb_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline;
};

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

struct idt_entry {
	uint16_t off_lo, sel;
	uint8_t ist, type;
	uint16_t off_mid;
	uint32_t off_hi, reserved;
} __attribute__((packed));

/* What trap_common (boot.S) pushes, lowest address first. */
struct frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vec, err;
	uint64_t rip, cs, rflags, rsp, ss;	/* pushed by the CPU */
};

/*
 * Per-CPU data, at %gs:0 in ring 0.  GS_BASE keeps pointing here in ring 3
 * too (the workload never touches %gs), so no swapgs anywhere.
 */
struct percpu {
	struct percpu *self;
	unsigned int cpu;
	volatile uint64_t irqs;		/* timer interrupts taken */
};

struct config {
	uint64_t mb, rate_kbs, zero_every, seed, nap, cpus;
	int64_t self_test_corrupt;	/* seconds after ready, -1: never */
	uint64_t self_test_cpu;		/* whose region the self test hits */
};

char kstacks[MAX_CPUS][KSTACK_SIZE] __attribute__((aligned(4096)));
static char ustacks[MAX_CPUS][USTACK_SIZE] __attribute__((aligned(4096)));
static struct tss tss[MAX_CPUS] __attribute__((aligned(16)));
static struct idt_entry idt[256] __attribute__((aligned(16)));
static struct percpu percpu[MAX_CPUS];
static struct wl wls[MAX_CPUS];
static volatile uint64_t ticks;		/* PIT interrupts on the BSP */
static volatile int ap_alive;
static uint32_t lapic_per_tick;		/* LAPIC timer counts per PIT tick */
static int console_lock;

extern uint64_t gdt_tss[];
extern const char tramp_start[], tramp_end[], isr_stubs[];
extern uint32_t mb_magic, mb_info;
void enter_user(void (*rip)(struct wl *), void *rsp, struct wl *arg)
	__attribute__((noreturn));
void halt_forever(void) __attribute__((noreturn));
void kmain(void);
void ap_main(void);
void trap(struct frame *f);

/* --- hardware access ---------------------------------------------------- */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ __volatile__("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ __volatile__("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ __volatile__("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ __volatile__("wrmsr" : : "c"(msr), "a"((uint32_t)v),
			     "d"((uint32_t)(v >> 32)));
}

static inline uint64_t read_cr2(void)
{
	uint64_t v;

	__asm__ __volatile__("mov %%cr2, %0" : "=r"(v));
	return v;
}

static inline void cpu_relax(void)
{
	__asm__ __volatile__("pause" ::: "memory");
}

static inline uint32_t lapic_read(unsigned int reg)
{
	return *(volatile uint32_t *)(LAPIC_BASE + reg);
}

static inline void lapic_write(unsigned int reg, uint32_t v)
{
	*(volatile uint32_t *)(LAPIC_BASE + reg) = v;
}

static struct percpu *this_cpu(void)
{
	struct percpu *p;

	__asm__ __volatile__("movq %%gs:0, %0" : "=r"(p));
	return p;
}

/* --- console -------------------------------------------------------------- */

static void serial_init(void)
{
	outb(COM1 + 1, 0x00);		/* no UART interrupts: we poll */
	outb(COM1 + 3, 0x80);		/* DLAB on */
	outb(COM1 + 0, 0x01);		/* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03);		/* 8N1, DLAB off */
	outb(COM1 + 2, 0xc7);		/* FIFO on and cleared */
	outb(COM1 + 4, 0x03);		/* DTR, RTS */
}

static void serial_putc(char c)
{
	while (!(inb(COM1 + 5) & 0x20))	/* transmit holding register empty */
		cpu_relax();
	outb(COM1, (uint8_t)c);
}

/*
 * Both CPUs print; a line goes out whole under console_lock, with
 * interrupts off.  spins bounds the wait: an exception report must not
 * hang on a lock its own CPU holds.
 */
static void console_write(const char *s, size_t len, unsigned long spins)
{
	uint64_t flags;
	bool locked = false;

	__asm__ __volatile__("pushfq; popq %0; cli" : "=r"(flags) :: "memory");
	while (!locked && spins--) {
		locked = !__atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE);
		if (!locked)
			cpu_relax();
	}
	while (len--)
		serial_putc(*s++);
	if (locked)
		__atomic_store_n(&console_lock, 0, __ATOMIC_RELEASE);
	if (flags & 0x200)
		__asm__ __volatile__("sti" ::: "memory");
}

static void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void kprintf(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = kvsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	console_write(buf, (size_t)n, ~0ul);
}

/* --- interrupts ----------------------------------------------------------- */

static void fatal(struct frame *f)
{
	char buf[256];
	int n;

	n = ksnprintf(buf, sizeof(buf),
		      "KG EXC vec=%lu err=%lx rip=%lx cs=%lx rsp=%lx cr2=%lx cpu=%u\r\n",
		      f->vec, f->err, f->rip, f->cs, f->rsp, read_cr2(),
		      this_cpu()->cpu);
	console_write(buf, (size_t)n, 1000000);
	halt_forever();
}

static uint64_t do_syscall(struct frame *f)
{
	switch (f->rax) {
	case SYS_WRITE:
		if (f->rsi > 1024)
			return (uint64_t)-1;
		console_write((const char *)f->rdi, f->rsi, ~0ul);
		return 0;
	case SYS_NAP:
		/* sti's one-instruction shadow: no wakeup is lost before hlt. */
		__asm__ __volatile__("sti; hlt; cli" ::: "memory");
		return 0;
	case SYS_EXIT:
		kprintf("KG cpu %u stopped\r\n", this_cpu()->cpu);
		halt_forever();
	}
	return (uint64_t)-1;
}

/* A ud2 from ring 3 is a call (guest.h); resume after it. */
static bool is_syscall(const struct frame *f)
{
	const uint8_t *ip = (const uint8_t *)f->rip;

	return f->vec == 6 && (f->cs & 3) == 3 && ip[0] == 0x0f && ip[1] == 0x0b;
}

void trap(struct frame *f)
{
	if (is_syscall(f)) {
		f->rip += 2;
		f->rax = do_syscall(f);
		return;
	}
	switch (f->vec) {
	case VEC_PIT:
		ticks++;
		this_cpu()->irqs++;
		outb(0x20, 0x20);	/* EOI to the master PIC */
		return;
	case VEC_LAPIC_TIMER:
		this_cpu()->irqs++;
		lapic_write(LAPIC_EOI, 0);
		return;
	case VEC_PIC1_SPUR:
	case VEC_PIC2_SPUR:
	case VEC_LAPIC_SPUR:
		return;			/* spurious: no EOI */
	}
	if (f->vec < 32)
		fatal(f);
	kprintf("KG unexpected vec=%lu cpu=%u\r\n", f->vec, this_cpu()->cpu);
}

static void idt_init(void)
{
	unsigned int v;

	for (v = 0; v < 256; v++) {
		uint64_t a = (uint64_t)isr_stubs + 16 * v;

		idt[v].off_lo = (uint16_t)a;
		idt[v].sel = KERNEL_CS;
		idt[v].type = 0x8e;	/* interrupt gate, DPL 0 */
		idt[v].off_mid = (uint16_t)(a >> 16);
		idt[v].off_hi = (uint32_t)(a >> 32);
	}
}

/* GS base, TSS (RSP0: the stack for interrupts from ring 3), IDT. */
static void cpu_init(unsigned int cpu)
{
	struct percpu *pc = &percpu[cpu];
	uint64_t base = (uint64_t)&tss[cpu], limit = sizeof(struct tss) - 1;
	struct __attribute__((packed)) { uint16_t limit; uint64_t base; } idtr = {
		sizeof(idt) - 1, (uint64_t)idt
	};

	pc->self = pc;
	pc->cpu = cpu;
	wrmsr(MSR_GS_BASE, (uint64_t)pc);
	wrmsr(MSR_KGS_BASE, 0);

	tss[cpu].rsp[0] = (uint64_t)(kstacks[cpu] + KSTACK_SIZE);
	tss[cpu].iomap_base = sizeof(struct tss);
	gdt_tss[2 * cpu] = (limit & 0xffff) | (base & 0xffffff) << 16 |
			   0x89ull << 40 | ((limit >> 16) & 0xf) << 48 |
			   ((base >> 24) & 0xff) << 56;
	gdt_tss[2 * cpu + 1] = base >> 32;
	__asm__ __volatile__("ltr %w0" : : "r"(TSS_SEL(cpu)));
	__asm__ __volatile__("lidt %0" : : "m"(idtr));
}

/* PIC: IRQs at 0x20..0x2f, only IRQ0 (PIT) unmasked.  PIT: HZ. */
static void timer_init(void)
{
	uint16_t div = (1193182 + HZ / 2) / HZ;

	outb(0x20, 0x11);		/* ICW1: init, ICW4 follows */
	outb(0xa0, 0x11);
	outb(0x21, VEC_PIT);		/* ICW2: vector bases */
	outb(0xa1, VEC_PIT + 8);
	outb(0x21, 0x04);		/* ICW3: slave on IRQ2 */
	outb(0xa1, 0x02);
	outb(0x21, 0x01);		/* ICW4: 8086 mode */
	outb(0xa1, 0x01);
	outb(0x21, 0xfe);		/* mask all but IRQ0 */
	outb(0xa1, 0xff);

	outb(0x43, 0x34);		/* channel 0, lo/hi byte, rate generator */
	outb(0x40, div & 0xff);
	outb(0x40, div >> 8);
}

static void wait_ticks(uint64_t n)
{
	uint64_t until = ticks + n;

	while (ticks < until)
		__asm__ __volatile__("sti; hlt" ::: "memory");
}

/*
 * Software-enable the LAPIC.  On the BSP the PIC's interrupts arrive
 * through LINT0 in ExtINT mode, so keep that open; the AP masks both.
 */
static void lapic_init(bool bsp)
{
	lapic_write(LAPIC_SVR, 0x100 | VEC_LAPIC_SPUR);
	lapic_write(LAPIC_LVT_LINT0, bsp ? 0x700 : LVT_MASKED);
	lapic_write(LAPIC_LVT_LINT1, bsp ? 0x400 : LVT_MASKED);
	lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | VEC_LAPIC_TIMER);
	lapic_write(LAPIC_TIMER_DIV, 0xb);	/* divide by 1 */
}

/* LAPIC timer counts per PIT tick, measured on the BSP's own timer. */
static uint32_t lapic_calibrate(void)
{
	uint32_t left;

	wait_ticks(1);			/* start right after a tick */
	lapic_write(LAPIC_TIMER_INIT, 0xffffffff);
	wait_ticks(CAL_TICKS);
	left = lapic_read(LAPIC_TIMER_CUR);
	lapic_write(LAPIC_TIMER_INIT, 0);
	return (0xffffffff - left) / CAL_TICKS;
}

static void send_ipi(uint32_t apic_id, uint32_t icr)
{
	lapic_write(LAPIC_ICR_HI, apic_id << 24);
	lapic_write(LAPIC_ICR_LO, icr);
}

/* INIT, then SIPI (twice if needed) to APIC ID 1; true once it runs. */
static bool start_ap(void)
{
	unsigned int i;

	memcpy((void *)TRAMP_BASE, tramp_start, (size_t)(tramp_end - tramp_start));
	send_ipi(1, 0x4500);		/* INIT */
	wait_ticks(1);			/* the SDM asks for 10 ms */
	for (i = 0; i < 2 && !ap_alive; i++) {
		send_ipi(1, 0x4600 | (TRAMP_BASE >> 12));	/* SIPI */
		wait_ticks(1);
	}
	for (i = 0; i < HZ && !ap_alive; i++)
		wait_ticks(1);
	return ap_alive;
}

/* Number of CPUs QEMU started with, from fw_cfg (FW_CFG_NB_CPUS). */
static unsigned int fw_cfg_cpus(void)
{
	unsigned int n;

	outw(0x510, 0x05);
	n = inb(0x511);
	n |= (unsigned int)inb(0x511) << 8;
	return n ? n : 1;
}

/* --- configuration -------------------------------------------------------- */

static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!len)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

static bool key_is(const char *key, size_t klen, const char *name)
{
	size_t n = strlen(name);

	return klen == n && !memcmp(key, name, n);
}

/* One "wl.KEY[=VALUE]" word of the multiboot command line. */
static void parse_option(struct config *c, const char *key, size_t klen,
			 const char *val, size_t vlen)
{
	uint64_t v = 0;
	bool ok = parse_u64(val, vlen, &v);

	if (key_is(key, klen, "self_test_corrupt")) {
		c->self_test_corrupt = val ? (ok ? (int64_t)v : -1) : 1;
		ok = !val || ok;
	} else if (!ok) {
		;
	} else if (key_is(key, klen, "mb")) {
		c->mb = v;
	} else if (key_is(key, klen, "rate")) {
		c->rate_kbs = v;
	} else if (key_is(key, klen, "zero_every")) {
		c->zero_every = v;
	} else if (key_is(key, klen, "seed")) {
		c->seed = v;
	} else if (key_is(key, klen, "nap")) {
		c->nap = v;
	} else if (key_is(key, klen, "cpus")) {
		c->cpus = v;
	} else if (key_is(key, klen, "self_test_cpu")) {
		c->self_test_cpu = v;
	} else {
		ok = false;
	}
	if (!ok) {
		char name[32];

		klen = klen < sizeof(name) - 1 ? klen : sizeof(name) - 1;
		memcpy(name, key, klen);
		name[klen] = '\0';
		kprintf("KG bad option wl.%s\r\n", name);
	}
}

static void parse_cmdline(struct config *c, const char *s)
{
	const char *w, *eq, *end;

	while (s && *s) {
		while (*s == ' ')
			s++;
		for (w = s; *s && *s != ' '; s++)
			;
		if (s - w < 4 || memcmp(w, "wl.", 3))
			continue;
		w += 3;
		end = s;
		for (eq = w; eq < end && *eq != '='; eq++)
			;
		parse_option(c, w, (size_t)(eq - w), eq < end ? eq + 1 : NULL,
			     eq < end ? (size_t)(end - eq - 1) : 0);
	}
}

/* --- boot ------------------------------------------------------------------- */

static void wl_setup(struct wl *wl, const struct config *c, unsigned int cpu)
{
	wl->cpu = cpu;
	wl->mb = c->mb;
	wl->npages = c->mb * (MIB / PAGE_SIZE);
	wl->mem = (uint64_t *)(REGION_BASE + cpu * c->mb * MIB);
	wl->rate_kbs = c->rate_kbs;
	wl->zero_every = c->zero_every;
	wl->seed = c->seed + cpu;	/* the AP's seed: seed + 1 */
	wl->corrupt_after = cpu != c->self_test_cpu ||
			    c->self_test_corrupt < 0 ? -1 :
			    c->self_test_corrupt * HZ;
	wl->nap = c->nap != 0;
	wl->clock = &ticks;
	wl->irqs = &percpu[cpu].irqs;
}

void ap_main(void)
{
	cpu_init(1);
	lapic_init(false);
	lapic_write(LAPIC_LVT_TIMER, LVT_PERIODIC | VEC_LAPIC_TIMER);
	lapic_write(LAPIC_TIMER_INIT, lapic_per_tick);
	WRITE_ONCE(ap_alive, 1);
	enter_user(wl_run, ustacks[1] + USTACK_SIZE - 8, &wls[1]);
}

void kmain(void)
{
	const struct mb_info *mbi = (const struct mb_info *)(uint64_t)mb_info;
	struct config c = {
		.mb = 16, .rate_kbs = 1024, .zero_every = 16, .seed = 1,
		.nap = 1, .cpus = MAX_CPUS, .self_test_corrupt = -1,
	};
	uint64_t ram = 0, need;
	unsigned int ncpus;

	serial_init();
	idt_init();
	cpu_init(0);
	kprintf("KG boot\r\n");
	if (mb_magic != MB_BOOT_MAGIC) {
		kprintf("KG error not booted by multiboot (eax=%x)\r\n", mb_magic);
		halt_forever();
	}
	if (mbi->flags & (1 << 2))
		parse_cmdline(&c, (const char *)(uint64_t)mbi->cmdline);
	if (mbi->flags & (1 << 0))
		ram = ((uint64_t)mbi->mem_upper + 1024) * 1024;

	timer_init();
	__asm__ __volatile__("sti");

	ncpus = fw_cfg_cpus();
	if (ncpus > c.cpus)
		ncpus = (unsigned int)c.cpus;
	if (ncpus > MAX_CPUS)
		ncpus = MAX_CPUS;
	if (!ncpus)
		ncpus = 1;

	need = REGION_BASE + ncpus * c.mb * MIB;
	if (!c.mb || c.mb > RAM_TOP_MAX / MIB || need > ram || need > RAM_TOP_MAX) {
		kprintf("WL error wl.mb=%lu x %u cpus needs %lu MiB of RAM below 3 GiB, have %lu MiB\r\n",
			c.mb, ncpus, need / MIB, ram / MIB);
		halt_forever();
	}

	wl_setup(&wls[0], &c, 0);
	if (ncpus > 1) {
		wl_setup(&wls[1], &c, 1);
		wls[1].ncpus = ncpus;
		lapic_init(true);
		lapic_per_tick = lapic_calibrate();
		if (start_ap()) {
			wls[0].ap = &wls[1];
		} else {
			kprintf("KG error AP did not start\r\n");
			ncpus = 1;
		}
	}
	wls[0].ncpus = ncpus;
	kprintf("KG ring3 cpus=%u ram_mb=%lu ticks=%lu lapic_per_tick=%u\r\n",
		ncpus, ram / MIB, ticks, lapic_per_tick);
	enter_user(wl_run, ustacks[0] + USTACK_SIZE - 8, &wls[0]);
}
