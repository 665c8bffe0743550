/* SPDX-License-Identifier: MIT */
/*
 * Everything that crosses threads.
 *
 * Posts: weft_loop_post pushes a record on the loop's inbox (inbox.h) and
 * the loop spawns a detached fiber for it after its tick. The inbox is
 * bounded for posts (weft_config.max_posts records not yet run: past it a
 * post fails -EAGAIN at once); the other records (completed waits, worker
 * jobs, requests between a pool's loops) are part of a wait that is already
 * counted. A loop being shut down closes its inbox first: posts that got
 * in are run (their fibers see the cancel), later ones fail -ESHUTDOWN.
 *
 * Across the loops of a pool a fiber is reached by a request posted to its
 * loop: a joinable spawn is spawned there and the handle sent back (one
 * round trip; the spawner waits); a cancel carries the fiber's id, so one
 * that arrives after the fiber was joined and its block reused does
 * nothing. A join is one protocol for a fiber of this loop or another: the
 * joiner claims the fiber, reads the result once `exited` is set, and frees
 * it (on its own loop, by a post, when that is another). Until then it
 * waits with its wait record in `joiner`; the fiber's exit takes it and
 * completes it. A joiner whose wait ends early takes the record back; if
 * the exit took it first, the completion is on its way and the join
 * succeeds.
 *
 * A pool's quiescence: see struct weft__quiet. A loop turns idle in
 * weft__remote_settled and busy again when a record reaches it (before the
 * record leaves the flight count), so busy + flight cannot reach 0 while
 * work is still being handed over: a sender is busy while it sends.
 */
#include "remote.h"
#include "fiber.h"
#include "inbox.h"
#include "wait.h"

#include <sched.h>
#include <stdlib.h>

/* ---- posts ------------------------------------------------------------------------ */

struct post {
	struct weft__remote remote;
	weft_fn fn;
	void *arg;
	bool bounded; /* counted in the loop's posts */
};

static void post_run(struct weft_loop *l, struct weft__remote *r)
{
	struct post *p = weft__container_of(r, struct post, remote);
	weft_fn fn = p->fn;
	void *arg = p->arg;

	if (p->bounded)
		atomic_fetch_sub_explicit(&l->posts, 1, memory_order_relaxed);
	free(p);
	if (weft__fiber_spawn(l, fn, arg, true, NULL) < 0)
		l->stats.posts_dropped++;
}

/*
 * A post; @bounded: counted against max_posts. `posting` and `closed` are
 * read and written seq_cst: a post that saw the inbox open is always seen
 * by weft__remote_close, which waits for it to be in.
 */
static int post(struct weft_loop *l, weft_fn fn, void *arg, bool bounded)
{
	struct post *p;
	int rc = 0;

	atomic_fetch_add_explicit(&l->posting, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&l->closed, memory_order_seq_cst)) {
		rc = -ESHUTDOWN;
	} else if (bounded && atomic_fetch_add_explicit(&l->posts, 1, memory_order_relaxed) >=
				  l->cfg.max_posts) {
		atomic_fetch_sub_explicit(&l->posts, 1, memory_order_relaxed);
		rc = -EAGAIN; /* the loop is that far behind: back-pressure */
	} else if (!(p = malloc(sizeof(*p)))) {
		if (bounded)
			atomic_fetch_sub_explicit(&l->posts, 1, memory_order_relaxed);
		rc = -ENOMEM;
	} else {
		*p = (struct post){
			.remote.run = post_run, .fn = fn, .arg = arg, .bounded = bounded
		};
		if (!atomic_load_explicit(&l->posts_seen, memory_order_relaxed))
			atomic_store_explicit(&l->posts_seen, true, memory_order_relaxed);
		weft__inbox_push(l, &p->remote);
	}
	atomic_fetch_sub_explicit(&l->posting, 1, memory_order_seq_cst);
	return rc;
}

int weft_loop_post(weft_loop *l, weft_fn fn, void *arg)
{
	if (!l || !fn)
		return -EINVAL;
	return post(l, fn, arg, true);
}

int weft__remote_post(struct weft_loop *l, weft_fn fn, void *arg)
{
	return post(l, fn, arg, false);
}

void weft__remote_close(struct weft_loop *l)
{
	atomic_store_explicit(&l->closed, true, memory_order_seq_cst);
	/* A post between its check and its push finishes first. */
	while (atomic_load_explicit(&l->posting, memory_order_seq_cst) > 0)
		sched_yield();
}

/* ---- the inbox and the pool's quiescence ----------------------------------------------- */

void weft__quiet_start(struct weft__quiet *q)
{
	atomic_store(&q->busy, q->n);
	atomic_store(&q->stuck, 0);
	atomic_store(&q->verdict, 0);
	atomic_store(&q->done, false);
}

/* Every loop is idle and nothing is on its way: let them all return. */
static void quiet_finish(struct weft__quiet *q)
{
	atomic_store_explicit(&q->verdict, atomic_load(&q->stuck) ? -EDEADLK : 0,
			      memory_order_relaxed);
	atomic_store_explicit(&q->done, true, memory_order_release);
	for (unsigned i = 0; i < q->n; i++)
		q->loops[i]->be->wake(q->loops[i]);
}

static void quiet_busy(struct weft_loop *l)
{
	l->quiet_idle = false;
	atomic_fetch_add_explicit(&l->quiet->busy, 1, memory_order_acq_rel);
	if (l->live)
		atomic_fetch_sub_explicit(&l->quiet->stuck, 1, memory_order_acq_rel);
}

bool weft__remote_settled(struct weft_loop *l, int *rc)
{
	struct weft__quiet *q = l->quiet;

	if (!q) {
		*rc = l->live ? -EDEADLK : 0;
		return true;
	}
	if (!l->quiet_idle) {
		l->quiet_idle = true;
		if (l->live)
			atomic_fetch_add_explicit(&q->stuck, 1, memory_order_acq_rel);
		if (atomic_fetch_sub_explicit(&q->busy, 1, memory_order_acq_rel) == 1 &&
		    atomic_load_explicit(&q->flight, memory_order_acquire) == 0 &&
		    atomic_load_explicit(&q->outside, memory_order_acquire) == 0)
			quiet_finish(q);
	}
	if (!atomic_load_explicit(&q->done, memory_order_acquire))
		return false;
	*rc = atomic_load_explicit(&q->verdict, memory_order_relaxed);
	return true;
}

bool weft__remote_done(struct weft_loop *l, int *rc)
{
	if (!atomic_load_explicit(&l->quiet->done, memory_order_acquire))
		return false;
	*rc = atomic_load_explicit(&l->quiet->verdict, memory_order_relaxed);
	return true;
}

void weft__remote_run_inbox(struct weft_loop *l)
{
	struct weft__remote *r = weft__inbox_take(l);

	if (r && l->quiet && l->quiet_idle)
		quiet_busy(l); /* before the records leave the flight count */
	while (r) {
		struct weft__remote *next = r->next; /* run() may free it */

		r->run(l, r);
		if (l->flight)
			atomic_fetch_sub_explicit(l->flight, 1, memory_order_acq_rel);
		r = next;
	}
}

/* ---- spawn, cancel and join across loops ---------------------------------------------- */

struct xspawn {
	struct weft__remote req;
	weft_fn fn;
	void *arg;
	struct weft_fiber *fiber; /* the new fiber, set there */
	struct weft__waiter w;	  /* the spawner's: only the reply ends it */
};

static void xspawn_req(struct weft_loop *l, struct weft__remote *r)
{
	struct xspawn *s = weft__container_of(r, struct xspawn, req);

	weft__waiter_wake(&s->w, weft__fiber_spawn(l, s->fn, s->arg, false, &s->fiber));
}

int weft__remote_spawn(struct weft_loop *to, weft_fn fn, void *arg, struct weft_fiber **out)
{
	struct weft_loop *l = weft__tls_loop;
	struct xspawn s = { .req.run = xspawn_req, .fn = fn, .arg = arg };
	int rc;

	if (!l || !l->cur || !weft__remote_same_pool(l, to))
		return -EXDEV;
	weft__waiter_init(&s.w, WEFT__WAIT_OWED); /* the reply writes into s */
	weft__inbox_push(to, &s.req);
	rc = weft__waiter_wait(&s.w);
	if (rc == 0)
		*out = s.fiber;
	return rc;
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

int weft__remote_cancel(struct weft_fiber *f)
{
	struct xcancel *c = malloc(sizeof(*c));

	if (!c)
		return -ENOMEM;
	*c = (struct xcancel){ .r.run = xcancel_run, .fiber = f, .id = f->id };
	weft__inbox_push(f->loop, &c->r);
	return 0;
}

/* Back on the fiber's own loop, once joined from another: free it. */
static void release_home(struct weft_loop *l, struct weft__remote *r)
{
	weft__fiber_release(l, weft__container_of(r, struct weft_fiber, home));
}

/* The join's wait ended early: take it back, unless the exit took it first. */
static bool join_withdraw(struct weft__waiter *w)
{
	struct weft_fiber *f = w->ctx;

	return atomic_exchange_explicit(&f->joiner, NULL, memory_order_seq_cst) == w;
}

/* Wait for @f's exit (claimed by the caller). Return: 0, -ECANCELED or -ETIMEDOUT. */
static int join_wait(struct weft_fiber *f)
{
	struct weft__waiter w;

	weft__waiter_init(&w, WEFT__WAIT_EARLY);
	w.ctx = f;
	w.withdraw = join_withdraw;
	atomic_store_explicit(&f->joiner, &w, memory_order_seq_cst);
	/* It may have exited before it could see us: then nothing will complete us. */
	if (atomic_load_explicit(&f->exited, memory_order_seq_cst) && join_withdraw(&w))
		return 0;
	return weft__waiter_wait(&w);
}

int weft__remote_join(struct weft_fiber *self, struct weft_fiber *f, int *result)
{
	struct weft_fiber *prev = NULL;

	/* One joiner at a time, from this loop or another: the claim says which. */
	if (!atomic_compare_exchange_strong(&f->claim, &prev, self) && prev != self)
		return -EBUSY;
	if (!atomic_load_explicit(&f->exited, memory_order_seq_cst)) {
		int rc = join_wait(f);

		if (rc < 0) {
			atomic_store_explicit(&f->claim, NULL, memory_order_release);
			return rc; /* still running; still joinable */
		}
	}
	if (result)
		*result = f->result;
	if (f->loop == self->loop) {
		weft__fiber_release(self->loop, f);
	} else {
		f->home.run = release_home;
		weft__inbox_push(f->loop, &f->home);
	}
	return 0;
}
