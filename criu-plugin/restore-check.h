/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Checks that a RAM image fits what CRIU restores, before a byte of it is
 * written: CRIU's own pages do not cover the image's blocks (else the two
 * come from different dumps), and each block's mapping in the restored task
 * is the one it was dumped from.
 */
#ifndef CRIU_QEMU_RESTORE_CHECK_H
#define CRIU_QEMU_RESTORE_CHECK_H

#include <stddef.h>
#include <sys/types.h>

#include "fixedram.h"

/*
 * CRIU's pagemap-<pid>.img (pid: the image's pid) in dirfd must have no page
 * inside a block of img. 0, or -EEXIST/-EBADMSG/-errno with the reason in why.
 */
int restore_check_criu_pages(int dirfd, const struct fr_image *img, char *why, size_t len);

/*
 * maps (the text of /proc/PID/maps) must map block b exactly: VMAs without a
 * gap from b->host_addr (a VMA start) to its end (a VMA end), each read-write,
 * not executable, anonymous and private for ANON_PRIVATE, shared for
 * SHARED_FD. 0, or -ENOENT with the reason in why.
 */
int restore_match_block(const char *maps, const struct fr_block *b, char *why, size_t len);

/* Every block of img against the task's /proc/PID/maps; logs the first misfit. */
int restore_check_vmas(pid_t pid, const struct fr_image *img);

#endif
