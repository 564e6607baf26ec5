// SPDX-License-Identifier: MIT
/*
 * workload.c - the ring-3 memory workload of the KVM test guest.
 *
 * The same model as test/guest/workload.c (see test/guest/README.md for
 * the formulas): NPAGES = mb * 256 pages, rewrite number k rewrites page
 * k % NPAGES with its next generation, word i of page p at generation g is
 * splitmix64(splitmix64(seed) ^ (g << 32) ^ p) + i * GOLDEN (zero pages:
 * p % Z == Z - 1), sum(k + 1) = splitmix64(sum(k) ^ k), sum(0) = seed.
 *
 * Each CPU runs this on its own region with its own seed (the AP's is
 * seed + 1).  Ring 3 runs natively under PVM, so all the real work is here;
 * ring 0 is asked (ud2, see guest.h) only to print a line or to wait for the next
 * timer interrupt.  Time is the BSP's PIT tick counter, which ring 3 reads
 * directly.  The BSP prints every console line of both workloads except
 * the AP's CORRUPT lines.
 */
#include "guest.h"
#include "wl-pattern.h"

#define MAX_REPORTS	10		/* CORRUPT lines per pass */
#define SLICE_PAGES	32		/* pages verified between bursts */
#define MAX_BURST	4096		/* pages rewritten in one go, at most */
#define PAGE_CREDIT	((PAGE_SIZE / 1024) * HZ)	/* KiB/s * ticks */
#define STATUS_GAP	(HZ / 5)	/* min ticks between end-of-pass lines */
#define AP_READY_WAIT	(10 * HZ)

static long sys(long nr, long a, long b)
{
	long ret;

	__asm__ __volatile__("ud2" : "=a"(ret) : "a"(nr), "D"(a), "S"(b)
			     : "memory", "cc");
	return ret;
}

/* One line, one SYS_WRITE: ring 0 prints it whole under its lock. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = kvsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 3)
		n = sizeof(buf) - 3;
	buf[n++] = '\r';
	buf[n++] = '\n';
	sys(SYS_WRITE, (long)buf, n);
}

static uint64_t now(const struct wl *wl)
{
	return *wl->clock;
}

static uint64_t *page_ptr(const struct wl *wl, uint64_t p)
{
	return wl->mem + p * PAGE_WORDS;
}

static bool is_zero_page(const struct wl *wl, uint64_t p)
{
	return wl->zero_every && p % wl->zero_every == wl->zero_every - 1;
}

static uint64_t gen_of(const struct wl *wl, uint64_t p)
{
	return wl_gen_of(wl->w, wl->npages, p);
}

static uint64_t page_base(const struct wl *wl, uint64_t p, uint64_t gen)
{
	return wl_page_base(wl->seed, p, gen);
}

static void fill_page(struct wl *wl, uint64_t p, uint64_t gen)
{
	uint64_t *pg = page_ptr(wl, p);
	uint64_t v;
	unsigned int i;

	if (is_zero_page(wl, p)) {
		/* Written explicitly: the zeros must survive as data. */
		memset(pg, 0, PAGE_SIZE);
		return;
	}
	v = page_base(wl, p, gen);
	for (i = 0; i < PAGE_WORDS; i++, v += GOLDEN)
		pg[i] = v;
}

static void report_corrupt(struct wl *wl, uint64_t p, unsigned int word,
			   uint64_t got, uint64_t want)
{
	WRITE_ONCE(wl->corrupt, wl->corrupt + 1);
	if (wl->pass_reports >= MAX_REPORTS)
		return;
	wl->pass_reports++;
	say("WL CORRUPT page=%lu word=%u got=%016lx want=%016lx w=%lu cpu=%u",
	    p, word, got, want, wl->w, wl->cpu);
}

/* Only this CPU rewrites its pages: nothing changes p during the check. */
static void verify_page(struct wl *wl, uint64_t p)
{
	const uint64_t *pg = page_ptr(wl, p);
	uint64_t want = 0, step = 0;
	unsigned int i;

	if (!is_zero_page(wl, p)) {
		want = page_base(wl, p, gen_of(wl, p));
		step = GOLDEN;
	}
	for (i = 0; i < PAGE_WORDS; i++, want += step) {
		if (pg[i] != want) {
			report_corrupt(wl, p, i, pg[i], want);
			return;
		}
	}
}

/* Verify the next slice; true when that completed a full pass. */
static bool verify_slice(struct wl *wl)
{
	unsigned int n;

	for (n = 0; n < SLICE_PAGES; n++) {
		verify_page(wl, wl->vcursor);
		if (++wl->vcursor < wl->npages)
			continue;
		wl->vcursor = 0;
		wl->pass_reports = 0;
		WRITE_ONCE(wl->pass, wl->pass + 1);
		return true;
	}
	return false;
}

/* Rewrite number w; w and sum change inside the seqlock for the BSP. */
static void rewrite_one(struct wl *wl)
{
	uint64_t k = wl->w;

	fill_page(wl, k % wl->npages, k / wl->npages + 1);
	WRITE_ONCE(wl->seq, wl->seq + 1);
	barrier();
	WRITE_ONCE(wl->sum, wl_sum_next(wl->sum, k));
	WRITE_ONCE(wl->w, k + 1);
	barrier();
	WRITE_ONCE(wl->seq, wl->seq + 1);
}

/*
 * Token bucket on the tick counter: each tick adds rate_kbs credit, a page
 * costs PAGE_CREDIT, and credit is capped so a long gap does not turn into
 * a burst that starves verification.
 */
static void rewrite_burst(struct wl *wl)
{
	uint64_t t = now(wl), dt = t - wl->last_tick;

	wl->last_tick = t;
	if (dt > HZ)
		dt = HZ;
	wl->credit += dt * wl->rate_kbs;
	if (wl->credit > wl->credit_max)
		wl->credit = wl->credit_max;
	while (wl->credit >= PAGE_CREDIT) {
		rewrite_one(wl);
		wl->credit -= PAGE_CREDIT;
	}
}

static void maybe_self_corrupt(struct wl *wl)
{
	uint64_t p = wl->npages / 2;
	unsigned char *b;

	if (wl->corrupt_after < 0 ||
	    now(wl) - wl->ready_tick < (uint64_t)wl->corrupt_after)
		return;
	wl->corrupt_after = -1;
	while (p + 1 < wl->npages && is_zero_page(wl, p))
		p++;
	b = (unsigned char *)page_ptr(wl, p);
	b[5 * 8 + 3] ^= 0x5a;
	say("WL selftest corrupt page=%lu word=5 cpu=%u", p, wl->cpu);
}

static void setup(struct wl *wl)
{
	uint64_t p, pages_per_sec = wl->rate_kbs / (PAGE_SIZE / 1024);

	for (p = 0; p < wl->npages; p++)
		fill_page(wl, p, 0);
	wl->sum = wl->seed;
	/* Bursts of up to 1/8 s of rewrites, 8 to MAX_BURST pages. */
	wl->credit_max = pages_per_sec / 8;
	if (wl->credit_max < 8)
		wl->credit_max = 8;
	if (wl->credit_max > MAX_BURST)
		wl->credit_max = MAX_BURST;
	wl->credit_max *= PAGE_CREDIT;
}

/* A consistent (w, sum) of the AP's workload; tries bounded. */
static void ap_snapshot(const struct wl *ap, uint64_t *w, uint64_t *sum)
{
	unsigned int tries;
	uint64_t s;

	for (tries = 0; tries < 100000; tries++) {
		s = READ_ONCE(ap->seq);
		barrier();
		*w = READ_ONCE(ap->w);
		*sum = READ_ONCE(ap->sum);
		barrier();
		if (!(s & 1) && s == READ_ONCE(ap->seq))
			return;
	}
}

static void print_status(struct wl *wl)
{
	uint64_t t = now(wl), ap_w = 0, ap_sum = 0;
	char ap[160] = "";

	if (wl->ap) {
		ap_snapshot(wl->ap, &ap_w, &ap_sum);
		ksnprintf(ap, sizeof(ap),
			  " ap_pass=%lu ap_w=%lu ap_sum=%016lx ap_corrupt=%lu ap_ticks=%lu",
			  READ_ONCE(wl->ap->pass), ap_w, ap_sum,
			  READ_ONCE(wl->ap->corrupt), *wl->ap->irqs);
	}
	say("WL status pass=%lu w=%lu sum=%016lx pages=%lu corrupt=%lu t=%lu ticks=%lu cpus=%u%s",
	    wl->pass, wl->w, wl->sum, wl->npages, wl->corrupt,
	    (t - wl->start_tick) * (1000 / HZ), *wl->irqs, wl->ncpus, ap);
	wl->last_status_tick = t;
}

static void wait_ap_ready(struct wl *wl)
{
	uint64_t t0 = now(wl);

	while (!READ_ONCE(wl->ap->ready)) {
		if (now(wl) - t0 > AP_READY_WAIT) {
			say("WL error AP workload not ready");
			return;
		}
		sys(SYS_NAP, 0, 0);
	}
}

/* Verify, rewrite, report; the BSP also prints the status lines. */
static void __attribute__((noreturn)) run_loop(struct wl *wl, bool bsp)
{
	wl->ready_tick = wl->last_tick = wl->last_status_tick = now(wl);
	for (;;) {
		rewrite_burst(wl);
		maybe_self_corrupt(wl);
		if (verify_slice(wl)) {
			if (bsp && now(wl) - wl->last_status_tick >= STATUS_GAP)
				print_status(wl);
			if (wl->nap)
				sys(SYS_NAP, 0, 0);
		}
		if (bsp && now(wl) - wl->last_status_tick >= HZ)
			print_status(wl);
	}
}

void wl_run(struct wl *wl)
{
	if (wl->cpu) {
		setup(wl);
		WRITE_ONCE(wl->ready, true);
		run_loop(wl, false);
	}

	wl->start_tick = now(wl);
	if (wl->ap)
		say("WL start pages=%lu mb=%lu rate_kbs=%lu zero_every=%lu untouched_mb=0 seed=%lu cpus=%u ap_pages=%lu ap_seed=%lu",
		    wl->npages, wl->mb, wl->rate_kbs, wl->zero_every, wl->seed,
		    wl->ncpus, wl->ap->npages, wl->ap->seed);
	else
		say("WL start pages=%lu mb=%lu rate_kbs=%lu zero_every=%lu untouched_mb=0 seed=%lu cpus=%u",
		    wl->npages, wl->mb, wl->rate_kbs, wl->zero_every, wl->seed,
		    wl->ncpus);
	setup(wl);
	if (wl->ap)
		wait_ap_ready(wl);
	say("WL ready w=0 sum=%016lx", wl->sum);
	run_loop(wl, true);
}
