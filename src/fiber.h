/* SPDX-License-Identifier: MIT */
/*
 * Fibers (fiber.c): spawn, the switch, park and wake, the deadlines of
 * parked fibers, release. Knows nothing of what a fiber waits for (that is
 * the wait record's business), of operations or of pools.
 */
#ifndef WEFT_FIBER_H
#define WEFT_FIBER_H

#include "types.h"

#pragma GCC visibility push(hidden)

void weft__fiber_schedule(struct weft_loop *l, struct weft_fiber *self);

static inline void weft__runq_push(struct weft_loop *l, struct weft_fiber *f)
{
	f->next = NULL;
	if (l->runq_tail)
		l->runq_tail->next = f;
	else
		l->runq_head = f;
	l->runq_tail = f;
	l->runq_len++;
}

/* Make a parked fiber ready; park returns @res to it. No-op for any other state. */
static inline void weft__fiber_wake(struct weft_fiber *f, int res)
{
	if (f->state != WEFT__FIBER_PARKED)
		return;
	if (f->timer.index)
		weft__heap_remove(&f->loop->timers, &f->timer);
	f->wake_res = res;
	f->state = WEFT__FIBER_READY;
	weft__runq_push(f->loop, f);
}

/* A wait that a cancel or the deadline ends with -ECANCELED / -ETIMEDOUT. */
extern struct weft__wait weft__wait_event;
/* A wait that only its waker ends (a cancel only marks the fiber). */
extern struct weft__wait weft__wait_handoff;

/*
 * Park @self on @w until a wake. With a @deadline, the timer heap wakes it
 * with -ETIMEDOUT then (its entry was reserved at spawn). Returns the
 * waker's result. Inline: it is on every operation's path.
 */
static inline int weft__fiber_park(struct weft_loop *l, struct weft_fiber *self,
				   struct weft__wait *w, int64_t deadline)
{
	assert(self == l->cur && self->state == WEFT__FIBER_RUNNING);
	if (deadline != WEFT_FOREVER)
		weft__heap_add(&l->timers, &self->timer, deadline);
	self->state = WEFT__FIBER_PARKED;
	self->wait = w;
	self->wake_res = 0;
	weft__fiber_schedule(l, self);
	self->wait = NULL;
	return self->wake_res;
}

/*
 * The checks every blocking call makes first: 0 with *@self, or -EPERM
 * (no fiber), -ECANCELED, -ETIMEDOUT (its deadline has passed).
 */
static inline int weft__fiber_check(struct weft_fiber **self)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *f = l ? l->cur : NULL;

	if (!f)
		return -EPERM;
	if (f->cancelled)
		return -ECANCELED;
	if (f->deadline != WEFT_FOREVER && l->be->now(l) >= f->deadline)
		return -ETIMEDOUT;
	*self = f;
	return 0;
}

/*
 * Spawn a fiber running @fn. With @blk, @blk_len bytes are copied to the
 * top of the new fiber's stack and @fn gets that copy as its argument (it
 * lives as long as the fiber runs); *@blk_out points at it.
 * Return: 0; -ECANCELED (the loop is being destroyed), -EAGAIN (max_fibers),
 * -ENOMEM.
 */
int weft__fiber_spawn(struct weft_loop *l, weft_fn fn, void *arg, bool detached,
		      struct weft_fiber **out);
int weft__fiber_spawn_blk(struct weft_loop *l, weft_fn fn, const void *blk, size_t blk_len,
			  bool detached, struct weft_fiber **out, void **blk_out);
/*
 * Spawn with weft_spawn_opts: a stack from pool @pool (weft__stack_pool_for)
 * and @name (NULL: none). Return: as weft__fiber_spawn.
 */
int weft__fiber_spawn_opts(struct weft_loop *l, weft_fn fn, void *arg, bool detached, unsigned pool,
			   const char *name, struct weft_fiber **out);
/* Copy @name into @f's name, truncated to 31 bytes. */
void weft__fiber_set_name(struct weft_fiber *f, const char *name);
/* The scheduler's half: run the fibers ready now, as one round. */
void weft__fiber_run_round(struct weft_loop *l);
/* Mark @f cancelled and run its wait's cancel hook (on @f's loop's thread). */
void weft__fiber_cancel(struct weft_fiber *f);
/* Give a returned fiber's stack back (on its loop's thread). */
void weft__fiber_release(struct weft_loop *l, struct weft_fiber *f);

/* Wake every fiber whose deadline is due at @now (-ETIMEDOUT). */
void weft__fiber_timers_fire(struct weft_loop *l, int64_t now);
/* The nearest deadline of a parked fiber, or WEFT_FOREVER. */
static inline int64_t weft__fiber_timers_next(const struct weft_loop *l)
{
	return weft__heap_next(&l->timers);
}

#pragma GCC visibility pop

#endif
