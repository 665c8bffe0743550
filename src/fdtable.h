/* SPDX-License-Identifier: MIT */
/*
 * The ops pending on each fd (fdtable.c), so that a close can cancel them
 * first: an open-addressing table from fd to a ring of ops through
 * op->fdlink, at most half full, bounded by the fds that have an op in
 * flight. An op the table cannot hold (it could not grow) is only counted.
 */
#ifndef WEFT_FDTABLE_H
#define WEFT_FDTABLE_H

#include "types.h"

#pragma GCC visibility push(hidden)

struct weft__fdslot {
	int32_t fd; /* -1: empty */
	struct weft__op *head;
};

struct weft__fdtable {
	struct weft__fdslot *v;
	size_t cap;
	size_t len;
	uint64_t untracked; /* ops in flight on an fd the table could not hold */
};

/* Note @op as pending on op->fd (WEFT__OPF_FD_TRACKED, or _UNTRACKED if it cannot). */
void weft__fdtable_track(struct weft__fdtable *t, struct weft__op *op);
/* @op is over: off its fd's ring. */
void weft__fdtable_untrack(struct weft__fdtable *t, struct weft__op *op);
/* One op of the ring pending on @fd, or NULL. */
struct weft__op *weft__fdtable_head(const struct weft__fdtable *t, int fd);
void weft__fdtable_fini(struct weft__fdtable *t);

#pragma GCC visibility pop

#endif
