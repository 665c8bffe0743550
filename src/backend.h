/* SPDX-License-Identifier: MIT */
/*
 * The boundary under the await: what a loop asks of the backend that talks
 * to the kernel. How an operation flows:
 *
 *   weft_read(fd, buf, len, off)   file.c: fills an op record on the fiber's stack
 *     -> op table (opdef.c)        has it an fd? does the deadline bound it? a fallback?
 *     -> weft__op_run (op.c)       checks (fiber? cancelled? deadline?), submits, parks
 *     -> backend->submit           backend_uring.c: an SQE (and a linked timeout)
 *     -> kernel                    ... batched, one io_uring_enter per tick ...
 *     <- backend tick reaps        every CQE the op caused has arrived
 *     <- op->complete(op, res, flags)  stores the result, wakes the fiber
 *     <- weft_read returns         -ETIMEDOUT / -ECANCELED mapped in op.c only
 *
 * Above this line nothing knows which backend runs; below it, nothing knows
 * about fibers except through op->complete. The backend calls op->complete
 * exactly once per submitted op, after the kernel has let go of everything
 * the op named (its buffers and the op record itself), never from inside
 * submit or cancel, and it never takes new kernel work while it is
 * dispatching completions: work submitted then waits until dispatch is over.
 * A multishot op (its row says WEFT__OPD_MULTISHOT) is the other case:
 * complete() runs for each of its results whose flags say
 * IORING_CQE_F_MORE, the op staying ARMED, and once more at its end.
 * One exception: an op whose answer is known inside submit (the epoll
 * backend's non-blocking try succeeded), whose completion is the default
 * weft__op_complete and whose fiber is the one submitting, may be finished
 * in place instead: res and cflags set, state DONE, no complete() call; the
 * fiber then goes on without parking.
 */
#ifndef WEFT_BACKEND_H
#define WEFT_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

struct weft_loop;
struct weft__op;
struct weft__bufs;

struct weft__backend {
	const char *name;
	/*
	 * Set up on @l (its cfg is checked): allocate l->be_data, fill l->ops
	 * with the weft opcodes it can run. Return: 0 or -errno, nothing left
	 * allocated then.
	 */
	int (*setup)(struct weft_loop *l);
	/* Release everything; nothing is in flight any more. */
	void (*teardown)(struct weft_loop *l);
	/*
	 * Start @op (state ARMED, complete set). Never fails: a full queue is
	 * flushed first; a backend that cannot reach the kernel any more
	 * completes the op with that error instead.
	 */
	void (*submit)(struct weft_loop *l, struct weft__op *op);
	/* Ask that @op end early, once; its own completion still follows. */
	void (*cancel)(struct weft_loop *l, struct weft__op *op);
	/* Ask that every op of this loop pending on @fd end (before a close). */
	void (*cancel_fd)(struct weft_loop *l, int fd);
	/*
	 * One trip to the kernel: submit what is pending; if @wait, sleep
	 * until a completion, a wake() or @deadline (absolute ns, WEFT_FOREVER
	 * for none); dispatch the completions. Return: 0, or -errno when the
	 * kernel can no longer be used (the loop stops with it).
	 */
	int (*tick)(struct weft_loop *l, bool wait, int64_t deadline);
	/* Any thread: make a tick that waits, or the next one, return. */
	void (*wake)(struct weft_loop *l);
	/* The loop's clock: absolute ns on CLOCK_MONOTONIC. */
	int64_t (*now)(struct weft_loop *l);
	/* Add the backend's counters to @out. */
	void (*stats)(struct weft_loop *l, struct weft_stats *out);
	/*
	 * Optional: hand the loop's lent buffers @b to the kernel, which then
	 * picks one for each lending receive (WEFT__OP_RECV_BUF completes with
	 * WEFT__CF_BUF and the buffer's id, bufs.h); set b->ring_put for the
	 * ones given back. Return: 0, or -errno: then the backend does not run
	 * RECV_BUF itself any more (l->ops), and bufs.c lends them.
	 */
	int (*bufs_ring)(struct weft_loop *l, struct weft__bufs *b);
};

extern const struct weft__backend weft__backend_uring;
extern const struct weft__backend weft__backend_epoll;

#endif
