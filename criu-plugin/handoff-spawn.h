/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Starting the guardian from inside CRIU: not as CRIU's child (CRIU's
 * SIGCHLD handler reaps any child during the parasite phase and exits), in
 * a session of its own, with exactly the fds it needs.
 */
#ifndef CRIU_QEMU_HANDOFF_SPAWN_H
#define CRIU_QEMU_HANDOFF_SPAWN_H

#include <stddef.h>

struct handoff_spawn {
	const char *path;	/* the guardian binary */
	int ctl;		/* the guardian's end of the control socket */
	int image;		/* the image, any mode */
	int pidfd;		/* of the task */
	int log;		/* becomes its stderr; -1: our stderr */
};

/*
 * $CRIU_QEMU_GUARDIAN, else criu-qemu-guardian next to the object this
 * code was loaded from (the plugin .so). 0 or -ENOENT (logged).
 */
int handoff_guardian_path(char *buf, size_t len);

/*
 * Double fork: a middle child (no exit signal, so CRIU never sees it) does
 * setsid and starts the guardian, then exits; we reap it. Returns 0 once
 * the guardian is forked; whether its exec worked shows on the control
 * socket (HELLO_ACK or EOF).
 */
int handoff_spawn(const struct handoff_spawn *s);

#endif
