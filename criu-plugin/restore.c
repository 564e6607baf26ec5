// SPDX-License-Identifier: GPL-2.0
/*
 * Restore side. CRIU recreates the guest-RAM VMAs empty (the dump left no
 * pages there); in RESUME_DEVICES_LATE, with the tasks still stopped in
 * their final layout, we fill them from the image in parallel.
 *
 * CRIU ignores a failing RESUME_DEVICES_LATE and resumes the tasks anyway,
 * so two rules keep a guest from ever running with wrong memory:
 * every image is fully validated (header, bitmaps, checksum tables, size)
 * in init, whose failure aborts the restore; and if page data turns out
 * corrupt while filling, the task is killed before CRIU can resume it,
 * which makes CRIU's final detach, and so the restore, fail.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "criu-plugin.h"

#include "ckpt-id.h"
#include "dump.h"
#include "restore-fill.h"
#include "handoff.h"
#include "kvm-restore.h"
#include "fixedram.h"
#include "log.h"
#include "proc.h"
#include "restore.h"
#include "restore-check.h"
#include "restore-guard.h"
#include "fault-inject.h"

#define MAX_IMAGES 16

static struct fr_image images[MAX_IMAGES];
static int nr_images;

static bool is_ram_image(const char *name)
{
	size_t n = strlen(name);

	return !strncmp(name, "qemu-ram-", 9) && n > 13 && !strcmp(name + n - 4, ".img");
}

/*
 * A RAM image of this checkpoint: valid, named for the pid in its header,
 * written by the CRIU run that wrote CRIU's images (an image of another run
 * is skipped: *used = false), the only one for its pid, and covering no page
 * that CRIU stored itself.
 */
static int open_image(int dirfd, const char *name, const char *run_id, bool *used)
{
	struct fr_image *img = &images[nr_images];
	char err[512] = "", want[64];
	int ret, i;

	*used = false;
	if (nr_images == MAX_IMAGES) {
		pr_err("more than %d QEMU RAM images\n", MAX_IMAGES);
		return -E2BIG;
	}
	ret = fr_open(img, dirfd, name, err, sizeof(err));
	if (ret) {
		pr_err("RAM image %s is unusable: %s\n", name, err[0] ? err : strerror(-ret));
		return ret;
	}
	ret = -EINVAL;
	fr_image_name(want, sizeof(want), img->pid);
	if (strcmp(name, want)) {
		pr_err("RAM image %s holds the RAM of pid %u, whose image is named %s: a renamed or "
		       "copied image; remove it from the checkpoint directory\n", name, img->pid, want);
		goto out;
	}
	if (strcmp(img->criu_run_id, run_id)) {
		pr_warn("RAM image %s is not of this checkpoint (written by CRIU run %s, the checkpoint "
			"by run %s): ignored\n", name, img->criu_run_id[0] ? img->criu_run_id : "(none)",
			run_id);
		ret = 0;
		goto out;
	}
	for (i = 0; i < nr_images; i++)
		if (images[i].pid == img->pid) {
			pr_err("two RAM images of this checkpoint for pid %u\n", img->pid);
			goto out;
		}
	ret = restore_check_criu_pages(dirfd, img, err, sizeof(err));
	if (ret) {
		pr_err("RAM image %s does not fit CRIU's images: %s\n", name, err);
		goto out;
	}
	pr_info("RAM image %s: pid %u, %u blocks, of this checkpoint (CRIU run %s%s)\n", name,
		img->pid, img->nr_blocks, run_id,
		ckpt_id_claim_image(name) ? "" : "; the inventory does not list it");
	*used = true;
	nr_images++;
	return 0;
out:
	fr_close(img);
	return ret;
}

/* Calls fn for every file named like one of our images, until one fails. */
static int for_each_image(int (*fn)(const char *name, void *arg), void *arg)
{
	struct dirent *de;
	int dirfd, ret = 0;
	DIR *d;

	dirfd = fcntl(criu_get_image_dir(), F_DUPFD_CLOEXEC, 0);
	if (dirfd < 0)
		return -errno;
	d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return -errno;
	}
	rewinddir(d);
	while (!ret && (de = readdir(d)))
		if (is_ram_image(de->d_name))
			ret = fn(de->d_name, arg);
	closedir(d);
	return ret;
}

static int use_image(const char *name, void *arg)
{
	int *found = arg;
	bool used;
	int ret;

	ret = open_image(criu_get_image_dir(), name, ckpt_id_checkpoint_run_id(), &used);
	*found += used;
	return ret;
}

static int ignore_image(const char *name, void *arg)
{
	(void)arg;
	pr_info("%s ignored: the checkpoint was dumped without the plugin, CRIU's images hold guest "
		"RAM, so this image is from another checkpoint\n", name);
	return 0;
}

static int refuse_image(const char *name, void *arg)
{
	(void)arg;
	pr_err("%s: the checkpoint has no CRIU run id (dumped by CRIU < 4.0), so nothing tells whether "
	       "this RAM image belongs to it; remove the image, or restore with the CRIU and plugin "
	       "that dumped it\n", name);
	return -EINVAL;
}

/*
 * CRIU's inventory says whether the checkpoint needs our images (the dump
 * registered us) and of which CRIU run they must be; see ckpt-id.h. Every
 * image used is validated here, since init's failure aborts the restore.
 */
int qp_restore_init(const struct qp_config *c)
{
	int needed = ckpt_id_restore_needed(), found = 0, ret;
	const char *run_id = ckpt_id_checkpoint_run_id();

	fault_crash_point("restore-init");
	if (needed == 1 && !c->enabled) {
		pr_err("this checkpoint's guest RAM is in %s's images, but the plugin is disabled "
		       "(enabled = no): restoring it would start the guest without its memory\n",
		       CKPT_PLUGIN_NAME);
		return -EPERM;
	}
	if (!c->enabled)
		return 0;
	if (needed == 0)
		return for_each_image(ignore_image, NULL);
	ret = kvm_restore_init();
	if (ret)
		return ret;
	if (!run_id)
		return for_each_image(refuse_image, NULL);
	ret = for_each_image(use_image, &found);
	if (!ret && !found) {
		pr_err("the checkpoint (CRIU run %s) was dumped with %s, but no RAM image of it "
		       "(qemu-ram-<pid>.img) is in the image directory\n", run_id, CKPT_PLUGIN_NAME);
		ret = -ENOENT;
	}
	if (ret)
		qp_restore_finish();
	return ret;
}

static struct fr_image *image_for(pid_t pid)
{
	pid_t ns_pid = qp_ns_pid(pid);
	int i;

	for (i = 0; i < nr_images; i++)
		if (images[i].pid == (uint32_t)ns_pid)
			return &images[i];
	return NULL;
}

/* Kill the task and wait until it can no longer be resumed. */
static void kill_task(pid_t pid)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	struct proc_stat st;
	int i;

	kill(pid, SIGKILL);
	for (i = 0; i < 500; i++) {
		if (proc_task_stat(pid, 0, &st) || st.state == 'Z' || st.state == 'X')
			return;
		nanosleep(&ts, NULL);
	}
}

static bool all_private(const struct fr_image *img)
{
	uint32_t i;

	for (i = 0; i < img->nr_blocks; i++)
		if (img->blocks[i].backing != FR_BACKING_ANON_PRIVATE)
			return false;
	return true;
}

/*
 * Lazy restore: the RAM ranges (still empty) go to a guardian exactly as
 * at a dump's handoff, and it is told to give everything back at once:
 * the guest runs as soon as CRIU lets it, faults are served first, the
 * rest is filled in the background. Strict: a chunk failing its checksum
 * kills the task (it never had those pages), and faults get whole verified
 * chunks. Shared blocks are filled eagerly (the handoff could leave one
 * to CRIU, which has no copy of it here).
 */
static int lazy_restore(pid_t pid, const struct fr_image *img)
{
	struct handoff_opts o = { .log_dirfd = criu_get_image_dir(), .strict = true };
	struct handoff *h = NULL;
	double t0 = now_ms();
	char name[64];
	pid_t guardian;
	int ret;

	if (!all_private(img)) {
		pr_info("pid %d: shared RAM blocks: eager restore\n", pid);
		return -EOPNOTSUPP;
	}
	fr_image_name(name, sizeof(name), img->pid);
	/*
	 * Until each range is handed over it is empty and unregistered: if
	 * CRIU dies meanwhile, the stop guard keeps the threads but the one
	 * running our injected syscalls from reading zeros there (that one
	 * stops with them once its call is done).
	 */
	ret = restore_guard_arm(pid, pid);
	if (ret)
		return ret;
	ret = handoff_start_opts(pid, img, name, &o, &h);
	if (!ret)
		ret = restore_guard_disarm(pid);
	if (ret && !h)
		return ret;
	guardian = handoff_guardian_pid(h);
	handoff_finish(h, HANDOFF_GIVE_BACK);
	if (ret)
		return ret;
	pr_info("pid %d: lazy restore: guest RAM handed to guardian %d in %.1f ms; it fills in the "
		"background\n", pid, guardian, now_ms() - t0);
	return 0;
}

static int restore_ram(const struct qp_config *c, pid_t pid)
{
	/* Reads take what the page cache has and the rest with O_DIRECT (restore-fill.c). */
	struct ram_io_opts o = { .workers = c->workers, .odirect = true };
	struct fr_image *img = image_for(pid);
	struct ram_io_stats st;
	int ret;

	if (!img) {
		pr_debug("resume-devices-late: pid %d: no RAM image, nothing to do\n", pid);
		return -ENOTSUP;
	}
	ret = restore_check_vmas(pid, img);
	if (ret) {
		pr_err("pid %d: not restoring RAM into mappings it was not dumped from; killing the "
		       "task\n", pid);
		kill_task(pid);
		return ret;
	}
	if (c->lazy_restore) {
		ret = lazy_restore(pid, img);
		if (!ret)
			return 0;
		if (ret != -EOPNOTSUPP)
			pr_warn("pid %d: lazy restore failed (%s); filling RAM now\n", pid, strerror(-ret));
	}
	ret = restore_guard_arm(pid, 0);
	if (!ret) {
		fault_crash_point("restore-fill");
		ret = ram_fill_from_image(pid, img, &o, &st);
	}
	if (!ret)
		ret = restore_guard_disarm(pid);
	if (ret) {
		pr_err("pid %d: restoring guest RAM failed: %s; killing the task so that it never "
		       "runs with wrong memory\n", pid, strerror(-ret));
		kill_task(pid);
		return ret;
	}
	pr_info("pid %d: RAM restored: %llu pages (%.1f MiB) in %.1f ms (%.0f MiB/s)\n", pid,
		(unsigned long long)st.pages_written, st.bytes_written / 1048576.0, st.ms,
		st.ms > 0 ? st.bytes_written / 1048576.0 * 1000 / st.ms : 0);
	return 0;
}

/*
 * The VM goes back after guest RAM, under the stop guard for every thread
 * but the main one, which runs the injected calls: if CRIU dies midway,
 * no vCPU thread runs on a half-built VM.
 */
static int restore_kvm(pid_t pid)
{
	int ret = restore_guard_arm(pid, pid);

	if (!ret)
		ret = kvm_restore_resume(pid);
	if (!ret)
		ret = restore_guard_disarm(pid);
	if (ret) {
		pr_err("pid %d: its KVM VM could not be rebuilt; killing the task\n", pid);
		kill_task(pid);
	}
	return ret;
}

int qp_restore_resume(const struct qp_config *c, pid_t pid)
{
	int ret = restore_ram(c, pid);

	if ((ret && ret != -ENOTSUP) || !kvm_restore_has_vm(pid))
		return ret;
	return restore_kvm(pid);
}

void qp_restore_finish(void)
{
	int i;

	kvm_restore_finish();
	for (i = 0; i < nr_images; i++)
		fr_close(&images[i]);
	nr_images = 0;
}
