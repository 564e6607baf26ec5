// SPDX-License-Identifier: GPL-2.0
/*
 * What one syscall injected by rsys (criu-plugin/rsys.c) costs: a child
 * blocked in read() is seized and getpid() injected into it -n times
 * (default 5000); the mean is printed. Needs ptrace of a child.
 *
 *   bench_rsys [-n calls]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "../unit/helpers.h"
#include "log.h"
#include "rsys.h"

/* Echo every byte back; exit at EOF. */
static void child_main(int cmd, int rep, void *arg)
{
	char c;

	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while (read(cmd, &c, 1) == 1)
		if (write(rep, &c, 1) != 1)
			_exit(1);
	_exit(0);
}

int main(int argc, char **argv)
{
	struct th_child ch;
	int i, n = 5000, opt;
	const char *why;
	struct rsys r;
	double t0, us;
	char c = 'x';

	while ((opt = getopt(argc, argv, "n:")) != -1) {
		if (opt != 'n' || (n = atoi(optarg)) < 1) {
			fprintf(stderr, "usage: %s [-n calls]\n", argv[0]);
			return 1;
		}
	}
	why = th_need_ptrace();
	if (why) {
		printf("bench_rsys: not run, %s\n", why);
		return 0;
	}
	qp_log_set_level(LOG_WARN);
	TH_CHECK(th_child_start(&ch, child_main, NULL) == 0);
	/* One round trip: the child runs and goes back to its read(). */
	TH_CHECK(th_child_send(&ch, &c, 1) == 0);
	TH_CHECK(th_child_recv(&ch, &c, 1, 5000) == 0);

	TH_CHECK(rsys_seize(&r, ch.pid) == 0);
	t0 = now_ms();
	for (i = 0; i < n; i++)
		TH_CHECK(rsys_call(&r, SYS_getpid, 0, 0, 0, 0, 0, 0) == ch.pid);
	us = (now_ms() - t0) * 1e3 / n;
	TH_CHECK(rsys_detach(&r) == 0);
	printf("rsys: one injected syscall costs %.1f us (%d getpid calls)\n", us, n);

	/* The child still answers after we let go. */
	TH_CHECK(th_child_send(&ch, &c, 1) == 0);
	TH_CHECK(th_child_recv(&ch, &c, 1, 5000) == 0);
	TH_CHECK(th_child_end(&ch) == 0);
	return 0;
}
