// SPDX-License-Identifier: GPL-2.0
/*
 * Guest RAM discovery. QEMU's monitor tells which RAM blocks exist (names,
 * sizes, page sizes, shared or not) but not where they are mapped; the
 * kernel's /proc/PID/maps tells where, not what. We match the two by size
 * and kind. Without a monitor the command line's -m size stands in.
 * TCG's translation buffer is found in the maps alone: QEMU's only large
 * executable anonymous memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proc.h"
#include "qmp.h"
#include "ramblocks.h"

#define QEMU_DEFAULT_RAM (128ULL << 20)

static uint64_t parse_psize(const char *num, const char *unit)
{
	uint64_t v = strtoull(num, NULL, 10);

	if (!strcmp(unit, "KiB"))
		return v << 10;
	if (!strcmp(unit, "MiB"))
		return v << 20;
	if (!strcmp(unit, "GiB"))
		return v << 30;
	return 0;
}

/*
 *               Block Name    PSize              Offset               Used              Total
 *                   pc.ram    4 KiB  0x0000000000000000 0x0000000020000000 0x0000000020000000
 */
static int ram_parse_ramblock_table(const char *text, struct ram_want *want, int *nr, int max)
{
	const char *line = text;

	*nr = 0;
	for (; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		char name[FR_NAME_MAX], num[32], unit[8];
		unsigned long long off, used, total;

		if (sscanf(line, "%63s %31s %7s %llx %llx %llx", name, num, unit, &off, &used, &total) != 6)
			continue;
		if (*nr == max)
			return -E2BIG;
		memset(&want[*nr], 0, sizeof(want[*nr]));
		snprintf(want[*nr].name, sizeof(want[*nr].name), "%s", name);
		want[*nr].size = total;
		want[*nr].page_size = parse_psize(num, unit);
		(*nr)++;
	}
	return *nr ? 0 : -ENOENT;
}

int ram_parse_mtree(const char *text, const char *name, uint64_t *gpa, uint64_t *offset)
{
	const char *line = text;

	for (; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		unsigned long long start, end, off = 0;
		char rname[FR_NAME_MAX];
		int n = 0;

		/* Only the first flat view: the next starts with a blank line. */
		if (line[0] == '\n' && line != text)
			break;
		if (sscanf(line, " %llx-%llx (prio %*d, ram): %63s%n", &start, &end, rname, &n) != 3 ||
		    strcmp(rname, name))
			continue;
		sscanf(line + n, " @%llx", &off);
		*gpa = start;
		*offset = off;
		return 0;
	}
	return -ENOENT;
}

int ram_parse_gpa2hva(const char *text, uint64_t *hva)
{
	const char *is = strstr(text, ") is 0x");
	unsigned long long v;

	if (!is || sscanf(is + 5, "%llx", &v) != 1)
		return -EBADMSG;
	*hva = v;
	return 0;
}

static int hmp(struct qmp *m, const char *cmdline, json_t **out, const char **text)
{
	json_t *args = json_pack("{s:s}", "command-line", cmdline);
	int err;

	if (!args)
		return -ENOMEM;
	err = qmp_execute(m, "human-monitor-command", args, out);
	json_decref(args);
	if (!err && !json_is_string(*out)) {
		json_decref(*out);
		return -EBADMSG;
	}
	if (!err)
		*text = json_string_value(*out);
	return err;
}

/* Where QEMU maps block `name`: the host address of its first guest page. */
static int block_host_addr(struct qmp *m, const char *name, uint64_t *host)
{
	uint64_t gpa, off, hva;
	char cmd[64];
	const char *text;
	json_t *out;
	int err;

	err = hmp(m, "info mtree -f", &out, &text);
	if (err)
		return err;
	err = ram_parse_mtree(text, name, &gpa, &off);
	json_decref(out);
	if (err)
		return err;
	snprintf(cmd, sizeof(cmd), "gpa2hva 0x%llx", (unsigned long long)gpa);
	err = hmp(m, cmd, &out, &text);
	if (err)
		return err;
	err = ram_parse_gpa2hva(text, &hva);
	json_decref(out);
	if (!err)
		*host = hva - off;
	return err;
}

/*
 * Blocks of equal size and kind cannot be told apart in /proc/PID/maps:
 * ask QEMU where each is mapped (the guest-physical range it backs, then
 * gpa2hva). A block it cannot place is matched by address only, so it is
 * left to CRIU rather than saved under another block's name.
 */
static void place_twins(struct qmp *m, struct ram_want *want, int nr)
{
	int i, j;

	for (i = 0; i < nr; i++)
		for (j = 0; j < nr; j++)
			if (i != j && want[i].size == want[j].size && want[i].shared == want[j].shared)
				want[i].needs_addr = true;
	for (i = 0; i < nr; i++) {
		if (!want[i].needs_addr)
			continue;
		if (block_host_addr(m, want[i].name, &want[i].host_addr))
			pr_warn("RAM block %s has the size and kind of another block and QEMU does not "
				"say where it is mapped\n", want[i].name);
		else
			pr_debug("RAM block %s is mapped at %#llx\n", want[i].name,
				 (unsigned long long)want[i].host_addr);
	}
}

/* query-memdev: which backends are share=on. The memdev id is the block name. */
static void apply_memdev_share(struct qmp *m, struct ram_want *want, int nr)
{
	json_t *list, *dev;
	size_t i;
	int j;

	if (qmp_execute(m, "query-memdev", NULL, &list))
		return;
	json_array_foreach(list, i, dev) {
		const char *id = NULL;
		int share = 0;

		if (json_unpack(dev, "{s:s, s:b}", "id", &id, "share", &share))
			continue;
		for (j = 0; j < nr; j++)
			if (!strcmp(want[j].name, id))
				want[j].shared = share;
	}
	json_decref(list);
}

int ram_query_monitor(const struct qemu_proc *q, unsigned timeout_ms, struct ram_want *want, int *nr)
{
	const char *text = NULL;
	json_t *ret = NULL;
	struct qmp m;
	int err, i;

	if (!q->qmp_path[0])
		return -ENOENT;
	err = qmp_open(&m, q->pid, q->qmp_path, timeout_ms);
	if (err) {
		pr_info("QMP %s not usable (%s); using the command line\n", q->qmp_path, strerror(-err));
		return err;
	}
	err = qmp_execute(&m, "x-query-ramblock", NULL, &ret);
	if (!err && json_unpack(ret, "{s:s}", "human-readable-text", &text))
		err = -EBADMSG;
	if (!err)
		err = ram_parse_ramblock_table(text, want, nr, RAM_MAX_BLOCKS);
	json_decref(ret);
	if (!err) {
		apply_memdev_share(&m, want, *nr);
		for (i = 0; i < *nr; i++)
			want[i].known_share = true;
		place_twins(&m, want, *nr);
	}
	qmp_close(&m);
	return err;
}

int ram_want_from_cmdline(const struct qemu_proc *q, struct ram_want *want, int *nr)
{
	memset(want, 0, sizeof(*want));
	snprintf(want->name, sizeof(want->name), "ram");
	want->size = q->mem_bytes ? q->mem_bytes : QEMU_DEFAULT_RAM;
	want->page_size = 4096;
	*nr = 1;
	return 0;
}

struct vma_run {
	uint64_t start, end;
	bool shared;
	char path[256];
	bool used;
};

/* Guest RAM is read-write and never executable (TCG's code buffer is rwx). */
static bool may_be_ram(const struct proc_vma *pv, struct vma_run *v)
{
	if (strncmp(pv->perms, "rw-", 3))
		return false;
	v->start = pv->start;
	v->end = pv->end;
	v->shared = pv->perms[3] == 's';
	snprintf(v->path, sizeof(v->path), "%.*s", (int)sizeof(v->path) - 1, pv->path);
	v->used = false;
	/* Private file mappings and [heap]/[stack] are never guest RAM. */
	if (!v->shared && v->path[0])
		return false;
	return true;
}

static int add_vma(struct vma_run **r, int *n, int *cap, const struct vma_run *v)
{
	if (*n == *cap) {
		struct vma_run *bigger = realloc(*r, (*cap = *cap ? *cap * 2 : 64) * sizeof(**r));

		if (!bigger)
			return -ENOMEM;
		*r = bigger;
	}
	(*r)[(*n)++] = *v;
	return 0;
}

static int read_vmas(pid_t pid, struct vma_run **vmas, int *nr)
{
	struct proc_vma pv;
	struct proc_maps m;
	struct vma_run v, *r = NULL;
	int n = 0, cap = 0, ret;

	ret = proc_maps_open(&m, pid, "maps");
	if (ret)
		return ret;
	while (!ret && proc_maps_next(&m, &pv) > 0)
		if (may_be_ram(&pv, &v))
			ret = add_vma(&r, &n, &cap, &v);
	proc_maps_close(&m);
	if (ret) {
		free(r);
		return ret;
	}
	*vmas = r;
	*nr = n;
	return 0;
}

static bool same_kind(const struct vma_run *a, const struct vma_run *b)
{
	return a->end == b->start && a->shared == b->shared && !strcmp(a->path, b->path);
}

/*
 * A block may span several VMAs (madvise on part of it splits the VMA) and
 * may sit right next to other anonymous memory, so try every start: the
 * VMAs from vmas[i] on, contiguous and of one kind, must add up to exactly
 * the block size. Returns the index of the last VMA, or -1.
 */
static int match_at(const struct vma_run *v, int nr, int i, const struct ram_want *w)
{
	uint64_t size = 0;
	int j;

	if (w->known_share && v[i].shared != w->shared)
		return -1;
	if (w->needs_addr && v[i].start != w->host_addr)
		return -1;
	for (j = i; j < nr; j++) {
		if (v[j].used || (j > i && !same_kind(&v[j - 1], &v[j])))
			return -1;
		size += v[j].end - v[j].start;
		if (size >= w->size)
			return size == w->size ? j : -1;
	}
	return -1;
}

static void take_vmas(struct ram_block *b, struct vma_run *v, int first, int last, const struct ram_want *w)
{
	int j;

	for (j = first; j <= last; j++)
		v[j].used = true;
	memset(b, 0, sizeof(*b));
	snprintf(b->name, sizeof(b->name), "%s", w->name);
	b->host_addr = v[first].start;
	b->length = v[last].end - v[first].start;
	b->page_size = w->page_size ? w->page_size : 4096;
	if (b->page_size > 4096)
		b->backing = FR_BACKING_HUGETLB;
	else if (v[first].shared)
		b->backing = FR_BACKING_SHARED_FD;
	else
		b->backing = FR_BACKING_ANON_PRIVATE;
}

int ram_locate(pid_t pid, const struct ram_want *want, int nr_want, uint64_t min_bytes, struct ram_layout *out)
{
	struct vma_run *vmas;
	int nr_vmas, i, j, last = -1, ret;

	ret = read_vmas(pid, &vmas, &nr_vmas);
	if (ret)
		return ret;
	out->nr = 0;
	for (i = 0; i < nr_want; i++) {
		if (want[i].size < min_bytes) {
			pr_debug("RAM block %s (%llu KiB) is small: left to CRIU\n", want[i].name,
				 (unsigned long long)want[i].size >> 10);
			continue;
		}
		for (j = 0; j < nr_vmas; j++)
			if ((last = match_at(vmas, nr_vmas, j, &want[i])) >= 0)
				break;
		if (j == nr_vmas) {
			pr_warn("RAM block %s (%llu MiB) not found in /proc/%d/maps: left to CRIU\n",
				want[i].name, (unsigned long long)want[i].size >> 20, pid);
			continue;
		}
		take_vmas(&out->blocks[out->nr++], vmas, j, last, &want[i]);
	}
	free(vmas);
	return 0;
}

static bool is_tcg_code(const struct proc_vma *v, uint64_t min_bytes)
{
	return !strcmp(v->perms, "rwxp") && !v->inode && !v->path[0] && v->end - v->start >= min_bytes;
}

static bool name_taken(const struct ram_layout *l, const char *name)
{
	int i;

	for (i = 0; i < l->nr; i++)
		if (!strcmp(l->blocks[i].name, name))
			return true;
	return false;
}

static void add_tcg_code(struct ram_layout *out, const struct proc_vma *v, int nth)
{
	struct ram_block *b = &out->blocks[out->nr];

	memset(b, 0, sizeof(*b));
	if (nth)
		snprintf(b->name, sizeof(b->name), "tcg-code.%d", nth);
	else
		snprintf(b->name, sizeof(b->name), "tcg-code");
	if (name_taken(out, b->name)) {
		pr_warn("a RAM block is named %s: TCG's code buffer at %#llx is left to CRIU\n", b->name,
			(unsigned long long)v->start);
		return;
	}
	b->host_addr = v->start;
	b->length = v->end - v->start;
	b->page_size = 4096;
	b->backing = FR_BACKING_ANON_PRIVATE;
	b->exec = true;
	out->nr++;
}

int ram_locate_tcg_code(pid_t pid, uint64_t min_bytes, struct ram_layout *out)
{
	struct proc_maps m;
	struct proc_vma v;
	int nth = 0, ret;

	ret = proc_maps_open(&m, pid, "maps");
	if (ret)
		return ret;
	while (proc_maps_next(&m, &v) > 0) {
		if (!is_tcg_code(&v, min_bytes))
			continue;
		if (out->nr == RAM_MAX_BLOCKS) {
			pr_warn("TCG's code buffer at %#llx: no room for another block, left to CRIU\n",
				(unsigned long long)v.start);
			continue;
		}
		add_tcg_code(out, &v, nth++);
	}
	proc_maps_close(&m);
	return 0;
}
