/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The functions and variables of the criu binary the plugin uses beyond
 * criu-plugin.h. The binary exports them (it links with -rdynamic); they are
 * weak so that the guardian, the image tool and the unit tests link without
 * CRIU, where each one is NULL: test before use.
 */
#ifndef CRIU_QEMU_CRIU_WEAK_H
#define CRIU_QEMU_CRIU_WEAK_H

#include <stdbool.h>
#include <stddef.h>

/* criu/log.c */
extern void print_on_level(unsigned int loglevel, const char *format, ...) __attribute__((weak));
extern unsigned int log_get_loglevel(void) __attribute__((weak));
/* criu/image.c (also declared, not weak, in criu-plugin.h) */
extern int criu_get_image_dir(void) __attribute__((weak));
/* CRIU 4.x criu/util.c, criu/image.c; RUN_ID_HASH_LENGTH is 37. */
extern char criu_run_id[] __attribute__((weak));
extern char dump_criu_run_id[] __attribute__((weak));
extern int add_inventory_plugin(const char *name) __attribute__((weak));
extern bool check_and_remove_inventory_plugin(const char *name, size_t n) __attribute__((weak));
/* A CRIU that leaves kernel worker threads out of dumps (scripts/criu-patches) */
extern int criu_skips_user_workers __attribute__((weak));

#endif
