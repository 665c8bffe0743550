/* SPDX-License-Identifier: MIT */
/*
 * The one wait primitive (wait.c). A fiber parks on a waiter record until
 * a waker completes it, here or on any other thread; what may end the wait
 * early (a cancel, the fiber's deadline) is said by its flags, and what an
 * early end means by its withdraw rule:
 *
 *   withdraw() true:  the wait was taken back; it fails -ECANCELED or
 *                     -ETIMEDOUT (a channel element not sent, a lock not
 *                     taken);
 *   withdraw() false: the completion is already on its way (decided by the
 *                     waker); the fiber waits for it, uninterrupted, so the
 *                     record on its stack outlives every use of it, and the
 *                     wait succeeds (w->early says what ended it early).
 *
 * Join, group wait, gather, channels (plain and shared), mutex, condition,
 * offload and cross-loop spawn all wait through it; only the op await
 * (op.c) parks on its op record directly, since the backend always reports
 * the op's own end.
 */
#ifndef WEFT_WAIT_H
#define WEFT_WAIT_H

#include "types.h"

#pragma GCC visibility push(hidden)

/* weft__waiter.flags */
#define WEFT__WAIT_CANCEL (1u << 0)   /* weft_cancel ends it early (-ECANCELED) */
#define WEFT__WAIT_DEADLINE (1u << 1) /* the fiber's deadline ends it early (-ETIMEDOUT) */
#define WEFT__WAIT_EARLY (WEFT__WAIT_CANCEL | WEFT__WAIT_DEADLINE)
/*
 * Another thread owes the answer (a worker, another loop answering a
 * request): while it waits, the loop is not stuck. The loop's owed count
 * is kept here and nowhere else.
 */
#define WEFT__WAIT_OWED (1u << 2)
/*
 * After an early end that withdraw() refused, the fiber waits for a
 * completion that is certain to come (decided already), so from then on it
 * counts as owed too; except with this flag, for a wait that goes on for
 * the fibers of its own loop (a task group waiting for its cancelled
 * members): those count as stuck, and the loop can say -EDEADLK.
 */
#define WEFT__WAIT_PEERS (1u << 3)

/* Make @w a wait of the running fiber, ending as @flags say; no withdraw, no on_cancel. */
void weft__waiter_init(struct weft__waiter *w, unsigned flags);
/*
 * Park until @w is completed, or ended early and withdrawn. Return: the
 * waker's result; or -ECANCELED / -ETIMEDOUT when withdrawn; or, before
 * parking, -ECANCELED / -ETIMEDOUT if the fiber already is (flags allowing).
 */
int weft__waiter_wait(struct weft__waiter *w);
/* Any thread, once: complete @w with @res and wake its fiber (by a post from elsewhere). */
void weft__waiter_wake(struct weft__waiter *w, int res);

/* For owners behind a lock: decide under it (withdraw reads done under it too)... */
static inline void weft__waiter_decide(struct weft__waiter *w, int res)
{
	w->res = res;
	w->done = true;
}

/* ...and deliver after it, once, from any thread. */
void weft__waiter_deliver(struct weft__waiter *w);

/* A FIFO queue of waiters of one thread (mutex, condition, plain channel). */
struct weft__waitq {
	struct weft__list head; /* initialised lazily: zero means empty */
};

bool weft__waitq_empty(const struct weft__waitq *q);
struct weft__waiter *weft__waitq_pop(struct weft__waitq *q);
void weft__waitq_push(struct weft__waitq *q, struct weft__waiter *w);
/* withdraw for a waiter of a waitq: off the queue unless completed. */
bool weft__waitq_withdraw(struct weft__waiter *w);
/* Queue @w (made by weft__waiter_init) on @q and wait; withdrawn by weft__waitq_withdraw. */
int weft__waitq_wait(struct weft__waitq *q, struct weft__waiter *w);

#pragma GCC visibility pop

#endif
