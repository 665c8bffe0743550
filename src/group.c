/* SPDX-License-Identifier: MIT */
/*
 * weft_gather: run calls in child fibers and wait for all of them. The
 * gather record lives on the caller's stack, and the caller cannot leave
 * before the last child has returned, so the children may point at it.
 */
#include "internal.h"

#include <errno.h>

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
