/* SPDX-License-Identifier: MIT */
/*
 * The buffers a loop lends (bufs.c), for weft_recv_buf: one reserved
 * mapping of recv_buffers buffers of recv_buffer_size bytes, made at the
 * loop's first weft_recv_buf, and a record per buffer, which a lent
 * buffer's token points at. Where the backend can hand them to the kernel
 * (io_uring's provided-buffer ring), the kernel picks a free one when bytes
 * arrive and the backend gives released ones back to it; elsewhere the
 * free ones are a stack here, taken once the fd is readable. A receive
 * that finds none free, or an fd that holds its bound, gets a buffer
 * allocated for it alone (freed at its release).
 *
 * Everything runs on the loop's thread but a release from another thread,
 * which reaches the loop through its inbox; once the loop is being
 * destroyed (orphaned), releases free what they give back, and the last
 * one frees the set.
 */
#ifndef WEFT_BUFS_H
#define WEFT_BUFS_H

#include "types.h"

#include <pthread.h>

#pragma GCC visibility push(hidden)

/* The most buffers of the loop's set one fd may hold at once. */
#define WEFT__BUFS_PER_FD 8u
/* A lending op's completion flags: WEFT__CF_BUF and the buffer's id above bit 16 (io_uring's). */
#define WEFT__CF_BUF 1u
#define WEFT__CF_BUF_SHIFT 16

struct weft__bufs;

/* One buffer's record; a weft_buf's token is its address. */
struct weft__lent {
	struct weft__bufs *bufs;    /* the set (also for an allocated one) */
	struct weft__remote remote; /* a release from another thread */
	int32_t fd;		    /* the fd it is counted against, -1 for none */
	uint32_t bid;		    /* its index in the set; ALLOCATED for one of its own */
	uint32_t magic;		    /* LENT while lent */
};

struct weft__bufs {
	struct weft_loop *loop;
	char *slab; /* count * size bytes, reserved, touched as used */
	size_t slab_len;
	uint32_t count;		/* buffers in the set, a power of two */
	uint32_t size;		/* bytes each */
	struct weft__lent *rec; /* count records */
	uint32_t *free;		/* the free ids (a stack), where the kernel does not hold them */
	uint32_t nfree;
	/* Where the kernel picks: give buffer @bid back to it (the backend's). */
	void (*ring_put)(struct weft__bufs *b, uint32_t bid);
	void *ring; /* the backend's state for it */
	void (*ring_free)(struct weft__bufs *b);
	uint16_t *per_fd; /* the set's buffers each fd holds */
	size_t per_fd_cap;
	_Atomic uint32_t out; /* lent now, allocated ones included */
	pthread_mutex_t mu;   /* orders a release from another thread with the orphaning */
	bool orphan;	      /* the loop is going: releases free */
};

/* The loop's set, made at the first call (then the backend may give it to the kernel); NULL:
 * -ENOMEM. */
struct weft__bufs *weft__bufs_get(struct weft_loop *l);
/* A free buffer of the set for @fd, or NULL (none free, or @fd holds its bound). */
struct weft__lent *weft__bufs_take(struct weft__bufs *b, int fd);
/* Whether @fd holds its bound of the set's buffers. */
bool weft__bufs_fd_full(const struct weft__bufs *b, int fd);
/* The kernel picked buffer @bid for @fd: lend it. NULL for an id out of range. */
struct weft__lent *weft__bufs_picked(struct weft__bufs *b, uint32_t bid, int fd);
/* A buffer of the set's size of its own (a fallback), or NULL for -ENOMEM. */
struct weft__lent *weft__bufs_alloc(struct weft__bufs *b);
/* Where @d's bytes are. */
void *weft__bufs_data(struct weft__lent *d);
/* Take back @d on the loop's thread: it was not lent after all, or it is released. */
void weft__bufs_put(struct weft__lent *d);
/* weft_buf_release's: from any thread. */
void weft__bufs_release(struct weft__lent *d);
/* The loop is being destroyed (before its inbox's last records run), then freed. */
void weft__bufs_orphan(struct weft_loop *l);
void weft__bufs_fini(struct weft_loop *l);

#pragma GCC visibility pop

#endif
