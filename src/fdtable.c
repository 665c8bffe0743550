/* SPDX-License-Identifier: MIT */
/*
 * The ops pending on each fd (fdtable.h): linear probing with deletion by
 * backward shift, so lookups never meet tombstones; a slot's head op is
 * marked WEFT__OPF_FD_HEAD and hands the mark on when it leaves first.
 */
#include "fdtable.h"

#include <stdlib.h>

static inline size_t fd_home(int fd, size_t cap)
{
	return ((uint32_t)fd * 2654435761u) & (cap - 1);
}

static size_t fd_find(const struct weft__fdtable *t, int fd)
{
	if (!t->len)
		return SIZE_MAX;
	for (size_t i = fd_home(fd, t->cap);; i = (i + 1) & (t->cap - 1)) {
		if (t->v[i].fd == fd)
			return i;
		if (t->v[i].fd < 0)
			return SIZE_MAX;
	}
}

static bool fd_grow(struct weft__fdtable *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct weft__fdslot *v = malloc(cap * sizeof(*v));

	if (!v)
		return false;
	for (size_t i = 0; i < cap; i++)
		v[i] = (struct weft__fdslot){ .fd = -1 };
	for (size_t i = 0; i < t->cap; i++) {
		if (t->v[i].fd < 0)
			continue;

		size_t j = fd_home(t->v[i].fd, cap);

		while (v[j].fd >= 0)
			j = (j + 1) & (cap - 1);
		v[j] = t->v[i];
	}
	free(t->v);
	t->v = v;
	t->cap = cap;
	return true;
}

/* Remove slot @i, shifting back the entries after it that probed past it. */
static void fd_slot_delete(struct weft__fdtable *t, size_t i)
{
	size_t mask = t->cap - 1;

	for (size_t j = (i + 1) & mask; t->v[j].fd >= 0; j = (j + 1) & mask) {
		size_t home = fd_home(t->v[j].fd, t->cap);

		/* The entry at j may move to i unless its home lies in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->v[i] = t->v[j];
			i = j;
		}
	}
	t->v[i] = (struct weft__fdslot){ .fd = -1 };
	t->len--;
}

void weft__fdtable_track(struct weft__fdtable *t, struct weft__op *op)
{
	if ((t->len + 1) * 2 > t->cap && !fd_grow(t)) {
		op->oflags |= WEFT__OPF_FD_UNTRACKED;
		t->untracked++;
		return;
	}

	size_t i = fd_home(op->fd, t->cap);

	while (t->v[i].fd >= 0 && t->v[i].fd != op->fd)
		i = (i + 1) & (t->cap - 1);
	if (t->v[i].fd == op->fd) {
		weft__list_add_before(&t->v[i].head->fdlink, &op->fdlink);
		op->oflags |= WEFT__OPF_FD_TRACKED;
		return;
	}
	t->v[i] = (struct weft__fdslot){ .fd = op->fd, .head = op };
	t->len++;
	weft__list_init(&op->fdlink);
	op->oflags |= WEFT__OPF_FD_TRACKED | WEFT__OPF_FD_HEAD;
}

void weft__fdtable_untrack(struct weft__fdtable *t, struct weft__op *op)
{
	if (op->oflags & WEFT__OPF_FD_UNTRACKED) {
		op->oflags &= (uint16_t)~WEFT__OPF_FD_UNTRACKED;
		t->untracked--;
		return;
	}
	if (!(op->oflags & WEFT__OPF_FD_TRACKED))
		return;
	if (op->oflags & WEFT__OPF_FD_HEAD) {
		size_t i = fd_find(t, op->fd);

		assert(i != SIZE_MAX && t->v[i].head == op);
		if (weft__list_empty(&op->fdlink)) {
			fd_slot_delete(t, i);
		} else {
			struct weft__op *next =
			    weft__container_of(op->fdlink.next, struct weft__op, fdlink);

			t->v[i].head = next;
			next->oflags |= WEFT__OPF_FD_HEAD;
		}
	}
	weft__list_del(&op->fdlink);
	op->oflags &= (uint16_t) ~(WEFT__OPF_FD_TRACKED | WEFT__OPF_FD_HEAD);
}

struct weft__op *weft__fdtable_head(const struct weft__fdtable *t, int fd)
{
	size_t i = fd_find(t, fd);

	return i == SIZE_MAX ? NULL : t->v[i].head;
}

void weft__fdtable_fini(struct weft__fdtable *t)
{
	free(t->v);
	*t = (struct weft__fdtable){ 0 };
}
