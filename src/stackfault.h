/* SPDX-License-Identifier: MIT */
/*
 * The guard-page fault reporter (stackfault.c): a SIGSEGV handler that
 * names a fiber whose stack overflowed into its guard page, installed while
 * any loop exists.
 */
#ifndef WEFT_STACKFAULT_H
#define WEFT_STACKFAULT_H

#include "types.h"

#pragma GCC visibility push(hidden)

/* At loop creation: the handler, and this thread's alternate signal stack if it has none. */
void weft__stack_segv_install(void);
/* At loop destruction: the last loop of the process puts the old handler back. */
void weft__stack_segv_release(void);

#pragma GCC visibility pop

#endif
