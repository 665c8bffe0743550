/* SPDX-License-Identifier: MIT */
/*
 * weft: stackful fibers on an io_uring completion core.
 *
 * One loop per thread, one io_uring ring per loop. A fiber's call reads like
 * a blocking call; underneath it prepares an SQE, parks, and is resumed when
 * its CQE arrives.
 *
 * Errors are returned as negative errno values (-ETIMEDOUT, -ECANCELED, ...;
 * this header includes <errno.h> for their names). weft never reports an
 * error through errno, but the C library calls it makes (socket(2), bind(2),
 * malloc, getaddrinfo) may change errno: do not expect it to survive a weft
 * call.
 *
 * Threads: a loop belongs to the thread that created it until its first
 * weft_loop_run, then to the thread that ran it. Channels, mutexes,
 * conditions and groups belong to the first thread that uses them (a call
 * from another thread fails -EXDEV rather than race). Nothing here is
 * thread-safe except where a comment says so (weft_loop_post, shared
 * channels, weft_pool_cancel, the calls marked "any thread"). Every thread
 * weft starts (a pool's loops beyond the first, worker threads) has every
 * signal blocked: signals reach only the program's own threads.
 *
 * A blocking libc call (getaddrinfo, a read of a slow disk without weft,
 * sleep(3)) made inside a fiber stalls every fiber of its loop.
 *
 * C++: weft is C. An exception must not leave a fiber's function: catch it
 * there. One that does reaches the fiber's first frame, which has no caller
 * to unwind into, and the program ends in std::terminate (no destructor of
 * another fiber runs).
 *
 * SIGSEGV: while any loop exists, weft's handler runs first: a fault in a
 * fiber's guard page is reported naming the fiber, and the process aborts;
 * any other fault goes to the handler that was installed before (or the
 * default action). The handler runs on an alternate signal stack of 64 KiB
 * that weft gives each thread that creates a loop and has none (freed when
 * the thread exits). The last loop destroyed puts the previous handler back.
 *
 * fork(): a loop's ring memory is not inherited (MADV_DONTFORK), so in the
 * child of a process with live loops no loop of the parent may be used, nor
 * any weft call made on a thread that had one; the child may exec or _exit,
 * as after fork in a threaded program, or (forked outside every fiber)
 * create new loops on a new thread. A child that touches an inherited loop
 * crashes instead of corrupting the parent's ring.
 */
#ifndef WEFT_H
#define WEFT_H

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct statx;

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; what this header declares is its API. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 5
#define WEFT_VERSION_PATCH 0

/* Time is int64_t nanoseconds on CLOCK_MONOTONIC. */
#define WEFT_USEC ((int64_t)1000)
#define WEFT_MSEC ((int64_t)1000000)
#define WEFT_SEC ((int64_t)1000000000)
/* A deadline that never passes. */
#define WEFT_FOREVER ((int64_t)-1)

typedef struct weft_loop weft_loop;
typedef struct weft_fiber weft_fiber;

/* The body of a fiber. Its return value is the fiber's result. */
typedef int (*weft_fn)(void *arg);

/*
 * ---- loop -----------------------------------------------------------------
 */

/* How the ring is set up; see weft_config.ring_mode. */
enum weft_ring_mode {
	WEFT_RING_AUTO = 0,	     /* the best the kernel allows, in the order below */
	WEFT_RING_DEFER_TASKRUN = 1, /* SINGLE_ISSUER | DEFER_TASKRUN (Linux 6.1) */
	WEFT_RING_COOP_TASKRUN = 2,  /* COOP_TASKRUN | TASKRUN_FLAG (Linux 5.19) */
	WEFT_RING_PLAIN = 3,	     /* no task-run flags (Linux 5.11 and later) */
};

/*
 * Which backend talks to the kernel; see weft_config.backend. Every call of
 * this header works on either, with the same results, deadlines and
 * cancellation.
 */
enum weft_backend {
	WEFT_BACKEND_AUTO = 0,	/* io_uring, or epoll where io_uring is refused */
	WEFT_BACKEND_URING = 1, /* io_uring only: set-up fails where it is refused */
	WEFT_BACKEND_EPOLL = 2, /* epoll and worker threads, never io_uring */
};

/* How weft_sleep waits; see weft_config.timer_mode. */
enum weft_timer_mode {
	WEFT_TIMERS_HEAP = 0,	/* a timer heap in the loop and one kernel wake-up per tick */
	WEFT_TIMERS_KERNEL = 1, /* one IORING_OP_TIMEOUT per sleep */
};

/*
 * Loop settings. Fill with weft_config_init() first, then change fields:
 * new fields take space from reserved[], so the size stays the same.
 */
/* weft_config.stack_guards: a guard page below every stack, or weft_spawn fails -ENOMEM. */
#define WEFT_STACK_GUARDS_ALL UINT32_MAX
/*
 * weft_config.stack_guards, the default: a guard page below every stack
 * while the kernel allows it, then unguarded stacks, counted and said once.
 */
#define WEFT_STACK_GUARDS_AUTO (UINT32_MAX - 1)

typedef struct weft_config {
	/*
	 * SQ ring entries, a power of two in [2, 32768] (an op and its linked
	 * timeout take two at once). Default 256.
	 */
	uint32_t sq_entries;
	/* CQ ring entries, at least twice sq_entries. 0: 8 * sq_entries. */
	uint32_t cq_entries;
	/*
	 * enum weft_ring_mode. weft_config_init() reads the environment
	 * variable WEFT_RING_MODE (auto, defer, coop, plain) for it.
	 */
	uint32_t ring_mode;
	/* enum weft_timer_mode. Default WEFT_TIMERS_HEAP. */
	uint32_t timer_mode;
	/*
	 * Bytes of stack per fiber, rounded up to whole pages, at least one
	 * page. Default 64 KiB. Only the pages a fiber touches cost memory.
	 * One page (4096 bytes, 64 fewer without a guard page) holds
	 * weft's own calls (measured with -Dstack_census: 0.2-0.9 KiB on
	 * either backend) and frames of a few hundred bytes; it does
	 * not hold the printf family (about 2 KiB), getaddrinfo or other deep
	 * libc calls (give those to weft_offload), nor a program bound lazily:
	 * link with -Wl,-z,now, as weft's dependency and .pc files do, or the
	 * first call of each function runs the dynamic linker (about 3 KiB) on
	 * the fiber's stack. Sanitizer builds need more. One fiber may have
	 * another size: weft_spawn_with. At most WEFT_STACK_SIZE_MAX.
	 */
	size_t stack_size;
	/*
	 * Guard pages below stacks. On Linux 6.13 and later a guard page is a
	 * page-table marker (MADV_GUARD_INSTALL) that costs no memory mapping,
	 * and every value but 0 guards every stack. Before 6.13 (Debian 12's
	 * 6.1, ...) a guard page is an mprotect()ed page that costs two
	 * mappings, limited by vm.max_map_count (65530 on a stock kernel): weft
	 * leaves the program an eighth of it (at least 4096) and guards stacks
	 * with the rest (about 26,000-28,000 stacks). Past that budget:
	 *   - WEFT_STACK_GUARDS_AUTO (the default of weft_config_init and of a
	 *     NULL config): the stacks past the budget have no guard page but a
	 *     red zone (below); weft_stats.stacks_unguarded counts them, and the
	 *     first time it happens in the process weft says so in one line on
	 *     stderr (the cause, and how to raise vm.max_map_count or ask for
	 *     WEFT_STACK_GUARDS_ALL). Spawning goes on: a server is not capped
	 *     at ~28,000 fibers on a stock kernel.
	 *   - WEFT_STACK_GUARDS_ALL: all or nothing. weft_spawn fails -ENOMEM
	 *     rather than hand out an unguarded stack (weft_loop_explain(-ENOMEM)
	 *     says why). Before 0.5.0 this was the default.
	 *   - Any other number N: the first N stacks are guarded, the rest are
	 *     not, by the program's choice (stacks of those N that the budget
	 *     left unguarded count in stacks_unguarded; nothing is printed).
	 *   - 0: no guard pages at all.
	 * The environment variable WEFT_GUARD_MARKERS=off makes weft use
	 * mprotect() even where markers work (for tests).
	 *
	 * A fault in a guard page aborts with a message naming the fiber, as
	 * long as the overflowing frame is smaller than the guard page (4 KiB;
	 * gcc's -fstack-clash-protection makes larger frames probe it). An
	 * unguarded stack has instead a red zone of 64 bytes below it, checked
	 * with the stack pointer at every switch away from the fiber: an
	 * overflow that writes the red zone, or is still out of bounds at the
	 * switch, aborts naming the fiber; a frame that leaps over the red zone
	 * without writing it corrupts the top of another fiber's stack
	 * undetected. Unguarded one-page stacks go into huge-page-backed slabs
	 * (the million-fiber set-up: stack_size 4096, stack_guards 0). Guarded
	 * and unguarded stacks cost the same memory.
	 */
	uint32_t stack_guards;
	/* Most fibers alive at once; weft_spawn fails -EAGAIN past it. Default 4194304. */
	uint32_t max_fibers;
	/*
	 * Most weft_offload calls of this loop that run at once on its worker
	 * threads, in [1, 1024]. Default 4. The loop has one pool of worker
	 * threads, started as jobs need them; its other jobs (the epoll
	 * backend's file operations, operations the kernel lacks the opcode
	 * of, name resolution) are bounded apart, by iowq_bounded (default 16),
	 * so neither kind can starve the other.
	 */
	uint32_t offload_threads;
	/*
	 * Caps on io_uring's own kernel worker threads for this ring
	 * (IORING_REGISTER_IOWQ_MAX_WORKERS, Linux 5.15): bounded ones do
	 * file and disk work, unbounded ones wait on sockets and pipes that
	 * cannot be polled. 0 leaves the kernel's default (bounded: the CPU
	 * count; unbounded: RLIMIT_NPROC). iowq_bounded also bounds weft's own
	 * worker threads for operations and name lookups (the epoll backend's
	 * file operations, fallbacks of missing opcodes): at most that many run
	 * at once, 16 when it is 0.
	 */
	uint32_t iowq_bounded;
	uint32_t iowq_unbounded;
	/*
	 * WEFT_CONFIG_* flags. WEFT_CONFIG_SQPOLL: a kernel thread polls the
	 * SQ (IORING_SETUP_SQPOLL), so submitting costs no system call while
	 * that thread is awake; the loop still enters the kernel to wait.
	 * The thread spins on a CPU of its own for sqpoll_idle_ms after the
	 * last submission: on a machine with few CPUs it competes with the
	 * loop. With SQPOLL the ring runs in plain mode: the kernel refuses
	 * DEFER_TASKRUN and COOP_TASKRUN beside it, so ring_mode must be
	 * WEFT_RING_AUTO or WEFT_RING_PLAIN. Default 0.
	 */
	uint32_t flags;
	/* WEFT_CONFIG_SQPOLL: idle time before the SQ thread sleeps. 0: 1000 ms. */
	uint32_t sqpoll_idle_ms;
	/*
	 * enum weft_backend. weft_config_init() reads the environment variable
	 * WEFT_BACKEND (auto, uring, epoll) for it. AUTO (the default) falls
	 * back to epoll when io_uring_setup fails with ENOSYS (no io_uring, or a
	 * seccomp profile hiding it), EPERM or EACCES (a seccomp or LSM policy,
	 * kernel.io_uring_disabled) or ENOMEM (RLIMIT_MEMLOCK before Linux
	 * 5.12); an error of weft's own settings (EINVAL) is returned instead.
	 * weft_loop_backend() says which one a loop got, weft_loop_explain(0)
	 * why. On epoll, operations on regular files and the other operations
	 * epoll cannot wait for (fsync, openat, statx, ...) run on the loop's
	 * worker threads (at most iowq_bounded at once, default 16), each on a
	 * duplicate of its descriptors, as io_uring holds a reference to the
	 * file (so a close never waits for a worker; at the RLIMIT_NOFILE limit
	 * such an operation fails -EMFILE). The fiber's deadline and a cancel
	 * end every one of them on time: one that reads and fills no data
	 * buffer (openat, statx, fsync, unlink, rename, mkdir, fallocate,
	 * ftruncate) is left to the worker, which releases what it makes later
	 * (an fd); a read or write a worker runs in the caller's buffer is
	 * waited for, as with io_uring. Reads served by the page cache and every
	 * socket operation run on the loop's thread. SQPOLL, ring_mode and
	 * sq_entries mean nothing there. See weft_connect for the one fd flag
	 * the epoll backend touches.
	 */
	uint32_t backend;
	/*
	 * Most weft_loop_post records that may wait in the loop's inbox (posted,
	 * not yet run): past it weft_loop_post fails -EAGAIN at once, so a
	 * poster that outruns the loop is told to slow down instead of queuing
	 * without bound. 0: 65536 (about 2 MiB of records).
	 */
	uint32_t max_posts;
	/*
	 * Buffers weft_recv_buf may lend at once (a power of two, at most
	 * 32768; 0: 1024), and the size of each (at least 64 bytes, at most
	 * 1 MiB; 0: 4096). Their memory is reserved at the first
	 * weft_recv_buf and touched only as buffers are used; a loop that
	 * never calls it has none.
	 */
	uint32_t recv_buffers;
	uint32_t recv_buffer_size;
	uint32_t reserved32;
	uint64_t reserved[3];
} weft_config;

/* weft_config.flags */
#define WEFT_CONFIG_SQPOLL (1u << 0)
/* In a pool: pin loop i's thread to the i-th CPU this process may run on. */
#define WEFT_CONFIG_PIN (1u << 1)
/*
 * weft_recv_buf on a stream socket keeps a multishot receive armed (io_uring,
 * Linux 6.0; see "lent buffers" below for the rules it brings). Off by
 * default: on the loopback benchmarks it halves submissions without a
 * measurable gain. WEFT_MULTISHOT_RECV=on turns it on, =off off, whatever
 * the flag says.
 */
#define WEFT_CONFIG_MULTISHOT_RECV (1u << 2)

/*
 * Counters of one loop, for benchmarks and tests. All counts since
 * weft_loop_create.
 */
typedef struct weft_stats {
	/* system calls the loop made to reach the kernel: io_uring_enter, or epoll_wait */
	uint64_t enters;
	uint64_t sqes;	       /* SQEs submitted */
	uint64_t cqes;	       /* CQEs reaped */
	uint64_t switches;     /* context switches between fibers and the loop */
	uint64_t fibers;       /* fibers alive now (spawned, not yet returned) */
	uint64_t fibers_peak;  /* most fibers alive at once */
	uint64_t spawned;      /* fibers spawned */
	uint64_t timers_fired; /* sleeps and deadlines that expired in the timer heap */
	uint64_t sq_full; /* times an SQE was wanted with the SQ full (flushed, never failed) */
	/*
	 * Times the loop found the kernel holding completions back because the
	 * CQ was full (IORING_SQ_CQ_OVERFLOW); the next enter flushes them, and
	 * none is lost. A completion the kernel had to drop would leave its
	 * fiber parked for ever, so weft aborts with a message instead.
	 */
	uint64_t cq_overflow;
	uint64_t inflight;	 /* SQEs whose final CQE has not been reaped yet */
	uint64_t stacks;	 /* stacks mapped (free and in use) */
	uint64_t stacks_guarded; /* of those, with a guard page */
	/*
	 * Bytes of one stack slot: weft_config.stack_size rounded up to whole
	 * pages. A fiber can use all of it on a guarded stack (the guard page
	 * comes on top), 64 bytes less on an unguarded one (the red zone of
	 * the stack above). Control blocks live apart from the stacks.
	 */
	uint64_t stack_size;
	uint32_t ring_mode;  /* enum weft_ring_mode in use (0 on epoll) */
	uint32_t ring_flags; /* IORING_SETUP_* flags in use (0 on epoll) */
	uint64_t timers;     /* fibers parked with a deadline now (entries in the timer heap) */
	uint32_t backend;    /* enum weft_backend that runs: URING or EPOLL */
	uint32_t bufs_lent;  /* weft_recv_buf's buffers lent now (from the loop's set) */
	/*
	 * Freed stacks given back to the kernel but for their top page: the 64
	 * most recently freed stacks keep every page their fibers touched; once
	 * 256 more hold pages below the top one, the oldest are trimmed
	 * (MADV_DONTNEED), so memory follows the fibers alive, not the peak.
	 */
	uint64_t stacks_trimmed;
	/*
	 * Builds configured with -Dstack_census=true: the deepest stack use of
	 * any fiber of this loop that has ended, in bytes. 0 in other builds.
	 */
	uint64_t stack_deepest;
	/*
	 * weft_loop_post calls that arrived but whose fiber could not be
	 * spawned (out of memory, or max_fibers reached): dropped.
	 */
	uint64_t posts_dropped;
	/*
	 * Wake-ups this loop sent to other loops (for posts, cross-loop joins,
	 * shared channels): through IORING_OP_MSG_RING to their rings (io_uring
	 * to io_uring, Linux 5.18+), or through their eventfd (epoll, older
	 * kernels, or WEFT_WAKE=eventfd). Threads that run no loop always use
	 * the eventfd.
	 */
	uint64_t wakes_msg_ring;
	uint64_t wakes_eventfd;
	uint32_t bufs_lent_peak; /* most of the loop's own buffers lent at once */
	/*
	 * Receives of weft_recv_buf that went into a buffer allocated for them
	 * because every buffer was lent (io_uring's -ENOBUFS), or the fd held
	 * its bound (modulo 2^32).
	 */
	uint32_t bufs_fallbacks;
	/*
	 * Since 0.5.0. Times weft_accept armed a listener's multishot accept
	 * again after it had ended: the kernel ended it, or weft stopped it
	 * because the listener's queue of accepted connections was full.
	 */
	uint64_t multishot_rearms;
	/*
	 * Since 0.5.0. Of stacks, those that stack_guards asked a guard page
	 * for but that have none, because the vm.max_map_count budget ran out
	 * (Linux before 6.13, or WEFT_GUARD_MARKERS=off; see stack_guards):
	 * they have the red zone of an unguarded stack instead. 0 with
	 * stack_guards 0, and for the stacks past a number N, unguarded by the
	 * program's choice.
	 */
	uint64_t stacks_unguarded;
	/*
	 * Room for counters to come: always 0. A program built against an
	 * older weft.h, whose weft_stats ends before multishot_rearms, is
	 * given only the fields it knows (weft_loop_stats@WEFT_0.1).
	 */
	uint64_t reserved[6];
} weft_stats;

/*
 * Fill @cfg with the defaults.
 * @cfg: caller's storage, written.
 * Context: any thread.
 */
void weft_config_init(weft_config *cfg);

/*
 * Create a loop bound to the calling thread: its ring, run queue and timers.
 * @loop: out; written only on success.
 * @cfg: borrowed; NULL for the defaults.
 * Context: any thread that runs no loop; the loop belongs to it from then on.
 * Return: 0; -EINVAL for a bad @cfg; -ENOMEM; or, with backend
 * WEFT_BACKEND_URING (with AUTO these make the loop run on epoll instead),
 * the error io_uring set-up gave: -ENOSYS (kernel without io_uring, or a
 * seccomp filter), -EPERM (the kernel.io_uring_disabled sysctl, or a seccomp
 * or LSM policy), -ENOMEM (RLIMIT_MEMLOCK on kernels before 5.12).
 * weft_loop_explain() turns these into a sentence for a person.
 * Environment: WEFT_RING_MODE (auto, defer, coop, plain), WEFT_SQPOLL (0, 1)
 * and WEFT_BACKEND (auto, uring, epoll), read by weft_config_init;
 * WEFT_DISABLE_OPS, a comma-separated list of IORING_OP_* numbers to treat
 * as missing, so the fallbacks run instead (a work-around for a kernel bug
 * in one opcode); WEFT_WAKE (auto, msg_ring, eventfd): how loops wake each
 * other, eventfd forcing the fallback of kernels without MSG_RING;
 * WEFT_POLL_FIRST (auto, off): off makes every io_uring receive try the
 * socket before it waits, instead of waiting first where the last receive
 * on that fd left it empty (IORING_RECVSEND_POLL_FIRST), for comparisons.
 * A value other than these makes weft_loop_create fail with -EINVAL, and
 * weft_loop_explain then names the variable and what it takes. A WEFT_*
 * variable weft does not read (a misspelt name, WEFT_BAKEND) gets one line
 * on stderr per process, naming the nearest known name and the known ones;
 * WEFT_TEST_*, WEFT_BUILD and WEFT_SRC belong to weft's tests and tools.
 */
int weft_loop_create(weft_loop **loop, const weft_config *cfg);

/*
 * Run fibers until none is left alive.
 * Context: outside any fiber; the first run may be on any thread (the loop
 * moves there from its creator's: create a loop, spawn its first fibers,
 * hand it to a thread that runs it), every later run on that same thread.
 * Posts that arrived while the loop was not running run first.
 * Return: 0 when no fiber is left; -EBUSY if a loop already runs on this
 * thread, or another thread runs this one; -EXDEV on another thread than
 * the one of its first run (its io_uring ring is bound to that thread then;
 * weft_loop_explain(-EXDEV) says so); -EDEADLK if every fiber is parked and
 * nothing can wake any of them (no I/O in flight, no timer, no worker or
 * other thread owing an answer; a wait on a shared channel is never taken
 * for a deadlock, as another thread may still send): the fibers stay
 * parked, and weft_loop_destroy() cancels them.
 */
int weft_loop_run(weft_loop *loop);

/*
 * Cancel every fiber still alive, run them until they return, then free the
 * loop, its stacks and its ring. Fibers not yet joined are freed too.
 * @loop: NULL is a no-op.
 * Context: the loop's thread, outside any fiber of it; also inside a fiber
 * of another loop (a loop created and destroyed there leaves that fiber as
 * it was). A loop destroyed on another thread than the one that ran it
 * keeps its ring's kernel memory until that thread exits.
 */
void weft_loop_destroy(weft_loop *loop);

/*
 * Copy the loop's counters into @out. Never fails; both must be valid.
 * Context: the loop's thread (another thread may read torn values).
 */
void weft_loop_stats(weft_loop *loop, weft_stats *out);

/*
 * The name of the backend @loop runs on: "io_uring" or "epoll".
 * Context: any thread. Return: a static string; "" for NULL.
 */
const char *weft_loop_backend(const weft_loop *loop);

/*
 * The loop running on the calling thread, or NULL.
 * Context: any thread.
 */
weft_loop *weft_loop_current(void);

/*
 * One sentence for a person: what a weft_loop_create() error means on this
 * machine and how to fix it. Reads /proc/sys/kernel/io_uring_disabled to tell
 * the causes of -EPERM apart. When the error came from this thread's last
 * weft_loop_create (a misspelt environment variable) or weft_loop_run (the
 * kernel refused io_uring_enter), the sentence names that cause. @err 0:
 * which backend this thread's last weft_loop_create gave its loop, and, for
 * epoll chosen by WEFT_BACKEND_AUTO, why io_uring could not be used and how
 * to allow it.
 * Context: any thread. Return: a string owned by weft, never NULL, valid
 * until the thread's next weft_loop_create.
 */
const char *weft_loop_explain(int err);
/*
 * What @err (-errno as weft returns it, or errno) means when weft returns
 * it: strerror's text says "Operation not permitted" for -EPERM, where weft
 * means "not called from a fiber"; this says both, for the errors weft
 * gives a meaning of its own (EPERM, EXDEV, ETIMEDOUT, ECANCELED, EDEADLK,
 * ESHUTDOWN, EOPNOTSUPP, EBUSY, EAGAIN, EPIPE), and the system's text for
 * the others. Context: any. Return: a constant string, never NULL.
 */
const char *weft_strerror(int err);

/*
 * Create a loop with the defaults, run @fn(@arg) as its first fiber, run
 * until every fiber is done, destroy the loop.
 * Context: a thread that runs no loop.
 * Return: @fn's result; or, before @fn ran, the error of weft_loop_create or
 * weft_spawn; or -EDEADLK as weft_loop_run; -EBUSY if a loop already runs here.
 */
int weft_main(weft_fn fn, void *arg);
/*
 * As weft_main, with the loop made from @cfg (NULL: the defaults): a larger
 * stack_size for the first fiber's big buffers, another backend, flags.
 * Return: as weft_main; -EINVAL for a bad @cfg, as weft_loop_create.
 */
int weft_main_config(const weft_config *cfg, weft_fn fn, void *arg);

/*
 * ---- pools of loops: every core ---------------------------------------------
 *
 * A pool runs one loop per thread; loop 0 on the thread that calls
 * weft_pool_run, loop i > 0 on a thread of its own (created, and torn down,
 * by the pool). Fibers never move between loops; work moves by posting.
 */
typedef struct weft_pool weft_pool;

/*
 * Create a pool of @nloops loops (0: one per CPU this process may run on),
 * each with @cfg (NULL: defaults; WEFT_CONFIG_PIN pins loop i to the i-th
 * CPU). Context: a thread with no running loop (-EBUSY otherwise). Return:
 * 0, -EINVAL, -ENOMEM, or a loop's set-up error.
 */
int weft_pool_create(weft_pool **out, unsigned nloops, const weft_config *cfg);
/*
 * Run @fn(@arg) in a fiber on every loop, each loop on its own thread (the
 * caller's runs loop 0), and return when no loop can make progress any more
 * and nothing is on its way to any of them: 0 when every fiber has
 * returned, else the first negative result in loop order (a loop's own
 * failure first), or -EDEADLK when fibers are left that all wait on each
 * other (on joins across loops, plain channels, and shared channels that a
 * fiber of the pool made and only the pool's loops have used; nothing in
 * the kernel, no timer, no worker job): they stay parked, and
 * weft_pool_destroy cancels them. A wait on any other shared channel is
 * never taken for a deadlock: a thread outside the pool may still send.
 * Context: outside any fiber (-EBUSY).
 */
int weft_pool_run(weft_pool *p, weft_fn fn, void *arg);
unsigned weft_pool_size(const weft_pool *p);
/* Loop @i of @p, NULL past the end. */
weft_loop *weft_pool_loop(weft_pool *p, unsigned i);
/*
 * Cancel every fiber of every loop (delivered to each loop as a post, and
 * carried out there). Context: any thread.
 */
void weft_pool_cancel(weft_pool *p);
/*
 * Destroy every loop (each on its own thread) and the pool. Not while it
 * runs. Posts and cancels that reached a loop after the last run are
 * carried out first; every loop's inbox is closed before any loop shuts
 * down, and every loop shuts down (its fibers cancelled and run out, the
 * others' requests answered) before any is freed.
 */
void weft_pool_destroy(weft_pool *p);
/* weft_pool_create, weft_pool_run, weft_pool_destroy. */
int weft_main_pool(unsigned nloops, weft_fn fn, void *arg);
/* The calling fiber's loop's index in its pool; 0 outside a pool. */
int weft_loop_index(void);
/*
 * Run @fn(@arg) in a new detached fiber on @loop. Context: any thread,
 * weft's or not, in a fiber or not; never blocks (a lock-free push and, for
 * the first post since the loop last looked, a wake-up: IORING_OP_MSG_RING
 * from another io_uring loop, else the loop's eventfd). Posts run in the
 * order one thread made them. The inbox is bounded: at most
 * weft_config.max_posts posts (default 65536) may wait to run; past that a
 * post fails -EAGAIN at once (back-pressure: retry later, or drop the work).
 * Return: 0, -EINVAL, -ENOMEM, -EAGAIN, or -ESHUTDOWN once
 * weft_loop_destroy has begun (posts that got in before still run, and see
 * its cancel). A post that arrives when the loop cannot
 * spawn a fiber (out of memory, max_fibers) is dropped and counted in
 * weft_stats.posts_dropped. A loop outside a pool that runs out of fibers
 * returns from weft_loop_run; posts made then (and before its first run)
 * wait for its next run, which runs them first. On
 * io_uring, a loop outside a pool listens for wake-ups once it has received
 * its first post: that first one is noticed at its next tick (a completion
 * or a timer), every later one at once.
 */
int weft_loop_post(weft_loop *loop, weft_fn fn, void *arg);

/* The library's version, "major.minor.patch". Context: any thread. */
const char *weft_version(void);

/*
 * ---- fibers ---------------------------------------------------------------
 */

/*
 * Start a fiber running @fn(@arg). It runs when the loop next schedules it.
 * @loop: NULL for the loop running on this thread.
 * @out: NULL for a detached fiber, freed by the loop when it returns;
 *       otherwise a handle that must be given to weft_join() exactly once.
 * Context: the loop's thread, inside or outside its fibers. From another
 * thread, a detached fiber is started by weft_loop_post and the result is
 * weft_loop_post's. A joinable one (@out not NULL) on another loop of the
 * caller's pool: the calling fiber waits while that loop spawns it (one
 * round trip), and may then join or cancel it; from anywhere else it
 * fails -EXDEV.
 * Return: 0; -EINVAL if @fn is NULL; -EPERM if @loop is NULL and no loop
 * runs on this thread; -EAGAIN past weft_config.max_fibers; -ENOMEM;
 * -ECANCELED while the loop is being destroyed; -EXDEV as above.
 */
int weft_spawn(weft_loop *loop, weft_fn fn, void *arg, weft_fiber **out);

/* The largest weft_spawn_opts.stack_size (and weft_config.stack_size): 1 GiB. */
#define WEFT_STACK_SIZE_MAX ((size_t)1 << 30)
/* A buffer of this many bytes holds any fiber name and its NUL (weft_fiber_name). */
#define WEFT_FIBER_NAME_MAX 32

/* Options of one spawn (weft_spawn_with). Zero-initialise, then set fields. */
typedef struct weft_spawn_opts {
	/*
	 * Bytes of stack for this fiber; 0: the loop's weft_config.stack_size.
	 * Otherwise rounded up to whole pages (so at least one page); a size
	 * that is not the loop's own is rounded up once more to a power of two
	 * of pages (a size class: 4 KiB, 8 KiB, ... with 4 KiB pages), and its
	 * stacks come from a pool of that class, reused as the loop's own are,
	 * with the same guard pages or red zones (see stack_guards). More than
	 * WEFT_STACK_SIZE_MAX: -EINVAL. Only the pages a fiber touches cost
	 * memory; a class's first slab maps at most 16 stacks (fewer for
	 * classes over 1 MiB).
	 */
	size_t stack_size;
	/* A name for messages (copied, truncated to 31 bytes); NULL: none. */
	const char *name;
} weft_spawn_opts;

/*
 * weft_spawn with options: a stack size of its own, a name.
 * @opts: borrowed for the call; NULL: as weft_spawn, exactly.
 * Context: as weft_spawn; with @opts, only the loop's own thread (the loop
 * running on this thread, or one created on it and not yet run elsewhere).
 * Return: as weft_spawn; -EINVAL also if @opts->stack_size is more than
 * WEFT_STACK_SIZE_MAX; -EXDEV with @opts for another thread's loop (spawn
 * there a fiber that calls weft_spawn_with, by weft_loop_post).
 */
int weft_spawn_with(weft_loop *loop, weft_fn fn, void *arg, const weft_spawn_opts *opts,
		    weft_fiber **out);

/*
 * Name the calling fiber: @name is copied (truncated to 31 bytes; "" clears
 * it). The name shows in weft's messages about the fiber (a stack overflow)
 * and in weft_fiber_name. A new fiber has the name of its weft_spawn_opts,
 * or none.
 * Context: fiber.
 * Return: 0; -EINVAL if @name is NULL; -EPERM outside a fiber.
 */
int weft_set_name(const char *name);

/*
 * Copy @f's name, NUL-terminated, into @buf ("" if it has none).
 * @f: a fiber of the loop running on this thread (weft_self(), or a
 * joinable handle not yet joined).
 * @buf, @len: caller's storage; WEFT_FIBER_NAME_MAX bytes always suffice.
 * Context: the loop's thread.
 * Return: the name's length in bytes (0 for none); -EINVAL if @f or @buf is
 * NULL, @len is 0, or @f has been joined (its handle is gone); -ERANGE if the
 * name and its NUL do not fit in @len (@buf is left as it was); -EXDEV if @f
 * belongs to another thread's loop.
 */
int weft_fiber_name(const weft_fiber *f, char *buf, size_t len);

/*
 * weft_spawn(NULL, @fn, @arg, NULL): a detached fiber on the current loop.
 * If it fails, nothing was started, and resources meant for the fiber
 * (a file descriptor in @arg) are still the caller's.
 * Return: as weft_spawn (-EPERM where no loop runs on this thread).
 */
int weft_go(weft_fn fn, void *arg);

/*
 * Wait for @f to return, store its result, and free it.
 * @f: a handle from weft_spawn; invalid after a 0 return.
 * @result: out, may be NULL.
 * Context: fiber.
 * A fiber of another loop of the caller's pool is joined the same way: the
 * result comes back when it returns, and it is freed on its own loop.
 * Return: 0; -EINVAL if @f is NULL or detached; -EXDEV if @f belongs to a
 * loop outside the caller's pool;
 * -EDEADLK if @f is the caller; -EBUSY if another fiber is already joining @f; -EPERM outside a
 * fiber; -ETIMEDOUT past the caller's deadline, -ECANCELED if the caller is cancelled (in both
 * cases @f stays joinable). A fiber that has already returned is joined
 * without blocking, even by a cancelled caller, and so is one whose return
 * came at the same time as the caller's cancel or deadline.
 */
int weft_join(weft_fiber *f, int *result);

/*
 * Ask @f to stop: its pending blocking call and every later one fail with
 * -ECANCELED. An I/O operation already in the kernel is cancelled with
 * IORING_OP_ASYNC_CANCEL; if it completes anyway, its result is returned and
 * the cancel shows at the next call. Neither waits nor frees: join does.
 * Context: the loop's thread, or a loop of the same pool: the cancel is then
 * posted to @f's loop and carried out there (after this returns; a cancel
 * that arrives once @f has returned does nothing).
 * Return: 0 (also if @f has already returned); -EINVAL if @f is NULL;
 * -ENOMEM (a cancel for another loop could not be queued); -EXDEV from any
 * other thread (use weft_pool_cancel, or post the cancel to that loop).
 */
int weft_cancel(weft_fiber *f);

/*
 * Let every other ready fiber run once, then continue. Outside a fiber it
 * does nothing.
 */
void weft_yield(void);

/* The running fiber, or NULL outside fibers. */
weft_fiber *weft_self(void);

/* Whether the running fiber has been cancelled (0 or 1; 0 outside fibers). */
int weft_cancelled(void);

/*
 * ---- gather ---------------------------------------------------------------
 */

/* One call of weft_gather: set fn and arg; result is written. */
typedef struct weft_call {
	weft_fn fn;
	void *arg;
	int result;
} weft_call;

/*
 * Run every call in its own fiber, concurrently, wait until all have
 * returned, and store each result (asyncio.gather). A failing call does not
 * cancel the others: use a task group for that. The children inherit the
 * caller's deadline; cancelling the caller cancels them all, and the caller
 * still waits for every one.
 * @calls: borrowed until return; @n may be 0.
 * Context: fiber.
 * Return: 0, or the first negative result in call order; -EINVAL if @calls
 * is NULL with @n > 0 or a fn is NULL (nothing runs); -EPERM outside a fiber;
 * -ECANCELED if the caller was already cancelled (nothing runs, each result
 * is -ECANCELED); -ENOMEM. A partial spawn failure: a call whose fiber
 * cannot be spawned (-ENOMEM, -EAGAIN) gets that error as its result, and so
 * does every call not started yet; the calls already running are cancelled
 * and waited for, and that error is returned.
 */
int weft_gather(weft_call *calls, size_t n);

/*
 * weft_gather spread over @p's loops: call i runs on loop (this loop's
 * index + i) mod size, in a fiber of that loop. It is weft_gather with a
 * placement, one implementation, the same rules: the calls inherit the
 * caller's deadline, a cancel of the caller passes to every call (posted to
 * the other loops and carried out there), the caller waits for every call
 * to return, the result is 0 or the first negative result in call order
 * (-ECANCELED at once, nothing run, if the caller was already cancelled),
 * and a partial spawn failure is handled as there (a spawn that fails on
 * another loop is reported to the caller's loop, which then cancels the
 * others). Context: a fiber of one of @p's loops (-EXDEV from any other
 * loop, -EPERM outside fibers). Return: also -EINVAL, -ENOMEM.
 */
int weft_pool_gather(weft_pool *p, weft_call *calls, size_t n);

/* One call of weft_first: set fn and arg; result is written. */
typedef struct weft_first_call {
	weft_fn fn;
	void *arg;
	int result;
} weft_first_call;

/*
 * Run every call in its own fiber, concurrently, until the first one
 * returns; then cancel the others and wait until they have returned too
 * (Go's select, asyncio.wait(FIRST_COMPLETED) with the rest cancelled,
 * eio's Fiber.first). Every call's result is stored: the first's, and that
 * of a call that finished on its own while the others were being cancelled.
 * The rules of weft_gather hold: the calls inherit the caller's deadline,
 * cancelling the caller cancels them all, and the caller waits for every
 * one. A call whose fiber had not started when the first returned still
 * starts, cancelled: its fn runs, and its first blocking call fails
 * -ECANCELED (a call with effects before it blocks checks weft_cancelled).
 * @calls: borrowed until return.
 * Context: fiber.
 * Return: the index of the first call that returned; -ECANCELED if the
 * caller was cancelled before any returned (at entry nothing runs and each
 * result is -ECANCELED); -ETIMEDOUT if the caller's deadline passed first
 * (the first call returned -ETIMEDOUT after it); -EINVAL if @calls is NULL,
 * @n is 0 or more than INT_MAX, or a fn is NULL (nothing runs); -EPERM
 * outside a fiber; -ENOMEM (the results may have been reset to 0);
 * a spawn failure as in weft_gather (the calls started are cancelled and
 * waited for).
 */
int weft_first(weft_first_call *calls, size_t n);

/*
 * ---- time -----------------------------------------------------------------
 */

/* Now on CLOCK_MONOTONIC, in ns. Context: any thread. */
int64_t weft_now(void);

/*
 * Park the fiber for @ns nanoseconds.
 * Context: fiber.
 * Return: 0; -EINVAL if @ns < 0; -ETIMEDOUT if the fiber's deadline comes
 * first (it wakes at the deadline); -ECANCELED; -EPERM outside a fiber;
 * -ENOMEM if the timer heap cannot grow.
 */
int weft_sleep(int64_t ns);

/*
 * As weft_sleep, until the absolute time @deadline. A past one yields and
 * returns 0. Return: as weft_sleep.
 */
int weft_sleep_until(int64_t deadline);

/*
 * Set the running fiber's deadline: once it passes, every blocking call of
 * the fiber fails with -ETIMEDOUT. WEFT_FOREVER removes it.
 * Return: the previous deadline; WEFT_FOREVER outside a fiber (where it does
 * nothing).
 */
int64_t weft_set_deadline(int64_t deadline);
/*
 * weft_set_deadline(weft_now() + @ns): a deadline @ns from now (a relative
 * one). A negative @ns removes the deadline; one past the end of int64
 * nanoseconds is none. Return: the previous deadline, as weft_set_deadline
 * (give it back to weft_set_deadline to restore it).
 */
int64_t weft_set_timeout(int64_t ns);

/* The running fiber's deadline, WEFT_FOREVER if none or outside fibers. */
int64_t weft_deadline(void);

/*
 * ---- operations -----------------------------------------------------------
 */

/*
 * One round trip through the ring with IORING_OP_NOP: the cheapest
 * operation, for tests and benchmarks of the await path.
 * Context: fiber.
 * Return: 0; -ECANCELED; -ETIMEDOUT if the deadline has passed; -EPERM
 * outside a fiber.
 */
int weft_nop(void);

/*
 * ---- files ----------------------------------------------------------------
 *
 * Each call has the meaning of the system call it is named after, returns
 * its result or -errno, and is bounded by the fiber's deadline (-ETIMEDOUT)
 * and by weft_cancel (-ECANCELED). Context: fiber; -EPERM outside one.
 * Buffers are the caller's and must stay valid until the call returns, which
 * is never before the kernel is done with them. A NULL buffer with a
 * non-zero length, or a length above SSIZE_MAX, is -EINVAL. One call moves
 * at most 0x7ffff000 bytes, as read(2) does: a short count is not an error.
 * If a cancel or a deadline races with the operation completing anyway, the
 * result that completed is returned (bytes read are never lost) and the
 * cancel shows at the next call.
 */

/* openat(AT_FDCWD, @path, @flags, @mode). Return: the new fd. */
int weft_open(const char *path, int flags, mode_t mode);
/* openat(@dirfd, ...). */
int weft_openat(int dirfd, const char *path, int flags, mode_t mode);

/* pread(2) at @off, or read(2) at the file position when @off is -1. Return: bytes, 0 at EOF. */
ssize_t weft_read(int fd, void *buf, size_t len, int64_t off);
/* pwrite(2) at @off, or write(2) at the file position when @off is -1. */
ssize_t weft_write(int fd, const void *buf, size_t len, int64_t off);
/* preadv(2) / pwritev(2); @off -1: the file position. @iovcnt in [0, IOV_MAX]. */
ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t off);
ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t off);

/* fsync(2) and fdatasync(2). */
int weft_fsync(int fd);
int weft_fdatasync(int fd);
/*
 * close(2). The fd is closed even when the result is an error, as close(2).
 * Not cancellable, and done even by a cancelled fiber. Operations of this
 * loop still pending on @fd (another fiber's recv, accept, read) are
 * cancelled first and fail with -ECANCELED: a plain close(2) would leave
 * them waiting, since io_uring holds its own reference to the file.
 */
int weft_close(int fd);
/* statx(2): @dirfd AT_FDCWD for a path relative to the working directory. */
int weft_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *out);
/* unlinkat(AT_FDCWD, @path, @flags); @flags AT_REMOVEDIR removes a directory. */
int weft_unlink(const char *path, int flags);
/* renameat(AT_FDCWD, @from, AT_FDCWD, @to). */
int weft_rename(const char *from, const char *to);
/* mkdirat(AT_FDCWD, @path, @mode). Kernels before 5.15: run on a worker thread. */
int weft_mkdir(const char *path, mode_t mode);
/* fallocate(2). */
int weft_fallocate(int fd, int mode, int64_t off, int64_t len);
/*
 * ftruncate(2). IORING_OP_FTRUNCATE needs Linux 6.9; on older kernels the
 * system call runs on a worker thread (same result, one thread hop).
 */
int weft_ftruncate(int fd, int64_t len);

/*
 * ---- sockets --------------------------------------------------------------
 *
 * As for files. weft_send and weft_sendmsg always add MSG_NOSIGNAL: a peer
 * that hung up is -EPIPE, never SIGPIPE.
 */

/* socket(2). Kernels before 5.19: the plain system call (it does not block). */
int weft_socket(int domain, int type, int protocol);
/*
 * accept4(2) with flags 0; @addr and @len may be NULL. Return: the new fd.
 *
 * On io_uring (Linux 5.19 and later) the first accept on a listener arms
 * one multishot accept for it, and the loop keeps it armed: connections
 * go to the fibers waiting in weft_accept, longest waiter first, and
 * those that arrive while none waits are queued by the loop (up to 64;
 * past that the multishot accept is stopped, the kernel's backlog holds
 * the rest, and the next weft_accept that finds the queue empty arms it
 * again; weft_stats.multishot_rearms counts these). So, on a listener
 * weft accepts from:
 * - close it with weft_close, which closes what is queued and ends the
 *   accept (a plain close(2) leaves the socket open in the kernel);
 * - accept only with weft_accept: a raw accept4(2) does not see the
 *   connections already queued;
 * - @addr is filled by getpeername(2) (the multishot accept has one
 *   address slot for every connection): a peer that has already reset
 *   has no name any more, and *@len is then 0.
 * WEFT_MULTISHOT_ACCEPT=off in the environment makes every accept a
 * single one (as on the epoll backend and on older kernels).
 */
int weft_accept(int fd, struct sockaddr *addr, socklen_t *len);
/*
 * accept4(2) with @flags (SOCK_CLOEXEC, SOCK_NONBLOCK): the new fd has
 * exactly these flags, whichever accept made it.
 */
int weft_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
/*
 * connect(2). On the epoll backend a blocking socket is made non-blocking
 * (O_NONBLOCK) while the connect is in progress, and its flags are put back
 * before this returns.
 */
int weft_connect(int fd, const struct sockaddr *addr, socklen_t len);
/* recv(2). Return: bytes, 0 when the peer has shut down its side. */
ssize_t weft_recv(int fd, void *buf, size_t len, int flags);
/* send(2), which may be short: see weft_send_all. */
ssize_t weft_send(int fd, const void *buf, size_t len, int flags);
/*
 * Send all @len bytes, looping over short sends.
 * Return: @len; or -errno, in which case an unknown prefix may have been
 * sent (the connection is then best closed).
 */
ssize_t weft_send_all(int fd, const void *buf, size_t len, int flags);
/* recvmsg(2) and sendmsg(2). */
ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags);
/* shutdown(2): SHUT_RD, SHUT_WR or SHUT_RDWR. */
int weft_shutdown(int fd, int how);

/*
 * Wait until @fd is ready for @events (POLLIN, POLLOUT, POLLPRI, POLLRDHUP,
 * as poll(2)), so that a library that exposes an fd (OpenSSL, libpq,
 * c-ares) can be driven from a fiber: IORING_OP_POLL_ADD, or the fd's
 * registration with the epoll backend. POLLERR and POLLHUP are reported
 * whether asked for or not.
 * Context: fiber. Return: the events that are ready (> 0); -EBADF for an fd
 * that is not open (at once); -EINVAL for @events 0 or with bits poll(2)
 * does not know; -ETIMEDOUT, -ECANCELED.
 */
int weft_poll(int fd, unsigned events);

/*
 * splice(2): move up to @len bytes from @fd_in to @fd_out, one of which
 * must be a pipe, without copying them through user space. @off_in,
 * @off_out: the offset in a file that is not a pipe, or -1 for its file
 * position (a pipe's must be -1). @flags: SPLICE_F_MOVE, SPLICE_F_MORE
 * (SPLICE_F_NONBLOCK is weft's to set). IORING_OP_SPLICE (Linux 5.7); on
 * the epoll backend, splice(2) tried without blocking and a wait for the
 * side that is not ready.
 * Context: fiber. Return: the bytes moved, which may be fewer than @len (0:
 * end of input); -ETIMEDOUT or -ECANCELED only when none moved; else
 * splice's error (-EINVAL when neither fd is a pipe).
 */
ssize_t weft_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out, size_t len,
		    unsigned flags);

/*
 * sendfile(2): up to @len bytes of the file @in_fd from offset @off (its
 * file position is neither read nor moved) to the socket @out_fd, without a
 * copy through user space. On io_uring, two IORING_OP_SPLICEs through a
 * pipe of the loop's (file -> pipe -> socket); on epoll, sendfile(2) on
 * the socket made non-blocking for the call (its flags are put back).
 * Context: fiber. Return: the bytes sent, which may be fewer than @len (0:
 * @off at the end of the file); -ETIMEDOUT or -ECANCELED only when none
 * were sent; else the error (-EPIPE for a peer that hung up: never SIGPIPE).
 */
ssize_t weft_sendfile(int out_fd, int in_fd, int64_t off, size_t len);

/*
 * send(2) with zero copy: IORING_OP_SEND_ZC (Linux 6.0) pins @buf's pages
 * and the NIC reads them, and this returns only once the kernel no longer
 * needs @buf (its notification came), so the buffer may be reused at once.
 * It pays for payloads of several KiB on a real NIC; on loopback, and for
 * small sends, the kernel copies anyway and the pinning and the second
 * completion make it slower than weft_send. Without SEND_ZC (older
 * kernels, the epoll backend) it is weft_send. MSG_NOSIGNAL is added.
 * Context: fiber. Return: as weft_send.
 */
ssize_t weft_send_zc(int fd, const void *buf, size_t len, int flags);

/*
 * ---- lent buffers -----------------------------------------------------------
 *
 * weft_recv_buf receives into a buffer the loop lends, chosen when the
 * bytes arrive, so that a fiber parked on an idle connection holds no
 * buffer (with weft_recv it pins its own). On io_uring, a provided-buffer
 * ring (IORING_REGISTER_PBUF_RING, Linux 5.19) of
 * weft_config.recv_buffers buffers of recv_buffer_size bytes each; on
 * epoll, a slab of as many, used once the fd is readable. The memory is
 * reserved at the loop's first weft_recv_buf and touched as it is used.
 * When every buffer is lent, or the fd already holds 8 of them, the
 * receive goes into a buffer of the same size allocated for it (counted in
 * weft_stats.bufs_fallbacks): it never waits for a release and never fails
 * for want of a buffer.
 *
 * Multishot receive (io_uring, Linux 6.0; asked for with
 * WEFT_CONFIG_MULTISHOT_RECV or WEFT_MULTISHOT_RECV=on): on a stream socket, weft_recv_buf arms one
 * multishot receive for the fd and keeps it armed after it returns, so that a connection that
 * answers request after request pays no submission for its receives. What
 * arrives while no fiber waits in weft_recv_buf is queued for the fd, each
 * in a lent buffer (past 4 queued, or 8 lent to the fd, the receive is
 * stopped and the socket's own buffer holds the rest until the next call
 * arms it again; weft_stats.multishot_rearms counts these). So, on an fd
 * read with weft_recv_buf:
 * - close it with weft_close, which gives the queued buffers back and ends
 *   the receive (a plain close(2) leaves the socket open in the kernel
 *   until weft hands out the same fd number again, or the loop ends);
 * - weft_recv, weft_read, weft_readv, weft_recvmsg take the queued bytes
 *   first (then end the receive before they read the socket), and
 *   weft_poll sees them as POLLIN; a raw recv(2) or read(2) does not see
 *   them, and a weft_recvmsg that returns them gives no name or control.
 * Datagram sockets get the single-shot receive, and so do calls with
 * @flags: MSG_DONTWAIT takes what is queued (-EAGAIN if nothing is, while
 * the receive is armed); other flags on an fd whose receive is armed or
 * holds bytes fail -EINVAL, as they cannot apply to bytes already received.
 */
typedef struct weft_buf {
	void *data;	/* the bytes received */
	size_t len;	/* how many */
	uint64_t token; /* weft's, for weft_buf_release */
} weft_buf;

/*
 * recv(2) into a lent buffer: at most recv_buffer_size bytes. @flags: as
 * recv's (MSG_PEEK and MSG_WAITALL are refused with -EINVAL).
 * Context: fiber. Return: the bytes received, with @out filled; 0 when the
 * peer has shut down its side, or an error as weft_recv's, and then
 * nothing is lent (@out is zeroed, and releasing it does nothing).
 * -EINVAL for a NULL @out.
 */
ssize_t weft_recv_buf(int fd, weft_buf *out, int flags);
/*
 * Give a lent buffer back, in any order, from any thread (from another one
 * it reaches its loop through the loop's inbox). It stays valid until
 * then, even after weft_close(fd); a buffer still lent when its loop is
 * destroyed stays valid too, and is freed by its release. @b is zeroed; a
 * zeroed or NULL @b does nothing. Releasing a buffer twice aborts with a
 * message (it may already be lent again).
 */
void weft_buf_release(weft_buf *b);

/* Flags of weft_tcp_listen. */
#define WEFT_TCP_REUSEPORT 1u /* SO_REUSEPORT: one listener per loop on the same port */

/*
 * A TCP socket bound to @host:@port and listening, with SO_REUSEADDR and
 * SOCK_CLOEXEC. @host: a numeric IPv4 or IPv6 address (used as it is), a
 * name (resolved as for weft_tcp_dial), or NULL for every IPv4 address
 * ("::" for every address, IPv4 and IPv6). @port 0 picks a free port (see
 * getsockname). @backlog <= 0: SOMAXCONN. @flags: WEFT_TCP_* above.
 * Context: fiber. Return: the fd; -EINVAL for a bad port or flags; a name
 * resolution error as for weft_tcp_dial; or the error of socket/bind/listen.
 */
int weft_tcp_listen(const char *host, int port, int backlog, unsigned flags);

/*
 * A TCP connection to @host:@port (SOCK_CLOEXEC), trying each address
 * @host resolves to in turn until one connects.
 * Name resolution: a numeric address is used as it is. A name is resolved
 * by getaddrinfo(3) on one of the loop's worker threads (it blocks for as
 * long as the resolver's timeouts say, 5 s per attempt by default). The
 * fiber stops waiting at its deadline (-ETIMEDOUT) or a cancel (-ECANCELED)
 * and the lookup then finishes and frees itself in the background; neither
 * this call nor weft_loop_destroy waits for it. Up to 64 such abandoned
 * lookups (with the epoll backend's abandoned file operations) run beside
 * the loop's other jobs; past that, they take their places again. getaddrinfo's failures become:
 *   EAI_NONAME, EAI_NODATA, EAI_ADDRFAMILY  -ENOENT  (no such host, or no
 *                                                      address for it)
 *   EAI_AGAIN                               -EAGAIN  (the resolver did not
 *                                                      answer: try again later)
 *   EAI_FAIL                                -EIO     (the name server failed)
 *   EAI_MEMORY                              -ENOMEM
 *   EAI_SYSTEM                              -errno of the failed system call
 *   any other (EAI_SERVICE, EAI_FAMILY...)  -EINVAL
 * Context: fiber. Return: the connected fd; -EINVAL for a NULL @host or a
 * port outside [1, 65535]; a resolution error above; -ETIMEDOUT or
 * -ECANCELED; else the last address's connect error (-ECONNREFUSED, ...).
 */
int weft_tcp_dial(const char *host, int port);

/*
 * ---- buffered reads ---------------------------------------------------------
 *
 * A reader buffers a stream socket for a parser: lines (or any delimited
 * records) and frames of a known length, as views into its buffer, so a
 * request that came in one receive is parsed without a copy. It receives
 * with weft_recv_buf, so a reader parked on an idle connection holds no
 * buffer of the loop's; only bytes of a record not complete yet are copied
 * into the reader's own buffer, which grows to at most @max_buffer bytes.
 * The rules of the calls under it hold: the fiber's deadline and cancel
 * end a wait with -ETIMEDOUT or -ECANCELED, and no byte is lost (a later
 * call goes on where it stopped). A reader belongs to one fiber at a time
 * and to the fd's loop; nothing else may read the fd while it is in use.
 */
typedef struct weft_reader weft_reader;

/*
 * A reader over the connected stream socket @fd (which stays the caller's:
 * weft_reader_destroy does not close it). @max_buffer: the longest record,
 * delimiter included, at least 1.
 * Return: 0; -EINVAL if @out is NULL or @max_buffer is 0; -EBADF if @fd < 0;
 * -ENOMEM.
 */
int weft_reader_create(weft_reader **out, int fd, size_t max_buffer);
/*
 * The next record ending with the byte @delim (0-255): *@line points at
 * it, delimiter included, valid until the next call on @r. At the end of
 * the stream a last record without the delimiter is returned as it is,
 * then 0.
 * Context: fiber.
 * Return: its length (a record may be max_buffer bytes long, delimiter
 * included); 0 at the end of the stream; -EMSGSIZE if the record is longer
 * than max_buffer (the bytes up to and including its delimiter are skipped,
 * so the next call returns the next record; the skip waits for that
 * delimiter, so a peer that never sends one holds the caller until its
 * deadline, and a skip cut short by an error is finished by the next call,
 * which then returns -EMSGSIZE); -EINVAL for a NULL @line or @delim outside
 * 0-255; -ENOMEM; or an error of weft_recv_buf (-ECONNRESET, -ETIMEDOUT,
 * -ECANCELED, ...), after which the bytes buffered stay buffered.
 */
ssize_t weft_reader_until(weft_reader *r, int delim, const char **line);
/*
 * The next @n bytes: *@data points at them, valid until the next call on
 * @r.
 * Context: fiber.
 * Return: @n; 0 if the stream ended before any of them; -ENODATA if it
 * ended after some but before @n (they are dropped); -EMSGSIZE if @n is
 * more than max_buffer (nothing is taken), or for the over-long record
 * whose skip an error cut short (see weft_reader_until); -EINVAL for a NULL
 * @data or @n of 0; -ENOMEM; or an error of weft_recv_buf, as
 * weft_reader_until.
 */
ssize_t weft_reader_exact(weft_reader *r, size_t n, const char **data);
/*
 * Bytes received and not yet returned (a server that answers pipelined
 * requests writes its answers out when this is 0, before it waits again).
 * 0 for a NULL @r.
 */
size_t weft_reader_buffered(const weft_reader *r);
/* Free @r and give back any lent buffer; the fd stays open. NULL is a no-op. */
void weft_reader_destroy(weft_reader *r);

/*
 * ---- signals --------------------------------------------------------------
 */

#if defined(_POSIX_C_SOURCE) && _POSIX_C_SOURCE >= 199309L
/*
 * Park the fiber until one of the signals in @set is pending, take it, and
 * return its number (sigwaitinfo(2) for a fiber; each loop shares one
 * signalfd among its waiters). Several fibers, on any loops, may wait for
 * the same signal: each signal goes to one of them. A signal that arrives
 * while no fiber waits for it stays pending until one does.
 *
 * weft blocks @set itself: in the calling thread, in every thread weft
 * starts later (pool loops, offload workers, which block all signals
 * anyway) and, lazily, in every other thread: weft installs a handler for
 * each signal of @set whose action is SIG_DFL or SIG_IGN, and a signal
 * that lands on a thread where it is not blocked (main, a pool loop that
 * was started before the first wait) is blocked there and queued again to
 * the process, so a fiber takes it, its siginfo kept (queued again from a
 * thread other than main, its si_code becomes SI_QUEUE: si_pid, si_uid and
 * si_value stay the sender's, a kernel code such as CLD_EXITED is lost). A
 * handler the program installed itself is left alone (it runs for those
 * deliveries); for SIGCHLD left at SIG_IGN weft's handler keeps the
 * automatic reaping of children (SA_NOCLDWAIT). The handler stays for the
 * life of the process. Signals sent to one thread (pthread_kill, tgkill)
 * reach only a waiter on that thread's loop (on an SQPOLL ring it looks for
 * them every 10 ms while it waits: the kernel's SQ thread cannot see them).
 * The blocked set is inherited by children: a program that forks or
 * posix_spawn()s a child unblocks it there (sigprocmask after fork,
 * POSIX_SPAWN_SETSIGMASK with an empty mask).
 * A deadline already past fails -ETIMEDOUT at once, as other calls do, even
 * with a signal pending.
 * @info: out, may be NULL.
 * Context: fiber, on either backend.
 * Return: the signal number; -EINVAL if @set is NULL, empty, or holds
 * SIGKILL, SIGSTOP or a fault signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
 * SIGTRAP, SIGSYS); -ETIMEDOUT; -ECANCELED; -EPERM outside a fiber;
 * -EMFILE, -ENFILE, -ENOMEM (signalfd(2)).
 */
int weft_signal_wait(const sigset_t *set, siginfo_t *info);
#endif

/*
 * ---- blocking calls -------------------------------------------------------
 */

/*
 * Run @fn(@arg) on a worker thread of this loop's pool
 * (weft_config.offload_threads) and park until it returns
 * (asyncio.to_thread). @fn runs outside every fiber: it must not call weft.
 * The fiber waits for @fn even when cancelled or past its deadline (@arg
 * may point into its stack); the cancel shows at its next blocking call.
 * @result: out, may be NULL.
 * Context: fiber.
 * Return: 0 when @fn ran, and *@result is its return value; or, when @fn
 * never ran: -EINVAL if @fn is NULL, -EPERM outside a fiber, -ECANCELED,
 * -ETIMEDOUT, -ENOMEM, -EAGAIN (no worker thread could be started).
 */
int weft_offload(weft_fn fn, void *arg, int *result);

/*
 * ---- between fibers of one loop -------------------------------------------
 *
 * Channels, mutexes, conditions and groups belong to the thread that first
 * uses them (the thread of its loop): a call from another thread fails
 * -EXDEV rather than race, and the calls that return nothing (close, unlock,
 * signal, cancel) do nothing there. Between loops, use a shared channel
 * (weft_chan_create_shared). Every blocking call honours the fiber's
 * deadline (-ETIMEDOUT) and weft_cancel (-ECANCELED) and returns -EPERM
 * outside a fiber.
 */
typedef struct weft_chan weft_chan;
typedef struct weft_mutex weft_mutex;
typedef struct weft_cond weft_cond;
typedef struct weft_group weft_group;

/*
 * A channel of @capacity elements of @elem_size bytes each, copied in and
 * out. Capacity 0 is a rendezvous: a send waits for a receiver.
 * Context: any. Return: 0; -EINVAL if @out is NULL or @elem_size is 0 or
 * the buffer would overflow; -ENOMEM.
 */
int weft_chan_create(weft_chan **out, size_t capacity, size_t elem_size);
/*
 * A channel for fibers of any loop (of a pool, or loops on threads of their
 * own): send, recv, the try_ calls, len and close may be called from any of
 * them, with the same semantics, deadlines and cancellation as a plain
 * channel; the try_ calls and close also from threads that run no loop. It
 * takes a mutex around each call, and a fiber parked on another loop is
 * woken by a post to that loop. Return: as weft_chan_create.
 */
int weft_chan_create_shared(weft_chan **out, size_t capacity, size_t elem_size);
/*
 * Copy @elem into the channel, parking while it is full.
 * Return: 0; -EPIPE once the channel is closed (also if it closes while
 * waiting; the element was not sent); -EINVAL for NULL arguments.
 */
int weft_chan_send(weft_chan *ch, const void *elem);
/*
 * Take the oldest element into @elem, parking while the channel is empty.
 * Return: 0; -EPIPE once the channel is closed and drained.
 */
int weft_chan_recv(weft_chan *ch, void *elem);
/* As send and recv, but never park: -EAGAIN instead. No fiber needed. */
int weft_chan_try_send(weft_chan *ch, const void *elem);
int weft_chan_try_recv(weft_chan *ch, void *elem);
/* Elements buffered now (0 for NULL). Never fails. */
size_t weft_chan_len(const weft_chan *ch);
/*
 * Close: parked senders get -EPIPE, receivers drain what is buffered and
 * then get -EPIPE. Closing twice is harmless. Context: the channel's thread
 * (any, for a shared channel).
 */
void weft_chan_close(weft_chan *ch);
/* Free. No fiber may be parked on it. NULL is a no-op. */
void weft_chan_destroy(weft_chan *ch);

/*
 * A mutex between fibers (not threads): FIFO hand-off to waiters.
 * Context: any. Return: 0; -EINVAL if @out is NULL; -ENOMEM.
 */
int weft_mutex_create(weft_mutex **out);
/*
 * Take @m, parking while another fiber holds it.
 * Return: 0; -EDEADLK if the caller holds it; -ETIMEDOUT; -ECANCELED; -EINVAL
 * for NULL; -EPERM outside a fiber.
 */
int weft_mutex_lock(weft_mutex *m);
/*
 * Take @m if it is free, never parking.
 * Context: fiber (the owner is a fiber).
 * Return: 0; -EBUSY if another fiber holds it; -EDEADLK if the caller does;
 * -EINVAL for NULL; -EPERM outside a fiber.
 */
int weft_mutex_trylock(weft_mutex *m);
/* Release; a fiber that does not hold @m aborts with a message (a broken invariant). */
void weft_mutex_unlock(weft_mutex *m);
/* Free. It must not be held. NULL is a no-op. */
void weft_mutex_destroy(weft_mutex *m);

/*
 * A condition variable for weft_mutex.
 * Context: any. Return: 0; -EINVAL if @out is NULL; -ENOMEM.
 */
int weft_cond_create(weft_cond **out);
/*
 * Release @m, park until signalled, take @m back. On -ETIMEDOUT and
 * -ECANCELED @m is held again too, as with pthread_cond_wait, so the
 * caller's unlock stays right. Spurious wake-ups do not happen, but the
 * usual while-loop around the predicate is still right.
 * Return: 0; -EPERM if the caller does not hold @m or is not a fiber.
 */
int weft_cond_wait(weft_cond *c, weft_mutex *m);
/*
 * Wake the longest-waiting fiber parked on @c (signal), or every one
 * (broadcast); each takes the mutex back before its wait returns. With no
 * waiter, nothing happens and nothing is remembered. Never fails, never
 * parks; the caller need not hold the mutex. NULL is a no-op.
 * Context: the loop's thread, in a fiber or not.
 */
void weft_cond_signal(weft_cond *c);
void weft_cond_broadcast(weft_cond *c);
/*
 * Free. No fiber may be parked on it: if one is, weft aborts with a message
 * (a broken invariant, not an error to handle). NULL is a no-op.
 */
void weft_cond_destroy(weft_cond *c);

/*
 * A counting semaphore between fibers: @count permits at first. Like the
 * mutex it belongs to its first user's thread. Context: any. Return: 0;
 * -EINVAL if @out is NULL; -ENOMEM.
 */
typedef struct weft_sem weft_sem;
int weft_sem_create(weft_sem **out, unsigned count);
/*
 * Take a permit, parking while none is free; waiters are served first come,
 * first served (a release hands its permit to the longest waiter, so a
 * newcomer never takes it first).
 * Return: 0; -ETIMEDOUT; -ECANCELED (no permit taken); -EINVAL for NULL;
 * -EPERM outside a fiber; -EXDEV from another thread.
 */
int weft_sem_acquire(weft_sem *s);
/* Take a permit if one is free and nobody waits, never parking: 0, -EAGAIN, -EINVAL, -EXDEV. */
int weft_sem_try_acquire(weft_sem *s);
/*
 * Give a permit back (to the longest waiter, or to the count). Never parks;
 * from another thread it does nothing. More permits than UINT_MAX abort
 * with a message (releases without acquires). NULL is a no-op.
 */
void weft_sem_release(weft_sem *s);
/* Permits free now (0 for NULL). */
unsigned weft_sem_value(const weft_sem *s);
/* Free. No fiber may wait on it (abort with a message). NULL is a no-op. */
void weft_sem_destroy(weft_sem *s);

/*
 * A task group (asyncio.TaskGroup): fibers spawned into it run
 * concurrently; the first one that returns a negative result cancels all
 * the others; weft_group_wait joins them all.
 * Context: any. Return: 0; -EINVAL if @out is NULL; -ENOMEM.
 */
int weft_group_create(weft_group **out);
/*
 * A group whose members are independent (a server's connections): a
 * member's negative result is counted and kept (the first one can be read
 * back with weft_group_failures) and cancels nobody, and spawns go on
 * working after failures. weft_group_cancel and weft_group_destroy are as
 * for any group. weft_group_wait returns 0 once every member has returned
 * (failures or not), -ECANCELED if weft_group_cancel was called, or the
 * waiter's own -ECANCELED or -ETIMEDOUT as for any group.
 */
#define WEFT_GROUP_INDEPENDENT (1u << 0)
/*
 * weft_group_create with @flags (0 or WEFT_GROUP_INDEPENDENT).
 * Return: 0; -EINVAL if @out is NULL or @flags holds an unknown bit; -ENOMEM.
 */
int weft_group_create_flags(weft_group **out, unsigned flags);
/*
 * Members of @g that returned a negative result so far, and in *@first
 * (if not NULL) the first such result, 0 if none. From another thread, or
 * for NULL, 0.
 */
uint64_t weft_group_failures(const weft_group *g, int *first);
/* Members of @g running now (0 for NULL or from another thread). */
size_t weft_group_running(const weft_group *g);
/*
 * Start a fiber in @g running @fn(@arg) on the caller's loop.
 * Return: 0; -EINVAL; -EPERM outside a loop; -ECANCELED if the group has
 * failed or was cancelled (nothing started); -EAGAIN, -ENOMEM.
 */
int weft_group_spawn(weft_group *g, weft_fn fn, void *arg);
/*
 * Wait until every fiber of @g has returned.
 * Context: fiber.
 * Return: 0, or the first failure's result (the first negative result in
 * the order the fibers returned); -ECANCELED if weft_group_cancel was
 * called and nothing failed before. If the waiter itself is cancelled or
 * passes its deadline, the group is cancelled and still waited for, and
 * -ECANCELED or -ETIMEDOUT is returned; the group stays cancelled (later
 * waits return -ECANCELED, spawns fail -ECANCELED), independent or not: a
 * server waits for its connection group only when it shuts down. -EBUSY if
 * another fiber is waiting for @g already.
 */
int weft_group_wait(weft_group *g);
/* Cancel every fiber of @g; later spawns fail with -ECANCELED. */
void weft_group_cancel(weft_group *g);
/* Free. No fiber of @g may be running: wait first. NULL is a no-op. */
void weft_group_destroy(weft_group *g);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
