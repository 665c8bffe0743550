/* SPDX-License-Identifier: MIT */
/*
 * Fiber lifecycle: spawn, the switch, park and wake, join, cancel, yield.
 * A parked fiber waits on a wait record and is resumed by exactly one wake.
 * What it waits for is the wait record's business: weft_cancel calls the
 * record's cancel hook, which either wakes the fiber or asks whatever it
 * waits on to end early (an op parked in the kernel keeps its fiber parked
 * until the backend reports it over, so the stack outlives the kernel's use
 * of it). This file knows nothing of operations, timers' clients or groups;
 * it calls only the timer heap and the stack pool.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

__thread struct weft_loop *weft__tls_loop __attribute__((tls_model("initial-exec")));
__thread char weft__thread_tag __attribute__((tls_model("initial-exec")));

static void wake_cancelled(struct weft_fiber *f, struct weft__wait *w)
{
	(void)w;
	weft__fiber_wake(f, -ECANCELED);
}

struct weft__wait weft__wait_event = { .cancel = wake_cancelled };
struct weft__wait weft__wait_handoff = { .cancel = NULL };

static struct weft_fiber *runq_pop(struct weft_loop *l)
{
	struct weft_fiber *f = l->runq_head;

	if (!f)
		return NULL;
	l->runq_head = f->next;
	if (!l->runq_head)
		l->runq_tail = NULL;
	l->runq_len--;
	return f;
}

void weft__fiber_release(struct weft_loop *l, struct weft_fiber *f)
{
#if WEFT_STACK_CENSUS
	weft__census_record(l, f);
#endif
#ifdef WEFT_TSAN
	weft__tsan_destroy(f->tsan_fiber);
	f->tsan_fiber = NULL;
#endif
	weft__stack_free(&l->stacks, f);
}

/*
 * First code after a switch lands, in whichever context: finish the ASan
 * switch, then free the fiber that returned and switched here.
 */
static void after_switch(struct weft_loop *l, void *fake)
{
	const void *bottom;
	size_t size;

	weft__asan_finish(fake, &bottom, &size);
	if (l->zombie) {
		struct weft_fiber *z = l->zombie;

		l->zombie = NULL;
		weft__fiber_release(l, z);
	}
}

/*
 * Switch from the running context (@from, NULL for the scheduler) to @to
 * (NULL for the scheduler). Returns when something switches back to @from.
 */
static void jump(struct weft_loop *l, struct weft_fiber *from, struct weft_fiber *to)
{
	struct weft__ctx *save = from ? &from->ctx : &l->ctx;
	void **fake = from ? &from->asan_fake : &l->asan_fake;

	if (from) {
		if (!from->guarded) /* a guard page catches the overflow of a guarded one */
			weft__stack_check(&l->stacks, from);
		if (from->state == WEFT__FIBER_DONE)
			fake = NULL; /* its stack is finished: ASan drops the fake stack */
	}
	if (to) {
		to->state = WEFT__FIBER_RUNNING;
		weft__asan_start(fake, to->stack_lo, (size_t)(to->stack_top - to->stack_lo));
		l->cur = to;
		l->stats.switches++;
		weft__tsan_switch(to->tsan_fiber);
		weft__ctx_jump(save, &to->ctx);
	} else {
		weft__asan_start(fake, l->sched_stack, l->sched_stack_size);
		l->cur = NULL;
		l->stats.switches++;
		weft__tsan_switch(l->tsan_sched);
		weft__ctx_jump(save, &l->ctx);
	}
	after_switch(l, from ? from->asan_fake : l->asan_fake);
}

/*
 * Leave @self (which has already put itself on the run queue, parked or
 * returned) for the next ready fiber of this round, or for the scheduler.
 */
void weft__fiber_schedule(struct weft_loop *l, struct weft_fiber *self)
{
	struct weft_fiber *next = NULL;

	if (l->round_left > 0 && l->runq_head) {
		next = runq_pop(l);
		l->round_left--;
	} else if (l->runq_head && l->inflight == 0 && l->timers.len == 0 &&
		   !atomic_load_explicit(&l->inbox, memory_order_relaxed)) {
		/*
		 * Nothing for the kernel, no timer and nothing posted: the tick
		 * would make no system call and find nothing, so start the next
		 * round here, fiber to fiber. (A loop that expects posts, as every
		 * pool loop does, looks at its inbox here instead of in a tick.)
		 */
		next = runq_pop(l);
		l->round_left = l->runq_len;
	}
	if (next == self) {
		self->state = WEFT__FIBER_RUNNING;
		return;
	}
	jump(l, self, next);
}

/* The scheduler's half: run the fibers that are ready now, as one round. */
void weft__fiber_run_round(struct weft_loop *l)
{
	if (!l->runq_head)
		return;
	l->round_left = l->runq_len - 1;
	jump(l, NULL, runq_pop(l));
}

static void fiber_exit(struct weft_loop *l, struct weft_fiber *f, int result)
{
	f->result = result;
	f->state = WEFT__FIBER_DONE;
	l->live--;
	l->stats.fibers = l->live;
	weft__list_del(&f->all);
	if (f->joiner)
		weft__fiber_wake(f->joiner, 0);
	if (!f->detached && l->pool) {
		/* A joiner on another loop of the pool reads the result once xdone is set. */
		atomic_store_explicit(&f->xdone, true, memory_order_seq_cst);

		struct weft_fiber *w =
		    atomic_exchange_explicit(&f->xwaiter, NULL, memory_order_seq_cst);

		if (w)
			weft__loop_post_remote(w->loop, &f->xremote);
	}
	if (f->detached)
		l->zombie = f; /* freed by the next context, off this stack */
	weft__fiber_schedule(l, f);
	WEFT__BUG(f, "a fiber that returned was resumed");
}

static void fiber_entry(void *arg)
{
	struct weft_fiber *f = arg;
	struct weft_loop *l = f->loop;

	after_switch(l, NULL);
	fiber_exit(l, f, f->fn(f->arg));
}

int weft__fiber_spawn_blk(struct weft_loop *l, weft_fn fn, const void *blk, size_t blk_len,
			  bool detached, struct weft_fiber **out, void **blk_out)
{
	if (l->destroying)
		return -ECANCELED;
	if (l->live >= l->cfg.max_fibers)
		return -EAGAIN;
	/* Every fiber may park with a deadline: its heap entry is reserved now. */
	if (weft__heap_reserve(&l->timers, l->live + 1) < 0)
		return -ENOMEM;

	struct weft_fiber *f = weft__stack_alloc(&l->stacks);

	if (!f)
		return -ENOMEM;

	char *top = f->stack_top;
	void *arg = (void *)blk;

	if (blk_len) {
		/* The block rides at the top of the new stack, 16-byte aligned. */
		top = (char *)(((uintptr_t)top - blk_len) & ~(uintptr_t)15);
		memcpy(top, blk, blk_len);
		arg = top;
		if (blk_out)
			*blk_out = top;
	}
#ifdef WEFT_TSAN
	f->tsan_fiber = weft__tsan_create(); /* TSan counts these as threads: one per live fiber */
#endif
	f->loop = l;
	f->fn = fn;
	f->arg = arg;
	f->id = ++l->next_id;
	f->detached = detached;
	f->deadline = WEFT_FOREVER;
	if (!detached) {
		f->xwoken = false;
		atomic_store_explicit(&f->xdone, false, memory_order_relaxed);
		atomic_store_explicit(&f->xjoiner, NULL, memory_order_relaxed);
		atomic_store_explicit(&f->xwaiter, NULL, memory_order_relaxed);
	}
	weft__ctx_make(&f->ctx, f->stack_lo + 16, top, fiber_entry, f);

	weft__list_add_before(&l->all, &f->all);
	l->live++;
	l->stats.fibers = l->live;
	l->stats.spawned++;
	if (l->live > l->stats.fibers_peak)
		l->stats.fibers_peak = l->live;

	f->state = WEFT__FIBER_READY;
	weft__runq_push(l, f);
	if (out)
		*out = f;
	return 0;
}

int weft__fiber_spawn(struct weft_loop *l, weft_fn fn, void *arg, bool detached,
		      struct weft_fiber **out)
{
	return weft__fiber_spawn_blk(l, fn, arg, 0, detached, out, NULL);
}

/* ---- across the loops of a pool ---------------------------------------------------- */

/*
 * A fiber belongs to its loop: only that loop's thread touches its state.
 * Another loop of the same pool reaches it by posting a request there:
 *   - spawn (joinable): the request is spawned there and the handle sent
 *     back; the spawner waits for it (one round trip);
 *   - cancel: the request carries the fiber's id, so a cancel that arrives
 *     after the fiber was joined and its block reused does nothing;
 *   - join: the joiner claims the fiber (xjoiner), reads the result once
 *     xdone is set, and posts the fiber back home to be freed. Until then
 *     it parks with xwaiter set; the fiber's exit takes xwaiter and posts
 *     xremote to the joiner's loop to wake it. A joiner whose wait ends
 *     early (deadline, cancel) takes xwaiter back; if the exit took it
 *     first, the wake is on its way and the joiner waits for it, so that
 *     xremote never reaches a fiber that has moved on.
 */

/* Whether @a and @b are loops of one pool (either may be NULL). */
static bool same_pool(const struct weft_loop *a, const struct weft_loop *b)
{
	return a && b && a->pool && a->pool == b->pool;
}

struct xspawn {
	struct weft__remote req, reply;
	weft_fn fn;
	void *arg;
	struct weft_fiber *fiber; /* the new fiber, set there */
	int rc;
	bool done;
	struct weft_loop *home;
	struct weft_fiber *waiter;
};

static void xspawn_reply(struct weft_loop *l, struct weft__remote *r)
{
	struct xspawn *s = weft__container_of(r, struct xspawn, reply);

	(void)l;
	s->done = true;
	weft__fiber_wake(s->waiter, 0);
}

static void xspawn_req(struct weft_loop *l, struct weft__remote *r)
{
	struct xspawn *s = weft__container_of(r, struct xspawn, req);

	weft__pool_busy(l);
	s->rc = weft__fiber_spawn(l, s->fn, s->arg, false, &s->fiber);
	weft__loop_post_remote(s->home, &s->reply);
}

static int xspawn(struct weft_loop *to, weft_fn fn, void *arg, struct weft_fiber **out)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *self = l ? l->cur : NULL;

	if (!self || !same_pool(l, to))
		return -EXDEV;

	struct xspawn s = { .req.run = xspawn_req,
			    .reply.run = xspawn_reply,
			    .fn = fn,
			    .arg = arg,
			    .home = l,
			    .waiter = self };

	weft__loop_post_remote(to, &s.req);
	/* The reply writes into s: only it ends the wait. */
	while (!s.done)
		weft__fiber_park(l, self, &weft__wait_handoff, WEFT_FOREVER);
	if (s.rc == 0)
		*out = s.fiber;
	return s.rc;
}

struct xcancel {
	struct weft__remote r;
	struct weft_fiber *fiber;
	uint32_t id;
};

static void xcancel_run(struct weft_loop *l, struct weft__remote *r)
{
	struct xcancel *c = weft__container_of(r, struct xcancel, r);

	(void)l;
	if (c->fiber->id == c->id)
		weft__fiber_cancel(c->fiber);
	free(c);
}

/* The fiber's exit, seen from the joiner's loop: wake the joiner. */
static void xjoin_woken(struct weft_loop *l, struct weft__remote *r)
{
	struct weft_fiber *f = weft__container_of(r, struct weft_fiber, xremote);
	struct weft_fiber *j = atomic_load_explicit(&f->xjoiner, memory_order_relaxed);

	(void)l;
	f->xwoken = true;
	weft__fiber_wake(j, 0);
}

/* Back on the fiber's own loop, once joined: free it. */
static void xjoin_release(struct weft_loop *l, struct weft__remote *r)
{
	weft__fiber_release(l, weft__container_of(r, struct weft_fiber, xremote));
}

static int xjoin(struct weft_loop *l, struct weft_fiber *self, struct weft_fiber *f, int *result)
{
	struct weft_fiber *prev = NULL;
	int rc = 0;

	if (f->detached)
		return -EINVAL;
	if (!atomic_compare_exchange_strong(&f->xjoiner, &prev, self) && prev != self)
		return -EBUSY;
	if (!atomic_load_explicit(&f->xdone, memory_order_seq_cst)) {
		f->xwoken = false;
		f->xremote.run = xjoin_woken;
		atomic_store_explicit(&f->xwaiter, self, memory_order_seq_cst);
		while (!f->xwoken) {
			if (rc == 0 && !atomic_load_explicit(&f->xdone, memory_order_seq_cst)) {
				rc = self->cancelled ? -ECANCELED
						     : weft__fiber_park(l, self, &weft__wait_event,
									self->deadline);
				continue;
			}
			/* Done, or our wait is over: take xwaiter back unless the exit took it. */
			if (atomic_exchange_explicit(&f->xwaiter, NULL, memory_order_seq_cst))
				break;
			weft__fiber_park(l, self, &weft__wait_handoff, WEFT_FOREVER);
		}
		if (!atomic_load_explicit(&f->xdone, memory_order_acquire)) {
			atomic_store_explicit(&f->xjoiner, NULL, memory_order_release);
			return rc; /* still running; still joinable */
		}
	}
	if (result)
		*result = f->result;
	f->xremote.run = xjoin_release;
	weft__loop_post_remote(f->loop, &f->xremote);
	return 0;
}

int weft_spawn(weft_loop *loop, weft_fn fn, void *arg, weft_fiber **out)
{
	if (!fn)
		return -EINVAL;
	if (!loop)
		loop = weft__tls_loop;
	if (!loop)
		return -EPERM;
	if (WEFT__UNLIKELY(weft__loop_foreign(loop)))
		/* Another thread's loop: a detached fiber goes by post, a joinable one by asking.
		 */
		return out ? xspawn(loop, fn, arg, out) : weft_loop_post(loop, fn, arg);
	return weft__fiber_spawn(loop, fn, arg, out == NULL, out);
}

int weft_go(weft_fn fn, void *arg)
{
	return weft_spawn(NULL, fn, arg, NULL);
}

weft_fiber *weft_self(void)
{
	struct weft_loop *l = weft__tls_loop;

	return l ? l->cur : NULL;
}

int weft_cancelled(void)
{
	struct weft_fiber *f = weft_self();

	return f && f->cancelled;
}

void weft_yield(void)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *self = l ? l->cur : NULL;

	if (!self)
		return;
	self->state = WEFT__FIBER_READY;
	weft__runq_push(l, self);
	weft__fiber_schedule(l, self);
}

int weft_join(weft_fiber *f, int *result)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *self = l ? l->cur : NULL;

	if (!f)
		return -EINVAL;
	if (!self)
		return -EPERM;
	if (f == self)
		return -EDEADLK;
	if (f->loop != l)
		return same_pool(l, f->loop) ? xjoin(l, self, f, result) : -EXDEV;
	if (f->detached || f->state == WEFT__FIBER_FREE)
		return -EINVAL;

	struct weft_fiber *prev = NULL;

	/* One joiner at a time, from this loop or another: the claim says which. */
	if (!atomic_compare_exchange_strong(&f->xjoiner, &prev, self) && prev != self)
		return -EBUSY;
	while (f->state != WEFT__FIBER_DONE) {
		int rc = self->cancelled ? -ECANCELED : 0;

		if (rc == 0) {
			f->joiner = self;
			rc = weft__fiber_park(l, self, &weft__wait_event, self->deadline);
			f->joiner = NULL;
		}
		if (rc < 0) {
			atomic_store_explicit(&f->xjoiner, NULL, memory_order_release);
			return rc;
		}
	}
	if (result)
		*result = f->result;
	weft__fiber_release(l, f);
	return 0;
}

int weft_cancel(weft_fiber *f)
{
	if (!f)
		return -EINVAL;
	if (WEFT__UNLIKELY(weft__loop_foreign(f->loop))) {
		/* A loop of the same pool asks the fiber's loop to cancel it. */
		if (!same_pool(weft__tls_loop, f->loop))
			return -EXDEV;

		struct xcancel *c = malloc(sizeof(*c));

		if (!c)
			return -ENOMEM;
		*c = (struct xcancel){ .r.run = xcancel_run, .fiber = f, .id = f->id };
		weft__loop_post_remote(f->loop, &c->r);
		return 0;
	}
	weft__fiber_cancel(f);
	return 0;
}

void weft__fiber_cancel(struct weft_fiber *f)
{
	if (f->state == WEFT__FIBER_DONE || f->state == WEFT__FIBER_FREE)
		return;
	f->cancelled = true;
	if (f->state == WEFT__FIBER_PARKED && f->wait && f->wait->cancel)
		f->wait->cancel(f, f->wait);
}

/*
 * Forget the run queue: called by destroy once no fiber is alive. Joinable
 * fibers nobody joined go with the slabs.
 */
void weft__fiber_free_all(struct weft_loop *l)
{
	l->runq_head = NULL;
	l->runq_tail = NULL;
	l->runq_len = 0;
	l->zombie = NULL;
}
