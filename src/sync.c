/* SPDX-License-Identifier: MIT */
/*
 * The mutex, condition variable and semaphore of fibers, on the wait queues
 * of wait.c.
 * The fiber that completes a wait unlinks the waiter, fills it and wakes its
 * owner, so a woken waiter never touches the queue again. A waiter woken by
 * its deadline or a cancel is still linked and unlinks itself, unless a
 * waker completed it first: then the hand-off stands and the wait succeeded
 * (the mutex was handed over, the signal taken).
 */
#include "wait.h"
#include "fiber.h"

#include <limits.h>
#include <stdlib.h>

/* ---- mutex ------------------------------------------------------------------ */

struct weft_mutex {
	struct weft_fiber *owner;
	struct weft__waitq waiters;
	const void *_Atomic home; /* its thread (weft__bind_thread) */
};

int weft_mutex_create(weft_mutex **out)
{
	if (!out)
		return -EINVAL;

	struct weft_mutex *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	*out = m;
	return 0;
}

/* Take @m back after a condition wait: uninterrupted, as pthread_cond_wait does. */
static void lock_handoff(struct weft_mutex *m, struct weft_fiber *self)
{
	struct weft__waiter w;

	if (!m->owner) {
		m->owner = self;
		return;
	}
	weft__waiter_init(&w, 0);
	weft__waitq_wait(&m->waiters, &w);
}

int weft_mutex_lock(weft_mutex *m)
{
	struct weft_fiber *self;
	struct weft__waiter w;

	if (!m)
		return -EINVAL;

	int rc = weft__fiber_check(&self);

	if (rc == 0)
		rc = weft__bind_thread(&m->home);
	if (rc < 0)
		return rc;
	if (m->owner == self)
		return -EDEADLK;
	if (!m->owner) {
		m->owner = self;
		return 0;
	}
	weft__waiter_init(&w, WEFT__WAIT_EARLY);
	return weft__waitq_wait(&m->waiters, &w); /* owner set by unlock */
}

int weft_mutex_trylock(weft_mutex *m)
{
	struct weft_fiber *self = weft_self();

	if (!m)
		return -EINVAL;
	if (!self)
		return -EPERM;
	if (weft__bind_thread(&m->home) < 0)
		return -EXDEV;
	if (m->owner)
		return m->owner == self ? -EDEADLK : -EBUSY;
	m->owner = self;
	return 0;
}

void weft_mutex_unlock(weft_mutex *m)
{
	struct weft_fiber *self = weft_self();

	if (!m || weft__bind_thread(&m->home) < 0)
		return; /* another thread's mutex: this one cannot hold it */
	if (m->owner != self)
		WEFT__BUG(self, "weft_mutex_unlock of a mutex this fiber does not hold");

	struct weft__waiter *w = weft__waitq_pop(&m->waiters);

	m->owner = w ? w->fiber : NULL; /* FIFO hand-off: no barging */
	if (w)
		weft__waiter_wake(w, 0);
}

void weft_mutex_destroy(weft_mutex *m)
{
	if (!m)
		return;
	if (m->owner || !weft__waitq_empty(&m->waiters))
		WEFT__BUG(weft_self(), "weft_mutex_destroy of a held mutex");
	free(m);
}

/* ---- condition variable ------------------------------------------------------ */

struct weft_cond {
	struct weft__waitq waiters;
	const void *_Atomic home; /* its thread (weft__bind_thread) */
};

int weft_cond_create(weft_cond **out)
{
	if (!out)
		return -EINVAL;

	struct weft_cond *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	*out = c;
	return 0;
}

int weft_cond_wait(weft_cond *c, weft_mutex *m)
{
	struct weft_fiber *self = weft_self();
	struct weft__waiter w;

	if (!c || !m)
		return -EINVAL;
	if (!self)
		return -EPERM;
	if (weft__bind_thread(&c->home) < 0 || weft__bind_thread(&m->home) < 0)
		return -EXDEV;
	if (m->owner != self)
		return -EPERM;

	int rc = self->cancelled ? -ECANCELED : 0;

	if (rc == 0 && self->deadline != WEFT_FOREVER && weft_now() >= self->deadline)
		rc = -ETIMEDOUT;
	if (rc < 0)
		return rc; /* still holding m, as promised */
	weft_mutex_unlock(m);
	weft__waiter_init(&w, WEFT__WAIT_EARLY);
	rc = weft__waitq_wait(&c->waiters, &w);
	lock_handoff(m, self);
	return rc;
}

void weft_cond_signal(weft_cond *c)
{
	struct weft__waiter *w =
	    c && weft__bind_thread(&c->home) == 0 ? weft__waitq_pop(&c->waiters) : NULL;

	if (w)
		weft__waiter_wake(w, 0);
}

void weft_cond_broadcast(weft_cond *c)
{
	struct weft__waiter *w;

	if (!c || weft__bind_thread(&c->home) < 0)
		return;
	while ((w = weft__waitq_pop(&c->waiters)))
		weft__waiter_wake(w, 0);
}

void weft_cond_destroy(weft_cond *c)
{
	if (!c)
		return;
	if (!weft__waitq_empty(&c->waiters))
		WEFT__BUG(weft_self(), "weft_cond_destroy with fibers waiting on it");
	free(c);
}

/* ---- semaphore ---------------------------------------------------------------- */

struct weft_sem {
	unsigned count; /* permits free, only while nobody waits */
	struct weft__waitq waiters;
	const void *_Atomic home; /* its thread (weft__bind_thread) */
};

int weft_sem_create(weft_sem **out, unsigned count)
{
	if (!out)
		return -EINVAL;

	struct weft_sem *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->count = count;
	*out = s;
	return 0;
}

int weft_sem_acquire(weft_sem *s)
{
	struct weft_fiber *self;
	struct weft__waiter w;

	if (!s)
		return -EINVAL;

	int rc = weft__fiber_check(&self);

	if (rc == 0)
		rc = weft__bind_thread(&s->home);
	if (rc < 0)
		return rc;
	/* FIFO: a free permit goes to the caller only if nobody waits before it. */
	if (s->count > 0 && weft__waitq_empty(&s->waiters)) {
		s->count--;
		return 0;
	}
	weft__waiter_init(&w, WEFT__WAIT_EARLY);
	return weft__waitq_wait(&s->waiters, &w); /* 0: a release handed it the permit */
}

int weft_sem_try_acquire(weft_sem *s)
{
	if (!s)
		return -EINVAL;
	if (weft__bind_thread(&s->home) < 0)
		return -EXDEV;
	if (s->count == 0 || !weft__waitq_empty(&s->waiters))
		return -EAGAIN;
	s->count--;
	return 0;
}

void weft_sem_release(weft_sem *s)
{
	if (!s || weft__bind_thread(&s->home) < 0)
		return; /* another thread's semaphore: nothing it could hand over */

	struct weft__waiter *w = weft__waitq_pop(&s->waiters);

	if (w) {
		weft__waiter_wake(w, 0); /* the permit goes straight to the longest waiter */
		return;
	}
	if (s->count == UINT_MAX)
		WEFT__BUG(weft_self(),
			  "weft_sem_release past UINT_MAX permits (released more than acquired)");
	s->count++;
}

unsigned weft_sem_value(const weft_sem *s)
{
	return s ? s->count : 0;
}

void weft_sem_destroy(weft_sem *s)
{
	if (!s)
		return;
	if (!weft__waitq_empty(&s->waiters))
		WEFT__BUG(weft_self(), "weft_sem_destroy with fibers waiting on it");
	free(s);
}
