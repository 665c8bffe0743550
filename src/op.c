/* SPDX-License-Identifier: MIT */
/*
 * The await. An operation is an op record on the fiber's stack, filled by a
 * thin function (file.c, net.c, ...) in weft's own terms. weft__op_run
 * checks the fiber, hands the record to the loop's backend and parks until
 * the backend reports, through the record's completion function, that the
 * operation is over and the kernel holds nothing of it any more. A deadline
 * or a cancel only asks the backend to end the operation early; the fiber
 * still waits for that report, so its stack buffers stay valid.
 *
 * Where the backend lacks the op (an old kernel, WEFT_DISABLE_OPS), its
 * row says what else runs it: its try in place when it never waits, a poll
 * of its readiness then its try (a socket), or its blocking form on a
 * worker thread (a file), as an op job (below). Else it fails -EOPNOTSUPP,
 * and weft_loop_explain names it.
 */
#include "op.h"
#include "opdef.h"
#include "explain.h"
#include "inbox.h"
#include "wait.h"
#include "workers.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

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

/* ---- op jobs: an op's blocking form on a worker -------------------------------------- */

struct weft__opjob {
	struct weft__job job;
	struct weft__remote remote; /* back to the loop */
	struct weft_loop *loop;
	struct weft__op *op;  /* the caller's record: the worker never touches it */
	struct weft__op copy; /* what the worker runs */
	void (*back)(struct weft__opjob *job, void *ctx);
	void *ctx;
	long res;
	int dups[2];	  /* duplicated descriptors, -1 for none */
	bool shadow;	  /* runs on copies only: may be abandoned */
	struct statx stx; /* a statx's, filled by the worker */
	char paths[];	  /* copies of the paths the op reads */
};

static void opjob_close_dups(struct weft__opjob *j)
{
	for (int i = 0; i < 2; i++)
		if (j->dups[i] >= 0)
			close(j->dups[i]);
}

static void opjob_run(struct weft__job *jj)
{
	struct weft__opjob *j = weft__container_of(jj, struct weft__opjob, job);

	j->res = weft__opdef(j->copy.code)->blocking(&j->copy);
	opjob_close_dups(j);
	j->dups[0] = j->dups[1] = -1;
}

static void opjob_back(struct weft_loop *l, struct weft__remote *r)
{
	struct weft__opjob *j = weft__container_of(r, struct weft__opjob, remote);

	(void)l;
	j->back(j, j->ctx);
}

/* On the worker (or, failed, on the loop): hand the job back to its loop. */
static void opjob_done(struct weft__job *jj)
{
	struct weft__opjob *j = weft__container_of(jj, struct weft__opjob, job);

	if (jj->err) {
		opjob_close_dups(j);
		j->dups[0] = j->dups[1] = -1;
		j->res = jj->err;
	}
	j->remote.run = opjob_back;
	weft__inbox_push(j->loop, &j->remote);
}

/* On the worker: its waiter left; release what it made. */
static void opjob_drop(struct weft__job *jj)
{
	struct weft__opjob *j = weft__container_of(jj, struct weft__opjob, job);

	if ((weft__opdef(j->copy.code)->flags & WEFT__OPD_NEW_FD) && j->res >= 0)
		close((int)j->res); /* an fd nobody will ever see */
	free(j);
}

/* Whether a worker may run @d's op on copies alone. */
static bool shadowable(const struct weft__opdef *d)
{
	return d->reads != WEFT__READS_DATA &&
	       (d->fill == WEFT__FILL_NONE || d->fill == WEFT__FILL_STATX);
}

/* Bytes of the path at @addr, with its NUL; 0 for NULL; SIZE_MAX past PATH_MAX. */
static size_t path_size(uint64_t addr)
{
	const char *p = (const char *)(uintptr_t)addr;
	size_t n = p ? strnlen(p, PATH_MAX) : 0;

	return !p ? 0 : n == PATH_MAX ? SIZE_MAX : n + 1;
}

/* Copy the path at *@addr into @to and point *@addr there. Return: bytes used. */
static size_t copy_path(uint64_t *addr, char *to, size_t size)
{
	if (size) {
		memcpy(to, (const void *)(uintptr_t)*addr, size);
		*addr = (uint64_t)(uintptr_t)to;
	}
	return size;
}

/* Duplicate @fd (CLOEXEC) for the worker, if it is one. Return: 0 or -errno. */
static int dup_for(int *fd, int *dup)
{
	*dup = -1;
	if (*fd < 0)
		return 0; /* AT_FDCWD, or none */
	*dup = fcntl(*fd, F_DUPFD_CLOEXEC, 0);
	if (*dup < 0)
		return -errno;
	*fd = *dup;
	return 0;
}

/* The copy of @op a worker runs: duplicated fds, and for a shadow, its own paths and statx. */
static int opjob_copy(struct weft__opjob *j, const struct weft__opdef *d, size_t p1, size_t p2)
{
	int rc = 0;

	j->copy = *j->op;
	if (d->flags & (WEFT__OPD_FD | WEFT__OPD_DIRFD))
		rc = dup_for(&j->copy.fd, &j->dups[0]);
	if (rc == 0 && (d->flags & WEFT__OPD_DIRFD2))
		rc = dup_for(&j->copy.fd2, &j->dups[1]);
	if (rc < 0 || !j->shadow)
		return rc;
	if (d->reads >= WEFT__READS_PATH)
		copy_path(&j->copy.addr, j->paths, p1);
	if (d->reads == WEFT__READS_PATHS)
		copy_path(&j->copy.off2, j->paths + p1, p2);
	if (d->fill == WEFT__FILL_STATX)
		j->copy.off = (uint64_t)(uintptr_t)&j->stx;
	return 0;
}

int weft__opjob_start(struct weft_loop *l, struct weft__op *op,
		      void (*back)(struct weft__opjob *job, void *ctx), void *ctx,
		      struct weft__opjob **out)
{
	const struct weft__opdef *d = weft__opdef(op->code);
	bool shadow = shadowable(d);
	size_t p1 = shadow && d->reads >= WEFT__READS_PATH ? path_size(op->addr) : 0;
	size_t p2 = shadow && d->reads == WEFT__READS_PATHS ? path_size(op->off2) : 0;

	if (p1 == SIZE_MAX || p2 == SIZE_MAX)
		return -ENAMETOOLONG;

	struct weft__opjob *j = malloc(sizeof(*j) + p1 + p2);
	int rc;

	if (!j)
		return -ENOMEM;
	*j = (struct weft__opjob){ .job.run = opjob_run,
				   .job.done = opjob_done,
				   .job.drop = shadow ? opjob_drop : NULL,
				   .job.cls = WEFT__JOB_IO,
				   .loop = l,
				   .op = op,
				   .back = back,
				   .ctx = ctx,
				   .dups = { -1, -1 },
				   .shadow = shadow };
	rc = opjob_copy(j, d, p1, p2);
	if (rc == 0)
		rc = weft__job_submit(l, &j->job);
	if (rc < 0) {
		opjob_close_dups(j);
		free(j);
		return rc;
	}
	*out = j;
	return 0;
}

bool weft__opjob_abandon(struct weft__opjob *j)
{
	if (!j->shadow)
		return false; /* it works in the caller's buffers: it must be waited for */
	switch (weft__job_abandon(&j->job)) {
	case WEFT__JOB_TAKEN_BACK:
		opjob_close_dups(j);
		free(j);
		return true;
	case WEFT__JOB_LET_GO:
		return true;
	default:
		return false;
	}
}

int weft__opjob_end(struct weft__opjob *j)
{
	int res = (int)j->res;

	if (j->shadow && res >= 0 && weft__opdef(j->op->code)->fill == WEFT__FILL_STATX)
		memcpy((void *)(uintptr_t)j->op->off, &j->stx, sizeof(j->stx));
	free(j);
	return res;
}

/* ---- fallbacks: where the backend lacks the op ---------------------------------------- */

static void fallback_back(struct weft__opjob *j, void *ctx)
{
	(void)j;
	weft__waiter_wake(ctx, 0);
}

static bool fallback_withdraw(struct weft__waiter *w)
{
	return weft__opjob_abandon(w->ctx);
}

/* The row's blocking form on a worker, bounded by the deadline and a cancel where it can be. */
static int on_worker(struct weft_loop *l, struct weft__op *op, const struct weft__opdef *d)
{
	struct weft__waiter w;
	struct weft__opjob *j;
	unsigned early = (d->flags & WEFT__OPD_DEADLINE) ? WEFT__WAIT_EARLY : 0;
	int rc;

	weft__waiter_init(&w, WEFT__WAIT_OWED | early);
	rc = weft__opjob_start(l, op, fallback_back, &w, &j);
	if (rc < 0)
		return rc;
	w.ctx = j;
	w.withdraw = fallback_withdraw;
	rc = weft__waiter_wait(&w);
	if (!w.woken)
		return rc; /* abandoned: -ETIMEDOUT or -ECANCELED */
	return weft__opjob_end(j);
}

static short ready_events(const struct weft__opdef *d, const struct weft__op *op)
{
	switch (d->ready) {
	case WEFT__READY_IN:
		return POLLIN;
	case WEFT__READY_OUT:
		return POLLOUT;
	default:
		return (short)op->op_flags;
	}
}

/* A poll of the op's readiness, then its try, until it answers. */
static int poll_then_try(struct weft__op *op, const struct weft__opdef *d)
{
	long r;

	op->hook = 0;
	for (;;) {
		struct weft__op p;
		int rc;

		r = d->try_nb(op, NULL);
		if (r != -EAGAIN || weft__op_dontwait(d, op))
			break;
		weft__op_init(&p, WEFT__OP_POLL, op->fd, 0, 0, 0, (uint32_t)ready_events(d, op));
		rc = weft__op_run(&p);
		if (rc < 0) {
			r = rc;
			break;
		}
	}
	if (d->nb_end)
		d->nb_end(op);
	return (int)r;
}

static bool is_file(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 &&
	       (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode));
}

static int __attribute__((noinline, cold))
fallback(struct weft_loop *l, struct weft__op *op, const struct weft__opdef *d)
{
	bool pollable = d->try_nb && d->ready && weft__op_native(l, WEFT__OP_POLL);

	if (weft__opdef_in_place(d)) {
		long r;

		op->hook = 0;
		r = d->try_nb(op, NULL);
		if (d->nb_end)
			d->nb_end(op);
		return (int)r;
	}
	if (d->blocking && (!pollable || op->fd < 0 || is_file(op->fd)))
		return on_worker(l, op, d);
	if (pollable)
		return poll_then_try(op, d);
	weft__explain_unsupported(d->name, l->be->name);
	return -EOPNOTSUPP;
}

/* ---- the await ------------------------------------------------------------------- */

static inline int op_result(struct weft_fiber *self, struct weft__op *op);

/* An op whose deadline is the loop's timer (WEFT__OPD_LOOP_TIMER): at it, a cancel. */
static int __attribute__((noinline))
run_timed(struct weft_loop *l, struct weft_fiber *self, struct weft__op *op)
{
	int64_t until = op->deadline;

	op->deadline = WEFT_FOREVER;
	l->be->submit(l, op);
	while (op->state != WEFT__OP_DONE) {
		int rc = weft__fiber_park(l, self, &op->wait, until);

		if (rc == -ETIMEDOUT && op->state != WEFT__OP_DONE) {
			op->oflags |= WEFT__OPF_TIMED_OUT;
			l->be->cancel(l, op);
			until = WEFT_FOREVER;
		}
	}
	return op_result(self, op);
}

int weft__op_run(struct weft__op *op)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *self = l ? l->cur : NULL;
	const struct weft__opdef *def = weft__opdef(op->code);

	if (WEFT__UNLIKELY(!self))
		return -EPERM;
	if (!(def->flags & WEFT__OPD_MUST_RUN)) {
		if (self->cancelled)
			return -ECANCELED;
		if (self->deadline != WEFT_FOREVER && l->be->now(l) >= self->deadline)
			return -ETIMEDOUT;
	}
	if (WEFT__UNLIKELY(!weft__op_native(l, op->code)))
		return fallback(l, op, def);
	if (def->flags & WEFT__OPD_CLOSES)
		l->be->cancel_fd(l, op->fd);

	op->deadline = (def->flags & WEFT__OPD_DEADLINE) ? self->deadline : WEFT_FOREVER;
	op->state = WEFT__OP_ARMED;
	op->oflags = (def->flags & WEFT__OPD_FD) && op->fd >= 0 ? WEFT__OPF_HAS_FD : 0;
	op->complete = weft__op_complete;
	op->fiber = self;
	op->wait.cancel = op_cancel;
	if (WEFT__UNLIKELY(def->flags & WEFT__OPD_LOOP_TIMER))
		return run_timed(l, self, op);
	l->be->submit(l, op);
	while (op->state != WEFT__OP_DONE)
		weft__fiber_park(l, self, &op->wait, WEFT_FOREVER);

	int res = op_result(self, op);

	/* A new fd whose number had a multishot receive: it was closed behind weft's back. */
	if (WEFT__UNLIKELY(l->rx_cap > 0) && res >= 0 && (def->flags & WEFT__OPD_NEW_FD) &&
	    (size_t)res < l->rx_cap && l->rx[res])
		l->rx_forget(l, res);
	return res;
}

/*
 * An op that ended early answers -ECANCELED, or -EINTR when an io-wq
 * worker was interrupted in it (-ERESTARTSYS, 512, from a splice that
 * Linux 6.18 lets out). Which of our reasons it was is decided here and
 * only here: the deadline (the backend says it fired) or weft_cancel. An
 * op that completed anyway keeps its own result.
 */
static inline __attribute__((always_inline)) int op_result(struct weft_fiber *self,
							   struct weft__op *op)
{
	int res = op->res;

	if (WEFT__UNLIKELY(res == -ECANCELED || res == -EINTR || res == -512)) {
		bool cancelled = self->cancelled && (op->oflags & WEFT__OPF_CANCEL_SENT);

		if ((op->oflags & WEFT__OPF_TIMED_OUT) && !cancelled)
			return -ETIMEDOUT;
		if (cancelled)
			return -ECANCELED;
		if (res == -512)
			return -EINTR;
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

	switch (weft__opdef(op->code)->fill) {
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
