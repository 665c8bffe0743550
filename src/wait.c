/* SPDX-License-Identifier: MIT */
/*
 * The one wait primitive (see wait.h). A waiter record lives on the waiting
 * fiber's stack. Its waker decides it (done, res) and delivers it: on the
 * waiter's own loop by waking the fiber, from any other thread by a post
 * to that loop carried in the record (remote), after which the waker
 * never touches it again. A deadline or a cancel wakes the fiber early;
 * the owner's withdraw rule then says whether the wait is taken back or
 * must still be waited for, and the fiber waits uninterrupted for a
 * completion already decided. Waits that another thread owes an answer
 * (WEFT__WAIT_OWED) are counted in the loop's owed while they park: the
 * only place that count moves.
 */
#include "wait.h"
#include "fiber.h"
#include "inbox.h"

/* weft_cancel of the waiting fiber. */
static void waiter_cancelled(struct weft_fiber *f, struct weft__wait *wt)
{
	struct weft__waiter *w = weft__container_of(wt, struct weft__waiter, wait);

	if (w->on_cancel)
		w->on_cancel(w); /* passed on; the wait goes on */
	else if (w->flags & WEFT__WAIT_CANCEL)
		weft__fiber_wake(f, -ECANCELED);
}

void weft__waiter_init(struct weft__waiter *w, unsigned flags)
{
	struct weft_loop *l = weft__tls_loop;

	*w = (struct weft__waiter){ .wait.cancel = waiter_cancelled,
				    .fiber = l ? l->cur : NULL,
				    .wake = weft__waiter_wake,
				    .flags = flags };
	weft__list_init(&w->link);
}

/* Whether the fiber is past what the flags let end the wait, before it parks. */
static int ended_already(const struct weft__waiter *w)
{
	const struct weft_fiber *self = w->fiber;

	if ((w->flags & WEFT__WAIT_CANCEL) && !w->on_cancel && self->cancelled)
		return -ECANCELED;
	if ((w->flags & WEFT__WAIT_DEADLINE) && self->deadline != WEFT_FOREVER &&
	    self->loop->be->now(self->loop) >= self->deadline)
		return -ETIMEDOUT;
	return 0;
}

/* The wait ended early with @rc: true if it is over (withdrawn). */
static bool end_early(struct weft__waiter *w, int rc)
{
	w->early = rc;
	w->wait.cancel = NULL; /* from now on only the waker ends it */
	return !w->withdraw || w->withdraw(w);
}

int weft__waiter_wait(struct weft__waiter *w)
{
	struct weft_fiber *self = w->fiber;
	struct weft_loop *l = self->loop;
	int64_t deadline = (w->flags & WEFT__WAIT_DEADLINE) ? self->deadline : WEFT_FOREVER;
	bool counted = false;
	int rc = w->woken ? 0 : ended_already(w);

	if (rc < 0 && end_early(w, rc))
		return rc;
	while (!w->woken) {
		/*
		 * Owed: an answer another thread must send, or a completion
		 * already decided after an early end that could not be withdrawn
		 * (certain to come, whoever sends it).
		 */
		if (!counted && ((w->flags & WEFT__WAIT_OWED) ||
				 (w->early && !(w->flags & WEFT__WAIT_PEERS)))) {
			counted = true;
			l->owed++;
		}
		if (w->early) {
			weft__fiber_park(l, self, &weft__wait_handoff, WEFT_FOREVER);
			continue;
		}
		rc = weft__fiber_park(l, self, &w->wait, deadline);
		if (w->woken)
			break;
		if ((rc == -ETIMEDOUT || rc == -ECANCELED) && end_early(w, rc))
			break;
	}
	if (counted)
		l->owed--;
	return w->woken ? w->res : rc;
}

/* On the waiter's loop: the completion arrived. */
static void delivered(struct weft_loop *l, struct weft__remote *r)
{
	struct weft__waiter *w = weft__container_of(r, struct weft__waiter, remote);

	(void)l;
	w->woken = true;
	weft__fiber_wake(w->fiber, 0);
}

void weft__waiter_deliver(struct weft__waiter *w)
{
	struct weft_loop *to = w->fiber->loop;

	if (to == weft__tls_loop) {
		w->woken = true;
		weft__fiber_wake(w->fiber, 0);
		return;
	}
	w->remote.run = delivered;
	weft__inbox_push(to, &w->remote);
}

void weft__waiter_wake(struct weft__waiter *w, int res)
{
	weft__waiter_decide(w, res);
	weft__waiter_deliver(w);
}

/* ---- queues of waiters ------------------------------------------------------------ */

bool weft__waitq_empty(const struct weft__waitq *q)
{
	return !q->head.next || weft__list_empty(&q->head);
}

struct weft__waiter *weft__waitq_pop(struct weft__waitq *q)
{
	if (weft__waitq_empty(q))
		return NULL;

	struct weft__list *n = q->head.next;

	weft__list_del(n);
	return weft__container_of(n, struct weft__waiter, link);
}

void weft__waitq_push(struct weft__waitq *q, struct weft__waiter *w)
{
	if (!q->head.next)
		weft__list_init(&q->head);
	weft__list_add_before(&q->head, &w->link);
}

bool weft__waitq_withdraw(struct weft__waiter *w)
{
	if (w->done)
		return false;
	weft__list_del(&w->link);
	return true;
}

int weft__waitq_wait(struct weft__waitq *q, struct weft__waiter *w)
{
	w->withdraw = weft__waitq_withdraw;
	weft__waitq_push(q, w);
	return weft__waiter_wait(w);
}
