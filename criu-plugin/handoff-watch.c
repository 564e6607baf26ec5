// SPDX-License-Identifier: GPL-2.0
/* Read userfaultfd events for a guardian that died during an mremap or punch. */
#define LOG_PREFIX "handoff: "

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <linux/userfaultfd.h>

#include "handoff-watch.h"
#include "log.h"

static void drain(struct handoff_watch *w)
{
	struct uffd_msg msgs[16];
	ssize_t n;

	ssize_t i;

	while ((n = read(w->uffd, msgs, sizeof(msgs))) > 0) {
		for (i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++)
			pr_debug("event %u read for a dead guardian\n", msgs[i].event);
		w->events += n / sizeof(msgs[0]);
	}
}

static void *watch(void *arg)
{
	struct handoff_watch *w = arg;
	struct pollfd p[3] = {
		{ .fd = w->stop, .events = POLLIN },
		{ .fd = w->sock, .events = POLLRDHUP },
		{ .fd = -1, .events = POLLIN },
	};

	for (;;) {
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents)
			break;
		if (p[1].revents) {
			/* The guardian is gone: become the reader of its events. */
			p[1].fd = -1;
			p[2].fd = w->uffd;
		}
		if (p[2].revents)
			drain(w);
	}
	return NULL;
}

void handoff_watch_start(struct handoff_watch *w, int sock, int uffd)
{
	sigset_t all, old;
	int ret;

	memset(w, 0, sizeof(*w));
	w->sock = sock;
	w->uffd = uffd;
	w->stop = eventfd(0, EFD_CLOEXEC);
	if (w->stop < 0) {
		pr_perror("eventfd");
		return;
	}
	/* CRIU's signal handlers stay on CRIU's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&w->thread, NULL, watch, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		pr_err("cannot start the guardian watcher\n");
		close(w->stop);
		return;
	}
	w->running = true;
}

bool handoff_watch_stop(struct handoff_watch *w)
{
	uint64_t one = 1;

	if (!w->running)
		return false;
	if (write(w->stop, &one, sizeof(one)) != sizeof(one))
		pr_perror("stopping the guardian watcher");
	pthread_join(w->thread, NULL);
	close(w->stop);
	w->running = false;
	if (w->events)
		pr_err("the guardian died during an mremap or punch; %llu events read in its place\n",
		       (unsigned long long)w->events);
	return w->events > 0;
}
