/* SPDX-License-Identifier: MIT */
/*
 * The epoll backend: the same boundary (backend.h) where io_uring is refused
 * (a container's seccomp profile, kernel.io_uring_disabled, an old kernel).
 * It never names an operation: each op's row in the op table says what to
 * do with it.
 *
 * An op with a try (try_nb) is tried at once without blocking; on EAGAIN it
 * waits on its fd's ring of readers or writers (the row's readiness) until
 * epoll reports the fd ready, when it is tried again; or, if its fd is a
 * regular file (or epoll refuses it) and the row has a blocking form, it
 * goes to the loop's workers. An op with only a blocking form (fsync,
 * openat, statx, ...) goes to the workers at once, as an op job (op.c) on
 * duplicated descriptors, so a close of the fd never waits for a worker and
 * never lets one work on a reused number. An fd is registered once,
 * edge-triggered for both directions, and stays registered until weft_close
 * (see fd_watch for when a registration is checked again). The user's fd
 * flags are left alone, except during weft_connect on a blocking socket.
 *
 * A cancel or a deadline takes an op off its fd's ring, back from the
 * worker queue, or, for a job that runs on copies alone, lets it go (what
 * it makes later is released by the worker); an op a worker runs in the
 * caller's buffers completes first, as with io_uring, and its own result
 * is returned.
 *
 * An op that completes at once inside submit finishes in place: its fiber
 * goes on without parking (a budget of such ops per fiber switch keeps a
 * busy fiber from starving the others). Every other completion is reported
 * in tick, or when the loop runs its inbox (a worker's job), through
 * op->complete, as backend.h requires. Deadlines of ops (and
 * WEFT_TIMERS_KERNEL sleeps) are a deadline heap (heap.c) of the backend's
 * own; the tick waits in epoll_pwait2 (nanoseconds; Linux 5.11, else
 * epoll_wait in milliseconds, rounded up) until the nearer one.
 */
#include "epoll_setup.h"
#include "explain.h"
#include "inbox.h"
#include "op.h"
#include "opdef.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define IN_PLACE_PER_SWITCH 16 /* ops a fiber may finish in place before it must yield */

/* ---- fd table ------------------------------------------------------------------ */

/* The entry of @fd, grown on demand; NULL for an fd weft does not track. */
static struct fdent *fd_get(struct ep *e, int fd)
{
	if (fd < 0 || (size_t)fd >= e->fd_cap)
		return NULL;
	if ((size_t)fd >= e->nfds) {
		size_t n = e->nfds ? e->nfds : 64;

		while (n <= (size_t)fd)
			n *= 2;
		if (n > e->fd_cap)
			n = e->fd_cap;

		struct fdent *v = realloc(e->fds, n * sizeof(*v));

		if (!v)
			return NULL;
		memset(v + e->nfds, 0, (n - e->nfds) * sizeof(*v));
		e->fds = v;
		e->nfds = n;
	}
	return &e->fds[fd];
}

static inline struct fdent *fd_peek(struct ep *e, int fd)
{
	return fd >= 0 && (size_t)fd < e->nfds ? &e->fds[fd] : NULL;
}

static void ring_add(struct weft__op **head, struct weft__op *op)
{
	if (!*head) {
		weft__list_init(&op->fdlink);
		*head = op;
	} else {
		weft__list_add_before(&(*head)->fdlink, &op->fdlink);
	}
}

static void ring_del(struct weft__op **head, struct weft__op *op)
{
	if (*head == op)
		*head = op->fdlink.next == &op->fdlink
			    ? NULL
			    : weft__container_of(op->fdlink.next, struct weft__op, fdlink);
	weft__list_del(&op->fdlink);
}

/*
 * Make sure epoll reports @fd. An fd weft saw born (accept, socket, openat)
 * is registered once and trusted until weft_close. Any other fd might have
 * been closed and its number reused behind weft's back (which drops the
 * kernel's registration silently), so each time an op starts waiting on it
 * with nothing else waiting, it is added again (EEXIST: still there).
 * Return: 0, -EPERM for a file epoll cannot wait on, or another -errno.
 */
static int fd_watch(struct ep *e, struct fdent *d, int fd)
{
	if (d->registered && (d->trusted || d->rd || d->wr))
		return 0;

	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
				  .data.u64 = (uint64_t)fd };

	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno != EEXIST)
		return -errno;
	d->registered = 1;
	return 0;
}

/* Regular file or something epoll can wait on? Apart: its struct stat is big for a fiber. */
static __attribute__((noinline)) int fd_kind(struct ep *e, int fd)
{
	struct fdent *d = fd_get(e, fd);
	struct stat st;

	if (d && d->kind != KIND_UNKNOWN)
		return d->kind;
	if (fstat(fd, &st) < 0)
		return -errno;

	int kind = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode) ? KIND_FILE
										     : KIND_POLL;

	if (d)
		d->kind = (uint8_t)kind;
	return kind;
}

/* ---- completions ------------------------------------------------------------------ */

/* Report @op's end at the next tick. */
static void defer_done(struct ep *e, struct weft__op *op, int res)
{
	op->kres = res;
	op->deferred = NULL;
	*e->done_tail = op;
	e->done_tail = &op->deferred;
}

/* The op's tries are over: undo what they did to its fd (its row's nb_end). */
static inline void tries_over(struct weft__op *op)
{
	const struct weft__opdef *d = weft__opdef(op->code);

	if (WEFT__UNLIKELY(d->nb_end != NULL) && !(op->kflags & EK_TRIES_DONE))
		d->nb_end(op);
	op->kflags |= EK_TRIES_DONE;
}

/* The op leaves every list of this backend; its end is reported now. */
static void report(struct weft_loop *l, struct weft__op *op, int res)
{
	if (op->timer.index)
		weft__heap_remove(&E(l)->deadlines, &op->timer);
	tries_over(op);
	l->inflight--;
	l->stats.cqes++;
	weft__op_mark_filled(op, res);
	op->complete(op, res, 0);
}

/*
 * In submit, the op's result is known at once: finish it in place if the
 * fiber submitting it is the one that waits for it and its budget allows,
 * else report it at the next tick.
 */
static void answer(struct weft_loop *l, struct weft__op *op, int res)
{
	struct ep *e = E(l);

	if (op->complete == weft__op_complete && op->fiber == l->cur) {
		if (e->budget_switches != l->stats.switches) {
			e->budget_switches = l->stats.switches;
			e->budget = IN_PLACE_PER_SWITCH;
		}
		if (e->budget > 0) {
			e->budget--;
			tries_over(op);
			l->inflight--;
			l->stats.cqes++;
			weft__op_mark_filled(op, res);
			op->res = res;
			op->cflags = 0;
			op->state = WEFT__OP_DONE;
			return;
		}
	}
	defer_done(e, op, res);
}

static void fail_waiter(struct weft_loop *l, struct weft__op *op, int res);
static struct weft__op *queued_on(struct weft__op *ring);

/*
 * A new file got number @fd (weft made it): forget what the old one was.
 * Ops still waiting for the old file's readiness, or queued for a worker
 * and not yet holding a duplicate of it (a plain close(2) behind weft's
 * back), must never reach the new file: they fail -EBADF, as a call on a
 * closed fd would, and undo nothing on the number (it is not theirs).
 */
static void fd_born(struct weft_loop *l, int fd)
{
	struct ep *e = E(l);
	struct fdent *d = fd_get(e, fd);
	struct weft__op *op;

	if (!d)
		return;
	while ((op = d->rd ? d->rd : d->wr ? d->wr : queued_on(d->wk))) {
		op->kflags |= EK_TRIES_DONE;
		fail_waiter(l, op, -EBADF);
	}
	d->registered = 0;
	d->kind = KIND_UNKNOWN;
	d->memo = 0;
	d->trusted = 1;
}

/* ---- waiting ------------------------------------------------------------------------- */

/* Whether @op waits for output (else input). */
static bool waits_for_output(const struct weft__op *op, const struct weft__opdef *d)
{
	if (d->ready == WEFT__READY_EVENTS)
		return (op->op_flags & POLLOUT) && !(op->op_flags & POLLIN);
	return d->ready == WEFT__READY_OUT;
}

/* @op got EAGAIN: wait for its fd's readiness. Return: 0, or -errno if it cannot wait. */
static int wait_ready(struct weft_loop *l, struct weft__op *op, const struct weft__opdef *def)
{
	struct ep *e = E(l);
	struct fdent *d = fd_get(e, op->fd);

	if (!d)
		return -ENOMEM;

	int rc = fd_watch(e, d, op->fd);

	if (rc < 0)
		return rc;
	if (waits_for_output(op, def)) {
		op->kflags |= EK_WR;
		ring_add(&d->wr, op);
	} else {
		op->kflags |= EK_RD;
		ring_add(&d->rd, op);
	}
	e->nwait++;
	return 0;
}

static void worker_back(struct weft__opjob *job, void *ctx);

/*
 * @op goes to the workers, at the next tick: making its job (malloc, dup,
 * the pool's lock) takes stack that a fiber's one page may not have, so it
 * is done on the loop's own stack, as the io_uring backend submits there.
 */
static int queue_for_worker(struct weft_loop *l, struct weft__op *op)
{
	struct ep *e = E(l);
	struct fdent *d = (op->oflags & WEFT__OPF_HAS_FD) ? fd_get(e, op->fd) : NULL;

	op->kflags |= EK_QUEUED;
	op->qnext = NULL;
	*e->to_work_tail = op;
	e->to_work_tail = &op->qnext;
	if (d) {
		ring_add(&d->wk, op); /* so that a close finds it, queued or running */
		op->kflags |= EK_WK_RING;
	}
	return 0;
}

/* Take a queued @op off the queue (a cancel, a deadline, its fd reborn). */
static void unqueue(struct ep *e, struct weft__op *op)
{
	struct weft__op **pp = &e->to_work;

	while (*pp != op)
		pp = &(*pp)->qnext;
	*pp = op->qnext;
	if (!*pp)
		e->to_work_tail = pp;
	op->kflags &= ~EK_QUEUED;
}

/* The first op of @ring still queued for the workers, or NULL. */
static struct weft__op *queued_on(struct weft__op *ring)
{
	struct weft__op *op = ring;

	if (!op)
		return NULL;
	do {
		if (op->kflags & EK_QUEUED)
			return op;
		op = weft__container_of(op->fdlink.next, struct weft__op, fdlink);
	} while (op != ring);
	return NULL;
}

/* Hand @op to the workers, as an op job (it is on its fd's wk ring already, if it has one). */
static int to_worker(struct weft_loop *l, struct weft__op *op)
{
	int rc = weft__opjob_start(l, op, worker_back, op, &op->job);

	if (rc < 0)
		return rc;
	op->kflags |= EK_WORKER;
	return 0;
}

/* Off its fd's wk ring, if on it. */
static void worker_unring(struct ep *e, struct weft__op *op)
{
	if (op->kflags & EK_WK_RING)
		ring_del(&fd_peek(e, op->fd)->wk, op);
	op->kflags &= ~(EK_WORKER | EK_WK_RING);
}

/* From the inbox, on the loop's thread: a worker is done with @op's job. */
static void worker_back(struct weft__opjob *job, void *ctx)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft__op *op = ctx;
	int res = weft__opjob_end(job);

	worker_unring(E(l), op);
	if (res >= 0 && (weft__opdef(op->code)->flags & WEFT__OPD_NEW_FD))
		fd_born(l, res);
	report(l, op, res);
}

/* Take @op off whatever it waits on. Return: true if it was waiting (not running). */
static bool unwait(struct weft_loop *l, struct weft__op *op)
{
	struct ep *e = E(l);

	if (op->kflags & (EK_RD | EK_WR)) {
		struct fdent *d = fd_peek(e, op->fd);

		ring_del((op->kflags & EK_RD) ? &d->rd : &d->wr, op);
		op->kflags &= ~(EK_RD | EK_WR);
		e->nwait--;
		return true;
	}
	if (op->kflags & EK_QUEUED) {
		unqueue(e, op);
		worker_unring(e, op);
		return true;
	}
	if (op->kflags & EK_WORKER) {
		if (!weft__opjob_abandon(op->job))
			return false; /* a worker runs it in the caller's buffers: it completes */
		worker_unring(e, op);
		return true;
	}
	return (weft__opdef(op->code)->flags & WEFT__OPD_TIMER) && op->timer.index;
}

/* A waiting op ends now with @res, reported at the next tick. Rare: kept off the hot frames. */
static __attribute__((noinline)) void fail_waiter(struct weft_loop *l, struct weft__op *op, int res)
{
	struct ep *e = E(l);

	if (!unwait(l, op))
		return;
	if (op->timer.index)
		weft__heap_remove(&e->deadlines, &op->timer);
	tries_over(op); /* now, not at the report: a close of its fd may follow at once */
	defer_done(e, op, res);
}

/* ---- submit ----------------------------------------------------------------------------- */

/* A close: the fd's bookkeeping, then the close itself (its row's try). */
static void close_now(struct weft_loop *l, struct weft__op *op)
{
	struct ep *e = E(l);
	struct fdent *d = fd_peek(e, op->fd);

	if (d) {
		if (d->registered)
			(void)epoll_ctl(e->epfd, EPOLL_CTL_DEL, op->fd, NULL);
		d->registered = 0;
		d->trusted = 0;
		d->kind = KIND_UNKNOWN;
		d->memo = 0;
	}
	answer(l, op, (int)weft__opdef(op->code)->try_nb(op, NULL));
}

/* One try of @op that never blocks; a new fd it made is born. */
static long try_once(struct weft_loop *l, struct weft__op *op, const struct weft__opdef *def)
{
	struct fdent *d = (op->oflags & WEFT__OPF_HAS_FD) ? fd_get(E(l), op->fd) : NULL;
	long r = def->try_nb(op, d ? &d->memo : NULL);

	if (r >= 0 && (def->flags & WEFT__OPD_NEW_FD))
		fd_born(l, (int)r);
	return r;
}

/*
 * What is left of @op after its try (or without one): wait for readiness,
 * or go to a worker when its fd is a regular file or epoll refuses it.
 */
static int wait_or_work(struct weft_loop *l, struct weft__op *op, const struct weft__opdef *def)
{
	int rc;

	if (def->ready && def->blocking) {
		rc = fd_kind(E(l), op->fd);
		if (rc == KIND_FILE)
			return queue_for_worker(l, op);
		if (rc < 0)
			return rc;
		rc = wait_ready(l, op, def);
		/* epoll refuses it: a file after all */
		return rc == -EPERM ? queue_for_worker(l, op) : rc;
	}
	if (def->ready)
		return wait_ready(l, op, def);
	return def->blocking ? queue_for_worker(l, op) : -EOPNOTSUPP;
}

static void start(struct weft_loop *l, struct weft__op *op)
{
	struct ep *e = E(l);
	const struct weft__opdef *def = weft__opdef(op->code);
	int rc;

	if (WEFT__UNLIKELY(def->flags & WEFT__OPD_TIMER)) {
		/* A kernel-style sleep: -ETIME at its time. */
		if (weft__heap_push(&e->deadlines, &op->timer, (int64_t)op->off) < 0)
			answer(l, op, -ENOMEM);
		return;
	}
	if (def->flags & WEFT__OPD_CLOSES) {
		close_now(l, op);
		return;
	}
	if (def->try_nb) {
		long r = try_once(l, op, def);

		if (r != -EAGAIN || !def->ready || weft__op_dontwait(def, op)) {
			answer(l, op, (int)r);
			return;
		}
	}
	rc = wait_or_work(l, op, def);
	if (rc < 0) {
		answer(l, op, rc);
		return;
	}
	if (op->deadline != WEFT_FOREVER &&
	    weft__heap_push(&e->deadlines, &op->timer, op->deadline) < 0 && unwait(l, op))
		answer(l, op, -ENOMEM);
}

static void ep_submit(struct weft_loop *l, struct weft__op *op)
{
	l->inflight++;
	l->stats.sqes++;
	op->kflags = 0;
	op->hook = 0;
	op->timer.index = 0;
	start(l, op);
}

static void ep_cancel(struct weft_loop *l, struct weft__op *op)
{
	if (op->state != WEFT__OP_ARMED || (op->oflags & WEFT__OPF_CANCEL_SENT))
		return;
	op->oflags |= WEFT__OPF_CANCEL_SENT;
	fail_waiter(l, op, -ECANCELED);
}

/* The first op of @ring not yet asked to end, or NULL. */
static struct weft__op *not_cancelled(struct weft__op *ring)
{
	struct weft__op *op = ring;

	if (!op)
		return NULL;
	do {
		if (!(op->oflags & WEFT__OPF_CANCEL_SENT))
			return op;
		op = weft__container_of(op->fdlink.next, struct weft__op, fdlink);
	} while (op != ring);
	return NULL;
}

/*
 * Before a close: every op of this loop on @fd ends with -ECANCELED, as on
 * io_uring; one a worker runs in the caller's buffers completes on its own
 * (it works on a duplicate of the fd).
 */
static void ep_cancel_fd(struct weft_loop *l, int fd)
{
	struct fdent *d = fd_peek(E(l), fd);
	struct weft__op *op;

	if (!d)
		return;
	while (d->rd || d->wr) {
		op = d->rd ? d->rd : d->wr;
		op->oflags |= WEFT__OPF_CANCEL_SENT;
		fail_waiter(l, op, -ECANCELED);
	}
	while ((op = not_cancelled(d->wk))) {
		op->oflags |= WEFT__OPF_CANCEL_SENT;
		fail_waiter(l, op, -ECANCELED);
	}
}

/* ---- the tick -------------------------------------------------------------------------- */

/*
 * Retry the ops of one of @fd's rings in order, until one must wait again.
 * The fd's entry is looked up again after every try: an accept's new fd
 * may grow (and move) the table.
 */
static void retry_ring(struct weft_loop *l, int fd, bool out)
{
	struct ep *e = E(l);

	for (;;) {
		struct fdent *d = fd_peek(e, fd);
		struct weft__op *op = out ? d->wr : d->rd;

		if (!op)
			return;

		long r = try_once(l, op, weft__opdef(op->code));

		if (r == -EAGAIN)
			return;
		d = fd_peek(e, fd);
		ring_del(out ? &d->wr : &d->rd, op);
		op->kflags &= ~(EK_RD | EK_WR);
		e->nwait--;
		report(l, op, (int)r);
	}
}

static bool dispatch_done(struct weft_loop *l)
{
	struct ep *e = E(l);
	struct weft__op *op = e->done;

	if (!op)
		return false;
	e->done = NULL;
	e->done_tail = &e->done;
	while (op) {
		struct weft__op *next = op->deferred;

		report(l, op, op->kres);
		op = next;
	}
	return true;
}

/* Report the ops whose deadline (or time, for a timer) has come. Return: whether any was. */
static bool expire(struct weft_loop *l, int64_t now)
{
	struct ep *e = E(l);
	uint64_t cqes = l->stats.cqes;

	while (weft__heap_next(&e->deadlines) != WEFT_FOREVER &&
	       weft__heap_next(&e->deadlines) <= now) {
		struct weft__op *op =
		    weft__container_of(weft__heap_top(&e->deadlines), struct weft__op, timer);

		weft__heap_remove(&e->deadlines, &op->timer);
		if (weft__opdef(op->code)->flags & WEFT__OPD_TIMER) {
			report(l, op, -ETIME);
			continue;
		}
		op->oflags |= WEFT__OPF_TIMED_OUT;
		if (unwait(l, op))
			report(l, op, -ECANCELED);
		/* else a worker runs it in the caller's buffers: its own result comes */
	}
	return l->stats.cqes != cqes;
}

/* How long the tick may wait: 0 not at all, or until the earlier of @deadline and an op's. */
static int64_t wait_until(struct ep *e, bool wait, int64_t deadline)
{
	int64_t until = wait ? deadline : 0;
	int64_t ops = weft__heap_next(&e->deadlines);

	if (until != 0 && ops != WEFT_FOREVER && (until == WEFT_FOREVER || ops < until))
		until = ops;
	if (until != 0 && until != WEFT_FOREVER && until <= weft__clock_now())
		until = 0;
	return until;
}

static void handle_events(struct weft_loop *l, const struct epoll_event *evs, int n)
{
	struct ep *e = E(l);

	for (int i = 0; i < n; i++) {
		uint64_t tag = evs[i].data.u64;
		uint32_t ev = evs[i].events;

		if (tag == WEFT__EP_WAKE_TAG) {
			uint64_t count;

			if (read(e->wakefd, &count, sizeof(count)) < 0 && errno != EAGAIN)
				WEFT__BUG(NULL, "read of the wake eventfd failed");
			continue;
		}

		if (!fd_peek(e, (int)tag))
			continue;
		if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI))
			retry_ring(l, (int)tag, false);
		if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			retry_ring(l, (int)tag, true);
	}
}

/* On the loop's stack: hand the queued ops to the workers; one that cannot go fails. */
static void hand_to_workers(struct weft_loop *l)
{
	struct ep *e = E(l);

	while (e->to_work) {
		struct weft__op *op = e->to_work;
		int rc;

		e->to_work = op->qnext;
		if (!e->to_work)
			e->to_work_tail = &e->to_work;
		op->kflags &= ~EK_QUEUED;
		rc = to_worker(l, op);
		if (rc < 0) {
			worker_unring(e, op);
			if (op->timer.index)
				weft__heap_remove(&e->deadlines, &op->timer);
			defer_done(e, op, rc);
		}
	}
}

static int ep_tick(struct weft_loop *l, bool wait, int64_t deadline)
{
	struct ep *e = E(l);
	struct epoll_event evs[256];

	/* What expired while queued ends here, not on a worker. */
	bool got = weft__heap_next(&e->deadlines) != WEFT_FOREVER && expire(l, weft__clock_now());

	hand_to_workers(l);
	/* Handing work over may have posted to this loop (a worker to start): do not sleep. */
	got |= dispatch_done(l) | !weft__inbox_empty(l);
	int64_t until = wait_until(e, wait && !got, deadline);

	/* Nothing waits for readiness and nothing to wait for: no system call. */
	if (until == 0 && e->nwait == 0) {
		expire(l, weft__clock_now());
		dispatch_done(l);
		return 0;
	}

	int n = weft__epoll_wait_until(e, evs, 256, until);

	l->stats.enters++;
	if (n < 0 && errno != EINTR)
		return -errno;
	handle_events(l, evs, n);
	expire(l, weft__clock_now());
	dispatch_done(l); /* what the events released (stale waiters of a reused fd) */
	return 0;
}

static void ep_wake(struct weft_loop *l)
{
	uint64_t one = 1;

	if (weft__tls_loop == l)
		return; /* its own thread: run() looks at the inbox before it waits */
	if (weft__tls_loop)
		weft__tls_loop->stats.wakes_eventfd++;

	ssize_t w = write(E(l)->wakefd, &one, sizeof(one));

	(void)w;
}

static int64_t ep_now(struct weft_loop *l)
{
	(void)l;
	return weft__clock_now();
}

static void ep_stats(struct weft_loop *l, weft_stats *out)
{
	(void)l;
	out->ring_mode = 0;
	out->ring_flags = 0;
	out->backend = WEFT_BACKEND_EPOLL;
}

const struct weft__backend weft__backend_epoll = {
	.name = "epoll",
	.setup = weft__epoll_setup,
	.teardown = weft__epoll_teardown,
	.submit = ep_submit,
	.cancel = ep_cancel,
	.cancel_fd = ep_cancel_fd,
	.tick = ep_tick,
	.wake = ep_wake,
	.now = ep_now,
	.stats = ep_stats,
};
