/* SPDX-License-Identifier: MIT */
/*
 * The epoll backend: the same boundary (backend.h) where io_uring is refused
 * (a container's seccomp profile, kernel.io_uring_disabled, an old kernel).
 *
 * Sockets, pipes and other pollable fds: the system call is tried at once
 * without blocking (MSG_DONTWAIT, RWF_NOWAIT, accept4 after readiness), and
 * on EAGAIN the op waits on its fd's ring of readers or writers until epoll
 * reports readiness, when it is tried again. An fd is registered once,
 * edge-triggered for both directions, and stays registered until weft_close
 * (see fd_wait for when weft checks a registration again). The user's fd
 * flags are left alone, except during weft_connect on a blocking socket,
 * which is made non-blocking for the connect and restored after (the header
 * says so).
 *
 * Regular files, fsync, openat, statx and the other operations that epoll
 * cannot wait for run on this backend's worker threads; a page-cache hit of
 * a read is served at once with RWF_NOWAIT. A cancel or a deadline takes an
 * op off its fd's ring or out of the worker queue; an op a worker is already
 * running completes first (its buffers stay valid until it has), as with
 * io_uring, and its own result is returned. A close waits until the workers
 * running ops on its fd are done, so a recycled fd number is never read.
 *
 * An op that completes at once inside submit finishes in place: its fiber
 * goes on without parking (a budget of such ops per fiber switch keeps a
 * busy fiber from starving the others). Every other completion is reported
 * in tick, through op->complete, as backend.h requires. Deadlines of ops
 * (and WEFT_TIMERS_KERNEL sleeps) are a min-heap here; the loop's own timer
 * heap is unchanged; the tick waits in epoll_pwait2 (nanoseconds; Linux
 * 5.11, else epoll_wait in milliseconds, rounded up) until the nearer one.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif
#define FSYNC_DATASYNC 1u      /* IORING_FSYNC_DATASYNC, the record's flag for fdatasync */
#define WAKE_TAG UINT64_MAX    /* epoll data of the wake eventfd */
#define IN_PLACE_PER_SWITCH 16 /* ops a fiber may finish in place before it must yield */
#define DEFAULT_WORKERS 16

enum { KIND_UNKNOWN = 0, KIND_POLL, KIND_FILE };
enum { NB_UNKNOWN = 0, NB_BLOCKING, NB_NONBLOCKING };

/* What weft knows of one fd number. */
struct fdent {
	struct weft__op *rd;	 /* ring (op->fdlink) of ops waiting for input */
	struct weft__op *wr;	 /* and for output */
	struct weft__op *closer; /* a close waiting for the workers below */
	uint32_t workers;	 /* ops on this fd that a worker runs or will run */
	uint8_t registered;	 /* in the epoll set */
	uint8_t trusted;	 /* weft saw this fd born: its registration needs no check */
	uint8_t kind;		 /* KIND_* */
	uint8_t nonblock;	 /* NB_*: its O_NONBLOCK, for accept4 */
};

/* op->kflags, the backend's own */
#define EK_RD (1u << 0)		/* on its fd's rd ring */
#define EK_WR (1u << 1)		/* on its fd's wr ring */
#define EK_WORKER (1u << 2)	/* handed to the workers (queued or running) */
#define EK_FDCOUNT (1u << 3)	/* counted in its fd's workers */
#define EK_TIMER (1u << 4)	/* in the deadline heap */
#define EK_CONNECTING (1u << 5) /* a connect in progress */
#define EK_RESTORE_FL (1u << 6) /* O_NONBLOCK was added for the connect: take it off */
#define EK_NOWAIT_NO (1u << 7)	/* RWF_NOWAIT is not supported on this fd */

struct ep {
	int epfd;
	int wakefd;
	struct fdent *fds;
	size_t nfds;
	size_t fd_cap;	       /* fd numbers above this are never tracked (RLIMIT_NOFILE) */
	struct weft__op *done; /* to report at the next tick (op->deferred) */
	struct weft__op **done_tail;
	struct weft__op **heap; /* deadlines, earliest first; op->due = 1 + index */
	size_t hlen;
	size_t hcap;
	/* the workers */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct weft__list queue;	     /* ops waiting for a worker (op->fdlink) */
	_Atomic(struct weft__op *) finished; /* done by workers (op->deferred) */
	pthread_t *tids;
	unsigned threads;
	unsigned idle;
	unsigned queued; /* ops on the queue */
	unsigned max_threads;
	bool stop;
	bool want_worker; /* loop thread: start one at the next tick */
	/* the in-place budget */
	uint64_t budget_switches;
	unsigned budget;
	size_t nwait; /* ops on the fd rings */
	bool have_pwait2;
};

static inline struct ep *E(struct weft_loop *l)
{
	return l->be_data;
}

static long sys_result(long r)
{
	return r < 0 ? -errno : r;
}

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

/* A new file got number @fd (weft made it): forget what the old one was. */
static void fd_born(struct ep *e, int fd)
{
	struct fdent *d = fd_peek(e, fd);

	if (d) {
		d->registered = 0;
		d->kind = KIND_UNKNOWN;
		d->nonblock = NB_UNKNOWN;
		d->trusted = 1;
	} else if ((d = fd_get(e, fd))) {
		d->trusted = 1;
	}
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

/* ---- the deadline heap (op->ts[0] is the key) ---------------------------------- */

static inline bool heap_less(struct weft__op *a, struct weft__op *b)
{
	return a->ts[0] < b->ts[0];
}

static void heap_set(struct ep *e, size_t i, struct weft__op *op)
{
	e->heap[i] = op;
	op->due = (uint32_t)i + 1;
}

static void heap_up(struct ep *e, size_t i)
{
	struct weft__op *op = e->heap[i];

	while (i > 0 && heap_less(op, e->heap[(i - 1) / 2])) {
		heap_set(e, i, e->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(e, i, op);
}

static void heap_down(struct ep *e, size_t i)
{
	struct weft__op *op = e->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= e->hlen)
			break;
		if (c + 1 < e->hlen && heap_less(e->heap[c + 1], e->heap[c]))
			c++;
		if (!heap_less(e->heap[c], op))
			break;
		heap_set(e, i, e->heap[c]);
		i = c;
	}
	heap_set(e, i, op);
}

static bool heap_add(struct ep *e, struct weft__op *op, int64_t when)
{
	if (e->hlen == e->hcap) {
		size_t n = e->hcap ? e->hcap * 2 : 64;
		struct weft__op **v = realloc(e->heap, n * sizeof(*v));

		if (!v)
			return false;
		e->heap = v;
		e->hcap = n;
	}
	op->ts[0] = when;
	op->kflags |= EK_TIMER;
	e->heap[e->hlen] = op;
	heap_up(e, e->hlen++);
	return true;
}

static void heap_del(struct ep *e, struct weft__op *op)
{
	if (!(op->kflags & EK_TIMER))
		return;

	size_t i = op->due - 1;
	struct weft__op *last = e->heap[--e->hlen];

	op->kflags &= ~EK_TIMER;
	op->due = 0;
	if (last == op)
		return;
	heap_set(e, i, last);
	heap_up(e, i);
	heap_down(e, last->due - 1);
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

/* The op leaves every list of this backend; its end is reported now (in tick). */
static void report(struct weft_loop *l, struct weft__op *op, int res)
{
	heap_del(E(l), op);
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

/* ---- the system calls ------------------------------------------------------------- */

static inline void *P(uint64_t v)
{
	return (void *)(uintptr_t)v;
}

/* The blocking form of a worker op, on a worker thread: result or -errno. */
static long run_blocking(const struct weft__op *op)
{
	struct iovec one = { P(op->addr), op->len };
	const struct iovec *iov = op->code == WEFT__OP_READ || op->code == WEFT__OP_WRITE
				      ? &one
				      : (const struct iovec *)P(op->addr);
	int cnt = op->code == WEFT__OP_READ || op->code == WEFT__OP_WRITE ? 1 : (int)op->len;

	switch (op->code) {
	case WEFT__OP_READ:
	case WEFT__OP_READV:
		return sys_result(preadv2(op->fd, iov, cnt, (off_t)op->off, 0));
	case WEFT__OP_WRITE:
	case WEFT__OP_WRITEV:
		return sys_result(pwritev2(op->fd, iov, cnt, (off_t)op->off, 0));
	case WEFT__OP_FSYNC:
		return sys_result((op->op_flags & FSYNC_DATASYNC) ? fdatasync(op->fd)
								  : fsync(op->fd));
	case WEFT__OP_OPENAT:
		return sys_result(openat(op->fd, P(op->addr), (int)op->op_flags, (mode_t)op->len));
	case WEFT__OP_STATX:
		return sys_result(
		    statx(op->fd, P(op->addr), (int)op->op_flags, op->len, P(op->off)));
	case WEFT__OP_UNLINKAT:
		return sys_result(unlinkat(op->fd, P(op->addr), (int)op->op_flags));
	case WEFT__OP_RENAMEAT:
		return sys_result(syscall(SYS_renameat2, op->fd, P(op->addr), (int)op->len,
					  P(op->off), op->op_flags));
	case WEFT__OP_MKDIRAT:
		return sys_result(mkdirat(op->fd, P(op->addr), (mode_t)op->len));
	case WEFT__OP_FALLOCATE:
		return sys_result(fallocate(op->fd, (int)op->len, (off_t)op->off, (off_t)op->addr));
	case WEFT__OP_FTRUNCATE:
		return sys_result(ftruncate(op->fd, (off_t)op->off));
	default:
		return -EOPNOTSUPP;
	}
}

/* Whether @fd can be read without blocking now (for accept4 on a blocking socket). */
static bool readable_now(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/*
 * One non-blocking try of a pollable op. Return: its result, or -EAGAIN to
 * wait for readiness.
 */
static long try_io(struct ep *e, struct weft__op *op)
{
	struct fdent *d;
	long r;

	switch (op->code) {
	case WEFT__OP_RECV:
		if (op->op_flags & MSG_WAITALL) {
			/* Keep what came so far in kres; wait for the rest. */
			r = recv(op->fd, (char *)P(op->addr) + op->kres,
				 op->len - (uint32_t)op->kres,
				 (int)(op->op_flags & ~(uint32_t)MSG_WAITALL) | MSG_DONTWAIT);
			if (r > 0 && (op->kres += (int32_t)r) < (int32_t)op->len)
				return -EAGAIN;
			if (r > 0 || (r == 0 && op->kres > 0))
				return op->kres;
			if (r < 0 && errno == EAGAIN)
				return -EAGAIN;
			return op->kres > 0 ? op->kres : sys_result(r);
		}
		return sys_result(
		    recv(op->fd, P(op->addr), op->len, (int)op->op_flags | MSG_DONTWAIT));
	case WEFT__OP_SEND:
		return sys_result(
		    send(op->fd, P(op->addr), op->len, (int)op->op_flags | MSG_DONTWAIT));
	case WEFT__OP_RECVMSG:
		return sys_result(recvmsg(op->fd, P(op->addr), (int)op->op_flags | MSG_DONTWAIT));
	case WEFT__OP_SENDMSG:
		return sys_result(sendmsg(op->fd, P(op->addr), (int)op->op_flags | MSG_DONTWAIT));
	case WEFT__OP_ACCEPT:
		d = fd_get(e, op->fd);
		if (!d || d->nonblock == NB_UNKNOWN) {
			/* Once per fd: a listening socket? Blocking? (accept4 would tell by
			 * blocking.) */
			int listening = 0;
			socklen_t sl = sizeof(listening);
			int fl = fcntl(op->fd, F_GETFL);

			if (fl < 0 ||
			    getsockopt(op->fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &sl) < 0)
				return -errno;
			if (!listening)
				return -EINVAL; /* what accept4 says of a socket that does not
						   listen */
			if (d)
				d->nonblock = (fl & O_NONBLOCK) ? NB_NONBLOCKING : NB_BLOCKING;
		}
		/* accept4 has no per-call MSG_DONTWAIT: on a blocking socket, look first. */
		if ((!d || d->nonblock == NB_BLOCKING) && !readable_now(op->fd))
			return -EAGAIN;
		r = sys_result(accept4(op->fd, P(op->addr), P(op->off), (int)op->op_flags));
		if (r >= 0)
			fd_born(e, (int)r);
		return r;
	case WEFT__OP_CONNECT:
		if (!(op->kflags & EK_CONNECTING)) {
			int fl = fcntl(op->fd, F_GETFL);

			if (fl < 0)
				return -errno;
			if (!(fl & O_NONBLOCK)) {
				if (fcntl(op->fd, F_SETFL, fl | O_NONBLOCK) < 0)
					return -errno;
				op->kflags |= EK_RESTORE_FL;
			}
			op->kflags |= EK_CONNECTING;
		}
		r = connect(op->fd, P(op->addr), (socklen_t)op->off);
		if (r == 0)
			return 0;
		if (errno == EINPROGRESS || errno == EALREADY || errno == EAGAIN)
			return -EAGAIN;
		if (errno == EISCONN && (op->kflags & EK_CONNECTING) && op->kres == 1)
			return 0; /* it connected while we waited */
		return -errno;
	case WEFT__OP_READ:
	case WEFT__OP_READV:
	case WEFT__OP_WRITE:
	case WEFT__OP_WRITEV: {
		struct iovec one = { P(op->addr), op->len };
		bool single = op->code == WEFT__OP_READ || op->code == WEFT__OP_WRITE;
		const struct iovec *iov = single ? &one : P(op->addr);
		int cnt = single ? 1 : (int)op->len;
		int fl = (op->kflags & EK_NOWAIT_NO) ? 0 : RWF_NOWAIT;
		bool rd = op->code == WEFT__OP_READ || op->code == WEFT__OP_READV;

		r = rd ? preadv2(op->fd, iov, cnt, (off_t)op->off, fl)
		       : pwritev2(op->fd, iov, cnt, (off_t)op->off, fl);
		return sys_result(r);
	}
	case WEFT__OP_POLL: {
		struct pollfd p = { .fd = op->fd, .events = (short)op->op_flags };

		r = poll(&p, 1, 0);
		if (r < 0)
			return -errno;
		return r == 0 ? -EAGAIN : (p.revents & POLLNVAL ? -EBADF : p.revents);
	}
	default:
		return -EOPNOTSUPP;
	}
}

/* Which ring an op waits on. */
static bool waits_for_output(const struct weft__op *op)
{
	switch (op->code) {
	case WEFT__OP_SEND:
	case WEFT__OP_SENDMSG:
	case WEFT__OP_CONNECT:
	case WEFT__OP_WRITE:
	case WEFT__OP_WRITEV:
		return true;
	case WEFT__OP_POLL:
		return (op->op_flags & POLLOUT) && !(op->op_flags & POLLIN);
	default:
		return false;
	}
}

/* An op that ends: undo what a connect did to the fd's flags. */
static void op_cleanup(struct weft__op *op)
{
	if (op->kflags & EK_RESTORE_FL) {
		int fl = fcntl(op->fd, F_GETFL);

		if (fl >= 0)
			(void)fcntl(op->fd, F_SETFL, fl & ~O_NONBLOCK);
		op->kflags &= ~EK_RESTORE_FL;
	}
}

/* ---- the workers --------------------------------------------------------------------- */

static void *worker(void *arg)
{
	struct weft_loop *l = arg;
	struct ep *e = E(l);

	pthread_mutex_lock(&e->mu);
	for (;;) {
		while (weft__list_empty(&e->queue) && !e->stop) {
			e->idle++;
			pthread_cond_wait(&e->cv, &e->mu);
			e->idle--;
		}
		if (weft__list_empty(&e->queue))
			break;

		struct weft__op *op = weft__container_of(e->queue.next, struct weft__op, fdlink);

		/* Off the queue means running (the loop never writes kflags here). */
		weft__list_del(&op->fdlink);
		e->queued--;
		pthread_mutex_unlock(&e->mu);

		op->kres = (int32_t)run_blocking(op);

		/* Back to the loop: a lock-free push, and a wake if it was empty. */
		struct weft__op *head = atomic_load_explicit(&e->finished, memory_order_relaxed);

		do
			op->deferred = head;
		while (!atomic_compare_exchange_weak_explicit(
		    &e->finished, &head, op, memory_order_release, memory_order_relaxed));
		if (!head) {
			uint64_t one = 1;
			ssize_t w = write(e->wakefd, &one, sizeof(one));

			(void)w;
		}
		pthread_mutex_lock(&e->mu);
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/*
 * Hand @op to a worker. Workers are started by the tick, on the loop's own
 * stack, never here: pthread_create would run on the calling fiber's stack,
 * which may be a single page.
 */
static void to_worker(struct weft_loop *l, struct weft__op *op)
{
	struct ep *e = E(l);
	struct fdent *d = (op->oflags & WEFT__OPF_HAS_FD) ? fd_get(e, op->fd) : NULL;

	pthread_mutex_lock(&e->mu);
	op->kflags |= EK_WORKER;
	weft__list_add_before(&e->queue, &op->fdlink);
	e->queued++;
	if (e->queued > e->idle && e->threads < e->max_threads)
		e->want_worker = true;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	if (d) {
		d->workers++;
		op->kflags |= EK_FDCOUNT;
	}
}

static void op_cleanup(struct weft__op *op);
static void defer_done(struct ep *e, struct weft__op *op, int res);
static void worker_op_over(struct weft_loop *l, struct weft__op *op);

/*
 * In the tick: start workers while more ops wait than workers are idle. If
 * not even one can be started, the queued ops fail with the reason.
 */
static void start_workers(struct weft_loop *l)
{
	struct ep *e = E(l);
	struct weft__op *failed[64];
	size_t nfailed = 0;
	unsigned started = 0;
	int rc = 0;

	e->want_worker = false;
	pthread_mutex_lock(&e->mu);
	while (e->queued > e->idle + started && e->threads < e->max_threads) {
		rc = weft__thread_start(&e->tids[e->threads], NULL, worker, l);
		if (rc < 0)
			break;
		e->threads++;
		started++;
	}
	if (rc < 0 && e->threads == 0) {
		while (!weft__list_empty(&e->queue) && nfailed < 64) {
			struct weft__op *op =
			    weft__container_of(e->queue.next, struct weft__op, fdlink);

			weft__list_del(&op->fdlink);
			e->queued--;
			failed[nfailed++] = op;
		}
		e->want_worker = !weft__list_empty(&e->queue);
	}
	pthread_mutex_unlock(&e->mu);
	for (size_t i = 0; i < nfailed; i++) {
		worker_op_over(l, failed[i]);
		op_cleanup(failed[i]);
		defer_done(e, failed[i], rc);
	}
}

/* Take @op out of the worker queue if no worker has it yet (a queued op is linked). */
static bool unqueue(struct ep *e, struct weft__op *op)
{
	bool queued;

	pthread_mutex_lock(&e->mu);
	queued = op->fdlink.next != &op->fdlink;
	if (queued) {
		weft__list_del(&op->fdlink);
		e->queued--;
	}
	pthread_mutex_unlock(&e->mu);
	return queued;
}

static void close_now(struct weft_loop *l, struct weft__op *op, bool in_tick);

/* A worker op is over (run or taken back): its fd may now be closed. */
static void worker_op_over(struct weft_loop *l, struct weft__op *op)
{
	struct fdent *d;

	op->kflags &= ~EK_WORKER;
	if (!(op->kflags & EK_FDCOUNT))
		return;
	op->kflags &= ~EK_FDCOUNT;
	d = fd_peek(E(l), op->fd);
	if (d && --d->workers == 0 && d->closer) {
		struct weft__op *c = d->closer;

		d->closer = NULL;
		close_now(l, c, true);
	}
}

/* ---- waiting ------------------------------------------------------------------------- */

/* @op got EAGAIN: wait for its fd's readiness. Return: false if it cannot wait (-errno). */
static int wait_ready(struct weft_loop *l, struct weft__op *op)
{
	struct ep *e = E(l);
	struct fdent *d = fd_get(e, op->fd);

	if (!d)
		return -ENOMEM;

	int rc = fd_watch(e, d, op->fd);

	if (rc < 0)
		return rc;
	if (waits_for_output(op)) {
		op->kflags |= EK_WR;
		ring_add(&d->wr, op);
	} else {
		op->kflags |= EK_RD;
		ring_add(&d->rd, op);
	}
	e->nwait++;
	return 0;
}

/* Take @op off whatever it waits on. Return: true if it was waiting (not running). */
static bool unwait(struct weft_loop *l, struct weft__op *op)
{
	struct ep *e = E(l);
	struct fdent *d;

	if (op->kflags & (EK_RD | EK_WR)) {
		d = fd_peek(e, op->fd);
		ring_del((op->kflags & EK_RD) ? &d->rd : &d->wr, op);
		op->kflags &= ~(EK_RD | EK_WR);
		e->nwait--;
		return true;
	}
	if (op->kflags & EK_WORKER) {
		if (!unqueue(e, op))
			return false; /* a worker runs it: it completes on its own */
		worker_op_over(l, op);
		return true;
	}
	return op->code == WEFT__OP_TIMEOUT && (op->kflags & EK_TIMER);
}

/* ---- submit ----------------------------------------------------------------------------- */

static void close_now(struct weft_loop *l, struct weft__op *op, bool in_tick)
{
	struct ep *e = E(l);
	struct fdent *d = fd_peek(e, op->fd);

	if (d) {
		if (d->registered)
			(void)epoll_ctl(e->epfd, EPOLL_CTL_DEL, op->fd, NULL);
		d->registered = 0;
		d->trusted = 0;
		d->kind = KIND_UNKNOWN;
		d->nonblock = NB_UNKNOWN;
	}

	int res = (int)sys_result(close(op->fd));

	if (in_tick)
		defer_done(e, op, res);
	else
		answer(l, op, res);
}

/* Regular file or something epoll can wait on? */
static int fd_kind(struct ep *e, int fd)
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

/* The op's first try; what is left of it waits. */
static void start(struct weft_loop *l, struct weft__op *op)
{
	struct ep *e = E(l);
	long r;
	int rc;

	switch (op->code) {
	case WEFT__OP_NOP:
		answer(l, op, 0);
		return;
	case WEFT__OP_TIMEOUT:
		/* A kernel-style sleep: -ETIME at its time. */
		if (!heap_add(e, op, (int64_t)op->off))
			answer(l, op, -ENOMEM);
		return;
	case WEFT__OP_SOCKET:
		r = sys_result(socket(op->fd, (int)op->off, (int)op->len));
		if (r >= 0)
			fd_born(e, (int)r);
		answer(l, op, (int)r);
		return;
	case WEFT__OP_SHUTDOWN:
		answer(l, op, (int)sys_result(shutdown(op->fd, (int)op->len)));
		return;
	case WEFT__OP_CLOSE: {
		struct fdent *d = fd_peek(e, op->fd);

		if (d && d->workers > 0) {
			d->closer = op; /* when the last worker op on it is over */
			return;
		}
		close_now(l, op, false);
		return;
	}
	case WEFT__OP_FSYNC:
	case WEFT__OP_OPENAT:
	case WEFT__OP_STATX:
	case WEFT__OP_UNLINKAT:
	case WEFT__OP_RENAMEAT:
	case WEFT__OP_MKDIRAT:
	case WEFT__OP_FALLOCATE:
	case WEFT__OP_FTRUNCATE:
		to_worker(l, op);
		rc = 0;
		break;
	case WEFT__OP_READ:
	case WEFT__OP_READV:
	case WEFT__OP_WRITE:
	case WEFT__OP_WRITEV:
		r = try_io(e, op);
		if (r == -EOPNOTSUPP) {
			op->kflags |= EK_NOWAIT_NO;
			r = -EAGAIN;
		}
		if (r != -EAGAIN) {
			answer(l, op, (int)r);
			return;
		}
		/*
		 * A regular file that would block (not in the page cache, or no
		 * RWF_NOWAIT for writes on this filesystem) goes to a worker; a
		 * pipe, socket or device waits for readiness.
		 */
		rc = fd_kind(e, op->fd);
		if (rc == KIND_FILE) {
			to_worker(l, op);
			rc = 0;
		} else if (rc == KIND_POLL) {
			rc = wait_ready(l, op);
			if (rc == -EPERM) { /* epoll refuses it: a file after all */
				to_worker(l, op);
				rc = 0;
			}
		}
		break;
	default: /* the socket ops and POLL */
		op->kres = 0;
		r = try_io(e, op);
		if (r != -EAGAIN) {
			op_cleanup(op);
			answer(l, op, (int)r);
			return;
		}
		if (op->code == WEFT__OP_CONNECT)
			op->kres = 1; /* from now on EISCONN means it connected */
		rc = wait_ready(l, op);
		break;
	}
	if (rc < 0) {
		op_cleanup(op);
		answer(l, op, rc);
		return;
	}
	if (op->deadline != WEFT_FOREVER && !heap_add(e, op, op->deadline) && unwait(l, op))
		answer(l, op, -ENOMEM);
}

static void ep_submit(struct weft_loop *l, struct weft__op *op)
{
	l->inflight++;
	l->stats.sqes++;
	op->kflags = 0;
	op->due = 0;
	op->kres = 0;
	start(l, op);
}

/* End @op early with -ECANCELED, if it is still waiting (a running worker op finishes). */
static void end_early(struct weft_loop *l, struct weft__op *op)
{
	struct ep *e = E(l);

	if (!unwait(l, op))
		return;
	heap_del(e, op);
	op_cleanup(op);
	defer_done(e, op, -ECANCELED);
}

static void ep_cancel(struct weft_loop *l, struct weft__op *op)
{
	if (op->state != WEFT__OP_ARMED || (op->oflags & WEFT__OPF_CANCEL_SENT))
		return;
	op->oflags |= WEFT__OPF_CANCEL_SENT;
	end_early(l, op);
}

static void ep_cancel_fd(struct weft_loop *l, int fd)
{
	struct ep *e = E(l);
	struct fdent *d = fd_peek(e, fd);

	if (!d)
		return;
	while (d->rd || d->wr) {
		struct weft__op *op = d->rd ? d->rd : d->wr;

		op->oflags |= WEFT__OPF_CANCEL_SENT;
		end_early(l, op);
	}
	if (d->workers > 0) {
		/* Queued ops on it must not run on a recycled number: take them back. */
		struct weft__list *n;
		struct weft__op *todo[8]; /* small: this runs on the closing fiber's stack */
		size_t k;

		do {
			k = 0;
			pthread_mutex_lock(&e->mu);
			weft__list_for_each(n, &e->queue)
			{
				struct weft__op *op =
				    weft__container_of(n, struct weft__op, fdlink);

				if (op->fd == fd && (op->kflags & EK_FDCOUNT) && k < 8)
					todo[k++] = op;
			}
			pthread_mutex_unlock(&e->mu);
			for (size_t i = 0; i < k; i++) {
				todo[i]->oflags |= WEFT__OPF_CANCEL_SENT;
				end_early(l, todo[i]);
			}
		} while (k == 8);
	}
}

/* ---- the tick -------------------------------------------------------------------------- */

/* Retry the ops of one ring in order, until one must wait again. */
static void retry_ring(struct weft_loop *l, struct fdent *d, bool out)
{
	struct ep *e = E(l);

	for (;;) {
		struct weft__op *op = out ? d->wr : d->rd;

		if (!op)
			return;

		long r = try_io(e, op);

		if (r == -EAGAIN)
			return;
		ring_del(out ? &d->wr : &d->rd, op);
		op->kflags &= ~(EK_RD | EK_WR);
		e->nwait--;
		op_cleanup(op);
		heap_del(e, op);
		report(l, op, (int)r);
	}
}

static void take_finished(struct weft_loop *l)
{
	struct ep *e = E(l);
	struct weft__op *op = atomic_exchange_explicit(&e->finished, NULL, memory_order_acquire);
	struct weft__op *fifo = NULL;

	while (op) {
		struct weft__op *next = op->deferred;

		op->deferred = fifo;
		fifo = op;
		op = next;
	}
	while (fifo) {
		struct weft__op *next = fifo->deferred;
		int res = fifo->kres;

		worker_op_over(l, fifo);
		if (fifo->code == WEFT__OP_OPENAT && res >= 0)
			fd_born(e, res);
		report(l, fifo, res);
		fifo = next;
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

static void expire(struct weft_loop *l, int64_t now)
{
	struct ep *e = E(l);

	while (e->hlen > 0 && e->heap[0]->ts[0] <= now) {
		struct weft__op *op = e->heap[0];

		heap_del(e, op);
		if (op->code == WEFT__OP_TIMEOUT) {
			report(l, op, -ETIME);
			continue;
		}
		op->oflags |= WEFT__OPF_TIMED_OUT;
		if (unwait(l, op)) {
			op_cleanup(op);
			report(l, op, -ECANCELED);
		}
		/* else a worker runs it: its own result comes when it is done */
	}
}

static int epoll_wait_until(struct ep *e, struct epoll_event *evs, int n, int64_t until)
{
	if (until == 0) /* do not wait */
		return epoll_wait(e->epfd, evs, n, 0);
	if (e->have_pwait2) {
		struct timespec ts;
		struct timespec *tsp = NULL;

		if (until != WEFT_FOREVER) {
			int64_t left = until - weft__clock_now();

			if (left < 0)
				left = 0;
			ts.tv_sec = left / WEFT_SEC;
			ts.tv_nsec = left % WEFT_SEC;
			tsp = &ts;
		}

		int r = (int)syscall(SYS_epoll_pwait2, e->epfd, evs, n, tsp, NULL, (size_t)8);

		if (r >= 0 || errno != ENOSYS)
			return r;
		e->have_pwait2 = false; /* before Linux 5.11 */
	}

	int ms = -1;

	if (until != WEFT_FOREVER) {
		int64_t left = until - weft__clock_now();

		ms = left <= 0 ? 0 : (int)((left + WEFT_MSEC - 1) / WEFT_MSEC);
	}
	return epoll_wait(e->epfd, evs, n, ms);
}

static int ep_tick(struct weft_loop *l, bool wait, int64_t deadline)
{
	struct ep *e = E(l);
	struct epoll_event evs[256];
	bool got = false;

	if (e->want_worker)
		start_workers(l);
	if (atomic_load_explicit(&e->finished, memory_order_relaxed)) {
		take_finished(l);
		got = true;
	}
	got |= dispatch_done(l);

	int64_t until = wait && !got ? deadline : 0;

	if (until != 0 && e->hlen > 0 && (until == WEFT_FOREVER || e->heap[0]->ts[0] < until))
		until = e->heap[0]->ts[0];
	if (until != 0 && until != WEFT_FOREVER && until <= weft__clock_now())
		until = 0;

	/* Nothing waits for readiness and nothing to wait for: no system call. */
	if (until == 0 && e->nwait == 0) {
		if (e->hlen > 0)
			expire(l, weft__clock_now());
		dispatch_done(l);
		return 0;
	}

	int n = epoll_wait_until(e, evs, 256, until);

	l->stats.enters++;
	if (n < 0 && errno != EINTR)
		return -errno;
	for (int i = 0; i < n; i++) {
		uint64_t tag = evs[i].data.u64;
		uint32_t ev = evs[i].events;

		if (tag == WAKE_TAG) {
			uint64_t count;

			if (read(e->wakefd, &count, sizeof(count)) < 0 && errno != EAGAIN)
				WEFT__BUG(NULL, "read of the wake eventfd failed");
			continue;
		}

		struct fdent *d = fd_peek(e, (int)tag);

		if (!d)
			continue;
		if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI))
			retry_ring(l, d, false);
		if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			retry_ring(l, d, true);
	}
	if (atomic_load_explicit(&e->finished, memory_order_relaxed))
		take_finished(l);
	if (e->hlen > 0)
		expire(l, weft__clock_now());
	dispatch_done(l); /* what a worker op's end released (a close) */
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

/* ---- set-up -------------------------------------------------------------------------- */

static int ep_setup(struct weft_loop *l)
{
	struct ep *e = calloc(1, sizeof(*e));
	struct rlimit rl;
	int rc;

	if (!e)
		return -ENOMEM;
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	e->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	e->max_threads = l->cfg.iowq_bounded ? l->cfg.iowq_bounded : DEFAULT_WORKERS;
	e->tids = calloc(e->max_threads, sizeof(*e->tids));
	if (e->epfd < 0 || e->wakefd < 0 || !e->tids) {
		rc = e->tids ? -errno : -ENOMEM;
		goto fail;
	}

	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_TAG };

	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wakefd, &ev) < 0) {
		rc = -errno;
		goto fail;
	}
	e->fd_cap = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY
			? (size_t)rl.rlim_max
			: (size_t)1 << 20;
	e->done_tail = &e->done;
	weft__list_init(&e->queue);
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	atomic_init(&e->finished, NULL);
	e->have_pwait2 = true;
	l->ops = ~(uint64_t)0; /* every op runs here, one way or another */
	l->be_data = e;
	return 0;
fail:
	if (e->epfd >= 0)
		close(e->epfd);
	if (e->wakefd >= 0)
		close(e->wakefd);
	free(e->tids);
	free(e);
	return rc;
}

static void ep_teardown(struct weft_loop *l)
{
	struct ep *e = E(l);

	pthread_mutex_lock(&e->mu);
	e->stop = true;
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
	for (unsigned i = 0; i < e->threads; i++)
		pthread_join(e->tids[i], NULL);
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	close(e->epfd);
	close(e->wakefd);
	free(e->tids);
	free(e->fds);
	free(e->heap);
	free(e);
	l->be_data = NULL;
}

const struct weft__backend weft__backend_epoll = {
	.name = "epoll",
	.setup = ep_setup,
	.teardown = ep_teardown,
	.submit = ep_submit,
	.cancel = ep_cancel,
	.cancel_fd = ep_cancel_fd,
	.tick = ep_tick,
	.wake = ep_wake,
	.now = ep_now,
	.stats = ep_stats,
};
