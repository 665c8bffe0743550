/* SPDX-License-Identifier: MIT */
/*
 * What every file of src/ uses and that depends on nothing else of weft:
 * the build's configuration, the public header, the intrusive list, the
 * sanitizer hooks, branch hints, the clock, weft__bug for broken invariants
 * and the thread binding of objects. Never installed.
 *
 * The files of src/, each calling only the ones below it (drawn from their
 * #include lines, which tests/check_shape.py checks for circles):
 *
 *   task.c pool.c                the public fiber and pool calls
 *   file.c net.c time.c sync.c chan.c group.c offload.c   the public calls
 *   loop.c                       create, run, destroy; the tick
 *   backend_uring.c backend_epoll.c   the kernel, behind backend.h
 *   op.c                         the await (and fallbacks of missing opcodes)
 *   workers.c                    the one worker pool (offload, epoll's files,
 *                                fallbacks, name resolution)
 *   remote.c                     everything across threads: the inbox,
 *                                posts, cross-loop spawn/join/cancel, the
 *                                remote work a loop still expects
 *   wait.c                       the one wait primitive
 *   fiber.c                      spawn, switch, park, wake, deadlines
 *   stack.c opdef.c opsys.c explain.c heap.c   leaves of their own kind
 *   types.h base.h               the shared types; this file
 *
 * `tests/check_shape.py --graph` prints the real graph, layer by layer.
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
