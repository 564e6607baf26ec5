// SPDX-License-Identifier: GPL-2.0
/*
 * CRIU plugin entry points. CRIU (criu/plugin.c) calls, for a dump:
 *   init(DUMP) -> PAUSE_DEVICES(root pid, before the freeze)
 *              -> CHECKPOINT_DEVICES(each pid, frozen, before mappings are
 *                 collected) -> ... -> exit(DUMP, ret) before the tasks are
 *                 unfrozen or killed;
 * and for a restore:
 *   init(RESTORE) -> RESUME_DEVICES_LATE(each pid, tasks still stopped)
 *                 -> exit(RESTORE, ret).
 * Hooks answer -ENOTSUP for processes that are not ours, so CRIU moves on
 * to the next plugin; see Documentation/design.md.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "criu-plugin.h"

#include "config.h"
#include "detect.h"
#include "dump.h"
#include "kvm-dump.h"
#include "kvm-restore.h"
#include "log.h"
#include "restore.h"

static struct qp_config config;
static int plugin_stage = -1;

static const char *stage_name(int stage)
{
	switch (stage) {
	case CR_PLUGIN_STAGE__DUMP: return "dump";
	case CR_PLUGIN_STAGE__PRE_DUMP: return "pre-dump";
	case CR_PLUGIN_STAGE__RESTORE: return "restore";
	}
	return "unknown";
}

static int qemu_plugin_init(int stage)
{
	int ret;

	plugin_stage = stage;
	ret = qp_config_load(&config);
	if (ret)
		return ret;
	pr_debug("loaded for %s (config %s; workers=%u odirect=%d min_block=%lluMiB enabled=%d)\n",
		 stage_name(stage), config.source, config.workers, config.odirect,
		 config.min_block_bytes >> 20, config.enabled);
	if (stage == CR_PLUGIN_STAGE__RESTORE)
		return qp_restore_init(&config);
	return 0;
}

static void qemu_plugin_fini(int stage, int ret)
{
	if (stage == CR_PLUGIN_STAGE__DUMP)
		qp_dump_finish(ret);
	else if (stage == CR_PLUGIN_STAGE__RESTORE)
		qp_restore_finish();
	pr_debug("%s finished with %d\n", stage_name(stage), ret);
}

/*
 * The plugin is built with -fvisibility=hidden: CRIU looks up only this
 * descriptor (dlsym "CR_PLUGIN_DESC"); the hooks reach it through the
 * constructors of CR_PLUGIN_REGISTER_HOOK.
 */
extern cr_plugin_desc_t CR_PLUGIN_DESC __attribute__((visibility("default")));
CR_PLUGIN_REGISTER("qemu_plugin", qemu_plugin_init, qemu_plugin_fini)

/* Detect and log once per hook; returns 1 for QEMU, 0 otherwise. */
static int detect(const char *hook, pid_t pid, struct qemu_proc *q)
{
	int ret = qemu_detect(pid, q);

	if (ret < 0) {
		pr_debug("%s: pid %d: cannot inspect: %s\n", hook, pid, strerror(-ret));
		return 0;
	}
	if (!ret) {
		pr_debug("%s: pid %d is not QEMU, nothing to do\n", hook, pid);
		return 0;
	}
	pr_info("%s: pid %d is QEMU (%s, %s, -m %lluMiB, qmp %s)\n", hook, pid, q->exe,
		q->kvm ? "kvm" : "tcg", q->mem_bytes >> 20, q->qmp_path[0] ? q->qmp_path : "none");
	return 1;
}

/*
 * PAUSE_DEVICES and CHECKPOINT_DEVICES answer -ENOTSUP even when they did
 * their work: CRIU stops calling further plugins at the first other value.
 * A refusal (-EOPNOTSUPP, which is -ENOTSUP on Linux) must fail the dump,
 * so it goes back to CRIU as -EINVAL.
 */
static int hook_result(int ret)
{
	if (!ret)
		return -ENOTSUP;
	return ret == -ENOTSUP ? -EINVAL : ret;
}
static int qemu_pause_devices(int pid)
{
	struct qemu_proc q;
	int ret;

	if (!detect("pause-devices", pid, &q))
		return -ENOTSUP;
	ret = qp_dump_pause(&config, &q);
	return hook_result(ret);
}
CR_PLUGIN_REGISTER_HOOK(CR_PLUGIN_HOOK__PAUSE_DEVICES, qemu_pause_devices)

static int qemu_checkpoint_devices(int pid)
{
	struct qemu_proc q;
	int ret;

	if (!detect("checkpoint-devices", pid, &q))
		return -ENOTSUP;
	ret = qp_dump_checkpoint(&config, &q);
	return hook_result(ret);
}
CR_PLUGIN_REGISTER_HOOK(CR_PLUGIN_HOOK__CHECKPOINT_DEVICES, qemu_checkpoint_devices)

/* KVM's files (/dev/kvm, the VM, the vCPUs) of a captured VM: kvm-dump.c. */
static int qemu_dump_ext_file(int fd, int id)
{
	return kvm_dump_ext_file(fd, id);
}
CR_PLUGIN_REGISTER_HOOK(CR_PLUGIN_HOOK__DUMP_EXT_FILE, qemu_dump_ext_file)

static int qemu_restore_ext_file(int id)
{
	return kvm_restore_ext_file(id);
}
CR_PLUGIN_REGISTER_HOOK(CR_PLUGIN_HOOK__RESTORE_EXT_FILE, qemu_restore_ext_file)

static int qemu_resume_devices_late(int pid)
{
	return qp_restore_resume(&config, pid);
}
CR_PLUGIN_REGISTER_HOOK(CR_PLUGIN_HOOK__RESUME_DEVICES_LATE, qemu_resume_devices_late)
