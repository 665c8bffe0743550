/* SPDX-License-Identifier: MIT */
/*
 * The one intrusive list of weft: a circular, doubly linked ring of nodes
 * embedded in the records they link (fibers of a loop, members of a group,
 * waiters of a queue, operations pending on an fd). A list with a head is a
 * ring through a sentinel node; a ring without one (the operations on one
 * fd) works with the same calls. A node that is on no list points at itself.
 */
#ifndef WEFT_LIST_H
#define WEFT_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct weft__list {
	struct weft__list *next;
	struct weft__list *prev;
};

#define weft__container_of(ptr, type, member)                                                      \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void weft__list_init(struct weft__list *n)
{
	n->next = n;
	n->prev = n;
}

static inline bool weft__list_empty(const struct weft__list *n)
{
	return n->next == n;
}

/* Insert @n before @at: at the tail when @at is the head. */
static inline void weft__list_add_before(struct weft__list *at, struct weft__list *n)
{
	n->next = at;
	n->prev = at->prev;
	at->prev->next = n;
	at->prev = n;
}

/* Take @n out of its list; it is then a list of its own. */
static inline void weft__list_del(struct weft__list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n;
	n->prev = n;
}

#define weft__list_for_each(pos, head) for (pos = (head)->next; pos != (head); pos = pos->next)

#endif
