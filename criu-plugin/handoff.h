/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The handoff: once guest RAM is in a complete, durable image, empty the
 * RAM ranges in the (ptrace-stopped) QEMU task so that CRIU's own dump
 * finds no pages there, with a guardian process holding the task's
 * userfaultfd so that no page is ever lost: it serves faults from the image
 * and gives everything back unless the task dies after a successful dump.
 *
 * Per VMA of a private block: an empty VMA is mapped elsewhere in the
 * task, gets the original madvise flags, is registered with the
 * userfaultfd, and is moved over the RAM range with one mremap(MREMAP_FIXED).
 * Per VMA of a shared (memfd, shared anonymous) block: the VMA itself is
 * registered, and the shmem object is punched with madvise(MADV_REMOVE).
 * See handoff.c and Documentation/design.md.
 */
#ifndef CRIU_QEMU_HANDOFF_H
#define CRIU_QEMU_HANDOFF_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fixedram.h"

struct rsys;
struct handoff;

/* What happens to the task after CRIU's exit hook. */
enum handoff_verdict {
	HANDOFF_GIVE_BACK = 0,	/* it runs again: dump failed, --leave-running, --leave-stopped */
	HANDOFF_DONE = 1,	/* dump succeeded and CRIU kills it */
};

/* Test hooks: where handoff_start() is. */
enum handoff_step {
	HANDOFF_STEP_UFFD_HELD,	/* the guardian holds the userfaultfd; nothing touched yet */
	HANDOFF_STEP_PREPARED,	/* segment registered (its empty VMA, or itself if shared) and
				   announced; mremap or punch next */
	HANDOFF_STEP_PLACED,	/* segment's range is empty in the task */
};

struct handoff_opts {
	const char *guardian;		/* NULL: $CRIU_QEMU_GUARDIAN, else next to the plugin */
	int log_dirfd;			/* guardian-<pid>.log goes there; < 0: our stderr */
	unsigned done_timeout_ms;	/* 0: the guardian's default (10 s) */
	unsigned log_level;		/* guardian's; 0: info (debug if CRIU logs debug) */
	bool strict;			/* lazy restore: GP_HELLO_STRICT */
	void (*hook)(void *arg, struct rsys *r, enum handoff_step step, unsigned seg);
	void *hook_arg;
};

/*
 * Before the image is written (the task frozen, nothing touched): may the
 * shared block at addr be handed over (a memfd or shared anonymous shmem
 * object, used by nobody else)? If so, every page of its file that QEMU
 * has not mapped is mapped now, so that the pagemap-driven writer sees it.
 * 0, or -errno with the reason logged: the block then stays with CRIU.
 */
int handoff_shared_prepare(pid_t pid, const char *name, uint64_t addr, uint64_t len, uint32_t page_size);

/*
 * Hand the 4 KiB-page private anonymous and shared blocks of img over (a
 * shared block that handoff_shared_prepare() would refuse, or whose file
 * holds data the image lacks, stays with CRIU). The caller is pid's tracer
 * and pid is in a ptrace-stop (CRIU's CHECKPOINT_DEVICES); it stays stopped.
 * img is complete (fr_finish) and img->fd open; name is the image's file
 * name, for the logs. On success *out is the handoff for handoff_finish().
 * On failure every page is back in the task (the guardian gave it back
 * before we return) and *out is NULL -- unless that could not be confirmed:
 * then *out is set too, the guardian still holds the pages and the image
 * must stay, and handoff_finish() must be called as usual.
 */
int handoff_start_opts(pid_t pid, const struct fr_image *img, const char *name,
		       const struct handoff_opts *o, struct handoff **out);

/* Defaults: log into CRIU's image directory. */
int handoff_start(pid_t pid, const struct fr_image *img, const char *name, struct handoff **out);

/* From the exit hook: tell the guardian, hang up, free h. Never blocks. */
void handoff_finish(struct handoff *h, enum handoff_verdict v);

/* The guardian's pid (for tests and logs). */
pid_t handoff_guardian_pid(const struct handoff *h);

#endif
