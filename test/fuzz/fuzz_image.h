/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The input form of fuzz_image, shared with the seed generator.
 *
 * A valid image is at least 2 MiB (its regions are FR_ALIGN-aligned) and
 * mostly holes; fed raw, each run would copy megabytes of zeros. So an
 * input is a sparse image in "slot" form:
 *
 *   file size (LE u64, capped at FUZZ_MAX_FILE) | slot 0 | SEP | slot 1 | ...
 *
 * Slot k lands at file offset k * FR_ALIGN (its first FR_ALIGN bytes; the
 * rest of the file is holes), so a prefix and header, a bitmap and checksum
 * table, or the first pages of a page region each start a slot. An input
 * that starts with FR_MAGIC is an image as is (e.g. a real qemu-ram-*.img
 * given to the harness on the command line).
 *
 * Checksums would stop nearly every mutation at the first check: with
 * FUZZ_FIXUP set in the size field, the harness makes them (and the header
 * fields that must match the file) right before it opens the image.
 */
#ifndef CRIU_QEMU_FUZZ_IMAGE_H
#define CRIU_QEMU_FUZZ_IMAGE_H

#define FUZZ_SEP	"FRSLOT@@"
#define FUZZ_SEP_LEN	8
#define FUZZ_MAX_FILE	(16ULL << 20)
#define FUZZ_FIXUP	(1ULL << 63)

#endif
