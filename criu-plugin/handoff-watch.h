/* SPDX-License-Identifier: GPL-2.0 */
/*
 * While the handoff's injected mremap (or punch) runs, the task does not
 * return until someone reads the UFFD_EVENT_REMAP (REMOVE) it queues. That is the guardian; if it
 * dies meanwhile, the task and CRIU (waiting for the task) would hang, and
 * killing CRIU then would drop the registration over guest RAM. This
 * watcher thread reads the events itself once the guardian is gone.
 */
#ifndef CRIU_QEMU_HANDOFF_WATCH_H
#define CRIU_QEMU_HANDOFF_WATCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct handoff_watch {
	pthread_t thread;
	int stop;		/* eventfd */
	int sock;		/* control socket: POLLRDHUP when the guardian dies */
	int uffd;
	bool running;
	uint64_t events;	/* read on a dead guardian's behalf */
};

/* Start watching; on failure the handoff goes on unwatched (logged). */
void handoff_watch_start(struct handoff_watch *w, int sock, int uffd);

/* Stop and join. Returns true if the guardian died while watched. */
bool handoff_watch_stop(struct handoff_watch *w);

#endif
