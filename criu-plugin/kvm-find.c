// SPDX-License-Identifier: GPL-2.0
/* KVM's files, mappings and threads in a process (see kvm-find.h). */
#define LOG_PREFIX "kvm: "

#include <dirent.h>
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

static int note_fd(pid_t pid, struct kvm_found *k, int fd, const char *link)
{
	char *end;

	if (!strcmp(link, "/dev/kvm")) {
		if (k->nr_kvm_fds == KVM_FIND_MAX_FDS)
			goto full;
		k->kvm_fds[k->nr_kvm_fds++] = fd;
	} else if (!strcmp(link, VM_NAME)) {
		if (k->vm_fd >= 0) {
			pr_err("pid %d: two KVM VMs (fds %d and %d): one per process is supported\n",
			       pid, k->vm_fd, fd);
			return -EOPNOTSUPP;
		}
		k->vm_fd = fd;
	} else if (!strncmp(link, VCPU_NAME, strlen(VCPU_NAME))) {
		struct kvm_found_vcpu *v;

		if (k->nr_vcpus == KVM_FIND_MAX_VCPUS)
			goto full;
		v = &k->vcpus[k->nr_vcpus++];
		*v = (struct kvm_found_vcpu){ .fd = fd, .tid = -1 };
		v->id = strtoul(link + strlen(VCPU_NAME), &end, 10);
	}
	return 0;
full:
	pr_err("pid %d: more KVM files than the plugin has room for (at %s)\n", pid, link);
	return -EOPNOTSUPP;
}

static int scan_fds(pid_t pid, struct kvm_found *k)
{
	char path[64], link[256];
	struct dirent *de;
	int ret = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while (!ret && (de = readdir(d))) {
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (n < 0)
			continue;	/* closed meanwhile */
		link[n] = '\0';
		ret = note_fd(pid, k, atoi(de->d_name), link);
	}
	closedir(d);
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

		if (strncmp(v.path, VCPU_NAME, strlen(VCPU_NAME)))
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

/* The flags field (9th) of /proc/PID/task/TID/stat; comm may hold spaces. */
static int task_flags(pid_t pid, pid_t tid, unsigned long *flags, char *comm, size_t len)
{
	char path[64], buf[512], *open, *close;
	unsigned long f;
	FILE *fp;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	fp = fopen(path, "re");
	if (!fp)
		return -errno;
	n = fgets(buf, sizeof(buf), fp) ? 0 : -EIO;
	fclose(fp);
	open = strchr(buf, '(');
	close = strrchr(buf, ')');
	if (n || !open || !close)
		return -EIO;
	snprintf(comm, len, "%.*s", (int)(close - open - 1), open + 1);
	if (sscanf(close + 1, " %*c %*d %*d %*d %*d %*d %lu", &f) != 1)
		return -EIO;
	*flags = f;
	return 0;
}

static int scan_workers(pid_t pid, struct kvm_found *k)
{
	char path[64], comm[64];
	struct dirent *de;
	unsigned long flags = 0;
	int ret = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while (!ret && (de = readdir(d))) {
		pid_t tid = atoi(de->d_name);

		if (tid <= 0 || task_flags(pid, tid, &flags, comm, sizeof(comm)))
			continue;
		if (!(flags & PF_USER_WORKER))
			continue;
		if (strncmp(comm, "kvm-", 4)) {
			pr_err("pid %d: thread %d (%s) is a kernel worker the plugin cannot rebuild\n",
			       pid, tid, comm);
			ret = -EOPNOTSUPP;
		} else if (k->nr_workers == KVM_FIND_MAX_WORKERS) {
			ret = -EOPNOTSUPP;
		} else {
			k->workers[k->nr_workers++] = tid;
		}
	}
	closedir(d);
	return ret;
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
