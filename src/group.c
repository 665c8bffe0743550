/* SPDX-License-Identifier: MIT */
/*
 * Task groups, and weft_gather on the same machinery. A member's record
 * rides at the top of the member fiber's own stack (weft__fiber_spawn_blk),
 * so neither a group spawn nor a gather allocates beyond the fiber itself.
 * The member's fiber runs member_main(), which stores the result, reports
 * to the group and unlinks itself on the way out.
 *
 * The two differ in what a failure and a cancel do:
 *   - a task group (asyncio.TaskGroup): the first negative result cancels
 *     the other members; a cancelled waiter cancels them and still waits;
 *   - weft_gather (asyncio.gather): a failure cancels nobody; the children
 *     inherit the caller's deadline; a cancel of the caller passes to every
 *     child, and the caller waits for all of them.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

struct weft_group {
	struct weft__list members; /* fibers still running */
	size_t running;		   /* how many */
	int first_err;		   /* the first negative result, once failed */
	bool failed;
	bool cancelled; /* weft_group_cancel, or a failure */
	bool gather;	/* weft_gather's: failures cancel nobody */
	struct weft_fiber *waiter;
	struct weft__wait wait;	  /* weft_gather's: a cancel passes to the members */
	const void *_Atomic home; /* a task group's thread (weft__bind_thread) */
};

struct member {
	struct weft__list link;
	struct weft_group *g; /* NULL once the group was destroyed under it */
	weft_fn fn;
	void *arg;
	int *result; /* where the result goes, or NULL */
	struct weft_fiber *fiber;
};

static void cancel_members(struct weft_group *g)
{
	struct weft__list *n;

	g->cancelled = true;
	weft__list_for_each(n, &g->members)
	{
		weft_cancel(weft__container_of(n, struct member, link)->fiber);
	}
}

static int member_main(void *arg)
{
	struct member *m = arg;
	int rc = m->fn(m->arg);
	struct weft_group *g = m->g;

	if (m->result)
		*m->result = rc;
	if (g) {
		weft__list_del(&m->link);
		g->running--;
		if (rc < 0 && !g->failed && !g->gather) {
			g->failed = true;
			g->first_err = rc;
			cancel_members(g);
		}
		if (g->running == 0 && g->waiter)
			weft__fiber_wake(g->waiter, 0);
	}
	return rc;
}

/* A member fiber on @l running @fn(@arg), its result to *@result if not NULL. */
static int member_spawn(struct weft_loop *l, struct weft_group *g, weft_fn fn, void *arg,
			int *result, int64_t deadline)
{
	struct member rec = { .g = g, .fn = fn, .arg = arg, .result = result };
	struct weft_fiber *f;
	void *blk;
	int rc = weft__fiber_spawn_blk(l, member_main, &rec, sizeof(rec), true, &f, &blk);

	if (rc < 0)
		return rc;

	struct member *m = blk;

	m->fiber = f;
	f->deadline = deadline;
	weft__list_add_before(&g->members, &m->link);
	g->running++;
	return 0;
}

/* ---- gather ------------------------------------------------------------------ */

static void gather_cancel(struct weft_fiber *f, struct weft__wait *w)
{
	(void)f;
	cancel_members(weft__container_of(w, struct weft_group, wait));
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
	struct weft_group g = { .gather = true, .waiter = self, .wait.cancel = gather_cancel };
	int rc = check_calls(calls, n);
	int spawn_err = 0;

	if (!self)
		return -EPERM;
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		calls[i].result = self->cancelled ? -ECANCELED : 0;
	if (self->cancelled)
		return n ? -ECANCELED : 0;

	weft__list_init(&g.members);
	for (size_t i = 0; i < n; i++) {
		rc = member_spawn(l, &g, calls[i].fn, calls[i].arg, &calls[i].result,
				  self->deadline);
		if (rc < 0) {
			/* Not all could start: the rest fail with why, the started are cancelled.
			 */
			for (size_t j = i; j < n; j++)
				calls[j].result = rc;
			spawn_err = rc;
			cancel_members(&g);
			break;
		}
	}
	while (g.running > 0)
		weft__fiber_park(l, self, &g.wait, WEFT_FOREVER);
	if (spawn_err)
		return spawn_err;
	for (size_t i = 0; i < n; i++)
		if (calls[i].result < 0)
			return calls[i].result;
	return 0;
}

/* ---- task groups ---------------------------------------------------------------- */

int weft_group_create(weft_group **out)
{
	if (!out)
		return -EINVAL;

	struct weft_group *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	weft__list_init(&g->members);
	*out = g;
	return 0;
}

int weft_group_spawn(weft_group *g, weft_fn fn, void *arg)
{
	struct weft_loop *l = weft__tls_loop;

	if (!g || !fn)
		return -EINVAL;
	if (!l)
		return -EPERM;
	if (weft__bind_thread(&g->home) < 0)
		return -EXDEV;
	if (g->cancelled)
		return -ECANCELED;
	return member_spawn(l, g, fn, arg, NULL, WEFT_FOREVER);
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
	if (weft__bind_thread(&g->home) < 0)
		return -EXDEV;
	if (g->waiter && g->waiter != self)
		return -EBUSY;
	while (g->running > 0) {
		g->waiter = self;

		/* Once our own wait failed, wait on without a deadline, uncancellable. */
		int rc = own ? weft__fiber_park(l, self, &weft__wait_handoff, WEFT_FOREVER)
			     : (self->cancelled
				    ? -ECANCELED
				    : weft__fiber_park(l, self, &weft__wait_event, self->deadline));

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
