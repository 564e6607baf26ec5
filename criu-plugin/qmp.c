// SPDX-License-Identifier: GPL-2.0
#define LOG_PREFIX "qmp: "

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "proc.h"
#include "qmp.h"

#define QMP_BUSY_POLL_MS 20

static int wait_fd(struct qmp *q, short events)
{
	struct pollfd p = { .fd = q->fd, .events = events };
	long long left;
	int ret;

	for (;;) {
		left = q->deadline_ms - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		ret = poll(&p, 1, left);
		if (ret > 0)
			return 0;
		if (ret < 0 && errno != EINTR)
			return -errno;
	}
}

/*
 * The socket path lives in QEMU's mount namespace and may be longer than
 * sun_path once prefixed with /proc/PID/root: open it O_PATH and connect
 * through /proc/self/fd/N instead.
 */
static int connect_path(struct qmp *q, pid_t pid, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char full[4200];
	int pfd, ret;

	snprintf(full, sizeof(full), "/proc/%d/root%s%s", pid, path[0] == '/' ? "" : "/", path);
	pfd = open(full, O_PATH | O_CLOEXEC);
	if (pfd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", pfd);
	ret = connect(q->fd, (struct sockaddr *)&sa, sizeof(sa));
	if (ret < 0 && errno == EINPROGRESS)
		ret = wait_fd(q, POLLOUT);
	else if (ret < 0)
		ret = -errno;
	close(pfd);
	return ret;
}

/* Read one JSON message (QMP sends one per line). */
static int read_msg(struct qmp *q, json_t **msg)
{
	json_error_t jerr;
	char *nl;
	ssize_t n;
	int ret;

	while (!(nl = memchr(q->buf, '\n', q->len))) {
		if (q->len == sizeof(q->buf))
			return -E2BIG;
		ret = wait_fd(q, POLLIN);
		if (ret)
			return ret;
		n = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (n > 0)
			q->len += n;
	}
	*msg = json_loadb(q->buf, nl - q->buf, 0, &jerr);
	q->len -= nl + 1 - q->buf;
	memmove(q->buf, nl + 1, q->len);
	if (!*msg) {
		pr_warn("bad JSON from QEMU: %s\n", jerr.text);
		return -EBADMSG;
	}
	return 0;
}

static int send_all(struct qmp *q, const char *s, size_t len)
{
	ssize_t n;
	int ret;

	while (len) {
		ret = wait_fd(q, POLLOUT);
		if (ret)
			return ret;
		n = send(q->fd, s, len, MSG_NOSIGNAL);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (n > 0) {
			s += n;
			len -= n;
		}
	}
	return 0;
}

int qmp_execute(struct qmp *q, const char *command, json_t *args, json_t **ret)
{
	json_t *req, *msg, *val;
	char *text;
	int err;

	req = json_pack("{s:s}", "execute", command);
	if (args)
		json_object_set(req, "arguments", args);
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text)
		return -ENOMEM;
	err = send_all(q, text, strlen(text));
	if (!err)
		err = send_all(q, "\n", 1);
	free(text);

	/* Skip asynchronous events until the reply arrives. */
	while (!err && !(err = read_msg(q, &msg))) {
		if ((val = json_object_get(msg, "return"))) {
			if (ret)
				*ret = json_incref(val);
			json_decref(msg);
			return 0;
		}
		if ((val = json_object_get(msg, "error"))) {
			pr_info("%s failed: %s\n", command,
				json_string_value(json_object_get(val, "desc")) ?: "?");
			json_decref(msg);
			return -EREMOTEIO;
		}
		json_decref(msg);
	}
	return err;
}

/*
 * QEMU's QMP chardev serves one client at a time and does not accept while
 * it has one. A second connect() still succeeds: the connection waits in
 * the listening socket's backlog until QEMU accepts it, and stays there
 * after we time out and close our end. Nothing but QEMU's accept() takes
 * it out again, and CRIU then fails the dump ("Found a closed in-flight
 * socket") -- so we never connect to a busy monitor. QEMU's accepted
 * sockets and connections queued for it carry the listener's name in
 * /proc/PID/net/unix (QEMU's network namespace), state connected (03) or
 * connecting (02); the listener itself is unconnected (01). Another
 * socket of that name elsewhere (an old QEMU's, the path rebound) reads
 * as busy too: that only costs the fallback to the command line.
 * A client connecting between this check and our connect() still queues
 * us behind it; no check can close that window.
 */
static int is_client(const char *line, void *path)
{
	struct proc_unix u;

	if (proc_unix_parse(line, &u))
		return 0;	/* the header */
	return u.type == SOCK_STREAM && (u.state == 2 || u.state == 3) && !strcmp(u.path, path);
}

int qmp_monitor_busy(pid_t pid, const char *path)
{
	return proc_lines_for_each(pid, "net/unix", is_client, (void *)path);
}

/* A client that has just left keeps it busy until QEMU sees its EOF. */
static int wait_not_busy(struct qmp *q, pid_t pid, const char *path)
{
	int ret;

	while ((ret = qmp_monitor_busy(pid, path)) > 0 && now_ms() < q->deadline_ms)
		usleep(QMP_BUSY_POLL_MS * 1000);
	return ret;
}

int qmp_open(struct qmp *q, pid_t pid, const char *path, unsigned timeout_ms)
{
	json_t *greeting;
	int ret;

	q->len = 0;
	q->deadline_ms = now_ms() + timeout_ms;
	ret = wait_not_busy(q, pid, path);
	if (ret > 0) {
		pr_info("monitor %s is busy (it has a client); not connecting\n", path);
		return -EBUSY;
	}
	if (ret < 0)
		pr_debug("cannot tell whether %s is busy: %s\n", path, strerror(-ret));
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (q->fd < 0)
		return -errno;
	ret = connect_path(q, pid, path);
	if (!ret)
		ret = read_msg(q, &greeting);
	if (!ret) {
		if (!json_object_get(greeting, "QMP"))
			ret = -EPROTO;
		json_decref(greeting);
	}
	if (!ret)
		ret = qmp_execute(q, "qmp_capabilities", NULL, NULL);
	if (ret)
		qmp_close(q);
	return ret;
}

void qmp_close(struct qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
}
