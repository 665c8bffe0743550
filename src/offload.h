/* SPDX-License-Identifier: MIT */
/*
 * Blocking calls on the loop's worker pool (offload.c): weft_offload, and
 * the abandonable job that name resolution runs.
 */
#ifndef WEFT_OFFLOAD_H
#define WEFT_OFFLOAD_H

#include "types.h"

#pragma GCC visibility push(hidden)

/*
 * Run @fn(@arg) on a worker while the fiber waits, up to its deadline or a
 * cancel. Return: 0 once @fn ran (@arg is the caller's again); else
 * -ETIMEDOUT, -ECANCELED, -ENOMEM, -EAGAIN or -EPERM (outside a fiber), and
 * @arg is dropped: by @drop(@arg) at once, or by the worker once @fn
 * returns if the fiber stopped waiting while it ran.
 */
int weft__offload_abandonable(weft_fn fn, void (*drop)(void *arg), void *arg);

#pragma GCC visibility pop

#endif
