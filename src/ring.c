/* SPDX-License-Identifier: MIT */
/*
 * The ring: set-up with feature probing, SQE acquisition that flushes when
 * the SQ is full, and the tick's single io_uring_enter that submits the
 * round's SQEs and waits for the first completion or the nearest timer.
 * Every io_uring_enter weft makes goes through enter() and is counted.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13) /* Linux 6.1 */
#endif

/* Each mode's flags, best first; SUBMIT_ALL (5.18) is dropped on the way down. */
static const struct {
	uint32_t mode;
	uint32_t flags;
} modes[] = {
	{ WEFT_RING_DEFER_TASKRUN,
	  IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL },
	{ WEFT_RING_COOP_TASKRUN,
	  IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL },
	{ WEFT_RING_PLAIN, IORING_SETUP_SUBMIT_ALL },
	{ WEFT_RING_PLAIN, 0 },
};

static int try_setup(struct weft_loop *l, uint32_t flags)
{
	struct io_uring_params p;

	memset(&p, 0, sizeof(p));
	p.flags = flags | IORING_SETUP_CQSIZE;
	p.cq_entries = l->cfg.cq_entries;
	if (flags & IORING_SETUP_SQPOLL)
		p.sq_thread_idle = l->cfg.sqpoll_idle_ms;
	int rc = io_uring_queue_init_params(l->cfg.sq_entries, &l->ring, &p);

	if (rc == 0 && !(p.features & IORING_FEAT_NODROP)) {
		/* Before Linux 5.5 a full CQ drops completions: not safe for weft. */
		io_uring_queue_exit(&l->ring);
		return -ENOSYS;
	}
	if (rc == 0 && !(p.features & IORING_FEAT_EXT_ARG)) {
		/* Before Linux 5.11 enter cannot take a timeout; weft needs it. */
		io_uring_queue_exit(&l->ring);
		return -ENOSYS;
	}
	return rc;
}

/*
 * Create the ring in the requested mode, or, for WEFT_RING_AUTO, in the best
 * mode the kernel accepts (an older kernel answers -EINVAL to flags it does
 * not know). Any other error is returned as it is: it is the reason io_uring
 * cannot be used here (see weft_loop_explain).
 */
int weft__ring_setup(struct weft_loop *l)
{
	int rc = -EINVAL;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		uint32_t flags = modes[i].flags;

		if (l->cfg.ring_mode != WEFT_RING_AUTO && l->cfg.ring_mode != modes[i].mode)
			continue;
		if (l->cfg.flags & WEFT_CONFIG_SQPOLL) {
			/* The SQ thread is the one submitter: no DEFER_TASKRUN. */
			if (flags & IORING_SETUP_DEFER_TASKRUN)
				continue;
			flags |= IORING_SETUP_SQPOLL;
		}
		rc = try_setup(l, flags);
		if (rc == 0) {
			l->stats.ring_mode = modes[i].mode;
			l->stats.ring_flags = flags;
			break;
		}
		if (rc != -EINVAL)
			return rc;
	}
	if (rc < 0)
		return rc;

	/* Which opcodes this kernel has (Linux 5.6); without a probe, the 5.11 set. */
	struct io_uring_probe *probe = io_uring_get_probe_ring(&l->ring);

	if (probe) {
		for (unsigned i = 0; i < probe->ops_len && i < 128; i++)
			if (probe->ops[i].flags & IO_URING_OP_SUPPORTED)
				l->probe[i / 64] |= (uint64_t)1 << (i % 64);
		io_uring_free_probe(probe);
	} else {
		l->probe[0] = ((uint64_t)1 << IORING_OP_SHUTDOWN) * 2 - 1; /* ops up to SHUTDOWN */
	}
	/*
	 * WEFT_DISABLE_OPS=55,37 makes weft act as if the kernel lacked those
	 * opcodes (a work-around for a kernel bug, and how the fallbacks are
	 * tested).
	 */
	const char *off = getenv("WEFT_DISABLE_OPS");

	while (off && *off) {
		char *end;
		unsigned long op = strtoul(off, &end, 10);

		if (end == off)
			break;
		if (op < 128)
			l->probe[op / 64] &= ~((uint64_t)1 << (op % 64));
		off = *end == ',' ? end + 1 : end;
	}
	if (l->cfg.iowq_bounded || l->cfg.iowq_unbounded) {
		unsigned vals[2] = { l->cfg.iowq_bounded, l->cfg.iowq_unbounded };

		rc = io_uring_register_iowq_max_workers(&l->ring, vals);
		if (rc < 0) {
			io_uring_queue_exit(&l->ring);
			return rc; /* -EINVAL before 5.15: the caps cannot be kept */
		}
	}
	/* Linux 5.18: enter by registered index, saving an fd lookup per call. */
	(void)io_uring_register_ring_fd(&l->ring);
	return 0;
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

static int enter(struct weft_loop *l, unsigned submit, unsigned wait_nr, unsigned flags, void *arg,
		 size_t argsz)
{
	struct io_uring *r = &l->ring;
	unsigned fd = r->ring_fd;

	if (r->int_flags & 1 /* INT_FLAG_REG_RING in liburing */) {
		fd = (unsigned)r->enter_ring_fd;
		flags |= IORING_ENTER_REGISTERED_RING;
	}
	l->stats.enters++;
	return io_uring_enter2(fd, submit, wait_nr, flags, arg, argsz);
}

/*
 * Dispatch one CQE: copy it into its op record (the caller advances the CQ
 * head only afterwards) and make the waiting fiber ready.
 */
static inline void op_complete(struct weft_loop *l, const struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;

	if (ud == WEFT__UD_IGNORE) {
		l->inflight--;
		return;
	}
	if (ud == WEFT__UD_OFFLOAD) {
		l->inflight--;
		weft__offload_reap(l, cqe->res);
		return;
	}

	struct weft__op *op = (struct weft__op *)(uintptr_t)ud;

	if (WEFT__UNLIKELY(op->state != WEFT__OP_ARMED))
		WEFT__BUG(op->fiber, "a CQE arrived for an operation that is not in flight");
	op->res = cqe->res;
	op->cflags = cqe->flags;
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		op->state = WEFT__OP_DONE;
		l->inflight--;
		if (op->fd >= 0)
			l->fd_busy[op->fd]--;
	}
	weft__fiber_wake(op->fiber, 0);
}

/* Copy every CQE out and wake its fiber, then hand the slots back. */
static void reap(struct weft_loop *l)
{
	struct io_uring_cqe *cqe;
	unsigned head;
	unsigned n = 0;

	io_uring_for_each_cqe(&l->ring, head, cqe)
	{
		op_complete(l, cqe);
		n++;
	}
	io_uring_cq_advance(&l->ring, n);
	l->stats.cqes += n;
}

static bool cq_overflowing(struct io_uring *r)
{
	return IO_URING_READ_ONCE(*r->sq.kflags) & IORING_SQ_CQ_OVERFLOW;
}

/*
 * Make room: submit what is queued (the kernel consumes SQEs during the
 * call), reap what completed, repeat until @n SQEs are free. An operation
 * never fails because the SQ was full.
 */
void weft__ring_reserve(struct weft_loop *l, unsigned n)
{
	struct io_uring *r = &l->ring;

	while (io_uring_sq_space_left(r) < n) {
		l->stats.sq_full++;
		if (cq_overflowing(r))
			l->stats.cq_overflow++;

		unsigned flags = IORING_ENTER_GETEVENTS;
		unsigned submit = flush_sq(r);

		if (l->stats.ring_flags & IORING_SETUP_SQPOLL) {
			/* Wait for the SQ thread to make room (Linux 5.10). */
			flags |= IORING_ENTER_SQ_WAIT;
			if (sq_thread_asleep(r))
				flags |= IORING_ENTER_SQ_WAKEUP;
		}

		int rc = enter(l, submit, 0, flags, NULL, 0);

		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			WEFT__BUG(l->cur, "io_uring_enter failed while flushing a full SQ");
		reap(l);
	}
}

struct io_uring_sqe *weft__ring_sqe_slow(struct weft_loop *l)
{
	weft__ring_reserve(l, 1);
	return io_uring_get_sqe(&l->ring);
}

/*
 * One tick's trip to the kernel: submit the round's SQEs and, if @wait (no
 * fiber is ready), sleep until a completion or @deadline (the nearest timer,
 * WEFT_FOREVER for none). With nothing to submit, nothing in flight and no
 * wait, no system call is made.
 */
int weft__ring_tick(struct weft_loop *l, bool wait, int64_t deadline)
{
	struct io_uring *r = &l->ring;
	unsigned submit = flush_sq(r);
	bool overflow = cq_overflowing(r);
	bool defer = l->stats.ring_flags & IORING_SETUP_DEFER_TASKRUN;
	unsigned wait_nr = wait ? 1 : 0;
	struct __kernel_timespec ts;
	struct io_uring_getevents_arg arg;
	unsigned flags = IORING_ENTER_GETEVENTS;
	void *argp = NULL;
	size_t argsz = 0;

	if (overflow)
		l->stats.cq_overflow++;
	if (io_uring_cq_ready(r) > 0)
		wait_nr = 0; /* completions are already here: take them now */
	if (wait_nr && deadline != WEFT_FOREVER) {
		int64_t left = deadline - weft_now();

		if (left <= 0) {
			wait_nr = 0;
		} else {
			ts.tv_sec = left / WEFT_SEC;
			ts.tv_nsec = left % WEFT_SEC;
			memset(&arg, 0, sizeof(arg));
			arg.ts = (uint64_t)(uintptr_t)&ts;
			argp = &arg;
			argsz = sizeof(arg);
			flags |= IORING_ENTER_EXT_ARG;
		}
	}
	/* Without DEFER_TASKRUN, finished work is in the CQ without a call. */
	bool need = submit > 0 || overflow || wait_nr > 0 || (defer && l->inflight > 0);

	if (l->stats.ring_flags & IORING_SETUP_SQPOLL) {
		/* The SQ thread submits; enter only to wake it, to wait, or to flush. */
		bool wake = submit > 0 && sq_thread_asleep(r);

		if (wake)
			flags |= IORING_ENTER_SQ_WAKEUP;
		need = wake || overflow || wait_nr > 0;
	}

	if (need) {
		int rc = enter(l, submit, wait_nr, flags, argp, argsz);

		if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			return rc;
	}
	reap(l);
	return 0;
}
