/* SPDX-License-Identifier: MIT */
/*
 * What loop.c gives the pools (pool.c): a destroy in two halves, so that
 * every loop of a pool can shut down (cancel its fibers, answer the
 * others' requests) while all of them are still alive, and only then be
 * freed.
 */
#ifndef WEFT_LOOP_H
#define WEFT_LOOP_H

#include "types.h"

#pragma GCC visibility push(hidden)

struct weft__quiet;

/*
 * Close @l's inbox, cancel its fibers and run it until none is left (or,
 * with a pool's quiescence @q, until the whole pool is quiet). On the
 * thread that runs @l.
 */
void weft__loop_shutdown(struct weft_loop *l, struct weft__quiet *q);
/* Free @l once it is shut down (and, in a pool, every other loop is too). */
void weft__loop_free(struct weft_loop *l);

#pragma GCC visibility pop

#endif
