/* SPDX-License-Identifier: MIT */
/*
 * The deadline heap (heap.h): a 4-ary min-heap by value, so that sifting
 * compares entries in one array and touches a node only to tell it where
 * it now is. A node that leaves early (a fiber woken by anything but its
 * deadline) is taken out in O(log n), as libuv's heap_remove does, so the
 * heap never holds more than what still waits.
 */
#include "heap.h"

#include <stdlib.h>

static inline bool before(const struct weft__hent *a, const struct weft__hent *b)
{
	return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static inline void put(struct weft__heap *h, size_t i, const struct weft__hent *e)
{
	h->v[i] = *e;
	e->node->index = (uint32_t)(i + 1);
}

static void sift_up(struct weft__heap *h, size_t i, struct weft__hent e)
{
	while (i > 0) {
		size_t parent = (i - 1) / 4;

		if (!before(&e, &h->v[parent]))
			break;
		put(h, i, &h->v[parent]);
		i = parent;
	}
	put(h, i, &e);
}

static void sift_down(struct weft__heap *h, size_t i, struct weft__hent e)
{
	for (;;) {
		size_t first = 4 * i + 1;
		size_t best = i;
		const struct weft__hent *b = &e;

		for (size_t c = first; c < first + 4 && c < h->len; c++) {
			if (before(&h->v[c], b)) {
				best = c;
				b = &h->v[c];
			}
		}
		if (best == i)
			break;
		put(h, i, b);
		i = best;
	}
	put(h, i, &e);
}

int weft__heap_reserve(struct weft__heap *h, size_t n)
{
	if (n <= h->cap)
		return 0;
	if (n > UINT32_MAX - 1)
		return -ENOMEM; /* a node's index is 32 bits */

	size_t cap = h->cap ? h->cap : 1024;

	while (cap < n)
		cap *= 2;

	struct weft__hent *v = realloc(h->v, cap * sizeof(*v));

	if (!v)
		return -ENOMEM;
	h->v = v;
	h->cap = cap;
	return 0;
}

void weft__heap_add(struct weft__heap *h, struct weft__hnode *node, int64_t deadline)
{
	assert(node->index == 0 && h->len < h->cap);
	sift_up(h, h->len++,
		(struct weft__hent){ .deadline = deadline, .seq = ++h->seq, .node = node });
}

int weft__heap_push(struct weft__heap *h, struct weft__hnode *node, int64_t deadline)
{
	int rc = h->len < h->cap ? 0 : weft__heap_reserve(h, h->len + 1);

	if (rc == 0)
		weft__heap_add(h, node, deadline);
	return rc;
}

void weft__heap_remove(struct weft__heap *h, struct weft__hnode *node)
{
	size_t i = node->index - 1;

	assert(node->index != 0 && i < h->len && h->v[i].node == node);
	node->index = 0;

	struct weft__hent last = h->v[--h->len];

	if (i == h->len)
		return;
	/* The last entry fills the hole, then moves whichever way it must. */
	if (i > 0 && before(&last, &h->v[(i - 1) / 4]))
		sift_up(h, i, last);
	else
		sift_down(h, i, last);
}

void weft__heap_fini(struct weft__heap *h)
{
	free(h->v);
	*h = (struct weft__heap){ 0 };
}
