// SPDX-License-Identifier: GPL-2.0
/*
 * The handoff of guest RAM from a stopped QEMU task to the guardian.
 *
 * Order matters; at every instant each page is in the task or in the
 * durable image with a live guardian holding the registration:
 *
 *  1. start the guardian (HELLO): it opens and checks the image;
 *  2. create a userfaultfd inside the task (injected syscall), take it out
 *     with pidfd_getfd, close the task's copy (CRIU refuses to dump one),
 *     UFFDIO_API with REMAP/REMOVE/UNMAP events, hand it to the guardian
 *     and wait for its ack: from now on the guardian holds it even if CRIU
 *     dies;
 *  3. per VMA of each block: an empty VMA is mapped elsewhere (tmp), gets
 *     the original's madvise flags, is registered (missing mode), checked
 *     empty, announced (PREPARE), and moved over the RAM with one
 *     mremap(MREMAP_FIXED). The kernel drops the old pages and installs
 *     the registered VMA in the same syscall under mmap_lock; with
 *     UFFD_FEATURE_EVENT_REMAP the registration moves along, and the task
 *     does not return from mremap until the guardian has read the REMAP
 *     event. (mmap(MAP_FIXED) followed by UFFDIO_REGISTER would leave an
 *     instant with an empty, unregistered range: if CRIU died then, the
 *     task would resume and read zeros where guest RAM was.)
 *  3'. a shared block (memfd, shared anonymous memory) keeps its VMAs:
 *     others may map the same object, and CRIU must see the same shared
 *     mapping. Each VMA is registered where it is (missing mode works for
 *     shmem: a fault comes only for a page absent from the file), announced
 *     (PREPARE, GP_RANGE_SHARED), and punched with madvise(MADV_REMOVE) in
 *     the task. The kernel queues UFFD_EVENT_REMOVE for the range and waits
 *     until the guardian has read it before it punches the file, so the
 *     guardian takes that REMOVE as the placement, and the pages vanish
 *     from the file and every mapping at once. CRIU then finds holes and
 *     stores nothing for them. Faults are filled with UFFDIO_COPY, which
 *     puts the page back into the file.
 *  4. close our userfaultfd copy; the task is still stopped.
 *
 * handoff_finish() later sends the verdict; the guardian does the rest.
 */
#define LOG_PREFIX "handoff: "

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/userfaultfd.h>

#include "clock.h"
#include "criu-weak.h"
#include "guardian-proto.h"
#include "handoff.h"
#include "handoff-shmem.h"
#include "handoff-spawn.h"
#include "handoff-vma.h"
#include "handoff-watch.h"
#include "log.h"
#include "rsys.h"
#include "uapi-compat.h"

#define HO_ACK_TIMEOUT_MS	10000
#define HO_GIVE_BACK_TIMEOUT_MS	(10 * 60 * 1000)
#define HO_UFFD_FEATURES	(UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | \
				 UFFD_FEATURE_EVENT_UNMAP)

struct handoff {
	pid_t pid;
	pid_t guardian;
	int sock;		/* control channel; -1 once hung up */
	int uffd;		/* our copy, only inside handoff_start */
	const struct fr_image *img;
	const struct handoff_opts *o;
	const char *name;
	struct handoff_seg *segs;
	size_t nr_segs;
	size_t nr_placed;	/* segs[0, nr_placed) are empty in the task */
	double t_guardian;	/* ms: spawn + HELLO */
	double t_uffd;		/* ms: the task's userfaultfd made and handed over */
	double t_move;		/* ms: the mremaps (they free the pages) */
	double t_punch;		/* ms: the MADV_REMOVEs of shared blocks */
	double t_prepare;	/* ms: PREPAREs until acked */
};

static bool is_err(long v)
{
	return (unsigned long)v >= (unsigned long)-4095;
}

static void hook(struct handoff *h, struct rsys *r, enum handoff_step step, unsigned seg)
{
	if (h->o->hook)
		h->o->hook(h->o->hook_arg, r, step, seg);
}

/* ------------------------------------------------------------ segments */

/*
 * A shared block is handed over only if its shmem object may be punched
 * and the image holds every page of it: pagemap (the writer) misses file
 * pages QEMU has not mapped, and handoff_shared_prepare() may not have run.
 * Otherwise it stays with CRIU, which then stores it as well: the image's
 * copy is the same data, so a restore is right either way.
 */
static int shared_segments(struct handoff *h, const struct handoff_vmas *vm, const struct fr_block *b,
			   uint32_t i)
{
	size_t first = h->nr_segs, n;
	long missing;
	int ret;

	ret = handoff_block_segments(vm, h->pid, b, i, &h->segs, &h->nr_segs);
	n = h->nr_segs - first;
	if (!ret)
		ret = handoff_shmem_check(h->pid, b->name, h->segs + first, n);
	if (!ret) {
		missing = handoff_shmem_missing(h->pid, b, h->segs + first, n);
		if (missing > 0)
			pr_warn("pid %d: shared block '%s': %ld pages with data in its file are not in the "
				"image: it stays with CRIU\n", h->pid, b->name, missing);
		else if (missing < 0)
			pr_warn("pid %d: shared block '%s': cannot check its file against the image: %s: "
				"it stays with CRIU\n", h->pid, b->name, strerror((int)-missing));
		if (missing)
			handoff_shmem_close(h->segs + first, n);
		ret = missing ? -EBUSY : 0;
	}
	if (ret == -ENOMEM)
		return ret;
	if (ret)
		h->nr_segs = first;
	return 0;
}

static int collect_segments(struct handoff *h)
{
	long ps = sysconf(_SC_PAGESIZE);
	struct handoff_vmas vm;
	uint32_t i;
	int ret = handoff_vmas_read(h->pid, h->img->blocks, h->img->nr_blocks, &vm);

	for (i = 0; !ret && i < h->img->nr_blocks; i++) {
		const struct fr_block *b = &h->img->blocks[i];

		if (b->page_size == (uint32_t)ps && b->backing == FR_BACKING_ANON_PRIVATE)
			ret = handoff_block_segments(&vm, h->pid, b, i, &h->segs, &h->nr_segs);
		else if (b->page_size == (uint32_t)ps && b->backing == FR_BACKING_SHARED_FD)
			ret = shared_segments(h, &vm, b, i);
		else
			ret = 1;
		if (ret == 1) {
			pr_info("pid %d: block '%s' (%s) stays with CRIU\n", h->pid, b->name,
				fr_backing_name(b->backing));
			ret = 0;
		}
	}
	handoff_vmas_free(&vm);
	if (ret)
		return ret;
	for (i = 0; i < h->nr_segs; i++)
		pr_debug("pid %d: range %u: block %u %#" PRIx64 "-%#" PRIx64 " prot %d madv %#x%s%s\n",
			 h->pid, i, h->segs[i].block, h->segs[i].start, h->segs[i].end, h->segs[i].prot,
			 h->segs[i].madv, h->segs[i].noreserve ? " noreserve" : "",
			 h->segs[i].shared ? " shared" : "");
	if (!h->nr_segs) {
		pr_err("pid %d: no block can be handed over\n", h->pid);
		return -ENOENT;
	}
	return 0;
}

/* ------------------------------------------------------------ guardian */

static int open_log(const struct handoff_opts *o, pid_t pid)
{
	char name[64];
	int fd;

	if (o->log_dirfd < 0)
		return -1;
	snprintf(name, sizeof(name), "guardian-%d.log", pid);
	fd = openat(o->log_dirfd, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		pr_perror("cannot create %s, the guardian logs to stderr", name);
	return fd;
}

static unsigned guardian_log_level(const struct handoff_opts *o)
{
	if (o->log_level)
		return o->log_level;
	if (log_get_loglevel && log_get_loglevel() >= LOG_DEBUG)
		return LOG_DEBUG;
	return LOG_INFO;
}

/* Send a request and wait for its ack: 0, the guardian's -errno, or the channel's. */
static int request(struct handoff *h, unsigned type, const struct gp_msg *body, int fd,
		   unsigned ack, struct gp_msg *reply)
{
	int ret = gp_send(h->sock, type, body, fd);

	if (!ret)
		ret = gp_recv_type(h->sock, ack, reply, NULL, HO_ACK_TIMEOUT_MS);
	return ret ? ret : reply->status;
}

static int hello(struct handoff *h)
{
	struct gp_msg m = {
		.hello = {
			.pid = h->pid,
			.nr_blocks = h->img->nr_blocks,
			.done_timeout_ms = h->o->done_timeout_ms,
			.log_level = guardian_log_level(h->o),
			.flags = h->o->strict ? GP_HELLO_STRICT : 0,
		},
	};
	int ret;

	snprintf(m.hello.image, sizeof(m.hello.image), "%s", h->name);
	ret = request(h, GP_HELLO, &m, -1, GP_HELLO_ACK, &m);
	if (ret) {
		pr_err("pid %d: the guardian did not start: %s\n", h->pid, strerror(-ret));
		return ret;
	}
	h->guardian = m.pid;
	return 0;
}

static int start_guardian(struct handoff *h)
{
	char path[4096];
	struct handoff_spawn s = { .path = path, .image = h->img->fd, .log = -1 };
	int sv[2], ret;

	if (h->o->guardian)
		snprintf(path, sizeof(path), "%s", h->o->guardian);
	else if (handoff_guardian_path(path, sizeof(path)))
		return -ENOENT;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		pr_perror("socketpair");
		return -errno;
	}
	s.ctl = sv[1];
	s.pidfd = syscall(SYS_pidfd_open, h->pid, 0);
	if (s.pidfd < 0) {
		ret = -errno;
		pr_perror("pidfd_open(%d)", h->pid);
		goto out;
	}
	s.log = open_log(h->o, h->pid);
	ret = handoff_spawn(&s);
out:
	close(sv[1]);
	if (s.pidfd >= 0)
		close(s.pidfd);
	if (s.log >= 0)
		close(s.log);
	h->sock = sv[0];
	if (!ret)
		ret = hello(h);
	return ret;
}

/*
 * Announce a range and wait until the guardian knows it: its REMAP or
 * REMOVE may be read before any control message still queued (see
 * guardian-proto.h). The ack also proves the guardian is there to read
 * the event our mremap or madvise will wait for.
 */
static int prepare(struct handoff *h, const struct gp_msg *m)
{
	double t = now_ms();
	struct gp_msg ack;
	int ret = request(h, GP_PREPARE, m, -1, GP_PREPARE_ACK, &ack);

	h->t_prepare += now_ms() - t;
	if (ret)
		pr_err("pid %d: the guardian did not take range %#" PRIx64 " (%" PRIu64 " KiB): %s\n",
		       h->pid, m->range.addr, m->range.len >> 10, strerror(-ret));
	return ret;
}

/* ------------------------------------------------------------ userfaultfd */

/* QEMU without CAP_SYS_PTRACE may not create a kernel-fault uffd: use our /dev/userfaultfd. */
static long uffd_from_dev(struct rsys *r)
{
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	long rdev, rfd;

	if (dev < 0) {
		pr_perror("open /dev/userfaultfd");
		return -EPERM;
	}
	rdev = rsys_put_fd(r, dev);
	close(dev);
	if (rdev < 0)
		return rdev;
	rfd = rsys_call(r, SYS_ioctl, rdev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK, 0, 0, 0);
	rsys_call(r, SYS_close, rdev, 0, 0, 0, 0, 0);
	return rfd;
}

static int uffd_api(int fd)
{
	struct uffdio_api api = { .api = UFFD_API, .features = HO_UFFD_FEATURES };

	if (ioctl(fd, UFFDIO_API, &api)) {
		pr_perror("UFFDIO_API");
		return -errno;
	}
	if ((api.features & HO_UFFD_FEATURES) != HO_UFFD_FEATURES) {
		pr_err("userfaultfd lacks REMAP/REMOVE/UNMAP events (features %#llx)\n",
		       (unsigned long long)api.features);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* A userfaultfd for the task's mm, in our hands only. */
static int take_uffd(struct handoff *h, struct rsys *r)
{
	long rfd, res;
	int fd, ret;

	rfd = rsys_call(r, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK, 0, 0, 0, 0, 0);
	if (rfd == -EPERM)
		rfd = uffd_from_dev(r);
	if (rfd < 0) {
		pr_err("pid %d: userfaultfd: %s\n", h->pid, strerror((int)-rfd));
		return (int)rfd;
	}
	fd = rsys_get_fd(r, rfd);
	res = rsys_call(r, SYS_close, rfd, 0, 0, 0, 0, 0);
	if (res < 0)
		pr_warn("pid %d: close of its userfaultfd %ld: %ld\n", h->pid, rfd, res);
	if (fd < 0)
		return fd;
	ret = res < 0 ? (int)res : uffd_api(fd);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

static int hand_uffd(struct handoff *h)
{
	struct gp_msg m;
	int ret;

	ret = request(h, GP_UFFD, NULL, h->uffd, GP_UFFD_ACK, &m);
	if (ret)
		pr_err("pid %d: the guardian did not take the userfaultfd: %s\n", h->pid,
		       strerror(-ret));
	return ret;
}

/* ------------------------------------------------------------ one segment */

static long map_tmp(struct handoff *h, struct rsys *r, const struct handoff_seg *s)
{
	uint64_t len = s->end - s->start;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | (s->noreserve ? MAP_NORESERVE : 0);
	long tmp, res;
	unsigned i;

	/* Same accounting as the original: CRIU records MAP_NORESERVE from VmFlags. */
	tmp = rsys_call(r, SYS_mmap, 0, len, s->prot, flags, -1, 0);
	if (tmp == -ENOMEM && !s->noreserve) {
		pr_warn("pid %d: no commit charge for a second %" PRIu64 " MiB, using MAP_NORESERVE\n",
			h->pid, len >> 20);
		tmp = rsys_call(r, SYS_mmap, 0, len, s->prot, flags | MAP_NORESERVE, -1, 0);
	}
	if (is_err(tmp)) {
		pr_err("pid %d: mmap of %" PRIu64 " MiB: %s\n", h->pid, len >> 20, strerror((int)-tmp));
		return tmp;
	}
	/* A new VMA has no madvise flags; CRIU would record (and restore) madv 0. */
	for (i = 0; i < HO_MADV_NR; i++) {
		if (!(s->madv & (1u << i)))
			continue;
		res = rsys_call(r, SYS_madvise, tmp, len, handoff_madv_advice(i), 0, 0, 0);
		if (res < 0)
			pr_warn("pid %d: madvise(%d) on the new VMA: %s\n", h->pid,
				handoff_madv_advice(i), strerror((int)-res));
	}
	return tmp;
}

static int register_range(struct handoff *h, uint64_t start, uint64_t len)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	const uint64_t need = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE);

	if (ioctl(h->uffd, UFFDIO_REGISTER, &reg)) {
		pr_perror("pid %d: UFFDIO_REGISTER %#" PRIx64, h->pid, start);
		return -errno;
	}
	if ((reg.ioctls & need) != need) {
		pr_err("pid %d: registered range lacks UFFDIO_COPY/ZEROPAGE\n", h->pid);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* Anything already mapped in tmp would shadow guest RAM with its contents. */
static int check_empty(struct handoff *h, uint64_t tmp, uint64_t len)
{
	int ret = handoff_range_empty(h->pid, tmp, tmp + len);

	if (ret == 1)
		return 0;
	pr_err("pid %d: the new VMA at %#" PRIx64 " is not empty (%d)\n", h->pid, tmp, ret);
	return ret < 0 ? ret : -EEXIST;
}

static void unregister_range(struct handoff *h, uint64_t start, uint64_t len)
{
	struct uffdio_range range = { .start = start, .len = len };

	if (ioctl(h->uffd, UFFDIO_UNREGISTER, &range) && errno != EINVAL)
		pr_perror("UFFDIO_UNREGISTER %#" PRIx64, start);
}

/* Undo tmp; unregistered first, so that munmap waits for no UNMAP reader. */
static void unmap_tmp(struct handoff *h, struct rsys *r, uint64_t tmp, uint64_t len)
{
	long res;

	unregister_range(h, tmp, len);
	res = rsys_call(r, SYS_munmap, tmp, len, 0, 0, 0, 0);
	if (res < 0)
		pr_warn("pid %d: munmap of the new VMA %#" PRIx64 ": %ld\n", h->pid, tmp, res);
}

/*
 * CRIU's parasite reads the first page of every anonymous r-x mapping (its
 * vdso probe) after the handoff. Served by the guardian, that read would
 * make CRIU's dump wait on the image, and hang where it cannot be read. So
 * an executable range (TCG's code buffer) keeps its first page: copied into
 * tmp before the move. CRIU stores it too (restore-check.c lets it through).
 */
static int keep_first_page(struct handoff *h, const struct handoff_seg *s, uint64_t tmp)
{
	long ps = sysconf(_SC_PAGESIZE);
	struct uffdio_copy copy = { .dst = tmp, .len = ps };
	struct iovec local, remote = { .iov_base = (void *)(uintptr_t)s->start, .iov_len = ps };
	int ret = 0;

	if (!(s->prot & PROT_EXEC))
		return 0;
	local.iov_base = aligned_alloc(ps, ps);
	local.iov_len = ps;
	if (!local.iov_base)
		return -ENOMEM;
	copy.src = (uintptr_t)local.iov_base;
	if (process_vm_readv(h->pid, &local, 1, &remote, 1, 0) != ps) {
		ret = -errno;
		pr_perror("pid %d: reading the first page of %#" PRIx64, h->pid, s->start);
	} else if (ioctl(h->uffd, UFFDIO_COPY, &copy)) {
		ret = -errno;
		pr_perror("pid %d: UFFDIO_COPY of the first page of %#" PRIx64, h->pid, s->start);
	}
	free(local.iov_base);
	return ret;
}

static void fill_range(const struct handoff *h, size_t i, uint64_t tmp, struct gp_msg *m)
{
	const struct handoff_seg *s = &h->segs[i];
	const struct fr_block *b = &h->img->blocks[s->block];

	memset(m, 0, sizeof(*m));
	m->range.block = s->block;
	/* Collapse after give-back only where huge pages were: shmem THP is often off. */
	if (s->shared ? s->pmd_mapped : (s->madv & HO_MADV_HUGEPAGE) != 0)
		m->range.flags |= GP_RANGE_THP;
	if (s->shared)
		m->range.flags |= GP_RANGE_SHARED;
	m->range.offset = s->start - b->host_addr;
	m->range.len = s->end - s->start;
	m->range.tmp = tmp;
	m->range.addr = s->start;
}

/*
 * mremap failed. Before the destination is unmapped the kernel only fails
 * its checks; after it, only on allocation failure, leaving a hole where
 * guest RAM was: try once more, tmp is still there.
 */
static long mremap_failed(struct handoff *h, struct rsys *r, const struct handoff_seg *s,
			  uint64_t tmp, long res)
{
	uint64_t len = s->end - s->start;

	pr_err("pid %d: mremap %#" PRIx64 " -> %#" PRIx64 " (%" PRIu64 " MiB): %s\n", h->pid, tmp,
	       s->start, len >> 20, strerror((int)-res));
	if (handoff_range_mapped(h->pid, s->start, s->end) != 0)
		return res;
	pr_err("pid %d: guest RAM at %#" PRIx64 " is unmapped; retrying the move\n", h->pid, s->start);
	res = rsys_call(r, SYS_mremap, tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, s->start, 0);
	if (res != (long)s->start)
		pr_err("pid %d: guest RAM at %#" PRIx64 " (%" PRIu64 " MiB) is lost from the task; "
		       "its contents are in %s\n", h->pid, s->start, len >> 20, h->name);
	return res;
}

static int place_moved(struct handoff *h, struct rsys *r, size_t i)
{
	const struct handoff_seg *s = &h->segs[i];
	uint64_t len = s->end - s->start;
	struct handoff_watch w;
	bool orphaned;
	struct gp_msg m;
	long tmp, res;
	double t;
	int ret;

	tmp = map_tmp(h, r, s);
	if (is_err(tmp))
		return (int)tmp;
	fill_range(h, i, tmp, &m);
	ret = register_range(h, tmp, len);
	if (!ret)
		ret = check_empty(h, tmp, len);
	if (!ret)
		ret = keep_first_page(h, s, tmp);
	if (!ret)
		ret = prepare(h, &m);
	if (ret) {
		unmap_tmp(h, r, tmp, len);
		return ret;
	}
	hook(h, r, HANDOFF_STEP_PREPARED, i);

	handoff_watch_start(&w, h->sock, h->uffd);
	t = now_ms();
	res = rsys_call(r, SYS_mremap, tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, s->start, 0);
	h->t_move += now_ms() - t;
	if (res != (long)s->start)
		res = mremap_failed(h, r, s, tmp, res);
	orphaned = handoff_watch_stop(&w);
	if (res != (long)s->start) {
		gp_send(h->sock, GP_PLACE_FAILED, &m, -1);
		unmap_tmp(h, r, tmp, len);
		return is_err(res) ? (int)res : -EFAULT;
	}
	h->nr_placed = i + 1;
	ret = orphaned ? -EPIPE : gp_send(h->sock, GP_PLACED, &m, -1);
	if (ret)
		pr_err("pid %d: the guardian went away: %s\n", h->pid, strerror(-ret));
	hook(h, r, HANDOFF_STEP_PLACED, i);
	return ret;
}

static int place_shared(struct handoff *h, struct rsys *r, size_t i)
{
	const struct handoff_seg *s = &h->segs[i];
	uint64_t len = s->end - s->start;
	struct handoff_watch w;
	bool orphaned;
	struct gp_msg m;
	long res;
	double t;
	int ret;

	fill_range(h, i, 0, &m);
	ret = register_range(h, s->start, len);
	if (ret)
		return ret;
	ret = prepare(h, &m);
	if (ret) {
		unregister_range(h, s->start, len);
		return ret;
	}
	hook(h, r, HANDOFF_STEP_PREPARED, i);

	/* Blocks until the guardian (or the watcher) has read the REMOVE event. */
	handoff_watch_start(&w, h->sock, h->uffd);
	t = now_ms();
	res = rsys_call(r, SYS_madvise, s->start, len, MADV_REMOVE, 0, 0, 0);
	h->t_punch += now_ms() - t;
	orphaned = handoff_watch_stop(&w);
	/*
	 * Placed, whatever madvise says: it may fail after its REMOVE event,
	 * our ptrace call may fail after it ran. Unregistering a punched range
	 * would leave zeros; a range still in the file costs the give-back
	 * only an -EEXIST per page. A failure then fails the handoff, and
	 * everything is given back.
	 */
	h->nr_placed = i + 1;
	ret = orphaned ? -EPIPE : gp_send(h->sock, GP_PLACED, &m, -1);
	if (ret)
		pr_err("pid %d: the guardian went away: %s\n", h->pid, strerror(-ret));
	if (res < 0) {
		pr_err("pid %d: madvise(MADV_REMOVE) %#" PRIx64 " (%" PRIu64 " MiB): %s\n", h->pid,
		       s->start, len >> 20, strerror((int)-res));
		ret = (int)res;
	} else if (handoff_shmem_has_data(s)) {
		pr_warn("pid %d: pages remain in the file at %#" PRIx64 " after the punch\n", h->pid,
			s->start);
	}
	hook(h, r, HANDOFF_STEP_PLACED, i);
	return ret;
}

static int place(struct handoff *h, struct rsys *r, size_t i)
{
	return h->segs[i].shared ? place_shared(h, r, i) : place_moved(h, r, i);
}

/* ------------------------------------------------------------ failure */

static int wait_give_back(struct handoff *h)
{
	struct gp_msg m;
	int ret;

	ret = gp_send(h->sock, GP_VERDICT_GIVE_BACK, NULL, -1);
	if (!ret)
		ret = gp_recv_type(h->sock, GP_GAVE_BACK, &m, NULL, HO_GIVE_BACK_TIMEOUT_MS);
	if (!ret)
		pr_info("pid %d: the guardian gave %" PRIu64 " pages back in %" PRIu64 " ms\n",
			h->pid, m.gave_back.pages_copied, m.gave_back.ms);
	return ret;
}

/* The guardian died: we still hold the userfaultfd, so a new one can adopt the ranges. */
static int adopt(struct handoff *h)
{
	struct gp_msg m;
	size_t i;
	int ret;

	pr_err("pid %d: guardian %d is gone; starting another to give guest RAM back\n",
	       h->pid, h->guardian);
	close(h->sock);
	h->sock = -1;
	ret = start_guardian(h);
	if (!ret)
		ret = hand_uffd(h);
	for (i = 0; !ret && i < h->nr_placed; i++) {
		fill_range(h, i, 0, &m);
		ret = gp_send(h->sock, GP_PLACED, &m, -1);
	}
	return ret;
}

/* The handoff failed with ranges placed: every page goes back before we return. */
static int give_back_now(struct handoff *h)
{
	int ret = wait_give_back(h);

	if (ret == -EPIPE || ret == -ECONNRESET || ret == -EPROTO) {
		ret = adopt(h);
		if (!ret)
			ret = wait_give_back(h);
	}
	if (ret)
		pr_err("pid %d: give-back not confirmed (%s); the guardian keeps the pages\n",
		       h->pid, strerror(-ret));
	return ret;
}

/* ------------------------------------------------------------ entry points */

static void free_handoff(struct handoff *h)
{
	if (h->sock >= 0)
		close(h->sock);
	if (h->uffd >= 0)
		close(h->uffd);
	handoff_shmem_close(h->segs, h->nr_segs);
	free(h->segs);
	free(h);
}

static int hand_over(struct handoff *h, struct rsys *r)
{
	double t = now_ms();
	size_t i;
	int ret;

	ret = start_guardian(h);
	h->t_guardian = now_ms() - t;
	if (!ret) {
		h->uffd = take_uffd(h, r);
		ret = h->uffd < 0 ? h->uffd : hand_uffd(h);
	}
	if (ret)
		return ret;
	h->t_uffd = now_ms() - t - h->t_guardian;
	hook(h, r, HANDOFF_STEP_UFFD_HELD, 0);
	for (i = 0; i < h->nr_segs && !ret; i++) {
		ret = place(h, r, i);
		if (ret)
			pr_err("pid %d: range %zu: %s\n", h->pid, i, strerror(-ret));
	}
	return ret;
}

static void log_done(const struct handoff *h, double ms)
{
	uint64_t bytes = 0;
	size_t i;

	for (i = 0; i < h->nr_segs; i++)
		bytes += h->segs[i].end - h->segs[i].start;
	pr_info("pid %d: %.1f MiB of guest RAM in %zu range(s) handed to guardian %d in %.1f ms "
		"(guardian start %.1f ms, userfaultfd %.1f ms, PREPARE acks %.2f ms, mremap %.1f ms, "
		"punch %.1f ms)\n", h->pid, bytes / 1048576.0, h->nr_segs, h->guardian, ms,
		h->t_guardian, h->t_uffd, h->t_prepare, h->t_move, h->t_punch);
}

int handoff_start_opts(pid_t pid, const struct fr_image *img, const char *name,
		       const struct handoff_opts *o, struct handoff **out)
{
	struct rsys r = { .pidfd = -1 };
	struct handoff *h;
	double t0 = now_ms();
	int ret;

	*out = NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	*h = (struct handoff){ .pid = pid, .sock = -1, .uffd = -1, .img = img, .o = o, .name = name };
	ret = collect_segments(h);
	if (!ret)
		ret = rsys_attach_stopped(&r, pid);
	if (!ret)
		ret = hand_over(h, &r);
	if (ret && h->nr_placed && give_back_now(h))
		*out = h;	/* not confirmed: the guardian holds pages, keep image and channel */
	rsys_detach(&r);
	if (h->uffd >= 0)
		close(h->uffd);
	h->uffd = -1;
	h->o = NULL;
	handoff_shmem_close(h->segs, h->nr_segs);
	if (!ret) {
		log_done(h, now_ms() - t0);
		*out = h;
	} else if (!*out) {
		free_handoff(h);
	}
	return ret;
}

int handoff_shared_prepare(pid_t pid, const char *name, uint64_t addr, uint64_t len, uint32_t page_size)
{
	struct fr_block b = {
		.host_addr = addr,
		.length = len,
		.page_size = page_size,
		.backing = FR_BACKING_SHARED_FD,
	};
	struct handoff_seg *segs = NULL;
	struct handoff_vmas vm;
	size_t n = 0;
	long mapped;
	int ret;

	if (page_size != (uint32_t)sysconf(_SC_PAGESIZE))
		return -EOPNOTSUPP;
	snprintf(b.name, sizeof(b.name), "%s", name);
	ret = handoff_vmas_read(pid, &b, 1, &vm);
	if (!ret)
		ret = handoff_block_segments(&vm, pid, &b, 0, &segs, &n);
	handoff_vmas_free(&vm);
	if (!ret)
		ret = handoff_shmem_check(pid, name, segs, n);
	if (!ret) {
		mapped = handoff_shmem_map_unseen(pid, segs, n);
		if (mapped > 0)
			pr_info("pid %d: shared block '%s': %ld pages of its file were not mapped in QEMU; "
				"mapped now, for the writer to see\n", pid, name, mapped);
		ret = mapped < 0 ? (int)mapped : 0;
		handoff_shmem_close(segs, n);
	}
	free(segs);
	return ret;
}

int handoff_start(pid_t pid, const struct fr_image *img, const char *name, struct handoff **out)
{
	static struct handoff_opts o;

	o.log_dirfd = criu_get_image_dir ? criu_get_image_dir() : -1;
	return handoff_start_opts(pid, img, name, &o, out);
}

void handoff_finish(struct handoff *h, enum handoff_verdict v)
{
	int ret;

	if (!h)
		return;
	ret = gp_send(h->sock, v == HANDOFF_DONE ? GP_VERDICT_DONE : GP_VERDICT_GIVE_BACK, NULL, -1);
	if (ret)
		pr_err("pid %d: cannot tell guardian %d the verdict: %s\n", h->pid, h->guardian,
		       strerror(-ret));
	else
		pr_info("pid %d: guardian %d told: %s\n", h->pid, h->guardian,
			v == HANDOFF_DONE ? "dump done, the task dies" : "give the pages back");
	free_handoff(h);
}

pid_t handoff_guardian_pid(const struct handoff *h)
{
	return h ? h->guardian : 0;
}
