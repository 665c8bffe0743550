/* SPDX-License-Identifier: MIT */
/* weft_signal_wait's per-loop state (sigwait.c). */
#ifndef WEFT_SIGWAIT_H
#define WEFT_SIGWAIT_H

#include "types.h"

#pragma GCC visibility push(hidden)

/* Close the loop's signalfd, if weft_signal_wait made one. */
void weft__sigwait_fini(struct weft_loop *l);

#pragma GCC visibility pop

#endif
