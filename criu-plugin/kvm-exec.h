/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm-exec: run a KVM ioctl in the process that owns the VM.
 *
 * KVM serves VM and vCPU ioctls only to the mm that created the VM
 * (kvm->mm != current->mm gives -EIO), so the plugin issues them inside
 * QEMU, as syscalls injected with rsys, with the argument in rsys's scratch
 * mapping. With no rsys the ioctl runs in our own process: the unit tests
 * drive the same capture and rebuild code on VMs of their own.
 */
#ifndef CRIU_QEMU_KVM_EXEC_H
#define CRIU_QEMU_KVM_EXEC_H

#include <stddef.h>

struct rsys;

struct kvm_exec {
	struct rsys *r;		/* NULL: run in this process */
};

/* Which way the argument buffer travels. */
#define KX_IN	1u	/* the kernel reads it */
#define KX_OUT	2u	/* the kernel writes it */

/*
 * ioctl(fd, req, buf) in the VM's process, buf being len bytes copied in
 * and/or out as dir says. Returns the ioctl's result (>= 0) or -errno.
 */
long kx_ioctl(struct kvm_exec *x, int fd, unsigned long req, void *buf, size_t len, unsigned dir);

/*
 * ioctl(fd, req, buf) for an argument with pointers into itself: buf holds
 * the struct and, after it, what it points to; each u64 at ptr_offs[i]
 * holds an offset into buf and is made an address of the copy the kernel
 * reads (KX_IN only). Returns the ioctl's result or -errno.
 */
long kx_ioctl_relocated(struct kvm_exec *x, int fd, unsigned long req, void *buf, size_t len,
			const size_t *ptr_offs, unsigned nr_ptrs);

/* ioctl(fd, req, val) with a plain integer argument. */
long kx_ioctl_val(struct kvm_exec *x, int fd, unsigned long req, unsigned long val);

#endif
