/* SPDX-License-Identifier: MIT */
/*
 * The await (op.c): an op record filled by a thin public function is
 * checked, handed to the loop's backend (or, where the backend lacks the
 * op, to the op table's fallback) and waited for. Also the op job: an op's
 * blocking form run on a worker thread, on a copy of its record.
 */
#ifndef WEFT_OP_H
#define WEFT_OP_H

#include "types.h"
#include "fiber.h"

#pragma GCC visibility push(hidden)

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

/* weft__op_complete's body, for a backend to inline (compare op->complete first). */
static inline void weft__op_finish(struct weft__op *op, int res, uint32_t flags)
{
	op->res = res;
	op->cflags = flags;
	op->state = WEFT__OP_DONE;
	weft__fiber_wake(op->fiber, 0);
}

/*
 * An op's blocking form (its row's `blocking`) on a worker thread. The
 * worker runs a copy of the record whose descriptors are duplicates (as
 * io_uring holds a reference to the file, so a close or a reused number
 * never changes what it works on). An op that reads and fills no data
 * buffer (paths, a statx, an fsync) runs on copies of everything and may be
 * abandoned: its waiter can leave at once, and what it made later (an fd)
 * is released by the worker. An op that moves data runs in the caller's
 * buffers and must be waited for, as io_uring's own workers are.
 */
struct weft__opjob;

/*
 * Start @op on @l's workers; @back(@job) runs on @l's thread (from its
 * inbox) once it is done, unless it was abandoned.
 * Return: 0 with *@out; -ENOMEM, -ENAMETOOLONG, or dup's -EMFILE.
 */
int weft__opjob_start(struct weft_loop *l, struct weft__op *op,
		      void (*back)(struct weft__opjob *job, void *ctx), void *ctx,
		      struct weft__opjob **out);
/* Stop waiting for @job: true if it will never come back (the op record is free). */
bool weft__opjob_abandon(struct weft__opjob *job);
/* In @back: copy what the worker produced into the op's memory, free @job. Return: the result. */
int weft__opjob_end(struct weft__opjob *job);

#pragma GCC visibility pop

#endif
