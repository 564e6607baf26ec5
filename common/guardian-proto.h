/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Control channel between the plugin (inside CRIU) and the guardian: one
 * SOCK_SEQPACKET socketpair, fixed-size messages, the userfaultfd passed
 * with SCM_RIGHTS. Senders use MSG_NOSIGNAL: a dead peer is an error
 * return, never a SIGPIPE in CRIU.
 *
 *   plugin                          guardian
 *   HELLO (pid, timeout, image) ->
 *                               <-  HELLO_ACK (guardian pid, status)
 *   UFFD + fd                   ->
 *                               <-  UFFD_ACK (status)
 *   per range:
 *   PREPARE (block, off, len, tmp) ->   a registered empty VMA at tmp is
 *                                       about to be mremap'ed over the range
 *                               <-  PREPARE_ACK (status): the range is
 *                                   known; only now does the move start
 *   [mremap in the task: the guardian reads UFFD_EVENT_REMAP tmp -> addr]
 *   or, for a shared range (GP_RANGE_SHARED, tmp 0):
 *   PREPARE (block, off, len, addr) ->  the range itself is registered and
 *                                       about to be punched
 *   [madvise(MADV_REMOVE) in the task: the guardian reads UFFD_EVENT_REMOVE
 *    addr..addr+len, which is the placement, not a discard; the hole is
 *    punched only after that read]
 *   PLACED (block, off, len, addr)  ->  or PLACE_FAILED
 *   VERDICT_DONE / VERDICT_GIVE_BACK ->
 *                               <-  GAVE_BACK (if still connected)
 *
 * PREPARE is acked because the two channels are not ordered: one read() of
 * the userfaultfd takes every event queued by then, so a slow guardian can
 * read the REMAP or REMOVE of a range before the PREPARE sent ahead of it,
 * and then take a punch for a discard of the whole range. With the ack, no
 * such event exists before its PREPARE has been handled.
 *
 * The plugin binary and the guardian binary are installed side by side but
 * may come from different builds: every message carries magic + version.
 */
#ifndef CRIU_QEMU_GUARDIAN_PROTO_H
#define CRIU_QEMU_GUARDIAN_PROTO_H

#include <stdint.h>

#define GP_MAGIC	0x51475231u	/* "1RGQ" */
#define GP_VERSION	4	/* 2: GP_RANGE_SHARED, 3: gp_hello.flags, 4: PREPARE_ACK */
#define GP_NAME_MAX	64

/* Fds the guardian finds at exec time (stderr is its log). */
#define GP_FD_CTL	3
#define GP_FD_IMAGE	4
#define GP_FD_PIDFD	5

enum gp_type {
	GP_HELLO = 1,
	GP_HELLO_ACK,
	GP_UFFD,
	GP_UFFD_ACK,
	GP_PREPARE,
	GP_PLACED,
	GP_PLACE_FAILED,
	GP_VERDICT_DONE,
	GP_VERDICT_GIVE_BACK,
	GP_GAVE_BACK,
	GP_PREPARE_ACK,
};

#define GP_RANGE_THP	(1u << 0)	/* VMA had MADV_HUGEPAGE: collapse after give-back */
#define GP_RANGE_SHARED	(1u << 1)	/* MAP_SHARED shmem: placed by a punch, not an mremap */

struct gp_hello {
	uint32_t pid;			/* target, as the guardian's pidfd sees it */
	uint32_t nr_blocks;		/* image cross-check */
	uint32_t done_timeout_ms;	/* VERDICT_DONE: give back if still alive after this */
	uint32_t log_level;
	uint32_t flags;			/* GP_HELLO_* */
	char image[GP_NAME_MAX];	/* for the log only */
};

/*
 * Lazy restore: the task has never had these pages, so a chunk that fails
 * its checksum must never reach it (the task is killed instead), and a
 * fault gets a whole verified chunk, not one unverified page.
 */
#define GP_HELLO_STRICT	1

struct gp_range {
	uint32_t block;
	uint32_t flags;		/* GP_RANGE_* */
	uint64_t offset;	/* bytes into the block */
	uint64_t len;
	uint64_t tmp;		/* PREPARE: where the registered empty VMA is now (0: shared) */
	uint64_t addr;		/* host_addr + offset */
};

struct gp_gave_back {
	uint64_t pages_copied;
	uint64_t pages_skipped;	/* discarded by the task, or already faulted in */
	uint64_t ms;
};

struct gp_msg {
	uint32_t magic;
	uint16_t version;
	uint16_t type;		/* enum gp_type */
	int32_t status;		/* acks: 0 or -errno */
	uint32_t pid;		/* HELLO_ACK: the guardian's pid */
	union {
		struct gp_hello hello;
		struct gp_range range;
		struct gp_gave_back gave_back;
	};
};

const char *gp_type_name(unsigned type);

/* Send one message, with fd attached if fd >= 0. 0 or -errno (-EPIPE: peer gone). */
int gp_send(int sock, unsigned type, const struct gp_msg *body, int fd);

/*
 * Receive one message (blocking unless the socket is non-blocking). *fd
 * gets an attached fd (O_CLOEXEC) or -1; fd may be NULL when none is
 * expected (an unexpected one is closed). Returns 1, 0 on EOF, -EAGAIN,
 * -EPROTO on a malformed message, or -errno.
 */
int gp_recv(int sock, struct gp_msg *m, int *fd);

/* Wait up to timeout_ms for a message of type want; other types are -EPROTO. */
int gp_recv_type(int sock, unsigned want, struct gp_msg *m, int *fd, int timeout_ms);

#endif
