/* SPDX-License-Identifier: MIT */
/*
 * The await. An operation is an op record on the fiber's stack, filled by a
 * thin function (file.c, net.c, ...) in weft's own terms. weft__op_run
 * checks the fiber, hands the record to the loop's backend and parks until
 * the backend reports, through the record's completion function, that the
 * operation is over and the kernel holds nothing of it any more. A deadline
 * or a cancel only asks the backend to end the operation early; the fiber
 * still waits for that report, so its stack buffers stay valid.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

void weft__op_complete(struct weft__op *op, int res, uint32_t flags)
{
	weft__op_finish(op, res, flags);
}

/* weft_cancel of a fiber parked on an op: ask the backend to end it early. */
static void op_cancel(struct weft_fiber *f, struct weft__wait *w)
{
	struct weft__op *op = weft__container_of(w, struct weft__op, wait);

	if (op->state == WEFT__OP_ARMED && !(op->oflags & WEFT__OPF_CANCEL_SENT))
		f->loop->be->cancel(f->loop, op);
}

/* An op's system call, made on an offload worker. */
struct sys_call {
	const struct weft__op *op;
	long ret;
};

static int run_sys(void *arg)
{
	struct sys_call *c = arg;
	long r = weft__opdefs[c->op->code].sys(c->op);

	c->ret = r < 0 ? -errno : r;
	return 0;
}

/* The backend lacks the opcode: the op table's fallback, or -EOPNOTSUPP. */
static int fallback(const struct weft__op *op, const struct weft__opdef *def)
{
	if (!def->sys)
		return -EOPNOTSUPP;
	if (def->inline_fallback) {
		long r = def->sys(op);

		return r < 0 ? -errno : (int)r;
	}

	struct sys_call c = { .op = op };
	int rc = weft_offload(run_sys, &c, NULL);

	return rc < 0 ? rc : (int)c.ret;
}

int weft__op_run(struct weft__op *op)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *self = l ? l->cur : NULL;
	const struct weft__opdef *def = &weft__opdefs[op->code];

	if (WEFT__UNLIKELY(!self))
		return -EPERM;
	if (!(def->flags & WEFT__OPD_MUST_RUN)) {
		if (self->cancelled)
			return -ECANCELED;
		if (self->deadline != WEFT_FOREVER && l->be->now(l) >= self->deadline)
			return -ETIMEDOUT;
	}
	if (WEFT__UNLIKELY(!weft__op_supported(l, op->code)))
		return fallback(op, def);
	if (def->flags & WEFT__OPD_CLOSES)
		l->be->cancel_fd(l, op->fd);

	op->deadline = (def->flags & WEFT__OPD_DEADLINE) ? self->deadline : WEFT_FOREVER;
	op->state = WEFT__OP_ARMED;
	op->oflags = (def->flags & WEFT__OPD_FD) && op->fd >= 0 ? WEFT__OPF_HAS_FD : 0;
	op->complete = weft__op_complete;
	op->fiber = self;
	op->wait.cancel = op_cancel;
	l->be->submit(l, op);
	while (op->state != WEFT__OP_DONE)
		weft__fiber_park(l, self, &op->wait, WEFT_FOREVER);

	/*
	 * An operation ended early answers -ECANCELED, or -EINTR when an io-wq
	 * worker was interrupted in it. Which of our reasons it was is decided
	 * here and only here: the deadline (the backend says it fired) or
	 * weft_cancel. An op that completed anyway keeps its own result.
	 */
	int res = op->res;

	if (WEFT__UNLIKELY(res == -ECANCELED || res == -EINTR)) {
		bool cancelled = self->cancelled && (op->oflags & WEFT__OPF_CANCEL_SENT);

		if ((op->oflags & WEFT__OPF_TIMED_OUT) && !cancelled)
			return -ETIMEDOUT;
		if (cancelled)
			return -ECANCELED;
	}
	return res;
}

#if WEFT_HAVE_VALGRIND_H
/*
 * Apart and out of line: each client request takes a few words of stack,
 * and this runs on fibers' stacks (an op finished in place).
 */
static __attribute__((noinline, cold)) void mark_filled(const struct weft__op *op, int res)
{
	void *addr = (void *)(uintptr_t)op->addr;

	switch (weft__opdefs[op->code].fill) {
	case WEFT__FILL_BUF:
		VALGRIND_MAKE_MEM_DEFINED(addr, (size_t)res);
		break;
	case WEFT__FILL_IOV: {
		const struct iovec *iov = addr;
		size_t left = (size_t)res;

		for (uint32_t i = 0; i < op->len && left > 0; i++) {
			size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;

			VALGRIND_MAKE_MEM_DEFINED(iov[i].iov_base, n);
			left -= n;
		}
		break;
	}
	case WEFT__FILL_MSG: {
		struct msghdr *m = addr;
		size_t left = (size_t)res;

		VALGRIND_MAKE_MEM_DEFINED(m, sizeof(*m)); /* lengths and flags written back */
		for (size_t i = 0; i < m->msg_iovlen && left > 0; i++) {
			size_t n = m->msg_iov[i].iov_len < left ? m->msg_iov[i].iov_len : left;

			VALGRIND_MAKE_MEM_DEFINED(m->msg_iov[i].iov_base, n);
			left -= n;
		}
		if (m->msg_name)
			VALGRIND_MAKE_MEM_DEFINED(m->msg_name, m->msg_namelen);
		if (m->msg_control)
			VALGRIND_MAKE_MEM_DEFINED(m->msg_control, m->msg_controllen);
		break;
	}
	case WEFT__FILL_STATX:
		VALGRIND_MAKE_MEM_DEFINED((void *)(uintptr_t)op->off, sizeof(struct statx));
		break;
	case WEFT__FILL_SOCKADDR: {
		socklen_t *len = (socklen_t *)(uintptr_t)op->off;

		if (len) {
			VALGRIND_MAKE_MEM_DEFINED(len, sizeof(*len));
			if (addr)
				VALGRIND_MAKE_MEM_DEFINED(addr, *len);
		}
		break;
	}
	default:
		break;
	}
}
#endif

void weft__op_mark_filled(const struct weft__op *op, int res)
{
#if WEFT_HAVE_VALGRIND_H
	if (WEFT__UNLIKELY(RUNNING_ON_VALGRIND) && res >= 0)
		mark_filled(op, res);
#else
	(void)op;
	(void)res;
#endif
}

int weft_nop(void)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_NOP, -1, 0, 0, 0, 0);

	return weft__op_run(&op);
}
