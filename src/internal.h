/* SPDX-License-Identifier: MIT */
/*
 * Internal types and weft__ declarations shared between the files of src/.
 * Never installed. The invariant that everything here serves: memory the
 * kernel was given (an op record, a buffer, a fiber's stack) stays valid until
 * the backend has reported, through the op's completion function, that the
 * kernel has let go of all of it.
 *
 * Layers, each calling only the ones below it:
 *
 *   file.c net.c time.c sync.c chan.c group.c offload.c   the public calls
 *   op.c + opdef.c      the await and the op table
 *   backend.h           the boundary; backend_uring.c behind it
 *   fiber.c             spawn, switch, park on a wait record, wake, cancel
 *   heap.c stack.c      the timer heap and the stack pool (leaves)
 */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include "config.h"
#include "weft.h"
#include "arch/switch.h"
#include "backend.h"

#include <pthread.h>
#include "list.h"
#include "sanitize.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Everything declared here stays inside libweft: reached without the GOT or PLT. */
#pragma GCC visibility push(hidden)

#define WEFT__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- operations --------------------------------------------------------- */

/* weft's own operation codes: the index into the op table (opdef.c). */
enum weft__opcode {
	WEFT__OP_NOP,
	WEFT__OP_READ,
	WEFT__OP_WRITE,
	WEFT__OP_READV,
	WEFT__OP_WRITEV,
	WEFT__OP_FSYNC,
	WEFT__OP_CLOSE,
	WEFT__OP_OPENAT,
	WEFT__OP_STATX,
	WEFT__OP_UNLINKAT,
	WEFT__OP_RENAMEAT,
	WEFT__OP_MKDIRAT,
	WEFT__OP_FALLOCATE,
	WEFT__OP_FTRUNCATE,
	WEFT__OP_SOCKET,
	WEFT__OP_ACCEPT,
	WEFT__OP_CONNECT,
	WEFT__OP_RECV,
	WEFT__OP_SEND,
	WEFT__OP_RECVMSG,
	WEFT__OP_SENDMSG,
	WEFT__OP_SHUTDOWN,
	WEFT__OP_TIMEOUT,
	WEFT__OP_POLL,
	WEFT__OP_COUNT
};

/* What memory the kernel fills on completion (marked defined for valgrind). */
enum weft__fill {
	WEFT__FILL_NONE = 0,
	WEFT__FILL_BUF,	     /* addr, res bytes */
	WEFT__FILL_IOV,	     /* the iovec array at addr (len entries), res bytes */
	WEFT__FILL_MSG,	     /* the msghdr at addr: its iovecs, name and control */
	WEFT__FILL_STATX,    /* a struct statx at off */
	WEFT__FILL_SOCKADDR, /* a sockaddr at addr, its length at off */
};

struct weft__op;

/* weft__opdef.flags */
#define WEFT__OPD_FD (1u << 0)	     /* op->fd is a descriptor the op waits on (close cancels it) */
#define WEFT__OPD_DEADLINE (1u << 1) /* the fiber's deadline bounds it */
#define WEFT__OPD_MUST_RUN                                                                         \
	(1u << 2)		   /* runs for a cancelled fiber, or past its deadline (close)     \
				    */
#define WEFT__OPD_CLOSES (1u << 3) /* ends op->fd: its pending ops are cancelled first */

/* One row of the op table: what every backend and op.c need to know. */
struct weft__opdef {
	const char *name;
	uint8_t flags;	  /* WEFT__OPD_* */
	uint8_t fill;	  /* enum weft__fill */
	uint8_t uring_op; /* the io_uring backend's IORING_OP_* for it */
	/*
	 * Where a backend lacks the opcode: the system call made with the
	 * record's fields (result or -errno), on the loop's thread when
	 * @inline_fallback (it cannot block), else on an offload worker.
	 * NULL: no fallback, the op fails -EOPNOTSUPP.
	 */
	long (*sys)(const struct weft__op *op);
	bool inline_fallback;
};
extern const struct weft__opdef weft__opdefs[];

enum weft__op_state {
	WEFT__OP_IDLE = 0,  /* not submitted */
	WEFT__OP_ARMED = 1, /* submitted; its completion not yet reported */
	WEFT__OP_DONE = 2,  /* complete() ran: res and cflags are valid */
};

/* op->oflags */
#define WEFT__OPF_CANCEL_SENT (1u << 0)	 /* a cancel was asked for */
#define WEFT__OPF_TIMED_OUT (1u << 1)	 /* its deadline fired (the backend says so) */
#define WEFT__OPF_FD_TRACKED (1u << 2)	 /* on the backend's per-fd ring */
#define WEFT__OPF_FD_HEAD (1u << 3)	 /* the one the per-fd table points at */
#define WEFT__OPF_FD_UNTRACKED (1u << 4) /* has an fd the backend could not track */
#define WEFT__OPF_DEFERRED (1u << 5)	 /* submitted while completions were dispatched */
#define WEFT__OPF_HAS_FD (1u << 6) /* op->fd is a descriptor it waits on (the op table's fd) */

struct weft_fiber;

/*
 * What a parked fiber waits on. weft_cancel calls @cancel, which either
 * wakes the fiber with -ECANCELED or asks the thing it waits for to end
 * early (the fiber then wakes when it does). NULL: a cancel only marks the
 * fiber, and the wait goes on (a worker thread, a hand-off that must come).
 */
struct weft__wait {
	void (*cancel)(struct weft_fiber *f, struct weft__wait *w);
};

/*
 * One operation, described in weft's terms. Lives on the waiting fiber's
 * stack (or in the record of whoever submitted it); the backend may point
 * the kernel at it, so it stays put until complete() has run. The fields
 * of the request mirror a system call's arguments; which field means what
 * is each op's thin function's business (see opdef.c).
 */
struct weft__op {
	/* the request */
	uint8_t code;	   /* enum weft__opcode */
	uint8_t state;	   /* enum weft__op_state */
	uint16_t oflags;   /* WEFT__OPF_* */
	int32_t fd;	   /* descriptor (or dirfd, or socket domain) */
	uint32_t len;	   /* length, count, mode, or address length */
	uint32_t op_flags; /* the call's flags (MSG_*, O_*, AT_*, poll events) */
	uint64_t addr;	   /* buffer, iovec array, path, msghdr or sockaddr */
	uint64_t off;	   /* file offset, or a second pointer or number */
	int64_t deadline;  /* absolute ns or WEFT_FOREVER: the backend bounds the op by it */
	/* the completion */
	void (*complete)(struct weft__op *op, int res, uint32_t flags);
	struct weft_fiber *fiber; /* who waits (for the default completion) */
	struct weft__wait wait;	  /* what the fiber parks on */
	int32_t res;		  /* set by complete(): the result */
	uint32_t cflags;	  /* and the completion's flags */
	/* the backend's own */
	struct weft__list fdlink; /* the ops pending on the same fd */
	struct weft__op *deferred;
	uint32_t due; /* completions the kernel still owes for this op */
	int32_t kres; /* the op's own result, while others are due */
	uint32_t kflags;
	int64_t ts[2]; /* a timespec the kernel reads (a deadline, a timeout) */
};

/*
 * Fill the request of @op (see the field map in opdef.c). Nothing else of
 * the record needs initialising: weft__op_run and the backend set what they
 * use, so an op costs no zeroing of its whole record.
 */
static inline void weft__op_init(struct weft__op *op, uint8_t code, int fd, uint64_t addr,
				 uint32_t len, uint64_t off, uint32_t op_flags)
{
	op->code = code;
	op->fd = fd;
	op->len = len;
	op->op_flags = op_flags;
	op->addr = addr;
	op->off = off;
}

/* Submit @op and park until it completes; its result, with -ETIMEDOUT and -ECANCELED mapped. */
int weft__op_run(struct weft__op *op);
/* The default completion: store the result, wake op->fiber. */
void weft__op_complete(struct weft__op *op, int res, uint32_t flags);
/* Mark what the kernel wrote for @op defined (valgrind; a no-op otherwise). */
void weft__op_mark_filled(const struct weft__op *op, int res);

/* ---- fibers ---------------------------------------------------------------- */

/*
 * Work handed to a loop by another thread: pushed on the loop's inbox
 * (lock-free), followed by a backend wake(); the loop runs it after the
 * tick, on its own thread.
 */
struct weft__remote {
	struct weft__remote *next;
	void (*run)(struct weft_loop *l, struct weft__remote *r);
};

enum weft__fiber_state {
	WEFT__FIBER_FREE = 0,	 /* in the stack pool */
	WEFT__FIBER_READY = 1,	 /* on the run queue */
	WEFT__FIBER_RUNNING = 2, /* the current fiber */
	WEFT__FIBER_PARKED = 3,	 /* waiting on wait */
	WEFT__FIBER_DONE = 4,	 /* returned; waiting for join */
};

/*
 * The fiber control block. It sits at the top of the fiber's own stack
 * mapping, so a fiber costs one mapping and its first page holds both this
 * block and the first frames:
 *
 *   high  +----------------------------+ <- slot end
 *         | struct weft_fiber          |
 *         +----------------------------+ <- stack_top (16-byte aligned)
 *         | frames grow down           |
 *         |            ...             |
 *         | canary (8 bytes)           | <- stack_lo
 *         +----------------------------+
 *         | guard page (PROT_NONE),    |  where the stack has one
 *   low   | if this stack has one      |  (see stack.c)
 *         +----------------------------+ <- slot start
 *
 * It holds nothing for any particular kind of waiter: what a fiber waits on
 * is a wait record on its own stack.
 */
struct weft_fiber {
	struct weft__ctx ctx;	   /* saved registers while not running */
	struct weft_fiber *next;   /* run queue or free list link */
	struct weft__list all;	   /* the loop's fibers alive */
	struct weft_loop *loop;	   /* owner; fibers never migrate */
	weft_fn fn;		   /* body */
	void *arg;		   /* its argument */
	int result;		   /* fn's return value, once DONE */
	uint32_t id;		   /* for messages: 1, 2, ... per loop */
	uint8_t state;		   /* enum weft__fiber_state */
	bool detached;		   /* freed by the loop when it returns */
	bool cancelled;		   /* weft_cancel was called */
	int wake_res;		   /* what park returns; set by the waker */
	uint32_t timer;		   /* 1 + its index in the timer heap, 0 when none */
	int64_t deadline;	   /* absolute ns or WEFT_FOREVER */
	struct weft__wait *wait;   /* what it is parked on, while PARKED */
	struct weft_fiber *joiner; /* fiber parked in weft_join on us */
	char *stack_lo;		   /* lowest usable byte (a guard page or red zone below) */
	char *stack_top;	   /* first byte above the usable stack */
	void *asan_fake;	   /* ASan fake stack saved across a switch */
	unsigned vg_id;		   /* valgrind stack id; survives reuse */
	bool guarded;		   /* a guard page lies below stack_lo, else a red zone */
	bool cold;		   /* free, on the stacks' cold list through all */
	/* A join from another loop of the pool (fiber.c); reset at spawn. */
	bool xwoken;			      /* xremote woke xwaiter (its loop's field) */
	_Atomic bool xdone;		      /* returned: result may be read */
	_Atomic(struct weft_fiber *) xjoiner; /* the one fiber joining it, any loop */
	_Atomic(struct weft_fiber *) xwaiter; /* the joiner, parked until xdone */
	struct weft__remote xremote;	      /* wakes the joiner; then frees it at home */
	void *tsan_fiber;		      /* its ThreadSanitizer fiber (TSan builds) */
} __attribute__((aligned(64))); /* the switch touches ctx: keep it on whole cache lines */

/* ---- timer heap (heap.c) ---------------------------------------------------- */

/* An entry: a parked fiber's deadline; seq orders equal deadlines first-set first. */
struct weft__hent {
	int64_t deadline;
	uint64_t seq;
	struct weft_fiber *fiber;
};

/* 4-ary min-heap; at most one entry per fiber, which knows its index. */
struct weft__heap {
	struct weft__hent *v;
	size_t len;
	size_t cap;
	uint64_t seq;
};

/* Room for @n entries, so that adding never allocates. Return: 0 or -ENOMEM. */
int weft__heap_reserve(struct weft__heap *h, size_t n);
void weft__heap_add(struct weft__heap *h, struct weft_fiber *f, int64_t deadline);
void weft__heap_remove(struct weft__heap *h, struct weft_fiber *f);
void weft__heap_fini(struct weft__heap *h);

/* ---- the stack pool (stack.c) --------------------------------------------- */

/* A slab of stacks: one mapping, released at loop destroy. */
struct weft__slab {
	struct weft__slab *next;
	char *base;
	size_t len;
	size_t count;
	struct weft_fiber *fibers; /* the control blocks of its stacks */
};

struct weft__stacks {
	size_t slot;		/* bytes per stack slot, a page multiple */
	size_t page;		/* page size */
	size_t guards_left;	/* stacks that may still get an mprotect()ed guard page */
	bool guards_all;	/* stack_guards is WEFT_STACK_GUARDS_ALL */
	struct weft__list cold; /* freed stacks holding pages below the top one, oldest first */
	size_t cold_count;
	uint64_t trimmed; /* stacks trimmed back to their top page */
	size_t next_slab; /* stacks in the next slab (grows geometrically) */
	struct weft__slab *slabs;
	struct weft_fiber *free; /* fibers ready for reuse */
	uint64_t mapped;
	uint64_t guarded;
	uint64_t canary;    /* fills the red zones, checked at every switch */
	bool markers;	    /* MADV_GUARD_INSTALL works on this kernel (6.13) */
	bool batch;	    /* process_madvise() takes our advice in batches */
	struct iovec *iov;  /* process_madvise batch, BATCH entries */
	bool probed;	    /* markers has been probed */
	bool guards_wanted; /* stack_guards was not 0 */
	uint64_t huge;	    /* stacks in slabs backed by transparent huge pages */
	bool thp;	    /* MADV_HUGEPAGE may work: align one-page slabs for it */
};

/* ---- the loop ----------------------------------------------------------------- */

struct weft__offload;

struct weft_loop {
	const struct weft__backend *be; /* the one that talks to the kernel */
	void *be_data;			/* its state */
	uint64_t ops;			/* weft opcodes the backend runs, a bit each */
	struct weft__ctx ctx;		/* the scheduler: the thread's own stack */
	struct weft_fiber *cur;		/* running fiber, NULL in the scheduler */
	struct weft_fiber *runq_head;	/* ready fibers, FIFO */
	struct weft_fiber *runq_tail;
	size_t runq_len;
	size_t round_left;	   /* fibers this round may still run before the tick */
	struct weft_fiber *zombie; /* returned detached fiber to free after the switch */
	struct weft__list all;	   /* fibers alive */
	uint64_t live;		   /* how many are alive */
	uint64_t inflight;	   /* kernel work whose completion the backend still owes */
	uint64_t remote_expected;  /* remote work other threads will still post */
	_Atomic(struct weft__remote *) inbox;
	struct weft__offload *offload; /* offload workers, made at the first weft_offload */
	uint32_t next_id;
	bool running;
	bool ran; /* weft_loop_run was called: it stays on owner's thread */
	bool destroying;
	pthread_t owner; /* the thread that runs it: its creator, until its first run */
	/* pools (pool.c) */
	struct weft_pool *pool; /* the pool it belongs to, or NULL */
	unsigned pool_index;
	bool pool_busy;		  /* counted in the pool's busy loops */
	_Atomic unsigned posting; /* weft_loop_post calls between their check and push */
	_Atomic bool closed;	  /* destroy has begun: posts fail -ESHUTDOWN */
	_Atomic bool posts_seen;  /* a weft_loop_post reached it: keep the wake armed */
	struct weft__heap timers;
	struct weft__stacks stacks;
	weft_config cfg;
	weft_stats stats;
	void *tsan_sched;	 /* the scheduler's ThreadSanitizer fiber (TSan builds) */
	void *asan_fake;	 /* the scheduler's ASan fake stack */
	const void *sched_stack; /* the scheduler's stack, as ASan told us */
	size_t sched_stack_size;
#if WEFT_STACK_CENSUS
	struct {
		weft_fn fn;	 /* spawn site, as the fiber's function */
		size_t deepest;	 /* most stack bytes touched */
		uint64_t fibers; /* fibers measured */
	} census[32];
#endif
};

/* The loop running on this thread (NULL outside weft_loop_run). */
extern __thread struct weft_loop *weft__tls_loop __attribute__((tls_model("initial-exec")));

static inline bool weft__op_supported(const struct weft_loop *l, unsigned code)
{
	return (l->ops >> code) & 1;
}

/* loop.c */
_Noreturn void weft__bug(const struct weft_fiber *f, const char *file, int line, const char *what);
#define WEFT__BUG(f, what) weft__bug((f), __FILE__, __LINE__, (what))
/*
 * Whether @l belongs to another thread than the caller's: its creator's
 * until its first run, then the thread that ran it (weft_loop_run refuses
 * any other).
 */
static inline bool weft__loop_foreign(const struct weft_loop *l)
{
	return l != weft__tls_loop && !pthread_equal(l->owner, pthread_self());
}
/*
 * Objects that belong to one thread (channels, mutexes, conditions, groups)
 * bind to the first thread that uses them: 0 there, -EXDEV on any other.
 */
extern __thread char weft__thread_tag __attribute__((tls_model("initial-exec")));
static inline int weft__bind_thread(const void *_Atomic *home)
{
	const void *me = &weft__thread_tag;
	const void *h = atomic_load_explicit(home, memory_order_relaxed);

	if (WEFT__LIKELY(h == me))
		return 0;
	if (!h && atomic_compare_exchange_strong_explicit(home, &h, me, memory_order_relaxed,
							  memory_order_relaxed))
		return 0;
	return h == me ? 0 : -EXDEV;
}
/* pool.c: a pool loop has work again / has none (then: is the whole pool done?). */
void weft__pool_busy(struct weft_loop *l);
bool weft__pool_idle(struct weft_loop *l);
/* Another thread hands @r to @l (see struct weft__remote). Any thread. */
void weft__loop_post_remote(struct weft_loop *l, struct weft__remote *r);
/*
 * Remember which system call failed with @err, so that weft_loop_explain
 * names it (this thread's last such failure).
 */
void weft__loop_note_failure(const char *syscall_name, int err);

/* fiber.c */
void weft__fiber_schedule(struct weft_loop *l, struct weft_fiber *self);

static inline void weft__runq_push(struct weft_loop *l, struct weft_fiber *f)
{
	f->next = NULL;
	if (l->runq_tail)
		l->runq_tail->next = f;
	else
		l->runq_head = f;
	l->runq_tail = f;
	l->runq_len++;
}

/* Make a parked fiber ready; park returns @res to it. No-op for any other state. */
static inline void weft__fiber_wake(struct weft_fiber *f, int res)
{
	if (f->state != WEFT__FIBER_PARKED)
		return;
	if (f->timer)
		weft__heap_remove(&f->loop->timers, f);
	f->wake_res = res;
	f->state = WEFT__FIBER_READY;
	weft__runq_push(f->loop, f);
}
/* weft__op_complete's body, for a backend to inline (compare op->complete first). */
static inline void weft__op_finish(struct weft__op *op, int res, uint32_t flags)
{
	op->res = res;
	op->cflags = flags;
	op->state = WEFT__OP_DONE;
	weft__fiber_wake(op->fiber, 0);
}

/* A wait that a cancel or the deadline ends with -ECANCELED / -ETIMEDOUT. */
extern struct weft__wait weft__wait_event;
/* A wait that only its waker ends (a cancel only marks the fiber). */
extern struct weft__wait weft__wait_handoff;
/*
 * Park @self on @w until a wake. With a @deadline, the timer heap wakes it
 * with -ETIMEDOUT then (its entry was reserved at spawn). Returns the
 * waker's result. Inline: it is on every operation's path.
 */
static inline int weft__fiber_park(struct weft_loop *l, struct weft_fiber *self,
				   struct weft__wait *w, int64_t deadline)
{
	assert(self == l->cur && self->state == WEFT__FIBER_RUNNING);
	if (deadline != WEFT_FOREVER)
		weft__heap_add(&l->timers, self, deadline);
	self->state = WEFT__FIBER_PARKED;
	self->wait = w;
	self->wake_res = 0;
	weft__fiber_schedule(l, self);
	self->wait = NULL;
	return self->wake_res;
}
/*
 * Spawn a fiber running @fn. With @blk, @blk_len bytes are copied to the
 * top of the new fiber's stack and @fn gets that copy as its argument (it
 * lives as long as the fiber runs); *@blk_out points at it.
 */
int weft__fiber_spawn(struct weft_loop *l, weft_fn fn, void *arg, bool detached,
		      struct weft_fiber **out);
int weft__fiber_spawn_blk(struct weft_loop *l, weft_fn fn, const void *blk, size_t blk_len,
			  bool detached, struct weft_fiber **out, void **blk_out);
void weft__fiber_run_round(struct weft_loop *l);
/* weft_cancel without the thread check (the loop's own destroy). */
void weft__fiber_cancel(struct weft_fiber *f);
void weft__fiber_release(struct weft_loop *l, struct weft_fiber *f);
void weft__fiber_free_all(struct weft_loop *l);

/* stack.c */
int weft__stacks_init(struct weft__stacks *s, const weft_config *cfg);
struct weft_fiber *weft__stack_alloc(struct weft__stacks *s);
void weft__stack_free(struct weft__stacks *s, struct weft_fiber *f);
void weft__stacks_fini(struct weft__stacks *s);
void weft__stack_check(const struct weft__stacks *s, const struct weft_fiber *f);
void weft__stack_segv_install(void);
void weft__stack_segv_release(void);
#if WEFT_STACK_CENSUS
void weft__census_record(struct weft_loop *l, const struct weft_fiber *f);
void weft__census_report(struct weft_loop *l);
#endif

/* time.c */
int64_t weft__clock_now(void);
/* Wake every fiber whose deadline is due at @now. */
void weft__timers_fire(struct weft_loop *l, int64_t now);
/* The nearest deadline in the heap, or WEFT_FOREVER. */
static inline int64_t weft__timers_next(const struct weft_loop *l)
{
	return l->timers.len ? l->timers.v[0].deadline : WEFT_FOREVER;
}

/* offload.c */
void weft__offload_fini(struct weft_loop *l);
/*
 * pthread_create with every signal blocked in the new thread: signals belong
 * to the threads of the program, not to weft's workers. Call it on the
 * loop's own stack, not a fiber's (it takes about 2 KiB). Return: 0 or -errno.
 */
int weft__thread_start(pthread_t *tid, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
/*
 * Run @fn(@arg) on a thread of its own while the fiber waits, up to its
 * deadline or a cancel. Return: 0 once @fn ran (@arg is the caller's again);
 * else -ETIMEDOUT, -ECANCELED, -ENOMEM, -EAGAIN or -EPERM (outside a fiber),
 * and @arg is dropped: by @drop(@arg) at once, or by the thread once @fn
 * returns if the fiber stopped waiting while it ran.
 */
int weft__offload_abandonable(weft_fn fn, void (*drop)(void *arg), void *arg);

/* The checks every blocking call makes: 0 with *@self, or -EPERM, -ECANCELED, -ETIMEDOUT. */
static inline int weft__op_check(struct weft_fiber **self)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *f = l ? l->cur : NULL;

	if (!f)
		return -EPERM;
	if (f->cancelled)
		return -ECANCELED;
	if (f->deadline != WEFT_FOREVER && l->be->now(l) >= f->deadline)
		return -ETIMEDOUT;
	*self = f;
	return 0;
}

/* sync.c, chan.c: a fiber parked on a wait queue */
struct weft__waiter {
	struct weft__list link;
	struct weft_fiber *fiber;
	void *elem; /* channel element to fill or take */
	int res;    /* the wait's result, set by the waker with done */
	bool done;  /* the waker completed the wait */
};
struct weft__waitq {
	struct weft__list head; /* initialised lazily: zero means empty */
};
bool weft__waitq_empty(const struct weft__waitq *q);
struct weft__waiter *weft__waitq_pop(struct weft__waitq *q);
/* Park on @q until completed; @handoff: only the waker ends the wait. */
int weft__waitq_wait(struct weft__waitq *q, struct weft__waiter *w, bool handoff);
void weft__waitq_complete(struct weft__waiter *w, int res);

#pragma GCC visibility pop

#endif
