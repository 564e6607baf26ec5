/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm-state: the KVM state image's messages (proto/qemu-kvm.proto) built
 * from what the dump found, and read back into kvm-vcpu's form.
 */
#ifndef CRIU_QEMU_KVM_STATE_H
#define CRIU_QEMU_KVM_STATE_H

#include <stddef.h>
#include <sys/types.h>

#include "kvm-bpf.h"
#include "kvm-find.h"
#include "kvm-vcpu.h"
#include "qemu-kvm.pb-c.h"

/* "kvm-PID.img" */
void kvm_state_image_name(char *buf, size_t len, pid_t pid);

/*
 * A new VM message with what /proc and the kernel told: fds, type,
 * memslots QEMU made (not KVM's own), irqfds, ioeventfds, GSI routes,
 * coalesced zones, the MSR filter, VMX's TSS and identity-map addresses. All of it
 * malloc'ed: protobuf_c_message_free_unpacked(NULL) frees it. NULL: no memory.
 */
KvmVmEntry *kvm_state_new_vm(pid_t pid, const char *run_id, const struct kvm_found *k,
			     const struct kvm_kstate *ks);

/*
 * Append a vCPU: its captured state, its mapping's contents (run), its
 * thread, and what the kernel said of it (kv: the signal mask; NULL: none).
 */
int kvm_state_add_vcpu(KvmVmEntry *e, const struct kvm_vcpu_state *st,
		       const struct kvm_found_vcpu *v, const struct kvm_bpf_vcpu *kv,
		       const void *run);

/* The vCPU of the image as kvm-vcpu state; the blobs point into e. */
void kvm_state_vcpu(const KvmVcpuEntry *e, struct kvm_vcpu_state *st);

#endif
