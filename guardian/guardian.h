/* SPDX-License-Identifier: GPL-2.0 */
/*
 * criu-qemu-guardian: a process outside CRIU's tree that holds a QEMU task's
 * userfaultfd once guest RAM has been handed over (handoff.c). It serves
 * every fault from the image, and gives every page back unless the task
 * dies after a "done" verdict. See Documentation/design.md.
 *
 *   criu-qemu-guardian --ctl FD --image FD --pidfd FD [--log PATH]
 *
 * The plugin starts it with the control socket, the image and a pidfd of
 * the task at GP_FD_CTL, GP_FD_IMAGE, GP_FD_PIDFD and stderr on its log.
 */
#ifndef CRIU_QEMU_GUARDIAN_H
#define CRIU_QEMU_GUARDIAN_H

int guardian_main(int argc, char **argv);

#endif
