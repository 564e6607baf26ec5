// SPDX-License-Identifier: GPL-2.0
/* criu-qemu-guardian: see guardian.h. */
#include "guardian.h"

int main(int argc, char **argv)
{
	return guardian_main(argc, argv);
}
