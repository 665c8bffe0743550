/* SPDX-License-Identifier: MIT */
/*
 * Channels: a ring buffer of fixed-size elements and two wait queues. An
 * element goes straight from a sender's stack to a parked receiver's (or
 * the other way at capacity 0), so a rendezvous copies once. Receivers only
 * wait while the buffer is empty and senders only while it is full, so at
 * most one of the two queues is ever non-empty.
 *
 * A plain channel belongs to the first thread that uses it (-EXDEV
 * elsewhere) and takes no lock. A shared channel (weft_chan_create_shared)
 * takes a mutex around the same logic, and its waiters are woken on their
 * own loops: a completion under the lock only marks the waiter done and
 * queues it; once the lock is dropped, a waiter of this loop is woken
 * directly and one of another loop by a post to that loop (the waiter's
 * record carries the post). A waiter whose wait ends early (deadline,
 * cancel) takes itself off the queue under the lock, unless it was
 * completed first: then the element went through, and it waits for the
 * wake that is on its way before its record (on its stack) goes.
 */
#include "wait.h"
#include "fiber.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* A shared channel's scope when anything but the loops of one pool may use it. */
static const char mixed_scope;
#define MIXED ((const void *)&mixed_scope)

struct weft_chan {
	size_t cap;
	size_t esize;
	size_t head; /* index of the oldest element */
	size_t len;
	bool closed;
	bool shared;
	const void *_Atomic home;   /* a plain channel's thread (weft__bind_thread) */
	const void *_Atomic scope;  /* a shared channel's users: one pool, or MIXED */
	pthread_mutex_t mu;	    /* a shared channel's lock */
	struct weft__list wakes;    /* shared: waiters completed under the lock, to deliver after */
	struct weft__waitq senders; /* waiter.elem: the element to send */
	struct weft__waitq receivers; /* waiter.elem: where to put one */
	unsigned char buf[];
};

static int chan_new(weft_chan **out, size_t capacity, size_t elem_size, bool shared)
{
	if (!out || elem_size == 0 || (capacity && elem_size > (SIZE_MAX - 256) / capacity))
		return -EINVAL;

	struct weft_chan *ch = calloc(1, sizeof(*ch) + capacity * elem_size);

	if (!ch)
		return -ENOMEM;
	ch->cap = capacity;
	ch->esize = elem_size;
	ch->shared = shared;
	if (shared) {
		struct weft_loop *l = weft__tls_loop;

		pthread_mutex_init(&ch->mu, NULL);
		/* Made by a fiber of a pool: the pool's, until something else uses it. */
		atomic_init(&ch->scope, l && l->pool ? (const void *)l->pool : MIXED);
	}
	weft__list_init(&ch->wakes);
	*out = ch;
	return 0;
}

int weft_chan_create(weft_chan **out, size_t capacity, size_t elem_size)
{
	return chan_new(out, capacity, elem_size, false);
}

int weft_chan_create_shared(weft_chan **out, size_t capacity, size_t elem_size)
{
	return chan_new(out, capacity, elem_size, true);
}

static void *slot(struct weft_chan *ch, size_t i)
{
	return ch->buf + ((ch->head + i) % ch->cap) * ch->esize;
}

/* Complete a popped waiter: at once on a plain channel, after the lock on a shared one. */
static void complete(struct weft_chan *ch, struct weft__waiter *w, int res)
{
	if (!ch->shared) {
		weft__waiter_wake(w, res);
		return;
	}
	weft__waiter_decide(w, res);
	weft__list_add_before(&ch->wakes, &w->link); /* off its queue: the link is free */
}

/* Send without parking. Return: 0, -EPIPE, or -EAGAIN when it would park. */
static int send_now(struct weft_chan *ch, const void *elem)
{
	if (ch->closed)
		return -EPIPE;

	struct weft__waiter *r = weft__waitq_pop(&ch->receivers);

	if (r) {
		memcpy(r->elem, elem, ch->esize);
		complete(ch, r, 0);
		return 0;
	}
	if (ch->len < ch->cap) {
		memcpy(slot(ch, ch->len), elem, ch->esize);
		ch->len++;
		return 0;
	}
	return -EAGAIN;
}

/* Receive without parking. Return: 0, -EPIPE when closed and drained, or -EAGAIN. */
static int recv_now(struct weft_chan *ch, void *elem)
{
	if (ch->len > 0) {
		memcpy(elem, slot(ch, 0), ch->esize);
		ch->head = (ch->head + 1) % ch->cap;
		ch->len--;

		/* A sender waited for this room: its element joins the buffer. */
		struct weft__waiter *s = weft__waitq_pop(&ch->senders);

		if (s) {
			memcpy(slot(ch, ch->len), s->elem, ch->esize);
			ch->len++;
			complete(ch, s, 0);
		}
		return 0;
	}

	struct weft__waiter *s = weft__waitq_pop(&ch->senders);

	if (s) { /* capacity 0: take it from the sender's hands */
		memcpy(elem, s->elem, ch->esize);
		complete(ch, s, 0);
		return 0;
	}
	return ch->closed ? -EPIPE : -EAGAIN;
}

/* ---- shared channels: the lock, and waking after it ---------------------------- */

/* Drop the lock, then deliver what it completed: here directly, elsewhere by a post. */
static void unlock_and_wake(struct weft_chan *ch)
{
	struct weft__list mine;

	weft__list_init(&mine);
	if (!weft__list_empty(&ch->wakes)) {
		mine.next = ch->wakes.next;
		mine.prev = ch->wakes.prev;
		mine.next->prev = &mine;
		mine.prev->next = &mine;
		weft__list_init(&ch->wakes);
	}
	pthread_mutex_unlock(&ch->mu);
	while (!weft__list_empty(&mine)) {
		struct weft__list *n = mine.next;

		weft__list_del(n); /* before the delivery: the waiter may go once woken */
		weft__waiter_deliver(weft__container_of(n, struct weft__waiter, link));
	}
}

/*
 * The shared @ch's scope becomes MIXED (a thread outside its pool used it):
 * the waiters parked on it as the pool's own may now be answered from
 * outside, so they are counted in their pool's `outside`, which keeps the
 * pool from finding itself stuck while they wait. Under the lock.
 */
static void scope_opened(struct weft_chan *ch)
{
	struct weft__waitq *qs[2] = { &ch->senders, &ch->receivers };

	atomic_store_explicit(&ch->scope, MIXED, memory_order_relaxed);
	for (int i = 0; i < 2; i++) {
		struct weft__list *n;

		if (weft__waitq_empty(qs[i]))
			continue;
		weft__list_for_each(n, &qs[i]->head)
		{
			struct weft__waiter *w = weft__container_of(n, struct weft__waiter, link);
			_Atomic uint64_t *outside = w->fiber->loop->outside;

			if ((w->flags & WEFT__WAIT_OWED) || w->outside || !outside)
				continue;
			w->outside = true;
			atomic_fetch_add_explicit(outside, 1, memory_order_acq_rel);
		}
	}
}

/*
 * Whether the shared @ch was made by a fiber of the caller's pool and only
 * that pool's loops have used it: then a wait on it can be answered only by
 * a fiber of the pool, and it does not keep the pool from seeing that it is
 * stuck (weft_pool_run's -EDEADLK). Any other channel, and any use from
 * elsewhere (another loop, a thread outside weft), makes its waits owed
 * from outside, for good: no loop can know who else may still send. Under
 * the lock.
 */
static bool scope_ours(struct weft_chan *ch)
{
	struct weft_loop *l = weft__tls_loop;
	const void *me = l && l->pool ? (const void *)l->pool : MIXED;
	const void *s = atomic_load_explicit(&ch->scope, memory_order_relaxed);

	if (s == me && me != MIXED)
		return true;
	if (s != MIXED)
		scope_opened(ch);
	return false;
}

/* A shared channel's waiter whose wait ended early: off the queue, unless completed first. */
static bool shared_withdraw(struct weft__waiter *w)
{
	struct weft_chan *ch = w->ctx;
	bool done;

	pthread_mutex_lock(&ch->mu);
	done = w->done;
	if (!done)
		weft__list_del(&w->link);
	pthread_mutex_unlock(&ch->mu);
	return !done; /* completed: its element went through, and its wake is on the way */
}

/* Park on @q of the shared @ch (its lock held, released here). */
static int shared_wait(struct weft_chan *ch, struct weft__waitq *q, void *elem, bool ours)
{
	struct weft__waiter w;

	weft__waiter_init(&w, WEFT__WAIT_EARLY | (ours ? 0 : WEFT__WAIT_OWED));
	w.elem = elem;
	w.ctx = ch;
	w.withdraw = shared_withdraw;
	weft__waitq_push(q, &w);
	unlock_and_wake(ch);

	int rc = weft__waiter_wait(&w);

	/* Set under the lock before it was completed or withdrawn, both of which it saw. */
	if (w.outside)
		atomic_fetch_sub_explicit(w.fiber->loop->outside, 1, memory_order_acq_rel);
	return rc;
}

/* ---- the calls ------------------------------------------------------------------ */

/* The checks of a plain channel's calls: 0, or -EXDEV from another thread. */
static int plain_check(struct weft_chan *ch)
{
	return weft__bind_thread(&ch->home);
}

/*
 * One send (@send) or receive of @elem; with @park, wait while it cannot
 * be done now (the blocking calls), else -EAGAIN (the try_ calls).
 */
static inline int transfer(struct weft_chan *ch, void *elem, bool send, bool park)
{
	struct weft__waitq *q;
	struct weft_fiber *self;
	int rc;

	if (!ch || !elem)
		return -EINVAL;
	if (park && (rc = weft__fiber_check(&self)) < 0)
		return rc;
	if (!ch->shared && (rc = plain_check(ch)) < 0)
		return rc;
	q = send ? &ch->senders : &ch->receivers;

	bool ours = false;

	if (ch->shared) {
		pthread_mutex_lock(&ch->mu);
		ours = scope_ours(ch);
	}
	rc = send ? send_now(ch, elem) : recv_now(ch, elem);
	if (rc != -EAGAIN || !park) {
		if (ch->shared)
			unlock_and_wake(ch);
		return rc;
	}
	if (ch->shared)
		return shared_wait(ch, q, elem, ours); /* drops the lock */

	struct weft__waiter w;

	weft__waiter_init(&w, WEFT__WAIT_EARLY);
	w.elem = elem;
	return weft__waitq_wait(q, &w);
}

int weft_chan_send(weft_chan *ch, const void *elem)
{
	return transfer(ch, (void *)(uintptr_t)elem, true, true);
}

int weft_chan_recv(weft_chan *ch, void *elem)
{
	return transfer(ch, elem, false, true);
}

int weft_chan_try_send(weft_chan *ch, const void *elem)
{
	return transfer(ch, (void *)(uintptr_t)elem, true, false);
}

int weft_chan_try_recv(weft_chan *ch, void *elem)
{
	return transfer(ch, elem, false, false);
}

size_t weft_chan_len(const weft_chan *ch)
{
	size_t len;

	if (!ch)
		return 0;
	if (!ch->shared)
		return ch->len;

	struct weft_chan *m = (struct weft_chan *)(uintptr_t)ch;

	pthread_mutex_lock(&m->mu);
	len = m->len;
	pthread_mutex_unlock(&m->mu);
	return len;
}

void weft_chan_close(weft_chan *ch)
{
	struct weft__waiter *w;

	if (!ch)
		return;
	if (ch->shared) {
		pthread_mutex_lock(&ch->mu);
		(void)scope_ours(ch);
	} else if (plain_check(ch) < 0) {
		return; /* another thread's channel: not ours to close */
	}
	if (!ch->closed) {
		ch->closed = true;
		while ((w = weft__waitq_pop(&ch->senders)))
			complete(ch, w, -EPIPE);
		while ((w = weft__waitq_pop(&ch->receivers)))
			complete(ch, w, -EPIPE);
	}
	if (ch->shared)
		unlock_and_wake(ch);
}

void weft_chan_destroy(weft_chan *ch)
{
	if (!ch)
		return;
	if (!weft__waitq_empty(&ch->senders) || !weft__waitq_empty(&ch->receivers))
		WEFT__BUG(weft_self(), "weft_chan_destroy with fibers parked on the channel");
	if (ch->shared)
		pthread_mutex_destroy(&ch->mu);
	free(ch);
}
