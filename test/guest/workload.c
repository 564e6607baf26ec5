// SPDX-License-Identifier: MIT
/*
 * workload - guest memory verification workload for criu-qemu tests.
 *
 * It owns NPAGES = mb * 256 pages of anonymous memory, rewrites them round
 * robin at a fixed rate and, in between, keeps verifying every page against
 * the content it must have.  Nothing about the expected content is stored:
 * it is derived from the single counter w, so a checkpoint/restore that
 * loses or mixes up any page (or the workload's own variables) is caught.
 *
 * All arithmetic is on uint64_t, i.e. modulo 2^64.
 *
 *   GOLDEN = 0x9E3779B97F4A7C15
 *   splitmix64(x):
 *       z = x + GOLDEN
 *       z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
 *       z = (z ^ (z >> 27)) * 0x94D049BB133111EB
 *       return z ^ (z >> 31)
 *
 * Rewrites: rewrite number k (0-based) rewrites page k % NPAGES.  After w
 * rewrites page p holds generation
 *       gen(p, w) = w / NPAGES + (p < w % NPAGES ? 1 : 0)
 * and initially (w = 0) every page holds generation 0.
 *
 * Page content (512 little-endian 64-bit words) of page p, generation g:
 *   - zero page (Z > 0 && p % Z == Z - 1), or a page discarded with the
 *     "discard" command: all words are 0.
 *   - otherwise word i (0..511) = base + i * GOLDEN, where
 *       base = splitmix64(splitmix64(seed) ^ (g << 32) ^ p)
 *     p < 2^32 and g < 2^32, and splitmix64 is a bijection, so different
 *     (p, g) always get different bases (not just with high probability).
 *
 * Running checksum: sum(0) = seed, and rewrite k does
 *       sum(k + 1) = splitmix64(sum(k) ^ k)
 * It depends only on (seed, w): a harness recomputes it from the w of a
 * status line.  w and sum live in guest memory like everything else, so a
 * restore that brings back w from one moment and sum from another shows.
 *
 * Rewrites of discarded pages write nothing but still count (w, sum).
 * See README.md for the status line and command protocol.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "wl-pattern.h"

#define PAGE_SIZE	4096u
#define PAGE_WORDS	(PAGE_SIZE / 8)
#define NSEC_PER_SEC	1000000000ull
#define NSEC_PER_MSEC	1000000ull
#define MAX_MB		(1ull << 20)	/* keeps page numbers below 2^32 */
#define MAX_DISCARDS	64
#define MAX_REPORTS	10		/* CORRUPT lines per pass */
#define SLICE_PAGES	32		/* pages verified between bursts */
#define MAX_BURST	4096		/* pages rewritten in one go, at most */

struct range {
	uint64_t start, end;		/* [start, end) in pages */
};

struct wl {
	/* options */
	uint64_t mb, rate_kbs, zero_every, untouched_mb, scratch_mb, seed;
	uint64_t status_ns;		/* --status-ms: a status line at least this often */
	int64_t corrupt_after_ms;	/* --self-test-corrupt, -1: never */

	/* memory */
	uint64_t *mem;
	uint64_t npages;
	uint64_t *marker;		/* the marker page, not one of npages */
	void *untouched;

	/* the whole state the expected content derives from */
	uint64_t w, sum;

	/* verification */
	uint64_t vcursor, pass, corrupt;
	uint64_t verified;		/* pages verified so far: the guest's work counter */
	unsigned int pass_reports;

	/* rate limiting: credit in pages, refilled from CLOCK_MONOTONIC */
	bool stopped;
	double credit, credit_max;
	uint64_t last_refill_ns;

	uint64_t start_ns, ready_ns, last_status_ns;

	struct range discards[MAX_DISCARDS];
	unsigned int ndiscards;

	bool stdin_open;
	char inbuf[256];
	size_t inlen;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/*
 * The guest clock may jump (even backwards) across checkpoint/restore, so
 * every interval is computed through here and never goes negative.
 */
static uint64_t elapsed_ns(uint64_t from, uint64_t to)
{
	return to > from ? to - from : 0;
}

/*
 * One write() per line: the console is a serial port shared with kernel
 * messages, and stdio buffering would hold lines back or split them.
 */
static void say(const char *fmt, ...)
{
	char buf[512];
	size_t len, off = 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	len = (size_t)n < sizeof(buf) - 1 ? (size_t)n : sizeof(buf) - 2;
	buf[len++] = '\n';

	while (off < len) {
		ssize_t r = write(STDOUT_FILENO, buf + off, len - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		off += (size_t)r;
	}
}

static uint64_t *page_ptr(struct wl *wl, uint64_t p)
{
	return wl->mem + p * PAGE_WORDS;
}

static bool is_discarded(const struct wl *wl, uint64_t p)
{
	unsigned int i;

	for (i = 0; i < wl->ndiscards; i++)
		if (p >= wl->discards[i].start && p < wl->discards[i].end)
			return true;
	return false;
}

static bool is_zero_page(const struct wl *wl, uint64_t p)
{
	return wl->zero_every && p % wl->zero_every == wl->zero_every - 1;
}

static bool expect_zero(const struct wl *wl, uint64_t p)
{
	return is_zero_page(wl, p) || is_discarded(wl, p);
}

static uint64_t gen_of(const struct wl *wl, uint64_t p)
{
	return wl_gen_of(wl->w, wl->npages, p);
}

static uint64_t page_base(const struct wl *wl, uint64_t p, uint64_t gen)
{
	return wl_page_base(wl->seed, p, gen);
}

/* Write generation gen into page p (discarded pages are left alone). */
static void fill_page(struct wl *wl, uint64_t p, uint64_t gen)
{
	uint64_t *pg = page_ptr(wl, p);
	uint64_t v;
	unsigned int i;

	if (is_discarded(wl, p))
		return;
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
	wl->corrupt++;
	if (wl->pass_reports >= MAX_REPORTS)
		return;
	wl->pass_reports++;
	say("WL CORRUPT page=%" PRIu64 " word=%u got=%016" PRIx64
	    " want=%016" PRIx64 " w=%" PRIu64, p, word, got, want, wl->w);
}

/*
 * Check page p against the generation implied by the current w.  Nothing
 * can rewrite the page between gen_of() and the compare: single thread.
 */
static void verify_page(struct wl *wl, uint64_t p)
{
	const uint64_t *pg = page_ptr(wl, p);
	uint64_t want = 0, step = 0;
	unsigned int i;

	if (!expect_zero(wl, p)) {
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

static void print_status(struct wl *wl, uint64_t now)
{
	say("WL status pass=%" PRIu64 " w=%" PRIu64 " sum=%016" PRIx64
	    " pages=%" PRIu64 " corrupt=%" PRIu64 " t=%" PRIu64 " v=%" PRIu64,
	    wl->pass, wl->w, wl->sum, wl->npages, wl->corrupt,
	    elapsed_ns(wl->start_ns, now) / NSEC_PER_MSEC, wl->verified);
	wl->last_status_ns = now;
}

static void verify_slice(struct wl *wl)
{
	unsigned int n;

	for (n = 0; n < SLICE_PAGES; n++) {
		verify_page(wl, wl->vcursor);
		wl->verified++;
		if (++wl->vcursor < wl->npages)
			continue;
		/* A full pass is done: report it and start over. */
		wl->vcursor = 0;
		wl->pass++;
		wl->pass_reports = 0;
		print_status(wl, now_ns());
	}
}

/* Rewrite number w: page w % npages gets its next generation. */
static void rewrite_one(struct wl *wl)
{
	uint64_t k = wl->w;

	fill_page(wl, k % wl->npages, k / wl->npages + 1);
	wl->sum = wl_sum_next(wl->sum, k);
	wl->w = k + 1;
}

/*
 * Token bucket: credit grows by rate pages per second and is capped, so a
 * long gap (a stopped VM, a clock jump after restore) does not turn into a
 * burst that starves verification.
 */
static void rewrite_burst(struct wl *wl, uint64_t now)
{
	uint64_t dt = elapsed_ns(wl->last_refill_ns, now);

	wl->last_refill_ns = now;
	if (wl->stopped) {
		wl->credit = 0;
		return;
	}
	wl->credit += (double)dt * (double)wl->rate_kbs /
		      (PAGE_SIZE / 1024) / NSEC_PER_SEC;
	if (wl->credit > wl->credit_max)
		wl->credit = wl->credit_max;
	while (wl->credit >= 1.0) {
		rewrite_one(wl);
		wl->credit -= 1.0;
	}
}

/* Flip one byte of page p behind the workload's back (self test). */
static void corrupt_page(struct wl *wl, uint64_t p, const char *why)
{
	unsigned char *b = (unsigned char *)page_ptr(wl, p);
	const unsigned int word = 5;

	b[word * 8 + 3] ^= 0x5a;
	say("WL %s page=%" PRIu64 " word=%u", why, p, word);
}

static void maybe_self_corrupt(struct wl *wl, uint64_t now)
{
	uint64_t p = wl->npages / 2;

	if (wl->corrupt_after_ms < 0 ||
	    elapsed_ns(wl->ready_ns, now) <
	    (uint64_t)wl->corrupt_after_ms * NSEC_PER_MSEC)
		return;
	wl->corrupt_after_ms = -1;
	/* Prefer a data page: a flipped byte there can never look valid. */
	while (p + 1 < wl->npages && expect_zero(wl, p))
		p++;
	corrupt_page(wl, p, "selftest corrupt");
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return !errno && *end == '\0';
}

static void cmd_discard(struct wl *wl, const char *a, const char *b)
{
	uint64_t start, end;

	if (!parse_u64(a, &start) || !parse_u64(b, &end) ||
	    start >= end || end > wl->npages) {
		say("WL error discard needs 0 <= A < B <= %" PRIu64, wl->npages);
		return;
	}
	if (wl->ndiscards == MAX_DISCARDS) {
		say("WL error too many discards");
		return;
	}
	if (madvise(page_ptr(wl, start), (end - start) * PAGE_SIZE,
		    MADV_DONTNEED)) {
		say("WL error madvise: %s", strerror(errno));
		return;
	}
	wl->discards[wl->ndiscards].start = start;
	wl->discards[wl->ndiscards].end = end;
	wl->ndiscards++;
	say("WL discarded %" PRIu64 " %" PRIu64, start, end);
}

static void run_command(struct wl *wl, char *line)
{
	char *argv[4] = { NULL };
	char *save = NULL;
	int argc = 0;
	uint64_t v;
	char *tok;

	for (tok = strtok_r(line, " \t\r", &save); tok && argc < 4;
	     tok = strtok_r(NULL, " \t\r", &save))
		argv[argc++] = tok;
	if (!argc)
		return;

	if (!strcmp(argv[0], "mark") && argc == 2 && parse_u64(argv[1], &v)) {
		wl->marker[0] = v;
		say("WL mark %" PRIu64, v);
	} else if (!strcmp(argv[0], "check") && argc == 1) {
		say("WL markval %" PRIu64, wl->marker[0]);
	} else if (!strcmp(argv[0], "stop") && argc == 1) {
		wl->stopped = true;
		say("WL stopped w=%" PRIu64, wl->w);
	} else if (!strcmp(argv[0], "go") && argc == 1) {
		wl->stopped = false;
		wl->credit = 0;
		wl->last_refill_ns = now_ns();
		say("WL going w=%" PRIu64, wl->w);
	} else if (!strcmp(argv[0], "discard") && argc == 3) {
		cmd_discard(wl, argv[1], argv[2]);
	} else if (!strcmp(argv[0], "corrupt") && argc == 2 &&
		   parse_u64(argv[1], &v) && v < wl->npages) {
		corrupt_page(wl, v, "corrupted");
	} else if (!strcmp(argv[0], "status") && argc == 1) {
		print_status(wl, now_ns());
	} else {
		say("WL error bad command: %s", argv[0]);
	}
}

/* Read whatever stdin has (never blocks) and run every complete line. */
static void poll_commands(struct wl *wl)
{
	struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
	char *nl;
	ssize_t r;

	if (!wl->stdin_open || poll(&pfd, 1, 0) <= 0)
		return;
	if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
		return;

	r = read(STDIN_FILENO, wl->inbuf + wl->inlen,
		 sizeof(wl->inbuf) - 1 - wl->inlen);
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0) {
		wl->stdin_open = false;	/* EOF: e.g. </dev/null on a host */
		return;
	}
	wl->inlen += (size_t)r;
	wl->inbuf[wl->inlen] = '\0';

	while ((nl = strchr(wl->inbuf, '\n'))) {
		size_t used = (size_t)(nl - wl->inbuf) + 1;

		*nl = '\0';
		run_command(wl, wl->inbuf);
		memmove(wl->inbuf, wl->inbuf + used, wl->inlen - used + 1);
		wl->inlen -= used;
	}
	if (wl->inlen == sizeof(wl->inbuf) - 1) {
		say("WL error command line too long");
		wl->inlen = 0;
	}
}

/*
 * On the serial console the tty would echo commands back into the middle
 * of our output lines; turn echo off (canonical line mode stays).
 */
static void quiet_tty(void)
{
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &t))
		return;		/* not a tty: a pipe on the host */
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	t.c_lflag |= ICANON;
	tcsetattr(STDIN_FILENO, TCSANOW, &t);
}

static void *map_anon(uint64_t bytes, int extra_flags)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);

	if (p == MAP_FAILED) {
		say("WL error mmap %" PRIu64 " bytes: %s", bytes,
		    strerror(errno));
		exit(1);
	}
	return p;
}

static void setup_memory(struct wl *wl)
{
	uint64_t p;

	wl->mem = map_anon(wl->npages * PAGE_SIZE, MAP_POPULATE);
	wl->marker = map_anon(PAGE_SIZE, MAP_POPULATE);
	if (wl->untouched_mb)
		wl->untouched = map_anon(wl->untouched_mb << 20,
					 MAP_NORESERVE);

	for (p = 0; p < wl->npages; p++)
		fill_page(wl, p, 0);
}

/*
 * Memory written and given back to the guest kernel before "ready": free
 * guest pages that still hold data on the host, which a balloon (or free
 * page reporting) then takes and QEMU discards.
 */
static void scratch_and_free(const struct wl *wl)
{
	uint64_t bytes = wl->scratch_mb << 20, i;
	uint64_t *p;

	if (!bytes)
		return;
	p = map_anon(bytes, 0);
	for (i = 0; i < bytes / 8; i += PAGE_WORDS)
		p[i] = GOLDEN ^ i;
	munmap(p, bytes);
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--mb N] [--rate KBS] [--zero-every Z]\n"
		"          [--untouched-mb U] [--scratch-mb S] [--seed S]\n"
		"          [--status-ms MS] [--self-test-corrupt[=SEC]]\n",
		argv0);
	exit(2);
}

static uint64_t opt_u64(const char *argv0, const char *arg)
{
	uint64_t v;

	if (!parse_u64(arg, &v))
		usage(argv0);
	return v;
}

static void parse_options(struct wl *wl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mb",			required_argument, NULL, 'm' },
		{ "rate",		required_argument, NULL, 'r' },
		{ "zero-every",		required_argument, NULL, 'z' },
		{ "untouched-mb",	required_argument, NULL, 'u' },
		{ "scratch-mb",		required_argument, NULL, 'S' },
		{ "seed",		required_argument, NULL, 's' },
		{ "status-ms",		required_argument, NULL, 'T' },
		{ "self-test-corrupt",	optional_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	wl->mb = 64;
	wl->rate_kbs = 1024;
	wl->zero_every = 16;
	wl->untouched_mb = 0;
	wl->seed = 1;
	wl->status_ns = NSEC_PER_SEC;
	wl->corrupt_after_ms = -1;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm': wl->mb = opt_u64(argv[0], optarg); break;
		case 'r': wl->rate_kbs = opt_u64(argv[0], optarg); break;
		case 'z': wl->zero_every = opt_u64(argv[0], optarg); break;
		case 'u': wl->untouched_mb = opt_u64(argv[0], optarg); break;
		case 'S': wl->scratch_mb = opt_u64(argv[0], optarg); break;
		case 's': wl->seed = opt_u64(argv[0], optarg); break;
		case 'T': wl->status_ns = opt_u64(argv[0], optarg) * NSEC_PER_MSEC; break;
		case 'C':
			wl->corrupt_after_ms = optarg ?
				(int64_t)(opt_u64(argv[0], optarg) * 1000) :
				1000;
			break;
		default:
			usage(argv[0]);
		}
	}
	if (optind != argc || !wl->mb || wl->mb > MAX_MB || !wl->status_ns ||
	    wl->untouched_mb > MAX_MB || wl->scratch_mb > MAX_MB)
		usage(argv[0]);
}

int main(int argc, char **argv)
{
	static struct wl wl;	/* static: zeroed, and off the small stack */
	uint64_t now, pages_per_sec;

	wl.start_ns = now_ns();
	parse_options(&wl, argc, argv);
	wl.npages = wl.mb * (1024 * 1024 / PAGE_SIZE);
	wl.stdin_open = true;
	quiet_tty();

	say("WL start pages=%" PRIu64 " mb=%" PRIu64 " rate_kbs=%" PRIu64
	    " zero_every=%" PRIu64 " untouched_mb=%" PRIu64 " seed=%" PRIu64,
	    wl.npages, wl.mb, wl.rate_kbs, wl.zero_every, wl.untouched_mb,
	    wl.seed);

	scratch_and_free(&wl);
	setup_memory(&wl);
	wl.sum = wl.seed;
	say("WL ready w=0 sum=%016" PRIx64, wl.sum);

	/*
	 * Bursts of up to 1/8 s worth of rewrites (8 to MAX_BURST pages):
	 * enough to keep the rate, small enough to keep verifying.
	 */
	pages_per_sec = wl.rate_kbs / (PAGE_SIZE / 1024);
	wl.credit_max = pages_per_sec / 8;
	if (wl.credit_max < 8)
		wl.credit_max = 8;
	if (wl.credit_max > MAX_BURST)
		wl.credit_max = MAX_BURST;
	wl.ready_ns = wl.last_refill_ns = wl.last_status_ns = now_ns();

	for (;;) {
		now = now_ns();
		rewrite_burst(&wl, now);
		maybe_self_corrupt(&wl, now);
		verify_slice(&wl);
		poll_commands(&wl);
		now = now_ns();
		if (elapsed_ns(wl.last_status_ns, now) >= wl.status_ns)
			print_status(&wl, now);
		/* Be a polite guest task; costs little next to a slice. */
		sched_yield();
	}
}
