// SPDX-License-Identifier: GPL-2.0
/* Placeholder main until the guardian lands (issue 3). */
#include <stdio.h>

int main(void)
{
	fprintf(stderr, "criu-qemu-guardian: not implemented yet\n");
	return 1;
}
