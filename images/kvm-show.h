/* SPDX-License-Identifier: GPL-2.0 */
/* criu-qemu-img on KVM state images (kvm-PID.img, kvm-files.img). */
#ifndef CRIU_QEMU_KVM_SHOW_H
#define CRIU_QEMU_KVM_SHOW_H

#include <stdbool.h>
#include <stdio.h>

/* Does the file start with the KVM state image magic? */
bool kvm_img_is_kvm(const char *file);

/*
 * Print it (text, or JSON; out NULL: only check it and say ok); 0, or 1
 * when it is bad (reason on stderr).
 */
int kvm_show(FILE *out, const char *file, bool json);

#endif
