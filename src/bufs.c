/* SPDX-License-Identifier: MIT */
/*
 * The buffers a loop lends (bufs.h).
 */
#include "bufs.h"
#include "inbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define LENT 0x4c454e54u /* "LENT" */
#define ALLOCATED UINT32_MAX

static struct weft__bufs *bufs_new(struct weft_loop *l)
{
	struct weft__bufs *b = calloc(1, sizeof(*b));
	uint32_t n = l->cfg.recv_buffers;

	if (!b)
		return NULL;
	b->loop = l;
	b->count = n;
	b->size = l->cfg.recv_buffer_size;
	b->slab_len = (size_t)n * b->size;
	/* Reserved, not touched: a buffer's pages are faulted in by its first use. */
	b->slab =
	    mmap(NULL, b->slab_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	b->rec = calloc(n, sizeof(*b->rec));
	b->free = malloc(n * sizeof(*b->free));
	if (b->slab == MAP_FAILED || !b->rec || !b->free) {
		if (b->slab != MAP_FAILED)
			munmap(b->slab, b->slab_len);
		free(b->rec);
		free(b->free);
		free(b);
		return NULL;
	}
	for (uint32_t i = 0; i < n; i++) {
		b->rec[i] = (struct weft__lent){ .bufs = b, .fd = -1, .bid = i };
		b->free[i] = n - 1 - i; /* the lowest ids first: fewer pages touched */
	}
	b->nfree = n;
	pthread_mutex_init(&b->mu, NULL);
	return b;
}

static void bufs_free(struct weft__bufs *b)
{
	if (b->ring_free)
		b->ring_free(b);
	munmap(b->slab, b->slab_len);
	pthread_mutex_destroy(&b->mu);
	free(b->per_fd);
	free(b->rec);
	free(b->free);
	free(b);
}

struct weft__bufs *weft__bufs_get(struct weft_loop *l)
{
	if (WEFT__LIKELY(l->bufs != NULL))
		return l->bufs;

	struct weft__bufs *b = bufs_new(l);

	if (!b)
		return NULL;
	/* Given to the kernel where the backend can; else lent from the stack here. */
	if (l->be->bufs_ring && l->be->bufs_ring(l, b) == 0)
		b->nfree = 0;
	l->bufs = b;
	return b;
}

bool weft__bufs_fd_full(const struct weft__bufs *b, int fd)
{
	return fd >= 0 && (size_t)fd < b->per_fd_cap && b->per_fd[fd] >= WEFT__BUFS_PER_FD;
}

/* Count @d against @fd. Return: false if the count could not be kept (out of memory). */
static bool count_fd(struct weft__bufs *b, struct weft__lent *d, int fd)
{
	if (fd >= 0 && (size_t)fd >= b->per_fd_cap) {
		size_t cap = b->per_fd_cap ? b->per_fd_cap : 256;

		while (cap <= (size_t)fd)
			cap *= 2;

		uint16_t *v = realloc(b->per_fd, cap * sizeof(*v));

		if (!v)
			return false;
		memset(v + b->per_fd_cap, 0, (cap - b->per_fd_cap) * sizeof(*v));
		b->per_fd = v;
		b->per_fd_cap = cap;
	}
	d->fd = fd;
	if (fd >= 0)
		b->per_fd[fd]++;
	return true;
}

static void lend(struct weft__bufs *b, struct weft__lent *d)
{
	struct weft_stats *st = &b->loop->stats;

	atomic_fetch_add_explicit(&b->out, 1, memory_order_relaxed);
	d->magic = LENT;
	if (d->bid != ALLOCATED) {
		st->bufs_lent++;
		if (st->bufs_lent > st->bufs_lent_peak)
			st->bufs_lent_peak = st->bufs_lent;
	}
}

struct weft__lent *weft__bufs_take(struct weft__bufs *b, int fd)
{
	if (b->nfree == 0 || weft__bufs_fd_full(b, fd))
		return NULL;

	struct weft__lent *d = &b->rec[b->free[b->nfree - 1]];

	if (!count_fd(b, d, fd))
		return NULL;
	b->nfree--;
	lend(b, d);
	return d;
}

struct weft__lent *weft__bufs_picked(struct weft__bufs *b, uint32_t bid, int fd)
{
	if (bid >= b->count || b->rec[bid].magic == LENT)
		return NULL;

	struct weft__lent *d = &b->rec[bid];

	if (!count_fd(b, d, fd))
		d->fd = -1; /* lent all the same, only not counted against its fd */
	lend(b, d);
	return d;
}

struct weft__lent *weft__bufs_alloc(struct weft__bufs *b)
{
	struct weft__lent *d = malloc(sizeof(*d) + b->size);

	if (!d)
		return NULL;
	*d = (struct weft__lent){ .bufs = b, .fd = -1, .bid = ALLOCATED };
	lend(b, d);
	return d;
}

void *weft__bufs_data(struct weft__lent *d)
{
	return d->bid == ALLOCATED ? (void *)(d + 1)
				   : d->bufs->slab + (size_t)d->bid * d->bufs->size;
}

/* The loop's thread, or an orphaned set: @d is no longer lent. Return: whether the set went. */
static bool give_back(struct weft__lent *d)
{
	struct weft__bufs *b = d->bufs;
	bool orphan = b->orphan;

	d->magic = 0;
	if (d->bid == ALLOCATED) {
		free(d);
	} else if (!orphan) {
		if (d->fd >= 0 && (size_t)d->fd < b->per_fd_cap && b->per_fd[d->fd] > 0)
			b->per_fd[d->fd]--;
		d->fd = -1;
		b->loop->stats.bufs_lent--;
		if (b->ring_put)
			b->ring_put(b, d->bid);
		else
			b->free[b->nfree++] = d->bid;
	}
	return atomic_fetch_sub_explicit(&b->out, 1, memory_order_acq_rel) == 1 && orphan;
}

void weft__bufs_put(struct weft__lent *d)
{
	give_back(d);
}

static void __attribute__((noreturn)) bad_release(struct weft__lent *d)
{
	fprintf(stderr,
		"weft: weft_buf_release of a buffer that is not lent (%p): released twice, "
		"or not from weft_recv_buf\n",
		(void *)d);
	abort();
}

/* On the loop's thread, from its inbox: a release made on another thread. */
static void released_there(struct weft_loop *l, struct weft__remote *r)
{
	struct weft__lent *d = weft__container_of(r, struct weft__lent, remote);

	(void)l;
	give_back(d);
}

void weft__bufs_release(struct weft__lent *d)
{
	struct weft__bufs *b = d->bufs;

	if (d->magic != LENT)
		bad_release(d);
	if (weft__tls_loop == b->loop && !b->orphan) {
		give_back(d);
		return;
	}
	if (d->bid == ALLOCATED) {
		/* Its own memory, counted only in out: nothing of the loop to touch. */
		d->magic = 0;
		free(d);
		/* Down to 0 only once the loop dropped its own count (it is gone), or while no
		 * orphaning has begun (then nothing is freed). */
		if (atomic_fetch_sub_explicit(&b->out, 1, memory_order_acq_rel) == 1) {
			pthread_mutex_lock(&b->mu);
			bool gone = b->orphan;
			pthread_mutex_unlock(&b->mu);
			if (gone)
				bufs_free(b);
		}
		return;
	}
	pthread_mutex_lock(&b->mu);
	if (!b->orphan) {
		d->remote.run = released_there;
		weft__inbox_push(b->loop, &d->remote);
		pthread_mutex_unlock(&b->mu);
		return;
	}
	pthread_mutex_unlock(&b->mu);
	if (give_back(d))
		bufs_free(b);
}

void weft__bufs_orphan(struct weft_loop *l)
{
	struct weft__bufs *b = l->bufs;

	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	b->orphan = true;
	/* The loop's own count, dropped by weft__bufs_fini: until then no release frees the set. */
	atomic_fetch_add_explicit(&b->out, 1, memory_order_relaxed);
	pthread_mutex_unlock(&b->mu);
}

void weft__bufs_fini(struct weft_loop *l)
{
	struct weft__bufs *b = l->bufs;

	if (!b)
		return;
	if (!b->orphan)
		weft__bufs_orphan(l);
	l->bufs = NULL;
	/* The kernel's ring went with the backend; what is still lent frees the set at its release.
	 */
	if (b->ring_free) {
		b->ring_free(b);
		b->ring_free = NULL;
	}
	b->ring_put = NULL;
	if (atomic_fetch_sub_explicit(&b->out, 1, memory_order_acq_rel) == 1)
		bufs_free(b); /* else the last release frees it */
}
