/* SPDX-License-Identifier: MIT */
/*
 * The io_uring backend, running the ring that uring_setup.c set up (the two
 * are the only files that include liburing): SQEs prepared from op records
 * as the op table's rows say, linked timeouts for deadlines, ASYNC_CANCEL,
 * the per-fd record of pending ops that weft_close cancels (fdtable.c), the
 * tick's single io_uring_enter, CQ overflow, SQPOLL, and waking other
 * loops (MSG_RING, else their eventfd).
 *
 * user_data of an SQE is the op record's address, its low two bits saying
 * which of the op's SQEs it is (the op's own, its linked timeout, or a
 * cancel naming it). An op ends (op->complete) when the CQEs of all of them
 * have arrived: until then the kernel may still look the op up by its
 * address, so nothing reuses the record (DESIGN principle 3).
 */
#include "uring_setup.h"
#include "explain.h"
#include "op.h"
#include "opdef.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- the submission queue ------------------------------------------------- */

static int enter(struct weft_loop *l, unsigned submit, unsigned wait_nr, unsigned flags, void *arg,
		 size_t argsz)
{
	struct io_uring *r = &U(l)->ring;
	unsigned fd = r->ring_fd;

	if (WEFT__UNLIKELY(!U(l)->entered)) {
		/*
		 * The first enter, on the thread that runs the loop. A disabled
		 * ring is enabled, which binds it to this thread (liburing 2.3
		 * does not export its helper). Then the ring fd is registered
		 * (Linux 5.18: enter by index, saving an fd lookup per call): a
		 * registration belongs to the thread that makes it.
		 */
		if (U(l)->disabled && syscall(__NR_io_uring_register, r->ring_fd,
					      IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
			return -errno;
		U(l)->disabled = false;
		U(l)->entered = true;
		(void)io_uring_register_ring_fd(r);
	}
	if (r->int_flags & 1 /* INT_FLAG_REG_RING in liburing */) {
		fd = (unsigned)r->enter_ring_fd;
		flags |= IORING_ENTER_REGISTERED_RING;
	}
	l->stats.enters++;
	return io_uring_enter2(fd, submit, wait_nr, flags, arg, argsz);
}

/* io_uring_enter's errors that do not mean the kernel refuses us. */
static bool transient(int rc)
{
	return rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY;
}

/* Publish the SQEs prepared since the last flush; returns how many wait. */
static unsigned flush_sq(struct io_uring *r)
{
	struct io_uring_sq *sq = &r->sq;
	unsigned tail = sq->sqe_tail;

	if (sq->sqe_head != tail) {
		sq->sqe_head = tail;
		/* The kernel reads the tail, then the SQEs: publish with release. */
		io_uring_smp_store_release(sq->ktail, tail);
	}
	return tail - io_uring_smp_load_acquire(sq->khead);
}

/*
 * With SQPOLL, published SQEs need a system call only when the SQ thread
 * has gone to sleep. The full barrier orders our tail store before the
 * flags load, as the kernel orders its flag store before re-reading the tail.
 */
static bool sq_thread_asleep(struct io_uring *r)
{
	io_uring_smp_mb();
	return IO_URING_READ_ONCE(*r->sq.kflags) & IORING_SQ_NEED_WAKEUP;
}

static bool cq_overflowing(struct io_uring *r)
{
	return IO_URING_READ_ONCE(*r->sq.kflags) & IORING_SQ_CQ_OVERFLOW;
}

/* Free SQ slots. With SQPOLL the kernel's thread moves the head: read it with acquire. */
static inline unsigned sq_space(const struct uring *u)
{
	const struct io_uring_sq *sq = &u->ring.sq;
	unsigned head =
	    u->sqpoll ? io_uring_smp_load_acquire(sq->khead) : IO_URING_READ_ONCE(*sq->khead);

	return sq->ring_entries - (sq->sqe_tail - head);
}

/* The next SQE, written whole; the caller made room. */
static inline struct io_uring_sqe *sqe_put(struct weft_loop *l, struct uring *u, uint8_t opcode,
					   int fd, uint64_t addr, uint32_t len, uint64_t off,
					   uint32_t op_flags, uint64_t ud)
{
	struct io_uring_sq *sq = &u->ring.sq;
	struct io_uring_sqe *sqe = &sq->sqes[sq->sqe_tail++ & sq->ring_mask];

	assert(sq->sqe_tail - *sq->khead <= sq->ring_entries);
	*sqe = (struct io_uring_sqe){ .opcode = opcode,
				      .fd = fd,
				      .off = off,
				      .addr = addr,
				      .len = len,
				      .rw_flags = (__kernel_rwf_t)op_flags,
				      .user_data = ud };
	l->inflight++;
	l->stats.sqes++;
	return sqe;
}

static void reap(struct weft_loop *l);

static void set_fatal(struct weft_loop *l, int rc)
{
	if (!U(l)->fatal) {
		U(l)->fatal = rc;
		weft__explain_note("io_uring_enter", rc);
	}
}

/*
 * Make room for @n SQEs: submit what is queued (the kernel consumes SQEs
 * during the call), reap what completed, repeat. An operation never fails
 * because the SQ was full. Return: false when the kernel refuses the enter
 * (the backend is then fatal).
 */
static bool reserve(struct weft_loop *l, unsigned n)
{
	struct uring *u = U(l);
	struct io_uring *r = &u->ring;

	while (sq_space(u) < n) {
		if (u->fatal)
			return false;
		if (WEFT__UNLIKELY(u->reaping))
			WEFT__BUG(l->cur, "an SQE was wanted while completions were dispatched");
		l->stats.sq_full++;
		if (cq_overflowing(r))
			l->stats.cq_overflow++;

		unsigned flags = IORING_ENTER_GETEVENTS;
		unsigned submit = flush_sq(r);

		if (u->sqpoll) {
			/* Wait for the SQ thread to make room (Linux 5.10). */
			flags |= IORING_ENTER_SQ_WAIT;
			if (sq_thread_asleep(r))
				flags |= IORING_ENTER_SQ_WAKEUP;
		}

		int rc = enter(l, submit, 0, flags, NULL, 0);

		if (!transient(rc)) {
			set_fatal(l, rc);
			return false;
		}
		reap(l);
	}
	return true;
}

static void ts_from_ns(int64_t *ts, int64_t ns)
{
	ts[0] = ns / WEFT_SEC;
	ts[1] = ns % WEFT_SEC;
}

/* Append @op to the ops that wait for the next tick (taken while reaping, or refused). */
static void defer(struct uring *u, struct weft__op *op)
{
	op->oflags |= WEFT__OPF_DEFERRED;
	op->deferred = NULL;
	*u->deferred_tail = op;
	u->deferred_tail = &op->deferred;
}

/* The SQE (and linked timeout) of @op; room is made for both at once, so a flush never splits a
 * link. */
static void prep(struct weft_loop *l, struct uring *u, struct weft__op *op)
{
	bool linked = op->deadline != WEFT_FOREVER;
	uint64_t ud = (uint64_t)(uintptr_t)op;

	if (sq_space(u) < 1u + linked && !reserve(l, 1u + linked)) {
		defer(u, op);
		return;
	}

	const struct weft__opdef *def = weft__opdef(op->code);
	struct io_uring_sqe *sqe = sqe_put(l, u, def->uring_op, op->fd, op->addr, op->len, op->off,
					   op->op_flags, ud | UD_OWN);

	op->due = 1;
	if (def->uring_prep)
		def->uring_prep(sqe, op);
	/*
	 * Never with MSG_DONTWAIT (the kernel would answer -EAGAIN without a
	 * try), nor MSG_OOB or MSG_ERRQUEUE: what they read is not what POLLIN
	 * says, so recv(2) answers at once (-EINVAL with no urgent byte) where
	 * waiting first would wait for ordinary bytes, perhaps forever.
	 */
	if ((def->flags & WEFT__OPD_RECV) && u->poll_first &&
	    !(op->op_flags & (MSG_DONTWAIT | MSG_OOB | MSG_ERRQUEUE)) &&
	    !((size_t)op->fd < u->nonempty_cap && u->nonempty[op->fd]))
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	if (op->oflags & WEFT__OPF_HAS_FD)
		weft__fdtable_track(&u->fds, op);
	if (linked) {
		ts_from_ns(op->ts, op->deadline);
		sqe->flags |= IOSQE_IO_LINK;
		sqe_put(l, u, IORING_OP_LINK_TIMEOUT, -1, (uint64_t)(uintptr_t)op->ts, 1, 0,
			IORING_TIMEOUT_ABS, ud | UD_TIMEOUT);
		op->due = 2;
	}
}

static void __attribute__((noinline))
submit_slow(struct weft_loop *l, struct uring *u, struct weft__op *op)
{
	if (u->reaping || u->fatal)
		defer(u, op);
	else
		prep(l, u, op);
}

/*
 * The common case, an op with nothing to track, no deadline and room in the
 * SQ, writes its SQE and returns without a call; the rest goes to
 * submit_slow.
 */
static void uring_submit(struct weft_loop *l, struct weft__op *op)
{
	struct uring *u = U(l);
	const struct weft__opdef *def = weft__opdef(op->code);

	if (WEFT__UNLIKELY(u->reaping | (u->fatal != 0) | (op->deadline != WEFT_FOREVER) |
			   ((op->oflags & WEFT__OPF_HAS_FD) != 0) | (def->uring_prep != NULL)) ||
	    WEFT__UNLIKELY(sq_space(u) == 0)) {
		submit_slow(l, u, op);
		return;
	}
	sqe_put(l, u, def->uring_op, op->fd, op->addr, op->len, op->off, op->op_flags,
		(uint64_t)(uintptr_t)op | UD_OWN);
	op->due = 1;
}

static void uring_cancel(struct weft_loop *l, struct weft__op *op)
{
	if (op->state != WEFT__OP_ARMED || (op->oflags & WEFT__OPF_CANCEL_SENT))
		return;
	op->oflags |= WEFT__OPF_CANCEL_SENT;
	if (op->oflags & WEFT__OPF_DEFERRED)
		return; /* never reached the kernel: the next tick ends it */
	if (!reserve(l, 1))
		return; /* fatal: the tick fails every op */

	/* IORING_OP_ASYNC_CANCEL by user_data: the op's own SQE. */
	sqe_put(l, U(l), IORING_OP_ASYNC_CANCEL, -1, (uint64_t)(uintptr_t)op | UD_OWN, 0, 0, 0,
		(uint64_t)(uintptr_t)op | UD_CANCEL);
	op->due++;
}

/*
 * Closing an fd does not end io_uring operations pending on it (they hold
 * their own reference to the file), so a fiber parked in a recv on it would
 * wait forever: cancel them first. Each is cancelled by its own user_data,
 * which the kernel finds by hash for polled requests; a cancel by fd would
 * walk every pending request of the ring, O(N^2) for N connections closed.
 */
static void uring_cancel_fd(struct weft_loop *l, int fd)
{
	struct uring *u = U(l);

	if (fd < 0)
		return;
	/*
	 * One cancel at a time, looking the fd up again after each: a cancel
	 * may have to flush a full SQ, and the completions reaped then take
	 * ops off this fd's ring. Usually one or two ops wait on an fd.
	 */
	for (;;) {
		struct weft__op *head = weft__fdtable_head(&u->fds, fd);
		struct weft__op *todo = NULL;

		if (head) {
			struct weft__list *n = &head->fdlink;

			do {
				struct weft__op *op =
				    weft__container_of(n, struct weft__op, fdlink);

				if (!(op->oflags & WEFT__OPF_CANCEL_SENT))
					todo = op;
				n = n->next;
			} while (!todo && n != &head->fdlink);
		}
		if (!todo)
			break;
		uring_cancel(l, todo); /* marks it CANCEL_SENT, even when the kernel is gone */
	}
	if (u->fds.untracked && reserve(l, 1)) {
		/* Linux 5.19; an older kernel answers -EINVAL and nothing is lost. */
		sqe_put(l, u, IORING_OP_ASYNC_CANCEL, fd, 0, 0, 0,
			IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL, UD_IGNORE);
	}
}

/* ---- completions ------------------------------------------------------------ */

/*
 * Whether the last receive on @fd left bytes behind: its next one then
 * tries the socket at once; else it waits for bytes first (POLL_FIRST),
 * saving a try that would find nothing, as in a request-response protocol.
 */
static void note_nonempty(struct uring *u, int fd, bool left)
{
	if (fd < 0)
		return;
	if ((size_t)fd >= u->nonempty_cap) {
		size_t cap = u->nonempty_cap ? u->nonempty_cap : 256;
		uint8_t *v;

		if (!left)
			return; /* not known: it waits first, as if empty */
		while (cap <= (size_t)fd)
			cap *= 2;
		v = realloc(u->nonempty, cap);
		if (!v)
			return;
		memset(v + u->nonempty_cap, 0, cap - u->nonempty_cap);
		u->nonempty = v;
		u->nonempty_cap = cap;
	}
	u->nonempty[fd] = left;
}

/*
 * A CQE of a multishot op (WEFT__OPD_MULTISHOT) that says more follow: one
 * result of many, handed to complete() at once. Or a CQE of an op that may
 * have more than one (WEFT__OPD_MORE): SEND_ZC's
 * result says IORING_CQE_F_MORE when its notification (IORING_CQE_F_NOTIF,
 * the kernel done with the buffer) is still to come. Return: true if it was
 * the notification (nothing of the result to keep).
 */
static bool __attribute__((noinline))
more_cqes(struct weft_loop *l, struct weft__op *op, int res, uint32_t flags)
{
	unsigned rowflags = weft__opdef(op->code)->flags;

	if (rowflags & WEFT__OPD_MULTISHOT) {
		if (!(flags & IORING_CQE_F_MORE))
			return false; /* its last: the op ends as any other */
		l->inflight++;	      /* it goes on: this CQE ends nothing */
		op->due++;
		op->complete(op, res, flags);
		return true;
	}
	if (!(rowflags & WEFT__OPD_MORE))
		WEFT__BUG(op->fiber, "a multishot CQE arrived for an op that asked for none");
	if (flags & IORING_CQE_F_NOTIF)
		return true;
	op->due++; /* the notification */
	l->inflight++;
	return false;
}

/*
 * One CQE: res and flags are copied before the caller hands the slot back.
 * The op ends when its last due CQE arrives.
 */
static inline void dispatch(struct weft_loop *l, struct uring *u, uint64_t ud, int res,
			    uint32_t flags)
{
	if (WEFT__UNLIKELY(ud < UD_SPECIAL)) {
		/*
		 * UD_WAKE: another loop's MSG_RING; the loop takes its inbox after
		 * the tick. UD_MSG: our MSG_RING failed: the target is being torn
		 * down or its CQ is full, and it looks at its inbox after every tick.
		 */
		if (ud == UD_IGNORE)
			l->inflight--;
		return;
	}
	l->inflight--;

	struct weft__op *op = (struct weft__op *)(uintptr_t)(ud & ~(uint64_t)UD_TAGS);

	if (WEFT__UNLIKELY(op->state != WEFT__OP_ARMED || op->due == 0))
		WEFT__BUG(op->fiber, "a CQE arrived for an operation that is not in flight");
	switch (ud & UD_TAGS) {
	case UD_OWN:
		if (WEFT__UNLIKELY(flags & (IORING_CQE_F_MORE | IORING_CQE_F_NOTIF)) &&
		    more_cqes(l, op, res, flags))
			break;
		if (WEFT__UNLIKELY(op == &u->wake_op))
			l->inflight++; /* it was never counted (see uring_tick) */
		op->kres = res;
		op->kflags = flags;
		/* A receive has an fd, so it is here: ops without one (NOPs) pay nothing. */
		if (op->oflags & (WEFT__OPF_FD_TRACKED | WEFT__OPF_FD_UNTRACKED)) {
			weft__fdtable_untrack(&u->fds, op);
			if (u->poll_first && (weft__opdef(op->code)->flags & WEFT__OPD_RECV))
				note_nonempty(u, op->fd,
					      res > 0 && (flags & IORING_CQE_F_SOCK_NONEMPTY));
		}
		break;
	case UD_TIMEOUT:
		if (res == -ETIME)
			op->oflags |= WEFT__OPF_TIMED_OUT;
		break;
	default: /* a cancel's answer (0, -ENOENT, -EALREADY): only its arrival matters */
		break;
	}
	if (--op->due == 0) {
		if (WEFT__UNLIKELY(u->valgrind))
			weft__op_mark_filled(op, op->kres);
		if (WEFT__LIKELY(op->complete == weft__op_complete))
			weft__op_finish(op, op->kres, op->kflags); /* the common case, inlined */
		else
			op->complete(op, op->kres, op->kflags);
	}
}

/* Copy every CQE out and dispatch it, then hand the slots back. */
static void reap(struct weft_loop *l)
{
	struct uring *u = U(l);
	struct io_uring_cq *cq = &u->ring.cq;
	unsigned head = *cq->khead;
	unsigned tail = io_uring_smp_load_acquire(cq->ktail); /* then the CQEs it covers */
	unsigned n = tail - head;

	if (n == 0)
		return;
	u->reaping = true;
	for (; head != tail; head++) {
		const struct io_uring_cqe *cqe = &cq->cqes[head & cq->ring_mask];

		dispatch(l, u, cqe->user_data, cqe->res, cqe->flags);
	}
	/* The slots go back to the kernel only now, after every CQE was copied out. */
	io_uring_smp_store_release(cq->khead, tail);
	u->reaping = false;
	l->stats.cqes += n;
	/* With IORING_FEAT_NODROP the kernel drops a CQE only when it could not even queue it. */
	if (WEFT__UNLIKELY(u->ring.cq.koverflow && IO_URING_READ_ONCE(*u->ring.cq.koverflow)))
		WEFT__BUG(l->cur,
			  "the kernel dropped CQEs (CQ overflow without room to keep them)");
}

/*
 * The kernel refuses io_uring_enter: end every op it never saw (the SQEs
 * still in the SQ, and the deferred ones) with that error, so their fibers
 * unwind. Ops the kernel did take (if an enter ever worked) cannot be
 * reaped any more.
 */
static int fail_all(struct weft_loop *l, struct uring *u)
{
	struct io_uring_sq *sq = &u->ring.sq;
	int err = u->fatal;

	u->reaping = true;
	if (!u->sqpoll) {
		unsigned mask = sq->ring_mask;

		for (unsigned i = io_uring_smp_load_acquire(sq->khead); i != sq->sqe_tail; i++) {
			const struct io_uring_sqe *sqe = &sq->sqes[i & mask];
			uint64_t ud = sqe->user_data;

			dispatch(l, u, ud, (ud & UD_TAGS) == UD_OWN ? err : 0, 0);
		}
		sq->sqe_head = sq->sqe_tail = io_uring_smp_load_acquire(sq->khead);
	}
	while (u->deferred) {
		struct weft__op *op = u->deferred;

		u->deferred = op->deferred;
		op->oflags &= (uint16_t)~WEFT__OPF_DEFERRED;
		op->complete(op, err, 0);
	}
	u->deferred_tail = &u->deferred;
	u->reaping = false;
	return err;
}

/* Submit what was deferred while completions were dispatched; a cancelled one just ends. */
static void submit_deferred(struct weft_loop *l, struct uring *u)
{
	struct weft__op *op = u->deferred;

	u->deferred = NULL;
	u->deferred_tail = &u->deferred;
	while (op) {
		struct weft__op *next = op->deferred;

		op->oflags &= (uint16_t)~WEFT__OPF_DEFERRED;
		if (op->oflags & WEFT__OPF_CANCEL_SENT)
			op->complete(op, -ECANCELED, 0);
		else
			prep(l, u, op);
		op = next;
	}
}

/* ---- waking from other threads --------------------------------------------- */

/*
 * Wake @to from this thread's loop @l through @l's own ring: an
 * IORING_OP_MSG_RING posts a CQE (UD_WAKE) to @to's ring, which ends its
 * wait; @to then needs no poll re-armed and no eventfd read. Submitted at
 * once (one io_uring_enter, as the eventfd's write is one call), and issued
 * inline by the kernel, so @to's ring is reached before this returns: @to
 * is alive now (its poster holds it), maybe not later. No CQE on success
 * (CQE_SKIP_SUCCESS). Return: false where it cannot be used here.
 */
static bool msg_ring_wake(struct weft_loop *l, struct weft_loop *to)
{
	struct uring *u = U(l);

	/* SQPOLL's thread would issue it later, when @to may be gone. */
	if (!u->msg_ring || !U(to)->msg_ring || u->sqpoll || u->reaping || u->fatal ||
	    !reserve(l, 1))
		return false;

	struct io_uring_sqe *sqe =
	    sqe_put(l, u, IORING_OP_MSG_RING, U(to)->ring.ring_fd, 0 /* IORING_MSG_DATA */,
		    0 /* res */, UD_WAKE /* its user_data */, 0, UD_MSG);

	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	l->inflight--; /* no CQE to wait for */

	int rc = enter(l, flush_sq(&u->ring), 0, 0, NULL, 0);

	if (!transient(rc)) {
		set_fatal(l, rc);
		return false;
	}
	l->stats.wakes_msg_ring++;
	return true;
}

static void uring_wake(struct weft_loop *to)
{
	struct weft_loop *l = weft__tls_loop;
	uint64_t one = 1;

	if (l == to)
		return; /* its own thread: run() looks at the inbox before it waits */
	if (l && l->be == to->be && msg_ring_wake(l, to))
		return;
	if (l)
		l->stats.wakes_eventfd++;

	/* Cannot fail short of a bad fd, and the loop holds it open. */
	ssize_t w = write(U(to)->wake_fd, &one, sizeof(one));

	(void)w;
}

/* ---- the tick ----------------------------------------------------------------- */

/*
 * Arm the poll of the wake eventfd while other threads owe the loop work, in
 * a pool, or once a weft_loop_post has reached it (posts may come at any
 * time since).
 */
static void arm_wake(struct weft_loop *l, struct uring *u)
{
	if (!(l->owed || l->pool || atomic_load_explicit(&l->posts_seen, memory_order_relaxed)) ||
	    u->wake_armed || u->fatal || !reserve(l, 1))
		return;

	struct weft__op *op = &u->wake_op;

	op->state = WEFT__OP_ARMED;
	op->oflags = 0;
	u->wake_armed = true;
	prep(l, u, op);
	/*
	 * The wake poll does not keep the loop alive: it may stay armed after
	 * the last remote work came back some other way (taken from the inbox
	 * before the poll's CQE), with nobody left to write.
	 */
	l->inflight--;
}

/*
 * How long io_uring_enter may wait: *@wait_nr 0 if not at all, else the
 * timeout until @deadline in @arg/@ts. Return: the IORING_ENTER_* flags.
 */
static unsigned wait_args(struct uring *u, int64_t deadline, unsigned *wait_nr,
			  struct io_uring_getevents_arg *arg, struct __kernel_timespec *ts)
{
	if (io_uring_cq_ready(&u->ring) > 0)
		*wait_nr = 0; /* completions are already here: take them now */
	if (!*wait_nr || deadline == WEFT_FOREVER)
		return IORING_ENTER_GETEVENTS;

	int64_t left = deadline - weft__clock_now();

	if (left <= 0) {
		*wait_nr = 0;
		return IORING_ENTER_GETEVENTS;
	}
	ts->tv_sec = left / WEFT_SEC;
	ts->tv_nsec = left % WEFT_SEC;
	memset(arg, 0, sizeof(*arg));
	arg->ts = (uint64_t)(uintptr_t)ts;
	return IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
}

static int uring_tick(struct weft_loop *l, bool wait, int64_t deadline)
{
	struct uring *u = U(l);
	struct io_uring *r = &u->ring;

	if (WEFT__UNLIKELY(u->deferred != NULL) && !u->fatal)
		submit_deferred(l, u);
	arm_wake(l, u);
	if (WEFT__UNLIKELY(u->fatal))
		return fail_all(l, u);

	unsigned submit = flush_sq(r);
	bool overflow = cq_overflowing(r);
	unsigned wait_nr = wait ? 1 : 0;
	struct __kernel_timespec ts;
	struct io_uring_getevents_arg arg;
	unsigned flags = wait_args(u, deadline, &wait_nr, &arg, &ts);
	/*
	 * valgrind runs one thread at a time and does not know that a thread
	 * in io_uring_enter is blocked (liburing#657): while other threads
	 * may owe this loop something (a worker, another loop of the pool),
	 * they would never get to run. So do not wait in the kernel: look,
	 * and if nothing came, nap 1 ms in poll(2), which valgrind lets other
	 * threads run through.
	 */
	bool nap = WEFT__UNLIKELY(u->valgrind) && wait_nr && (u->wake_armed || l->owed);
	uint64_t cqes = l->stats.cqes;

	if (nap) {
		wait_nr = 0;
		flags &= ~IORING_ENTER_EXT_ARG;
	}

	if (overflow)
		l->stats.cq_overflow++;
	/* Without DEFER_TASKRUN, finished work is in the CQ without a call. */
	bool need = submit > 0 || overflow || wait_nr > 0 || (u->defer && l->inflight > 0);

	if (u->sqpoll) {
		/* The SQ thread submits; enter only to wake it, to wait, or to flush. */
		bool wake = submit > 0 && sq_thread_asleep(r);

		if (wake)
			flags |= IORING_ENTER_SQ_WAKEUP;
		need = wake || overflow || wait_nr > 0;
	}
	if (need) {
		int rc =
		    enter(l, submit, wait_nr, flags, (flags & IORING_ENTER_EXT_ARG) ? &arg : NULL,
			  (flags & IORING_ENTER_EXT_ARG) ? sizeof(arg) : 0);

		if (!transient(rc)) {
			set_fatal(l, rc);
			return fail_all(l, u);
		}
	}
	reap(l);
	if (WEFT__UNLIKELY(nap) && l->stats.cqes == cqes)
		(void)poll(NULL, 0, 1);
	/*
	 * With IORING_FEAT_NODROP a full CQ only holds completions back; the
	 * kernel drops one only when it cannot even queue it. A dropped CQE
	 * would leave its fiber parked for ever: fail loudly instead.
	 */
	if (WEFT__UNLIKELY(r->cq.koverflow && IO_URING_READ_ONCE(*r->cq.koverflow)))
		WEFT__BUG(NULL, "the kernel dropped CQEs (a CQ overflow it could not queue)");
	return 0;
}

static int64_t uring_now(struct weft_loop *l)
{
	(void)l;
	return weft__clock_now();
}

static void uring_stats(struct weft_loop *l, weft_stats *out)
{
	out->ring_mode = U(l)->mode;
	out->ring_flags = U(l)->flags;
	out->backend = WEFT_BACKEND_URING;
}

const struct weft__backend weft__backend_uring = {
	.name = "io_uring",
	.setup = weft__uring_setup,
	.teardown = weft__uring_teardown,
	.submit = uring_submit,
	.cancel = uring_cancel,
	.cancel_fd = uring_cancel_fd,
	.tick = uring_tick,
	.wake = uring_wake,
	.now = uring_now,
	.stats = uring_stats,
	.bufs_ring = weft__uring_bufs_ring,
};
