// SPDX-License-Identifier: GPL-2.0
/* The /proc parsers (see proc.h). */
#define LOG_PREFIX "proc: "

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "proc.h"

static void proc_path(char *buf, size_t len, pid_t pid, const char *file)
{
	if (pid == PROC_SELF)
		snprintf(buf, len, "/proc/self/%s", file);
	else
		snprintf(buf, len, "/proc/%d/%s", pid, file);
}

/* "key:<blanks>value" lines, as in status and fdinfo. */
static int file_field(const char *path, const char *key, char *val, size_t len)
{
	size_t klen = strlen(key);
	char line[512];
	int ret = -ENOENT;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (ret && fgets(line, sizeof(line), f)) {
		const char *v = line + klen + 1;

		if (strncmp(line, key, klen) || line[klen] != ':')
			continue;
		v += strspn(v, " \t");
		snprintf(val, len, "%.*s", (int)strcspn(v, "\n"), v);
		ret = 0;
	}
	fclose(f);
	return ret;
}

int proc_status_field(pid_t pid, const char *key, char *val, size_t len)
{
	char path[64];

	proc_path(path, sizeof(path), pid, "status");
	return file_field(path, key, val, len);
}

int proc_fdinfo_field(pid_t pid, int fd, const char *key, char *val, size_t len)
{
	char path[64], name[32];

	snprintf(name, sizeof(name), "fdinfo/%d", fd);
	proc_path(path, sizeof(path), pid, name);
	return file_field(path, key, val, len);
}

ssize_t proc_cmdline(pid_t pid, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	proc_path(path, sizeof(path), pid, "cmdline");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread_full(fd, buf, size - 1, 0);
	close(fd);
	if (n >= 0)
		buf[n] = 0;
	return n;
}

/* ------------------------------------------------------------ stat */

/* "pid (comm) state ppid pgrp session tty_nr tpgid flags ..." */
int proc_stat_parse(const char *line, struct proc_stat *st)
{
	const char *open = strchr(line, '('), *close = strrchr(line, ')');
	unsigned long flags;
	char state;

	if (!open || !close || close < open)
		return -EINVAL;
	if (sscanf(close + 1, " %c %*d %*d %*d %*d %*d %lu", &state, &flags) != 2)
		return -EINVAL;
	snprintf(st->comm, sizeof(st->comm), "%.*s", (int)(close - open - 1), open + 1);
	st->state = state;
	st->flags = flags;
	return 0;
}

int proc_task_stat(pid_t pid, pid_t tid, struct proc_stat *st)
{
	char path[64], name[48], buf[1024];
	ssize_t n;
	int fd;

	if (tid)
		snprintf(name, sizeof(name), "task/%d/stat", tid);
	else
		snprintf(name, sizeof(name), "stat");
	proc_path(path, sizeof(path), pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread_full(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n <= 0)
		return n < 0 ? n : -EIO;
	buf[n] = 0;
	return proc_stat_parse(buf, st) ? -EIO : 0;
}

/* ------------------------------------------------------------ directories */

/* fn for each entry of dir whose name is a positive number. */
static int for_each_number(const char *dir, int (*fn)(pid_t n, void *arg), void *arg)
{
	struct dirent *de;
	int ret = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return -errno;
	while (!ret && (de = readdir(d))) {
		pid_t n = atoi(de->d_name);

		if (n > 0)
			ret = fn(n, arg);
	}
	closedir(d);
	return ret;
}

int proc_task_for_each(pid_t pid, int (*fn)(pid_t tid, void *arg), void *arg)
{
	char path[64];

	proc_path(path, sizeof(path), pid, "task");
	return for_each_number(path, fn, arg);
}

int proc_pid_for_each(int (*fn)(pid_t pid, void *arg), void *arg)
{
	return for_each_number("/proc", fn, arg);
}

int proc_fd_for_each(pid_t pid, int (*fn)(int fd, const char *link, void *arg), void *arg)
{
	char path[64], link[PATH_MAX];
	struct dirent *de;
	int ret = 0;
	DIR *d;

	proc_path(path, sizeof(path), pid, "fd");
	d = opendir(path);
	if (!d)
		return -errno;
	while (!ret && (de = readdir(d))) {
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (n <= 0)
			continue;	/* closed meanwhile */
		link[n] = 0;
		ret = fn(atoi(de->d_name), link, arg);
	}
	closedir(d);
	return ret;
}

static ssize_t read_link(const char *path, char *buf, size_t len)
{
	ssize_t n = readlink(path, buf, len - 1);

	if (n < 0)
		return -errno;
	buf[n] = 0;
	return n;
}

ssize_t proc_fd_link(pid_t pid, int fd, char *buf, size_t len)
{
	char path[64], name[32];

	snprintf(name, sizeof(name), "fd/%d", fd);
	proc_path(path, sizeof(path), pid, name);
	return read_link(path, buf, len);
}

ssize_t proc_exe(pid_t pid, char *buf, size_t len)
{
	char path[64];

	proc_path(path, sizeof(path), pid, "exe");
	return read_link(path, buf, len);
}

int proc_map_files_open(pid_t pid, uint64_t start, uint64_t end, int flags)
{
	char path[96], name[64];
	int fd;

	snprintf(name, sizeof(name), "map_files/%" PRIx64 "-%" PRIx64, start, end);
	proc_path(path, sizeof(path), pid, name);
	fd = open(path, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* ------------------------------------------------------------ text files */

int proc_lines_for_each(pid_t pid, const char *file, int (*fn)(const char *line, void *arg),
			void *arg)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int ret = 0;
	FILE *f;

	proc_path(path, sizeof(path), pid, file);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (!ret && (n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = 0;
		ret = fn(line, arg);
	}
	if (!ret && ferror(f))
		ret = -EIO;
	free(line);
	fclose(f);
	return ret;
}

int proc_unix_parse(const char *line, struct proc_unix *u)
{
	unsigned type, state;
	int off = 0;

	if (sscanf(line, "%*s %*s %*s %*x %x %x %*u %n", &type, &state, &off) != 2 || !off)
		return -EINVAL;
	u->type = type;
	u->state = state;
	snprintf(u->path, sizeof(u->path), "%.*s", (int)strcspn(line + off, "\n"), line + off);
	return 0;
}

/* "ID parent major:minor root point options [optional...] - fstype source super" */
int proc_mountinfo_parse(const char *line, struct proc_mount *m)
{
	const char *dash = strstr(line, " - ");

	if (!dash || sscanf(line, "%*s %*s %*s %*s %511s", m->point) != 1 ||
	    sscanf(dash + 3, "%63s %*s %511s", m->fstype, m->super) != 2)
		return -EINVAL;
	return 0;
}

int proc_cgroup_parse(const char *line, struct proc_cgroup *c)
{
	const char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

	if (!c2)
		return -EINVAL;
	snprintf(c->controllers, sizeof(c->controllers), "%.*s", (int)(c2 - c1 - 1), c1 + 1);
	snprintf(c->path, sizeof(c->path), "%.*s", (int)strcspn(c2 + 1, "\n"), c2 + 1);
	return 0;
}

/* ------------------------------------------------------------ maps, smaps */

/* "start-end perms offset major:minor inode<blanks>path", path optional. */
int proc_maps_parse(const char *line, struct proc_vma *v)
{
	uint64_t start, end, offset, inode;
	unsigned major, minor;
	char perms[5];
	const char *path;
	int n = 0;

	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 "%n", &start, &end,
		   perms, &offset, &major, &minor, &inode, &n) != 7 || !n)
		return -EINVAL;
	path = line + n + strspn(line + n, " \t");
	v->start = start;
	v->end = end;
	memcpy(v->perms, perms, sizeof(perms));
	v->offset = offset;
	v->dev_major = major;
	v->dev_minor = minor;
	v->inode = inode;
	snprintf(v->path, sizeof(v->path), "%.*s", (int)strcspn(path, "\n"), path);
	return 0;
}

bool proc_vmflag(const char *vmflags, const char *flag)
{
	char tok[4];
	int off = 0, n;

	while (sscanf(vmflags + off, "%3s%n", tok, &n) == 1) {
		if (!strcmp(tok, flag))
			return true;
		off += n;
	}
	return false;
}

void proc_maps_init(struct proc_maps *m, FILE *f)
{
	m->f = f;
	m->line = NULL;
	m->cap = 0;
}

int proc_maps_open(struct proc_maps *m, pid_t pid, const char *file)
{
	char path[64];
	FILE *f;

	proc_path(path, sizeof(path), pid, file);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	proc_maps_init(m, f);
	return 0;
}

static int read_end(struct proc_maps *m)
{
	return ferror(m->f) ? -EIO : 0;
}

int proc_maps_next(struct proc_maps *m, struct proc_vma *v)
{
	while (getline(&m->line, &m->cap, m->f) > 0)
		if (!proc_maps_parse(m->line, v))
			return 1;
	return read_end(m);
}

int proc_smaps_next(struct proc_maps *m, struct proc_smaps_vma *s)
{
	bool in_vma = false;
	const char *flags;

	while (getline(&m->line, &m->cap, m->f) > 0) {
		if (!proc_maps_parse(m->line, &s->vma)) {
			s->shmem_pmd_kb = 0;
			s->vmflags[0] = 0;
			in_vma = true;
			continue;
		}
		if (!in_vma)
			continue;
		if (sscanf(m->line, "ShmemPmdMapped: %" SCNu64, &s->shmem_pmd_kb) == 1)
			continue;
		if (strncmp(m->line, "VmFlags:", 8))
			continue;
		flags = m->line + 8 + strspn(m->line + 8, " \t");
		snprintf(s->vmflags, sizeof(s->vmflags), "%.*s", (int)strcspn(flags, "\n"), flags);
		return 1;
	}
	return read_end(m);
}

void proc_maps_close(struct proc_maps *m)
{
	if (m->f)
		fclose(m->f);
	free(m->line);
	m->f = NULL;
	m->line = NULL;
	m->cap = 0;
}

/* ------------------------------------------------------------ pagemap */

int proc_pagemap_open(pid_t pid)
{
	char path[64];
	int fd;

	proc_path(path, sizeof(path), pid, "pagemap");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int proc_mem_open(pid_t pid, bool write)
{
	char path[64];
	int fd;

	proc_path(path, sizeof(path), pid, "mem");
	fd = open(path, (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

ssize_t proc_pagemap_read(int fd, uint64_t addr, uint64_t page_size, uint64_t *ent, size_t n)
{
	ssize_t got = pread(fd, ent, n * sizeof(*ent), addr / page_size * sizeof(*ent));

	if (got < 0)
		return -errno;
	if (got < (ssize_t)sizeof(*ent))
		return -EIO;
	return got / sizeof(*ent);
}
