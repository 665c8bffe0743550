/* SPDX-License-Identifier: MIT */
/*
 * Clock, timer heap, sleep and deadlines. The heap is 4-ary over 24-byte
 * entries (four children share a cache line or two) and deletes lazily: a
 * timer is stale once its fiber's timer_seq has moved on, so cancelling a
 * sleep never touches the heap. Stale entries leave when their time comes;
 * a loop that cancels many long sleeps keeps them until then (known cost).
 * All timers feed one kernel wake-up per tick (see ring.c); the other
 * design, one IORING_OP_TIMEOUT per sleep, is WEFT_TIMERS_KERNEL.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

int64_t weft_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

static void sift_up(struct weft__timer *v, size_t i)
{
	struct weft__timer t = v[i];

	while (i > 0) {
		size_t parent = (i - 1) / 4;

		if (v[parent].deadline <= t.deadline)
			break;
		v[i] = v[parent];
		i = parent;
	}
	v[i] = t;
}

static void sift_down(struct weft__timer *v, size_t len, size_t i)
{
	struct weft__timer t = v[i];

	for (;;) {
		size_t first = 4 * i + 1;
		size_t best = i;
		int64_t best_deadline = t.deadline;

		for (size_t c = first; c < first + 4 && c < len; c++) {
			if (v[c].deadline < best_deadline) {
				best = c;
				best_deadline = v[c].deadline;
			}
		}
		if (best == i)
			break;
		v[i] = v[best];
		i = best;
	}
	v[i] = t;
}

static void heap_pop(struct weft__heap *h)
{
	h->v[0] = h->v[--h->len];
	if (h->len > 0)
		sift_down(h->v, h->len, 0);
}

/* Arm a timer that wakes @f with -ETIMEDOUT at @deadline. */
int weft__timer_arm(struct weft_loop *l, struct weft_fiber *f, int64_t deadline)
{
	struct weft__heap *h = &l->timers;

	if (h->len == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 1024;
		struct weft__timer *v = realloc(h->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	f->timer_seq = ++l->timer_seq;
	h->v[h->len] =
	    (struct weft__timer){ .deadline = deadline, .seq = f->timer_seq, .fiber = f };
	sift_up(h->v, h->len++);
	return 0;
}

/* The nearest live deadline, or WEFT_FOREVER; drops stale entries on top. */
int64_t weft__timer_next(struct weft_loop *l)
{
	struct weft__heap *h = &l->timers;

	while (h->len > 0 && h->v[0].fiber->timer_seq != h->v[0].seq)
		heap_pop(h);
	return h->len > 0 ? h->v[0].deadline : WEFT_FOREVER;
}

/* Wake every fiber whose timer is due at @now. */
void weft__timer_fire(struct weft_loop *l, int64_t now)
{
	struct weft__heap *h = &l->timers;

	while (h->len > 0 && h->v[0].deadline <= now) {
		struct weft__timer t = h->v[0];

		heap_pop(h);
		if (t.fiber->timer_seq == t.seq) {
			l->stats.timers_fired++;
			weft__fiber_wake(t.fiber, -ETIMEDOUT);
		}
	}
}

void weft__timers_fini(struct weft_loop *l)
{
	free(l->timers.v);
	l->timers.v = NULL;
	l->timers.len = 0;
	l->timers.cap = 0;
}

/* One IORING_OP_TIMEOUT until @until; 0 when it expires. */
static int sleep_kernel(struct weft_loop *l, struct weft_fiber *self, int64_t until)
{
	struct __kernel_timespec ts = { .tv_sec = until / WEFT_SEC, .tv_nsec = until % WEFT_SEC };
	struct weft__op op;
	struct io_uring_sqe *sqe = weft__op_sqe(l, self, false);

	io_uring_prep_timeout(sqe, &ts, 0, IORING_TIMEOUT_ABS);
	int rc = weft__op_await(l, self, &op, sqe, false);

	return rc == -ETIME ? -ETIMEDOUT : rc;
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

	int rc = l->cfg.timer_mode == WEFT_TIMERS_KERNEL
		     ? sleep_kernel(l, self, until)
		     : weft__fiber_park(l, self, WEFT__WAIT_EVENT, until);

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
	return weft_sleep_until(weft_now() + ns);
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

int64_t weft_deadline(void)
{
	struct weft_fiber *self = weft_self();

	return self ? self->deadline : WEFT_FOREVER;
}
