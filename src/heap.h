/* SPDX-License-Identifier: MIT */
/*
 * The one deadline heap of weft (heap.c): a 4-ary min-heap of nodes
 * embedded in whatever waits for a time (a parked fiber, an operation on
 * the epoll backend), ordered by (deadline, seq) so that equal deadlines
 * come out in the order they went in. A node knows its place, so anything
 * that ends early leaves the heap in O(log n). A leaf: it calls nothing
 * else of weft.
 */
#ifndef WEFT_HEAP_H
#define WEFT_HEAP_H

#include "base.h"

#pragma GCC visibility push(hidden)

/* Embedded in what waits: 1 + its index in a heap, 0 while in none. */
struct weft__hnode {
	uint32_t index;
};

struct weft__hent {
	int64_t deadline;
	uint64_t seq;
	struct weft__hnode *node;
};

struct weft__heap {
	struct weft__hent *v;
	size_t len;
	size_t cap;
	uint64_t seq;
};

/* Room for @n entries, so that weft__heap_add never allocates. Return: 0 or -ENOMEM. */
int weft__heap_reserve(struct weft__heap *h, size_t n);
/* Add @node (in no heap) at @deadline; room for it was reserved. */
void weft__heap_add(struct weft__heap *h, struct weft__hnode *node, int64_t deadline);
/* weft__heap_add, growing the heap first if it must. Return: 0 or -ENOMEM. */
int weft__heap_push(struct weft__heap *h, struct weft__hnode *node, int64_t deadline);
/* Take @node out; it must be in @h. */
void weft__heap_remove(struct weft__heap *h, struct weft__hnode *node);
void weft__heap_fini(struct weft__heap *h);

/* The earliest deadline, or WEFT_FOREVER for an empty heap. */
static inline int64_t weft__heap_next(const struct weft__heap *h)
{
	return h->len ? h->v[0].deadline : WEFT_FOREVER;
}

/* The node with the earliest deadline, or NULL. */
static inline struct weft__hnode *weft__heap_top(const struct weft__heap *h)
{
	return h->len ? h->v[0].node : NULL;
}

#pragma GCC visibility pop

#endif
