// SPDX-License-Identifier: GPL-2.0
/* KVM ioctls in the VM's own process (see kvm-exec.h). */
#define LOG_PREFIX "kvm: "

#include <errno.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "kvm-exec.h"
#include "log.h"
#include "rsys.h"

static long local_ioctl(int fd, unsigned long req, unsigned long arg)
{
	long ret = ioctl(fd, req, arg);

	return ret < 0 ? -errno : ret;
}

long kx_ioctl(struct kvm_exec *x, int fd, unsigned long req, void *buf, size_t len, unsigned dir)
{
	unsigned long remote;
	long ret;
	int err;

	if (!x->r)
		return local_ioctl(fd, req, (unsigned long)buf);

	remote = rsys_scratch(x->r, len);
	if (!remote)
		return -ENOMEM;
	if (dir & KX_IN) {
		err = rsys_write(x->r, remote, buf, len);
		if (err)
			return err;
	}
	ret = rsys_call(x->r, SYS_ioctl, fd, req, remote, 0, 0, 0);
	if (ret >= 0 && (dir & KX_OUT)) {
		err = rsys_read(x->r, remote, buf, len);
		if (err)
			return err;
	}
	return ret;
}

long kx_ioctl_relocated(struct kvm_exec *x, int fd, unsigned long req, void *buf, size_t len,
			const size_t *ptr_offs, unsigned nr_ptrs)
{
	uint64_t base = (uintptr_t)buf;
	unsigned i;
	int err;

	if (x->r) {
		base = rsys_scratch(x->r, len);
		if (!base)
			return -ENOMEM;
	}
	for (i = 0; i < nr_ptrs; i++) {
		uint64_t *p = (uint64_t *)((char *)buf + ptr_offs[i]);

		*p += base;
	}
	if (!x->r)
		return local_ioctl(fd, req, base);
	err = rsys_write(x->r, base, buf, len);
	if (err)
		return err;
	return rsys_call(x->r, SYS_ioctl, fd, req, base, 0, 0, 0);
}

long kx_ioctl_val(struct kvm_exec *x, int fd, unsigned long req, unsigned long val)
{
	if (!x->r)
		return local_ioctl(fd, req, val);
	return rsys_call(x->r, SYS_ioctl, fd, req, val, 0, 0, 0);
}
