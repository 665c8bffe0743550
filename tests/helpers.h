/* SPDX-License-Identifier: MIT */
/* Test helpers: t_ prefix. None of them may be called inside a fiber. */
#ifndef WEFT_TEST_HELPERS_H
#define WEFT_TEST_HELPERS_H

#include <weft.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Whether a ring can be created here; tests exit 77 (skip) if not. */
int t_io_uring_usable(void);

/*
 * Run @fn(@arg) as the first fiber of a fresh loop made from @cfg (NULL:
 * defaults, which honour WEFT_RING_MODE), then destroy the loop. Returns
 * fn's result, or a negative error of the loop. Stats of the loop, taken
 * before destroy, go to @stats when it is not NULL.
 */
int t_run_cfg(const weft_config *cfg, weft_fn fn, void *arg, weft_stats *stats);
int t_run(weft_fn fn, void *arg);

/*
 * Run @child in a forked process and return its wait status; its stderr is
 * captured into @err (NUL-terminated, at most @errlen - 1 bytes).
 */
int t_fork(void (*child)(void), char *err, size_t errlen);

#endif
