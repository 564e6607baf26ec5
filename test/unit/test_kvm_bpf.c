// SPDX-License-Identifier: GPL-2.0
/*
 * kvm_bpf_read() against a VM this test makes itself with KVM ioctls (no
 * QEMU): memslots, irqfds, ioeventfds, vCPUs and their signal masks and
 * guest debugging, the MSR filter, GSI routes, coalesced zones and some
 * struct kvm fields must come back
 * exactly as set; kvm_bpf_defaults() gives a fresh VM's. kvm_bpf_decode() against hand-made
 * records for the refusals. The kernel half needs root and /dev/kvm.
 */
#define LOG_PREFIX "test-kvm-bpf: "
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <cmocka.h>

#include "kvm-bpf.h"
#include "log.h"

#define MIB (1ULL << 20)

static const char *kernel_skip;	/* why the kernel tests cannot run, or NULL */

struct slot_want {
	uint32_t slot;		/* as_id << 16 | id */
	uint32_t flags;
	uint64_t gpa, size;
	void *hva;
};

struct ioev_want {
	struct kvm_ioeventfd io;
	int fd;
};

/* The VM of test_reads_vm; everything closed by vm_close(). */
struct vm {
	int kvm, vm, vm_dup, vcpu[2];
	struct slot_want slot[6];
	unsigned int nr_slots;
	int irq_fd[2], resample_fd, irq_dup;
	bool resample;
	struct ioev_want ioev[3];
	bool x2apic_api, manual_protect;
	int max_vcpus, max_vcpu_id;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Moves fd to number want (closing the old one), for fd numbers no allocator would pick. */
static int move_fd(int fd, int want)
{
	assert_int_equal(dup2(fd, want), want);
	close(fd);
	return want;
}

static void add_slot(struct vm *v, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size)
{
	struct slot_want *s = &v->slot[v->nr_slots++];
	struct kvm_userspace_memory_region r;

	s->hva = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(s->hva != MAP_FAILED);
	s->slot = slot;
	s->flags = flags;
	s->gpa = gpa;
	s->size = size;
	r = (struct kvm_userspace_memory_region){
		.slot = slot, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = (uintptr_t)s->hva,
	};
	assert_int_equal(ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &r), 0);
}

static void del_slot(struct vm *v, unsigned int i)
{
	struct kvm_userspace_memory_region r = { .slot = v->slot[i].slot };

	assert_int_equal(ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &r), 0);
	munmap(v->slot[i].hva, v->slot[i].size);
	v->slot[i] = v->slot[--v->nr_slots];
}

static void add_irqfds(struct vm *v)
{
	struct kvm_irqfd irqfd = { .gsi = 5 };

	/* Its only fd is 101. */
	v->irq_fd[0] = move_fd(eventfd(0, EFD_CLOEXEC), 101);
	irqfd.fd = v->irq_fd[0];
	assert_int_equal(ioctl(v->vm, KVM_IRQFD, &irqfd), 0);

	/* At its own fd and at 150: the lowest is its fd. */
	v->irq_fd[1] = eventfd(0, EFD_CLOEXEC);
	v->irq_dup = dup2(v->irq_fd[1], 150);
	assert_int_equal(v->irq_dup, 150);
	irqfd = (struct kvm_irqfd){ .gsi = 9, .fd = v->irq_fd[1] };
	v->resample_fd = -1;
	v->resample = ioctl(v->kvm, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD_RESAMPLE) > 0;
	if (v->resample) {
		v->resample_fd = move_fd(eventfd(0, EFD_CLOEXEC), 133);
		irqfd.flags = KVM_IRQFD_FLAG_RESAMPLE;
		irqfd.resamplefd = v->resample_fd;
	}
	assert_int_equal(ioctl(v->vm, KVM_IRQFD, &irqfd), 0);
}

static void add_ioeventfds(struct vm *v)
{
	const struct kvm_ioeventfd io[3] = {
		{ .addr = 0xfe003000, .len = 4, .datamatch = 0x12345678,
		  .flags = KVM_IOEVENTFD_FLAG_DATAMATCH },
		{ .addr = 0x510, .len = 2, .flags = KVM_IOEVENTFD_FLAG_PIO },
		/* length 0: KVM puts it on the FAST_MMIO bus too */
		{ .addr = 0xfe004000, .len = 0 },
	};

	for (int i = 0; i < 3; i++) {
		v->ioev[i].io = io[i];
		v->ioev[i].fd = eventfd(0, EFD_CLOEXEC);
		if (i == 1)
			v->ioev[i].fd = move_fd(v->ioev[i].fd, 203);
		v->ioev[i].io.fd = v->ioev[i].fd;
		assert_int_equal(ioctl(v->vm, KVM_IOEVENTFD, &v->ioev[i].io), 0);
	}
}

static void enable_caps(struct vm *v)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_X2APIC_API,
		.args[0] = KVM_X2APIC_API_USE_32BIT_IDS | KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK };

	v->x2apic_api = ioctl(v->vm, KVM_ENABLE_CAP, &cap) == 0;
	cap = (struct kvm_enable_cap){ .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE };
	v->manual_protect = ioctl(v->vm, KVM_ENABLE_CAP, &cap) == 0;
	v->max_vcpus = ioctl(v->vm, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	v->max_vcpu_id = ioctl(v->vm, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPU_ID);
}

static void vm_open(struct vm *v)
{
	memset(v, 0, sizeof(*v));
	v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	assert_true(v->kvm >= 0);
	v->vm = ioctl(v->kvm, KVM_CREATE_VM, 0);
	assert_true(v->vm >= 0);
	v->vm_dup = dup2(v->vm, 120);
	assert_int_equal(ioctl(v->vm, KVM_CREATE_IRQCHIP, 0), 0);
	enable_caps(v);
	assert_int_equal(ioctl(v->vm, KVM_SET_BOOT_CPU_ID, 3), 0);	/* only before vCPUs */

	add_slot(v, 0, 0, 0, 2 * MIB);
	add_slot(v, 5, KVM_MEM_LOG_DIRTY_PAGES, 0x100000000ULL, 1 * MIB);
	add_slot(v, 7, 0, 0x200000, 4096);	/* deleted in the test */
	if (ioctl(v->kvm, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) > 0)
		add_slot(v, 9, KVM_MEM_READONLY, 0xffe00000, 2 * MIB);
	else
		printf("test_kvm_bpf: KVM_MEM_READONLY unsupported, not tested\n");
	if (ioctl(v->kvm, KVM_CHECK_EXTENSION, KVM_CAP_MULTI_ADDRESS_SPACE) > 1)
		add_slot(v, 1 << 16 | 2, 0, 0, 64 * 1024);
	else
		printf("test_kvm_bpf: one address space only, address space 1 not tested\n");

	v->vcpu[0] = ioctl(v->vm, KVM_CREATE_VCPU, 0);
	v->vcpu[1] = ioctl(v->vm, KVM_CREATE_VCPU, 3);
	assert_true(v->vcpu[0] >= 0 && v->vcpu[1] >= 0);
	add_irqfds(v);
	add_ioeventfds(v);
}

static void vm_close(struct vm *v)
{
	for (unsigned int i = 0; i < v->nr_slots; i++)
		munmap(v->slot[i].hva, v->slot[i].size);
	for (int i = 0; i < 3; i++)
		close(v->ioev[i].fd);
	close(v->irq_fd[0]);
	close(v->irq_fd[1]);
	close(v->irq_dup);
	if (v->resample_fd >= 0)
		close(v->resample_fd);
	close(v->vcpu[0]);
	close(v->vcpu[1]);
	close(v->vm_dup);
	close(v->vm);
	close(v->kvm);
}

static void check_memslots(const struct vm *v, const struct kvm_kstate *ks)
{
	unsigned int user = 0;

	for (unsigned int i = 0; i < ks->nr_memslots; i++) {
		const struct kvm_bpf_memslot *got = &ks->memslots[i];
		const struct slot_want *want = NULL;

		if (got->internal) {
			printf("test_kvm_bpf: KVM's own slot %u at 0x%llx\n", got->id,
			       (unsigned long long)got->gpa);
			continue;
		}
		user++;
		for (unsigned int j = 0; j < v->nr_slots; j++)
			if (v->slot[j].slot == ((uint32_t)got->as_id << 16 | got->id))
				want = &v->slot[j];
		assert_non_null(want);
		assert_int_equal(got->flags, want->flags);
		assert_int_equal(got->gpa, want->gpa);
		assert_int_equal(got->size, want->size);
		assert_int_equal(got->hva, (uintptr_t)want->hva);
		if (i > 0)	/* sorted by (as_id, id) */
			assert_true(((uint32_t)ks->memslots[i - 1].as_id << 16 | ks->memslots[i - 1].id) <
				    ((uint32_t)got->as_id << 16 | got->id));
	}
	assert_int_equal(user, v->nr_slots);
}

static void check_irqfds(const struct vm *v, const struct kvm_kstate *ks)
{
	bool seen[2] = {};

	assert_int_equal(ks->nr_irqfds, 2);
	for (unsigned int i = 0; i < 2; i++) {
		const struct kvm_bpf_irqfd *q = &ks->irqfds[i];

		if (q->gsi == 5) {
			assert_int_equal(q->fd, 101);
			assert_int_equal(q->resample_fd, -1);
			seen[0] = true;
		} else {
			assert_int_equal(q->gsi, 9);
			assert_int_equal(q->fd, v->irq_fd[1]);	/* lower than its dup at 150 */
			assert_int_equal(q->resample_fd, v->resample ? 133 : -1);
			seen[1] = true;
		}
	}
	assert_true(seen[0] && seen[1]);
}

static void check_ioeventfds(const struct vm *v, const struct kvm_kstate *ks)
{
	/* Three, not four: the FAST_MMIO twin of the length-0 one is not reported. */
	assert_int_equal(ks->nr_ioeventfds, 3);
	for (int i = 0; i < 3; i++) {
		const struct kvm_ioeventfd *want = &v->ioev[i].io;
		const struct kvm_bpf_ioeventfd *got = NULL;

		for (unsigned int j = 0; j < ks->nr_ioeventfds; j++)
			if (ks->ioeventfds[j].addr == want->addr)
				got = &ks->ioeventfds[j];
		assert_non_null(got);
		assert_int_equal(got->len, want->len);
		assert_int_equal(got->flags, want->flags);
		assert_int_equal(got->datamatch, want->datamatch);
		assert_int_equal(got->fd, v->ioev[i].fd);
	}
}

static void check_fields(const struct vm *v, const struct kvm_kstate *ks)
{
	static const struct { enum kvm_field id; } need[] = {
		{ KVM_F_CREATED_VCPUS }, { KVM_F_ONLINE_VCPUS }, { KVM_F_IRQCHIP_MODE },
		{ KVM_F_BSP_VCPU_ID }, { KVM_F_X2APIC_FORMAT }, { KVM_F_MAX_VCPUS },
	};

	for (unsigned int i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!kvm_bpf_has_field(ks, need[i].id))
			fail_msg("this kernel's BTF lacks %s", kvm_bpf_field_name(need[i].id));
	assert_int_equal(ks->field[KVM_F_CREATED_VCPUS], 2);
	assert_int_equal(ks->field[KVM_F_ONLINE_VCPUS], 2);
	assert_int_equal(ks->field[KVM_F_IRQCHIP_MODE], 1);	/* KVM_IRQCHIP_KERNEL */
	assert_int_equal(ks->field[KVM_F_BSP_VCPU_ID], 3);
	assert_int_equal(ks->field[KVM_F_MAX_VCPUS], v->max_vcpus);
	if (kvm_bpf_has_field(ks, KVM_F_MAX_VCPU_IDS) && v->max_vcpu_id > 0)
		assert_int_equal(ks->field[KVM_F_MAX_VCPU_IDS], v->max_vcpu_id);
	assert_int_equal(ks->field[KVM_F_X2APIC_FORMAT], v->x2apic_api);
	if (kvm_bpf_has_field(ks, KVM_F_X2APIC_BCAST_QUIRK_OFF))
		assert_int_equal(ks->field[KVM_F_X2APIC_BCAST_QUIRK_OFF], v->x2apic_api);
	if (kvm_bpf_has_field(ks, KVM_F_MANUAL_DIRTY_LOG))
		assert_int_equal(ks->field[KVM_F_MANUAL_DIRTY_LOG],
				 v->manual_protect ? KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE : 0);
	if (kvm_bpf_has_field(ks, KVM_F_VM_TYPE))
		assert_int_equal(ks->field[KVM_F_VM_TYPE], 0);	/* KVM_X86_DEFAULT_VM */
	if (kvm_bpf_has_field(ks, KVM_F_DIRTY_RING_SIZE))
		assert_int_equal(ks->field[KVM_F_DIRTY_RING_SIZE], 0);
}

static void check_vm(const struct vm *v, const struct kvm_kstate *ks)
{
	assert_int_equal(ks->vm_fd, v->vm);
	assert_true(ks->vm_own_mm);
	assert_true(ks->nr_as >= 1);
	assert_int_equal(ks->nr_vm_fds, 2);
	assert_int_equal(ks->vm_fds[0], v->vm);
	assert_int_equal(ks->vm_fds[1], 120);
	assert_int_equal(ks->nr_kvm_fds, 1);
	assert_int_equal(ks->kvm_fds[0], v->kvm);
	assert_int_equal(ks->nr_vcpus, 2);
	assert_int_equal(ks->vcpus[0].fd, v->vcpu[0]);
	assert_int_equal(ks->vcpus[0].id, 0);
	assert_int_equal(ks->vcpus[1].fd, v->vcpu[1]);
	assert_int_equal(ks->vcpus[1].id, 3);
	check_memslots(v, ks);
	check_irqfds(v, ks);
	check_ioeventfds(v, ks);
	check_fields(v, ks);
}

static int read_timed(pid_t pid, struct kvm_kstate *ks)
{
	double t = now_ms();
	int ret = kvm_bpf_read(pid, ks);

	printf("test_kvm_bpf: kvm_bpf_read(%d): %.1f ms\n", pid, now_ms() - t);
	return ret;
}

static void test_reads_vm(void **state)
{
	struct kvm_kstate ks;
	struct vm v;

	(void)state;
	if (kernel_skip) {
		printf("test_kvm_bpf: %s\n", kernel_skip);
		skip();
	}
	vm_open(&v);
	assert_int_equal(read_timed(getpid(), &ks), 0);
	check_vm(&v, &ks);
	kvm_bpf_free(&ks);

	/* A deleted slot (size 0) is gone, the others stay. */
	for (unsigned int i = 0; i < v.nr_slots; i++)
		if (v.slot[i].slot == 7)
			del_slot(&v, i);
	assert_int_equal(read_timed(getpid(), &ks), 0);
	check_vm(&v, &ks);
	kvm_bpf_free(&ks);
	vm_close(&v);
}

/*
 * The kernel's iterator buffer holds 32 KiB: 819 records. A VM whose
 * records fit but not behind those of lower fds is shown again in an
 * empty buffer, and must come out whole; one that fits in no buffer is
 * refused as an overflow.
 */
#define NR_LOW_EVENTFDS	100
#define NR_FIT		700	/* 700 + the VM's ~26 records < 819 < those + 100 */
#define NR_TOO_MANY	900

static void add_pio_ioeventfds(int vm, int efd, unsigned int from, unsigned int to)
{
	for (unsigned int i = from; i < to; i++) {
		struct kvm_ioeventfd io = { .addr = 0x1000 + 2 * i, .len = 2, .fd = efd,
					    .flags = KVM_IOEVENTFD_FLAG_PIO };

		assert_int_equal(ioctl(vm, KVM_IOEVENTFD, &io), 0);
	}
}

static void test_buffer_limits(void **state)
{
	int low[NR_LOW_EVENTFDS], kvm, vm, efd;
	struct kvm_kstate ks;

	(void)state;
	if (kernel_skip) {
		printf("test_kvm_bpf: %s\n", kernel_skip);
		skip();
	}
	for (int i = 0; i < NR_LOW_EVENTFDS; i++)
		low[i] = eventfd(0, EFD_CLOEXEC);
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	efd = eventfd(0, EFD_CLOEXEC);
	assert_true(low[NR_LOW_EVENTFDS - 1] >= 0 && vm > low[NR_LOW_EVENTFDS - 1] && efd >= 0);

	add_pio_ioeventfds(vm, efd, 0, NR_FIT);
	assert_int_equal(read_timed(getpid(), &ks), 0);
	assert_int_equal(ks.nr_ioeventfds, NR_FIT);
	for (unsigned int i = 0; i < NR_FIT; i++) {
		assert_int_equal(ks.ioeventfds[i].addr, 0x1000 + 2 * i);
		assert_int_equal(ks.ioeventfds[i].fd, efd);
	}
	kvm_bpf_free(&ks);

	add_pio_ioeventfds(vm, efd, NR_FIT, NR_TOO_MANY);
	assert_int_equal(read_timed(getpid(), &ks), -E2BIG);
	assert_int_equal(ks.vm_fd, -1);

	close(efd);
	close(vm);
	close(kvm);
	for (int i = 0; i < NR_LOW_EVENTFDS; i++)
		close(low[i]);
}

/* A child with no fds but a pipe's end, stopped in pause() once it said so. */
static pid_t spawn_bare_child(void)
{
	int p[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 3);
		close_range(4, ~0U, 0);
		if (write(3, "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}

static void test_no_vm(void **state)
{
	struct kvm_kstate ks;
	pid_t pid;
	int ret;

	(void)state;
	if (kernel_skip) {
		printf("test_kvm_bpf: %s\n", kernel_skip);
		skip();
	}
	pid = spawn_bare_child();
	ret = read_timed(pid, &ks);
	/* killed before any assert: a child left behind holds the test's stdout open */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_int_equal(ret, 0);
	assert_int_equal(ks.vm_fd, -1);
	assert_int_equal(ks.nr_vm_fds + ks.nr_kvm_fds + ks.nr_vcpus, 0);
	assert_int_equal(ks.nr_memslots + ks.nr_irqfds + ks.nr_ioeventfds, 0);
	kvm_bpf_free(&ks);
}

/* ------------------------------------------------------------ MSR filter */

#define BITMAP_BYTES(nmsrs)	(((nmsrs) + 63) / 64 * 8)	/* what KVM copies */

static uint8_t big_bitmap[KVM_MSR_FILTER_MAX_BITMAP_SIZE], small_bitmap[16];

static void fill_bitmaps(void)
{
	for (unsigned int i = 0; i < sizeof(big_bitmap); i++)
		big_bitmap[i] = (i * 37 + 11) & 0xff;
	/* a zero stretch, which the iterator does not write */
	memset(big_bitmap + 48, 0, 96);
	big_bitmap[sizeof(big_bitmap) - 1] = 0x80;
	for (unsigned int i = 0; i < sizeof(small_bitmap); i++)
		small_bitmap[i] = 0xa0 + i;	/* past 70 bits too: KVM keeps whole longs */
}

/* Default deny; a 0x600-byte bitmap for reads and writes, a 16-byte one for writes. */
static void set_two_range_filter(int vm)
{
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_DENY };

	fill_bitmaps();
	f.ranges[0] = (struct kvm_msr_filter_range){ .flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
		.nmsrs = KVM_MSR_FILTER_MAX_BITMAP_SIZE * 8, .base = 0x10, .bitmap = big_bitmap };
	/* an empty range in between: KVM keeps only the others, in order */
	f.ranges[2] = (struct kvm_msr_filter_range){ .flags = KVM_MSR_FILTER_WRITE,
		.nmsrs = 70, .base = 0xc0000080, .bitmap = small_bitmap };
	assert_int_equal(ioctl(vm, KVM_X86_SET_MSR_FILTER, &f), 0);
}

static void check_range(const struct kvm_bpf_msr_range *r, uint32_t flags, uint32_t nmsrs,
			uint32_t base, const uint8_t *bitmap)
{
	unsigned int n = BITMAP_BYTES(nmsrs);

	assert_int_equal(r->flags, flags);
	assert_int_equal(r->nmsrs, nmsrs);
	assert_int_equal(r->base, base);
	assert_memory_equal(r->bitmap, bitmap, n);
	for (unsigned int i = n; i < sizeof(r->bitmap); i++)
		assert_int_equal(r->bitmap[i], 0);
}

static void check_two_range_filter(const struct kvm_kstate *ks)
{
	const struct kvm_bpf_msr_filter *f = &ks->msr_filter;

	assert_true(f->present);
	assert_int_equal(f->flags, KVM_MSR_FILTER_DEFAULT_DENY);
	assert_int_equal(f->nr_ranges, 2);
	check_range(&f->range[0], KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
		    KVM_MSR_FILTER_MAX_BITMAP_SIZE * 8, 0x10, big_bitmap);
	check_range(&f->range[1], KVM_MSR_FILTER_WRITE, 70, 0xc0000080, small_bitmap);
}

static int new_vm(int *kvm)
{
	int vm;

	*kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	assert_true(*kvm >= 0);
	vm = ioctl(*kvm, KVM_CREATE_VM, 0);
	assert_true(vm >= 0);
	return vm;
}

static void test_msr_filter(void **state)
{
	struct kvm_msr_filter empty = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW }, arg;
	struct kvm_kstate ks, again;
	int kvm, vm;

	(void)state;
	if (kernel_skip) {
		printf("test_kvm_bpf: %s\n", kernel_skip);
		skip();
	}
	vm = new_vm(&kvm);
	if (ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_X86_MSR_FILTER) <= 0) {
		printf("test_kvm_bpf: no KVM_CAP_X86_MSR_FILTER\n");
		close(vm);
		close(kvm);
		skip();
	}
	/* No filter: not present. */
	assert_int_equal(read_timed(getpid(), &ks), 0);
	assert_false(ks.msr_filter.present);
	kvm_bpf_free(&ks);

	set_two_range_filter(vm);
	assert_int_equal(read_timed(getpid(), &ks), 0);
	check_two_range_filter(&ks);

	/* An empty filter is one, unlike none. */
	assert_int_equal(ioctl(vm, KVM_X86_SET_MSR_FILTER, &empty), 0);
	assert_int_equal(read_timed(getpid(), &again), 0);
	assert_true(again.msr_filter.present);
	assert_int_equal(again.msr_filter.flags, KVM_MSR_FILTER_DEFAULT_ALLOW);
	assert_int_equal(again.msr_filter.nr_ranges, 0);
	kvm_bpf_free(&again);

	/* What was read, given to KVM_X86_SET_MSR_FILTER, reads back the same. */
	kvm_bpf_msr_filter_arg(&ks.msr_filter, &arg);
	assert_int_equal(ioctl(vm, KVM_X86_SET_MSR_FILTER, &arg), 0);
	assert_int_equal(read_timed(getpid(), &again), 0);
	check_two_range_filter(&again);
	kvm_bpf_free(&again);
	kvm_bpf_free(&ks);
	close(vm);
	close(kvm);
}

/* ------------------------------------------------- GSI routes, signal masks */

/* KVM drops SIGKILL and SIGSTOP from a vCPU's mask. */
#define SIGSET_WANT	0x8000000100a0f003ULL
#define SIGSET_GIVEN	(SIGSET_WANT | 1ULL << (SIGKILL - 1) | 1ULL << (SIGSTOP - 1))

static void set_sigmask(int vcpu, uint64_t mask)
{
	struct kvm_signal_mask *m = calloc(1, sizeof(*m) + sizeof(mask));

	assert_non_null(m);
	m->len = sizeof(mask);
	memcpy(m->sigset, &mask, sizeof(mask));
	assert_int_equal(ioctl(vcpu, KVM_SET_SIGNAL_MASK, m), 0);
	free(m);
}

#define IRQCHIP(g, chip, p) { .gsi = (g), .type = KVM_IRQ_ROUTING_IRQCHIP, \
			      .u.irqchip = { .irqchip = (chip), .pin = (p) } }
#define MSI(g, lo, hi, d, fl, id) { .gsi = (g), .type = KVM_IRQ_ROUTING_MSI, .flags = (fl), \
				    .u.msi = { .address_lo = (lo), .address_hi = (hi), .data = (d), .devid = (id) } }

/* QEMU's pattern: GSI 0 is IOAPIC pin 2, no GSI 2; then MSI routes. */
static const struct kvm_irq_routing_entry custom_routes[] = {
	IRQCHIP(0, KVM_IRQCHIP_IOAPIC, 2),
	IRQCHIP(1, KVM_IRQCHIP_PIC_MASTER, 1),
	IRQCHIP(1, KVM_IRQCHIP_IOAPIC, 1),
	IRQCHIP(9, KVM_IRQCHIP_PIC_SLAVE, 1),
	IRQCHIP(9, KVM_IRQCHIP_IOAPIC, 9),
	IRQCHIP(23, KVM_IRQCHIP_IOAPIC, 23),
	MSI(24, 0xfee00000, 0, 0x4021, 0, 0),
	/* x2APIC format (32-bit ids): address_hi's low byte must be 0 */
	MSI(30, 0xfee01004, 0x100, 0xc0de, 0, 0),
};

static int route_cmp(const void *a, const void *b)
{
	const struct kvm_irq_routing_entry *x = a, *y = b;

	if (x->gsi != y->gsi)
		return x->gsi < y->gsi ? -1 : 1;
	if (x->type != y->type)
		return x->type < y->type ? -1 : 1;
	return x->u.irqchip.irqchip < y->u.irqchip.irqchip ? -1 : x->u.irqchip.irqchip > y->u.irqchip.irqchip;
}

static void set_routes(int vm, const struct kvm_irq_routing_entry *e, unsigned int n)
{
	struct kvm_irq_routing *r = calloc(1, sizeof(*r) + n * sizeof(*e));

	assert_non_null(r);
	r->nr = n;
	memcpy(r->entries, e, n * sizeof(*e));
	assert_int_equal(ioctl(vm, KVM_SET_GSI_ROUTING, r), 0);
	free(r);
}

static void check_routes(const struct kvm_kstate *ks, const struct kvm_irq_routing_entry *want, unsigned int n)
{
	struct kvm_irq_routing_entry sorted[64];

	assert_true(n <= 64);
	memcpy(sorted, want, n * sizeof(*want));
	qsort(sorted, n, sizeof(*sorted), route_cmp);
	assert_int_equal(ks->nr_routes, n);
	for (unsigned int i = 0; i < n; i++)
		assert_memory_equal(&ks->routes[i], &sorted[i], sizeof(sorted[i]));
}

/* KVM_CREATE_IRQCHIP's table: GSIs 0-15 on a PIC pin and the IOAPIC pin of the same number, 16-23 on the IOAPIC. */
static void check_default_routes(const struct kvm_kstate *ks)
{
	struct kvm_irq_routing_entry want[40];
	unsigned int n = 0;

	for (unsigned int gsi = 0; gsi < 24; gsi++) {
		if (gsi < 16)
			want[n++] = (struct kvm_irq_routing_entry)IRQCHIP(gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER :
									  KVM_IRQCHIP_PIC_SLAVE, gsi % 8);
		want[n++] = (struct kvm_irq_routing_entry)IRQCHIP(gsi, KVM_IRQCHIP_IOAPIC, gsi);
	}
	check_routes(ks, want, n);
}

static void test_routes_sigsets(void **state)
{
	struct kvm_enable_cap x2apic = { .cap = KVM_CAP_X2APIC_API, .args[0] = KVM_X2APIC_API_USE_32BIT_IDS };
	struct kvm_irq_routing_entry devid_route = MSI(31, 0xfee00000, 0, 0x31, KVM_MSI_VALID_DEVID, 0x1234);
	struct kvm_kstate ks;
	int kvm, vm, vcpu[2];

	(void)state;
	if (kernel_skip) {
		printf("test_kvm_bpf: %s\n", kernel_skip);
		skip();
	}
	vm = new_vm(&kvm);
	assert_int_equal(ioctl(vm, KVM_CREATE_IRQCHIP, 0), 0);
	assert_int_equal(ioctl(vm, KVM_ENABLE_CAP, &x2apic), 0);
	vcpu[0] = ioctl(vm, KVM_CREATE_VCPU, 0);
	vcpu[1] = ioctl(vm, KVM_CREATE_VCPU, 1);
	assert_true(vcpu[0] >= 0 && vcpu[1] >= 0);
	set_sigmask(vcpu[1], SIGSET_GIVEN);

	assert_int_equal(read_timed(getpid(), &ks), 0);
	assert_int_equal(ks.nr_vcpus, 2);
	assert_false(ks.vcpus[0].sigset_active);
	assert_int_equal(ks.vcpus[0].sigset, 0);
	assert_true(ks.vcpus[1].sigset_active);
	assert_int_equal(ks.vcpus[1].sigset, SIGSET_WANT);
	check_default_routes(&ks);
	kvm_bpf_free(&ks);

	set_routes(vm, custom_routes, sizeof(custom_routes) / sizeof(custom_routes[0]));
	set_sigmask(vcpu[0], 1ULL << (SIGUSR1 - 1));
	assert_int_equal(read_timed(getpid(), &ks), 0);
	check_routes(&ks, custom_routes, sizeof(custom_routes) / sizeof(custom_routes[0]));
	assert_true(ks.vcpus[0].sigset_active);
	assert_int_equal(ks.vcpus[0].sigset, 1ULL << (SIGUSR1 - 1));
	kvm_bpf_free(&ks);

	/* x86 KVM accepts KVM_MSI_VALID_DEVID but keeps neither it nor the devid. */
	set_routes(vm, &devid_route, 1);
	assert_int_equal(read_timed(getpid(), &ks), 0);
	assert_int_equal(ks.nr_routes, 1);
	assert_int_equal(ks.routes[0].u.msi.data, 0x31);
	assert_int_equal(ks.routes[0].flags, 0);
	assert_int_equal(ks.routes[0].u.msi.devid, 0);
	kvm_bpf_free(&ks);

	close(vcpu[0]);
	close(vcpu[1]);
	close(vm);
	close(kvm);
}

/* ------------------------------------- coalesced zones, guest debug, VMX */

/* Registered in this order; KVM keeps that order. The PIO one is QEMU's RTC index port. */
static const struct kvm_coalesced_mmio_zone test_zones[] = {
	{ .addr = 0xfed00000, .size = 0x1000, .pio = 0 },
	{ .addr = 0x70, .size = 1, .pio = 1 },
};

static void check_zones(const struct kvm_kstate *ks, unsigned int n)
{
	assert_int_equal(ks->nr_zones, n);
	for (unsigned int i = 0; i < n; i++) {
		assert_int_equal(ks->zones[i].addr, test_zones[i].addr);
		assert_int_equal(ks->zones[i].size, test_zones[i].size);
		assert_int_equal(ks->zones[i].pio, test_zones[i].pio);
	}
}

static void test_zones_debug_vmx(void **state)
{
	struct kvm_guest_debug dbg = { .control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP };
	struct kvm_kstate ks;
	int kvm, vm, vcpu[2];

	(void)state;
	if (kernel_skip) {
		printf("test_kvm_bpf: %s\n", kernel_skip);
		skip();
	}
	vm = new_vm(&kvm);
	assert_int_equal(read_timed(getpid(), &ks), 0);
	check_zones(&ks, 0);
	kvm_bpf_free(&ks);
	for (unsigned int i = 0; i < 2; i++)
		assert_int_equal(ioctl(vm, KVM_REGISTER_COALESCED_MMIO, &test_zones[i]), 0);
	vcpu[0] = ioctl(vm, KVM_CREATE_VCPU, 0);
	vcpu[1] = ioctl(vm, KVM_CREATE_VCPU, 1);
	assert_true(vcpu[0] >= 0 && vcpu[1] >= 0);
	assert_int_equal(ioctl(vcpu[1], KVM_SET_GUEST_DEBUG, &dbg), 0);

	assert_int_equal(read_timed(getpid(), &ks), 0);
	check_zones(&ks, 2);
	assert_int_equal(ks.nr_vcpus, 2);
	assert_int_equal(ks.vcpus[0].guest_debug, 0);
	assert_int_equal(ks.vcpus[1].guest_debug, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP);
	/* No kvm_vmx in this kernel (PVM): not read, and not an error. */
	printf("test_kvm_bpf: kvm_vmx %s\n", ks.vmx.present ? "read" : "not in this kernel");
	if (!ks.vmx.present)
		assert_int_equal(ks.vmx.tss_addr, 0);
	kvm_bpf_free(&ks);

	/* Unregistering a zone, and debugging off, show too. */
	assert_int_equal(ioctl(vm, KVM_UNREGISTER_COALESCED_MMIO, &test_zones[1]), 0);
	dbg.control = 0;
	assert_int_equal(ioctl(vcpu[1], KVM_SET_GUEST_DEBUG, &dbg), 0);
	assert_int_equal(read_timed(getpid(), &ks), 0);
	check_zones(&ks, 1);
	assert_int_equal(ks.vcpus[1].guest_debug, 0);
	kvm_bpf_free(&ks);

	close(vcpu[0]);
	close(vcpu[1]);
	close(vm);
	close(kvm);
}

/* ------------------------------------------------------------ defaults */

static void test_defaults(void **state)
{
	struct kvm_kstate ks;

	(void)state;
	if (kernel_skip) {
		printf("test_kvm_bpf: %s\n", kernel_skip);
		skip();
	}
	assert_int_equal(kvm_bpf_defaults(&ks), 0);
	assert_true(ks.vm_fd >= 0);
	assert_int_equal(ks.nr_vcpus, 0);
	assert_false(ks.msr_filter.present);
	assert_int_equal(ks.field[KVM_F_IRQCHIP_MODE], 0);
	if (kvm_bpf_has_field(&ks, KVM_F_EXCEPTION_PAYLOAD))
		assert_int_equal(ks.field[KVM_F_EXCEPTION_PAYLOAD], 0);
	if (kvm_bpf_has_field(&ks, KVM_F_USER_SPACE_MSR_MASK))
		assert_int_equal(ks.field[KVM_F_USER_SPACE_MSR_MASK], 0);
	assert_int_equal(ks.field[KVM_F_CREATED_VCPUS], 0);
	printf("test_kvm_bpf: a fresh VM: %u GSI routes, max_vcpus %llu, default_tsc_khz %llu\n",
	       ks.nr_routes, (unsigned long long)ks.field[KVM_F_MAX_VCPUS],
	       (unsigned long long)ks.field[KVM_F_DEFAULT_TSC_KHZ]);
	kvm_bpf_free(&ks);
	/* The VM is gone again: our process has none. */
	assert_int_equal(kvm_bpf_read(getpid(), &ks), 0);
	assert_int_equal(ks.vm_fd, -1);
	kvm_bpf_free(&ks);
}

/*
 * The plugin loads the iterator once (kvm_bpf_prepare) and reads several
 * VMs with it: each read must walk its own VM, not skip it as one seen.
 */
static void test_prepared_reads_each_vm(void **state)
{
	struct kvm_kstate a, b;

	(void)state;
	if (kernel_skip) {
		printf("test_kvm_bpf: %s\n", kernel_skip);
		skip();
	}
	assert_int_equal(kvm_bpf_prepare(), 0);
	assert_int_equal(kvm_bpf_defaults(&a), 0);
	assert_int_equal(kvm_bpf_defaults(&b), 0);
	assert_true(a.vm_fd >= 0 && b.vm_fd >= 0);
	assert_true(a.nr_routes == b.nr_routes);
	assert_true(b.field[KVM_F_MAX_VCPUS] > 0);
	assert_memory_equal(a.field, b.field, sizeof(a.field));
	kvm_bpf_free(&a);
	kvm_bpf_free(&b);
	kvm_bpf_release();
}

/* Hand-made iterator output for kvm_bpf_decode(). */
#define REC(t, f, ...) ((struct kvm_rec){ .type = (t), .fd = (f), __VA_ARGS__ })
#define VM(f, key) REC(KVM_REC_VM, f, .vm = { .kvm = (key), .nr_as = 1, .own_mm = 1 })
#define EVENTFD(f, key) REC(KVM_REC_EVENTFD, f, .eventfd = { .ctx = (key) })
#define ROUTE(g, t, chip, p) REC(KVM_REC_ROUTE, 4, .route = { .gsi = (g), .type = (t), \
							   .irqchip = { .irqchip = (chip), .pin = (p) } })
#define MSR_FILTER(n) REC(KVM_REC_MSR_FILTER, 4, .msr_filter = { .count = (n), .default_allow = 1 })
#define MSR_RANGE(i, n) REC(KVM_REC_MSR_RANGE, 4, .msr_range = { .index = (i), .flags = 1, .nmsrs = (n), \
								 .bitmap_size = BITMAP_BYTES(n) })

static void test_decode_refusals(void **state)
{
	struct kvm_kstate ks;
	struct kvm_rec two_vms[] = { VM(4, 0x1000), VM(5, 0x2000) };
	struct kvm_rec missing[] = { VM(4, 0x1000), REC(KVM_REC_MISSING, 4, .field = { .id = KVM_F_SLOT_ID_NODE }) };
	struct kvm_rec truncated[] = { VM(4, 0x1000), REC(KVM_REC_TRUNCATED, 4, .truncated = { .walk = KVM_WALK_IOEVENTFDS }) };
	struct kvm_rec lost_eventfd[] = { VM(4, 0x1000), EVENTFD(6, 0xa0),
		REC(KVM_REC_IRQFD, 4, .irqfd = { .eventfd = 0xa0, .resamplefd = 0xb0, .gsi = 3 }) };
	struct kvm_rec lost_ioeventfd[] = { VM(4, 0x1000),
		REC(KVM_REC_IOEVENTFD, 4, .ioeventfd = { .addr = 0x10, .len = 4, .eventfd = 0xc0 }) };
	struct kvm_rec foreign_vcpu[] = { VM(4, 0x1000), REC(KVM_REC_VCPU, 5, .vcpu = { .kvm = 0x2000, .id = 1 }) };
	struct kvm_rec bad_type[] = { REC(KVM_REC_NR, 4) };
	struct kvm_rec other_bus[] = { VM(4, 0x1000), EVENTFD(5, 0xc0),
		REC(KVM_REC_IOEVENTFD, 4, .ioeventfd = { .eventfd = 0xc0, .bus = KVM_IOEV_BUS_OTHER }) };
	struct kvm_rec hv_route[] = { VM(4, 0x1000), ROUTE(4, KVM_IRQ_ROUTING_HV_SINT, 0, 0) };
	struct kvm_rec range_no_filter[] = { VM(4, 0x1000), MSR_RANGE(0, 8) };
	struct kvm_rec range_twice[] = { VM(4, 0x1000), MSR_FILTER(2), MSR_RANGE(0, 8), MSR_RANGE(0, 8) };
	struct kvm_rec ranges_short[] = { VM(4, 0x1000), MSR_FILTER(2), MSR_RANGE(0, 8) };
	struct kvm_rec bitmap_past[] = { VM(4, 0x1000), MSR_FILTER(1), MSR_RANGE(0, 64),
		REC(KVM_REC_MSR_BITMAP, 4, .msr_bitmap = { .range = 0, .offset = 0, .len = 16 }) };
	struct kvm_rec range_too_big[] = { VM(4, 0x1000), MSR_FILTER(1), MSR_RANGE(0, 0x600 * 8 + 1) };
	struct kvm_rec bad_slave_pin[] = { VM(4, 0x1000), ROUTE(4, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_PIC_SLAVE, 3) };
	struct kvm_rec bad_zone[] = { VM(4, 0x1000), REC(KVM_REC_ZONE, 4, .zone = { .addr = 0x70, .size = 1, .pio = 2 }) };

	(void)state;
	assert_int_equal(kvm_bpf_decode(two_vms, 2, &ks), -EOPNOTSUPP);
	assert_int_equal(kvm_bpf_decode(missing, 2, &ks), -EOPNOTSUPP);
	assert_int_equal(kvm_bpf_decode(truncated, 2, &ks), -E2BIG);
	assert_int_equal(kvm_bpf_decode(lost_eventfd, 3, &ks), -ENOENT);
	assert_int_equal(kvm_bpf_decode(lost_ioeventfd, 2, &ks), -ENOENT);
	assert_int_equal(kvm_bpf_decode(foreign_vcpu, 2, &ks), -EOPNOTSUPP);
	assert_int_equal(kvm_bpf_decode(bad_type, 1, &ks), -EINVAL);
	assert_int_equal(kvm_bpf_decode(other_bus, 3, &ks), -EOPNOTSUPP);
	assert_int_equal(kvm_bpf_decode(hv_route, 2, &ks), -EOPNOTSUPP);
	assert_int_equal(kvm_bpf_decode(range_no_filter, 2, &ks), -EINVAL);
	assert_int_equal(kvm_bpf_decode(range_twice, 4, &ks), -EINVAL);
	assert_int_equal(kvm_bpf_decode(ranges_short, 3, &ks), -EINVAL);
	assert_int_equal(kvm_bpf_decode(bitmap_past, 4, &ks), -EINVAL);
	assert_int_equal(kvm_bpf_decode(range_too_big, 3, &ks), -EINVAL);
	assert_int_equal(kvm_bpf_decode(bad_slave_pin, 2, &ks), -EINVAL);
	assert_int_equal(kvm_bpf_decode(bad_zone, 2, &ks), -EINVAL);
	assert_int_equal(ks.vm_fd, -1);
	assert_null(ks.memslots);
	assert_string_equal(kvm_bpf_field_name(KVM_F_SLOT_ID_NODE), "kvm_memory_slot.id_node");
}

static void test_decode_accepts(void **state)
{
	struct kvm_kstate ks;
	struct kvm_rec recs[] = {
		REC(KVM_REC_DEV_KVM, 3),
		VM(4, 0x1000),
		REC(KVM_REC_MISSING, 4, .field = { .id = KVM_F_VM_TYPE }),
		REC(KVM_REC_VM_FIELD, 4, .field = { .id = KVM_F_CREATED_VCPUS, .value = 2 }),
		REC(KVM_REC_MEMSLOT, 4, .slot = { .base_gfn = 0x100, .npages = 16, .hva = 0x7f0000, .flags = 1, .id = 9 }),
		REC(KVM_REC_MEMSLOT, 4, .slot = { .base_gfn = 0, .npages = 1, .hva = 0x7e0000, .id = 2 }),
		/* its eventfd at fds after the VM's: matched all the same, as the lowest */
		REC(KVM_REC_IOEVENTFD, 4, .ioeventfd = { .addr = 0x20, .eventfd = 0xd0, .wildcard = 1,
							 .bus = KVM_IOEV_BUS_PIO }),
		MSR_FILTER(1),
		MSR_RANGE(0, 100),
		REC(KVM_REC_MSR_BITMAP, 4, .msr_bitmap = { .range = 0, .offset = 0, .len = 16, .bytes = { 1, [15] = 2 } }),
		ROUTE(9, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_PIC_SLAVE, 9),
		ROUTE(9, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_IOAPIC, 9),
		REC(KVM_REC_ROUTE, 4, .route = { .gsi = 2, .type = KVM_IRQ_ROUTING_MSI,
			.msi = { .address_lo = 0xfee00000, .data = 0x41, .flags = 1, .devid = 7 } }),
		REC(KVM_REC_ZONE, 4, .zone = { .addr = 0xcfa, .size = 2, .pio = 1 }),
		REC(KVM_REC_ZONE, 4, .zone = { .addr = 0xa0000, .size = 0x20000 }),
		REC(KVM_REC_VMX, 4, .vmx = { .tss_addr = 0xfeffd000, .identity_map_addr = 0xfeffc000,
					     .readable = 1 }),
		REC(KVM_REC_VCPU, 6, .vcpu = { .kvm = 0x1000, .id = 0, .sigset_active = 1, .sigset = 0x5,
					       .guest_debug = KVM_GUESTDBG_ENABLE }),
		VM(7, 0x1000),
		EVENTFD(8, 0xd0),
		EVENTFD(9, 0xd0),
	};

	(void)state;
	assert_int_equal(kvm_bpf_decode(recs, sizeof(recs) / sizeof(recs[0]), &ks), 0);
	assert_int_equal(ks.vm_fd, 4);
	assert_int_equal(ks.nr_vm_fds, 2);
	assert_int_equal(ks.vm_fds[1], 7);
	assert_int_equal(ks.nr_kvm_fds, 1);
	assert_false(kvm_bpf_has_field(&ks, KVM_F_VM_TYPE));
	assert_true(kvm_bpf_has_field(&ks, KVM_F_CREATED_VCPUS));
	assert_int_equal(ks.field[KVM_F_CREATED_VCPUS], 2);
	assert_int_equal(ks.nr_memslots, 2);
	assert_int_equal(ks.memslots[0].id, 2);
	assert_int_equal(ks.memslots[1].id, 9);
	assert_int_equal(ks.memslots[1].gpa, 0x100000);
	assert_int_equal(ks.memslots[1].size, 16 * 4096);
	assert_int_equal(ks.nr_ioeventfds, 1);
	assert_int_equal(ks.ioeventfds[0].fd, 8);
	assert_int_equal(ks.ioeventfds[0].flags, KVM_IOEVENTFD_FLAG_PIO);
	assert_true(ks.msr_filter.present);
	assert_int_equal(ks.msr_filter.flags, KVM_MSR_FILTER_DEFAULT_ALLOW);
	assert_int_equal(ks.msr_filter.nr_ranges, 1);
	assert_int_equal(ks.msr_filter.range[0].nmsrs, 100);
	assert_int_equal(ks.msr_filter.range[0].bitmap[0], 1);
	assert_int_equal(ks.msr_filter.range[0].bitmap[15], 2);
	assert_int_equal(ks.nr_routes, 3);
	assert_int_equal(ks.routes[0].gsi, 2);	/* sorted by gsi, then type, then irqchip */
	assert_int_equal(ks.routes[0].flags, KVM_MSI_VALID_DEVID);
	assert_int_equal(ks.routes[0].u.msi.devid, 7);
	assert_int_equal(ks.routes[1].u.irqchip.irqchip, KVM_IRQCHIP_PIC_SLAVE);
	assert_int_equal(ks.routes[1].u.irqchip.pin, 1);	/* the kernel's 9 */
	assert_int_equal(ks.routes[2].u.irqchip.irqchip, KVM_IRQCHIP_IOAPIC);
	assert_int_equal(ks.nr_vcpus, 1);
	assert_true(ks.vcpus[0].sigset_active);
	assert_int_equal(ks.vcpus[0].sigset, 0x5);
	assert_int_equal(ks.vcpus[0].guest_debug, KVM_GUESTDBG_ENABLE);
	assert_int_equal(ks.nr_zones, 2);	/* in KVM's order, not sorted */
	assert_int_equal(ks.zones[0].addr, 0xcfa);
	assert_int_equal(ks.zones[0].pio, 1);
	assert_int_equal(ks.zones[1].size, 0x20000);
	assert_int_equal(ks.zones[1].pio, 0);
	assert_true(ks.vmx.present);
	assert_int_equal(ks.vmx.tss_addr, 0xfeffd000);
	assert_int_equal(ks.vmx.identity_map_addr, 0xfeffc000);
	kvm_bpf_free(&ks);
}

/* kvm_vmx beside another vendor's VM struct: not read, and no error. */
static void test_decode_vmx_unreadable(void **state)
{
	struct kvm_kstate ks;
	struct kvm_rec recs[] = {
		VM(4, 0x1000),
		REC(KVM_REC_VMX, 4, .vmx = { .tss_addr = 0x1234, .readable = 0 }),
	};

	(void)state;
	assert_int_equal(kvm_bpf_decode(recs, 2, &ks), 0);
	assert_false(ks.vmx.present);
	assert_int_equal(ks.vmx.tss_addr, 0);
	kvm_bpf_free(&ks);
}

static const char *why_kernel_skip(void)
{
	int fd;

	if (geteuid())
		return "skipped the kernel tests: loading BPF needs root";
	if (access("/sys/kernel/btf/vmlinux", R_OK))
		return "skipped the kernel tests: the kernel has no BTF";
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return "skipped the kernel tests: /dev/kvm cannot be opened";
	close(fd);
	return NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_vm),
		cmocka_unit_test(test_buffer_limits),
		cmocka_unit_test(test_no_vm),
		cmocka_unit_test(test_msr_filter),
		cmocka_unit_test(test_routes_sigsets),
		cmocka_unit_test(test_zones_debug_vmx),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_prepared_reads_each_vm),
		cmocka_unit_test(test_decode_refusals),
		cmocka_unit_test(test_decode_accepts),
		cmocka_unit_test(test_decode_vmx_unreadable),
	};

	kernel_skip = why_kernel_skip();
	if (getenv("TEST_KVM_BPF_VERBOSE"))
		qp_log_set_level(LOG_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
