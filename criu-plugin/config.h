/* SPDX-License-Identifier: GPL-2.0 */
#ifndef CRIU_QEMU_CONFIG_H
#define CRIU_QEMU_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define QP_CONFIG_FILE "/etc/criu/qemu_plugin.conf"

struct qp_config {
	bool enabled;		/* off: the plugin only recognises and logs */
	unsigned workers;	/* parallel writer/filler threads; 0 = online CPUs */
	bool odirect;		/* O_DIRECT for page data */
	unsigned long long min_block_bytes; /* smaller RAM blocks are left to CRIU */
	bool tcg_code;		/* save TCG's translation buffer like a RAM block */
	unsigned qmp_timeout_ms;/* give up on a busy or dead monitor after this */
	bool live;		/* copy RAM while the VM runs, before CRIU freezes it */
	unsigned downtime_ms;	/* live phase ends when the rest fits in this */
	unsigned live_max_passes;
	unsigned live_max_ms;	/* cap on the whole live phase */
	bool incremental;	/* share unchanged chunks with a base image */
	char base_image[4096];	/* base: image file or directory; "": CRIU's parent link */
	bool incremental_verify;/* compare bytes with the base, not only checksums */
	bool lazy_restore;	/* restore: the guest runs at once, a guardian fills RAM */
	char source[4200];	/* for the log: the file read, or that there was none */
};

/*
 * Defaults, then the config file (path from $CRIU_QEMU_CONFIG or
 * QP_CONFIG_FILE; a missing file is fine), then CRIU_QEMU_* environment
 * variables. Orchestrators (runc, Podman) strip the environment, so the
 * file alone must be enough. Returns 0 or -EINVAL on a malformed file.
 */
int qp_config_load(struct qp_config *c);

/* The built-in defaults, without file or environment. */
void qp_config_defaults(struct qp_config *c);

/*
 * Apply config file text (len bytes, no NUL terminator needed) on top of *c.
 * path names the text in error messages ("path:line: ..."). Every line is
 * tried; returns 0, or -EINVAL if any line was bad (-ENOMEM on no memory).
 */
int qp_config_parse(struct qp_config *c, const char *text, size_t len, const char *path);

/*
 * Apply one "key = value" setting, silently; exposed for tests. Returns 0,
 * -ENOENT (unknown key), -EINVAL (malformed value), -ERANGE (number out of
 * range) or -ENAMETOOLONG (string too long); *c is unchanged on error.
 */
int qp_config_set(struct qp_config *c, const char *key, const char *value);

#endif
