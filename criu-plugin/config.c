// SPDX-License-Identifier: GPL-2.0
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

/* A config file is a few hundred bytes; anything this big is a mistake. */
#define QP_CONFIG_MAX	(1 << 20)

static const struct qp_config defaults = {
	.enabled = true,
	.workers = 0,
	.odirect = true,
	.min_block_bytes = 64ULL << 20,
	.tcg_code = true,
	.qmp_timeout_ms = 1000,
	.live = true,
	.downtime_ms = 100,
	.live_max_passes = 8,
	.live_max_ms = 30000,
	.incremental = true,
	.incremental_verify = true,
	.lazy_restore = false,
};

enum key_type { K_BOOL, K_UINT, K_MIB, K_STR };

struct key {
	const char *name;	/* the environment variable is CRIU_QEMU_<NAME> */
	enum key_type type;
	size_t off, size;	/* of the field in struct qp_config */
};

#define KEY(name, type, field) \
	{ name, type, offsetof(struct qp_config, field), sizeof(((struct qp_config *)0)->field) }

static const struct key keys[] = {
	KEY("enabled", K_BOOL, enabled),
	KEY("workers", K_UINT, workers),
	KEY("odirect", K_BOOL, odirect),
	KEY("min_block_mb", K_MIB, min_block_bytes),
	KEY("tcg_code", K_BOOL, tcg_code),
	KEY("qmp_timeout_ms", K_UINT, qmp_timeout_ms),
	KEY("live", K_BOOL, live),
	KEY("downtime_ms", K_UINT, downtime_ms),
	KEY("live_max_passes", K_UINT, live_max_passes),
	KEY("live_max_ms", K_UINT, live_max_ms),
	KEY("incremental", K_BOOL, incremental),
	KEY("base_image", K_STR, base_image),
	KEY("incremental_verify", K_BOOL, incremental_verify),
	KEY("lazy_restore", K_BOOL, lazy_restore),
};

#define NR_KEYS (sizeof(keys) / sizeof(keys[0]))

void qp_config_defaults(struct qp_config *c)
{
	*c = defaults;
}

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

/*
 * Unsigned number (decimal, 0x hex, 0 octal: strtoull base 0) up to max.
 * strtoull() accepts "-1" (also after blanks) as ULLONG_MAX and saturates
 * on overflow with ERANGE: both are errors here.
 */
static int parse_num(const char *v, unsigned long long max, unsigned long long *out)
{
	unsigned long long x;
	char *end;

	if (strchr(v, '-'))
		return -EINVAL;
	errno = 0;
	x = strtoull(v, &end, 0);
	if (end == v || *end)
		return -EINVAL;
	if (errno == ERANGE || x > max)
		return -ERANGE;
	*out = x;
	return 0;
}

static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < NR_KEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

/* Largest number a numeric key takes. */
static unsigned long long key_max(const struct key *k)
{
	/* Thread counts, milliseconds, passes: 2^20 is beyond any sane value. */
	if (k->type == K_UINT)
		return 1u << 20;
	return ULLONG_MAX >> 20;	/* K_MIB: the byte count must fit */
}

static int set_key(struct qp_config *c, const struct key *k, const char *v)
{
	void *field = (char *)c + k->off;
	unsigned long long x;
	int ret;

	switch (k->type) {
	case K_BOOL:
		return parse_bool(v, field);
	case K_UINT:
		ret = parse_num(v, key_max(k), &x);
		if (!ret)
			*(unsigned *)field = x;
		return ret;
	case K_MIB:
		ret = parse_num(v, key_max(k), &x);
		if (!ret)
			*(unsigned long long *)field = x << 20;
		return ret;
	case K_STR:
		if (strlen(v) >= k->size)
			return -ENAMETOOLONG;
		strcpy(field, v);
		return 0;
	}
	return -EINVAL;
}

int qp_config_set(struct qp_config *c, const char *key, const char *value)
{
	const struct key *k = find_key(key);

	return k ? set_key(c, k, value) : -ENOENT;
}

/* Set key or say why not; where is "file:line" or the variable's name. */
static int apply(struct qp_config *c, const char *where, const char *key, const char *v)
{
	const struct key *k = find_key(key);
	static const char *const what[] = {
		[K_BOOL] = "yes/no, on/off, true/false or 1/0",
		[K_UINT] = "an unsigned number",
		[K_MIB] = "an unsigned number",
		[K_STR] = "a path",
	};
	int ret;

	if (!k) {
		pr_err("%s: unknown key '%s'\n", where, key);
		return -EINVAL;
	}
	ret = set_key(c, k, v);
	if (ret == -ERANGE)
		pr_err("%s: %s = '%s' is out of range (0..%llu)\n", where, k->name, v, key_max(k));
	else if (ret == -ENAMETOOLONG)
		pr_err("%s: %s is %zu bytes long, at most %zu\n", where, k->name, strlen(v), k->size - 1);
	else if (ret)
		pr_err("%s: %s = '%s' is not %s\n", where, k->name, v, what[k->type]);
	return ret ? -EINVAL : 0;
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

/*
 * The value after '=': "quoted" (taken as is, no escapes) or bare, either
 * one followed by an optional comment. A '#' starts a comment after a
 * blank only, so "/srv/vm#1" keeps its '#'. NULL on a malformed value.
 */
static char *parse_value(char *v, const char **why)
{
	char *s;

	while (isspace((unsigned char)*v))
		v++;
	if (*v == '"') {
		s = strchr(v + 1, '"');
		if (!s) {
			*why = "unterminated quote";
			return NULL;
		}
		*s++ = 0;
		while (isspace((unsigned char)*s))
			s++;
		if (*s && *s != '#') {
			*why = "text after the closing quote";
			return NULL;
		}
		return v + 1;
	}
	/* v[-1] is '=' or a blank: the line is still there before v. */
	for (s = v; *s; s++) {
		if (*s == '#' && isspace((unsigned char)s[-1])) {
			*s = 0;
			break;
		}
	}
	return trim(v);
}

/* One line, NUL-terminated and without its newline. */
static int parse_line(struct qp_config *c, char *line, const char *path, int lineno)
{
	char *key, *eq, *v, *s = trim(line), where[PATH_MAX + 16];
	const char *why = NULL;

	if (!*s || *s == '#')
		return 0;
	eq = strchr(s, '=');
	if (!eq) {
		pr_err("%s:%d: expected 'key = value'\n", path, lineno);
		return -EINVAL;
	}
	*eq = 0;
	key = trim(s);
	v = parse_value(eq + 1, &why);
	if (!v) {
		pr_err("%s:%d: %s: %s\n", path, lineno, key, why);
		return -EINVAL;
	}
	snprintf(where, sizeof(where), "%s:%d", path, lineno);
	return apply(c, where, key, v);
}

int qp_config_parse(struct qp_config *c, const char *text, size_t len, const char *path)
{
	const char *p = text, *end;
	int lineno = 0, ret = 0;

	if (!len)
		return 0;	/* text may be NULL */
	end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *line;

		lineno++;
		if (memchr(p, '\0', n)) {
			pr_err("%s:%d: NUL byte in line\n", path, lineno);
			ret = -EINVAL;
		} else {
			line = strndup(p, n);
			if (!line)
				return -ENOMEM;
			if (parse_line(c, line, path, lineno))
				ret = -EINVAL;
			free(line);
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	return ret;
}

/* Whole file into a buffer without a NUL; less than QP_CONFIG_MAX bytes. */
static int read_all(int fd, char **text, size_t *len)
{
	size_t cap = 0, n = 0;
	char *buf = NULL, *nbuf;
	ssize_t r;

	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			nbuf = cap > QP_CONFIG_MAX ? NULL : realloc(buf, cap);
			if (!nbuf) {
				free(buf);
				return cap > QP_CONFIG_MAX ? -EFBIG : -ENOMEM;
			}
			buf = nbuf;
		}
		r = read(fd, buf + n, cap - n);
		if (r > 0)
			n += r;
	} while (r > 0 || (r < 0 && errno == EINTR));
	if (r < 0) {
		r = -errno;
		free(buf);
		return r;
	}
	*text = buf;
	*len = n;
	return 0;
}

static int load_file(struct qp_config *c, const char *path)
{
	size_t len = 0;
	char *text = NULL;
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		snprintf(c->source, sizeof(c->source), "%s: none, defaults", path);
		return 0;
	}
	if (fd < 0) {
		ret = -errno;
		pr_err("cannot open config file %s: %s\n", path, strerror(-ret));
		return ret;
	}
	/* A directory opens and reads as nothing: it would be ignored. */
	if (!fstat(fd, &st) && S_ISDIR(st.st_mode)) {
		pr_err("config file %s is a directory\n", path);
		close(fd);
		return -EISDIR;
	}
	ret = read_all(fd, &text, &len);
	close(fd);
	if (ret) {
		pr_err("cannot read config file %s: %s\n", path, strerror(-ret));
		return ret;
	}
	snprintf(c->source, sizeof(c->source), "%s, %zu bytes", path, len);
	ret = qp_config_parse(c, text, len, path);
	free(text);
	return ret;
}

/* CRIU_QEMU_<KEY> for every key, e.g. CRIU_QEMU_MIN_BLOCK_MB. */
static void env_name(const struct key *k, char *buf, size_t len)
{
	size_t i = snprintf(buf, len, "CRIU_QEMU_");

	for (const char *s = k->name; *s && i + 1 < len; s++)
		buf[i++] = toupper((unsigned char)*s);
	buf[i] = '\0';
}

static int load_env(struct qp_config *c)
{
	char name[64];

	for (size_t i = 0; i < NR_KEYS; i++) {
		const char *v;

		env_name(&keys[i], name, sizeof(name));
		v = getenv(name);
		if (v && apply(c, name, keys[i].name, v))
			return -EINVAL;
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
