/* SPDX-License-Identifier: MIT */
/*
 * What every file of src/ uses and that depends on nothing else of weft:
 * the build's configuration, the public header, the intrusive list, the
 * sanitizer hooks, branch hints, the clock, weft__bug for broken invariants
 * and the thread binding of objects. Never installed.
 *
 * The files of src/, layer by layer as their #include lines draw them
 * (tests/check_shape.py --graph prints this, and fails on a circle); each
 * calls only the layers below, and reaches a higher one only through a hook
 * it was handed (a backend's function table, a waiter's wake):
 *
 *  11  pool.c                      pools of loops, weft_pool_gather
 *  10  file.c loop.c net.c recvbuf.c
 *   9  accept.c backend_epoll.c backend_uring.c recvmulti.c splice.c time.c
 *   8  epoll_setup.c op.c task.c uring_setup.c
 *   7  chan.c group.c offload.c opdef.c remote.c sync.c
 *   6  opsys.c sigwait.c wait.c
 *   5  bufs.c fiber.c workers.c
 *   4  fdtable.c inbox.h stack.c stackfault.c
 *   3  types.h                     the shared types
 *   2  explain.c heap.c reader.c
 *   1  base.h base.c               this file
 *   0  backend.h list.h sanitize.h
 */
#ifndef WEFT_BASE_H
#define WEFT_BASE_H

#include "config.h"
#include "weft.h"
#include "list.h"
#include "sanitize.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Everything declared in src/ stays inside libweft: reached without the GOT or PLT. */
#pragma GCC visibility push(hidden)

#define WEFT__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT__UNLIKELY(x) __builtin_expect(!!(x), 0)

struct weft_fiber;
struct weft_loop;

/* The loop running on this thread (NULL outside weft_loop_run). */
extern __thread struct weft_loop *weft__tls_loop __attribute__((tls_model("initial-exec")));

/*
 * A broken invariant (a corrupted stack, a completion for an operation not
 * in flight): print the fiber (its id and function; id 0: the scheduler),
 * file and line, and abort, in release builds too. WEFT__BUG(f, what) takes
 * the fiber, or NULL.
 */
_Noreturn void weft__bug(uint32_t id, const void *fn, const char *file, int line, const char *what);
#define WEFT__BUG(f, what)                                                                         \
	__extension__({                                                                            \
		const struct weft_fiber *bug_f_ = (f);                                             \
		weft__bug(bug_f_ ? bug_f_->id : 0,                                                 \
			  bug_f_ ? (const void *)(uintptr_t)bug_f_->fn : NULL, __FILE__, __LINE__, \
			  (what));                                                                 \
	})

/* Now on CLOCK_MONOTONIC, in ns. */
static inline int64_t weft__clock_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

/*
 * Objects that belong to one thread (channels, mutexes, conditions, groups)
 * bind to the first thread that uses them: 0 there, -EXDEV on any other. A
 * thread is known by the address of its copy of weft__thread_tag.
 */
extern __thread char weft__thread_tag __attribute__((tls_model("initial-exec")));
static inline const void *weft__thread_id(void)
{
	return &weft__thread_tag;
}

static inline int weft__bind_thread(const void *_Atomic *home)
{
	const void *me = weft__thread_id();
	const void *h = atomic_load_explicit(home, memory_order_relaxed);

	if (WEFT__LIKELY(h == me))
		return 0;
	if (!h && atomic_compare_exchange_strong_explicit(home, &h, me, memory_order_relaxed,
							  memory_order_relaxed))
		return 0;
	return h == me ? 0 : -EXDEV;
}

#pragma GCC visibility pop

#endif
