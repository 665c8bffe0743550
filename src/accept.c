/* SPDX-License-Identifier: MIT */
/*
 * Multishot accept. On io_uring, weft_accept on a listener arms one
 * IORING_ACCEPT_MULTISHOT accept for it and keeps it armed: each
 * connection the kernel accepts goes to the fiber that waits longest, or
 * into the listener's queue while none waits, so a busy server pays one
 * SQE for many connections instead of one each.
 *
 * The loop owns one acceptor per listener it accepted from (a short list:
 * servers have few listeners). Its op lives in the acceptor, not on a
 * fiber's stack, and is counted in the loop's inflight only while a fiber
 * waits for it (or while it is being ended): a listener nobody accepts
 * from does not keep weft_loop_run from returning.
 *
 * What bounds it: past WEFT__ACCEPT_QUEUE queued connections the accept is
 * cancelled, and the next fiber to find the queue empty arms it again;
 * until then the kernel's backlog holds new connections. Connections that
 * arrive while the cancel is on its way are queued too, never dropped.
 *
 * Where CQEs are dispatched, the backend takes no new kernel work, so what
 * a completion decides (stop at the bound, arm again after the kernel
 * ended the accept) runs after the tick, from the loop's own inbox.
 *
 * Addresses: the multishot accept writes none (every connection would
 * share one slot); weft_accept asks getpeername for the caller's.
 */
#include "accept.h"
#include "inbox.h"
#include "op.h"
#include "opdef.h"
#include "wait.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h> /* IORING_CQE_F_MORE: data, no liburing */
#include <stdlib.h>
#include <unistd.h>

struct queued {
	int fd;
	int flags; /* the SOCK_* flags it was accepted with */
};

struct weft__acceptor {
	struct weft__op op; /* the multishot accept (WEFT__OP_ACCEPT_MULTI) */
	struct weft__remote later;
	struct weft__acceptor *next; /* the loop's list (ending ones too, until freed) */
	struct weft_loop *loop;
	struct weft__waitq waiters; /* fibers in weft_accept, longest first */
	struct queued *q;	    /* ring of accepted connections no fiber took yet */
	unsigned qhead, qlen, qcap;
	int fd;
	uint32_t arms;
	bool armed;	    /* op in the kernel */
	bool uncounted;	    /* armed, nobody waits: taken off the loop's inflight */
	bool stopping;	    /* its cancel was sent */
	bool detached;	    /* off the loop's list: it ends, and is freed at its end */
	bool later_pending; /* `later` is on the loop's inbox */
	bool want_stop;	    /* the queue reached its bound while CQEs were dispatched */
	bool want_arm;	    /* the kernel ended it and fibers still wait */
};

/* A fiber's wait in weft_accept. */
struct acc_wait {
	struct weft__waiter w;
	int flags;  /* of the accept that made the fd it was handed */
	bool plain; /* the kernel refused multishot accept: do a plain one */
};

static struct weft__acceptor *find(struct weft_loop *l, int fd)
{
	struct weft__acceptor *a = l->acceptors;

	while (a && (a->fd != fd || a->detached))
		a = a->next;
	return a;
}

/*
 * Keep the loop's inflight true: the backend counts the armed op as one;
 * while nobody waits for it (and it is not being ended) it is taken off.
 */
static void recount(struct weft__acceptor *a)
{
	bool off = a->armed && !a->detached && weft__waitq_empty(&a->waiters);

	if (off == a->uncounted)
		return;
	if (off)
		a->loop->inflight--;
	else
		a->loop->inflight++;
	a->uncounted = off;
}

static void on_cqe(struct weft__op *op, int res, uint32_t flags);

static void arm(struct weft__acceptor *a, int flags)
{
	struct weft_loop *l = a->loop;

	weft__op_init(&a->op, WEFT__OP_ACCEPT_MULTI, a->fd, 0, 0, 0, (uint32_t)flags);
	a->op.state = WEFT__OP_ARMED;
	a->op.oflags = 0; /* not on the fd's list: weft_close ends it here, not by cancel_fd */
	a->op.fiber = NULL;
	a->op.deadline = WEFT_FOREVER;
	a->op.complete = on_cqe;
	a->armed = true;
	a->stopping = false;
	if (a->arms++ > 0)
		l->stats.multishot_rearms++;
	l->be->submit(l, &a->op);
	recount(a);
}

static void stop(struct weft__acceptor *a)
{
	if (!a->armed || a->stopping)
		return;
	a->stopping = true;
	a->loop->be->cancel(a->loop, &a->op);
}

static struct weft__acceptor *first_live(struct weft_loop *l)
{
	struct weft__acceptor *a = l->acceptors;

	while (a && a->detached)
		a = a->next;
	return a;
}

static void free_acceptor(struct weft__acceptor *a)
{
	struct weft__acceptor **p = &a->loop->acceptors;

	while (*p != a)
		p = &(*p)->next;
	*p = a->next;
	free(a->q);
	free(a);
}

/* After the tick that dispatched the CQEs: what they decided. */
static void run_later(struct weft_loop *l, struct weft__remote *r)
{
	struct weft__acceptor *a = weft__container_of(r, struct weft__acceptor, later);

	(void)l;
	a->later_pending = false;
	if (a->detached) {
		if (!a->armed)
			free_acceptor(a);
		return;
	}
	if (a->want_stop && a->qlen >= WEFT__ACCEPT_QUEUE)
		stop(a);
	a->want_stop = false;
	if (a->want_arm && !a->armed && !weft__waitq_empty(&a->waiters))
		arm(a, (int)a->op.op_flags);
	a->want_arm = false;
}

static void post_later(struct weft__acceptor *a)
{
	if (a->later_pending)
		return;
	a->later_pending = true;
	a->later.run = run_later;
	weft__inbox_push(a->loop, &a->later);
}

/* Hand @res (an fd or -errno) to the longest waiter. Return: false if none waits. */
static bool hand(struct weft__acceptor *a, int res, bool plain)
{
	struct weft__waiter *w = weft__waitq_pop(&a->waiters);

	if (!w)
		return false;
	struct acc_wait *aw = weft__container_of(w, struct acc_wait, w);

	aw->flags = (int)a->op.op_flags;
	aw->plain = plain;
	recount(a);
	weft__waiter_wake(w, res);
	return true;
}

static void enqueue(struct weft__acceptor *a, int fd)
{
	if (a->qlen == a->qcap) {
		unsigned cap = a->qcap ? a->qcap * 2 : 16;
		struct queued *q = malloc(cap * sizeof(*q));

		if (!q) {
			close(fd); /* out of memory: the peer sees its connection closed */
			return;
		}
		for (unsigned i = 0; i < a->qlen; i++)
			q[i] = a->q[(a->qhead + i) % a->qcap];
		free(a->q);
		a->q = q;
		a->qcap = cap;
		a->qhead = 0;
	}
	a->q[(a->qhead + a->qlen) % a->qcap] = (struct queued){ fd, (int)a->op.op_flags };
	a->qlen++;
	if (a->qlen >= WEFT__ACCEPT_QUEUE && !a->stopping) {
		a->want_stop = true;
		post_later(a);
	}
}

/* A connection the accept made. */
static void got(struct weft__acceptor *a, int fd)
{
	if (a->detached)
		close(fd); /* the listener was closed: so are its late connections */
	else if (!hand(a, fd, false))
		enqueue(a, fd);
}

/* End @a: close what it queued, end its waits, cancel it; freed at its end. */
static void detach(struct weft__acceptor *a, int err)
{
	a->detached = true;
	for (; a->qlen > 0; a->qlen--, a->qhead = (a->qhead + 1) % a->qcap)
		close(a->q[a->qhead].fd);
	while (hand(a, err, false))
		;
	recount(a);
	stop(a);
}

/* Whether @fd is a socket that listens (a kernel's -EINVAL then means: no multishot accept). */
static bool listening(int fd)
{
	int on = 0;
	socklen_t n = sizeof(on);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &n) == 0 && on;
}

/* The kernel ended the accept with @res < 0 (not a cancel of ours). */
static void ended_with(struct weft__acceptor *a, int res)
{
	if (res == -EINVAL && listening(a->fd)) {
		/* A kernel without IORING_ACCEPT_MULTISHOT: plain accepts from now on. */
		a->loop->ops &= ~((uint64_t)1 << WEFT__OP_ACCEPT_MULTI);
		while (hand(a, 0, true))
			;
		detach(a, -ECANCELED);
	} else if (res == -EBADF || res == -ENOTSOCK || res == -EINVAL || res == -EOPNOTSUPP) {
		detach(a, res); /* not a listener: every waiter hears why */
	} else {
		hand(a, res, false); /* -EMFILE and the like: one accept's error */
	}
}

static void on_cqe(struct weft__op *op, int res, uint32_t flags)
{
	struct weft__acceptor *a = weft__container_of(op, struct weft__acceptor, op);

	if (flags & IORING_CQE_F_MORE) {
		if (res >= 0)
			got(a, res);
		return;
	}
	op->state = WEFT__OP_DONE;
	a->armed = false;
	a->stopping = false;
	recount(a);
	if (res >= 0)
		got(a, res);
	else if (res != -ECANCELED && !a->detached)
		ended_with(a, res);
	if (a->detached) {
		if (!a->later_pending)
			free_acceptor(a);
		return;
	}
	if (!weft__waitq_empty(&a->waiters)) {
		a->want_arm = true;
		post_later(a);
	}
}

/* withdraw of a fiber's wait: off the queue unless it was handed something. */
static bool withdraw(struct weft__waiter *w)
{
	if (w->done)
		return false;
	weft__list_del(&w->link);
	recount(w->ctx);
	return true;
}

/* Give @fd the caller's flags and address. Return: @fd, or -errno (then closed). */
static int finish(int fd, int got_flags, int want, struct sockaddr *addr, socklen_t *len)
{
	int diff = got_flags ^ want;

	if ((diff & SOCK_CLOEXEC) && fcntl(fd, F_SETFD, (want & SOCK_CLOEXEC) ? FD_CLOEXEC : 0) < 0)
		goto fail;
	if (diff & SOCK_NONBLOCK) {
		int fl = fcntl(fd, F_GETFL);

		if (fl < 0 ||
		    fcntl(fd, F_SETFL,
			  (want & SOCK_NONBLOCK) ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
			goto fail;
	}
	/* A peer that reset before the accept has no name any more: an empty one. */
	if (addr && getpeername(fd, addr, len) < 0)
		*len = 0;
	return fd;
fail:;
	int rc = -errno;

	close(fd);
	return rc;
}

static struct weft__acceptor *create(struct weft_loop *l, int fd)
{
	struct weft__acceptor *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->loop = l;
	a->fd = fd;
	a->next = l->acceptors;
	l->acceptors = a;
	return a;
}

int weft__accept_multi(struct weft_loop *l, int fd, struct sockaddr *addr, socklen_t *len,
		       int flags)
{
	struct weft_fiber *self = l->cur;
	struct weft__acceptor *a = find(l, fd);

	if (self->cancelled)
		return -ECANCELED;
	if (self->deadline != WEFT_FOREVER && l->be->now(l) >= self->deadline)
		return -ETIMEDOUT;
	if (!a && !(a = create(l, fd)))
		return WEFT__ACCEPT_PLAIN; /* out of memory: the plain accept needs none */
	if (a->qlen > 0) {
		struct queued c = a->q[a->qhead];

		a->qhead = (a->qhead + 1) % a->qcap;
		a->qlen--;
		return finish(c.fd, c.flags, flags, addr, len);
	}
	if (!a->armed)
		arm(a, flags);

	struct acc_wait aw = { .flags = 0 };

	weft__waiter_init(&aw.w, WEFT__WAIT_EARLY);
	aw.w.ctx = a;
	aw.w.withdraw = withdraw;
	weft__waitq_push(&a->waiters, &aw.w);
	recount(a);

	int rc = weft__waiter_wait(&aw.w); /* from here on, @a may be gone */

	if (aw.plain)
		return WEFT__ACCEPT_PLAIN;
	return rc < 0 ? rc : finish(rc, aw.flags, flags, addr, len);
}

void weft__accept_close(struct weft_loop *l, int fd)
{
	struct weft__acceptor *a = find(l, fd);

	if (a) {
		detach(a, -ECANCELED);
		if (!a->armed && !a->later_pending)
			free_acceptor(a);
	}
}

void weft__accept_shutdown(struct weft_loop *l)
{
	struct weft__acceptor *a;

	while ((a = first_live(l)) != NULL)
		weft__accept_close(l, a->fd);
}

void weft__accept_fini(struct weft_loop *l)
{
	/*
	 * Normally none is left: shutdown ended them and the last run reaped
	 * their ends. One the kernel never answered is only a number to it
	 * (no address to write): the ring's teardown ends it.
	 */
	while (l->acceptors) {
		struct weft__acceptor *a = l->acceptors;

		for (; a->qlen > 0; a->qlen--, a->qhead = (a->qhead + 1) % a->qcap)
			close(a->q[a->qhead].fd);
		free_acceptor(a);
	}
}
