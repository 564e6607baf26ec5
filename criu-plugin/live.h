/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Live pre-dump of guest RAM: copy it while the VM runs, tracking writes
 * with userfaultfd asynchronous write-protection (no soft-dirty needed), so
 * that the freeze only has to copy what was written since the last pass.
 *
 * Calling sequence (the plugin):
 *   PAUSE_DEVICES (VM running, not traced by CRIU):
 *     live_start(), live_converge()
 *   CHECKPOINT_DEVICES (frozen, CRIU is the tracer):
 *     live_final(), live_stop(), fr_finish(), then the handoff
 *   on any failure: live_stop(), then a full ram_write_image() of the
 *   frozen task into the same image is correct.
 *   Exit paths must call live_stop() too; if CRIU dies, the kernel drops
 *   the registration with the last uffd reference.
 *
 * Private anonymous and shared (memfd, shared anonymous: shmem) blocks
 * with 4 KiB pages (what dump.c hands over; shared ones only when QEMU
 * alone maps them, so every write goes through QEMU's page tables).
 */
#ifndef CRIU_QEMU_LIVE_H
#define CRIU_QEMU_LIVE_H

#include <stdint.h>
#include <sys/types.h>

#include "fixedram.h"
#include "ram-io.h"

#define LIVE_DOWNTIME_MS	100
#define LIVE_MAX_PASSES		8
#define LIVE_MAX_MS		30000

struct live_opts {
	unsigned downtime_ms;	/* target for the final copy; 0: LIVE_DOWNTIME_MS */
	unsigned max_passes;	/* pass 1 included; 0: LIVE_MAX_PASSES */
	unsigned max_ms;	/* whole live phase; 0: LIVE_MAX_MS */
};

struct live_pass_stat {
	unsigned pass;		/* 1: the full copy */
	uint64_t pages;		/* written to since the last scan (pass 1: populated) */
	uint64_t bytes;		/* of those pages */
	uint64_t dropped;	/* pages that lost their data: discarded or zeroed */
	uint64_t written;	/* bytes written to the image */
	double ms;		/* scan + copy; live passes also fdatasync */
	double dirty_rate_mbs;	/* bytes / time since the previous scan (0 in pass 1) */
};

struct live_ctx;

/*
 * VM running, pid not traced: create a userfaultfd inside pid (the task is
 * stopped for a few injected syscalls only), keep a copy, close the task's,
 * register every block of img for asynchronous write-protection and
 * write-protect it. From then on the kernel tracks writes with no fault
 * delivered to anyone. img is laid out and created (fr_layout, fr_create)
 * and not yet written; it must outlive lc. io may be NULL (pass 1 uses it
 * all; later passes only its workers count, see live-patch.c).
 * Returns 0 or -errno (-EOPNOTSUPP: kernel or block type not supported).
 */
int live_start(pid_t pid, struct fr_image *img, const struct ram_io_opts *io,
	       struct live_ctx **out);

/*
 * One pass: the first writes every populated page (ram_write_image), later
 * ones the pages written since the previous pass, in place, and clear the
 * bits of pages discarded since. st may be NULL.
 */
int live_pass(struct live_ctx *lc, struct live_pass_stat *st);

/*
 * Passes until the last one's dirty set could be copied within downtime_ms,
 * the dirty set stops shrinking, or max_passes / max_ms is reached. Logs
 * every pass ("live pass N: ..."). o may be NULL.
 */
int live_converge(struct live_ctx *lc, const struct live_opts *o);

/*
 * Task frozen: copy what was written since the last pass and make the
 * bitmap exact (pages discarded since their copy lose their bit). Does not
 * call fr_finish(). st may be NULL.
 */
int live_final(struct live_ctx *lc, struct live_pass_stat *st);

/*
 * Remove the write-protection from every block and free lc; no uffd state
 * stays in the task. Safe on NULL, after any failure, and after the task
 * died.
 */
void live_stop(struct live_ctx *lc);

/* Passes done so far, and the last one's statistics (NULL-safe). */
unsigned live_passes(const struct live_ctx *lc, struct live_pass_stat *last);

#endif
