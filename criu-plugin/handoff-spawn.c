// SPDX-License-Identifier: GPL-2.0
/*
 * Start the guardian outside CRIU's process tree (common/detach.c). The
 * grandchild runs only raw system calls up to execve(): CRIU may have
 * other threads, and glibc's locks are not safe to use after a bare clone.
 */
#define LOG_PREFIX "handoff: "

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "detach.h"
#include "guardian-proto.h"
#include "handoff-spawn.h"
#include "log.h"
#include "uapi-compat.h"

#define GUARDIAN_NAME	"criu-qemu-guardian"
#define SPAWN_FD_MIN	16	/* sources are moved here before dup3 onto 0..5 */

extern char **environ;

int handoff_guardian_path(char *buf, size_t len)
{
	const char *env = getenv("CRIU_QEMU_GUARDIAN");
	const char *slash;
	Dl_info info;

	if (env && *env) {
		snprintf(buf, len, "%s", env);
	} else if (dladdr((void *)handoff_guardian_path, &info) && info.dli_fname) {
		slash = strrchr(info.dli_fname, '/');
		if (slash)
			snprintf(buf, len, "%.*s/" GUARDIAN_NAME, (int)(slash - info.dli_fname),
				 info.dli_fname);
		else
			snprintf(buf, len, "./" GUARDIAN_NAME);
	} else {
		pr_err("cannot tell where the plugin was loaded from\n");
		return -ENOENT;
	}
	if (access(buf, X_OK)) {
		pr_perror("guardian %s", buf);
		return -ENOENT;
	}
	return 0;
}

/* What the grandchild needs, prepared before any clone. */
struct plan {
	const char *path;
	char *argv[8];
	int src[6];		/* fd that becomes 0..5 */
	int moved[6];
};

static void __attribute__((noreturn)) exec_guardian(struct plan *p)
{
	int i;

	/* Two steps, so that no source is overwritten before it is copied. */
	for (i = 0; i < 6; i++) {
		p->moved[i] = syscall(SYS_fcntl, p->src[i], F_DUPFD, SPAWN_FD_MIN);
		if (p->moved[i] < 0)
			detach_raw_exit(126);
	}
	for (i = 0; i < 6; i++)
		if (syscall(SYS_dup3, p->moved[i], i, 0) < 0)
			detach_raw_exit(126);
	if (syscall(SYS_close_range, 6, ~0U, 0))
		for (i = 6; i < 4096; i++)	/* kernel < 5.9 */
			syscall(SYS_close, i);
	syscall(SYS_execve, p->path, p->argv, environ);
	detach_raw_exit(127);
}

/* The guardian in a session of its own, detached from CRIU's tree. */
static void start_guardian(void *arg)
{
	syscall(SYS_setsid);
	exec_guardian(arg);
}

static void make_plan(const struct handoff_spawn *s, int devnull, struct plan *p)
{
	static char ctl[] = "3", image[] = "4", pidfd[] = "5";

	memset(p, 0, sizeof(*p));
	p->path = s->path;
	p->argv[0] = (char *)s->path;
	p->argv[1] = "--ctl";
	p->argv[2] = ctl;
	p->argv[3] = "--image";
	p->argv[4] = image;
	p->argv[5] = "--pidfd";
	p->argv[6] = pidfd;
	p->src[0] = devnull;
	p->src[1] = devnull;	/* never hold CRIU's stdout: a caller may wait for its EOF */
	p->src[2] = s->log >= 0 ? s->log : STDERR_FILENO;
	p->src[GP_FD_CTL] = s->ctl;
	p->src[GP_FD_IMAGE] = s->image;
	p->src[GP_FD_PIDFD] = s->pidfd;
}

int handoff_spawn(const struct handoff_spawn *s)
{
	struct plan p;
	int devnull, ret;

	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0) {
		pr_perror("open /dev/null");
		return -errno;
	}
	make_plan(s, devnull, &p);
	/* The guardian unblocks the signals detach_run() blocks. */
	ret = detach_run(start_guardian, &p);
	close(devnull);
	if (ret)
		pr_err("cannot start the guardian: %s\n", strerror(-ret));
	return ret;
}
