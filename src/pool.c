/* SPDX-License-Identifier: MIT */
/*
 * Pools of loops: one loop per thread, and work posted between them.
 *
 * weft_loop_post hands a function to a loop from any thread: a record is
 * pushed on the loop's inbox (lock-free) and the loop woken (the backend's
 * wake: an eventfd); the loop spawns a detached fiber for it after its tick.
 * A loop being destroyed closes its inbox first: posts that got in are run
 * (their fibers see the destroy's cancel), later ones fail -ESHUTDOWN.
 *
 * A pool creates loop 0 on the caller's thread and every other loop on a
 * thread of its own (an io_uring ring set up SINGLE_ISSUER belongs to the
 * thread that made it). weft_pool_run starts fn on every loop and returns
 * when all of them are out of work: a loop that runs out of fibers is idle,
 * and waits for posts until every loop is idle and no post is on its way
 * (busy + posts == 0: the poster is busy while it posts, so the sum cannot
 * reach 0 while work is still being handed over).
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* ---- the pool --------------------------------------------------------------------- */

enum { CMD_NONE, CMD_RUN, CMD_QUIT };

struct member {
	struct weft_pool *pool;
	unsigned index;
	pthread_t tid;
	bool started;
	int cpu; /* -1: not pinned */
	weft_loop *loop;
	int create_rc;
	int run_rc;
	int result;
	unsigned cmd_seen;
};

struct weft_pool {
	unsigned n;
	struct member *m;
	weft_config cfg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned cmd;	  /* what the threads are to do next */
	unsigned cmd_gen; /* bumped with every command */
	unsigned finished;
	weft_fn fn;
	void *arg;
	_Atomic unsigned busy;	/* loops that have work */
	_Atomic uint64_t posts; /* posts on their way to a loop of the pool */
	_Atomic bool done;	/* every loop idle, no post on its way */
};

/* ---- posting to a loop ----------------------------------------------------- */

struct post {
	struct weft__remote remote;
	weft_fn fn;
	void *arg;
};

static void post_run(struct weft_loop *l, struct weft__remote *r)
{
	struct post *p = weft__container_of(r, struct post, remote);
	weft_fn fn = p->fn;
	void *arg = p->arg;

	free(p);
	if (l->pool)
		weft__pool_busy(l);
	if (weft__fiber_spawn(l, fn, arg, true, NULL) < 0)
		l->stats.posts_dropped++;
	if (l->pool)
		atomic_fetch_sub_explicit(&l->pool->posts, 1, memory_order_acq_rel);
}

int weft_loop_post(weft_loop *l, weft_fn fn, void *arg)
{
	if (!l || !fn)
		return -EINVAL;

	struct post *p = malloc(sizeof(*p));

	if (!p)
		return -ENOMEM;
	*p = (struct post){ .remote.run = post_run, .fn = fn, .arg = arg };
	atomic_fetch_add_explicit(&l->posting, 1, memory_order_acq_rel);
	if (atomic_load_explicit(&l->closed, memory_order_acquire)) {
		atomic_fetch_sub_explicit(&l->posting, 1, memory_order_release);
		free(p);
		return -ESHUTDOWN;
	}
	if (l->pool)
		atomic_fetch_add_explicit(&l->pool->posts, 1, memory_order_acq_rel);
	if (!atomic_load_explicit(&l->posts_seen, memory_order_relaxed))
		atomic_store_explicit(&l->posts_seen, true, memory_order_relaxed);
	weft__loop_post_remote(l, &p->remote);
	atomic_fetch_sub_explicit(&l->posting, 1, memory_order_release);
	return 0;
}

/* The i-th CPU this process may run on; -1 if it cannot be told. */
static int nth_cpu(unsigned i)
{
	cpu_set_t set;
	unsigned count, k = 0;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -1;
	count = (unsigned)CPU_COUNT(&set);
	if (count == 0)
		return -1;
	i %= count;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set) && k++ == i)
			return c;
	return -1;
}

static unsigned cpus_allowed(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 1;
	return (unsigned)CPU_COUNT(&set) ? (unsigned)CPU_COUNT(&set) : 1;
}

static void pin_self(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* Every loop is idle and nothing is on its way: let them all return. */
static void pool_finish(struct weft_pool *p)
{
	atomic_store_explicit(&p->done, true, memory_order_release);
	for (unsigned i = 0; i < p->n; i++)
		p->m[i].loop->be->wake(p->m[i].loop);
}

void weft__pool_busy(struct weft_loop *l)
{
	if (!l->pool_busy) {
		l->pool_busy = true;
		atomic_fetch_add_explicit(&l->pool->busy, 1, memory_order_acq_rel);
	}
}

bool weft__pool_idle(struct weft_loop *l)
{
	struct weft_pool *p = l->pool;

	if (l->pool_busy) {
		l->pool_busy = false;
		if (atomic_fetch_sub_explicit(&p->busy, 1, memory_order_acq_rel) == 1 &&
		    atomic_load_explicit(&p->posts, memory_order_acquire) == 0)
			pool_finish(p);
	}
	return atomic_load_explicit(&p->done, memory_order_acquire);
}

/* Start fn on loop @i and run it until the pool is done (on loop i's thread). */
static void run_member(struct weft_pool *p, struct member *m)
{
	weft_fiber *f = NULL;
	struct weft_loop *l = m->loop;

	m->result = 0;
	l->pool_busy = true;  /* counted in busy by weft_pool_run */
	l->remote_expected++; /* idle, it waits for posts instead of returning */
	m->run_rc = weft_spawn(l, p->fn, p->arg, &f);
	if (m->run_rc == 0)
		m->run_rc = weft_loop_run(l);
	else
		weft__pool_idle(l);
	l->remote_expected--;
	if (f && m->run_rc == 0) {
		m->result = f->result;
		weft__fiber_release(l, f);
	}
}

static void *member_thread(void *arg)
{
	struct member *m = arg;
	struct weft_pool *p = m->pool;

	pin_self(m->cpu);
	m->create_rc = weft_loop_create(&m->loop, &p->cfg);
	if (m->create_rc == 0) {
		m->loop->pool = p;
		m->loop->pool_index = m->index;
	}
	pthread_mutex_lock(&p->mu);
	p->finished++;
	pthread_cond_broadcast(&p->cv);
	for (;;) {
		while (p->cmd_gen == m->cmd_seen)
			pthread_cond_wait(&p->cv, &p->mu);
		m->cmd_seen = p->cmd_gen;
		if (p->cmd == CMD_QUIT || m->create_rc < 0)
			break;
		pthread_mutex_unlock(&p->mu);
		run_member(p, m);
		pthread_mutex_lock(&p->mu);
		p->finished++;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	if (m->loop)
		weft_loop_destroy(m->loop);
	m->loop = NULL;
	return NULL;
}

/* Tell the threads @cmd and wait until all @wait of them report back. */
static void command(struct weft_pool *p, unsigned cmd, unsigned wait)
{
	pthread_mutex_lock(&p->mu);
	p->finished = 0;
	p->cmd = cmd;
	p->cmd_gen++;
	pthread_cond_broadcast(&p->cv);
	if (wait)
		while (p->finished < wait)
			pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

static void wait_finished(struct weft_pool *p, unsigned count)
{
	pthread_mutex_lock(&p->mu);
	while (p->finished < count)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

int weft_pool_create(weft_pool **out, unsigned nloops, const weft_config *cfg)
{
	if (!out || nloops > 4096)
		return -EINVAL;
	if (weft__tls_loop)
		return -EBUSY; /* loop 0 runs on this thread: not from inside a fiber */
	if (nloops == 0)
		nloops = cpus_allowed();

	struct weft_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->n = nloops;
	p->m = calloc(nloops, sizeof(*p->m));
	if (!p->m) {
		free(p);
		return -ENOMEM;
	}
	if (cfg)
		p->cfg = *cfg;
	else
		weft_config_init(&p->cfg);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);

	bool pin = p->cfg.flags & WEFT_CONFIG_PIN;
	int rc;

	p->cfg.flags &= ~WEFT_CONFIG_PIN;
	for (unsigned i = 0; i < nloops; i++) {
		p->m[i] = (struct member){ .pool = p, .index = i, .cpu = pin ? nth_cpu(i) : -1 };
	}
	rc = weft_loop_create(&p->m[0].loop, &p->cfg);
	if (rc < 0)
		goto fail;
	p->m[0].loop->pool = p;
	pin_self(p->m[0].cpu);

	unsigned started = 0;

	for (unsigned i = 1; i < nloops; i++) {
		rc = -pthread_create(&p->m[i].tid, NULL, member_thread, &p->m[i]);
		if (rc < 0)
			break;
		p->m[i].started = true;
		started++;
	}
	wait_finished(p, started);
	for (unsigned i = 1; i < nloops && rc == 0; i++)
		if (p->m[i].create_rc < 0)
			rc = p->m[i].create_rc;
	if (rc < 0) {
		weft_pool_destroy(p);
		return rc;
	}
	*out = p;
	return 0;

fail:
	free(p->m);
	free(p);
	return rc;
}

unsigned weft_pool_size(const weft_pool *p)
{
	return p ? p->n : 0;
}

weft_loop *weft_pool_loop(weft_pool *p, unsigned i)
{
	return p && i < p->n ? p->m[i].loop : NULL;
}

int weft_pool_run(weft_pool *p, weft_fn fn, void *arg)
{
	if (!p || !fn)
		return -EINVAL;
	if (weft__tls_loop)
		return -EBUSY;
	p->fn = fn;
	p->arg = arg;
	atomic_store(&p->busy, p->n);
	atomic_store(&p->done, false);
	command(p, CMD_RUN, 0);
	run_member(p, &p->m[0]);
	wait_finished(p, p->n - 1);

	for (unsigned i = 0; i < p->n; i++)
		if (p->m[i].run_rc < 0)
			return p->m[i].run_rc;
	for (unsigned i = 0; i < p->n; i++)
		if (p->m[i].result < 0)
			return p->m[i].result;
	return 0;
}

/* On each loop: cancel every fiber there (posted by weft_pool_cancel). */
static int cancel_here(void *arg)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft__list *n;

	(void)arg;
	weft__list_for_each(n, &l->all)
	{
		struct weft_fiber *f = weft__container_of(n, struct weft_fiber, all);

		if (f != l->cur)
			weft_cancel(f);
	}
	return 0;
}

void weft_pool_cancel(weft_pool *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->n; i++)
		if (p->m[i].loop)
			(void)weft_loop_post(p->m[i].loop, cancel_here, NULL);
}

void weft_pool_destroy(weft_pool *p)
{
	if (!p)
		return;
	command(p, CMD_QUIT, 0);
	for (unsigned i = 1; i < p->n; i++)
		if (p->m[i].started)
			pthread_join(p->m[i].tid, NULL);
	if (p->m[0].loop)
		weft_loop_destroy(p->m[0].loop);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->m);
	free(p);
}

int weft_main_pool(unsigned nloops, weft_fn fn, void *arg)
{
	weft_pool *p;
	int rc;

	if (!fn)
		return -EINVAL;
	rc = weft_pool_create(&p, nloops, NULL);
	if (rc < 0)
		return rc;
	rc = weft_pool_run(p, fn, arg);
	weft_pool_destroy(p);
	return rc;
}

int weft_loop_index(void)
{
	struct weft_loop *l = weft__tls_loop;

	return l && l->pool ? (int)l->pool_index : 0;
}

/* ---- gather spread over the pool ---------------------------------------------- */

/*
 * Call i runs on loop (home + i) mod n. The gatherer waits until `left`
 * reaches 0: it counts the members still running and, once the gatherer
 * is cancelled, the cancel requests on their way to other loops (each
 * names a loop; there it cancels that loop's members, or marks those not
 * started yet). Whoever brings `left` to 0 wakes the gatherer, directly on
 * its loop or by a post, so nothing of the gather is touched after.
 */
struct pmember {
	struct pgather *g;
	size_t i;
	struct weft_fiber *fiber; /* set, and read, on the member's loop */
	bool started, done, cancel;
};

struct pcancel {
	struct weft__remote r;
	struct pgather *g;
	unsigned loop;
};

struct pgather {
	_Atomic size_t left;
	bool complete; /* set on the home loop only, by whoever saw left reach 0 */
	bool cancelling;
	struct weft_loop *home;
	struct weft_pool *pool;
	struct weft_fiber *waiter;
	weft_call *calls;
	struct pmember *ms;
	struct pcancel *cancels; /* one per loop */
	size_t n, started;
	int64_t deadline;	  /* the gatherer's, inherited by every call */
	struct weft__wait wait;	  /* the gatherer's: a cancel passes to the members */
	struct weft__remote back; /* the last one out, on another loop, wakes the gatherer */
};

static void gather_back(struct weft_loop *l, struct weft__remote *r)
{
	struct pgather *g = weft__container_of(r, struct pgather, back);

	(void)l;
	g->complete = true;
	weft__fiber_wake(g->waiter, 0);
}

/* A member or a cancel request is done with the gather. */
static void gather_leave(struct pgather *g)
{
	if (atomic_fetch_sub_explicit(&g->left, 1, memory_order_acq_rel) != 1)
		return;
	if (weft__tls_loop == g->home) {
		g->complete = true;
		weft__fiber_wake(g->waiter, 0);
	} else {
		weft__loop_post_remote(g->home, &g->back);
	}
}

/* Cancel the members that loop @k runs (on loop k). */
static void cancel_members_here(struct pgather *g, unsigned k)
{
	unsigned nl = g->pool->n;

	for (size_t i = (k + nl - g->home->pool_index) % nl; i < g->started; i += nl) {
		struct pmember *m = &g->ms[i];

		if (m->done)
			continue;
		if (m->started)
			weft__fiber_cancel(m->fiber);
		else
			m->cancel = true; /* its post is not taken yet: it cancels itself */
	}
}

static void pcancel_run(struct weft_loop *l, struct weft__remote *r)
{
	struct pcancel *c = weft__container_of(r, struct pcancel, r);

	(void)l;
	cancel_members_here(c->g, c->loop);
	gather_leave(c->g);
}

/* The gatherer was cancelled (on the home loop): pass it to every member. */
static void gather_cancel(struct weft_fiber *f, struct weft__wait *w)
{
	struct pgather *g = weft__container_of(w, struct pgather, wait);
	unsigned nl = g->pool->n, used = g->started < nl ? (unsigned)g->started : nl;
	size_t left = atomic_load_explicit(&g->left, memory_order_acquire);

	(void)f;
	if (g->cancelling)
		return;
	g->cancelling = true;
	/* Count the requests in first, unless every member is already out. */
	do {
		if (left == 0)
			return;
	} while (!atomic_compare_exchange_weak_explicit(
	    &g->left, &left, left + used - 1, memory_order_acq_rel, memory_order_acquire));
	cancel_members_here(g, g->home->pool_index);
	for (unsigned j = 1; j < used; j++) {
		unsigned k = (g->home->pool_index + j) % nl;

		g->cancels[k] = (struct pcancel){ .r.run = pcancel_run, .g = g, .loop = k };
		weft__loop_post_remote(g->pool->m[k].loop, &g->cancels[k].r);
	}
}

static int pmember_main(void *arg)
{
	struct pmember *m = arg;
	struct pgather *g = m->g;
	struct weft_fiber *self = weft__tls_loop->cur;

	m->fiber = self;
	m->started = true;
	self->deadline = g->deadline;
	if (m->cancel)
		weft__fiber_cancel(self);

	int rc = g->calls[m->i].fn(g->calls[m->i].arg);

	g->calls[m->i].result = rc;
	m->done = true;
	gather_leave(g);
	return rc;
}

int weft_pool_gather(weft_pool *p, weft_call *calls, size_t n)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *self = l ? l->cur : NULL;

	if (!p || (n && !calls))
		return -EINVAL;
	if (!self)
		return -EPERM;
	if (l->pool != p)
		return -EXDEV;
	for (size_t i = 0; i < n; i++)
		if (!calls[i].fn)
			return -EINVAL;
	for (size_t i = 0; i < n; i++)
		calls[i].result = self->cancelled ? -ECANCELED : 0;
	if (n == 0 || self->cancelled)
		return n && self->cancelled ? -ECANCELED : 0;

	struct pgather g = { .home = l,
			     .pool = p,
			     .waiter = self,
			     .calls = calls,
			     .n = n,
			     .deadline = self->deadline,
			     .wait.cancel = gather_cancel };
	size_t started = 0;
	int err = 0;

	g.ms = malloc(n * sizeof(*g.ms) + p->n * sizeof(*g.cancels));
	if (!g.ms)
		return -ENOMEM;
	g.cancels = (struct pcancel *)(g.ms + n);
	atomic_init(&g.left, n);
	g.back.run = gather_back;
	l->remote_expected++; /* the wake-up may come from another loop */
	for (size_t i = 0; i < n; i++) {
		struct weft_loop *to = p->m[(l->pool_index + i) % p->n].loop;
		int rc;

		g.ms[i] = (struct pmember){ .g = &g, .i = i };
		rc = to == l ? weft__fiber_spawn(l, pmember_main, &g.ms[i], true, NULL)
			     : weft_loop_post(to, pmember_main, &g.ms[i]);
		if (rc < 0) {
			err = rc;
			break;
		}
		started++;
		g.started = started;
	}
	if (started < n) {
		/* The rest never start: count them out; the started ones finish. */
		for (size_t i = started; i < n; i++)
			calls[i].result = err;
		if (atomic_fetch_sub_explicit(&g.left, n - started, memory_order_acq_rel) ==
		    n - started)
			g.complete = true;
	}
	if (self->cancelled && !g.complete)
		gather_cancel(self, &g.wait);
	/*
	 * Wait for every member and cancel request: they write into calls and
	 * g. Only the last one's wake ends the wait (a cancel passes on), so g
	 * outlives them.
	 */
	while (!g.complete)
		weft__fiber_park(l, self, &g.wait, WEFT_FOREVER);
	l->remote_expected--;
	free(g.ms);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++)
		if (calls[i].result < 0)
			return calls[i].result;
	return 0;
}
