// SPDX-License-Identifier: GPL-2.0
/*
 * qmp_monitor_busy() against a listening unix socket of our own, in the
 * states QEMU's QMP socket goes through: no client, a client waiting in
 * the backlog, that client gone but still queued (what CRIU refuses to
 * dump), accepted, closed. qmp_open() does not connect to a busy one,
 * and waits for a client that is leaving.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"
#include "qmp.h"

static char dir[64];
static struct sockaddr_un sa = { .sun_family = AF_UNIX };

static int listener(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	unlink(sa.sun_path);	/* left by a failed test */
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static int client(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void test_busy_states(void **state)
{
	int l, c, a;

	(void)state;
	l = listener();
	assert_int_equal(qmp_monitor_busy(getpid(), sa.sun_path), 0);
	c = client();
	assert_int_equal(qmp_monitor_busy(getpid(), sa.sun_path), 1);	/* queued */
	close(c);
	assert_int_equal(qmp_monitor_busy(getpid(), sa.sun_path), 1);	/* closed, still queued */
	a = accept(l, NULL, NULL);
	assert_true(a >= 0);
	close(a);
	assert_int_equal(qmp_monitor_busy(getpid(), sa.sun_path), 0);
	c = client();
	a = accept(l, NULL, NULL);
	assert_true(a >= 0);
	assert_int_equal(qmp_monitor_busy(getpid(), sa.sun_path), 1);	/* accepted */
	close(c);
	close(a);
	assert_int_equal(qmp_monitor_busy(getpid(), sa.sun_path), 0);
	assert_int_equal(qmp_monitor_busy(getpid(), "/no/such/monitor.sock"), 0);
	close(l);
	unlink(sa.sun_path);
}

/* Busy: -EBUSY at once, and nothing of ours joins the backlog. */
static void test_open_busy_does_not_connect(void **state)
{
	struct qmp q;
	int l, c, a, b;

	(void)state;
	l = listener();
	c = client();
	assert_int_equal(qmp_open(&q, getpid(), sa.sun_path, 200), -EBUSY);
	a = accept(l, NULL, NULL);
	assert_true(a >= 0);
	assert_int_equal(fcntl(l, F_SETFL, O_NONBLOCK), 0);
	b = accept(l, NULL, NULL);
	assert_int_equal(b, -1);
	assert_int_equal(errno, EAGAIN);
	close(a);
	close(c);
	close(l);
	unlink(sa.sun_path);
}

/* "QEMU": drops its client after 100 ms, then serves the next one. */
static void *fake_qemu(void *arg)
{
	int l = *(int *)arg, a;
	char buf[256];

	a = accept(l, NULL, NULL);
	usleep(100 * 1000);
	close(a);
	a = accept(l, NULL, NULL);
	if (write(a, "{\"QMP\": {}}\n", 12) == 12 && read(a, buf, sizeof(buf)) > 0 &&
	    write(a, "{\"return\": {}}\n", 15) == 15)
		read(a, buf, sizeof(buf));	/* until qmp_close() */
	close(a);
	return NULL;
}

/* A client on its way out delays qmp_open() but does not make it give up. */
static void test_open_after_client_left(void **state)
{
	pthread_t t;
	struct qmp q;
	int l, c;

	(void)state;
	l = listener();
	assert_int_equal(pthread_create(&t, NULL, fake_qemu, &l), 0);
	c = client();
	usleep(20 * 1000);
	close(c);
	assert_int_equal(qmp_open(&q, getpid(), sa.sun_path, 2000), 0);
	qmp_close(&q);
	pthread_join(t, NULL);
	close(l);
	unlink(sa.sun_path);
}

static int setup(void **state)
{
	(void)state;
	if (th_tmpdir(dir, sizeof(dir), "/tmp", "test_qmp"))
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/mon.sock", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return th_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_busy_states),
		cmocka_unit_test(test_open_busy_does_not_connect),
		cmocka_unit_test(test_open_after_client_left),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
