/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Whole-buffer file and socket I/O, the same contract everywhere:
 *   pread_full   bytes read, fewer than len only at end of file; or -errno
 *   pwrite_full  0 once all of buf is written; or -errno (-EIO if the file
 *                takes no more)
 * Both retry on EINTR and on short transfers, and split requests above
 * what one pread/pwrite moves (0x7ffff000 bytes).
 */
#ifndef CRIU_QEMU_IO_H
#define CRIU_QEMU_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off);
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/*
 * Send len bytes of data with fd attached (SCM_RIGHTS; fd < 0: none), with
 * MSG_NOSIGNAL and the given extra flags. 0 once all was sent, or -errno.
 */
int send_with_fd(int sock, const void *data, size_t len, int fd, int flags);

#endif
