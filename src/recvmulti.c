/* SPDX-License-Identifier: MIT */
/*
 * Multishot receive. On io_uring, weft_recv_buf on a stream socket arms
 * one IORING_RECV_MULTISHOT receive for the fd, into the loop's provided
 * buffers, and keeps it armed: each reception goes to the fiber that waits
 * longest, or into the fd's queue while none waits, so a connection that
 * answers request after request pays no SQE for its receives, only for
 * its sends.
 *
 * The loop owns one receiver per fd it received from this way, in a table
 * by fd number. The op lives in the receiver, not on a fiber's stack, and
 * is counted in the loop's inflight only while a fiber waits for it (or
 * while it is being ended): an idle connection does not keep
 * weft_loop_run from returning.
 *
 * What bounds it: past WEFT__RECVM_QUEUE queued receptions, or once the
 * fd holds its bound of lent buffers, the receive is cancelled; the next
 * weft_recv_buf to find the queue empty arms it again. Where CQEs are
 * dispatched the backend takes no new kernel work, so the stop a
 * completion decides runs after the tick, from the loop's own inbox; a
 * fiber woken by a completion arms again itself.
 *
 * The order of the stream: a copying receive (weft_recv and its kin)
 * takes the queued bytes first, and once none are left stops the
 * multishot receive and waits for its end before it reads the socket
 * itself. A receiver ends with weft_close of its fd, and when weft hands
 * out the same fd number again (the fd was closed behind weft's back).
 */
#include "recvmulti.h"
#include "bufs.h"
#include "inbox.h"
#include "op.h"
#include "opdef.h"
#include "wait.h"

#include <errno.h>
#include <linux/io_uring.h> /* IORING_CQE_F_*: data, no liburing */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* A table entry for an fd that is not a stream socket: the single-shot path, always. */
#define NOT_STREAM ((struct weft__receiver *)(uintptr_t)1)
/* A waiter's result that says: look again (the receive ended, or a reception was queued). */
#define RETRY (INT_MIN + 1)

struct reception {
	struct weft__lent *d;
	uint32_t len; /* bytes in d */
	uint32_t off; /* taken already by a copying receive */
};

struct weft__receiver {
	struct weft__op op; /* the multishot receive (WEFT__OP_RECV_MULTI) */
	struct weft__remote later;
	struct weft_loop *loop;
	struct weft__bufs *bufs;
	struct weft__waitq takers;   /* fibers in weft_recv_buf, longest first */
	struct weft__waitq watchers; /* fibers waiting for the receive to end (drain, bound) */
	struct reception *q;	     /* ring of receptions no fiber took yet */
	unsigned qhead, qlen, qcap;
	int fd;
	int err; /* the error the receive ended with, for the next caller */
	uint32_t arms;
	bool armed;	    /* op in the kernel */
	bool uncounted;	    /* armed, nobody waits: taken off the loop's inflight */
	bool stopping;	    /* its cancel was sent */
	bool eof;	    /* the peer's end of file came (after what is queued) */
	bool detached;	    /* out of the table: it ends, and is freed at its end */
	bool later_pending; /* `later` is on the loop's inbox */
};

/* A fiber's wait in weft_recv_buf. */
struct rx_wait {
	struct weft__waiter w;
	struct weft__lent *d; /* the buffer it was handed */
};

static bool waiting(struct weft__receiver *r)
{
	return !weft__waitq_empty(&r->takers) || !weft__waitq_empty(&r->watchers);
}

/* Keep the loop's inflight true: an armed op nobody waits for (not being ended) is off it. */
static void recount(struct weft__receiver *r)
{
	bool off = r->armed && !r->detached && !r->stopping && !waiting(r);

	if (off == r->uncounted)
		return;
	if (off)
		r->loop->inflight--;
	else
		r->loop->inflight++;
	r->uncounted = off;
}

static void on_cqe(struct weft__op *op, int res, uint32_t flags);

static void arm(struct weft__receiver *r)
{
	struct weft_loop *l = r->loop;

	weft__op_init(&r->op, WEFT__OP_RECV_MULTI, r->fd, 0, 0, 0, 0);
	r->op.state = WEFT__OP_ARMED;
	r->op.oflags = 0; /* not on the fd's list: weft_close ends it here */
	r->op.fiber = NULL;
	r->op.deadline = WEFT_FOREVER;
	r->op.complete = on_cqe;
	r->armed = true;
	r->stopping = false;
	if (r->arms++ > 0)
		l->stats.multishot_rearms++;
	l->be->submit(l, &r->op);
	recount(r);
}

static void stop(struct weft__receiver *r)
{
	if (!r->armed || r->stopping)
		return;
	r->stopping = true;
	recount(r);
	r->loop->be->cancel(r->loop, &r->op);
}

static void drop_queue(struct weft__receiver *r)
{
	for (; r->qlen > 0; r->qlen--, r->qhead = (r->qhead + 1) % r->qcap)
		weft__bufs_put(r->q[r->qhead].d);
}

static void free_receiver(struct weft__receiver *r)
{
	drop_queue(r);
	free(r->q);
	free(r);
}

static void wake_all(struct weft__waitq *q, int res)
{
	struct weft__waiter *w;

	while ((w = weft__waitq_pop(q)) != NULL)
		weft__waiter_wake(w, res);
}

/* After the tick that dispatched the CQEs: the stop they decided. */
static void run_later(struct weft_loop *l, struct weft__remote *r0)
{
	struct weft__receiver *r = weft__container_of(r0, struct weft__receiver, later);

	(void)l;
	r->later_pending = false;
	if (r->detached) {
		if (!r->armed)
			free_receiver(r);
		return;
	}
	if (r->qlen >= WEFT__RECVM_QUEUE || weft__bufs_fd_full(r->bufs, r->fd))
		stop(r);
}

static void post_later(struct weft__receiver *r)
{
	if (r->later_pending)
		return;
	r->later_pending = true;
	r->later.run = run_later;
	weft__inbox_push(r->loop, &r->later);
}

/* Queue reception @d of @len bytes. Return: false if out of memory (@d not taken). */
static bool enqueue(struct weft__receiver *r, struct weft__lent *d, uint32_t len)
{
	if (r->qlen == r->qcap) {
		unsigned cap = r->qcap ? r->qcap * 2 : 8;
		struct reception *q = malloc(cap * sizeof(*q));

		if (!q)
			return false;
		for (unsigned i = 0; i < r->qlen; i++)
			q[i] = r->q[(r->qhead + i) % r->qcap];
		free(r->q);
		r->q = q;
		r->qcap = cap;
		r->qhead = 0;
	}
	r->q[(r->qhead + r->qlen) % r->qcap] = (struct reception){ d, len, 0 };
	r->qlen++;
	return true;
}

/* A reception of @res bytes into buffer @bid. */
static void got(struct weft__receiver *r, int res, uint32_t bid)
{
	struct weft__lent *d = weft__bufs_picked(r->bufs, bid, r->fd);
	struct weft__waiter *w;

	if (WEFT__UNLIKELY(!d))
		WEFT__BUG(NULL, "the kernel picked a buffer that is not free");
	if (r->detached) {
		weft__bufs_put(d); /* the fd was closed: so is what came late */
		return;
	}
	if ((w = weft__waitq_pop(&r->takers)) != NULL) {
		weft__container_of(w, struct rx_wait, w)->d = d;
		weft__waiter_wake(w, res);
		recount(r);
		return;
	}
	if (!enqueue(r, d, (uint32_t)res)) {
		/* Out of memory: the bytes cannot be kept, and the stream is broken. */
		weft__bufs_put(d);
		r->err = -ENOMEM;
		r->eof = false;
	}
	if (r->qlen >= WEFT__RECVM_QUEUE || weft__bufs_fd_full(r->bufs, r->fd))
		post_later(r);
}

/* The kernel ended the receive with @res (0: end of file), not a reception of ours. */
static void ended(struct weft__receiver *r, int res)
{
	if (res == 0)
		r->eof = true;
	else if (res == -EINVAL && r->arms == 1 && r->qlen == 0)
		/* A kernel without IORING_RECV_MULTISHOT: single-shot receives from now on. */
		r->loop->ops &= ~((uint64_t)1 << WEFT__OP_RECV_MULTI);
	else if (res != -ECANCELED && r->err == 0)
		r->err = res; /* -ENOBUFS too: the next caller falls back */
}

static void on_cqe(struct weft__op *op, int res, uint32_t flags)
{
	struct weft__receiver *r = weft__container_of(op, struct weft__receiver, op);
	bool last = !(flags & IORING_CQE_F_MORE);

	if (last) {
		op->state = WEFT__OP_DONE;
		r->armed = false;
		r->stopping = false;
	}
	if (flags & IORING_CQE_F_BUFFER) {
		uint32_t bid = flags >> IORING_CQE_BUFFER_SHIFT;

		if (res > 0)
			got(r, res, bid);
		else if (r->bufs->ring_put)
			r->bufs->ring_put(r->bufs, bid); /* not used after all */
	}
	if (last && res <= 0 && !r->detached)
		ended(r, res);
	if (last) {
		/* Whoever waits looks again: it arms again, or takes the end. */
		wake_all(&r->takers, RETRY);
		recount(r);
		if (r->detached && !r->later_pending) {
			free_receiver(r);
			return;
		}
	}
	if (!r->detached)
		wake_all(&r->watchers, RETRY);
}

/* The receiver of @fd, made at its first use; NOT_STREAM, or NULL for out of memory. */
static struct weft__receiver *get(struct weft_loop *l, struct weft__bufs *b, int fd)
{
	struct weft__receiver *r;
	int type = 0;
	socklen_t n = sizeof(type);

	if ((size_t)fd < l->rx_cap && l->rx[fd])
		return l->rx[fd];
	if ((size_t)fd >= l->rx_cap) {
		size_t cap = l->rx_cap ? l->rx_cap : 256;
		struct weft__receiver **v;

		while (cap <= (size_t)fd)
			cap *= 2;
		v = realloc(l->rx, cap * sizeof(*v));
		if (!v)
			return NULL;
		memset(v + l->rx_cap, 0, (cap - l->rx_cap) * sizeof(*v));
		l->rx = v;
		l->rx_cap = cap;
		l->rx_forget = weft__recvm_forget;
	}
	/* Datagrams keep their boundaries in recv: the single-shot path serves them. */
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &n) < 0 || type != SOCK_STREAM)
		return l->rx[fd] = NOT_STREAM;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->loop = l;
	r->bufs = b;
	r->fd = fd;
	return l->rx[fd] = r;
}

/* withdraw of a fiber's wait: off its queue unless it was handed something. */
static bool withdraw(struct weft__waiter *w)
{
	if (w->done)
		return false;
	weft__list_del(&w->link);
	recount(w->ctx);
	return true;
}

/* Wait on @q for a hand-over or a RETRY. */
static int wait_on(struct weft__waitq *q, struct rx_wait *rw, struct weft__receiver *r)
{
	weft__waiter_init(&rw->w, WEFT__WAIT_EARLY);
	rw->w.ctx = r;
	rw->w.withdraw = withdraw;
	weft__waitq_push(q, &rw->w);
	recount(r);
	return weft__waiter_wait(&rw->w); /* from here on, @r may be gone */
}

ssize_t weft__recvm_recv(struct weft_loop *l, struct weft__bufs *b, int fd, int flags,
			 struct weft__lent **out, size_t *skip)
{
	struct weft_fiber *self = l->cur;

	for (;;) {
		struct weft__receiver *r = get(l, b, fd);
		struct rx_wait rw = { .d = NULL };
		int rc;

		if (!r || r == NOT_STREAM)
			return WEFT__RECVM_PLAIN;
		if (flags & ~MSG_DONTWAIT)
			return r->armed || r->qlen || r->eof || r->err ? -EINVAL
								       : WEFT__RECVM_PLAIN;
		if (self->cancelled)
			return -ECANCELED;
		if (self->deadline != WEFT_FOREVER && l->be->now(l) >= self->deadline)
			return -ETIMEDOUT;
		if (r->qlen > 0) {
			struct reception c = r->q[r->qhead];

			r->qhead = (r->qhead + 1) % r->qcap;
			r->qlen--;
			*out = c.d;
			*skip = c.off;
			return (ssize_t)(c.len - c.off);
		}
		if (r->err) {
			rc = r->err;
			r->err = 0;
			return rc == -ENOBUFS ? WEFT__RECVM_PLAIN : rc;
		}
		if (r->eof)
			return 0;
		if (!weft__op_native(l, WEFT__OP_RECV_MULTI))
			return WEFT__RECVM_PLAIN; /* the kernel refused it */
		if (flags & MSG_DONTWAIT)
			return r->armed ? -EAGAIN : WEFT__RECVM_PLAIN; /* no wait, no arming */
		if (weft__bufs_fd_full(b, fd)) {
			if (!r->armed)
				return WEFT__RECVM_PLAIN; /* its own buffer, single-shot */
			stop(r);
			rc = wait_on(&r->watchers, &rw, r);
		} else {
			if (!r->armed)
				arm(r);
			rc = wait_on(&r->takers, &rw, r);
		}
		if (rc > 0 && rw.d) {
			*out = rw.d;
			*skip = 0;
			return rc;
		}
		if (rc != RETRY)
			return rc;
	}
}

/*
 * Copy queued bytes of @r into @iov; unless @peek they are taken, and the
 * buffers emptied go back. Return: bytes copied.
 */
static size_t copy_out(struct weft__receiver *r, const struct iovec *iov, size_t iovcnt, bool peek)
{
	size_t done = 0;
	unsigned k = 0; /* the reception, from the queue's head */
	uint32_t off = r->qlen ? r->q[r->qhead].off : 0;

	for (size_t i = 0; i < iovcnt && k < r->qlen; i++) {
		size_t at = 0;

		while (at < iov[i].iov_len && k < r->qlen) {
			struct reception *c = &r->q[(r->qhead + k) % r->qcap];
			size_t n = c->len - off;

			if (n > iov[i].iov_len - at)
				n = iov[i].iov_len - at;
			memcpy((char *)iov[i].iov_base + at, (char *)weft__bufs_data(c->d) + off,
			       n);
			at += n;
			off += (uint32_t)n;
			if (off < c->len)
				continue;
			k++;
			off = k < r->qlen ? r->q[(r->qhead + k) % r->qcap].off : 0;
		}
		done += at;
	}
	if (peek)
		return done;
	for (; k > 0; k--) { /* the receptions emptied */
		weft__bufs_put(r->q[r->qhead].d);
		r->qhead = (r->qhead + 1) % r->qcap;
		r->qlen--;
	}
	if (r->qlen)
		r->q[r->qhead].off = off;
	return done;
}

ssize_t weft__recvm_drain(struct weft_loop *l, int fd, const struct iovec *iov, size_t iovcnt,
			  int flags)
{
	for (;;) {
		struct weft__receiver *r = l->rx[fd];
		struct rx_wait rw = { .d = NULL };
		size_t want = 0;
		int rc;

		/* Gone (another fiber's drain ended it while this one waited), or never one. */
		if (!r || r == NOT_STREAM)
			return WEFT__RECVM_PLAIN;
		for (size_t i = 0; i < iovcnt; i++)
			want += iov[i].iov_len;
		if (r->qlen > 0 && want > 0)
			return (ssize_t)copy_out(r, iov, iovcnt, flags & MSG_PEEK);
		if (r->err) {
			rc = r->err;
			r->err = 0;
			if (rc != -ENOBUFS)
				return rc;
		}
		if (!r->armed && r->qlen == 0) {
			l->rx[fd] = NULL; /* the socket's own: the caller reads it */
			if (!r->later_pending)
				free_receiver(r);
			else
				r->detached = true;
			return WEFT__RECVM_PLAIN;
		}
		if (r->qlen > 0)
			return WEFT__RECVM_PLAIN; /* nothing asked for: the caller's own answer */
		if (flags & MSG_DONTWAIT)
			return -EAGAIN; /* what arrives goes to the receive still armed */
		stop(r);
		rc = wait_on(&r->watchers, &rw, r);
		if (rc != RETRY)
			return rc < 0 ? rc : -EIO;
	}
}

bool weft__recvm_readable(const struct weft_loop *l, int fd)
{
	const struct weft__receiver *r = l->rx[fd];

	return r != NOT_STREAM && (r->qlen > 0 || r->eof || r->err);
}

void weft__recvm_forget(struct weft_loop *l, int fd)
{
	struct weft__receiver *r = l->rx[fd];

	l->rx[fd] = NULL;
	if (r == NOT_STREAM)
		return;
	r->detached = true;
	drop_queue(r);
	wake_all(&r->takers, -ECANCELED);
	wake_all(&r->watchers, -ECANCELED);
	recount(r);
	if (r->armed)
		stop(r);
	else if (!r->later_pending)
		free_receiver(r);
}

void weft__recvm_shutdown(struct weft_loop *l)
{
	for (size_t fd = 0; fd < l->rx_cap; fd++)
		if (l->rx[fd])
			weft__recvm_forget(l, (int)fd);
}

void weft__recvm_fini(struct weft_loop *l)
{
	/*
	 * Normally every receiver is gone: shutdown ended them and the last
	 * run reaped their ends. One the kernel never answered is only a
	 * number to it now; the ring's teardown ends it.
	 */
	free(l->rx);
	l->rx = NULL;
	l->rx_cap = 0;
}
