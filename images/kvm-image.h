/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KVM state images (Documentation/image-format.md, "KVM state image"):
 * one protobuf message behind a small frame,
 *
 *   0   8  magic "CQKVMST\0"
 *   8   4  format version (KVM_IMG_VERSION), little endian
 *   12  4  length of the message in bytes
 *   16  8  XXH3-64 of the message
 *   24  .. the message (KvmVmEntry in kvm-PID.img, KvmFilesEntry in kvm-files.img)
 *
 * Written to a temporary name, fsynced and renamed: a reader sees a whole
 * image or none.
 */
#ifndef CRIU_QEMU_KVM_IMAGE_H
#define CRIU_QEMU_KVM_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "qemu-kvm.pb-c.h"

#define KVM_IMG_VERSION		1
#define KVM_IMG_MAX		(64u << 20)	/* a VM's state is far smaller */
#define KVM_FILES_IMG		"kvm-files.img"

/* Write msg (packed by the caller's descriptor) as dirfd/name. 0 or -errno. */
int kvm_img_write(int dirfd, const char *name, const ProtobufCMessage *msg);

/*
 * Read and check dirfd/name and unpack it with desc. *out is freed with
 * protobuf_c_message_free_unpacked. 0, -ENOENT if there is none, or
 * -errno / -EINVAL with a reason in err.
 */
int kvm_img_read(int dirfd, const char *name, const ProtobufCMessageDescriptor *desc,
		 ProtobufCMessage **out, char *err, size_t errlen);

#endif
