/* SPDX-License-Identifier: MIT */
/*
 * Everything that crosses threads (remote.c): posts (weft_loop_post) and
 * the running of a loop's inbox; spawn, join and cancel of fibers across
 * the loops of a pool; and a pool's quiescence, which tells every loop of
 * a running pool when none of them can make progress any more.
 */
#ifndef WEFT_REMOTE_H
#define WEFT_REMOTE_H

#include "types.h"

#pragma GCC visibility push(hidden)

/*
 * A pool's quiescence while weft_pool_run runs it. A loop is idle when
 * nothing of its own can happen (no fiber ready, nothing in the kernel, no
 * timer, no wait another thread owes an answer): only a record from another
 * thread can wake it. The pool is done when every loop is idle and no
 * record is on its way to any of them (flight, counted from the push to the
 * end of its run) and no fiber waits on a shared channel that a thread
 * outside the pool has used since it parked (outside): its verdict is 0 if no fiber is left, else
 * -EDEADLK (every fiber left waits on another fiber of the pool).
 */
struct weft__quiet {
	_Atomic unsigned busy;	  /* loops not idle */
	_Atomic unsigned stuck;	  /* idle loops with fibers left */
	_Atomic uint64_t flight;  /* records on their way to the pool's loops */
	_Atomic uint64_t outside; /* waits on shared channels that a thread outside may answer */
	_Atomic bool done;
	_Atomic int verdict;
	struct weft_loop **loops; /* to wake them all when done */
	unsigned n;
};

/* Start a pool run: every loop busy. */
void weft__quiet_start(struct weft__quiet *q);

/*
 * The loop's thread, with nothing of its own left to do: may run() return?
 * A plain loop returns (0, or -EDEADLK with fibers left); a loop in a
 * running pool counts itself idle and returns once the pool is done, with
 * the pool's verdict in *@rc.
 */
bool weft__remote_settled(struct weft_loop *l, int *rc);

/* weft_loop_post without the bound (a pool's cancel must not be refused). */
int weft__remote_post(struct weft_loop *l, weft_fn fn, void *arg);

/* Whether the pool @l runs in has found itself quiet; its verdict in *@rc. */
bool weft__remote_done(struct weft_loop *l, int *rc);

/* The loop's thread: run every record of the inbox, oldest first. */
void weft__remote_run_inbox(struct weft_loop *l);

/*
 * Shut the inbox (weft_loop_destroy, a pool's shutdown): later posts fail
 * -ESHUTDOWN; posts that got in still run.
 */
void weft__remote_close(struct weft_loop *l);

/* Whether @a and @b are loops of one pool (either may be NULL). */
static inline bool weft__remote_same_pool(const struct weft_loop *a, const struct weft_loop *b)
{
	return a && b && a->pool && a->pool == b->pool;
}

/* A joinable fiber on @to, another loop of the caller's pool (the caller waits). */
int weft__remote_spawn(struct weft_loop *to, weft_fn fn, void *arg, struct weft_fiber **out);
/* Cancel @f of another loop of the caller's pool, on its loop. Return: 0 or -ENOMEM. */
int weft__remote_cancel(struct weft_fiber *f);
/*
 * Join @f, of this loop or another of the pool: one protocol for both.
 * Return: 0 with *@result; -EBUSY, -ECANCELED, -ETIMEDOUT (@f stays joinable).
 */
int weft__remote_join(struct weft_fiber *self, struct weft_fiber *f, int *result);

#pragma GCC visibility pop

#endif
