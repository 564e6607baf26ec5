// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer harness for the plugin's config parser (criu-plugin/config.c):
 * qp_config_parse() of the input as a config file, on top of the defaults.
 * Besides ASan/UBSan, it aborts when a parsed setting is out of its range
 * or the parse does not repeat exactly.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "fuzz_config: check failed: %s\n", #cond); \
			abort();                                                 \
		}                                                                \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	qp_log_set_level(LOG_MSG);	/* every bad line logs an error: keep quiet */
	return 0;
}

static void check_ranges(const struct qp_config *c)
{
	const unsigned max = 1u << 20;

	CHECK(strnlen(c->base_image, sizeof(c->base_image)) < sizeof(c->base_image));
	CHECK(c->min_block_bytes % (1ULL << 20) == 0);
	CHECK(c->workers <= max && c->qmp_timeout_ms <= max && c->downtime_ms <= max);
	CHECK(c->live_max_passes <= max && c->live_max_ms <= max);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qp_config a, b;
	int ra, rb;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	qp_config_defaults(&a);
	qp_config_defaults(&b);
	ra = qp_config_parse(&a, (const char *)data, size, "fuzz.conf");
	CHECK(ra == 0 || ra == -EINVAL);
	check_ranges(&a);
	rb = qp_config_parse(&b, (const char *)data, size, "fuzz.conf");
	CHECK(ra == rb && !memcmp(&a, &b, sizeof(a)));
	return 0;
}
