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
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* A waiter of a shared channel. */
struct xwaiter {
	struct weft__waiter w;	    /* done and res are under the channel's lock */
	bool woken;		    /* on the waiter's loop: the completer's wake arrived */
	struct weft__remote remote; /* the wake, posted to the waiter's loop */
	struct xwaiter *next_wake;  /* the completer's list, under the lock */
};

struct weft_chan {
	size_t cap;
	size_t esize;
	size_t head; /* index of the oldest element */
	size_t len;
	bool closed;
	bool shared;
	const void *_Atomic home;     /* a plain channel's thread (weft__bind_thread) */
	pthread_mutex_t mu;	      /* a shared channel's lock */
	struct xwaiter *wakes;	      /* shared: completed under the lock, to wake after it */
	struct weft__waitq senders;   /* waiter.elem: the element to send */
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
	if (shared)
		pthread_mutex_init(&ch->mu, NULL);
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
		weft__waitq_complete(w, res);
		return;
	}

	struct xwaiter *x = weft__container_of(w, struct xwaiter, w);

	w->res = res;
	w->done = true;
	x->next_wake = ch->wakes;
	ch->wakes = x;
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

static void xwaiter_woken(struct weft_loop *l, struct weft__remote *r)
{
	struct xwaiter *x = weft__container_of(r, struct xwaiter, remote);

	(void)l;
	x->woken = true;
	weft__fiber_wake(x->w.fiber, 0);
}

/* Drop the lock, then wake what it completed: here directly, elsewhere by a post. */
static void unlock_and_wake(struct weft_chan *ch)
{
	struct xwaiter *x = ch->wakes;
	struct weft_loop *l = weft__tls_loop;

	ch->wakes = NULL;
	pthread_mutex_unlock(&ch->mu);
	while (x) {
		struct xwaiter *next = x->next_wake; /* x may go once woken */
		struct weft_loop *to = x->w.fiber->loop;

		if (to == l) {
			x->woken = true;
			weft__fiber_wake(x->w.fiber, 0);
		} else {
			x->remote.run = xwaiter_woken;
			weft__loop_post_remote(to, &x->remote);
		}
		x = next;
	}
}

/*
 * Park on @q of the shared @ch (its lock held, released here) until a
 * completer wakes us, or the deadline or a cancel ends the wait first.
 */
static int shared_wait(struct weft_chan *ch, struct weft__waitq *q, struct xwaiter *x)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *self = l->cur;
	int rc = 0;

	x->w.fiber = self;
	x->w.done = false;
	x->w.res = 0;
	x->woken = false;
	if (!q->head.next)
		weft__list_init(&q->head);
	weft__list_add_before(&q->head, &x->w.link);
	unlock_and_wake(ch);
	l->remote_expected++; /* the wake may come from another thread */
	while (!x->woken) {
		if (rc == 0) {
			rc = weft__fiber_park(l, self, &weft__wait_event, self->deadline);
			continue;
		}
		/* The wait ended early: off the queue, unless completed first. */
		pthread_mutex_lock(&ch->mu);

		bool done = x->w.done;

		if (!done)
			weft__list_del(&x->w.link);
		pthread_mutex_unlock(&ch->mu);
		if (!done) {
			l->remote_expected--;
			return rc;
		}
		while (!x->woken) /* its wake is on the way: the record must outlive it */
			weft__fiber_park(l, self, &weft__wait_handoff, WEFT_FOREVER);
	}
	l->remote_expected--;
	return x->w.res;
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
	if (park && (rc = weft__op_check(&self)) < 0)
		return rc;
	if (!ch->shared && (rc = plain_check(ch)) < 0)
		return rc;
	q = send ? &ch->senders : &ch->receivers;
	if (ch->shared)
		pthread_mutex_lock(&ch->mu);
	rc = send ? send_now(ch, elem) : recv_now(ch, elem);
	if (rc != -EAGAIN || !park) {
		if (ch->shared)
			unlock_and_wake(ch);
		return rc;
	}
	if (ch->shared) {
		struct xwaiter x = { .w.elem = elem };

		return shared_wait(ch, q, &x); /* drops the lock */
	}

	struct weft__waiter w = { .elem = elem };

	return weft__waitq_wait(q, &w, false);
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
	if (ch->shared)
		pthread_mutex_lock(&ch->mu);
	else if (plain_check(ch) < 0)
		return; /* another thread's channel: not ours to close */
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
