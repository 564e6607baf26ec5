// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proc.h"

int proc_status_field(pid_t pid, const char *key, char *val, size_t len)
{
	size_t klen = strlen(key);
	char path[64], line[512];
	int ret = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (ret && fgets(line, sizeof(line), f)) {
		const char *v = line + klen + 1;

		if (strncmp(line, key, klen) || line[klen] != ':')
			continue;
		v += strspn(v, " \t");
		snprintf(val, len, "%.*s", (int)strcspn(v, "\n"), v);
		ret = 0;
	}
	fclose(f);
	return ret;
}
