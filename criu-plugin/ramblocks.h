/* SPDX-License-Identifier: GPL-2.0 */
#ifndef CRIU_QEMU_RAMBLOCKS_H
#define CRIU_QEMU_RAMBLOCKS_H

#include <stdbool.h>
#include <stdint.h>

#include "detect.h"
#include "fixedram.h"

#define RAM_MAX_BLOCKS 32

/* A RAM block as QEMU names it (from the monitor or the command line). */
struct ram_want {
	char name[FR_NAME_MAX];
	uint64_t size;
	uint32_t page_size;
	bool shared;		/* memory backend with share=on */
	bool known_share;	/* false: unknown (no monitor), try both */
	uint64_t host_addr;	/* where QEMU says it is mapped; 0: unknown */
	bool needs_addr;	/* another block has its size and kind: match by host_addr only */
};

/* A RAM block found in the process: what the plugin saves. */
struct ram_block {
	char name[FR_NAME_MAX];
	uint64_t host_addr;
	uint64_t length;
	uint32_t page_size;
	enum fr_backing backing;
	bool exec;		/* TCG's translation buffer: rwx, not guest RAM */
};

struct ram_layout {
	struct ram_block blocks[RAM_MAX_BLOCKS];
	int nr;
};

/* Ask QEMU's monitor for its RAM blocks (x-query-ramblock + query-memdev). */
int ram_query_monitor(const struct qemu_proc *q, unsigned timeout_ms, struct ram_want *want, int *nr);

/* The same from the command line (-m), when there is no monitor. */
int ram_want_from_cmdline(const struct qemu_proc *q, struct ram_want *want, int *nr);

/*
 * Find each wanted block of at least min_bytes in /proc/PID/maps: a run of
 * contiguous VMAs of exactly the block's size, anonymous private for plain
 * RAM, shared file/memfd for share=on backends. Smaller blocks (ROMs, VGA
 * memory, ACPI tables) stay with CRIU: they are a few MiB at most.
 */
int ram_locate(pid_t pid, const struct ram_want *want, int nr_want, uint64_t min_bytes, struct ram_layout *out);

/*
 * TCG's translation buffer: each private anonymous rwx VMA of at least
 * min_bytes (one 1 GiB region with one vCPU; QEMU splits it into regions
 * with guard pages between them for more) is added to `out` as a block of
 * its own, "tcg-code", "tcg-code.1", ..., while there is room.
 */
int ram_locate_tcg_code(pid_t pid, uint64_t min_bytes, struct ram_layout *out);

/*
 * In HMP "info mtree -f" text, the first guest-physical range of RAM
 * region `name` of the first flat view (system memory): its address and
 * its offset into the region. 0 or -ENOENT.
 */
int ram_parse_mtree(const char *text, const char *name, uint64_t *gpa, uint64_t *offset);
/* From HMP "gpa2hva" output: the host address. 0 or -EBADMSG. */
int ram_parse_gpa2hva(const char *text, uint64_t *hva);

#endif
