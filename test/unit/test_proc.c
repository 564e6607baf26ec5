// SPDX-License-Identifier: GPL-2.0
/*
 * The /proc parsers: maps and smaps on fixture text (fmemopen) and on the
 * test's own /proc/self, status, fdinfo, cmdline and pagemap of the test
 * itself; stat, net/unix, mountinfo and cgroup lines on fixture text and
 * on our own files; the task, process and fd walks, fd and exe links and
 * map_files. Needs no root (pagemap hides only the PFNs from us; map_files
 * is checked to refuse us then).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <cmocka.h>

#include "proc.h"

static char **test_argv;

static void test_fields(void **state)
{
	char v[256];

	(void)state;
	assert_int_equal(proc_status_field(getpid(), "Pid", v, sizeof(v)), 0);
	assert_int_equal(atoi(v), getpid());
	assert_int_equal(proc_status_field(getpid(), "NSpid", v, sizeof(v)), 0);
	assert_null(strchr(v, '\n'));
	/* "Pid" must not match "PPid" or "TracerPid", nor a prefix of a key. */
	assert_int_equal(proc_status_field(getpid(), "PPid", v, sizeof(v)), 0);
	assert_int_equal(atoi(v), getppid());
	assert_int_equal(proc_status_field(getpid(), "Pi", v, sizeof(v)), -ENOENT);
	assert_int_equal(proc_status_field(getpid(), "No_such_field", v, sizeof(v)), -ENOENT);
	assert_int_equal(proc_status_field(-1, "Pid", v, sizeof(v)), -ENOENT);
	assert_int_equal(proc_status_field(PROC_SELF, "Pid", v, sizeof(v)), 0);
	assert_int_equal(atoi(v), getpid());
}

/* ------------------------------------------------------------ maps lines */

static struct proc_vma parse_ok(const char *line)
{
	struct proc_vma v;

	memset(&v, 0xa5, sizeof(v));
	assert_int_equal(proc_maps_parse(line, &v), 0);
	return v;
}

static void test_maps_file(void **state)
{
	struct proc_vma v;

	(void)state;
	v = parse_ok("55ca345e5000-55ca345eb000 r-xp 00002000 fe:01 247498                     /usr/bin/head\n");
	assert_int_equal(v.start, 0x55ca345e5000ULL);
	assert_int_equal(v.end, 0x55ca345eb000ULL);
	assert_string_equal(v.perms, "r-xp");
	assert_int_equal(v.offset, 0x2000);
	assert_int_equal(v.dev_major, 0xfe);
	assert_int_equal(v.dev_minor, 1);
	assert_int_equal(v.inode, 247498);
	assert_string_equal(v.path, "/usr/bin/head");
	/* Without the newline (a line cut out of a text), the same. */
	v = parse_ok("55ca345e5000-55ca345eb000 r-xp 00002000 fe:01 247498 /usr/bin/head");
	assert_string_equal(v.path, "/usr/bin/head");
}

static void test_maps_anonymous(void **state)
{
	struct proc_vma v;

	(void)state;
	/* The kernel ends an anonymous line with "0 ". */
	v = parse_ok("7fb08caec000-7fb08caef000 rw-p 00000000 00:00 0 \n");
	assert_string_equal(v.perms, "rw-p");
	assert_int_equal(v.inode, 0);
	assert_int_equal(v.dev_major, 0);
	assert_string_equal(v.path, "");
	v = parse_ok("7fb08caec000-7fb08caef000 rw-s 00000000 00:01 1025\n");
	assert_string_equal(v.perms, "rw-s");
	assert_int_equal(v.inode, 1025);
	assert_string_equal(v.path, "");
	v = parse_ok("7fb08caec000-7fb08caef000 ---p 00000000 00:00 0");
	assert_string_equal(v.path, "");
}

static void test_maps_named(void **state)
{
	(void)state;
	assert_string_equal(parse_ok("55ce399e7000-55ce399f7000 rw-p 00000000 00:00 0          [heap]\n").path,
			    "[heap]");
	assert_string_equal(parse_ok("7ffd1e9f0000-7ffd1ea11000 rw-p 00000000 00:00 0   [stack]\n").path,
			    "[stack]");
	assert_string_equal(parse_ok("7f0000000000-7f0040000000 rw-p 00000000 00:00 0 [anon:guest ram]\n").path,
			    "[anon:guest ram]");
	assert_string_equal(parse_ok("7fff5a1d3000-7fff5a1d5000 r-xp 00000000 00:00 0 [vdso]\n").path, "[vdso]");
}

static void test_maps_deleted_and_spaces(void **state)
{
	struct proc_vma v;

	(void)state;
	v = parse_ok("7f0000000000-7f0040000000 rw-s 00000000 00:01 77 /memfd:pc.ram (deleted)\n");
	assert_int_equal(v.dev_minor, 1);
	assert_int_equal(v.inode, 77);
	assert_string_equal(v.path, "/memfd:pc.ram (deleted)");
	v = parse_ok("7f0000000000-7f0000001000 r--p 00001000 08:02 12 /tmp/a dir/with  two spaces\n");
	assert_int_equal(v.offset, 0x1000);
	assert_string_equal(v.path, "/tmp/a dir/with  two spaces");
	v = parse_ok("7f0000000000-7f0000001000 rw-s 00000000 00:05 9\t/dev/zero (deleted)\n");
	assert_string_equal(v.path, "/dev/zero (deleted)");
}

static void test_maps_huge_numbers(void **state)
{
	struct proc_vma v;

	(void)state;
	v = parse_ok("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n");
	assert_int_equal(v.start, 0xffffffffff600000ULL);
	assert_int_equal(v.end, 0xffffffffff601000ULL);
	assert_string_equal(v.perms, "--xp");
	assert_string_equal(v.path, "[vsyscall]");
	v = parse_ok("7ffffffff000-800000000000 rw-p fffffffffffff000 103:1f 18446744073709551615 /x\n");
	assert_int_equal(v.end, 0x800000000000ULL);
	assert_int_equal(v.offset, 0xfffffffffffff000ULL);
	assert_int_equal(v.dev_major, 0x103);
	assert_int_equal(v.dev_minor, 0x1f);
	assert_int_equal(v.inode, UINT64_MAX);
}

static void test_maps_not_a_line(void **state)
{
	struct proc_vma v;

	(void)state;
	v.start = 42;
	assert_int_equal(proc_maps_parse("", &v), -EINVAL);
	assert_int_equal(proc_maps_parse("\n", &v), -EINVAL);
	/* smaps field lines: "AnonHugePages" begins like a hex number. */
	assert_int_equal(proc_maps_parse("AnonHugePages:         0 kB\n", &v), -EINVAL);
	assert_int_equal(proc_maps_parse("Size:                  4 kB\n", &v), -EINVAL);
	assert_int_equal(proc_maps_parse("VmFlags: rd wr mr mw me ac sd \n", &v), -EINVAL);
	assert_int_equal(proc_maps_parse("7f0000000000-7f0040000000 rw-p 00000000 00:00\n", &v), -EINVAL);
	assert_int_equal(proc_maps_parse("7f0000000000-7f0040000000 rw-p\n", &v), -EINVAL);
	assert_int_equal(v.start, 42);	/* left alone */
}

/* ------------------------------------------------------------ iterators on fixtures */

static void open_text(struct proc_maps *m, const char *text)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");

	assert_non_null(f);
	proc_maps_init(m, f);
}

static void test_maps_iterator(void **state)
{
	static const char maps[] =
		"00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/qemu system\n"
		"not a maps line\n"
		"7f0000000000-7f0040000000 rw-p 00000000 00:00 0 \n"
		"7f0040000000-7f0040001000 rw-s 00000000 00:01 77 /memfd:mem0 (deleted)\n";
	struct proc_vma v;
	struct proc_maps m;

	(void)state;
	open_text(&m, maps);
	assert_int_equal(proc_maps_next(&m, &v), 1);
	assert_string_equal(v.path, "/usr/bin/qemu system");
	assert_int_equal(proc_maps_next(&m, &v), 1);
	assert_int_equal(v.start, 0x7f0000000000ULL);
	assert_string_equal(v.path, "");
	assert_int_equal(proc_maps_next(&m, &v), 1);
	assert_string_equal(v.path, "/memfd:mem0 (deleted)");
	assert_int_equal(proc_maps_next(&m, &v), 0);
	assert_int_equal(proc_maps_next(&m, &v), 0);
	/* Read once more from the start. */
	rewind(m.f);
	assert_int_equal(proc_maps_next(&m, &v), 1);
	assert_int_equal(v.start, 0x400000);
	proc_maps_close(&m);
	proc_maps_close(&m);
}

static const char smaps_text[] =
	"7f0000000000-7f0040000000 rw-p 00000000 00:00 0 \n"
	"Size:            1048576 kB\n"
	"AnonHugePages:    514048 kB\n"
	"ShmemPmdMapped:        0 kB\n"
	"VmFlags: rd wr mr mw me ac hg dc \n"
	"7f0040000000-7f0080000000 rw-s 00000000 00:01 77                         /memfd:m (deleted)\n"
	"Size:            1048576 kB\n"
	"ShmemPmdMapped:     2048 kB\n"
	"VmFlags: rd wr sh mr mw me ms um\n"
	"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]\n"
	"Size:                  4 kB\n"
	"VmFlags: ex \n";

static void test_smaps_iterator(void **state)
{
	struct proc_smaps_vma s;
	struct proc_maps m;

	(void)state;
	open_text(&m, smaps_text);
	assert_int_equal(proc_smaps_next(&m, &s), 1);
	assert_int_equal(s.vma.start, 0x7f0000000000ULL);
	assert_string_equal(s.vma.path, "");
	assert_int_equal(s.shmem_pmd_kb, 0);
	assert_string_equal(s.vmflags, "rd wr mr mw me ac hg dc ");
	assert_true(proc_vmflag(s.vmflags, "hg"));
	assert_true(proc_vmflag(s.vmflags, "dc"));
	assert_false(proc_vmflag(s.vmflags, "um"));
	assert_int_equal(proc_smaps_next(&m, &s), 1);
	assert_string_equal(s.vma.perms, "rw-s");
	assert_int_equal(s.vma.inode, 77);
	assert_string_equal(s.vma.path, "/memfd:m (deleted)");
	assert_int_equal(s.shmem_pmd_kb, 2048);
	assert_true(proc_vmflag(s.vmflags, "um"));	/* the last flag, no blank after it */
	assert_true(proc_vmflag(s.vmflags, "sh"));
	assert_int_equal(proc_smaps_next(&m, &s), 1);
	assert_int_equal(s.vma.start, 0xffffffffff600000ULL);
	assert_int_equal(s.shmem_pmd_kb, 0);	/* not the last entry's */
	assert_string_equal(s.vmflags, "ex ");
	assert_int_equal(proc_smaps_next(&m, &s), 0);
	proc_maps_close(&m);

	/* proc_maps_next() skips the field lines. */
	open_text(&m, smaps_text);
	assert_int_equal(proc_maps_next(&m, &s.vma), 1);
	assert_int_equal(proc_maps_next(&m, &s.vma), 1);
	assert_int_equal(proc_maps_next(&m, &s.vma), 1);
	assert_string_equal(s.vma.path, "[vsyscall]");
	assert_int_equal(proc_maps_next(&m, &s.vma), 0);
	proc_maps_close(&m);
}

static void test_vmflag_tokens(void **state)
{
	(void)state;
	assert_true(proc_vmflag("rd wr", "rd"));
	assert_true(proc_vmflag("rd wr", "wr"));
	assert_false(proc_vmflag("rd wr", "r"));
	assert_false(proc_vmflag("rd wr", "d "));
	assert_false(proc_vmflag("", "rd"));
}

/* ------------------------------------------------------------ the test itself */

/* A page of our own with flags we set: anonymous, private, "dc". */
static void test_maps_self(void **state)
{
	long ps = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, 3 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t code = (uintptr_t)&test_maps_self;
	struct proc_smaps_vma s;
	struct proc_vma v;
	struct proc_maps m;
	char exe[PATH_MAX] = "";
	bool found = false;

	(void)state;
	assert_true(readlink("/proc/self/exe", exe, sizeof(exe) - 1) > 0);
	assert_true(p != MAP_FAILED);
	/* Its own VMA: the middle page, set apart by the advice. */
	assert_int_equal(madvise(p + ps, ps, MADV_DONTFORK), 0);

	assert_int_equal(proc_maps_open(&m, PROC_SELF, "smaps"), 0);
	while (!found && proc_smaps_next(&m, &s) > 0)
		found = s.vma.start == (uintptr_t)p + ps;
	proc_maps_close(&m);
	assert_true(found);
	assert_int_equal(s.vma.end, (uintptr_t)p + 2 * ps);
	assert_string_equal(s.vma.perms, "rw-p");
	assert_int_equal(s.vma.inode, 0);
	assert_string_equal(s.vma.path, "");
	assert_true(proc_vmflag(s.vmflags, "dc"));
	assert_true(proc_vmflag(s.vmflags, "rd"));
	assert_true(proc_vmflag(s.vmflags, "wr"));

	/* Our code is a file mapping of the test binary. */
	found = false;
	assert_int_equal(proc_maps_open(&m, getpid(), "maps"), 0);
	while (!found && proc_maps_next(&m, &v) > 0)
		found = code >= v.start && code < v.end;
	proc_maps_close(&m);
	assert_true(found);
	assert_int_equal(v.perms[2], 'x');
	assert_string_equal(v.path, exe);
	assert_true(v.inode != 0);
	munmap(p, 3 * ps);
}

static void test_cmdline_self(void **state)
{
	char self[4096], mine[4096], small[4];
	ssize_t n;

	(void)state;
	n = proc_cmdline(PROC_SELF, self, sizeof(self));
	assert_true(n > 0);
	assert_string_equal(self, test_argv[0]);
	assert_int_equal(self[n - 1], 0);	/* each argument NUL-terminated */
	assert_int_equal(proc_cmdline(getpid(), mine, sizeof(mine)), n);
	assert_memory_equal(self, mine, n);
	/* Cut to fit, still terminated. */
	assert_int_equal(proc_cmdline(PROC_SELF, small, sizeof(small)), 3);
	assert_int_equal(small[3], 0);
	assert_memory_equal(small, test_argv[0], 3);
}

static void test_fdinfo_field(void **state)
{
	char v[64];
	int fd;

	(void)state;
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 123, SEEK_SET), 123);
	assert_int_equal(proc_fdinfo_field(PROC_SELF, fd, "pos", v, sizeof(v)), 0);
	assert_string_equal(v, "123");
	assert_int_equal(proc_fdinfo_field(getpid(), fd, "pos", v, sizeof(v)), 0);
	assert_string_equal(v, "123");
	assert_int_equal(proc_fdinfo_field(PROC_SELF, fd, "flags", v, sizeof(v)), 0);
	assert_true(strtoul(v, NULL, 8) & O_CLOEXEC);
	assert_int_equal(proc_fdinfo_field(PROC_SELF, fd, "po", v, sizeof(v)), -ENOENT);
	assert_int_equal(proc_fdinfo_field(PROC_SELF, fd, "No_such_field", v, sizeof(v)), -ENOENT);
	close(fd);
	assert_int_equal(proc_fdinfo_field(PROC_SELF, fd, "pos", v, sizeof(v)), -ENOENT);
}

/* Present bits of our own pages: one touched, one never. */
static void test_pagemap_self(void **state)
{
	long ps = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t ent[2];
	int fd;

	(void)state;
	assert_true(p != MAP_FAILED);
	p[0] = 1;
	fd = proc_pagemap_open(PROC_SELF);
	assert_true(fd >= 0);
	assert_int_equal(proc_pagemap_read(fd, (uintptr_t)p, ps, ent, 2), 2);
	assert_true(ent[0] & PROC_PM_PRESENT);
	assert_false(ent[1] & (PROC_PM_PRESENT | PROC_PM_SWAPPED));
	/* One entry from the second page on. */
	assert_int_equal(proc_pagemap_read(fd, (uintptr_t)p + ps, ps, ent, 1), 1);
	assert_false(ent[0] & PROC_PM_PRESENT);
	/* Nothing past the end of the address space. */
	assert_int_equal(proc_pagemap_read(fd, UINT64_MAX & ~(uint64_t)(ps - 1), ps, ent, 2), -EIO);
	close(fd);
	assert_int_equal(proc_pagemap_read(fd, (uintptr_t)p, ps, ent, 1), -EBADF);
	munmap(p, 2 * ps);
}

/* ------------------------------------------------------------ stat */

static void test_stat_parse(void **state)
{
	struct proc_stat st;

	(void)state;
	/* comm may hold spaces and ')': the last ')' ends it. */
	assert_int_equal(proc_stat_parse("4242 (kvm-nx (lpage) x) S 1 4242 4242 0 -1 "
					 "2146368 12 0 0 0 1 2 0 0 20 0 1 0 77\n", &st), 0);
	assert_string_equal(st.comm, "kvm-nx (lpage) x");
	assert_int_equal(st.state, 'S');
	assert_int_equal(st.flags, 0x20c040);	/* PF_USER_WORKER (0x4000) among them */
	assert_int_equal(proc_stat_parse("1 (init) Z 0 1 1 0 -1 4194560", &st), 0);
	assert_int_equal(st.state, 'Z');
	assert_int_equal(st.flags, 4194560);
	/* Cut before the flags, or no comm at all. */
	assert_int_equal(proc_stat_parse("1 (init) S 0 1 1", &st), -EINVAL);
	assert_int_equal(proc_stat_parse("1 init S 0 1 1 0 -1 4194560", &st), -EINVAL);
	assert_int_equal(proc_stat_parse("1 )init( S 0 1 1 0 -1 4194560", &st), -EINVAL);
}

static void *park(void *arg)
{
	int *fd = arg;
	char c;

	(void)!read(fd[0], &c, 1);	/* until the test closes the pipe */
	return NULL;
}

struct tids {
	pid_t want;
	int n, seen;
};

static int note_tid(pid_t tid, void *arg)
{
	struct tids *t = arg;

	t->n++;
	t->seen += tid == t->want;
	return 0;
}

static int stop_at_second(pid_t tid, void *arg)
{
	return ++*(int *)arg == 2 ? tid : 0;
}

static void test_task_stat_and_walk(void **state)
{
	struct tids t = { 0 };
	struct proc_stat st;
	pthread_t th;
	int fd[2], n = 0;
	pid_t tid;

	(void)state;
	assert_int_equal(proc_task_stat(PROC_SELF, 0, &st), 0);
	assert_int_equal(st.state, 'R');
	assert_string_equal(st.comm, "test_proc");
	assert_int_equal(pipe(fd), 0);
	assert_int_equal(pthread_create(&th, NULL, park, fd), 0);
	/* Both threads, the second found by its tid. */
	t.want = getpid();
	assert_int_equal(proc_task_for_each(getpid(), note_tid, &t), 0);
	assert_int_equal(t.n, 2);
	assert_int_equal(t.seen, 1);
	tid = proc_task_for_each(PROC_SELF, stop_at_second, &n);
	assert_true(tid > 0);
	assert_int_equal(n, 2);		/* the walk stopped at fn's value */
	assert_int_equal(proc_task_stat(getpid(), tid, &st), 0);
	assert_string_equal(st.comm, "test_proc");
	assert_int_equal(proc_task_stat(getpid(), 999999999, &st), -ENOENT);
	close(fd[1]);
	assert_int_equal(pthread_join(th, NULL), 0);
	close(fd[0]);
}

static int find_pid(pid_t pid, void *arg)
{
	return pid == *(pid_t *)arg;
}

static void test_pid_walk(void **state)
{
	pid_t me = getpid(), parent = getppid();

	(void)state;
	assert_int_equal(proc_pid_for_each(find_pid, &me), 1);
	assert_int_equal(proc_pid_for_each(find_pid, &parent), 1);
}

/* ------------------------------------------------------------ fds, links */

struct fd_seen {
	int fd;
	char link[256];
	int n;
};

static int note_fd(int fd, const char *link, void *arg)
{
	struct fd_seen *s = arg;

	s->n++;
	if (fd == s->fd)
		snprintf(s->link, sizeof(s->link), "%s", link);
	return 0;
}

static void test_fd_walk_and_links(void **state)
{
	struct fd_seen s = { 0 };
	char link[PATH_MAX], exe[PATH_MAX], small[5];

	(void)state;
	s.fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(s.fd >= 0);
	assert_int_equal(proc_fd_for_each(PROC_SELF, note_fd, &s), 0);
	assert_string_equal(s.link, "/dev/null");
	assert_true(s.n >= 4);		/* 0-2, s.fd and the walk's own */
	assert_int_equal(proc_fd_link(getpid(), s.fd, link, sizeof(link)), strlen("/dev/null"));
	assert_string_equal(link, "/dev/null");
	assert_int_equal(proc_fd_link(PROC_SELF, s.fd, small, sizeof(small)), 4);
	assert_string_equal(small, "/dev");	/* cut, still terminated */
	close(s.fd);
	assert_int_equal(proc_fd_link(PROC_SELF, s.fd, link, sizeof(link)), -ENOENT);
	assert_non_null(realpath(test_argv[0], exe));
	assert_int_equal(proc_exe(PROC_SELF, link, sizeof(link)), strlen(exe));
	assert_string_equal(link, exe);
}

/* Only CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE) opens map_files; both ways are checked. */
static void test_map_files(void **state)
{
	long ps = sysconf(_SC_PAGESIZE);
	int mfd = memfd_create("proc-test", MFD_CLOEXEC), fd;
	struct stat a, b;
	char *p;

	(void)state;
	assert_true(mfd >= 0);
	assert_int_equal(ftruncate(mfd, ps), 0);
	p = mmap(NULL, ps, PROT_READ, MAP_SHARED, mfd, 0);
	assert_true(p != MAP_FAILED);
	fd = proc_map_files_open(PROC_SELF, (uintptr_t)p, (uintptr_t)p + ps, O_RDONLY);
	if (geteuid()) {
		assert_int_equal(fd, -EPERM);
	} else {
		assert_true(fd >= 0);
		assert_int_equal(fstat(fd, &a), 0);
		assert_int_equal(fstat(mfd, &b), 0);
		assert_int_equal(a.st_ino, b.st_ino);
		assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		close(fd);
	}
	/* No mapping there at all. */
	assert_int_equal(proc_map_files_open(PROC_SELF, (uintptr_t)p + ps, (uintptr_t)p + 2 * ps,
					     O_RDONLY), -ENOENT);
	munmap(p, ps);
	close(mfd);
}

/* ------------------------------------------------------------ text files */

static int count_line(const char *line, void *arg)
{
	assert_null(strchr(line, '\n'));
	++*(int *)arg;
	return 0;
}

static int stop_at_first(const char *line, void *arg)
{
	(void)arg;
	return strlen(line) + 1;
}

static void test_lines_walk(void **state)
{
	int n = 0;

	(void)state;
	assert_int_equal(proc_lines_for_each(PROC_SELF, "cgroup", count_line, &n), 0);
	assert_true(n >= 1);
	assert_true(proc_lines_for_each(getpid(), "mountinfo", stop_at_first, NULL) > 1);
	assert_int_equal(proc_lines_for_each(PROC_SELF, "no-such-file", count_line, &n), -ENOENT);
	assert_int_equal(proc_lines_for_each(-1, "cgroup", count_line, &n), -ENOENT);
}

static void test_unix_parse(void **state)
{
	struct proc_unix u;

	(void)state;
	assert_int_equal(proc_unix_parse("Num       RefCount Protocol Flags    Type St Inode Path", &u),
			 -EINVAL);
	assert_int_equal(proc_unix_parse("0000000000000000: 00000002 00000000 00010000 0001 01 "
					 "12345 /run/qemu qmp.sock", &u), 0);
	assert_int_equal(u.type, SOCK_STREAM);
	assert_int_equal(u.state, 1);
	assert_string_equal(u.path, "/run/qemu qmp.sock");	/* spaces kept */
	assert_int_equal(proc_unix_parse("0000000000000000: 00000003 00000000 00000000 0005 03 "
					 "12346 @abstract\n", &u), 0);
	assert_int_equal(u.type, SOCK_SEQPACKET);
	assert_int_equal(u.state, 3);
	assert_string_equal(u.path, "@abstract");
	assert_int_equal(proc_unix_parse("0000000000000000: 00000003 00000000 00000000 0002 03 12347",
					 &u), 0);
	assert_int_equal(u.type, SOCK_DGRAM);
	assert_string_equal(u.path, "");	/* unnamed */
	assert_int_equal(proc_unix_parse("0000000000000000: 00000003 00000000 00000000 0002 03", &u),
			 -EINVAL);
}

struct sock_seen {
	const char *path;
	int listening, clients;
};

static int note_sock(const char *line, void *arg)
{
	struct sock_seen *s = arg;
	struct proc_unix u;

	if (proc_unix_parse(line, &u) || u.type != SOCK_STREAM || strcmp(u.path, s->path))
		return 0;
	s->listening += u.state == 1;
	s->clients += u.state == 2 || u.state == 3;
	return 0;
}

/* What qmp_monitor_busy() reads: a listener, then a connection queued for it. */
static void test_unix_self(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sock_seen s = { .path = sa.sun_path };
	int l, c;

	(void)state;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/test_proc.%d.sock", getpid());
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(proc_lines_for_each(PROC_SELF, "net/unix", note_sock, &s), 0);
	assert_int_equal(s.listening, 1);
	assert_int_equal(s.clients, 0);
	c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c >= 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	s.listening = 0;
	assert_int_equal(proc_lines_for_each(getpid(), "net/unix", note_sock, &s), 0);
	assert_int_equal(s.listening, 1);
	assert_int_equal(s.clients, 1);	/* the queued one carries the listener's name */
	close(c);
	close(l);
	unlink(sa.sun_path);
}

static void test_mountinfo_parse(void **state)
{
	struct proc_mount m;

	(void)state;
	/* proc(5)'s example: optional fields, then " - ". */
	assert_int_equal(proc_mountinfo_parse("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 "
					      "/dev/root rw,errors=continue\n", &m), 0);
	assert_string_equal(m.point, "/mnt2");
	assert_string_equal(m.fstype, "ext3");
	assert_string_equal(m.super, "rw,errors=continue");
	assert_int_equal(proc_mountinfo_parse("30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 "
					      "rw,nsdelegate", &m), 0);
	assert_string_equal(m.point, "/sys/fs/cgroup");
	assert_string_equal(m.fstype, "cgroup2");
	assert_string_equal(m.super, "rw,nsdelegate");
	assert_int_equal(proc_mountinfo_parse("31 23 0:27 / /sys/fs/cgroup/cpu rw shared:5 - cgroup "
					      "cgroup rw,cpu,cpuacct", &m), 0);
	assert_string_equal(m.super, "rw,cpu,cpuacct");
	assert_int_equal(proc_mountinfo_parse("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 ext3", &m),
			 -EINVAL);	/* no " - " */
	assert_int_equal(proc_mountinfo_parse("36 35 98:0 / /mnt rw - ext3", &m), -EINVAL);
}

static void test_cgroup_parse(void **state)
{
	struct proc_cgroup c;

	(void)state;
	assert_int_equal(proc_cgroup_parse("0::/user.slice/session-1.scope\n", &c), 0);
	assert_string_equal(c.controllers, "");
	assert_string_equal(c.path, "/user.slice/session-1.scope");
	assert_int_equal(proc_cgroup_parse("4:cpu,cpuacct:/", &c), 0);
	assert_string_equal(c.controllers, "cpu,cpuacct");
	assert_string_equal(c.path, "/");
	assert_int_equal(proc_cgroup_parse("1:name=systemd:/a:b", &c), 0);	/* ':' in the path */
	assert_string_equal(c.controllers, "name=systemd");
	assert_string_equal(c.path, "/a:b");
	assert_int_equal(proc_cgroup_parse("0:/no-second-colon", &c), -EINVAL);
	assert_int_equal(proc_cgroup_parse("", &c), -EINVAL);
}

static void test_missing_pid(void **state)
{
	struct proc_maps m = { 0 };
	struct proc_stat st;
	char buf[64];
	pid_t gone = -1;

	(void)state;
	assert_int_equal(proc_maps_open(&m, gone, "maps"), -ENOENT);
	assert_int_equal(proc_maps_open(&m, gone, "smaps"), -ENOENT);
	proc_maps_close(&m);	/* nothing to close */
	assert_int_equal(proc_pagemap_open(gone), -ENOENT);
	assert_int_equal(proc_cmdline(gone, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(proc_fdinfo_field(gone, 0, "pos", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(proc_task_stat(gone, 0, &st), -ENOENT);
	assert_int_equal(proc_task_for_each(gone, stop_at_second, buf), -ENOENT);
	assert_int_equal(proc_fd_for_each(gone, note_fd, buf), -ENOENT);
	assert_int_equal(proc_fd_link(gone, 0, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(proc_exe(gone, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(proc_map_files_open(gone, 0, 4096, O_RDONLY), -ENOENT);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_maps_file),
		cmocka_unit_test(test_maps_anonymous),
		cmocka_unit_test(test_maps_named),
		cmocka_unit_test(test_maps_deleted_and_spaces),
		cmocka_unit_test(test_maps_huge_numbers),
		cmocka_unit_test(test_maps_not_a_line),
		cmocka_unit_test(test_maps_iterator),
		cmocka_unit_test(test_smaps_iterator),
		cmocka_unit_test(test_vmflag_tokens),
		cmocka_unit_test(test_maps_self),
		cmocka_unit_test(test_cmdline_self),
		cmocka_unit_test(test_fdinfo_field),
		cmocka_unit_test(test_pagemap_self),
		cmocka_unit_test(test_stat_parse),
		cmocka_unit_test(test_task_stat_and_walk),
		cmocka_unit_test(test_pid_walk),
		cmocka_unit_test(test_fd_walk_and_links),
		cmocka_unit_test(test_map_files),
		cmocka_unit_test(test_lines_walk),
		cmocka_unit_test(test_unix_parse),
		cmocka_unit_test(test_unix_self),
		cmocka_unit_test(test_mountinfo_parse),
		cmocka_unit_test(test_cgroup_parse),
		cmocka_unit_test(test_missing_pid),
	};

	(void)argc;
	test_argv = argv;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
