/* SPDX-License-Identifier: MIT */
/*
 * The stack pools (stack.c): slabs of fiber stacks with their control
 * blocks, one pool for the loop's stack size and one per size class, guard
 * pages or red zones, trimming of cold stacks. (stackfault.h reports a
 * fault in a guard page.)
 */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include "types.h"

#pragma GCC visibility push(hidden)

/* Set up @s for @cfg (nothing is mapped until the first allocation). */
void weft__stacks_init(struct weft__stacks *s, const weft_config *cfg);
/* The pool for stacks of @size bytes (0: the loop's own); -EINVAL past WEFT_STACK_SIZE_MAX. */
int weft__stack_pool_for(const struct weft__stacks *s, size_t size);
/* Pool @pool's stack freed last, with a zeroed control block; NULL when out of memory. */
struct weft_fiber *weft__stack_alloc(struct weft__stacks *s, unsigned pool);
/* Give a stack back to its pool: its fiber is DONE and owes the kernel nothing. */
void weft__stack_free(struct weft__stacks *s, struct weft_fiber *f);
void weft__stacks_fini(struct weft__stacks *s);
/* At a switch away from an unguarded stack: abort if it overflowed. */
void weft__stack_check(const struct weft__stacks *s, const struct weft_fiber *f);
#if WEFT_STACK_CENSUS
void weft__census_record(struct weft_loop *l, const struct weft_fiber *f);
void weft__census_report(struct weft_loop *l);
#endif

#pragma GCC visibility pop

#endif
