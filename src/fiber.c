/* SPDX-License-Identifier: MIT */
/*
 * Fiber lifecycle: spawn, the switch, park and wake, the deadlines of
 * parked fibers, exit, release. A parked fiber waits on a wait record and
 * is resumed by exactly one wake. What it waits for is the wait record's
 * business: weft_cancel calls the record's cancel hook, which either wakes
 * the fiber or asks whatever it waits on to end early (an op parked in the
 * kernel keeps its fiber parked until the backend reports it over, so the
 * stack outlives the kernel's use of it). This file knows nothing of
 * operations, pools, timers' clients or groups; it calls only the timer
 * heap and the stack pool, and a joiner only through its wait record's
 * wake hook.
 */
#include "fiber.h"
#include "stack.h"

#include <string.h>

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

/*
 * Public, but here: it is the scheduler's own move, which the compiler
 * inlines into it (across files it costs a call and ~50 instructions).
 */
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

void weft__fiber_run_round(struct weft_loop *l)
{
	if (!l->runq_head)
		return;
	l->round_left = l->runq_len - 1;
	jump(l, NULL, runq_pop(l));
}

static void fiber_exit(struct weft_loop *l, struct weft_fiber *f, int result)
{
	/*
	 * An overflow of an unguarded stack reaches the stack below, where a
	 * joiner's wait record may lie: catch it before that record is used.
	 */
	if (!f->guarded)
		weft__stack_check(&l->stacks, f);
	f->result = result;
	f->state = WEFT__FIBER_DONE;
	l->live--;
	l->stats.fibers = l->live;
	weft__list_del(&f->all);
	if (!f->detached) {
		/*
		 * Its joiner, on this loop or another of the pool, reads the
		 * result once exited is set; if it waits, its wait is taken here
		 * and completed (remote.c has the whole protocol).
		 */
		atomic_store_explicit(&f->exited, true, memory_order_seq_cst);

		struct weft__waiter *w =
		    atomic_exchange_explicit(&f->joiner, NULL, memory_order_seq_cst);

		if (w)
			w->wake(w, 0);
	} else {
		l->zombie = f; /* freed by the next context, off this stack */
	}
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

/* A fresh control block for @fn(@arg), ready to run; its stack holds @blk if any. */
static void fiber_init(struct weft_loop *l, struct weft_fiber *f, weft_fn fn, void *arg, char *top,
		       bool detached)
{
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
		atomic_store_explicit(&f->claim, NULL, memory_order_relaxed);
		atomic_store_explicit(&f->exited, false, memory_order_relaxed);
		atomic_store_explicit(&f->joiner, NULL, memory_order_relaxed);
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
}

/*
 * The spawn of every kind: a stack from pool @pool, @blk_len bytes of @blk
 * on top of it when @blk_len is not 0 (else @blk is the argument), the
 * fiber ready to run. Return: as weft__fiber_spawn.
 */
static int spawn(struct weft_loop *l, weft_fn fn, const void *blk, size_t blk_len, bool detached,
		 unsigned pool, struct weft_fiber **out, void **blk_out)
{
	if (l->destroying)
		return -ECANCELED;
	if (l->live >= l->cfg.max_fibers)
		return -EAGAIN;
	/* Every fiber may park with a deadline: its heap entry is reserved now. */
	if (weft__heap_reserve(&l->timers, l->live + 1) < 0)
		return -ENOMEM;

	struct weft_fiber *f = weft__stack_alloc(&l->stacks, pool);

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
	fiber_init(l, f, fn, arg, top, detached);
	if (out)
		*out = f;
	return 0;
}

int weft__fiber_spawn_blk(struct weft_loop *l, weft_fn fn, const void *blk, size_t blk_len,
			  bool detached, struct weft_fiber **out, void **blk_out)
{
	return spawn(l, fn, blk, blk_len, detached, 0, out, blk_out);
}

int weft__fiber_spawn(struct weft_loop *l, weft_fn fn, void *arg, bool detached,
		      struct weft_fiber **out)
{
	return spawn(l, fn, arg, 0, detached, 0, out, NULL);
}

int weft__fiber_spawn_opts(struct weft_loop *l, weft_fn fn, void *arg, bool detached, unsigned pool,
			   const char *name, struct weft_fiber **out)
{
	struct weft_fiber *f;
	int rc = spawn(l, fn, arg, 0, detached, pool, &f, NULL);

	if (rc < 0)
		return rc;
	if (name)
		weft__fiber_set_name(f, name); /* before it first runs: nothing switched yet */
	if (out)
		*out = f;
	return 0;
}

void weft__fiber_set_name(struct weft_fiber *f, const char *name)
{
	size_t n = strnlen(name, sizeof(f->name) - 1);

	memcpy(f->name, name, n);
	f->name[n] = '\0';
}

void weft__fiber_cancel(struct weft_fiber *f)
{
	if (f->state == WEFT__FIBER_DONE || f->state == WEFT__FIBER_FREE)
		return;
	f->cancelled = true;
	if (f->state == WEFT__FIBER_PARKED && f->wait && f->wait->cancel)
		f->wait->cancel(f, f->wait);
}

void weft__fiber_timers_fire(struct weft_loop *l, int64_t now)
{
	struct weft__heap *h = &l->timers;

	while (h->len > 0 && h->v[0].deadline <= now) {
		struct weft_fiber *f = weft__container_of(h->v[0].node, struct weft_fiber, timer);

		l->stats.timers_fired++;
		weft__fiber_wake(f, -ETIMEDOUT); /* takes it off the heap */
	}
}
