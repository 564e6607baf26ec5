// SPDX-License-Identifier: GPL-2.0
/*
 * rsys_detach_armed (criu-plugin/rsys.c): a task left armed makes the
 * syscall we chose first when it runs again, then goes on where it was
 * stopped -- here inside a read() that must restart -- with its signal mask
 * back. The KVM dump leaves vCPU threads armed to map their kvm_run again.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "helpers.h"
#include "rsys.h"

static const char marker[] = "armed call ran";	/* same address in the child */

static __attribute__((noreturn)) void child_main(int cmd, int rep)
{
	sigset_t set, now;
	char c;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (write(rep, "r", 1) != 1)
		_exit(2);
	if (read(cmd, &c, 1) != 1)	/* stopped and armed in here */
		_exit(3);
	sigprocmask(SIG_BLOCK, NULL, &now);
	/* The mask is the child's own again: SIGUSR2 only. */
	c = sigismember(&now, SIGUSR2) && !sigismember(&now, SIGUSR1) ? c : 'm';
	if (write(rep, &c, 1) != 1)
		_exit(4);
	_exit(0);
}

static void test_armed_call_runs_once_then_resumes(void **state)
{
	int cmd[2], rep[2], status;
	struct rsys r = {};
	char buf[64] = "";
	long args[6];
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(cmd), 0);
	assert_int_equal(pipe(rep), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid)
		child_main(cmd[0], rep[1]);
	assert_int_equal(read(rep[0], buf, 1), 1);
	usleep(100 * 1000);	/* into read() */

	assert_int_equal(rsys_seize(&r, pid), 0);
	args[0] = rep[1];
	args[1] = (long)marker;
	args[2] = sizeof(marker);
	args[3] = args[4] = args[5] = 0;
	assert_int_equal(rsys_detach_armed(&r, SYS_write, args), 0);

	/* The armed write arrives first, exactly once ... */
	assert_int_equal(read(rep[0], buf, sizeof(marker)), sizeof(marker));
	assert_string_equal(buf, marker);
	/* ... then the child's read() goes on as if nothing happened. */
	assert_int_equal(write(cmd[1], "x", 1), 1);
	assert_int_equal(read(rep[0], buf, 1), 1);
	assert_int_equal(buf[0], 'x');
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(cmd[0]);
	close(cmd[1]);
	close(rep[0]);
	close(rep[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_armed_call_runs_once_then_resumes),
	};

	th_skip_program_if(th_need_root());	/* ptrace of a child, seccomp suspended */
	return th_run_group(tests, NULL, NULL);
}
