// SPDX-License-Identifier: GPL-2.0
/*
 * Recognise QEMU processes. CRIU calls every installed plugin for every
 * process it dumps, so the negative answer must be cheap: a single readlink.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "detect.h"
#include "log.h"
#include "proc.h"

static bool qemu_exe_name_matches(const char *exe)
{
	const char *base = strrchr(exe, '/');

	base = base ? base + 1 : exe;
	return !strncmp(base, "qemu-system-", 12) || !strcmp(base, "qemu-kvm");
}

/* "-m 2G", "-m size=2G,maxmem=..." -> bytes */
static unsigned long long parse_mem_size(const char *arg)
{
	unsigned long long v;
	char *end;

	if (!strncmp(arg, "size=", 5))
		arg += 5;
	v = strtoull(arg, &end, 0);
	switch (*end) {
	case 'T': case 't': v <<= 10; /* fall through */
	case 'G': case 'g': v <<= 10; /* fall through */
	case 'M': case 'm': case 0: case ',': v <<= 10; /* fall through */
	case 'K': case 'k': v <<= 10; break;
	default: return 0;
	}
	/* A bare number is MiB in QEMU; suffix-less "B" does not exist. */
	return v;
}

/* "unix:/path,server=on,wait=off" or "unix:/path" -> /path */
static void parse_qmp_unix(struct qemu_proc *q, const char *arg)
{
	size_t n;

	if (strncmp(arg, "unix:", 5))
		return;
	arg += 5;
	n = strcspn(arg, ",");
	if (n >= sizeof(q->qmp_path))
		return;
	memcpy(q->qmp_path, arg, n);
	q->qmp_path[n] = 0;
}

void qemu_parse_cmdline(struct qemu_proc *q, const char *argv, size_t len)
{
	const char *end = argv + len, *arg, *next;

	for (arg = argv; arg < end; arg = next) {
		next = arg + strnlen(arg, end - arg) + 1;
		if (next >= end)
			break;
		if (!strcmp(arg, "-m"))
			q->mem_bytes = parse_mem_size(next);
		else if (!strcmp(arg, "-qmp") && !q->qmp_path[0])
			parse_qmp_unix(q, next);
	}
}

static int is_kvm_dev(int fd, const char *link, void *arg)
{
	(void)fd;
	(void)arg;
	return !strcmp(link, "/dev/kvm");
}

static bool has_kvm_fd(pid_t pid)
{
	return proc_fd_for_each(pid, is_kvm_dev, NULL) > 0;
}

int qemu_detect(pid_t pid, struct qemu_proc *q)
{
	static char cmdline[65536];
	ssize_t len, n;

	memset(q, 0, sizeof(*q));
	q->pid = pid;
	n = proc_exe(pid, q->exe, sizeof(q->exe));
	if (n < 0)
		return n;
	if (!qemu_exe_name_matches(q->exe))
		return 0;

	len = proc_cmdline(pid, cmdline, sizeof(cmdline));
	if (len < 0)
		return len;
	qemu_parse_cmdline(q, cmdline, len);
	q->kvm = has_kvm_fd(pid);
	return 1;
}
