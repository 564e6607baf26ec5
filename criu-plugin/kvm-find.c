// SPDX-License-Identifier: GPL-2.0
/* KVM's files, mappings and threads in a process (see kvm-find.h). */
#define LOG_PREFIX "kvm: "

#include <fcntl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvm-find.h"
#include "log.h"
#include "proc.h"

#define VCPU_NAME	"anon_inode:kvm-vcpu:"
#define STATS_NAME	"anon_inode:kvm-vcpu-stats:"
#define VM_NAME		"anon_inode:kvm-vm"
#define PF_USER_WORKER	0x00004000	/* include/linux/sched.h */

struct kvm_found_vcpu *kvm_found_vcpu_by_fd(struct kvm_found *k, int fd)
{
	int i;

	for (i = 0; i < k->nr_vcpus; i++)
		if (k->vcpus[i].fd == fd)
			return &k->vcpus[i];
	return NULL;
}

static struct kvm_found_vcpu *vcpu_by_id(struct kvm_found *k, uint32_t id)
{
	int i;

	for (i = 0; i < k->nr_vcpus; i++)
		if (k->vcpus[i].id == id)
			return &k->vcpus[i];
	return NULL;
}

enum kvm_file kvm_file_of_link(const char *link)
{
	if (!strcmp(link, "/dev/kvm"))
		return KVM_FILE_DEV;
	if (!strcmp(link, VM_NAME))
		return KVM_FILE_VM;
	if (!strncmp(link, VCPU_NAME, strlen(VCPU_NAME)))
		return KVM_FILE_VCPU;
	if (!strncmp(link, STATS_NAME, strlen(STATS_NAME)))
		return KVM_FILE_VCPU_STATS;
	return KVM_FILE_NONE;
}

static int note_fd(pid_t pid, struct kvm_found *k, int fd, const char *link)
{
	enum kvm_file kind = kvm_file_of_link(link);
	char *end;

	if (kind == KVM_FILE_DEV) {
		if (k->nr_kvm_fds == KVM_FIND_MAX_FDS)
			goto full;
		k->kvm_fds[k->nr_kvm_fds++] = fd;
	} else if (kind == KVM_FILE_VM) {
		if (k->vm_fd >= 0) {
			pr_err("pid %d: two KVM VMs (fds %d and %d): one per process is supported\n",
			       pid, k->vm_fd, fd);
			return -EOPNOTSUPP;
		}
		k->vm_fd = fd;
	} else if (kind == KVM_FILE_VCPU) {
		struct kvm_found_vcpu *v;

		if (k->nr_vcpus == KVM_FIND_MAX_VCPUS)
			goto full;
		v = &k->vcpus[k->nr_vcpus++];
		*v = (struct kvm_found_vcpu){ .fd = fd, .tid = -1, .stats_fd = -1 };
		v->id = strtoul(link + strlen(VCPU_NAME), &end, 10);
	} else if (kind == KVM_FILE_VCPU_STATS) {
		if (k->nr_stats == KVM_FIND_MAX_VCPUS)
			goto full;
		k->stats[k->nr_stats].fd = fd;
		k->stats[k->nr_stats++].id = strtoul(link + strlen(STATS_NAME), &end, 10);
	}
	return 0;
full:
	pr_err("pid %d: more KVM files than the plugin has room for (at %s)\n", pid, link);
	return -EOPNOTSUPP;
}

/* What the walks of /proc/PID/fd and /proc/PID/task fill in. */
struct scan {
	pid_t pid;
	struct kvm_found *k;
};

static int found_fd(int fd, const char *link, void *arg)
{
	struct scan *s = arg;

	return note_fd(s->pid, s->k, fd, link);
}

/*
 * QEMU 10 keeps each vCPU's stats fd open from its creation (QEMU 7.2 opens
 * one only for a query-stats, and closes it): give it to its vCPU, which
 * the restore makes it again from. Fd numbers are reused, so the two may
 * come in either order.
 */
static int attach_stats(pid_t pid, struct kvm_found *k)
{
	int i;

	for (i = 0; i < k->nr_stats; i++) {
		struct kvm_found_vcpu *v = vcpu_by_id(k, k->stats[i].id);

		if (!v || v->stats_fd >= 0) {
			pr_err("pid %d: stats fd %d of vCPU %u, which has %s\n", pid, k->stats[i].fd,
			       k->stats[i].id, v ? "another one" : "no fd");
			return -EOPNOTSUPP;
		}
		v->stats_fd = k->stats[i].fd;
	}
	return 0;
}

static int scan_fds(pid_t pid, struct kvm_found *k)
{
	struct scan s = { .pid = pid, .k = k };
	int ret = proc_fd_for_each(pid, found_fd, &s);

	if (!ret && k->vm_fd >= 0)
		ret = attach_stats(pid, k);
	return ret;
}

static int scan_maps(pid_t pid, struct kvm_found *k)
{
	struct proc_maps m = {};
	struct proc_vma v;
	int ret;

	ret = proc_maps_open(&m, pid, "maps");
	if (ret)
		return ret;
	while ((ret = proc_maps_next(&m, &v)) > 0) {
		struct kvm_found_vcpu *vc;

		if (kvm_file_of_link(v.path) != KVM_FILE_VCPU)
			continue;
		vc = vcpu_by_id(k, strtoul(v.path + strlen(VCPU_NAME), NULL, 10));
		if (!vc || vc->run_addr) {
			/* The dirty ring, or a vCPU mapped twice: kvm-dump says which. */
			k->nr_extra_maps++;
			continue;
		}
		vc->run_addr = v.start;
		vc->run_len = v.end - v.start;
	}
	proc_maps_close(&m);
	return ret;
}

static int note_worker(pid_t tid, void *arg)
{
	struct scan *s = arg;
	struct proc_stat st;

	if (proc_task_stat(s->pid, tid, &st) || !(st.flags & PF_USER_WORKER))
		return 0;
	if (strncmp(st.comm, "kvm-", 4)) {
		pr_err("pid %d: thread %d (%s) is a kernel worker the plugin cannot rebuild\n",
		       s->pid, tid, st.comm);
		return -EOPNOTSUPP;
	}
	if (s->k->nr_workers == KVM_FIND_MAX_WORKERS)
		return -EOPNOTSUPP;
	s->k->workers[s->k->nr_workers++] = tid;
	return 0;
}

static int scan_workers(pid_t pid, struct kvm_found *k)
{
	struct scan s = { .pid = pid, .k = k };

	return proc_task_for_each(pid, note_worker, &s);
}

int kvm_find(pid_t pid, struct kvm_found *k)
{
	int ret;

	memset(k, 0, sizeof(*k));
	k->vm_fd = -1;
	ret = scan_fds(pid, k);
	if (ret || k->vm_fd < 0)
		return ret;
	ret = scan_maps(pid, k);
	if (!ret)
		ret = scan_workers(pid, k);
	return ret;
}
