/* SPDX-License-Identifier: MIT */
/*
 * Clock, sleep and deadlines. A sleeping fiber parks with its wake-up time
 * in the loop's timer heap (heap.c); the tick waits in the kernel until
 * the nearest one, and weft__fiber_timers_fire wakes whoever is due. The other
 * design, one kernel timeout per sleep, is WEFT_TIMERS_KERNEL.
 */
#include "op.h"
#include "opdef.h"

int64_t weft_now(void)
{
	struct weft_loop *l = weft__tls_loop;

	return l ? l->be->now(l) : weft__clock_now();
}

/* One kernel timeout until @until; 0 when it expires. */
static int sleep_kernel(int64_t until)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_TIMEOUT, -1, 0, 0, (uint64_t)until, 0);
	int rc = weft__op_run(&op);

	return rc == -ETIME ? 0 : rc;
}

int weft_sleep_until(int64_t deadline)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *self = l ? l->cur : NULL;

	if (!self)
		return -EPERM;
	if (self->cancelled)
		return -ECANCELED;

	bool by_deadline = self->deadline != WEFT_FOREVER && self->deadline <= deadline;
	int64_t until = by_deadline ? self->deadline : deadline;

	if (until <= weft_now()) {
		if (by_deadline)
			return -ETIMEDOUT;
		weft_yield();
		return 0;
	}
	if (l->cfg.timer_mode == WEFT_TIMERS_KERNEL) {
		int rc = sleep_kernel(until);

		return rc == 0 && by_deadline ? -ETIMEDOUT : rc;
	}

	int rc = weft__fiber_park(l, self, &weft__wait_event, until);

	if (rc == -ETIMEDOUT)
		return by_deadline ? -ETIMEDOUT : 0;
	return rc;
}

int weft_sleep(int64_t ns)
{
	if (ns < 0)
		return -EINVAL;
	if (!weft_self())
		return -EPERM;

	int64_t now = weft_now();

	/* A sleep past the end of time waits until cancelled or the deadline (no overflow). */
	return weft_sleep_until(ns > INT64_MAX - now ? INT64_MAX : now + ns);
}

int64_t weft_set_deadline(int64_t deadline)
{
	struct weft_fiber *self = weft_self();

	if (!self)
		return WEFT_FOREVER;

	int64_t old = self->deadline;

	self->deadline = deadline < 0 ? WEFT_FOREVER : deadline;
	return old;
}

int64_t weft_set_timeout(int64_t ns)
{
	int64_t now = weft_now();

	if (ns < 0)
		return weft_set_deadline(WEFT_FOREVER);
	/* Saturates: a timeout past the end of int64 nanoseconds is no deadline at all. */
	return weft_set_deadline(ns > INT64_MAX - now ? WEFT_FOREVER : now + ns);
}

int64_t weft_deadline(void)
{
	struct weft_fiber *self = weft_self();

	return self ? self->deadline : WEFT_FOREVER;
}
