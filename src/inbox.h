/* SPDX-License-Identifier: MIT */
/*
 * The one lock-free hand-off of weft: a loop's inbox. Any thread pushes a
 * record (struct weft__remote) on it and wakes the loop's backend if the
 * inbox was empty (the first record since the loop last looked); the loop
 * takes them all at once, after its tick, oldest first, and runs them on
 * its own thread (remote.c). Records to a loop of a pool are counted in the
 * pool's flight from the push until they have run, so that the pool can
 * tell when nothing is on its way to any of its loops.
 */
#ifndef WEFT_INBOX_H
#define WEFT_INBOX_H

#include "types.h"

#pragma GCC visibility push(hidden)

/*
 * Any thread: hand @r to @l. @l is alive when the push begins (what the
 * record answers keeps it so); once @r is in, @l may run it, finish and be
 * destroyed at once, so the push counts itself in `pushing`, which
 * weft__loop_free waits out before @l's memory and backend go.
 */
static inline void weft__inbox_push(struct weft_loop *l, struct weft__remote *r)
{
	struct weft__remote *head = atomic_load_explicit(&l->inbox, memory_order_relaxed);

	atomic_fetch_add_explicit(&l->pushing, 1, memory_order_seq_cst);
	if (l->flight)
		atomic_fetch_add_explicit(l->flight, 1, memory_order_acq_rel);
	do
		r->next = head;
	while (!atomic_compare_exchange_weak_explicit(&l->inbox, &head, r, memory_order_release,
						      memory_order_relaxed));
	if (!head)
		l->be->wake(l); /* the first since the loop last looked: it must look again */
	atomic_fetch_sub_explicit(&l->pushing, 1, memory_order_seq_cst);
}

static inline bool weft__inbox_empty(const struct weft_loop *l)
{
	return !atomic_load_explicit(&l->inbox, memory_order_relaxed);
}

/* The loop's thread: take every record, oldest first (a list through next). */
static inline struct weft__remote *weft__inbox_take(struct weft_loop *l)
{
	struct weft__remote *r = atomic_exchange_explicit(&l->inbox, NULL, memory_order_acquire);
	struct weft__remote *fifo = NULL;

	while (r) {
		struct weft__remote *next = r->next;

		r->next = fifo;
		fifo = r;
		r = next;
	}
	return fifo;
}

#pragma GCC visibility pop

#endif
