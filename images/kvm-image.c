// SPDX-License-Identifier: GPL-2.0
/* KVM state images: framing, checksum, atomic write (see kvm-image.h). */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "io.h"
#include "kvm-image.h"

static const char kvm_img_magic[8] = "CQKVMST";

struct kvm_img_frame {
	char magic[8];
	uint32_t version;
	uint32_t len;
	uint64_t csum;
} __attribute__((packed));

static int write_all_synced(int fd, const struct kvm_img_frame *f, const void *body, size_t len)
{
	int ret = pwrite_full(fd, f, sizeof(*f), 0);

	if (!ret)
		ret = pwrite_full(fd, body, len, sizeof(*f));
	if (!ret && fsync(fd))
		ret = -errno;
	return ret;
}

int kvm_img_write(int dirfd, const char *name, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	struct kvm_img_frame f = {};
	char tmp[256];
	uint8_t *body;
	int fd, ret;

	if (len > KVM_IMG_MAX)
		return -EFBIG;
	body = malloc(len ? len : 1);
	if (!body)
		return -ENOMEM;
	protobuf_c_message_pack(msg, body);
	memcpy(f.magic, kvm_img_magic, sizeof(f.magic));
	f.version = htole32(KVM_IMG_VERSION);
	f.len = htole32(len);
	f.csum = htole64(XXH3_64bits(body, len));

	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = write_all_synced(fd, &f, body, len);
	close(fd);
	if (!ret && renameat(dirfd, tmp, dirfd, name))
		ret = -errno;
	if (ret)
		unlinkat(dirfd, tmp, 0);
out:
	free(body);
	return ret;
}

static int check_frame(const struct kvm_img_frame *f, off_t size, char *err, size_t errlen)
{
	if (memcmp(f->magic, kvm_img_magic, sizeof(f->magic))) {
		snprintf(err, errlen, "not a KVM state image (bad magic)");
		return -EINVAL;
	}
	if (le32toh(f->version) != KVM_IMG_VERSION) {
		snprintf(err, errlen, "format version %u, this plugin reads %u", le32toh(f->version),
			 KVM_IMG_VERSION);
		return -EINVAL;
	}
	if (le32toh(f->len) > KVM_IMG_MAX || (off_t)(sizeof(*f) + le32toh(f->len)) != size) {
		snprintf(err, errlen, "truncated or padded: %u bytes of state in a %lld-byte file",
			 le32toh(f->len), (long long)size);
		return -EINVAL;
	}
	return 0;
}

static int read_body(int fd, const struct kvm_img_frame *f, uint8_t **body, char *err, size_t errlen)
{
	size_t len = le32toh(f->len);
	ssize_t n;

	*body = malloc(len ? len : 1);
	if (!*body)
		return -ENOMEM;
	n = pread_full(fd, *body, len, sizeof(*f));
	if (n < 0)
		return (int)n;
	if ((size_t)n != len || XXH3_64bits(*body, len) != le64toh(f->csum)) {
		snprintf(err, errlen, "checksum mismatch: the image is corrupt");
		return -EINVAL;
	}
	return 0;
}

int kvm_img_read(int dirfd, const char *name, const ProtobufCMessageDescriptor *desc,
		 ProtobufCMessage **out, char *err, size_t errlen)
{
	struct kvm_img_frame f;
	uint8_t *body = NULL;
	struct stat st;
	ssize_t n;
	int fd, ret;

	err[0] = '\0';
	*out = NULL;
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = fstat(fd, &st) ? -errno : 0;
	if (!ret) {
		n = pread_full(fd, &f, sizeof(f), 0);
		ret = n < 0 ? (int)n : 0;
		if (!ret && n != sizeof(f)) {
			snprintf(err, errlen, "truncated: %zd bytes", n);
			ret = -EINVAL;
		}
	}
	if (!ret)
		ret = check_frame(&f, st.st_size, err, errlen);
	if (!ret)
		ret = read_body(fd, &f, &body, err, errlen);
	if (!ret) {
		*out = protobuf_c_message_unpack(desc, NULL, le32toh(f.len), body);
		if (!*out) {
			snprintf(err, errlen, "the state message does not decode");
			ret = -EINVAL;
		}
	}
	free(body);
	close(fd);
	return ret;
}
