/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What CRIU does with the tasks after a successful dump: kill them, let
 * them run on (--leave-running) or leave them stopped (--leave-stopped).
 * CRIU keeps it in opts.final_state, the same in CLI and RPC mode (runc's
 * `criu swrk`), and in its configuration files; its command line shows it
 * in CLI mode only. See criu-opts.c.
 */
#ifndef CRIU_QEMU_CRIU_OPTS_H
#define CRIU_QEMU_CRIU_OPTS_H

#include <stddef.h>
#include <sys/types.h>

enum criu_final {
	CRIU_FINAL_UNKNOWN = 0,
	CRIU_FINAL_DEAD,	/* killed */
	CRIU_FINAL_ALIVE,	/* --leave-running */
	CRIU_FINAL_STOPPED,	/* --leave-stopped */
};

const char *criu_final_name(enum criu_final f);

/*
 * The verdict of the CRIU this runs in, and where it came from ("CRIU's
 * options", "the command line", or why neither could say) for the log.
 */
enum criu_final criu_final_state(char *source, size_t len);

/* For the unit tests: the two sources, without the process around them. */

/*
 * CRIU's options struct at opts, of symbol size `size`: -EINVAL (why says
 * why) unless the layout is the one the plugin was built for and the
 * field holds one of the three states.
 */
int criu_opts_final(const void *opts, size_t size, enum criu_final *f, char *why, size_t len);
/*
 * CRIU's command line (argv, each NUL-terminated, n bytes): 1 in RPC mode
 * (swrk, service), where it says nothing; 0 in CLI mode with *f set.
 */
int criu_cmdline_final(const char *argv, ssize_t n, enum criu_final *f);

#endif
