// SPDX-License-Identifier: GPL-2.0
/*
 * faultfs: a FUSE pass-through file system that fails I/O with EIO on
 * command, for the fault tests (test/integration/test_eio.py).
 *
 *   faultfs [-d] BACKING_DIR MOUNTPOINT
 *
 * Everything under MOUNTPOINT is BACKING_DIR. The file .faultfs at the root
 * of the mount (not in BACKING_DIR, not listed) takes commands, one a line:
 *
 *   write PREFIX OFFSET   every write to a file whose name starts with
 *                         PREFIX that touches a byte at or beyond OFFSET
 *                         fails with EIO
 *   read PREFIX OFFSET    the same for reads
 *   fsync PREFIX [N]      fsync/fdatasync of such files fails with EIO,
 *                         after the first N (default 0) went through
 *   off                   clears every rule
 *
 * Rules add up; reading .faultfs lists them with the number of requests
 * each failed, and every failed request is logged on stderr. A file is
 * matched by the name it was opened or created under.
 *
 * Why the high-level (path) API: a pass-through over a backing directory
 * is a *at() call per operation on the path libfuse hands over, with no
 * inode table of our own to keep (the low-level API would need one, with
 * lookup counts and forget). hard_remove + nullpath_ok let files that are
 * open when unlinked (the plugin removes a failed dump's image while its
 * guardian may hold it) go on working through their file handle.
 *
 * What reaches us: no write-back cache, so each write(2) is sent to us
 * before it returns and its EIO is the writer's, as from a disk. Reads go
 * through the page cache; the kernel drops a file's cached pages when it
 * is opened (we never set keep_cache), so a reader that opens the file
 * after the rule is armed reads from us. O_DIRECT is taken off the
 * backing open: the kernel already bypasses its page cache for such a
 * file, and our buffers are not aligned for the backing file system.
 */
#define FUSE_USE_VERSION 31

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#define CTL_NAME	".faultfs"
#define CTL_PATH	"/" CTL_NAME
#define MAX_RULES	16
#define CTL_BUF		4096

enum op { OP_READ, OP_WRITE, OP_FSYNC };

static const char *const op_names[] = { "read", "write", "fsync" };

struct rule {
	enum op op;
	char prefix[NAME_MAX + 1];
	uint64_t arg;		/* offset (read, write) or fsyncs let through */
	uint64_t seen;		/* fsyncs of matching files so far */
	uint64_t hits;		/* requests failed */
};

/* One open file: the backing fd and the name it was opened under. */
struct handle {
	int fd;
	bool ctl;
	char name[NAME_MAX + 1];
	size_t len;		/* ctl: snapshot of the rule list */
	char buf[];
};

static int backing = -1;
static pthread_mutex_t rules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rule rules[MAX_RULES];
static unsigned int nr_rules;

/* Path relative to the backing directory: "/" is ".", "/a/b" is "a/b". */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static bool is_ctl(const char *path)
{
	return path && !strcmp(path, CTL_PATH);
}

static struct handle *fh(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

/*
 * Is this request to fail? len is the length of a read or write at off;
 * for fsync both are 0. Logs every failed request.
 */
static bool fault(enum op op, const struct handle *h, uint64_t off, uint64_t len)
{
	bool hit = false;
	unsigned int i;

	pthread_mutex_lock(&rules_lock);
	for (i = 0; i < nr_rules && !hit; i++) {
		struct rule *r = &rules[i];

		if (r->op != op || strncmp(h->name, r->prefix, strlen(r->prefix)))
			continue;
		if (op == OP_FSYNC)
			hit = ++r->seen > r->arg;
		else
			hit = off + len > r->arg;
		if (!hit)
			continue;
		r->hits++;
		fprintf(stderr, "faultfs: EIO: %s %s at %" PRIu64 "+%" PRIu64
			" (rule '%s %s %" PRIu64 "', hit %" PRIu64 ")\n", op_names[op], h->name,
			off, len, op_names[op], r->prefix, r->arg, r->hits);
	}
	pthread_mutex_unlock(&rules_lock);
	return hit;
}

/* The rule list as .faultfs reads, into buf. Its length. */
static size_t list_rules(char *buf, size_t size)
{
	size_t n = 0;
	unsigned int i;

	pthread_mutex_lock(&rules_lock);
	for (i = 0; i < nr_rules && n < size; i++)
		n += snprintf(buf + n, size - n, "%s %s %" PRIu64 " hits=%" PRIu64 "\n",
			      op_names[rules[i].op], rules[i].prefix, rules[i].arg, rules[i].hits);
	pthread_mutex_unlock(&rules_lock);
	return n < size ? n : size;
}

/* A decimal number, all of tok. 0 or -EINVAL. */
static int parse_u64(const char *tok, uint64_t *v)
{
	char *end;

	if (*tok < '0' || *tok > '9')
		return -EINVAL;
	errno = 0;
	*v = strtoull(tok, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

/* One command line. 0 or -EINVAL / -ENOSPC. */
static int command(const char *line)
{
	char opname[16], prefix[NAME_MAX + 1], num[32], extra;
	struct rule *r;
	uint64_t arg = 0;
	unsigned int i;
	int n;

	n = sscanf(line, "%15s %255s %31s %c", opname, prefix, num, &extra);
	if (n <= 0)
		return 0;	/* empty line */
	if (n == 1 && !strcmp(opname, "off")) {
		pthread_mutex_lock(&rules_lock);
		nr_rules = 0;
		pthread_mutex_unlock(&rules_lock);
		fprintf(stderr, "faultfs: all rules off\n");
		return 0;
	}
	for (i = 0; i < 3; i++)
		if (!strcmp(opname, op_names[i]))
			break;
	if (i == 3 || n < 2 || n > 3 || (n == 2 && i != OP_FSYNC) ||
	    (n == 3 && parse_u64(num, &arg))) {
		fprintf(stderr, "faultfs: bad command '%s'\n", line);
		return -EINVAL;
	}
	pthread_mutex_lock(&rules_lock);
	if (nr_rules == MAX_RULES) {
		pthread_mutex_unlock(&rules_lock);
		fprintf(stderr, "faultfs: more than %d rules\n", MAX_RULES);
		return -ENOSPC;
	}
	r = &rules[nr_rules++];
	*r = (struct rule){ .op = i, .arg = arg };
	strcpy(r->prefix, prefix);
	pthread_mutex_unlock(&rules_lock);
	fprintf(stderr, "faultfs: rule '%s %s %" PRIu64 "' armed\n", op_names[i], prefix, arg);
	return 0;
}

/* A write to .faultfs: whole lines. */
static int ctl_write(const char *buf, size_t size)
{
	char line[512];
	size_t s = 0, e;
	int ret;

	while (s < size) {
		for (e = s; e < size && buf[e] != '\n'; e++)
			;
		if (e - s >= sizeof(line))
			return -EINVAL;
		memcpy(line, buf + s, e - s);
		line[e - s] = '\0';
		ret = command(line);
		if (ret)
			return ret;
		s = e + 1;
	}
	return size;
}

static void *ffs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* Write faults must fail the write(2) that causes them (see top). */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	cfg->use_ino = 1;
	cfg->hard_remove = 1;
	cfg->nullpath_ok = 1;
	cfg->kernel_cache = 0;
	cfg->direct_io = 0;
	return NULL;
}

static int ffs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (is_ctl(path) || (fi && fh(fi)->ctl)) {
		memset(st, 0, sizeof(*st));
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		return 0;
	}
	if (fi)
		return fstat(fh(fi)->fd, st) ? -errno : 0;
	if (!path)
		return -ENOENT;
	return fstatat(backing, rel(path), st, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

static int ffs_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n = readlinkat(backing, rel(path), buf, size - 1);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int ffs_mknod(const char *path, mode_t mode, dev_t rdev)
{
	if (is_ctl(path))
		return -EEXIST;
	return mknodat(backing, rel(path), mode, rdev) ? -errno : 0;
}

static int ffs_mkdir(const char *path, mode_t mode)
{
	return mkdirat(backing, rel(path), mode) ? -errno : 0;
}

static int ffs_unlink(const char *path)
{
	if (is_ctl(path))
		return -EPERM;
	return unlinkat(backing, rel(path), 0) ? -errno : 0;
}

static int ffs_rmdir(const char *path)
{
	return unlinkat(backing, rel(path), AT_REMOVEDIR) ? -errno : 0;
}

static int ffs_symlink(const char *target, const char *path)
{
	return symlinkat(target, backing, rel(path)) ? -errno : 0;
}

static int ffs_rename(const char *from, const char *to, unsigned int flags)
{
	if (is_ctl(from) || is_ctl(to))
		return -EPERM;
	return renameat2(backing, rel(from), backing, rel(to), flags) ? -errno : 0;
}

static int ffs_link(const char *from, const char *to)
{
	if (is_ctl(from) || is_ctl(to))
		return -EPERM;
	return linkat(backing, rel(from), backing, rel(to), 0) ? -errno : 0;
}

static int ffs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (is_ctl(path) || (fi && fh(fi)->ctl))
		return 0;
	if (fi)
		return fchmod(fh(fi)->fd, mode) ? -errno : 0;
	return fchmodat(backing, rel(path), mode, 0) ? -errno : 0;
}

static int ffs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	if (is_ctl(path) || (fi && fh(fi)->ctl))
		return 0;
	if (fi)
		return fchown(fh(fi)->fd, uid, gid) ? -errno : 0;
	return fchownat(backing, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

static int ffs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	int fd, ret = 0;

	/* open(O_TRUNC) of .faultfs, as "echo off > .faultfs" does. */
	if (is_ctl(path) || (fi && fh(fi)->ctl))
		return 0;
	if (fi)
		return ftruncate(fh(fi)->fd, size) ? -errno : 0;
	fd = openat(backing, rel(path), O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, size))
		ret = -errno;
	close(fd);
	return ret;
}

static int ffs_utimens(const char *path, const struct timespec ts[2], struct fuse_file_info *fi)
{
	if (is_ctl(path) || (fi && fh(fi)->ctl))
		return 0;
	if (fi)
		return futimens(fh(fi)->fd, ts) ? -errno : 0;
	return utimensat(backing, rel(path), ts, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

static struct handle *new_handle(const char *path, size_t extra)
{
	struct handle *h = calloc(1, sizeof(*h) + extra);

	if (!h)
		return NULL;
	h->fd = -1;
	snprintf(h->name, sizeof(h->name), "%s", base_name(path));
	return h;
}

/* Flags for the backing open (see the top for O_DIRECT and O_APPEND). */
static int backing_flags(int flags)
{
	/* The kernel sends every write with its offset, appends included. */
	return (flags & ~(O_DIRECT | O_APPEND | O_NOCTTY)) | O_CLOEXEC;
}

static int open_ctl(struct fuse_file_info *fi)
{
	struct handle *h = new_handle(CTL_PATH, CTL_BUF);

	if (!h)
		return -ENOMEM;
	h->ctl = true;
	h->len = list_rules(h->buf, CTL_BUF);
	/* Its size is 0: only direct I/O reaches us past it. */
	fi->direct_io = 1;
	fi->fh = (uintptr_t)h;
	return 0;
}

static int ffs_open(const char *path, struct fuse_file_info *fi)
{
	struct handle *h;

	if (is_ctl(path))
		return open_ctl(fi);
	h = new_handle(path, 0);
	if (!h)
		return -ENOMEM;
	h->fd = openat(backing, rel(path), backing_flags(fi->flags));
	if (h->fd < 0) {
		int ret = -errno;

		free(h);
		return ret;
	}
	fi->fh = (uintptr_t)h;
	return 0;
}

static int ffs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct handle *h;

	if (is_ctl(path))
		return open_ctl(fi);
	h = new_handle(path, 0);
	if (!h)
		return -ENOMEM;
	h->fd = openat(backing, rel(path), backing_flags(fi->flags) | O_CREAT, mode);
	if (h->fd < 0) {
		int ret = -errno;

		free(h);
		return ret;
	}
	fi->fh = (uintptr_t)h;
	return 0;
}

static int ffs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = fh(fi);
	size_t done = 0;

	(void)path;
	if (h->ctl) {
		if ((size_t)off >= h->len)
			return 0;
		size = size < h->len - off ? size : h->len - off;
		memcpy(buf, h->buf + off, size);
		return size;
	}
	if (fault(OP_READ, h, off, size))
		return -EIO;
	while (done < size) {
		ssize_t n = pread(h->fd, buf + done, size - done, off + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return done ? (int)done : -errno;
		if (!n)
			break;
		done += n;
	}
	return done;
}

static int ffs_write(const char *path, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct handle *h = fh(fi);
	size_t done = 0;

	(void)path;
	if (h->ctl)
		return ctl_write(buf, size);
	if (fault(OP_WRITE, h, off, size))
		return -EIO;
	while (done < size) {
		ssize_t n = pwrite(h->fd, buf + done, size - done, off + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return done ? (int)done : -errno;
		done += n;
	}
	return done;
}

static int ffs_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	return fstatvfs(backing, st) ? -errno : 0;
}

static int ffs_flush(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	(void)fi;
	return 0;
}

static int ffs_release(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = fh(fi);

	(void)path;
	if (h->fd >= 0)
		close(h->fd);
	free(h);
	return 0;
}

static int ffs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = fh(fi);
	int ret;

	(void)path;
	if (h->ctl)
		return 0;
	if (fault(OP_FSYNC, h, 0, 0))
		return -EIO;
	ret = datasync ? fdatasync(h->fd) : fsync(h->fd);
	return ret ? -errno : 0;
}

static int ffs_opendir(const char *path, struct fuse_file_info *fi)
{
	int fd = openat(backing, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	fi->fh = (uintptr_t)d;
	return 0;
}

static int ffs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
		       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	DIR *d = (DIR *)(uintptr_t)fi->fh;
	struct dirent *e;

	(void)path;
	(void)flags;
	/* Offsets are telldir()'s: filler() may stop us and resume later. */
	if (off != telldir(d))
		seekdir(d, off);
	for (errno = 0; (e = readdir(d)); errno = 0) {
		struct stat st = { .st_ino = e->d_ino, .st_mode = (mode_t)DTTOIF(e->d_type) };

		if (filler(buf, e->d_name, &st, telldir(d), 0))
			return 0;
	}
	return errno ? -errno : 0;
}

static int ffs_releasedir(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	closedir((DIR *)(uintptr_t)fi->fh);
	return 0;
}

static int ffs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	int fd = dirfd((DIR *)(uintptr_t)fi->fh);

	(void)path;
	return (datasync ? fdatasync(fd) : fsync(fd)) ? -errno : 0;
}

static int ffs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	(void)path;
	if (fh(fi)->ctl)
		return -EOPNOTSUPP;
	return fallocate(fh(fi)->fd, mode, off, len) ? -errno : 0;
}

static off_t ffs_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
	off_t ret;

	(void)path;
	if (fh(fi)->ctl)
		return -ESPIPE;
	ret = lseek(fh(fi)->fd, off, whence);
	return ret < 0 ? -errno : ret;
}

static const struct fuse_operations ffs_ops = {
	.init		= ffs_init,
	.getattr	= ffs_getattr,
	.readlink	= ffs_readlink,
	.mknod		= ffs_mknod,
	.mkdir		= ffs_mkdir,
	.unlink		= ffs_unlink,
	.rmdir		= ffs_rmdir,
	.symlink	= ffs_symlink,
	.rename		= ffs_rename,
	.link		= ffs_link,
	.chmod		= ffs_chmod,
	.chown		= ffs_chown,
	.truncate	= ffs_truncate,
	.utimens	= ffs_utimens,
	.open		= ffs_open,
	.create		= ffs_create,
	.read		= ffs_read,
	.write		= ffs_write,
	.statfs		= ffs_statfs,
	.flush		= ffs_flush,
	.release	= ffs_release,
	.fsync		= ffs_fsync,
	.opendir	= ffs_opendir,
	.readdir	= ffs_readdir,
	.releasedir	= ffs_releasedir,
	.fsyncdir	= ffs_fsyncdir,
	.fallocate	= ffs_fallocate,
	.lseek		= ffs_lseek,
};

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-d] BACKING_DIR MOUNTPOINT\n", prog);
	exit(2);
}

int main(int argc, char **argv)
{
	/* Foreground, multithreaded; root mounts without fusermount. */
	char *fargv[] = { argv[0], "-f", "-o",
			  "allow_other,default_permissions,fsname=faultfs,subtype=faultfs",
			  NULL, NULL, NULL };
	int fargc = 4, i = 1;

	if (argc > 1 && !strcmp(argv[1], "-d")) {
		fargv[fargc++] = "-d";
		i++;
	}
	if (argc - i != 2)
		usage(argv[0]);
	backing = open(argv[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (backing < 0) {
		fprintf(stderr, "faultfs: %s: %s\n", argv[i], strerror(errno));
		return 1;
	}
	fargv[fargc++] = argv[i + 1];
	umask(0);
	return fuse_main(fargc, fargv, &ffs_ops, NULL);
}
