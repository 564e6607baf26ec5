/* SPDX-License-Identifier: GPL-2.0 */
/*
 * uapi of Linux 6.7+ (PAGEMAP_SCAN, userfaultfd write-protect features)
 * that Debian 12's installed headers lack. Values from the kernel's
 * include/uapi/linux/fs.h and userfaultfd.h; each one guarded so newer
 * headers win.
 */
#ifndef CRIU_QEMU_UAPI_COMPAT_H
#define CRIU_QEMU_UAPI_COMPAT_H

#include <stdint.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>

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
#ifndef PM_SCAN_WP_MATCHING
#define PM_SCAN_WP_MATCHING	(1 << 0)
#endif
#ifndef PM_SCAN_CHECK_WPASYNC
#define PM_SCAN_CHECK_WPASYNC	(1 << 1)
#endif

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED	(1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC		(1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY		1
#endif

#endif
