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

/* Whether a loop can be created here (any backend); tests exit 77 (skip) if not. */
int t_io_uring_usable(void);

/*
 * Whether loops made with the defaults run on io_uring (not on epoll, by
 * WEFT_BACKEND=epoll or the automatic fallback). io_uring-only tests call
 * it and skip() when it is 0; it says why once.
 */
int t_on_uring(void);

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

/* The process's resident memory now, in bytes (/proc/self/statm). */
size_t t_rss_bytes(void);

/*
 * Install a seccomp filter that makes the system calls @nrs (@n of them)
 * fail with @err, as a container's profile does. It cannot be removed:
 * call it in a forked child (t_fork). Return: 0, or -errno.
 */
int t_seccomp_refuse(const int *nrs, int n, int err);

/*
 * A connected TCP pair over loopback: sv[0] the client, sv[1] the server's
 * end. Unlike the other helpers, call it in a fiber. Return: 0, or -errno.
 */
int t_tcp_pair(int sv[2]);

/*
 * Run @child in a forked process, which must overflow a fiber's stack, and
 * assert that weft aborted it with a report saying @how ("guard page",
 * "red zone", ...) and naming the fiber: by "NAME" and
 * weft_spawn_opts.stack_size when @name is not NULL. Skips under valgrind;
 * under ASan its own report of the overflow passes too.
 */
void t_assert_overflow(void (*child)(void), const char *how, const char *name);

/* Whether the test runs under valgrind (meson's valgrind setup sets WEFT_TEST_VALGRIND). */
int t_under_valgrind(void);

#endif
