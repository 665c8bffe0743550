/* SPDX-License-Identifier: MIT */
/*
 * The public calls on fibers: spawn (with options), go, join, cancel,
 * self, names (weft_yield is fiber.c's, beside the scheduler it inlines). A call
 * on this loop's fibers goes straight to fiber.c; one that reaches another
 * thread's loop goes through remote.c (a post, or the pool's protocol).
 */
#include "fiber.h"
#include "remote.h"
#include "stack.h"

#include <string.h>

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
		return out ? weft__remote_spawn(loop, fn, arg, out) : weft_loop_post(loop, fn, arg);
	return weft__fiber_spawn(loop, fn, arg, out == NULL, out);
}

/*
 * Options are carried out only on the loop's own thread: a spawn on
 * another's goes by post or by remote.c's protocol, which carry no options
 * (a name or a stack pool of another loop is that loop's business).
 */
int weft_spawn_with(weft_loop *loop, weft_fn fn, void *arg, const weft_spawn_opts *opts,
		    weft_fiber **out)
{
	if (!opts)
		return weft_spawn(loop, fn, arg, out);
	if (!fn || opts->stack_size > WEFT_STACK_SIZE_MAX)
		return -EINVAL;
	if (!loop)
		loop = weft__tls_loop;
	if (!loop)
		return -EPERM;
	if (WEFT__UNLIKELY(weft__loop_foreign(loop)))
		return -EXDEV;

	int pool = weft__stack_pool_for(&loop->stacks, opts->stack_size);

	if (pool < 0)
		return pool;
	return weft__fiber_spawn_opts(loop, fn, arg, out == NULL, (unsigned)pool, opts->name, out);
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
	if (f->loop != l && !weft__remote_same_pool(l, f->loop))
		return -EXDEV;
	if (f->detached || (f->loop == l && f->state == WEFT__FIBER_FREE))
		return -EINVAL;
	return weft__remote_join(self, f, result);
}

int weft_cancel(weft_fiber *f)
{
	if (!f)
		return -EINVAL;
	if (WEFT__UNLIKELY(weft__loop_foreign(f->loop))) {
		/* A loop of the same pool asks the fiber's loop to cancel it. */
		if (!weft__remote_same_pool(weft__tls_loop, f->loop))
			return -EXDEV;
		return weft__remote_cancel(f);
	}
	weft__fiber_cancel(f);
	return 0;
}

int weft_set_name(const char *name)
{
	struct weft_fiber *f = weft_self();

	if (!name)
		return -EINVAL;
	if (!f)
		return -EPERM;
	weft__fiber_set_name(f, name);
	return 0;
}

int weft_fiber_name(const weft_fiber *f, char *buf, size_t len)
{
	if (!f || !buf || len == 0)
		return -EINVAL;
	if (weft__loop_foreign(f->loop))
		return -EXDEV;
	if (f->state == WEFT__FIBER_FREE)
		return -EINVAL; /* joined: the handle is gone */

	size_t n = strnlen(f->name, sizeof(f->name));

	if (n >= len)
		return -ERANGE;
	memcpy(buf, f->name, n + 1);
	return (int)n;
}
