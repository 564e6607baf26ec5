// SPDX-License-Identifier: GPL-2.0
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

static const struct qp_config defaults = {
	.enabled = true,
	.workers = 0,
	.odirect = false,
	.min_block_bytes = 64ULL << 20,
	.qmp_timeout_ms = 1000,
	.live = true,
	.downtime_ms = 100,
	.live_max_passes = 8,
	.live_max_ms = 30000,
	.incremental = true,
	.incremental_verify = true,
	.lazy_restore = false,
};

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcasecmp(v, "off"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

static int parse_ull(const char *v, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(v, &end, 0);
	if (errno || end == v || *end || *v == '-')
		return -EINVAL;
	return 0;
}

static int parse_uint(const char *v, unsigned *out)
{
	unsigned long long x;

	if (parse_ull(v, &x) || x > 1u << 20)
		return -EINVAL;
	*out = x;
	return 0;
}

int qp_config_set(struct qp_config *c, const char *key, const char *value)
{
	unsigned long long mb;

	if (!strcmp(key, "enabled"))
		return parse_bool(value, &c->enabled);
	if (!strcmp(key, "workers"))
		return parse_uint(value, &c->workers);
	if (!strcmp(key, "odirect"))
		return parse_bool(value, &c->odirect);
	if (!strcmp(key, "qmp_timeout_ms"))
		return parse_uint(value, &c->qmp_timeout_ms);
	if (!strcmp(key, "live"))
		return parse_bool(value, &c->live);
	if (!strcmp(key, "downtime_ms"))
		return parse_uint(value, &c->downtime_ms);
	if (!strcmp(key, "live_max_passes"))
		return parse_uint(value, &c->live_max_passes);
	if (!strcmp(key, "live_max_ms"))
		return parse_uint(value, &c->live_max_ms);
	if (!strcmp(key, "incremental"))
		return parse_bool(value, &c->incremental);
	if (!strcmp(key, "lazy_restore"))
		return parse_bool(value, &c->lazy_restore);
	if (!strcmp(key, "incremental_verify"))
		return parse_bool(value, &c->incremental_verify);
	if (!strcmp(key, "base_image")) {
		if (strlen(value) >= sizeof(c->base_image))
			return -EINVAL;
		strcpy(c->base_image, value);
		return 0;
	}
	if (!strcmp(key, "min_block_mb")) {
		if (parse_ull(value, &mb))
			return -EINVAL;
		c->min_block_bytes = mb << 20;
		return 0;
	}
	return -ENOENT;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = 0;
	return s;
}

static int load_file(struct qp_config *c, const char *path)
{
	char line[512];
	int lineno = 0, ret = 0;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(line, sizeof(line), f)) {
		char *key, *eq, *s = trim(line);

		lineno++;
		if (!*s || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			pr_err("%s:%d: expected 'key = value'\n", path, lineno);
			ret = -EINVAL;
			continue;
		}
		*eq = 0;
		key = trim(s);
		if (qp_config_set(c, key, trim(eq + 1))) {
			pr_err("%s:%d: bad setting '%s'\n", path, lineno, key);
			ret = -EINVAL;
		}
	}
	fclose(f);
	return ret;
}

static const char *const env_keys[][2] = {
	{ "CRIU_QEMU_ENABLED", "enabled" },
	{ "CRIU_QEMU_WORKERS", "workers" },
	{ "CRIU_QEMU_ODIRECT", "odirect" },
	{ "CRIU_QEMU_MIN_BLOCK_MB", "min_block_mb" },
	{ "CRIU_QEMU_QMP_TIMEOUT_MS", "qmp_timeout_ms" },
	{ "CRIU_QEMU_LIVE", "live" },
	{ "CRIU_QEMU_DOWNTIME_MS", "downtime_ms" },
	{ "CRIU_QEMU_LIVE_MAX_PASSES", "live_max_passes" },
	{ "CRIU_QEMU_LIVE_MAX_MS", "live_max_ms" },
	{ "CRIU_QEMU_INCREMENTAL", "incremental" },
	{ "CRIU_QEMU_BASE_IMAGE", "base_image" },
	{ "CRIU_QEMU_INCREMENTAL_VERIFY", "incremental_verify" },
	{ "CRIU_QEMU_LAZY_RESTORE", "lazy_restore" },
};

static int load_env(struct qp_config *c)
{
	size_t i;

	for (i = 0; i < sizeof(env_keys) / sizeof(env_keys[0]); i++) {
		const char *v = getenv(env_keys[i][0]);

		if (v && qp_config_set(c, env_keys[i][1], v)) {
			pr_err("bad value '%s' in %s\n", v, env_keys[i][0]);
			return -EINVAL;
		}
	}
	return 0;
}

int qp_config_load(struct qp_config *c)
{
	const char *path = getenv("CRIU_QEMU_CONFIG");
	int ret;

	*c = defaults;
	ret = load_file(c, path ? path : QP_CONFIG_FILE);
	if (ret)
		return ret;
	return load_env(c);
}
