/* SPDX-License-Identifier: MIT */
/*
 * Socket operations, one thin function each over the await in op.c (the
 * field map is in opdef.c), and the TCP conveniences
 * weft_tcp_listen and weft_tcp_dial. Name resolution (getaddrinfo blocks)
 * runs on an offload worker.
 */
#include "accept.h"
#include "recvmulti.h"
#include "op.h"
#include "opdef.h"
#include "offload.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PTR(p) ((uint64_t)(uintptr_t)(p))

/* The most one send or receive moves, as the kernel's MAX_RW_COUNT. */
#define XFER_MAX ((size_t)0x7ffff000)

static int check_sock_buf(const void *buf, size_t len)
{
	if ((!buf && len) || len > (size_t)SSIZE_MAX)
		return -EINVAL;
	return 0;
}

int weft_socket(int domain, int type, int protocol)
{
	/* The domain goes where the fd would: the op table says it is none. */
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_SOCKET, domain, 0, (uint32_t)protocol, (uint64_t)(uint32_t)type,
		      0);

	return weft__op_run(&op);
}

int weft_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_ACCEPT, fd, PTR(addr), 0, PTR(len), (uint32_t)flags);

	if ((addr && !len) || (flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK)))
		return -EINVAL;
	/* io_uring: the listener's multishot accept (accept.c), unless it says otherwise. */
	if (l && l->cur && fd >= 0 && weft__op_native(l, WEFT__OP_ACCEPT_MULTI)) {
		int rc = weft__accept_multi(l, fd, addr, len, flags);

		if (rc != WEFT__ACCEPT_PLAIN) {
			if (rc >= 0 && weft__recvm_has(l, rc))
				weft__recvm_forget(
				    l, rc); /* its number was closed behind weft's back */
			return rc;
		}
	}
	return weft__op_run(&op);
}

int weft_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	return weft_accept4(fd, addr, len, 0);
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_CONNECT, fd, PTR(addr), 0, len, 0);

	return addr ? weft__op_run(&op) : -EINVAL;
}

/* A recv or send of at most XFER_MAX bytes. */
static ssize_t xfer(uint8_t code, int fd, const void *buf, size_t len, int flags)
{
	struct weft__op op;

	weft__op_init(&op, code, fd, PTR(buf), (uint32_t)(len > XFER_MAX ? XFER_MAX : len), 0,
		      (uint32_t)flags);
	int rc = check_sock_buf(buf, len);

	return rc < 0 ? rc : weft__op_run(&op);
}

ssize_t weft_recv(int fd, void *buf, size_t len, int flags)
{
	struct iovec v = { buf, len };
	ssize_t n = weft__recvm_before(fd, &v, 1, flags);

	/* What weft_recv_buf's multishot receive queued comes first (recvmulti.h). */
	if (WEFT__UNLIKELY(n != WEFT__RECVM_PLAIN)) {
		if (n > 0 && (flags & MSG_WAITALL) && (size_t)n < len) {
			ssize_t m = weft_recv(fd, (char *)buf + n, len - (size_t)n, flags);

			return m > 0 ? n + m : n;
		}
		return n;
	}
	return xfer(WEFT__OP_RECV, fd, buf, len, flags);
}

ssize_t weft_send(int fd, const void *buf, size_t len, int flags)
{
	return xfer(WEFT__OP_SEND, fd, buf, len, flags | MSG_NOSIGNAL);
}

ssize_t weft_send_all(int fd, const void *buf, size_t len, int flags)
{
	const char *p = buf;
	size_t done = 0;
	int rc = check_sock_buf(buf, len);

	if (rc < 0)
		return rc;
	while (done < len) {
		ssize_t n = weft_send(fd, p + done, len - done, flags);

		if (n < 0)
			return n;
		done += (size_t)n;
	}
	return (ssize_t)len;
}

ssize_t weft_send_zc(int fd, const void *buf, size_t len, int flags)
{
	struct weft_loop *l = weft__tls_loop;
	ssize_t n;

	if (!l || !weft__op_native(l, WEFT__OP_SEND_ZC))
		return weft_send(fd, buf, len, flags);
	n = xfer(WEFT__OP_SEND_ZC, fd, buf, len, flags | MSG_NOSIGNAL);
	/* A socket the kernel cannot send from user pages (AF_UNIX): a plain send. */
	return n == -EOPNOTSUPP ? weft_send(fd, buf, len, flags) : n;
}

/* What poll(2) may be asked for. */
#define POLL_EVENTS                                                                                \
	(POLLIN | POLLPRI | POLLOUT | POLLRDHUP | POLLERR | POLLHUP | POLLRDNORM | POLLRDBAND |    \
	 POLLWRNORM | POLLWRBAND)

int weft_poll(int fd, unsigned events)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_POLL, fd, 0, 0, 0, events);

	if (events == 0 || (events & ~(unsigned)POLL_EVENTS))
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	/* Bytes weft_recv_buf's multishot receive queued are input ready now. */
	if (WEFT__UNLIKELY(weft__tls_loop && weft__recvm_has(weft__tls_loop, fd)) &&
	    (events & (POLLIN | POLLRDNORM)) && weft__recvm_readable(weft__tls_loop, fd))
		return (int)(events & (POLLIN | POLLRDNORM));
	return weft__op_run(&op);
}

/* A recvmsg or sendmsg. */
static ssize_t xfer_msg(uint8_t code, int fd, const struct msghdr *msg, int flags)
{
	struct weft__op op;

	weft__op_init(&op, code, fd, PTR(msg), 1, 0, (uint32_t)flags);

	return msg ? weft__op_run(&op) : -EINVAL;
}

ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t n =
	    msg ? weft__recvm_before(fd, msg->msg_iov, msg->msg_iovlen, flags) : WEFT__RECVM_PLAIN;

	if (WEFT__UNLIKELY(n != WEFT__RECVM_PLAIN)) {
		if (n >= 0) { /* a stream's queued bytes: no name, no control data */
			msg->msg_namelen = 0;
			msg->msg_controllen = 0;
			msg->msg_flags = 0;
		}
		return n;
	}
	return xfer_msg(WEFT__OP_RECVMSG, fd, msg, flags);
}

ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	return xfer_msg(WEFT__OP_SENDMSG, fd, msg, flags | MSG_NOSIGNAL);
}

int weft_shutdown(int fd, int how)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_SHUTDOWN, fd, 0, (uint32_t)how, 0, 0);

	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return -EINVAL;
	return weft__op_run(&op);
}

/* ---- TCP conveniences ------------------------------------------------------ */

/* Fill @ss with a numeric @host, without resolving. Return: 1 if numeric, else 0. */
static int numeric(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (!host || inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		if (!host)
			v4->sin_addr.s_addr = htonl(INADDR_ANY);
		*len = sizeof(*v4);
		return 1;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*v6);
		return 1;
	}
	return 0;
}

/*
 * Name resolution. getaddrinfo blocks (for as long as the resolver's timeouts
 * say: 5 s x attempts by default), so it runs on a worker of the loop's
 * pool, and the fiber stops waiting at its deadline or a cancel; the worker
 * then finishes and frees the request by itself.
 */
struct resolve {
	char *host;
	char port[8];
	int passive;
	struct addrinfo *res;
	int gai;
	int err; /* errno, for EAI_SYSTEM */
};

static int run_getaddrinfo(void *arg)
{
	struct resolve *r = arg;
	struct addrinfo hints;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (r->passive ? AI_PASSIVE : 0);
	errno = 0;
	r->gai = getaddrinfo(r->host, r->port, &hints, &r->res);
	r->err = errno;
	return 0;
}

static void drop_resolve(void *arg)
{
	struct resolve *r = arg;

	if (r->gai == 0 && r->res)
		freeaddrinfo(r->res);
	free(r->host);
	free(r);
}

/* The -errno for a getaddrinfo result (the table in weft.h, weft_tcp_dial). */
static int gai_errno(int gai, int err)
{
	switch (gai) {
	case 0:
		return 0;
	case EAI_NONAME:
#ifdef EAI_NODATA
	case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
	case EAI_ADDRFAMILY:
#endif
		return -ENOENT; /* no such host, or no address for it */
	case EAI_AGAIN:
		return -EAGAIN; /* the resolver did not answer in time: try again later */
	case EAI_FAIL:
		return -EIO; /* the name server failed for good */
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_SYSTEM:
		return err > 0 ? -err : -EIO;
	default: /* EAI_FAMILY, EAI_SOCKTYPE, EAI_SERVICE, EAI_BADFLAGS, ... */
		return -EINVAL;
	}
}

/* Resolve @host. Return: 0 with *@res to freeaddrinfo, or -errno. */
static int resolve(const char *host, int port, int passive, struct addrinfo **res)
{
	struct resolve *r = calloc(1, sizeof(*r));

	if (!r || !(r->host = strdup(host))) {
		free(r);
		return -ENOMEM;
	}
	r->passive = passive;
	/* The port as text, without snprintf: the printf family takes ~2 KiB of a fiber's stack. */
	char digits[8];
	size_t n = 0;

	do
		digits[n++] = (char)('0' + port % 10);
	while ((port /= 10) > 0);
	for (size_t i = 0; i < n; i++)
		r->port[i] = digits[n - 1 - i];
	r->port[n] = '\0';

	int rc = weft__offload_abandonable(run_getaddrinfo, drop_resolve, r);

	if (rc < 0)
		return rc; /* @r is dropped, now or when the resolver returns */
	rc = gai_errno(r->gai, r->err);
	*res = r->gai == 0 ? r->res : NULL;
	free(r->host);
	free(r);
	return rc;
}

static int listen_on(const struct sockaddr *sa, socklen_t len, int backlog, unsigned flags)
{
	int one = 1;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    ((flags & WEFT_TCP_REUSEPORT) &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0))
		goto fail;
	if (sa->sa_family == AF_INET6) {
		int zero = 0; /* "::" takes IPv4 too, whatever bindv6only says */

		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	}
	if (bind(fd, sa, len) < 0 || listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
		goto fail;
	return fd;
fail:;
	int err = -errno;

	close(fd);
	return err;
}

int weft_tcp_listen(const char *host, int port, int backlog, unsigned flags)
{
	struct weft_fiber *self;
	struct sockaddr_storage ss;
	socklen_t len;

	if (port < 0 || port > 65535 || (flags & ~WEFT_TCP_REUSEPORT))
		return -EINVAL;

	int rc = weft__fiber_check(&self);

	if (rc < 0)
		return rc;
	if (numeric(host, port, &ss, &len))
		return listen_on((struct sockaddr *)&ss, len, backlog, flags);

	struct addrinfo *res;

	rc = resolve(host, port, 1, &res);
	if (rc < 0)
		return rc;
	rc = -ENOENT;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		rc = listen_on(ai->ai_addr, ai->ai_addrlen, backlog, flags);
		if (rc >= 0)
			break;
	}
	freeaddrinfo(res);
	return rc;
}

static int dial_one(const struct sockaddr *sa, socklen_t len)
{
	int fd = weft_socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return fd;

	int rc = weft_connect(fd, sa, len);

	if (rc < 0) {
		close(fd); /* not weft_close: a cancelled fiber must not leak it */
		return rc;
	}
	return fd;
}

int weft_tcp_dial(const char *host, int port)
{
	struct weft_fiber *self;
	struct sockaddr_storage ss;
	socklen_t len;

	if (!host || port <= 0 || port > 65535)
		return -EINVAL;

	int rc = weft__fiber_check(&self);

	if (rc < 0)
		return rc;
	if (numeric(host, port, &ss, &len))
		return dial_one((struct sockaddr *)&ss, len);

	struct addrinfo *res;

	rc = resolve(host, port, 0, &res);
	if (rc < 0)
		return rc;
	rc = -ENOENT;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		rc = dial_one(ai->ai_addr, ai->ai_addrlen);
		if (rc >= 0 || rc == -ECANCELED || rc == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return rc;
}
