/* SPDX-License-Identifier: MIT */
/*
 * Internal types and weft__ declarations shared between the files of src/.
 * Never installed. The invariant that everything here serves: memory the
 * kernel was given (an op record, a buffer, a fiber's stack) stays valid until
 * the CQE of every SQE that named it has been reaped.
 */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include "config.h"
#include "weft.h"
#include "arch/switch.h"
#include "sanitize.h"

#include <assert.h>
#include <liburing.h>
#include <sys/uio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT__UNLIKELY(x) __builtin_expect(!!(x), 0)

_Static_assert(sizeof(struct io_uring_sqe) == 64, "weft assumes 64-byte SQEs");
_Static_assert(sizeof(struct io_uring_cqe) == 16, "weft assumes 16-byte CQEs");

/* user_data of SQEs whose CQE nobody waits for (cancel requests). */
#define WEFT__UD_IGNORE ((uint64_t)0)
/* user_data of the offload pool's eventfd read (op records are aligned: never 1). */
#define WEFT__UD_OFFLOAD ((uint64_t)1)

enum weft__op_state {
	WEFT__OP_IDLE = 0,  /* not in the kernel */
	WEFT__OP_ARMED = 1, /* SQE prepared or submitted; its final CQE not seen */
	WEFT__OP_DONE = 2,  /* final CQE reaped: res and cflags are valid */
};

/*
 * One operation in the kernel. Lives on the waiting fiber's stack; the SQE's
 * user_data points at it, so the fiber cannot return from the await until
 * state is DONE.
 */
struct weft__op {
	struct weft_fiber *fiber; /* who is parked on it */
	int32_t res;		  /* cqe->res, copied before the CQ head moves */
	uint32_t cflags;	  /* cqe->flags, copied likewise */
	uint8_t state;		  /* enum weft__op_state */
	bool cancel_sent;	  /* an ASYNC_CANCEL naming this op is in the ring */
	int32_t fd;		  /* counted in loop->fd_busy, or -1 */
};

enum weft__fiber_state {
	WEFT__FIBER_FREE = 0,	 /* in the stack pool */
	WEFT__FIBER_READY = 1,	 /* on the run queue */
	WEFT__FIBER_RUNNING = 2, /* the current fiber */
	WEFT__FIBER_PARKED = 3,	 /* waiting; see wait */
	WEFT__FIBER_DONE = 4,	 /* returned; waiting for join */
};

/* What a parked fiber waits for, which decides what weft_cancel does to it. */
enum weft__wait {
	WEFT__WAIT_NONE = 0,
	WEFT__WAIT_IO = 1,	/* an op's CQE: cancel sends ASYNC_CANCEL and keeps waiting */
	WEFT__WAIT_EVENT = 2,	/* a wake-up, a timer: cancel wakes it with -ECANCELED */
	WEFT__WAIT_GATHER = 3,	/* its gather children: cancel passes to them */
	WEFT__WAIT_OFFLOAD = 4, /* a worker thread: cancel only marks it */
	WEFT__WAIT_HANDOFF =
	    5, /* a wake that must come (a mutex taken back): cancel only marks it */
};

struct weft__gather;

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
 *         | guard page (PROT_NONE),    |  only for the first
 *   low   | if this stack has one      |  weft_config.stack_guards stacks
 *         +----------------------------+ <- slot start
 */
struct weft_fiber {
	struct weft__ctx ctx;	     /* saved registers while not running */
	struct weft_fiber *next;     /* run queue or free list link */
	struct weft_fiber *all_prev; /* list of fibers alive in the loop */
	struct weft_fiber *all_next;
	struct weft_loop *loop;	     /* owner; fibers never migrate */
	weft_fn fn;		     /* body */
	void *arg;		     /* its argument */
	int result;		     /* fn's return value, once DONE */
	uint32_t id;		     /* for messages: 1, 2, ... per loop */
	uint8_t state;		     /* enum weft__fiber_state */
	uint8_t wait;		     /* enum weft__wait while PARKED */
	bool detached;		     /* freed by the loop when it returns */
	bool cancelled;		     /* weft_cancel was called */
	int wake_res;		     /* what park returns; set by the waker */
	int64_t deadline;	     /* absolute ns or WEFT_FOREVER */
	uint64_t timer_seq;	     /* the armed heap timer, 0 if none */
	struct weft__op *op;	     /* op waited on, while wait == IO */
	struct weft_fiber *joiner;   /* fiber parked in weft_join on us */
	struct weft__gather *gather; /* the gather we are a child of, or NULL */
	weft_call *gcall;	     /* our call in that gather */
	struct weft_fiber *gnext;    /* sibling in that gather */
	struct weft_fiber *gprev;
	struct weft__gather *gwait; /* the gather this fiber waits in, or NULL */
	char *stack_lo;		    /* lowest usable byte (holds the canary) */
	char *stack_top;	    /* first byte above the usable stack */
	void *asan_fake;	    /* ASan fake stack saved across a switch */
	unsigned vg_id;		    /* valgrind stack id; survives reuse */
	bool guarded;		    /* a guard page lies below stack_lo */
};

/* A timer in the heap: stale once the fiber's timer_seq has moved on. */
struct weft__timer {
	int64_t deadline;
	uint64_t seq;
	struct weft_fiber *fiber;
};

/* 4-ary min-heap of timers; lazy deletion by sequence number. */
struct weft__heap {
	struct weft__timer *v;
	size_t len;
	size_t cap;
};

/* A slab of stacks: one mapping, released at loop destroy. */
struct weft__slab {
	struct weft__slab *next;
	char *base;
	size_t len;
	size_t count;
};

struct weft__stacks {
	size_t slot;	    /* bytes per stack slot, a page multiple */
	size_t page;	    /* page size */
	size_t guards_left; /* stacks that may still get a guard page */
	size_t next_slab;   /* stacks in the next slab (grows geometrically) */
	struct weft__slab *slabs;
	struct weft_fiber *free; /* fibers ready for reuse */
	uint64_t mapped;
	uint64_t guarded;
	uint64_t canary;    /* written at stack_lo, checked at every switch */
	bool populate;	    /* MADV_POPULATE_WRITE works on this kernel */
	bool markers;	    /* MADV_GUARD_INSTALL works on this kernel (6.13) */
	bool batch;	    /* process_madvise() takes our advice in batches */
	struct iovec *iov;  /* process_madvise batch, BATCH entries */
	bool probed;	    /* markers has been probed */
	bool guards_wanted; /* stack_guards was not 0 */
	uint64_t huge;	    /* stacks in slabs backed by transparent huge pages */
	bool thp;	    /* MADV_HUGEPAGE may work: align one-page slabs for it */
};

struct weft__pool;

struct weft_loop {
	struct io_uring ring;
	uint64_t probe[2];	      /* opcodes the kernel supports, a bit each */
	struct weft__pool *pool;      /* offload workers, made at the first weft_offload */
	struct weft__ctx ctx;	      /* the scheduler: the thread's own stack */
	struct weft_fiber *cur;	      /* running fiber, NULL in the scheduler */
	struct weft_fiber *runq_head; /* ready fibers, FIFO */
	struct weft_fiber *runq_tail;
	size_t runq_len;
	size_t round_left;	   /* fibers this round may still run before the tick */
	struct weft_fiber *zombie; /* returned detached fiber to free after the switch */
	struct weft_fiber *all;	   /* fibers alive */
	uint64_t live;		   /* how many are alive */
	uint64_t inflight;	   /* SQEs whose final CQE is not yet reaped */
	/*
	 * Operations in flight per fd, so that weft_close sends its cancel
	 * only when something waits on the fd: a cancel by fd walks every
	 * pending request of the ring, O(N) each, O(N^2) for N connections.
	 */
	uint32_t *fd_busy;
	size_t fd_busy_len;
	bool fd_untracked;  /* growing fd_busy failed: always cancel */
	uint64_t timer_seq; /* last sequence number handed out */
	uint32_t next_id;
	bool running;
	bool destroying;
	struct weft__heap timers;
	struct weft__stacks stacks;
	weft_config cfg;
	weft_stats stats;
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

/* Count an operation on @fd (false: not counted, weft_close must cancel). */
bool weft__fd_busy_inc(struct weft_loop *l, int fd);

/* The loop running on this thread (NULL outside weft_loop_run). */
extern __thread struct weft_loop *weft__tls_loop;

/* loop.c */
_Noreturn void weft__bug(const struct weft_fiber *f, const char *file, int line, const char *what);
#define WEFT__BUG(f, what) weft__bug((f), __FILE__, __LINE__, (what))

/* ring.c */
int weft__ring_setup(struct weft_loop *l);
struct io_uring_sqe *weft__ring_sqe_slow(struct weft_loop *l);

/* An SQE; with the SQ full, submit and reap first (never fails). */
static inline struct io_uring_sqe *weft__ring_sqe(struct weft_loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	return WEFT__LIKELY(sqe != NULL) ? sqe : weft__ring_sqe_slow(l);
}
void weft__ring_reserve(struct weft_loop *l, unsigned n);
int weft__ring_tick(struct weft_loop *l, bool wait, int64_t deadline);

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
	f->wake_res = res;
	f->timer_seq = 0;
	f->state = WEFT__FIBER_READY;
	weft__runq_push(f->loop, f);
}
int weft__fiber_park(struct weft_loop *l, struct weft_fiber *self, enum weft__wait wait,
		     int64_t deadline);
int weft__fiber_spawn(struct weft_loop *l, weft_fn fn, void *arg, bool detached,
		      struct weft_fiber **out);
void weft__fiber_run_round(struct weft_loop *l);
void weft__fiber_release(struct weft_loop *l, struct weft_fiber *f);
void weft__fiber_free_all(struct weft_loop *l);
void weft__gather_child_done(struct weft_fiber *f);
void weft__gather_cancel(struct weft_fiber *waiter);

/* stack.c */
int weft__stacks_init(struct weft__stacks *s, const weft_config *cfg);
struct weft_fiber *weft__stack_alloc(struct weft__stacks *s);
void weft__stack_free(struct weft__stacks *s, struct weft_fiber *f);
void weft__stacks_fini(struct weft__stacks *s);
void weft__stack_check(const struct weft__stacks *s, const struct weft_fiber *f);
void weft__stack_segv_install(void);
#if WEFT_STACK_CENSUS
void weft__census_record(struct weft_loop *l, const struct weft_fiber *f);
void weft__census_report(struct weft_loop *l);
#endif

/* time.c */
int weft__timer_arm(struct weft_loop *l, struct weft_fiber *f, int64_t deadline);
int64_t weft__timer_next(struct weft_loop *l);
void weft__timer_fire(struct weft_loop *l, int64_t now);
void weft__timers_fini(struct weft_loop *l);

/* op.c */
/* One operation's context: the fiber, its loop and the op record, on the fiber's stack. */
struct weft__call {
	struct weft_loop *l;
	struct weft_fiber *self;
	struct weft__op op;
};
int weft__call_begin(struct weft__call *c, struct io_uring_sqe **sqe);
int weft__call_await(struct weft__call *c, struct io_uring_sqe *sqe);
bool weft__op_supported(const struct weft_loop *l, unsigned opcode);
int weft__op_check(struct weft_fiber **self);
struct io_uring_sqe *weft__op_sqe(struct weft_loop *l, struct weft_fiber *self, bool deadline);
int weft__op_await(struct weft_loop *l, struct weft_fiber *self, struct weft__op *op,
		   struct io_uring_sqe *sqe, bool deadline);
void weft__op_cancel(struct weft_loop *l, struct weft__op *op);

/* offload.c */
void weft__offload_reap(struct weft_loop *l, int res);
void weft__offload_fini(struct weft_loop *l);
/* The syscall @nr with @args, run on an offload worker: its result or -errno. */
long weft__offload_syscall(long nr, long a0, long a1, long a2, long a3, long a4);

/* chan.c, sync.c: a fiber parked on a wait queue */
struct weft__waiter {
	struct weft_fiber *fiber;
	struct weft__waiter *next;
	struct weft__waiter *prev;
	void *elem; /* channel element to fill or take */
	int res;    /* the wait's result, set by the waker with done */
	bool done;  /* the waker completed the wait */
};
struct weft__waitq {
	struct weft__waiter *head;
	struct weft__waiter *tail;
};
void weft__waitq_push(struct weft__waitq *q, struct weft__waiter *w);
void weft__waitq_remove(struct weft__waitq *q, struct weft__waiter *w);
struct weft__waiter *weft__waitq_pop(struct weft__waitq *q);
int weft__waitq_wait(struct weft__waitq *q, struct weft__waiter *w, enum weft__wait kind);
void weft__waitq_complete(struct weft__waiter *w, int res);

#endif
