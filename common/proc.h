/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reading /proc of the tasks the plugin and the guardian work on: one
 * parser for each file. Nothing here logs; callers say what failed.
 * pid PROC_SELF stands for /proc/self.
 */
#ifndef CRIU_QEMU_PROC_H
#define CRIU_QEMU_PROC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define PROC_SELF 0

/*
 * The value of field `key` (e.g. "NSpid") in /proc/PID/status, without the
 * key, the colon and leading blanks, or the trailing newline. 0, -ENOENT (no
 * such field) or -errno.
 */
int proc_status_field(pid_t pid, const char *key, char *val, size_t len);

/* The same for field `key` (e.g. "Pid", "pos") of /proc/PID/fdinfo/FD. */
int proc_fdinfo_field(pid_t pid, int fd, const char *key, char *val, size_t len);

/*
 * /proc/PID/cmdline (argv, each NUL-terminated) into buf, cut at size - 1
 * bytes and NUL-terminated. Returns its length, or -errno.
 */
ssize_t proc_cmdline(pid_t pid, char *buf, size_t size);

/* ------------------------------------------------------------ maps, smaps */

/* One VMA: a line of /proc/PID/maps, or the header line of an smaps entry. */
struct proc_vma {
	uint64_t start, end;
	char perms[5];			/* "rw-p" */
	uint64_t offset;
	unsigned dev_major, dev_minor;
	uint64_t inode;
	/*
	 * "" for anonymous memory, else as the kernel prints it: "[heap]",
	 * "[anon:name]", "/memfd:ram (deleted)", spaces kept.
	 */
	char path[PATH_MAX];
};

/* An smaps entry: the VMA and the fields callers read. */
struct proc_smaps_vma {
	struct proc_vma vma;
	uint64_t shmem_pmd_kb;		/* ShmemPmdMapped */
	char vmflags[256];		/* "rd wr mr mw me ac ": two letters each (proc(5)) */
};

/* Parse one maps line (it may end in '\n'). 0, or -EINVAL if it is none. */
int proc_maps_parse(const char *line, struct proc_vma *v);

/* Is the two-letter flag (e.g. "um") among vmflags? */
bool proc_vmflag(const char *vmflags, const char *flag);

struct proc_maps {
	FILE *f;			/* rewind(f) reads the file again */
	char *line;			/* getline()'s buffer */
	size_t cap;
};

/* Open /proc/PID/maps (file "maps") or /proc/PID/smaps ("smaps"). 0 or -errno (errno kept). */
int proc_maps_open(struct proc_maps *m, pid_t pid, const char *file);
/* The same over text already open (unit tests: fmemopen); m takes f over. */
void proc_maps_init(struct proc_maps *m, FILE *f);
/*
 * The next VMA: 1, 0 at the end, -errno on a read error. Lines that are not
 * VMAs are skipped, so proc_maps_next() reads smaps headers too.
 * proc_smaps_next() returns each smaps entry at its VmFlags line (the last).
 */
int proc_maps_next(struct proc_maps *m, struct proc_vma *v);
int proc_smaps_next(struct proc_maps *m, struct proc_smaps_vma *s);
/* Close the file and free the buffer; safe on a zeroed struct and twice. */
void proc_maps_close(struct proc_maps *m);

/* ------------------------------------------------------------ pagemap */

/* Bits of a 64-bit /proc/PID/pagemap entry (Documentation/admin-guide/mm/pagemap.rst). */
#define PROC_PM_PRESENT	(1ULL << 63)
#define PROC_PM_SWAPPED	(1ULL << 62)

/* Open /proc/PID/pagemap read-only, O_CLOEXEC. The fd, or -errno (errno kept). */
int proc_pagemap_open(pid_t pid);

/*
 * The entries of up to n pages from addr (page_size: the task's base page
 * size) into ent. Returns how many were read (fewer at the end of the
 * address space), -errno, or -EIO when none was.
 */
ssize_t proc_pagemap_read(int fd, uint64_t addr, uint64_t page_size, uint64_t *ent, size_t n);

#endif
