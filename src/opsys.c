/* SPDX-License-Identifier: MIT */
/*
 * The system calls behind the op table's hooks. A try never blocks: a
 * socket call with MSG_DONTWAIT, a file read or write with RWF_NOWAIT (a
 * page-cache hit), an accept4 after a look at readiness, a connect on a
 * socket made non-blocking for it. What a try must remember between tries
 * of one op lives in op->hook (0 at submit); what it learns of an fd, in
 * the backend's byte for it (@memo, when there is one). The blocking forms
 * run on worker threads, on the fields of a record a worker may hold a copy
 * of (see op.c): they read nothing else.
 */
#include "opsys.h"
#include "bufs.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif
#define FSYNC_DATASYNC 1u /* IORING_FSYNC_DATASYNC, the record's flag for fdatasync */

/* op->hook of read and write: RWF_NOWAIT is refused on this file. */
#define HOOK_NOWAIT_NO 1u
/* op->hook of connect */
#define HOOK_CONNECTING 1u /* the connect was started */
#define HOOK_RESTORE_FL 2u /* O_NONBLOCK was added for it: take it off at the end */
#define HOOK_WAITED 4u	   /* it waited: EISCONN now means it connected */
/* The memo of a listening socket: whether it is blocking. */
#define MEMO_BLOCKING 1
#define MEMO_NONBLOCKING 2

static inline void *P(uint64_t v)
{
	return (void *)(uintptr_t)v;
}

static long sys_result(long r)
{
	return r < 0 ? -errno : r;
}

/* ---- in place ---------------------------------------------------------------- */

long weft__nb_nop(struct weft__op *op, uint8_t *memo)
{
	(void)op;
	(void)memo;
	return 0;
}

long weft__nb_close(struct weft__op *op, uint8_t *memo)
{
	(void)memo;
	return sys_result(close(op->fd));
}

long weft__nb_socket(struct weft__op *op, uint8_t *memo)
{
	(void)memo;
	return sys_result(socket(op->fd, (int)op->off, (int)op->len));
}

long weft__nb_shutdown(struct weft__op *op, uint8_t *memo)
{
	(void)memo;
	return sys_result(shutdown(op->fd, (int)op->len));
}

/* ---- files and pipes ------------------------------------------------------------ */

/* A read or write with RWF_NOWAIT; a file that refuses it waits (or goes to a worker). */
static long rw_nowait(struct weft__op *op, const struct iovec *iov, int cnt, bool rd)
{
	int fl = (op->hook & HOOK_NOWAIT_NO) ? 0 : RWF_NOWAIT;
	long r = rd ? preadv2(op->fd, iov, cnt, (off_t)op->off, fl)
		    : pwritev2(op->fd, iov, cnt, (off_t)op->off, fl);

	r = sys_result(r);
	if (r == -EOPNOTSUPP && fl) {
		op->hook |= HOOK_NOWAIT_NO;
		return -EAGAIN;
	}
	return r;
}

long weft__nb_read(struct weft__op *op, uint8_t *memo)
{
	struct iovec one = { P(op->addr), op->len };

	(void)memo;
	return rw_nowait(op, &one, 1, true);
}

long weft__nb_readv(struct weft__op *op, uint8_t *memo)
{
	(void)memo;
	return rw_nowait(op, P(op->addr), (int)op->len, true);
}

long weft__nb_write(struct weft__op *op, uint8_t *memo)
{
	struct iovec one = { P(op->addr), op->len };

	(void)memo;
	return rw_nowait(op, &one, 1, false);
}

long weft__nb_writev(struct weft__op *op, uint8_t *memo)
{
	(void)memo;
	return rw_nowait(op, P(op->addr), (int)op->len, false);
}

long weft__nb_poll(struct weft__op *op, uint8_t *memo)
{
	struct pollfd p = { .fd = op->fd, .events = (short)op->op_flags };
	int r = poll(&p, 1, 0);

	(void)memo;
	if (r < 0)
		return -errno;
	return r == 0 ? -EAGAIN : (p.revents & POLLNVAL ? -EBADF : p.revents);
}

/* ---- sockets ---------------------------------------------------------------------- */

/* Whether @fd can be read without blocking now (for accept4 on a blocking socket). */
static bool readable_now(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/*
 * Whether the listening socket @fd blocks: once per fd where there is a
 * memo (accept4 would tell only by blocking). Return: 1 blocking, 0 not,
 * or -errno (-EINVAL for a socket that does not listen, -EOPNOTSUPP for
 * one that cannot, as accept4 says).
 */
static int accept_blocks(int fd, uint8_t *memo)
{
	int listening = 0;
	socklen_t sl = sizeof(listening);
	int fl;

	if (memo && *memo)
		return *memo == MEMO_BLOCKING;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &sl) < 0)
		return -errno;
	if (!listening) {
		int type = 0;

		/* As accept4: a datagram socket cannot accept at all, a stream one is not
		 * listening. */
		sl = sizeof(type);
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) == 0 && type != SOCK_STREAM &&
		    type != SOCK_SEQPACKET)
			return -EOPNOTSUPP;
		return -EINVAL;
	}
	if (memo)
		*memo = (fl & O_NONBLOCK) ? MEMO_NONBLOCKING : MEMO_BLOCKING;
	return !(fl & O_NONBLOCK);
}

long weft__nb_accept(struct weft__op *op, uint8_t *memo)
{
	int blocks = accept_blocks(op->fd, memo);

	if (blocks < 0)
		return blocks;
	/* accept4 has no per-call MSG_DONTWAIT: on a blocking socket, look first. */
	if (blocks && !readable_now(op->fd))
		return -EAGAIN;
	return sys_result(accept4(op->fd, P(op->addr), P(op->off), (int)op->op_flags));
}

long weft__nb_connect(struct weft__op *op, uint8_t *memo)
{
	(void)memo;
	if (!(op->hook & HOOK_CONNECTING)) {
		int fl = fcntl(op->fd, F_GETFL);

		if (fl < 0)
			return -errno;
		if (!(fl & O_NONBLOCK)) {
			if (fcntl(op->fd, F_SETFL, fl | O_NONBLOCK) < 0)
				return -errno;
			op->hook |= HOOK_RESTORE_FL;
		}
		op->hook |= HOOK_CONNECTING;
	}
	if (connect(op->fd, P(op->addr), (socklen_t)op->off) == 0)
		return 0;
	if (errno == EINPROGRESS || errno == EALREADY || errno == EAGAIN) {
		op->hook |= HOOK_WAITED;
		return -EAGAIN;
	}
	if (errno == EISCONN && (op->hook & HOOK_WAITED))
		return 0; /* it connected while we waited */
	return -errno;
}

void weft__nb_connect_end(struct weft__op *op)
{
	if (op->hook & HOOK_RESTORE_FL) {
		int fl = fcntl(op->fd, F_GETFL);

		if (fl >= 0)
			(void)fcntl(op->fd, F_SETFL, fl & ~O_NONBLOCK);
		op->hook &= ~HOOK_RESTORE_FL;
	}
}

/* MSG_WAITALL: keep what came so far in op->hook; wait for the rest. */
static long recv_waitall(struct weft__op *op)
{
	uint32_t got = op->hook;
	long r = recv(op->fd, (char *)P(op->addr) + got, op->len - got,
		      (int)(op->op_flags & ~(uint32_t)MSG_WAITALL) | MSG_DONTWAIT);

	if (r > 0 && (op->hook += (uint32_t)r) < op->len)
		return -EAGAIN;
	if (r > 0 || (r == 0 && op->hook > 0))
		return op->hook;
	if (r < 0 && errno == EAGAIN)
		return -EAGAIN;
	return op->hook > 0 ? (long)op->hook : sys_result(r);
}

long weft__nb_recv(struct weft__op *op, uint8_t *memo)
{
	(void)memo;
	if (op->op_flags & MSG_WAITALL)
		return recv_waitall(op);
	return sys_result(recv(op->fd, P(op->addr), op->len, (int)op->op_flags | MSG_DONTWAIT));
}

/*
 * A receive into a buffer of the loop's set (op->off2), taken only now
 * that the try may find bytes; without a free one, or with the fd at its
 * bound, into one allocated for it. The lent record goes to op->off.
 */
long weft__nb_recv_buf(struct weft__op *op, uint8_t *memo)
{
	struct weft__bufs *b = P(op->off2);
	struct weft__lent *d = weft__bufs_take(b, op->fd);
	bool own = !d;
	long r;

	(void)memo;
	if (own && !(d = weft__bufs_alloc(b)))
		return -ENOMEM;
	r = recv(op->fd, weft__bufs_data(d), op->len, (int)op->op_flags | MSG_DONTWAIT);
	if (r > 0) {
		op->off = (uint64_t)(uintptr_t)d;
		if (own)
			b->loop->stats.bufs_fallbacks++;
		return r;
	}
	r = sys_result(r);
	weft__bufs_put(d);
	return r;
}

long weft__nb_send(struct weft__op *op, uint8_t *memo)
{
	(void)memo;
	return sys_result(send(op->fd, P(op->addr), op->len, (int)op->op_flags | MSG_DONTWAIT));
}

long weft__nb_recvmsg(struct weft__op *op, uint8_t *memo)
{
	(void)memo;
	return sys_result(recvmsg(op->fd, P(op->addr), (int)op->op_flags | MSG_DONTWAIT));
}

long weft__nb_sendmsg(struct weft__op *op, uint8_t *memo)
{
	(void)memo;
	return sys_result(sendmsg(op->fd, P(op->addr), (int)op->op_flags | MSG_DONTWAIT));
}

/* ---- blocking forms ----------------------------------------------------------------- */

long weft__blk_read(const struct weft__op *op)
{
	struct iovec one = { P(op->addr), op->len };

	return sys_result(preadv2(op->fd, &one, 1, (off_t)op->off, 0));
}

long weft__blk_readv(const struct weft__op *op)
{
	return sys_result(preadv2(op->fd, P(op->addr), (int)op->len, (off_t)op->off, 0));
}

long weft__blk_write(const struct weft__op *op)
{
	struct iovec one = { P(op->addr), op->len };

	return sys_result(pwritev2(op->fd, &one, 1, (off_t)op->off, 0));
}

long weft__blk_writev(const struct weft__op *op)
{
	return sys_result(pwritev2(op->fd, P(op->addr), (int)op->len, (off_t)op->off, 0));
}

long weft__blk_fsync(const struct weft__op *op)
{
	return sys_result((op->op_flags & FSYNC_DATASYNC) ? fdatasync(op->fd) : fsync(op->fd));
}

long weft__blk_openat(const struct weft__op *op)
{
	return sys_result(openat(op->fd, P(op->addr), (int)op->op_flags, (mode_t)op->len));
}

long weft__blk_statx(const struct weft__op *op)
{
	return sys_result(statx(op->fd, P(op->addr), (int)op->op_flags, op->len, P(op->off)));
}

long weft__blk_unlinkat(const struct weft__op *op)
{
	return sys_result(unlinkat(op->fd, P(op->addr), (int)op->op_flags));
}

long weft__blk_renameat(const struct weft__op *op)
{
	return sys_result(
	    syscall(SYS_renameat2, op->fd, P(op->addr), op->fd2, P(op->off2), op->op_flags));
}

long weft__blk_mkdirat(const struct weft__op *op)
{
	return sys_result(mkdirat(op->fd, P(op->addr), (mode_t)op->len));
}

long weft__blk_fallocate(const struct weft__op *op)
{
	return sys_result(fallocate(op->fd, (int)op->len, (off_t)op->off, (off_t)op->addr));
}

long weft__blk_ftruncate(const struct weft__op *op)
{
	return sys_result(ftruncate(op->fd, (off_t)op->off));
}
