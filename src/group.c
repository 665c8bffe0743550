/* SPDX-License-Identifier: MIT */
/*
 * weft_gather: run calls in child fibers and wait for all of them. The
 * gather record lives on the caller's stack, and the caller cannot leave
 * before the last child has returned, so the children may point at it.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

struct weft__gather {
	struct weft_fiber *waiter;   /* the fiber in weft_gather */
	struct weft_fiber *children; /* children still running */
	size_t pending;		     /* how many */
};

static void unlink_child(struct weft__gather *g, struct weft_fiber *c)
{
	if (c->gprev)
		c->gprev->gnext = c->gnext;
	else
		g->children = c->gnext;
	if (c->gnext)
		c->gnext->gprev = c->gprev;
	c->gnext = NULL;
	c->gprev = NULL;
}

/* A child returned: store its result, and wake the waiter after the last. */
void weft__gather_child_done(struct weft_fiber *f)
{
	struct weft__gather *g = f->gather;

	f->gcall->result = f->result;
	unlink_child(g, f);
	f->gather = NULL;
	assert(g->pending > 0);
	if (--g->pending == 0)
		weft__fiber_wake(g->waiter, 0);
}

/* The waiter was cancelled: pass it on to every child still running. */
void weft__gather_cancel(struct weft_fiber *waiter)
{
	struct weft__gather *g = waiter->gwait;

	for (struct weft_fiber *c = g->children; c; c = c->gnext)
		weft_cancel(c);
}

static int first_error(const weft_call *calls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (calls[i].result < 0)
			return calls[i].result;
	return 0;
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

int weft_gather(weft_call *calls, size_t n)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *self = l ? l->cur : NULL;
	struct weft__gather g = { .waiter = self };
	int rc = check_calls(calls, n);

	if (!self)
		return -EPERM;
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		calls[i].result = self->cancelled ? -ECANCELED : 0;
	if (self->cancelled)
		return n ? -ECANCELED : 0;

	for (size_t i = 0; i < n; i++) {
		struct weft_fiber *c;

		rc = weft__fiber_spawn(l, calls[i].fn, calls[i].arg, true, &c);
		if (rc < 0) {
			for (size_t j = i; j < n; j++)
				calls[j].result = rc;
			for (c = g.children; c; c = c->gnext)
				weft_cancel(c);
			break;
		}
		c->gather = &g;
		c->gcall = &calls[i];
		c->deadline = self->deadline;
		c->gnext = g.children;
		if (g.children)
			g.children->gprev = c;
		g.children = c;
		g.pending++;
	}

	self->gwait = &g;
	while (g.pending > 0)
		weft__fiber_park(l, self, WEFT__WAIT_GATHER, WEFT_FOREVER);
	self->gwait = NULL;
	return first_error(calls, n);
}

/*
 * ---- task groups --------------------------------------------------------
 *
 * A member record per fiber, on the heap (a group outlives its spawner's
 * frame). The member's fiber runs trampoline(), which reports its result to
 * the group and unlinks itself on the way out.
 */
struct member {
	struct weft_group *g; /* NULL once the group was destroyed under it */
	weft_fn fn;
	void *arg;
	struct weft_fiber *fiber;
	struct member *next;
	struct member *prev;
};

struct weft_group {
	struct member *members; /* fibers still running */
	size_t running;
	int first_err; /* the first negative result, once failed */
	bool failed;
	bool cancelled; /* weft_group_cancel, or a failure */
	struct weft_fiber *waiter;
};

int weft_group_create(weft_group **out)
{
	if (!out)
		return -EINVAL;

	struct weft_group *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	*out = g;
	return 0;
}

static void cancel_members(struct weft_group *g)
{
	g->cancelled = true;
	for (struct member *m = g->members; m; m = m->next)
		weft_cancel(m->fiber);
}

static int trampoline(void *arg)
{
	struct member *m = arg;
	int rc = m->fn(m->arg);
	struct weft_group *g = m->g;

	if (g) {
		if (m->prev)
			m->prev->next = m->next;
		else
			g->members = m->next;
		if (m->next)
			m->next->prev = m->prev;
		g->running--;
		if (rc < 0 && !g->failed) {
			g->failed = true;
			g->first_err = rc;
			cancel_members(g);
		}
		if (g->running == 0 && g->waiter)
			weft__fiber_wake(g->waiter, 0);
	}
	free(m);
	return rc;
}

int weft_group_spawn(weft_group *g, weft_fn fn, void *arg)
{
	struct weft_loop *l = weft__tls_loop;

	if (!g || !fn)
		return -EINVAL;
	if (!l)
		return -EPERM;
	if (g->cancelled)
		return -ECANCELED;

	struct member *m = malloc(sizeof(*m));

	if (!m)
		return -ENOMEM;
	*m = (struct member){ .g = g, .fn = fn, .arg = arg };

	int rc = weft__fiber_spawn(l, trampoline, m, true, &m->fiber);

	if (rc < 0) {
		free(m);
		return rc;
	}
	m->next = g->members;
	if (g->members)
		g->members->prev = m;
	g->members = m;
	g->running++;
	return 0;
}

int weft_group_wait(weft_group *g)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *self = l ? l->cur : NULL;
	int own = 0;

	if (!g)
		return -EINVAL;
	if (!self)
		return -EPERM;
	if (g->waiter && g->waiter != self)
		return -EBUSY;
	while (g->running > 0) {
		g->waiter = self;

		/* Once our own wait failed, wait on without a deadline, uncancellable. */
		int rc = own ? weft__fiber_park(l, self, WEFT__WAIT_HANDOFF, WEFT_FOREVER)
			     : (self->cancelled
				    ? -ECANCELED
				    : weft__fiber_park(l, self, WEFT__WAIT_EVENT, self->deadline));

		if (rc < 0 && !own) {
			own = rc;
			cancel_members(g);
		}
	}
	g->waiter = NULL;
	if (own)
		return own;
	if (g->failed)
		return g->first_err;
	return g->cancelled ? -ECANCELED : 0;
}

void weft_group_cancel(weft_group *g)
{
	if (g)
		cancel_members(g);
}

void weft_group_destroy(weft_group *g)
{
	if (!g)
		return;
	for (struct member *m = g->members; m; m = m->next)
		m->g = NULL; /* still running: they must not report to freed memory */
	free(g);
}
