// SPDX-License-Identifier: GPL-2.0
/*
 * criu-qemu-img: inspect, verify and extract criu-qemu fixed-ram RAM images.
 *
 *   criu-qemu-img show [--json] FILE    (a RAM image, or a KVM state image)
 *   criu-qemu-img verify FILE
 *   criu-qemu-img extract FILE BLOCK OUT
 *
 * Exit status: 0 success, 1 bad/corrupt image or I/O error, 2 bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fixedram.h"
#include "kvm-show.h"
#include "log.h"

#define EXIT_BAD   1
#define EXIT_USAGE 2

/* Chunks up to this size are verified with fr_read_chunk(), like restore. */
#define VERIFY_WHOLE_CHUNK_MAX (64ULL << 20)
#define SCAN_BUF_SIZE	       (4ULL << 20)

static const char *prog = "criu-qemu-img";

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s COMMAND [ARGS]\n"
		"Inspect criu-qemu fixed-ram guest RAM images (qemu-ram-<pid>.img).\n"
		"\n"
		"Commands:\n"
		"  show [--json] FILE       print the header, blocks, layout and sparseness\n"
		"  verify FILE              check the header, bitmaps and every chunk checksum\n"
		"  extract FILE BLOCK OUT   write block BLOCK (name or index) as a raw file of\n"
		"                           its length to OUT; absent pages become holes; OUT\n"
		"                           is replaced only once complete\n"
		"  help                     show this text\n"
		"\n"
		"Exit status: 0 ok, 1 invalid or corrupt image / I/O error, 2 usage error.\n",
		prog);
}

static int open_image(struct fr_image *img, const char *file)
{
	char err[1024];
	int ret = fr_open(img, AT_FDCWD, file, err, sizeof(err));

	if (ret) {
		fprintf(stderr, "%s: error: %s\n", prog, err[0] ? err : strerror(-ret));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* show                                                                      */
/* ------------------------------------------------------------------------ */

static void json_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", stdout);
			break;
		case '\\':
			fputs("\\\\", stdout);
			break;
		case '\n':
			fputs("\\n", stdout);
			break;
		case '\t':
			fputs("\\t", stdout);
			break;
		default:
			if (*p < 0x20 || *p >= 0x7f)
				printf("\\u%04x", *p);
			else
				putchar(*p);
		}
	}
	putchar('"');
}

/* Printable copy of a block name (names come from the file). */
static const char *safe_name(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < len; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

static void human(uint64_t v, char *buf, size_t len)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double d = v;
	int u = 0;

	while (d >= 1024 && u < 6) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", v);
	else
		snprintf(buf, len, "%.1f %s", d, units[u]);
}

static double pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0.0;
}

/* Chunks of the block with a place in the file (version 2: all of them), and their bytes. */
static uint64_t block_slots(const struct fr_block *b, uint64_t *bytes)
{
	uint64_t n = 0;

	if (bytes)
		*bytes = 0;
	for (uint64_t c = 0; c < b->nr_chunks; c++) {
		if (!b->chunk_off[c])
			continue;
		n++;
		if (bytes)
			*bytes += fr_chunk_nr_pages(b, c) * b->page_size;
	}
	return n;
}

/* Where the block's last page in the file ends (pages_offset if none is). */
static uint64_t block_pages_end(const struct fr_block *b)
{
	uint64_t end = b->pages_offset;

	for (uint64_t c = 0; c < b->nr_chunks; c++)
		if (b->chunk_off[c] && b->chunk_off[c] + fr_chunk_nr_pages(b, c) * b->page_size > end)
			end = b->chunk_off[c] + fr_chunk_nr_pages(b, c) * b->page_size;
	return end;
}

static int cmd_show(const char *file, bool json)
{
	struct fr_image img;
	struct stat st;
	uint64_t allocated, present = 0, pages = 0;
	char h1[32], h2[32], tbuf[64], nbuf[FR_NAME_MAX];
	time_t secs;
	struct tm tm;

	if (kvm_img_is_kvm(file))
		return kvm_show(stdout, file, json) ? EXIT_BAD : 0;
	if (open_image(&img, file))
		return EXIT_BAD;
	if (fstat(img.meta_fd, &st)) {
		fprintf(stderr, "%s: error: %s: stat: %s\n", prog, file, strerror(errno));
		fr_close(&img);
		return EXIT_BAD;
	}
	allocated = (uint64_t)st.st_blocks * 512;
	for (uint32_t i = 0; i < img.nr_blocks; i++) {
		present += img.blocks[i].nr_present;
		pages += img.blocks[i].nr_pages;
	}
	secs = img.dump_time_ns / 1000000000ULL;
	if (img.dump_time_ns && gmtime_r(&secs, &tm))
		strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	else
		snprintf(tbuf, sizeof(tbuf), "unknown");

	if (json) {
		printf("{\n  \"file\": ");
		json_str(file);
		printf(",\n  \"version\": %u,\n  \"pid\": %u,\n  \"criu_run_id\": ", img.version, img.pid);
		json_str(img.criu_run_id);
		printf(",\n");
		printf("  \"dump_time_ns\": %" PRIu64 ",\n  \"dump_time\": \"%s\",\n", img.dump_time_ns, tbuf);
		printf("  \"file_size\": %" PRIu64 ",\n  \"allocated_bytes\": %" PRIu64 ",\n", img.file_size,
		       allocated);
		printf("  \"pages_present\": %" PRIu64 ",\n  \"pages_total\": %" PRIu64 ",\n", present, pages);
		printf("  \"blocks\": [");
		for (uint32_t i = 0; i < img.nr_blocks; i++) {
			const struct fr_block *b = &img.blocks[i];

			printf("%s\n    {\n      \"index\": %u,\n      \"name\": ", i ? "," : "", i);
			json_str(b->name);
			printf(",\n      \"host_addr\": %" PRIu64 ",\n      \"host_addr_hex\": \"0x%" PRIx64 "\",\n",
			       b->host_addr, b->host_addr);
			printf("      \"length\": %" PRIu64 ",\n      \"page_size\": %u,\n", b->length, b->page_size);
			printf("      \"backing\": \"%s\",\n", fr_backing_name(b->backing));
			printf("      \"executable\": %s,\n", b->exec ? "true" : "false");
			printf("      \"pages_present\": %" PRIu64 ",\n      \"pages_total\": %" PRIu64 ",\n",
			       b->nr_present, b->nr_pages);
			printf("      \"sparse_ratio\": %.6f,\n",
			       b->nr_pages ? 1.0 - (double)b->nr_present / (double)b->nr_pages : 0.0);
			printf("      \"chunk_pages\": %u,\n      \"nr_chunks\": %" PRIu64 ",\n", b->chunk_pages,
			       b->nr_chunks);
			printf("      \"bitmap_offset\": %" PRIu64 ",\n      \"csum_offset\": %" PRIu64 ",\n",
			       b->bitmap_offset, b->csum_offset);
			printf("      \"chunks_offset\": %" PRIu64 ",\n      \"slots\": %" PRIu64 ",\n",
			       b->chunks_offset, block_slots(b, NULL));
			printf("      \"pages_offset\": %" PRIu64 ",\n      \"pages_end\": %" PRIu64 ",\n",
			       b->pages_offset, block_pages_end(b));
			printf("      \"chunk_offsets\": [");
			for (uint64_t c = 0; c < b->nr_chunks; c++)
				printf("%s%" PRIu64, c ? ", " : "", b->chunk_off[c]);
			printf("]\n    }");
		}
		printf("%s]\n}\n", img.nr_blocks ? "\n  " : "");
		fr_close(&img);
		return 0;
	}

	human(img.file_size, h1, sizeof(h1));
	human(allocated, h2, sizeof(h2));
	printf("%s: criu-qemu RAM image, version %u\n", file, img.version);
	printf("  pid:         %u\n", img.pid);
	printf("  CRIU run:    %s\n", img.criu_run_id[0] ? img.criu_run_id : "(none)");
	printf("  dump time:   %s\n", tbuf);
	printf("  file size:   %" PRIu64 " bytes (%s) apparent, %" PRIu64 " bytes (%s) allocated on disk (%.1f%%)\n",
	       img.file_size, h1, allocated, h2, pct(allocated, img.file_size));
	printf("  pages:       %" PRIu64 " / %" PRIu64 " present (%.1f%%)\n", present, pages, pct(present, pages));
	printf("  blocks:      %u\n", img.nr_blocks);
	for (uint32_t i = 0; i < img.nr_blocks; i++) {
		const struct fr_block *b = &img.blocks[i];
		uint64_t slots, slot_bytes;

		human(b->length, h1, sizeof(h1));
		printf("\nblock %u: %s\n", i, safe_name(b->name, nbuf, sizeof(nbuf)));
		printf("  host addr:   0x%" PRIx64 "-0x%" PRIx64 "\n", b->host_addr, b->host_addr + b->length);
		printf("  length:      %" PRIu64 " bytes (%s)\n", b->length, h1);
		printf("  page size:   %u\n", b->page_size);
		printf("  backing:     %s%s\n", fr_backing_name(b->backing),
		       b->exec ? ", executable (TCG's code buffer)" : "");
		printf("  present:     %" PRIu64 " / %" PRIu64 " pages (%.1f%% present, sparse ratio %.3f)\n",
		       b->nr_present, b->nr_pages, pct(b->nr_present, b->nr_pages),
		       b->nr_pages ? 1.0 - (double)b->nr_present / (double)b->nr_pages : 0.0);
		printf("  chunks:      %" PRIu64 " x %u pages\n", b->nr_chunks, b->chunk_pages);
		printf("  bitmap:      offset 0x%" PRIx64 " (%" PRIu64 " bytes)\n", b->bitmap_offset,
		       b->csum_offset > b->bitmap_offset ? b->csum_offset - b->bitmap_offset : 0);
		printf("  csum table:  offset 0x%" PRIx64 " (%" PRIu64 " bytes)\n", b->csum_offset,
		       b->nr_chunks * 8);
		if (b->chunks_offset)
			printf("  chunk table: offset 0x%" PRIx64 " (%" PRIu64 " bytes)\n", b->chunks_offset,
			       b->nr_chunks * 8);
		slots = block_slots(b, &slot_bytes);
		human(slot_bytes, h1, sizeof(h1));
		printf("  page data:   %" PRIu64 " of %" PRIu64 " chunks in the file (%s), "
		       "offset 0x%" PRIx64 "-0x%" PRIx64 "\n", slots, b->nr_chunks, h1,
		       b->pages_offset, block_pages_end(b));
	}
	fr_close(&img);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* verify                                                                    */
/* ------------------------------------------------------------------------ */

static int cmd_verify(const char *file)
{
	struct fr_image img;
	uint64_t present = 0;
	void *buf = NULL;
	size_t buf_len = 0;
	int ret = 0;

	qp_log_set_level(LOG_ERROR);
	if (kvm_img_is_kvm(file))
		return kvm_show(NULL, file, false) ? EXIT_BAD : 0;
	if (open_image(&img, file))
		return EXIT_BAD;

	for (uint32_t i = 0; i < img.nr_blocks && !ret; i++) {
		const struct fr_block *b = &img.blocks[i];
		uint64_t chunk_bytes = (uint64_t)b->chunk_pages * b->page_size;
		bool whole = chunk_bytes <= VERIFY_WHOLE_CHUNK_MAX;
		size_t want = whole ? chunk_bytes : SCAN_BUF_SIZE;

		if (want > buf_len) {
			free(buf);
			buf = NULL;
			if (posix_memalign(&buf, 4096, want)) {
				fprintf(stderr, "%s: error: out of memory\n", prog);
				ret = -ENOMEM;
				break;
			}
			buf_len = want;
		}
		for (uint64_t c = 0; c < b->nr_chunks; c++) {
			ret = whole ? fr_read_chunk(&img, b, c, buf)
				    : fr_scan_chunk(&img, b, c, buf, buf_len, NULL, NULL);
			if (ret) {
				char nbuf[FR_NAME_MAX];

				fprintf(stderr, "%s: error: %s: block %u '%s' chunk %" PRIu64 ": %s\n", prog, file, i,
					safe_name(b->name, nbuf, sizeof(nbuf)), c,
					ret == -EBADMSG ? "checksum mismatch, page data is corrupt"
					: ret == -EIO	? "truncated or unreadable page data"
							: strerror(-ret));
				break;
			}
		}
		present += b->nr_present;
	}
	if (!ret)
		printf("OK: %u blocks, %" PRIu64 " pages present, all checksums match\n", img.nr_blocks, present);
	free(buf);
	fr_close(&img);
	return ret ? EXIT_BAD : 0;
}

/* ------------------------------------------------------------------------ */
/* extract                                                                   */
/* ------------------------------------------------------------------------ */

struct extract_ctx {
	int fd;
	const char *out;
};

static int extract_write(void *arg, uint64_t block_off, const void *data, size_t len)
{
	struct extract_ctx *x = arg;
	const char *p = data;

	while (len) {
		ssize_t n = pwrite(x->fd, p, len, (off_t)block_off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			fprintf(stderr, "%s: error: %s: write: %s\n", prog, x->out, strerror(errno));
			return (int)n;
		}
		p += n;
		len -= n;
		block_off += n;
	}
	return 0;
}

static const struct fr_block *find_block(const struct fr_image *img, const char *sel)
{
	char *end;
	unsigned long idx;

	for (uint32_t i = 0; i < img->nr_blocks; i++)
		if (!strcmp(img->blocks[i].name, sel))
			return &img->blocks[i];
	errno = 0;
	idx = strtoul(sel, &end, 10);
	if (!errno && end != sel && !*end && idx < img->nr_blocks)
		return &img->blocks[idx];
	return NULL;
}

/*
 * OUT is written to a temporary file beside it and renamed over it only
 * once complete and fsync'ed: a failed extract leaves an existing OUT as it
 * was, and OUT is never truncated while we read. OUT naming the image
 * itself (the same path, a symlink or a hard link to it) is refused, else
 * the rename would replace the image by one of its blocks. Symlinks in OUT
 * are followed, so the file it points to is replaced, not the link.
 */
struct out_file {
	char path[PATH_MAX];	/* OUT, symlinks resolved when it exists */
	char tmp[PATH_MAX + 16];
	int fd;
};

static int out_check(struct out_file *o, const char *out, int image_fd)
{
	struct stat img, st;

	if (!realpath(out, o->path))
		snprintf(o->path, sizeof(o->path), "%s", out);	/* new file */
	if (stat(o->path, &st))
		return 0;
	if (!fstat(image_fd, &img) && img.st_dev == st.st_dev && img.st_ino == st.st_ino) {
		fprintf(stderr, "%s: error: %s is the image itself; choose another output file\n", prog, out);
		return -EINVAL;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "%s: error: %s exists and is not a regular file\n", prog, out);
		return -EINVAL;
	}
	return 0;
}

/* A new file keeps the mode an O_CREAT of 0644 would get; a replaced one its own. */
static mode_t out_mode(const char *path)
{
	struct stat st;
	mode_t mask;

	if (!stat(path, &st))
		return st.st_mode & 07777;
	mask = umask(0);
	umask(mask);
	return 0644 & ~mask;
}

static int out_open(struct out_file *o)
{
	const char *slash = strrchr(o->path, '/');
	const char *base = slash ? slash + 1 : o->path;
	int dlen = slash ? (int)(slash - o->path) + 1 : 0;

	snprintf(o->tmp, sizeof(o->tmp), "%.*s.%s.XXXXXX", dlen, o->path, base);
	o->fd = mkostemp(o->tmp, O_CLOEXEC);
	if (o->fd < 0 || fchmod(o->fd, out_mode(o->path))) {
		fprintf(stderr, "%s: error: %s: %s\n", prog, o->fd < 0 ? o->tmp : o->path, strerror(errno));
		if (o->fd >= 0) {
			close(o->fd);
			unlink(o->tmp);
		}
		o->fd = -1;
		return -1;
	}
	return 0;
}

/* fsync, rename into place, fsync the directory so the new name is durable. */
static int out_commit(struct out_file *o)
{
	const char *slash = strrchr(o->path, '/');
	char dir[PATH_MAX];
	int dfd;

	if (fsync(o->fd) || rename(o->tmp, o->path)) {
		fprintf(stderr, "%s: error: %s: %s\n", prog, o->path, strerror(errno));
		return -1;
	}
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - o->path) + 1 : 1, slash ? o->path : ".");
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

static int extract_block(const struct fr_image *img, const struct fr_block *b, const char *file,
			 struct extract_ctx *x)
{
	char nbuf[FR_NAME_MAX];
	void *buf = NULL;
	int ret = 0;

	/* Absent pages stay holes: only present pages are written. */
	if (ftruncate(x->fd, (off_t)b->length)) {
		ret = -errno;
		fprintf(stderr, "%s: error: %s: cannot size to %" PRIu64 " bytes: %s\n", prog, x->out, b->length,
			strerror(-ret));
		return ret;
	}
	if (posix_memalign(&buf, 4096, SCAN_BUF_SIZE)) {
		fprintf(stderr, "%s: error: out of memory\n", prog);
		return -ENOMEM;
	}
	for (uint64_t c = 0; c < b->nr_chunks && !ret; c++) {
		ret = fr_scan_chunk(img, b, c, buf, SCAN_BUF_SIZE, extract_write, x);
		if (ret)
			fprintf(stderr, "%s: error: %s: block '%s' chunk %" PRIu64 ": %s\n", prog, file,
				safe_name(b->name, nbuf, sizeof(nbuf)), c,
				ret == -EBADMSG ? "checksum mismatch, page data is corrupt"
				: ret == -EIO	? "truncated or unreadable page data"
						: strerror(-ret));
	}
	free(buf);
	return ret;
}

static int cmd_extract(const char *file, const char *sel, const char *out)
{
	struct extract_ctx x = { .fd = -1, .out = out };
	const struct fr_block *b;
	char nbuf[FR_NAME_MAX];
	struct out_file o;
	struct fr_image img;
	int ret;

	qp_log_set_level(LOG_ERROR);
	if (open_image(&img, file))
		return EXIT_BAD;
	b = find_block(&img, sel);
	if (!b) {
		fprintf(stderr, "%s: error: %s: no block named '%s'; blocks:", prog, file, sel);
		for (uint32_t i = 0; i < img.nr_blocks; i++)
			fprintf(stderr, " %u:'%s'", i, safe_name(img.blocks[i].name, nbuf, sizeof(nbuf)));
		fputc('\n', stderr);
		fr_close(&img);
		return EXIT_BAD;
	}
	if (out_check(&o, out, img.meta_fd)) {
		fr_close(&img);
		return EXIT_USAGE;
	}
	if (out_open(&o)) {
		fr_close(&img);
		return EXIT_BAD;
	}
	x.fd = o.fd;
	ret = extract_block(&img, b, file, &x);
	if (!ret && out_commit(&o))
		ret = -EIO;
	close(o.fd);
	if (ret) {
		unlink(o.tmp);
		fprintf(stderr, "%s: %s not written\n", prog, out);
	} else {
		printf("extracted block '%s': %" PRIu64 " bytes, %" PRIu64 " of %" PRIu64 " pages present -> %s\n",
		       safe_name(b->name, nbuf, sizeof(nbuf)), b->length, b->nr_present, b->nr_pages, out);
	}
	fr_close(&img);
	return ret ? EXIT_BAD : 0;
}

int main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "show")) {
		const char *file = NULL;
		bool json = false;

		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--json")) {
				json = true;
			} else if (argv[i][0] == '-' && argv[i][1]) {
				fprintf(stderr, "%s: show: unknown option '%s'\n", prog, argv[i]);
				usage(stderr);
				return EXIT_USAGE;
			} else if (file) {
				fprintf(stderr, "%s: show: one FILE expected\n", prog);
				usage(stderr);
				return EXIT_USAGE;
			} else {
				file = argv[i];
			}
		}
		if (!file) {
			fprintf(stderr, "%s: show: missing FILE\n", prog);
			usage(stderr);
			return EXIT_USAGE;
		}
		return cmd_show(file, json);
	}
	if (!strcmp(cmd, "verify")) {
		if (argc != 3) {
			fprintf(stderr, "%s: verify: expected FILE\n", prog);
			usage(stderr);
			return EXIT_USAGE;
		}
		return cmd_verify(argv[2]);
	}
	if (!strcmp(cmd, "extract")) {
		if (argc != 5) {
			fprintf(stderr, "%s: extract: expected FILE BLOCK OUT\n", prog);
			usage(stderr);
			return EXIT_USAGE;
		}
		return cmd_extract(argv[2], argv[3], argv[4]);
	}
	fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
	usage(stderr);
	return EXIT_USAGE;
}
