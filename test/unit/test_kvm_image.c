// SPDX-License-Identifier: GPL-2.0
/*
 * KVM state images (images/kvm-image.c, criu-plugin/kvm-state.c): what the
 * dump builds comes back byte for byte, and a damaged, truncated, foreign
 * or missing image is refused with a reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers.h"
#include "kvm-image.h"
#include "kvm-state.h"

static char dir[256];
static int dirfd_;

static KvmVmEntry *sample_vm(void)
{
	static struct kvm_found k;
	struct kvm_bpf_memslot slots[2] = {
		{ .as_id = 0, .id = 3, .flags = 2, .gpa = 0xfffc0000, .size = 0x40000, .hva = 0x7f0000 },
		{ .as_id = 0, .id = 32765, .gpa = 0xfeffd000, .size = 0x3000, .internal = true },
	};
	struct kvm_bpf_irqfd irqfd = { .gsi = 9, .fd = 40, .resample_fd = 41 };
	struct kvm_kstate ks = { .memslots = slots, .nr_memslots = 2, .irqfds = &irqfd, .nr_irqfds = 1 };
	struct kvm_vcpu_state st = { .id = 3, .tsc_khz = 2600000, .mcg_cap = 0x10a, .sregs2 = true };
	uint64_t regs[18] = { 1, 2, 3 };
	char run[4096] = "kvm_run";
	KvmVmEntry *e;

	k = (struct kvm_found){ .vm_fd = 10, .nr_kvm_fds = 1, .kvm_fds = { 9 }, .nr_vcpus = 1 };
	k.vcpus[0] = (struct kvm_found_vcpu){ .fd = 11, .id = 3, .run_addr = 0x7f1000,
					      .run_len = sizeof(run), .tid = 1234 };
	ks.field[KVM_F_VM_TYPE] = 0;
	e = kvm_state_new_vm(4321, "0123-run", &k, &ks);
	assert_non_null(e);
	st.piece[KVP_REGS] = (struct kvm_blob){ regs, sizeof(regs) };
	assert_int_equal(kvm_state_add_vcpu(e, &st, &k.vcpus[0], NULL, run), 0);
	return e;
}

static void test_round_trip(void **state)
{
	KvmVmEntry *e = sample_vm(), *back = NULL;
	struct kvm_vcpu_state st;
	char err[128];
	uint8_t *a, *b;
	size_t la, lb;

	(void)state;
	/* KVM's own slot (id >= 32764) is not QEMU's to make again. */
	assert_int_equal(e->n_memslots, 1);
	assert_int_equal(kvm_img_write(dirfd_, "kvm-4321.img", &e->base), 0);
	assert_int_equal(kvm_img_read(dirfd_, "kvm-4321.img", &kvm_vm_entry__descriptor,
				      (ProtobufCMessage **)&back, err, sizeof(err)), 0);
	la = protobuf_c_message_get_packed_size(&e->base);
	lb = protobuf_c_message_get_packed_size(&back->base);
	assert_int_equal(la, lb);
	a = malloc(la);
	b = malloc(lb);
	protobuf_c_message_pack(&e->base, a);
	protobuf_c_message_pack(&back->base, b);
	assert_memory_equal(a, b, la);
	assert_string_equal(back->criu_run_id, "0123-run");
	assert_int_equal(back->irqfds[0]->resample_fd, 41);
	kvm_state_vcpu(back->vcpus[0], &st);
	assert_int_equal(st.id, 3);
	assert_int_equal(st.mcg_cap, 0x10a);
	assert_true(st.sregs2);
	assert_int_equal(st.piece[KVP_REGS].len, 18 * 8);
	assert_int_equal(((uint64_t *)st.piece[KVP_REGS].data)[2], 3);
	assert_int_equal(st.piece[KVP_LAPIC].len, 0);
	free(a);
	free(b);
	protobuf_c_message_free_unpacked(&e->base, NULL);
	protobuf_c_message_free_unpacked(&back->base, NULL);
}

static int damage_and_read(off_t off, int byte, off_t truncate_to)
{
	KvmVmEntry *e = sample_vm();
	ProtobufCMessage *back = NULL;
	char err[128];
	int fd, ret;

	assert_int_equal(kvm_img_write(dirfd_, "kvm-bad.img", &e->base), 0);
	protobuf_c_message_free_unpacked(&e->base, NULL);
	fd = openat(dirfd_, "kvm-bad.img", O_RDWR);
	assert_true(fd >= 0);
	if (byte >= 0) {
		char c = (char)byte;

		assert_int_equal(pwrite(fd, &c, 1, off), 1);
	}
	if (truncate_to >= 0)
		assert_int_equal(ftruncate(fd, truncate_to), 0);
	close(fd);
	ret = kvm_img_read(dirfd_, "kvm-bad.img", &kvm_vm_entry__descriptor, &back, err, sizeof(err));
	if (!ret)
		protobuf_c_message_free_unpacked(back, NULL);
	else
		assert_true(err[0]);	/* a reason for the log */
	return ret;
}

static void test_refusals(void **state)
{
	ProtobufCMessage *back = NULL;
	char err[128];

	(void)state;
	assert_int_equal(damage_and_read(0, 'X', -1), -EINVAL);	/* magic */
	assert_int_equal(damage_and_read(8, 7, -1), -EINVAL);		/* version */
	assert_int_equal(damage_and_read(40, 0xff, -1), -EINVAL);	/* a state byte: checksum */
	assert_int_equal(damage_and_read(0, -1, 30), -EINVAL);		/* truncated */
	assert_int_equal(damage_and_read(0, -1, 10), -EINVAL);		/* shorter than the frame */
	assert_int_equal(kvm_img_read(dirfd_, "kvm-none.img", &kvm_vm_entry__descriptor, &back, err,
				      sizeof(err)), -ENOENT);
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(th_tmpdir(dir, sizeof(dir), NULL, "test_kvm_image"), 0);
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
	return dirfd_ < 0;
}

static int teardown(void **state)
{
	(void)state;
	close(dirfd_);
	return th_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
