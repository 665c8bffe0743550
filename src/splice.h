/* SPDX-License-Identifier: MIT */
/*
 * weft_splice and weft_sendfile (splice.c), and the pipes a loop keeps for
 * weft_sendfile on io_uring.
 */
#ifndef WEFT_SPLICE_H
#define WEFT_SPLICE_H

#include "types.h"

#pragma GCC visibility push(hidden)

/* Close the loop's pipes (weft_loop_destroy). */
void weft__pipes_free(struct weft_loop *l);

#pragma GCC visibility pop

#endif
