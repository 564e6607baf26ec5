/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm-find: what of KVM a QEMU process holds, seen from /proc: the VM fd,
 * its /dev/kvm fds, each vCPU's fd, id, kvm_run mapping and stats fd, and the
 * threads KVM itself runs in the process (the NX huge page recovery worker).
 */
#ifndef CRIU_QEMU_KVM_FIND_H
#define CRIU_QEMU_KVM_FIND_H

#include <stdint.h>
#include <sys/types.h>

#define KVM_FIND_MAX_VCPUS	256
#define KVM_FIND_MAX_FDS	8
#define KVM_FIND_MAX_WORKERS	8

struct kvm_found_vcpu {
	int fd;
	uint32_t id;			/* from the file's name, kvm-vcpu:N */
	uint64_t run_addr;		/* its mapping; 0: none */
	uint32_t run_len;
	pid_t tid;			/* filled in by the caller */
	int stats_fd;			/* KVM_GET_STATS_FD's fd, kvm-vcpu-stats:N; -1: none */
};

/* A vCPU stats fd, till the scan of fds is done and it can meet its vCPU. */
struct kvm_found_stats {
	int fd;
	uint32_t id;
};

struct kvm_found {
	int vm_fd;			/* -1: the process has no VM */
	int nr_kvm_fds;
	int kvm_fds[KVM_FIND_MAX_FDS];	/* /dev/kvm */
	int nr_vcpus;
	struct kvm_found_vcpu vcpus[KVM_FIND_MAX_VCPUS];
	int nr_stats;
	struct kvm_found_stats stats[KVM_FIND_MAX_VCPUS];
	int nr_workers;
	pid_t workers[KVM_FIND_MAX_WORKERS];
	int nr_extra_maps;		/* vCPU mappings beyond each one's kvm_run */
};

/* What an fd's /proc link says it is. */
enum kvm_file {
	KVM_FILE_NONE,
	KVM_FILE_DEV,		/* /dev/kvm */
	KVM_FILE_VM,		/* anon_inode:kvm-vm */
	KVM_FILE_VCPU,		/* anon_inode:kvm-vcpu:N */
	KVM_FILE_VCPU_STATS,	/* anon_inode:kvm-vcpu-stats:N (KVM_GET_STATS_FD) */
};

enum kvm_file kvm_file_of_link(const char *link);

/*
 * Look at pid's fds, mappings and threads. 0 (vm_fd -1 when there is no VM),
 * or -errno; -EOPNOTSUPP, logged, for what the plugin cannot take (two VMs,
 * more than it has room for, a stats fd of no vCPU or a vCPU's second).
 * Extra vCPU mappings are counted, for the caller to judge (nr_extra_maps).
 */
int kvm_find(pid_t pid, struct kvm_found *k);

struct kvm_found_vcpu *kvm_found_vcpu_by_fd(struct kvm_found *k, int fd);

#endif
