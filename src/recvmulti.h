/* SPDX-License-Identifier: MIT */
/*
 * Multishot receive (recvmulti.c): on io_uring, weft_recv_buf on a stream
 * socket keeps one multishot receive armed per fd, into the loop's
 * provided buffers, and queues what arrives while no fiber waits. The loop
 * owns these receivers, one per fd, found by fd number; weft_close, an fd
 * number weft hands out again, and the loop's destroy end them. Every
 * other receive of weft on the fd (weft_recv, weft_read, weft_recvmsg)
 * first takes the bytes a receiver queued, so a stream stays in order.
 */
#ifndef WEFT_RECVMULTI_H
#define WEFT_RECVMULTI_H

#include "types.h"

#include <limits.h>
#include <sys/uio.h>

#pragma GCC visibility push(hidden)

struct weft__bufs;
struct weft__lent;

/*
 * Receptions queued per fd before weft stops its multishot receive (the
 * socket's buffer holds the rest); the next weft_recv_buf that finds the
 * queue empty arms it again. A few more may land while the stop takes
 * effect: they are queued too, never dropped.
 */
#define WEFT__RECVM_QUEUE 4

/* The answer that says: the caller's own path (a single-shot receive) runs instead. */
#define WEFT__RECVM_PLAIN INT_MIN

/*
 * weft_recv_buf's receive on @fd with the multishot receive: a queued
 * reception at once, else wait for the armed one. Return: bytes (> 0; *out
 * the buffer, *skip bytes at its front already taken by a copying receive),
 * 0 at end of file, -errno, or WEFT__RECVM_PLAIN. @flags: 0 arms it;
 * MSG_DONTWAIT takes what is queued, else -EAGAIN while it is armed; any
 * other is the single-shot receive's, and -EINVAL while it is armed or
 * holds receptions (they would come out of order).
 */
ssize_t weft__recvm_recv(struct weft_loop *l, struct weft__bufs *b, int fd, int flags,
			 struct weft__lent **out, size_t *skip);
/*
 * A copying receive (weft_recv, weft_read, weft_recvmsg) on @fd, which has a
 * receiver: the bytes it queued, copied into @iov; else, once its
 * multishot receive has ended, WEFT__RECVM_PLAIN (and the receiver is
 * gone). -ECANCELED / -ETIMEDOUT if the fiber's wait for the end ends early.
 * @flags: MSG_PEEK copies without taking, MSG_DONTWAIT fails -EAGAIN rather
 * than wait; the others are the caller's.
 */
ssize_t weft__recvm_drain(struct weft_loop *l, int fd, const struct iovec *iov, size_t iovcnt,
			  int flags);
/* Whether @fd's receiver holds bytes or an end of file (weft_poll's POLLIN). */
bool weft__recvm_readable(const struct weft_loop *l, int fd);
/* weft_close(@fd) is about to run, or weft made a new fd @fd: end its receiver. */
void weft__recvm_forget(struct weft_loop *l, int fd);
/* The loop is being destroyed: end every receiver (their last CQEs are then reaped). */
void weft__recvm_shutdown(struct weft_loop *l);
/* Free what is left after the last run. */
void weft__recvm_fini(struct weft_loop *l);

/* Whether @fd may have a receiver: the cheap test in front of every call above. */
static inline bool weft__recvm_has(const struct weft_loop *l, int fd)
{
	return WEFT__UNLIKELY(l->rx_cap > 0) && fd >= 0 && (size_t)fd < l->rx_cap &&
	       l->rx[fd] != NULL;
}

/* In front of a copying receive on @fd: the bytes queued, or WEFT__RECVM_PLAIN to go on. */
static inline ssize_t weft__recvm_before(int fd, const struct iovec *iov, size_t iovcnt, int flags)
{
	struct weft_loop *l = weft__tls_loop;

	if (WEFT__LIKELY(!l || !weft__recvm_has(l, fd)) || !l->cur)
		return WEFT__RECVM_PLAIN;
	return weft__recvm_drain(l, fd, iov, iovcnt, flags);
}

#pragma GCC visibility pop

#endif
