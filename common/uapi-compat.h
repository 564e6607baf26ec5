/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Syscall numbers and uapi constants that older installed headers lack
 * (Debian 12: Linux 6.1 uapi, glibc 2.36), in one place. Values from the
 * kernel's x86-64 syscall table and include/uapi/linux/{fs,userfaultfd,
 * mman,fcntl,magic,pidfd}.h; each one guarded so newer headers win. The
 * headers that define them come first, so a guard never sees a name that
 * is defined later (linux/pidfd.h is left out: its linux/fcntl.h clashes
 * with glibc's; its PIDFD_THREAD is the same O_EXCL, so a later include
 * redefines it identically). A source file defines none of these itself.
 */
#ifndef CRIU_QEMU_UAPI_COMPAT_H
#define CRIU_QEMU_UAPI_COMPAT_H

#include <fcntl.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <linux/userfaultfd.h>

/* ---- syscalls (x86-64) ---- */

#ifndef SYS_pidfd_open
#define SYS_pidfd_open		434
#endif
#ifndef SYS_close_range
#define SYS_close_range		436
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd		438
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise	440
#endif

/* ---- PAGEMAP_SCAN (Linux 6.7) ---- */

#ifndef PAGEMAP_SCAN
struct page_region {
	uint64_t start;
	uint64_t end;
	uint64_t categories;
};

struct pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end;
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};

#define PAGEMAP_SCAN	_IOWR('f', 16, struct pm_scan_arg)
#endif

#ifndef PAGE_IS_WPALLOWED
#define PAGE_IS_WPALLOWED	(1 << 0)
#endif
#ifndef PAGE_IS_WRITTEN
#define PAGE_IS_WRITTEN		(1 << 1)
#endif
#ifndef PAGE_IS_FILE
#define PAGE_IS_FILE		(1 << 2)
#endif
#ifndef PAGE_IS_PRESENT
#define PAGE_IS_PRESENT		(1 << 3)
#endif
#ifndef PAGE_IS_SWAPPED
#define PAGE_IS_SWAPPED		(1 << 4)
#endif
#ifndef PAGE_IS_PFNZERO
#define PAGE_IS_PFNZERO		(1 << 5)
#endif
#ifndef PAGE_IS_HUGE
#define PAGE_IS_HUGE		(1 << 6)
#endif
#ifndef PM_SCAN_WP_MATCHING
#define PM_SCAN_WP_MATCHING	(1 << 0)
#endif
#ifndef PM_SCAN_CHECK_WPASYNC
#define PM_SCAN_CHECK_WPASYNC	(1 << 1)
#endif

/* ---- userfaultfd ---- */

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY		1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW		_IO(0xAA, 0x00)
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM	(1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED	(1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC		(1 << 15)
#endif

/* ---- pidfd (include/uapi/linux/pidfd.h, Linux 6.9) ---- */

#ifndef PIDFD_THREAD
#define PIDFD_THREAD		O_EXCL
#endif

/* ---- memory, memfd seals, file systems ---- */

#ifndef MREMAP_FIXED
#define MREMAP_FIXED		2
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK		18
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25
#endif
#ifndef F_GET_SEALS
#define F_GET_SEALS		1034
#endif
#ifndef F_SEAL_WRITE
#define F_SEAL_WRITE		0x0008
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE	0x0010
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC		0x01021994
#endif

#endif
