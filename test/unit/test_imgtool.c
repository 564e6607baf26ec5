// SPDX-License-Identifier: GPL-2.0
/*
 * criu-qemu-img extract, run as a program: an output that is the image
 * itself (same path, symlink, hard link) is refused and leaves the image
 * intact; a failed extract leaves an existing output untouched; a good
 * extract writes the block. The tool is the one built next to this test
 * ($(BUILD)/criu-qemu-img), or $CRIU_QEMU_IMG.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <libgen.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixedram.h"
#include "helpers.h"

#define PS	4096u
#define LEN	(1024 * 1024 + 5 * PS)	/* 261 pages, two chunks */

static const uint64_t present[] = { 0, 7, 255, 256, 260 };
static char tool[PATH_MAX];
static char dir[64];
static uint8_t *mem;
static uint64_t page256_off;	/* file offset of page 256 (chunk 1) of the block */

static void path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* One block "pc.ram" with a few present pages, made by the image library. */
static int make_image(const char *name)
{
	struct fr_image img;
	struct fr_block *b;
	int dfd, ret;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fr_image_init(&img, 77, 1))
		return -1;
	b = &img.blocks[0];
	snprintf(b->name, sizeof(b->name), "pc.ram");
	b->host_addr = 0x7f0000000000ULL;
	b->length = LEN;
	b->page_size = PS;
	ret = fr_layout(&img) || fr_create(&img, dfd, name, 0);
	for (size_t i = 0; !ret && i < sizeof(present) / sizeof(present[0]); i++) {
		fr_place_chunk(&img, b, present[i] / b->chunk_pages);
		if (pwrite(img.fd, mem + present[i] * PS, PS, fr_page_offset(b, present[i])) != PS)
			ret = -1;
		fr_bit_set(b->bitmap, present[i]);
	}
	for (uint64_t c = 0; !ret && c < b->nr_chunks; c++)
		b->csums[c] = fr_chunk_csum(b, c, mem + c * b->chunk_pages * PS);
	page256_off = fr_page_offset(b, 256);
	ret = ret || fr_finish(&img);
	fr_close(&img);
	close(dfd);
	return ret ? -1 : 0;
}

/* Run the tool with up to three arguments; stderr goes to dir/stderr.txt. */
static int run(const char *cmd, const char *a, const char *b, const char *c)
{
	char err[128];
	int status, fd;
	pid_t pid;

	path_in(err, sizeof(err), "stderr.txt");
	pid = fork();
	if (pid == 0) {
		fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 2);
		fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		execl(tool, tool, cmd, a, b, c, (char *)NULL);
		_exit(127);
	}
	assert_true(pid > 0);
	status = th_wait(pid, 0);
	assert_true(status >= 0 && WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void assert_stderr_has(const char *what)
{
	char path[128], *text;
	size_t len;

	path_in(path, sizeof(path), "stderr.txt");
	text = th_read_file(path, &len);
	assert_non_null(text);
	if (!strstr(text, what))
		fail_msg("stderr lacks '%s': %s", what, text);
	free(text);
}

/* An image left byte for byte as it was, and still valid. */
static void assert_image_intact(const char *img, const char *orig, size_t orig_len)
{
	size_t len;
	char *now = th_read_file(img, &len);

	assert_non_null(now);
	assert_int_equal(len, orig_len);
	assert_memory_equal(now, orig, len);
	free(now);
	assert_int_equal(run("verify", img, NULL, NULL), 0);
}

/* Refused when OUT is the image itself under name `out`. */
static void refuse_onto_image(const char *out)
{
	char img[128], outp[128], errp[128], *orig, *err;
	size_t len, elen;
	int rc;

	path_in(img, sizeof(img), "x.img");
	path_in(outp, sizeof(outp), out);
	orig = th_read_file(img, &len);
	assert_non_null(orig);
	rc = run("extract", img, "pc.ram", outp);
	path_in(errp, sizeof(errp), "stderr.txt");
	err = th_read_file(errp, &elen);
	assert_non_null(err);
	assert_image_intact(img, orig, len);
	assert_int_equal(rc, 2);
	assert_non_null(strstr(err, "is the image itself"));
	free(err);
	free(orig);
}

static void test_onto_same_path(void **state)
{
	(void)state;
	refuse_onto_image("x.img");
}

static void test_onto_symlink(void **state)
{
	char link[128];
	struct stat st;

	(void)state;
	path_in(link, sizeof(link), "link.img");
	assert_int_equal(symlink("x.img", link), 0);
	refuse_onto_image("link.img");
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	unlink(link);
}

static void test_onto_hard_link(void **state)
{
	char img[128], hard[128];

	(void)state;
	path_in(img, sizeof(img), "x.img");
	path_in(hard, sizeof(hard), "hard.img");
	assert_int_equal(link(img, hard), 0);
	refuse_onto_image("hard.img");
	unlink(hard);
}

static void assert_extracted(const char *path)
{
	size_t len;
	char *data = th_read_file(path, &len);

	assert_non_null(data);
	assert_int_equal(len, LEN);
	assert_memory_equal(data, mem, LEN);
	free(data);
}

/* No temporary file is left behind in the directory. */
static void assert_no_temp(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			fail_msg("temporary file left: %s", e->d_name);
	closedir(d);
}

static void test_extract_new_and_existing(void **state)
{
	char img[128], out[128];
	FILE *f;

	(void)state;
	path_in(img, sizeof(img), "x.img");
	path_in(out, sizeof(out), "out.raw");
	assert_int_equal(run("extract", img, "pc.ram", out), 0);
	assert_extracted(out);
	/* An existing, longer output is replaced as a whole. */
	f = fopen(out, "a");
	assert_non_null(f);
	fputs("tail", f);
	fclose(f);
	assert_int_equal(run("extract", img, "0", out), 0);
	assert_extracted(out);
	assert_no_temp();
	unlink(out);
}

/* Through a symlink to another file: that file is written, the link stays. */
static void test_extract_through_symlink(void **state)
{
	char img[128], out[128], link[128];
	struct stat st;
	FILE *f;

	(void)state;
	path_in(img, sizeof(img), "x.img");
	path_in(out, sizeof(out), "target.raw");
	path_in(link, sizeof(link), "out-link");
	f = fopen(out, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(symlink("target.raw", link), 0);
	assert_int_equal(run("extract", img, "pc.ram", link), 0);
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_extracted(out);
	unlink(link);
	unlink(out);
}

/* A corrupt chunk fails the extract; the old output is untouched. */
static void test_failed_extract_keeps_output(void **state)
{
	char bad[128], out[128], *old;
	size_t len;
	FILE *f;
	int fd;

	(void)state;
	assert_int_equal(make_image("bad.img"), 0);
	path_in(bad, sizeof(bad), "bad.img");
	path_in(out, sizeof(out), "old.raw");
	fd = open(bad, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, page256_off + 9), 1);
	close(fd);
	f = fopen(out, "w");
	assert_non_null(f);
	fputs("old contents\n", f);
	fclose(f);

	assert_int_equal(run("extract", bad, "pc.ram", out), 1);
	assert_stderr_has("checksum mismatch");
	old = th_read_file(out, &len);
	assert_non_null(old);
	assert_string_equal(old, "old contents\n");
	free(old);
	assert_no_temp();
	unlink(out);
	unlink(bad);
}

static int group_setup(void **state)
{
	const char *env = getenv("CRIU_QEMU_IMG");
	char self[PATH_MAX];
	ssize_t n;

	(void)state;
	if (env && *env) {
		snprintf(tool, sizeof(tool), "%s", env);
	} else {
		/* $(BUILD)/test/unit/test_imgtool -> $(BUILD)/criu-qemu-img */
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n < 0)
			return -1;
		self[n] = 0;
		snprintf(tool, sizeof(tool), "%s/../../criu-qemu-img", dirname(self));
	}
	if (access(tool, X_OK)) {
		fprintf(stderr, "no criu-qemu-img at %s\n", tool);
		return -1;
	}
	if (th_tmpdir(dir, sizeof(dir), "/tmp", "test_imgtool") || posix_memalign((void **)&mem, 4096, LEN))
		return -1;
	memset(mem, 0, LEN);
	for (size_t i = 0; i < sizeof(present) / sizeof(present[0]); i++)
		for (unsigned k = 0; k < PS; k++)
			mem[present[i] * PS + k] = (uint8_t)(present[i] * 31 + k * 7 + 1);
	return 0;
}

/* A fresh x.img before every test: the old tool destroyed it. */
static int fresh_image(void **state)
{
	(void)state;
	return make_image("x.img");
}

static int group_teardown(void **state)
{
	(void)state;
	free(mem);
	return th_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_onto_same_path, fresh_image),
		cmocka_unit_test_setup(test_onto_symlink, fresh_image),
		cmocka_unit_test_setup(test_onto_hard_link, fresh_image),
		cmocka_unit_test_setup(test_extract_new_and_existing, fresh_image),
		cmocka_unit_test_setup(test_extract_through_symlink, fresh_image),
		cmocka_unit_test_setup(test_failed_extract_keeps_output, fresh_image),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
