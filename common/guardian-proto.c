// SPDX-License-Identifier: GPL-2.0
/* Control-channel messages between the plugin and the guardian. */
#define LOG_PREFIX "guardian channel: "

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "clock.h"
#include "guardian-proto.h"
#include "io.h"
#include "log.h"

const char *gp_type_name(unsigned type)
{
	static const char *const names[] = {
		[GP_HELLO] = "HELLO",
		[GP_HELLO_ACK] = "HELLO_ACK",
		[GP_UFFD] = "UFFD",
		[GP_UFFD_ACK] = "UFFD_ACK",
		[GP_PREPARE] = "PREPARE",
		[GP_PLACED] = "PLACED",
		[GP_PLACE_FAILED] = "PLACE_FAILED",
		[GP_VERDICT_DONE] = "VERDICT_DONE",
		[GP_VERDICT_GIVE_BACK] = "VERDICT_GIVE_BACK",
		[GP_GAVE_BACK] = "GAVE_BACK",
		[GP_PREPARE_ACK] = "PREPARE_ACK",
	};

	if (type < sizeof(names) / sizeof(names[0]) && names[type])
		return names[type];
	return "?";
}

union gp_cmsg {
	char buf[CMSG_SPACE(sizeof(int))];
	struct cmsghdr align;
};

int gp_send(int sock, unsigned type, const struct gp_msg *body, int fd)
{
	struct gp_msg m = {};

	if (body)
		m = *body;
	m.magic = GP_MAGIC;
	m.version = GP_VERSION;
	m.type = type;
	return send_with_fd(sock, &m, sizeof(m), fd, 0);
}

/* The fd of an SCM_RIGHTS message, or -1. */
static int take_fd(struct msghdr *msg)
{
	struct cmsghdr *ch;
	int fd = -1;

	for (ch = CMSG_FIRSTHDR(msg); ch; ch = CMSG_NXTHDR(msg, ch)) {
		if (ch->cmsg_level != SOL_SOCKET || ch->cmsg_type != SCM_RIGHTS)
			continue;
		if (ch->cmsg_len >= CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(ch), sizeof(int));
	}
	return fd;
}

int gp_recv(int sock, struct gp_msg *m, int *fd)
{
	union gp_cmsg cmsg = {};
	struct iovec iov = { m, sizeof(*m) };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cmsg.buf,
		.msg_controllen = sizeof(cmsg.buf),
	};
	ssize_t n;
	int got;

	if (fd)
		*fd = -1;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (n == 0)
		return 0;
	got = take_fd(&msg);
	if (fd)
		*fd = got;
	else if (got >= 0)
		close(got);
	if (n != sizeof(*m) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || m->magic != GP_MAGIC ||
	    m->version != GP_VERSION) {
		pr_err("bad message (%zd bytes, magic %#x, version %u)\n", n,
		       n >= 8 ? m->magic : 0, n >= 8 ? m->version : 0);
		if (fd && *fd >= 0) {
			close(*fd);
			*fd = -1;
		}
		return -EPROTO;
	}
	return 1;
}

int gp_recv_type(int sock, unsigned want, struct gp_msg *m, int *fd, int timeout_ms)
{
	double deadline = now_ms() + timeout_ms;
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int ret;

	for (;;) {
		double left = deadline - now_ms();

		ret = poll(&p, 1, left > 0 ? (int)left : 0);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return -errno;
		if (ret == 0)
			return -ETIMEDOUT;
		ret = gp_recv(sock, m, fd);
		if (ret == -EAGAIN)
			continue;
		if (ret <= 0)
			return ret ? ret : -EPIPE;
		if (m->type == want)
			return 0;
		pr_err("got %s, expected %s\n", gp_type_name(m->type),
		       gp_type_name(want));
		if (fd && *fd >= 0) {
			close(*fd);
			*fd = -1;
		}
		return -EPROTO;
	}
}
