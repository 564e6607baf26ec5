// SPDX-License-Identifier: GPL-2.0
/*
 * Worker count, O_DIRECT and chunk buffers of the RAM data paths.
 */
#define LOG_PREFIX "ram: "

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "log.h"
#include "ram-io.h"

unsigned ram_io_nr_workers(const struct ram_io_opts *o)
{
	long n = o && o->workers ? (long)o->workers : sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	return n > RAM_IO_MAX_WORKERS ? RAM_IO_MAX_WORKERS : n;
}

void ram_io_set_odirect(int fd, const struct ram_io_opts *o)
{
	int fl;

	if (!o || !o->odirect)
		return;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_DIRECT))
		return;
	if (fcntl(fd, F_SETFL, fl | O_DIRECT))
		pr_warn("no O_DIRECT on the image (%s), using the page cache\n", strerror(errno));
}

int ram_io_chunk_bytes(const struct fr_image *img, size_t *bytes)
{
	uint32_t i;

	*bytes = 0;
	for (i = 0; i < img->nr_blocks; i++) {
		const struct fr_block *b = &img->blocks[i];
		size_t chunk = (size_t)b->chunk_pages * b->page_size;

		if (!b->bitmap || !b->csums || !b->chunk_pages || b->chunk_pages % 64) {
			pr_err("block '%s' is not laid out\n", b->name);
			return -EINVAL;
		}
		if (chunk > *bytes)
			*bytes = chunk;
	}
	return 0;
}

char *ram_io_buf(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void ram_io_buf_free(char *buf, size_t bytes)
{
	if (buf)
		munmap(buf, bytes);
}
