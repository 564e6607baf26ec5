// SPDX-License-Identifier: GPL-2.0
/*
 * The verdict of a dump -- do the tasks die, run on or stay stopped -- read
 * from CRIU itself. CRIU sets opts.final_state from --leave-running and
 * --leave-stopped, from its configuration files, and in RPC mode (runc and
 * Podman run `criu swrk`) from the request; the command line shows it only
 * in CLI mode. The criu binary exports `opts` (it links with -rdynamic),
 * but struct cr_options is CRIU's own: the offsets come from the CRIU
 * source tree at build time (scripts/criu-opts.sh writes
 * criu-opts-layout.h) and are trusted at run time only if
 *   - the exported `opts` has the size of the struct we were built for,
 *   - its `mode` field says dump (we run in the dump's exit hook),
 *   - final_state is one of the three states,
 *   - in CLI mode, a --leave-running / --leave-stopped on the command line
 *     agrees (a configuration file may set it where the command line
 *     does not, so only that direction is checked).
 * Otherwise the command line decides in CLI mode; in RPC mode the verdict
 * is unknown, and the guardian finds out from the task (guardian.c).
 */
#define LOG_PREFIX "criu-opts: "

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

#include "criu-opts.h"
#include "criu-opts-layout.h"
#include "log.h"
#include "proc.h"

const char *criu_final_name(enum criu_final f)
{
	switch (f) {
	case CRIU_FINAL_DEAD: return "killed";
	case CRIU_FINAL_ALIVE: return "leave-running";
	case CRIU_FINAL_STOPPED: return "leave-stopped";
	default: return "unknown";
	}
}

int criu_cmdline_final(const char *argv, ssize_t n, enum criu_final *f)
{
	const char *a;
	ssize_t i;

	*f = CRIU_FINAL_DEAD;
	/*
	 * In RPC mode CRIU replaces its command line by a title, one string:
	 * "criu: dump --rpc -t PID -D DIR" (cr-service.c, with libbsd's
	 * setproctitle); built without it, `criu swrk FD` stays.
	 */
	if (strstr(argv, " --rpc")) {
		*f = CRIU_FINAL_UNKNOWN;
		return 1;
	}
	/* argv[0] is criu itself. */
	for (i = strlen(argv) + 1; i < n; i += strlen(argv + i) + 1) {
		a = argv + i;
		if (!strcmp(a, "swrk") || !strcmp(a, "service")) {
			*f = CRIU_FINAL_UNKNOWN;
			return 1;
		}
		if (!strcmp(a, "--leave-running") || !strcmp(a, "-R"))
			*f = CRIU_FINAL_ALIVE;
		else if (!strcmp(a, "--leave-stopped"))
			*f = CRIU_FINAL_STOPPED;
	}
	return 0;
}

#if QP_CRIU_OPTS_KNOWN
int criu_opts_final(const void *opts, size_t size, enum criu_final *f, char *why, size_t len)
{
	const char *o = opts;
	int mode, state;

	if (size != QP_CRIU_OPTS_SIZE) {
		snprintf(why, len, "CRIU's opts is %zu bytes, CRIU %s's %d", size, QP_CRIU_VERSION,
			 QP_CRIU_OPTS_SIZE);
		return -EINVAL;
	}
	memcpy(&mode, o + QP_CRIU_OFF_MODE, sizeof(mode));
	if (mode != QP_CRIU_MODE_DUMP) {
		snprintf(why, len, "CRIU's opts.mode is %d, not dump (%d)", mode, QP_CRIU_MODE_DUMP);
		return -EINVAL;
	}
	memcpy(&state, o + QP_CRIU_OFF_FINAL_STATE, sizeof(state));
	if (state == QP_CRIU_TASK_DEAD)
		*f = CRIU_FINAL_DEAD;
	else if (state == QP_CRIU_TASK_ALIVE)
		*f = CRIU_FINAL_ALIVE;
	else if (state == QP_CRIU_TASK_STOPPED)
		*f = CRIU_FINAL_STOPPED;
	else {
		snprintf(why, len, "CRIU's opts.final_state is %d, no task state", state);
		return -EINVAL;
	}
	return 0;
}

/* `opts` of the criu binary and the size its symbol table gives it. */
static const void *criu_opts_symbol(size_t *size, char *why, size_t len)
{
	const ElfW(Sym) *sym = NULL;
	const void *opts = dlsym(RTLD_DEFAULT, "opts");
	Dl_info info;

	if (!opts || !dladdr1(opts, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym) {
		snprintf(why, len, "CRIU exports no opts");
		return NULL;
	}
	*size = sym->st_size;
	return opts;
}
#else
int criu_opts_final(const void *opts, size_t size, enum criu_final *f, char *why, size_t len)
{
	(void)opts;
	(void)size;
	*f = CRIU_FINAL_UNKNOWN;
	snprintf(why, len, "built without a CRIU source tree (scripts/criu-opts.sh)");
	return -EINVAL;
}

static const void *criu_opts_symbol(size_t *size, char *why, size_t len)
{
	*size = 0;
	snprintf(why, len, "built without a CRIU source tree (scripts/criu-opts.sh)");
	return NULL;
}
#endif

enum criu_final criu_final_state(char *source, size_t len)
{
	static char argv[8192];
	enum criu_final from_opts = CRIU_FINAL_UNKNOWN, from_cmd;
	char why[128] = "";
	const void *opts;
	size_t size = 0;
	ssize_t n;
	int rpc;

	/* No command line to read: as good as RPC mode, it says nothing. */
	from_cmd = CRIU_FINAL_UNKNOWN;
	n = proc_cmdline(PROC_SELF, argv, sizeof(argv));
	rpc = n <= 0 || criu_cmdline_final(argv, n, &from_cmd);
	opts = criu_opts_symbol(&size, why, sizeof(why));
	if (opts && !criu_opts_final(opts, size, &from_opts, why, sizeof(why)) && !rpc &&
	    from_cmd != CRIU_FINAL_DEAD && from_opts != from_cmd) {
		snprintf(why, sizeof(why), "CRIU's opts say %s, its command line %s",
			 criu_final_name(from_opts), criu_final_name(from_cmd));
		from_opts = CRIU_FINAL_UNKNOWN;
	}
	if (from_opts != CRIU_FINAL_UNKNOWN) {
		snprintf(source, len, "CRIU's opts.final_state%s", rpc ? ", RPC mode" : "");
		return from_opts;
	}
	pr_warn("cannot use CRIU's options: %s\n", why);
	if (!rpc) {
		snprintf(source, len, "the command line");
		return from_cmd;
	}
	snprintf(source, len, "nowhere: RPC mode and %s", why);
	return CRIU_FINAL_UNKNOWN;
}
