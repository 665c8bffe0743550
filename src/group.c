/* SPDX-License-Identifier: MIT */
/*
 * Task groups, and the gather (weft_gather, weft_pool_gather).
 *
 * A task group (asyncio.TaskGroup): a member's record rides at the top of
 * the member fiber's own stack (weft__fiber_spawn_blk), so a group spawn
 * allocates nothing beyond the fiber; the first negative result cancels the
 * other members; a waiter whose own wait ends early cancels them and still
 * waits.
 *
 * A gather (asyncio.gather): a failure cancels nobody; the calls inherit
 * the caller's deadline; a cancel of the caller passes to every call, and
 * the caller waits for all of them. Call i runs on loops[i % nloops] (one
 * loop for weft_gather, a pool's for weft_pool_gather). The gatherer waits
 * until `left` reaches 0: it counts the calls still running and, once the
 * gatherer is cancelled, the cancel requests on their way to the other
 * loops (each cancels that loop's calls there, or marks those not started
 * yet). Whoever brings `left` to 0 completes the gatherer's wait, so
 * nothing of the gather is touched after. A call whose fiber cannot be
 * spawned gets that error; the calls already started are then cancelled
 * (a failure on another loop is reported to the gatherer's loop first).
 */
#include "group.h"
#include "fiber.h"
#include "inbox.h"
#include "wait.h"

#include <limits.h>
#include <stdlib.h>

/* ---- task groups ---------------------------------------------------------------- */

struct weft_group {
	struct weft__list members;   /* fibers still running */
	size_t running;		     /* how many */
	int first_err;		     /* the first negative result */
	uint64_t failures;	     /* negative results so far */
	unsigned flags;		     /* WEFT_GROUP_INDEPENDENT: a failure cancels nobody */
	bool failed;		     /* a failure cancelled the group */
	bool cancelled;		     /* weft_group_cancel, or a failure */
	struct weft__waiter *waiter; /* the fiber in weft_group_wait */
	const void *_Atomic home;    /* its thread (weft__bind_thread) */
};

struct member {
	struct weft__list link;
	struct weft_group *g; /* NULL once the group was destroyed under it */
	weft_fn fn;
	void *arg;
	struct weft_fiber *fiber;
};

static void cancel_members(struct weft_group *g)
{
	struct weft__list *n;

	g->cancelled = true;
	weft__list_for_each(n, &g->members)
	{
		weft__fiber_cancel(weft__container_of(n, struct member, link)->fiber);
	}
}

static int member_main(void *arg)
{
	struct member *m = arg;
	int rc = m->fn(m->arg);
	struct weft_group *g = m->g;

	if (g) {
		weft__list_del(&m->link);
		g->running--;
		if (rc < 0 && g->failures++ == 0)
			g->first_err = rc;
		if (rc < 0 && !g->cancelled && !(g->flags & WEFT_GROUP_INDEPENDENT)) {
			g->failed = true;
			cancel_members(g);
		}
		if (g->running == 0 && g->waiter)
			weft__waiter_wake(g->waiter, 0);
	}
	return rc;
}

int weft_group_create_flags(weft_group **out, unsigned flags)
{
	if (!out || (flags & ~WEFT_GROUP_INDEPENDENT))
		return -EINVAL;

	struct weft_group *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	weft__list_init(&g->members);
	g->flags = flags;
	*out = g;
	return 0;
}

int weft_group_create(weft_group **out)
{
	return weft_group_create_flags(out, 0);
}

/* Whether the calling thread may read @g (the one it is bound to, or any while unbound). */
static bool readable_here(const weft_group *g)
{
	const void *h = g ? atomic_load_explicit(&g->home, memory_order_relaxed) : NULL;

	return g && (!h || h == weft__thread_id());
}

uint64_t weft_group_failures(const weft_group *g, int *first)
{
	bool ok = readable_here(g);

	if (first)
		*first = ok && g->failures ? g->first_err : 0;
	return ok ? g->failures : 0;
}

size_t weft_group_running(const weft_group *g)
{
	return readable_here(g) ? g->running : 0;
}

int weft_group_spawn(weft_group *g, weft_fn fn, void *arg)
{
	struct weft_loop *l = weft__tls_loop;
	struct member rec = { .g = g, .fn = fn, .arg = arg };
	struct weft_fiber *f;
	void *blk;

	if (!g || !fn)
		return -EINVAL;
	if (!l)
		return -EPERM;
	if (weft__bind_thread(&g->home) < 0)
		return -EXDEV;
	if (g->cancelled)
		return -ECANCELED;

	int rc = weft__fiber_spawn_blk(l, member_main, &rec, sizeof(rec), true, &f, &blk);

	if (rc < 0)
		return rc;

	struct member *m = blk;

	m->fiber = f;
	weft__list_add_before(&g->members, &m->link);
	g->running++;
	return 0;
}

/* The waiter's own wait ended early: cancel the members, and wait for them still. */
static bool group_withdraw(struct weft__waiter *w)
{
	cancel_members(w->ctx);
	return false;
}

int weft_group_wait(weft_group *g)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *self = l ? l->cur : NULL;
	struct weft__waiter w;

	if (!g)
		return -EINVAL;
	if (!self)
		return -EPERM;
	if (weft__bind_thread(&g->home) < 0)
		return -EXDEV;
	if (g->waiter)
		return -EBUSY;
	/* Its members are fibers of this loop: waiting on for them is not owed. */
	weft__waiter_init(&w, WEFT__WAIT_EARLY | WEFT__WAIT_PEERS);
	w.ctx = g;
	w.withdraw = group_withdraw;
	if (g->running > 0) {
		g->waiter = &w;
		weft__waiter_wait(&w); /* only the last member's return ends it */
		g->waiter = NULL;
	}
	if (w.early)
		return w.early;
	if (g->failed)
		return g->first_err;
	return g->cancelled ? -ECANCELED : 0;
}

void weft_group_cancel(weft_group *g)
{
	if (g && weft__bind_thread(&g->home) == 0)
		cancel_members(g);
}

void weft_group_destroy(weft_group *g)
{
	if (!g)
		return;
	/* Members still running must not report to freed memory. */
	while (!weft__list_empty(&g->members)) {
		struct weft__list *n = g->members.next;

		weft__container_of(n, struct member, link)->g = NULL;
		weft__list_del(n);
	}
	free(g);
}

/* ---- gather ------------------------------------------------------------------------ */

struct gmember {
	struct gather *g;
	size_t i;
	struct weft_fiber *fiber;   /* set, and read, on the member's loop */
	struct weft__remote remote; /* its spawn there; then a spawn failure reported home */
	bool started, done, cancel;
};

struct gcancel {
	struct weft__remote r;
	struct gather *g;
	unsigned k; /* the loop, as an index of loops[] */
};

struct gather {
	_Atomic size_t left;
	_Atomic int spawn_err; /* the first spawn that failed */
	bool cancelling;
	struct weft__waiter w; /* the gatherer's: a cancel passes to the members */
	struct weft_loop *const *loops;
	unsigned nloops;
	weft_call *calls;
	struct gmember *ms;
	struct gcancel *cancels; /* one per loop */
	size_t started;		 /* calls handed to their loops */
	int64_t deadline;	 /* the gatherer's, inherited by every call */
	bool first_mode;	 /* weft_first: the first call to return cancels the others */
	bool first_late;	 /* it returned -ETIMEDOUT past the gatherer's deadline */
	bool caller_cancelled;	 /* the gatherer was cancelled before any call returned */
	size_t first;		 /* that call, or SIZE_MAX */
};

/* @count members or cancel requests are done with the gather. */
static void gather_drop(struct gather *g, size_t count)
{
	if (atomic_fetch_sub_explicit(&g->left, count, memory_order_acq_rel) == count)
		weft__waiter_wake(&g->w, 0);
}

static void gather_leave(struct gather *g)
{
	gather_drop(g, 1);
}

/* Cancel the members that loops[@k] runs (on that loop). */
static void cancel_members_here(struct gather *g, unsigned k)
{
	for (size_t i = k; i < g->started; i += g->nloops) {
		struct gmember *m = &g->ms[i];

		if (m->done)
			continue;
		if (m->started)
			weft__fiber_cancel(m->fiber);
		else
			m->cancel = true; /* not spawned yet there: it cancels itself */
	}
}

static void gcancel_run(struct weft_loop *l, struct weft__remote *r)
{
	struct gcancel *c = weft__container_of(r, struct gcancel, r);

	(void)l;
	cancel_members_here(c->g, c->k);
	gather_leave(c->g);
}

/* The gatherer was cancelled, or a spawn failed (on the home loop): cancel every member. */
static void gather_cancel(struct weft__waiter *w)
{
	struct gather *g = w->ctx;
	unsigned used = g->started < g->nloops ? (unsigned)g->started : g->nloops;
	size_t left = atomic_load_explicit(&g->left, memory_order_acquire);

	if (g->cancelling)
		return;
	g->cancelling = true;
	/* Count the requests in first, unless every member is already out. */
	do {
		if (left == 0)
			return;
	} while (!atomic_compare_exchange_weak_explicit(
	    &g->left, &left, left + used - 1, memory_order_acq_rel, memory_order_acquire));
	cancel_members_here(g, 0);
	for (unsigned k = 1; k < used; k++) {
		g->cancels[k] = (struct gcancel){ .r.run = gcancel_run, .g = g, .k = k };
		weft__inbox_push(g->loops[k], &g->cancels[k].r);
	}
}

static int gmember_main(void *arg)
{
	struct gmember *m = arg;
	struct gather *g = m->g;
	struct weft_fiber *self = weft__tls_loop->cur;

	m->fiber = self;
	m->started = true;
	self->deadline = g->deadline;
	if (m->cancel)
		weft__fiber_cancel(self);

	int rc = g->calls[m->i].fn(g->calls[m->i].arg);

	g->calls[m->i].result = rc;
	m->done = true;
	if (g->first_mode && g->first == SIZE_MAX) {
		/* weft_first runs on one loop: the gatherer's, and this one. */
		g->first = m->i;
		g->first_late =
		    rc == -ETIMEDOUT && g->deadline != WEFT_FOREVER && weft_now() >= g->deadline;
		gather_cancel(&g->w);
	}
	gather_leave(g);
	return rc;
}

/* weft_first's gatherer was cancelled: before any call returned, that is its result. */
static void first_cancel(struct weft__waiter *w)
{
	struct gather *g = w->ctx;

	if (g->first == SIZE_MAX)
		g->caller_cancelled = true;
	gather_cancel(w);
}

/* Back home: a member's spawn failed on its loop. */
static void spawn_failed_home(struct weft_loop *l, struct weft__remote *r)
{
	struct gmember *m = weft__container_of(r, struct gmember, remote);

	(void)l;
	gather_cancel(&m->g->w);
	gather_leave(m->g);
}

/* A member whose fiber could not be spawned (on its loop). */
static void spawn_failed(struct gmember *m, int rc)
{
	struct gather *g = m->g;
	int none = 0;

	g->calls[m->i].result = rc;
	m->done = true;
	atomic_compare_exchange_strong(&g->spawn_err, &none, rc);
	if (weft__tls_loop == g->loops[0]) {
		gather_cancel(&g->w);
		gather_leave(g);
		return;
	}
	/* Tell the gatherer's loop, which cancels the others; the notice counts in left. */
	atomic_fetch_add_explicit(&g->left, 1, memory_order_acq_rel);
	gather_leave(g);
	m->remote.run = spawn_failed_home;
	weft__inbox_push(g->loops[0], &m->remote);
}

/* On the member's loop: spawn its fiber. */
static void gmember_spawn(struct weft_loop *l, struct weft__remote *r)
{
	struct gmember *m = weft__container_of(r, struct gmember, remote);
	int rc = weft__fiber_spawn(l, gmember_main, m, true, NULL);

	if (rc < 0)
		spawn_failed(m, rc);
}

/* Hand every call to its loop, until a spawn on this loop fails: the rest get its error. */
static void gather_start(struct gather *g, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct gmember *m = &g->ms[i];
		struct weft_loop *to = g->loops[i % g->nloops];
		int err = atomic_load_explicit(&g->spawn_err, memory_order_relaxed);

		if (err) {
			for (size_t j = i; j < n; j++)
				g->calls[j].result = err;
			gather_drop(g, n - i);
			return;
		}
		*m = (struct gmember){ .g = g, .i = i };
		g->started = i + 1;
		if (i % g->nloops == 0) {
			gmember_spawn(to, &m->remote);
		} else {
			m->remote.run = gmember_spawn;
			weft__inbox_push(to, &m->remote);
		}
	}
}

static int check_calls(const weft_call *calls, size_t n)
{
	if (n > 0 && !calls)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!calls[i].fn)
			return -EINVAL;
	return 0;
}

/* 0, or the first negative result in call order (a spawn failure first). */
static int gather_result(struct gather *g, size_t n)
{
	int err = atomic_load(&g->spawn_err);

	if (err)
		return err;
	for (size_t i = 0; i < n; i++)
		if (g->calls[i].result < 0)
			return g->calls[i].result;
	return 0;
}

/* How weft_first's gather ended. */
struct first_out {
	size_t first; /* the call that returned first, SIZE_MAX if none did */
	bool late, caller_cancelled;
	int spawn_err;
};

/* weft_gather, or (with @fo, on one loop) weft_first, which learns in @fo how it ended. */
static int gather_run(weft_call *calls, size_t n, struct weft_loop *const *loops, unsigned nloops,
		      struct first_out *fo)
{
	bool first_mode = fo != NULL;

	struct weft_fiber *self = loops[0]->cur;
	struct gather g = { .loops = loops,
			    .nloops = nloops,
			    .calls = calls,
			    .first_mode = first_mode,
			    .first = SIZE_MAX };
	int rc = check_calls(calls, n);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		calls[i].result = self->cancelled ? -ECANCELED : 0;
	if (n == 0 || self->cancelled)
		return n ? -ECANCELED : 0;
	g.ms = malloc(n * sizeof(*g.ms) + nloops * sizeof(*g.cancels));
	if (!g.ms)
		return -ENOMEM;
	g.cancels = (struct gcancel *)(g.ms + n);
	g.deadline = self->deadline;
	atomic_init(&g.left, n);
	atomic_init(&g.spawn_err, 0);
	weft__waiter_init(&g.w, 0); /* no deadline: the calls inherit it */
	g.w.ctx = &g;
	g.w.on_cancel = first_mode ? first_cancel : gather_cancel;
	gather_start(&g, n);
	/*
	 * Wait for every member and cancel request: they write into calls and
	 * g. Only the last one's completion ends the wait (a cancel passes
	 * on), so g outlives them.
	 */
	weft__waiter_wait(&g.w);
	free(g.ms);
	if (fo)
		*fo = (struct first_out){ .first = g.first,
					  .late = g.first_late,
					  .caller_cancelled = g.caller_cancelled,
					  .spawn_err = atomic_load(&g.spawn_err) };
	return gather_result(&g, n);
}

int weft__gather(weft_call *calls, size_t n, struct weft_loop *const *loops, unsigned nloops)
{
	return gather_run(calls, n, loops, nloops, NULL);
}

int weft_gather(weft_call *calls, size_t n)
{
	struct weft_loop *l = weft__tls_loop;

	if (!l || !l->cur)
		return -EPERM;
	return weft__gather(calls, n, &l, 1);
}

int weft_first(weft_first_call *calls, size_t n)
{
	struct weft_loop *l = weft__tls_loop;

	if (!calls || n == 0 || n > INT_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!calls[i].fn)
			return -EINVAL;
	if (!l || !l->cur)
		return -EPERM;

	weft_call *c = malloc(n * sizeof(*c));
	struct first_out fo = { .first = SIZE_MAX };

	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		c[i] = (weft_call){ .fn = calls[i].fn, .arg = calls[i].arg };

	int rc = gather_run(c, n, &l, 1, &fo);

	for (size_t i = 0; i < n; i++)
		calls[i].result = c[i].result;
	free(c);
	if (fo.spawn_err)
		return fo.spawn_err;
	if (fo.first == SIZE_MAX)
		return rc < 0 ? rc : -ECANCELED; /* cancelled at entry, or no memory: nothing ran */
	if (fo.caller_cancelled)
		return -ECANCELED;
	return fo.late ? -ETIMEDOUT : (int)fo.first;
}
