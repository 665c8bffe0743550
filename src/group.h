/* SPDX-License-Identifier: MIT */
/*
 * The gather of group.c, with its placement open: weft_gather runs every
 * call on the caller's loop, weft_pool_gather (pool.c) spreads them over a
 * pool's loops. One implementation, one set of rules.
 */
#ifndef WEFT_GROUP_H
#define WEFT_GROUP_H

#include "types.h"

#pragma GCC visibility push(hidden)

/*
 * weft_gather with call i on @loops[i % @nloops]; @loops[0] is the
 * caller's loop, the others loops of its pool (alive while it runs).
 */
int weft__gather(weft_call *calls, size_t n, struct weft_loop *const *loops, unsigned nloops);

#pragma GCC visibility pop

#endif
