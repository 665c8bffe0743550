/* SPDX-License-Identifier: MIT */
/*
 * The op table (opdef.c): one row per operation of weft, with everything
 * any backend needs to run it. A backend never names an ordinary
 * operation: what differs from one op to the next is data or a hook in its
 * row. How the record's fields carry each op's arguments is drawn in
 * opdef.c; the hooks (the system calls themselves) are in opsys.c.
 */
#ifndef WEFT_OPDEF_H
#define WEFT_OPDEF_H

#include "types.h"

#include <sys/socket.h>

#pragma GCC visibility push(hidden)

/* weft's own operation codes: the index into the op table. */
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
	WEFT__OP_SPLICE,
	WEFT__OP_SEND_ZC,
	WEFT__OP_RECV_BUF,
	WEFT__OP_ACCEPT_MULTI,
	WEFT__OP_RECV_MULTI,
	WEFT__OP_COUNT
};

/* What memory the kernel fills on completion (a worker's copy-out; valgrind). */
enum weft__fill {
	WEFT__FILL_NONE = 0,
	WEFT__FILL_BUF,	     /* addr, res bytes */
	WEFT__FILL_IOV,	     /* the iovec array at addr (len entries), res bytes */
	WEFT__FILL_MSG,	     /* the msghdr at addr: its iovecs, name and control */
	WEFT__FILL_STATX,    /* a struct statx at off */
	WEFT__FILL_SOCKADDR, /* a sockaddr at addr, its length at off */
};

/* What memory the op reads besides its record (what a worker must copy to run it on its own). */
enum weft__reads {
	WEFT__READS_NONE = 0,
	WEFT__READS_DATA, /* a buffer or iovecs the op moves: a worker runs it in place */
	WEFT__READS_PATH, /* a path at addr */
	WEFT__READS_PATHS /* a path at addr and another at off2 */
};

/* The readiness an op waits for where it is tried without blocking first (epoll). */
enum weft__ready {
	WEFT__READY_NONE = 0,
	WEFT__READY_IN,	    /* input (POLLIN) */
	WEFT__READY_OUT,    /* output (POLLOUT) */
	WEFT__READY_EVENTS, /* the POLL* events in op_flags */
};

/* weft__opdef.flags */
#define WEFT__OPD_FD (1u << 0)	     /* op->fd is a descriptor the op waits on (close cancels it) */
#define WEFT__OPD_DEADLINE (1u << 1) /* the fiber's deadline bounds it */
#define WEFT__OPD_MUST_RUN (1u << 2) /* runs for a cancelled fiber, or past its deadline */
#define WEFT__OPD_CLOSES (1u << 3)   /* ends op->fd: its pending ops are cancelled first */
#define WEFT__OPD_NEW_FD (1u << 4)   /* a result >= 0 is a new descriptor */
#define WEFT__OPD_DIRFD (1u << 5)    /* op->fd is a directory fd (or AT_FDCWD) */
#define WEFT__OPD_DIRFD2 (1u << 6)   /* op->fd2 is one too */
#define WEFT__OPD_TIMER (1u << 7)    /* ends with -ETIME at the absolute time op->off */
#define WEFT__OPD_MORE (1u << 8)     /* io_uring: its result may say a notification follows */
/*
 * The deadline is the loop's timer, which cancels the op, not a linked
 * timeout: io_uring runs the op on io-wq, and Linux 6.18 never fires a
 * timeout linked to a splice that blocks there.
 */
#define WEFT__OPD_LOOP_TIMER (1u << 9)
/* A socket receive: io_uring waits first (POLL_FIRST) unless the last one left bytes behind. */
#define WEFT__OPD_RECV (1u << 10)
#define WEFT__OPD_MSG (1u << 11) /* op_flags are MSG_*: MSG_DONTWAIT means no wait at all */
/*
 * io_uring: a multishot op, ended only by the kernel or a cancel. Its
 * complete() runs for each CQE that says IORING_CQE_F_MORE (the op goes on,
 * still ARMED), then once for the last, as for any op.
 */
#define WEFT__OPD_MULTISHOT (1u << 12)

/* What the hooks of a row know of an fd across ops: a byte kept per fd (0: nothing yet). */
typedef uint8_t weft__memo;

/*
 * One row of the op table. Every backend reads the same row:
 *   - io_uring: uring_op, and uring_prep for what the generic copy of the
 *     record into the SQE gets wrong;
 *   - epoll: try_nb, then the readiness it waits for, or blocking on a
 *     worker thread (regular files, or ops epoll cannot wait for);
 *   - a backend without the op: try_nb in place when it never waits, try_nb
 *     after a poll of the readiness, or blocking on a worker;
 *   - everyone: flags, and what memory the op reads and the kernel fills.
 */
struct weft__opdef {
	const char *name;
	uint16_t flags;	  /* WEFT__OPD_* */
	uint8_t fill;	  /* enum weft__fill */
	uint8_t reads;	  /* enum weft__reads */
	uint8_t ready;	  /* enum weft__ready */
	uint8_t uring_op; /* its IORING_OP_* */
	/* Fix up the SQE after the record was copied into it field for field. */
	void (*uring_prep)(void *sqe, struct weft__op *op);
	/*
	 * One try that never blocks: the result (or -errno), or -EAGAIN to wait
	 * for the readiness in `ready` and try again. @memo: the backend's byte
	 * for op->fd, or NULL where it keeps none.
	 */
	long (*try_nb)(struct weft__op *op, weft__memo *memo);
	/* The blocking system call, on a worker thread: the result or -errno. */
	long (*blocking)(const struct weft__op *op);
	/* The op ends after try_nb ran: undo what the tries did to the fd (connect's flags). */
	void (*nb_end)(struct weft__op *op);
};
extern const struct weft__opdef weft__opdefs[];

static inline const struct weft__opdef *weft__opdef(unsigned code)
{
	return &weft__opdefs[code];
}

/* Whether @l's backend runs op @code itself. */
static inline bool weft__op_native(const struct weft_loop *l, unsigned code)
{
	return (l->ops >> code) & 1;
}

/* Whether @op asked not to wait (MSG_DONTWAIT): its try's -EAGAIN is its answer. */
static inline bool weft__op_dontwait(const struct weft__opdef *d, const struct weft__op *op)
{
	return (d->flags & WEFT__OPD_MSG) && (op->op_flags & MSG_DONTWAIT);
}

/* Whether a row never needs to wait: its try_nb always answers. */
static inline bool weft__opdef_in_place(const struct weft__opdef *d)
{
	return d->try_nb && d->ready == WEFT__READY_NONE;
}

#pragma GCC visibility pop

#endif
