/* SPDX-License-Identifier: MIT */
/*
 * The await primitive. An operation is an op record on the fiber's stack
 * whose address is the SQE's user_data; the fiber parks until the reaper has
 * copied the final CQE into the record. A deadline becomes a linked
 * IORING_OP_LINK_TIMEOUT, a cancel an IORING_OP_ASYNC_CANCEL, and in both
 * cases the fiber still waits for the operation's own CQE.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The checks every blocking operation makes before it touches the ring. */
int weft__op_check(struct weft_fiber **self)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *f = l ? l->cur : NULL;

	if (!f)
		return -EPERM;
	if (f->cancelled)
		return -ECANCELED;
	if (f->deadline != WEFT_FOREVER && weft_now() >= f->deadline)
		return -ETIMEDOUT;
	*self = f;
	return 0;
}

/*
 * An SQE for @self's next operation. With @deadline and a fiber deadline,
 * room is made for the linked timeout too: a link must not be split by a
 * flush between its two SQEs.
 */
struct io_uring_sqe *weft__op_sqe(struct weft_loop *l, struct weft_fiber *self, bool deadline)
{
	if (deadline && self->deadline != WEFT_FOREVER)
		weft__ring_reserve(l, 2);
	return weft__ring_sqe(l);
}

bool weft__fd_busy_inc(struct weft_loop *l, int fd)
{
	if ((size_t)fd >= l->fd_busy_len) {
		size_t len = l->fd_busy_len ? l->fd_busy_len : 256;

		while (len <= (size_t)fd)
			len *= 2;

		uint32_t *grown = realloc(l->fd_busy, len * sizeof(*grown));

		if (!grown) {
			l->fd_untracked = true;
			return false;
		}
		memset(grown + l->fd_busy_len, 0, (len - l->fd_busy_len) * sizeof(*grown));
		l->fd_busy = grown;
		l->fd_busy_len = len;
	}
	l->fd_busy[fd]++;
	return true;
}

/*
 * Submit @sqe (prepared by the caller) and park until its final CQE, then
 * return cqe->res. With @deadline and a fiber deadline, a linked timeout
 * bounds it; a timeout's -ECANCELED becomes -ETIMEDOUT here and only here.
 */
int weft__op_await(struct weft_loop *l, struct weft_fiber *self, struct weft__op *op,
		   struct io_uring_sqe *sqe, bool deadline)
{
	struct __kernel_timespec ts;
	bool linked = deadline && self->deadline != WEFT_FOREVER;

	*op = (struct weft__op){ .fiber = self, .state = WEFT__OP_ARMED, .fd = -1 };
	io_uring_sqe_set_data(sqe, op);
	if (sqe->fd >= 0 && !(sqe->flags & IOSQE_FIXED_FILE) && weft__fd_busy_inc(l, sqe->fd))
		op->fd = sqe->fd;
	l->inflight++;
	l->stats.sqes++;
	if (linked) {
		struct io_uring_sqe *lt = weft__ring_sqe(l); /* reserved: no flush here */

		ts.tv_sec = self->deadline / WEFT_SEC;
		ts.tv_nsec = self->deadline % WEFT_SEC;
		sqe->flags |= IOSQE_IO_LINK;
		io_uring_prep_link_timeout(lt, &ts, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(lt, WEFT__UD_IGNORE);
		l->inflight++;
		l->stats.sqes++;
	}

	self->op = op;
	while (op->state != WEFT__OP_DONE)
		weft__fiber_park(l, self, WEFT__WAIT_IO, WEFT_FOREVER);
	self->op = NULL;

	/*
	 * A cancelled operation ends with -ECANCELED, or -EINTR when an io-wq
	 * worker was interrupted in it. Which of our reasons it was: the
	 * deadline (only ours to convert when it was linked) or weft_cancel.
	 */
	int res = op->res;

	if (res == -ECANCELED || res == -EINTR) {
		if (linked && !self->cancelled && weft_now() >= self->deadline)
			return -ETIMEDOUT;
		if (self->cancelled && op->cancel_sent)
			return -ECANCELED;
	}
	return res;
}

int weft__call_begin(struct weft__call *c, struct io_uring_sqe **sqe)
{
	int rc = weft__op_check(&c->self);

	if (rc < 0)
		return rc;
	c->l = c->self->loop;
	*sqe = weft__op_sqe(c->l, c->self, true);
	return 0;
}

int weft__call_await(struct weft__call *c, struct io_uring_sqe *sqe)
{
	return weft__op_await(c->l, c->self, &c->op, sqe, true);
}

bool weft__op_supported(const struct weft_loop *l, unsigned opcode)
{
	return opcode < 128 && (l->probe[opcode / 64] >> (opcode % 64) & 1);
}

/* Ask the kernel to cancel @op, once; its own CQE still ends it. */
void weft__op_cancel(struct weft_loop *l, struct weft__op *op)
{
	if (!op || op->state != WEFT__OP_ARMED || op->cancel_sent)
		return;

	struct io_uring_sqe *sqe = weft__ring_sqe(l);

	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
	io_uring_sqe_set_data64(sqe, WEFT__UD_IGNORE);
	op->cancel_sent = true;
	l->inflight++;
	l->stats.sqes++;
}

int weft_nop(void)
{
	struct weft_fiber *self;
	struct weft__op op;
	int rc = weft__op_check(&self);

	if (rc < 0)
		return rc;

	struct weft_loop *l = self->loop;
	struct io_uring_sqe *sqe = weft__op_sqe(l, self, true);

	io_uring_prep_nop(sqe);
	return weft__op_await(l, self, &op, sqe, true);
}
