// SPDX-License-Identifier: GPL-2.0
/*
 * Checkpoint identity through CRIU's own inventory (see ckpt-id.h), with
 * the criu binary's own functions (criu-weak.h).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "ckpt-id.h"
#include "criu-weak.h"
#include "log.h"

#define RUN_ID_LEN 36		/* a UUID string */
#define NO_DUMP_CRIU_RUN_ID 0x7f	/* CRIU's marker: the inventory had none */

static bool registered;	/* once per dump, however many QEMUs: CRIU counts entries */

int ckpt_id_dump_supported(void)
{
	if (criu_run_id && add_inventory_plugin && strlen(criu_run_id) == RUN_ID_LEN)
		return 0;
	pr_err("this CRIU exports no run id or plugin inventory (CRIU >= 4.0 does): RAM images "
	       "could not be bound to their checkpoint, so the plugin does not dump RAM\n");
	return -ENOTSUP;
}

const char *ckpt_id_run_id(void)
{
	return criu_run_id ? criu_run_id : "";
}

int ckpt_id_register(void)
{
	if (registered)
		return 0;
	if (!add_inventory_plugin || add_inventory_plugin(CKPT_PLUGIN_NAME)) {
		pr_err("cannot record %s in CRIU's inventory\n", CKPT_PLUGIN_NAME);
		return -ENOMEM;
	}
	registered = true;
	pr_info("recorded in CRIU's inventory: this checkpoint needs %s at restore (CRIU run %s)\n",
		CKPT_PLUGIN_NAME, ckpt_id_run_id());
	return 0;
}

/* "qemu_plugin:qemu-ram-PID.img": the name CRIU prints if the image is not claimed at restore. */
static void image_entry(char *buf, size_t len, const char *image)
{
	snprintf(buf, len, "%s:%s", CKPT_PLUGIN_NAME, image);
}

int ckpt_id_register_image(const char *image)
{
	char entry[128];
	int ret = ckpt_id_register();

	if (ret)
		return ret;
	image_entry(entry, sizeof(entry), image);
	if (add_inventory_plugin(entry)) {
		pr_err("cannot record %s in CRIU's inventory\n", entry);
		return -ENOMEM;
	}
	return 0;
}

void ckpt_id_dump_done(void)
{
	registered = false;
}

int ckpt_id_restore_needed(void)
{
	static const char name[] = CKPT_PLUGIN_NAME;

	if (!check_and_remove_inventory_plugin)
		return -1;
	return check_and_remove_inventory_plugin(name, sizeof(name)) ? 1 : 0;
}

bool ckpt_id_claim_image(const char *image)
{
	char entry[128];

	image_entry(entry, sizeof(entry), image);
	return check_and_remove_inventory_plugin &&
	       check_and_remove_inventory_plugin(entry, strlen(entry) + 1);
}

const char *ckpt_id_checkpoint_run_id(void)
{
	if (!dump_criu_run_id || !dump_criu_run_id[0] || dump_criu_run_id[0] == NO_DUMP_CRIU_RUN_ID)
		return NULL;
	return dump_criu_run_id;
}
