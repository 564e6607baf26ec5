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

/* ------------------------------------------------------------ stat */

/* What callers read of /proc/PID/stat. */
struct proc_stat {
	char comm[64];			/* between the parentheses, spaces kept */
	char state;			/* 'R', 'S', 't', 'Z', ... */
	unsigned long flags;		/* PF_* (include/linux/sched.h) */
};

/* Parse a stat line (comm may hold spaces and parentheses). 0 or -EINVAL. */
int proc_stat_parse(const char *line, struct proc_stat *st);

/* /proc/PID/stat (tid 0) or /proc/PID/task/TID/stat. 0, -EIO or -errno. */
int proc_task_stat(pid_t pid, pid_t tid, struct proc_stat *st);

/* ------------------------------------------------------------ directories */

/*
 * The walks below call fn for each entry until fn returns non-zero and
 * return that, 0 when fn never did, or -errno when the directory cannot be
 * read. fn may return a negative errno to stop with an error.
 */

/* Each thread of pid (/proc/PID/task). */
int proc_task_for_each(pid_t pid, int (*fn)(pid_t tid, void *arg), void *arg);

/* Each process (the numeric entries of /proc). */
int proc_pid_for_each(int (*fn)(pid_t pid, void *arg), void *arg);

/*
 * Each open fd of pid with what its /proc/PID/fd link reads ("/dev/kvm",
 * "anon_inode:kvm-vm", "socket:[123]"); fds closed meanwhile are skipped.
 */
int proc_fd_for_each(pid_t pid, int (*fn)(int fd, const char *link, void *arg), void *arg);

/*
 * The target of /proc/PID/fd/FD or /proc/PID/exe, NUL-terminated, cut to
 * len - 1 bytes: its length, or -errno.
 */
ssize_t proc_fd_link(pid_t pid, int fd, char *buf, size_t len);
ssize_t proc_exe(pid_t pid, char *buf, size_t len);

/* Open /proc/PID/map_files/START-END with flags (O_CLOEXEC added): the fd, or -errno (errno kept). */
int proc_map_files_open(pid_t pid, uint64_t start, uint64_t end, int flags);

/* ------------------------------------------------------------ text files */

/*
 * fn for each line (its '\n' cut off) of /proc/PID/FILE ("net/unix",
 * "mountinfo", "cgroup"), as the walks above: fn's non-zero value, 0 at
 * the end, -errno when the file cannot be opened, -EIO on a read error.
 */
int proc_lines_for_each(pid_t pid, const char *file, int (*fn)(const char *line, void *arg),
			void *arg);

/* A socket of /proc/PID/net/unix. */
struct proc_unix {
	unsigned type;			/* SOCK_STREAM, SOCK_DGRAM, ... */
	unsigned state;			/* 1 unconnected, 2 connecting, 3 connected */
	char path[256];			/* its name ("" unnamed, "@..." abstract) */
};

/* Parse a net/unix line ("Num RefCount Protocol Flags Type St Inode [Path]"). 0, or -EINVAL (the header). */
int proc_unix_parse(const char *line, struct proc_unix *u);

/* A mount of /proc/PID/mountinfo (proc(5)). */
struct proc_mount {
	char point[512];		/* mount point */
	char fstype[64];		/* "cgroup2", "cgroup", "tmpfs" */
	char super[512];		/* super options: "rw,cpu,cpuacct" */
};

/* Parse a mountinfo line. 0, or -EINVAL. */
int proc_mountinfo_parse(const char *line, struct proc_mount *m);

/* A line of /proc/PID/cgroup: "ID:controllers:path". */
struct proc_cgroup {
	char controllers[256];		/* "" for cgroup2, "cpu,cpuacct", "name=systemd" */
	char path[PATH_MAX];		/* "/user.slice/..." */
};

/* Parse a cgroup line. 0, or -EINVAL. */
int proc_cgroup_parse(const char *line, struct proc_cgroup *c);

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

/* Open /proc/PID/mem for reading or writing, O_CLOEXEC. The fd, or -errno (errno kept). */
int proc_mem_open(pid_t pid, bool write);

/*
 * The entries of up to n pages from addr (page_size: the task's base page
 * size) into ent. Returns how many were read (fewer at the end of the
 * address space), -errno, or -EIO when none was.
 */
ssize_t proc_pagemap_read(int fd, uint64_t addr, uint64_t page_size, uint64_t *ent, size_t n);

#endif
