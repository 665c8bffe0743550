/* SPDX-License-Identifier: MIT */
/*
 * Multishot accept (accept.c): weft_accept on io_uring keeps one multishot
 * accept armed per listener of a loop, and queues what it accepts while no
 * fiber waits. The loop owns these acceptors; weft_close of the listener
 * and the loop's destroy end them and close what is queued.
 */
#ifndef WEFT_ACCEPT_H
#define WEFT_ACCEPT_H

#include "types.h"

#include <limits.h>
#include <sys/socket.h>

#pragma GCC visibility push(hidden)

/*
 * Connections queued per listener before weft stops the multishot accept
 * (the kernel's backlog holds the rest); it is armed again when a fiber
 * finds the queue empty. A few more may arrive while the stop takes
 * effect: they are queued too, never dropped.
 */
#define WEFT__ACCEPT_QUEUE 64

/* weft__accept_multi's answer where the plain accept must run instead. */
#define WEFT__ACCEPT_PLAIN INT_MIN

/*
 * weft_accept4 on @l (io_uring, multishot accept available), for the
 * running fiber: a queued connection at once, else wait for the armed
 * accept. Return: the new fd, or -errno.
 */
int weft__accept_multi(struct weft_loop *l, int fd, struct sockaddr *addr, socklen_t *len,
		       int flags);
/* weft_close(@fd) is about to run: end its acceptor, closing what it queued. */
void weft__accept_close(struct weft_loop *l, int fd);
/* The loop is being destroyed: end every acceptor (their last CQEs are then reaped). */
void weft__accept_shutdown(struct weft_loop *l);
/* Free what is left after the last run (nothing of it in the kernel any more). */
void weft__accept_fini(struct weft_loop *l);

#pragma GCC visibility pop

#endif
