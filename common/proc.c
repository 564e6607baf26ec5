// SPDX-License-Identifier: GPL-2.0
/* The /proc parsers (see proc.h). */
#define LOG_PREFIX "proc: "

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

ssize_t proc_pagemap_read(int fd, uint64_t addr, uint64_t page_size, uint64_t *ent, size_t n)
{
	ssize_t got = pread(fd, ent, n * sizeof(*ent), addr / page_size * sizeof(*ent));

	if (got < 0)
		return -errno;
	if (got < (ssize_t)sizeof(*ent))
		return -EIO;
	return got / sizeof(*ent);
}
