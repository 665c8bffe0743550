/* SPDX-License-Identifier: MIT */
/*
 * The io_uring backend's own state (struct uring), shared by its two
 * files: uring_setup.c sets the ring up (flags, probing, the wake eventfd)
 * and tears it down; backend_uring.c runs it. These are the only files of
 * weft that include liburing.
 */
#ifndef WEFT_URING_SETUP_H
#define WEFT_URING_SETUP_H

#include "types.h"
#include "fdtable.h"

#include <liburing.h>

#pragma GCC visibility push(hidden)

_Static_assert(sizeof(struct io_uring_sqe) == 64, "weft assumes 64-byte SQEs");
_Static_assert(sizeof(struct io_uring_cqe) == 16, "weft assumes 16-byte CQEs");
_Static_assert(_Alignof(struct weft__op) >= 4, "two low bits of an op's address are free");

#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13) /* Linux 6.1 */
#endif

/* Which of an op's SQEs a CQE answers: the low bits of user_data. */
#define UD_OWN 0u
#define UD_TIMEOUT 1u
#define UD_CANCEL 2u
#define UD_TAGS 3u
/* user_data of a cancel by fd, whose answer nobody waits for. */
#define UD_IGNORE ((uint64_t)0)
/* Not counted in inflight: a wake from another loop's MSG_RING, and that SQE's failure. */
#define UD_WAKE ((uint64_t)4)
#define UD_MSG ((uint64_t)8)
#define UD_SPECIAL ((uint64_t)16)

struct uring {
	struct io_uring ring;
	uint32_t mode;	   /* enum weft_ring_mode it was set up in */
	uint32_t flags;	   /* IORING_SETUP_* it was set up with */
	uint64_t probe[2]; /* IORING_OP_* this kernel has, a bit each */
	bool sqpoll;
	bool defer;
	/*
	 * Set up IORING_SETUP_R_DISABLED: a SINGLE_ISSUER ring is bound to the
	 * thread that enables it, so it is enabled by the first io_uring_enter,
	 * on the thread that first runs the loop (which may not be the creator).
	 */
	bool disabled;
	bool entered;		   /* the first io_uring_enter was made (by the running thread) */
	bool reaping;		   /* completions are being dispatched: no SQE may be taken */
	bool valgrind;		   /* mark kernel-filled memory defined */
	int fatal;		   /* io_uring_enter was refused: every op fails with this */
	struct weft__op *deferred; /* submitted while reaping, in order */
	struct weft__op **deferred_tail;
	struct weft__fdtable fds; /* the ops pending on each fd, for weft_close */
	/* Other threads wake the loop through this eventfd, polled while remote work is due. */
	int wake_fd;
	bool wake_armed;
	struct weft__op wake_op;
	/* IORING_OP_MSG_RING (5.18) works and WEFT_WAKE does not forbid it. */
	bool msg_ring;
	/* IORING_RECVSEND_POLL_FIRST (5.19) is used (WEFT_POLL_FIRST is not off). */
	bool poll_first;
	/* Per fd: its last receive said bytes were left (IORING_CQE_F_SOCK_NONEMPTY). */
	uint8_t *nonempty;
	size_t nonempty_cap;
};

static inline struct uring *U(struct weft_loop *l)
{
	return l->be_data;
}

/* Set the ring up on @l (backend.h's setup), and tear it down. */
int weft__uring_setup(struct weft_loop *l);
void weft__uring_teardown(struct weft_loop *l);
/* backend.h's bufs_ring: the lent buffers as a provided-buffer ring. */
int weft__uring_bufs_ring(struct weft_loop *l, struct weft__bufs *b);

#pragma GCC visibility pop

#endif
