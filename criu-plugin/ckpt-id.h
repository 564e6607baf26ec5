/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Which checkpoint a RAM image belongs to. CRIU (>= 4.0) gives every run a
 * random UUID, criu_run_id, and writes it into the dump's inventory.img as
 * dump_criu_run_id; it also records there every plugin that asked to be
 * needed at restore (add_inventory_plugin). The plugin stores the run id in
 * each image it writes and registers itself once it has taken RAM away from
 * CRIU's own page dump, so CRIU's images of a dump say both "this dump's RAM
 * is in qemu_plugin's images" and "of this run". See Documentation/design.md.
 */
#ifndef CRIU_QEMU_CKPT_ID_H
#define CRIU_QEMU_CKPT_ID_H

#include <stdbool.h>

#define CKPT_PLUGIN_NAME "qemu_plugin"

/* Dump: does this CRIU export what binding needs? 0 or -ENOTSUP (logged). */
int ckpt_id_dump_supported(void);
/* Dump: this CRIU run's id ("" outside CRIU). */
const char *ckpt_id_run_id(void);
/* Dump: CRIU's images will not hold the RAM we took: record that we are needed (once). */
int ckpt_id_register(void);
/*
 * Dump: also record this image by name: a restore that does not find it
 * then fails in CRIU itself ("Missing required plugin: qemu_plugin:NAME"),
 * even when other QEMUs of the checkpoint have theirs.
 */
int ckpt_id_register_image(const char *image);
/* Dump: the dump is over (the next one registers afresh). */
void ckpt_id_dump_done(void);

/*
 * Restore: was the checkpoint dumped with RAM in our images? Must be asked
 * once in init(RESTORE): it also tells CRIU that we are loaded (else CRIU
 * fails the restore with "Missing required plugin"). -1: the inventory
 * predates CRIU's plugin list, so it cannot tell.
 */
int ckpt_id_restore_needed(void);
/* Restore: this image is used; false if the dump did not record it (older plugin). */
bool ckpt_id_claim_image(const char *image);
/* Restore: the checkpoint's run id from inventory.img, or NULL if it has none. */
const char *ckpt_id_checkpoint_run_id(void);

#endif
