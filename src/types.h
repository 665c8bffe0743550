/* SPDX-License-Identifier: MIT */
/*
 * The types that several layers of src/ share: the op record, the wait
 * record a fiber parks on, the waiter of the one wait primitive, a record
 * handed across threads, the fiber control block, the stack pool and the
 * loop. Functions live in the headers of their modules; this one holds
 * data and the few inlines that read nothing but it.
 *
 * The invariant all of it serves: memory the kernel was given (an op
 * record, a buffer, a fiber's stack) stays valid until the backend has
 * reported, through the op's completion function, that the kernel has let
 * go of all of it.
 */
#ifndef WEFT_TYPES_H
#define WEFT_TYPES_H

#include "base.h"
#include "heap.h"
#include "backend.h"
#include "arch/switch.h"

#pragma GCC visibility push(hidden)

struct weft_fiber;
struct weft_loop;
struct weft__acceptor;
struct weft__receiver;

/* ---- the op record ------------------------------------------------------------ */

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

/*
 * What a parked fiber waits on. weft_cancel calls @cancel, which either
 * wakes the fiber with -ECANCELED or asks the thing it waits for to end
 * early (the fiber then wakes when it does). NULL: a cancel only marks the
 * fiber, and the wait goes on (a hand-off that must come).
 */
struct weft__wait {
	void (*cancel)(struct weft_fiber *f, struct weft__wait *w);
};

struct weft__opjob;

/*
 * One operation, described in weft's terms. Lives on the waiting fiber's
 * stack (or in the record of whoever submitted it); the backend may point
 * the kernel at it, so it stays put until complete() has run. The fields
 * of the request mirror a system call's arguments; opdef.c maps them for
 * each op.
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
	struct weft__list fdlink;  /* the ops pending on the same fd */
	struct weft__op *deferred; /* a list of ops to finish later */
	uint32_t due;		   /* completions the kernel still owes for this op */
	int32_t kres;		   /* the op's own result, while others are due */
	uint32_t kflags;	   /* the backend's flags for it */
	uint32_t hook;		   /* the op row's hooks' own state (opsys.c), 0 at submit */
	union {
		int64_t ts[2]; /* io_uring: a timespec the kernel reads (a deadline, a timeout) */
		struct {
			union {
				struct weft__opjob *job; /* epoll: the worker job running it */
				struct weft__op *qnext;	 /* epoll: next queued for the workers */
			};
			struct weft__hnode timer; /* epoll: in the backend's deadline heap */
		};
	};
	/* a second descriptor and offset (renameat's new directory and path, splice's input) */
	int32_t fd2;
	uint64_t off2;
};

/* ---- across threads ------------------------------------------------------------- */

/*
 * Work handed to a loop by another thread (or by itself): pushed on the
 * loop's inbox (inbox.h), lock-free, followed by a backend wake(); the loop
 * runs it after its tick, on its own thread and stack.
 */
struct weft__remote {
	struct weft__remote *next;
	void (*run)(struct weft_loop *l, struct weft__remote *r);
};

/*
 * The one wait record (wait.c). A fiber parks on it until a waker
 * completes it, on this thread or any other; a deadline or a cancel may end
 * the wait early, and then withdraw() decides whether the wait can be taken
 * back (it fails with that error) or the completion is already on its way
 * (the fiber waits for it, uninterrupted, and the wait succeeds). Lives on
 * the waiting fiber's stack.
 */
struct weft__waiter {
	struct weft__wait wait;	  /* what the fiber parks on: its cancel hook */
	struct weft_fiber *fiber; /* who waits */
	struct weft__list link;	  /* on the owner's queue, if it keeps one */
	void *elem;		  /* a channel's element to fill or take */
	void *ctx;		  /* the owner's, for withdraw and on_cancel */
	/* Early end: true if taken back; false if the completion is on its way. */
	bool (*withdraw)(struct weft__waiter *w);
	/* A cancel of the fiber: NULL ends the wait early; else this runs and the wait goes on. */
	void (*on_cancel)(struct weft__waiter *w);
	/* Complete the wait, from any thread (weft__waiter_wake; fiber.c calls it through this). */
	void (*wake)(struct weft__waiter *w, int res);
	struct weft__remote remote; /* how a completion from another thread reaches the loop */
	int res;		    /* the waker's result */
	int early;		    /* the deadline or cancel that ended the wait early, else 0 */
	unsigned flags;		    /* WEFT__WAIT_* (wait.h) */
	bool done;		    /* the waker completed it (under the owner's lock, if shared) */
	bool woken;		    /* the completion reached the waiting fiber's loop */
	bool outside; /* counted in its pool's quiet.outside (chan.c, under the owner's lock) */
};

/* ---- fibers -------------------------------------------------------------------- */

enum weft__fiber_state {
	WEFT__FIBER_FREE = 0,	 /* in the stack pool */
	WEFT__FIBER_READY = 1,	 /* on the run queue */
	WEFT__FIBER_RUNNING = 2, /* the current fiber */
	WEFT__FIBER_PARKED = 3,	 /* waiting on wait */
	WEFT__FIBER_DONE = 4,	 /* returned; waiting for join */
};

/*
 * The fiber control block. Control blocks sit in an array of their slab,
 * apart from the stacks (stack.c), so an overflow of a stack never reaches
 * another fiber's saved registers:
 *
 *   slab: [ guard or red zone | stack 0 ][ guard | stack 1 ] ...
 *   fibers[]: [ weft_fiber 0 ][ weft_fiber 1 ] ...   (stack_lo, stack_top)
 *
 * It holds nothing for any particular kind of waiter: what a fiber waits on
 * is a wait record on its own stack.
 */
struct weft_fiber {
	struct weft__ctx ctx;	  /* saved registers while not running */
	struct weft_fiber *next;  /* run queue or free list link */
	struct weft__list all;	  /* the loop's fibers alive; a cold stack's link when free */
	struct weft_loop *loop;	  /* owner; fibers never migrate */
	weft_fn fn;		  /* body */
	void *arg;		  /* its argument */
	int result;		  /* fn's return value, once DONE */
	uint32_t id;		  /* for messages: 1, 2, ... per loop */
	uint8_t state;		  /* enum weft__fiber_state */
	bool detached;		  /* freed by the loop when it returns */
	bool cancelled;		  /* weft_cancel was called */
	int wake_res;		  /* what park returns; set by the waker */
	struct weft__hnode timer; /* in the loop's timer heap while parked with a deadline */
	int64_t deadline;	  /* absolute ns or WEFT_FOREVER */
	struct weft__wait *wait;  /* what it is parked on, while PARKED */
	char name[32];	 /* weft_set_name's, NUL-terminated; "" if none (zeroed at spawn) */
	char *stack_lo;	 /* lowest usable byte (a guard page or red zone below) */
	char *stack_top; /* first byte above the usable stack */
	void *asan_fake; /* ASan fake stack saved across a switch */
	unsigned vg_id;	 /* valgrind stack id; survives reuse */
	bool guarded;	 /* a guard page lies below stack_lo, else a red zone */
	bool cold;	 /* free, on the stacks' cold list through all */
	uint8_t pool;	 /* its stack's pool: 0 the loop's size, else a size class */
	/* Joining (remote.c), from this loop or another of its pool; reset at spawn. */
	_Atomic(struct weft_fiber *) claim;    /* the one fiber joining it */
	_Atomic bool exited;		       /* returned: result may be read */
	_Atomic(struct weft__waiter *) joiner; /* the joiner's wait, while it waits */
	struct weft__remote home;	       /* frees it on its loop after a join from another */
	void *tsan_fiber;		       /* its ThreadSanitizer fiber (TSan builds) */
} __attribute__((aligned(64))); /* the switch touches ctx: keep it on whole cache lines */

/* ---- the stack pool (stack.c) --------------------------------------------------- */

/* A slab of stacks: one mapping, released at loop destroy. */
struct weft__slab {
	struct weft__slab *next;
	char *base;
	size_t len;
	size_t count;
	struct weft_fiber *fibers; /* the control blocks of its stacks */
};

/*
 * Stack pools: pools[0] holds stacks of the loop's stack_size, pools[1 + k]
 * those of a weft_spawn_opts size class, one page << k (a power of two of
 * pages, up to WEFT_STACK_SIZE_MAX). A stack goes back to the pool it came
 * from (weft_fiber.pool).
 */
#define WEFT__STACK_CLASSES 19

struct weft__stackpool {
	size_t slot;		  /* bytes per stack slot, a page multiple */
	size_t next_slab;	  /* stacks in the next slab (grows geometrically) */
	size_t max_slab;	  /* most stacks a slab of this pool holds */
	struct weft__slab *slabs; /* its slabs, newest first */
	struct weft_fiber *free;  /* fibers ready for reuse, last freed first */
};

struct weft__stacks {
	struct weft__stackpool pools[1 + WEFT__STACK_CLASSES];
	size_t page;		/* page size */
	size_t guards_left;	/* stacks that may still get an mprotect()ed guard page */
	bool guards_all;	/* stack_guards is WEFT_STACK_GUARDS_ALL: -ENOMEM past the budget */
	bool guards_auto;	/* WEFT_STACK_GUARDS_AUTO: unguarded past the budget, said once */
	bool guards_spent;	/* the map-count budget ran out: no more mprotect()ed guards */
	struct weft__list cold; /* freed stacks holding pages below the top one, oldest first */
	size_t cold_count;
	uint64_t trimmed; /* stacks trimmed back to their top page */
	uint64_t mapped;
	uint64_t guarded;
	uint64_t unguarded; /* stacks meant to be guarded that the map-count budget left without */
	uint64_t canary;    /* fills the red zones, checked at every switch */
	bool markers;	    /* MADV_GUARD_INSTALL works on this kernel (6.13) */
	bool markers_off;   /* WEFT_GUARD_MARKERS=off: mprotect even where markers work */
	bool batch;	    /* process_madvise() takes our advice in batches */
	struct iovec *iov;  /* process_madvise batch, BATCH entries */
	bool probed;	    /* markers has been probed */
	bool guards_wanted; /* stack_guards was not 0 */
	bool thp;	    /* MADV_HUGEPAGE may work: align one-page slabs for it */
};

/* ---- the loop ------------------------------------------------------------------- */

struct weft__quiet;
struct weft__workers;
struct weft__bufs;
struct weft__sigloop;
struct weft__pipes;
struct weft_pool;

struct weft_loop {
	const struct weft__backend *be; /* the one that talks to the kernel */
	void *be_data;			/* its state */
	uint64_t ops;			/* weft opcodes the backend runs itself, a bit each */
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
	uint64_t owed;		   /* parked waits that another thread owes an answer (wait.c) */
	/* across threads (remote.c, inbox.h) */
	_Atomic(struct weft__remote *) inbox;
	_Atomic uint32_t posts;	       /* weft_loop_post records not yet run, for the bound */
	_Atomic unsigned posting;      /* weft_loop_post calls between their check and push */
	_Atomic unsigned pushing;      /* pushes on its inbox not yet done with it (inbox.h) */
	_Atomic bool closed;	       /* shutdown has begun: posts fail -ESHUTDOWN */
	_Atomic bool posts_seen;       /* a post reached it: keep the wake armed */
	_Atomic uint64_t *flight;      /* a pool's count of records on their way to its loops */
	_Atomic uint64_t *outside;     /* a pool's count of waits a thread outside it may answer */
	struct weft__quiet *quiet;     /* the pool's quiescence while weft_pool_run runs it */
	bool quiet_idle;	       /* counted idle there */
	struct weft__workers *workers; /* the worker pool, made at its first job */
	struct weft__bufs *bufs;       /* the buffers weft_recv_buf lends, made at its first call */
	struct weft__pipes *pipes;     /* pipes for weft_sendfile, made at its first call */
	struct weft__acceptor *acceptors; /* listeners weft_accept keeps a multishot accept on */
	struct weft__receiver **rx; /* by fd: weft_recv_buf's multishot receives (recvmulti.c) */
	size_t rx_cap;
	void (*rx_forget)(struct weft_loop *l, int fd); /* weft__recvm_forget, for op.c */
	struct weft__sigloop *sig; /* weft_signal_wait's signalfd, made at its first call */
	uint32_t next_id;
	_Atomic bool running;	     /* weft_loop_run (or destroy) is running it */
	bool ran;		     /* weft_loop_run was called: it stays on owner's thread */
	bool destroying;	     /* spawns fail -ECANCELED */
	_Atomic(const void *) owner; /* weft__thread_id() of its thread: the creator's until run */
	struct weft_pool *pool;	     /* the pool it belongs to, or NULL */
	unsigned pool_index;
	struct weft__heap timers; /* parked fibers' deadlines (fiber.c) */
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
		size_t size;	 /* the largest stack it had, in bytes */
		uint64_t fibers; /* fibers measured */
	} census[32];
#endif
};

/*
 * Whether @l belongs to another thread than the caller's: its creator's
 * until its first run, then the thread that ran it (weft_loop_run refuses
 * any other).
 */
static inline bool weft__loop_foreign(const struct weft_loop *l)
{
	return l != weft__tls_loop &&
	       atomic_load_explicit(&l->owner, memory_order_relaxed) != weft__thread_id();
}

#pragma GCC visibility pop

#endif
