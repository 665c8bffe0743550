/* SPDX-License-Identifier: MIT */
/*
 * Channels: a ring buffer of fixed-size elements and two wait queues. An
 * element goes straight from a sender's stack to a parked receiver's (or
 * the other way at capacity 0), so a rendezvous copies once. Receivers only
 * wait while the buffer is empty and senders only while it is full, so at
 * most one of the two queues is ever non-empty.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct weft_chan {
	size_t cap;
	size_t esize;
	size_t head; /* index of the oldest element */
	size_t len;
	bool closed;
	struct weft__waitq senders;   /* waiter.elem: the element to send */
	struct weft__waitq receivers; /* waiter.elem: where to put one */
	unsigned char buf[];
};

int weft_chan_create(weft_chan **out, size_t capacity, size_t elem_size)
{
	if (!out || elem_size == 0 || (capacity && elem_size > (SIZE_MAX - 256) / capacity))
		return -EINVAL;

	struct weft_chan *ch = calloc(1, sizeof(*ch) + capacity * elem_size);

	if (!ch)
		return -ENOMEM;
	ch->cap = capacity;
	ch->esize = elem_size;
	*out = ch;
	return 0;
}

static void *slot(struct weft_chan *ch, size_t i)
{
	return ch->buf + ((ch->head + i) % ch->cap) * ch->esize;
}

/* Send without parking. Return: 0, -EPIPE, or -EAGAIN when it would park. */
static int send_now(struct weft_chan *ch, const void *elem)
{
	if (ch->closed)
		return -EPIPE;

	struct weft__waiter *r = weft__waitq_pop(&ch->receivers);

	if (r) {
		memcpy(r->elem, elem, ch->esize);
		weft__waitq_complete(r, 0);
		return 0;
	}
	if (ch->len < ch->cap) {
		memcpy(slot(ch, ch->len), elem, ch->esize);
		ch->len++;
		return 0;
	}
	return -EAGAIN;
}

/* Receive without parking. Return: 0, -EPIPE when closed and drained, or -EAGAIN. */
static int recv_now(struct weft_chan *ch, void *elem)
{
	if (ch->len > 0) {
		memcpy(elem, slot(ch, 0), ch->esize);
		ch->head = (ch->head + 1) % ch->cap;
		ch->len--;

		/* A sender waited for this room: its element joins the buffer. */
		struct weft__waiter *s = weft__waitq_pop(&ch->senders);

		if (s) {
			memcpy(slot(ch, ch->len), s->elem, ch->esize);
			ch->len++;
			weft__waitq_complete(s, 0);
		}
		return 0;
	}

	struct weft__waiter *s = weft__waitq_pop(&ch->senders);

	if (s) { /* capacity 0: take it from the sender's hands */
		memcpy(elem, s->elem, ch->esize);
		weft__waitq_complete(s, 0);
		return 0;
	}
	return ch->closed ? -EPIPE : -EAGAIN;
}

int weft_chan_send(weft_chan *ch, const void *elem)
{
	struct weft_fiber *self;
	struct weft__waiter w;

	if (!ch || !elem)
		return -EINVAL;

	int rc = weft__op_check(&self);

	if (rc < 0)
		return rc;
	rc = send_now(ch, elem);
	if (rc != -EAGAIN)
		return rc;
	w.elem = (void *)(uintptr_t)elem;
	return weft__waitq_wait(&ch->senders, &w, false);
}

int weft_chan_recv(weft_chan *ch, void *elem)
{
	struct weft_fiber *self;
	struct weft__waiter w;

	if (!ch || !elem)
		return -EINVAL;

	int rc = weft__op_check(&self);

	if (rc < 0)
		return rc;
	rc = recv_now(ch, elem);
	if (rc != -EAGAIN)
		return rc;
	w.elem = elem;
	return weft__waitq_wait(&ch->receivers, &w, false);
}

int weft_chan_try_send(weft_chan *ch, const void *elem)
{
	if (!ch || !elem)
		return -EINVAL;
	return send_now(ch, elem);
}

int weft_chan_try_recv(weft_chan *ch, void *elem)
{
	if (!ch || !elem)
		return -EINVAL;
	return recv_now(ch, elem);
}

size_t weft_chan_len(const weft_chan *ch)
{
	return ch ? ch->len : 0;
}

void weft_chan_close(weft_chan *ch)
{
	struct weft__waiter *w;

	if (!ch || ch->closed)
		return;
	ch->closed = true;
	while ((w = weft__waitq_pop(&ch->senders)))
		weft__waitq_complete(w, -EPIPE);
	while ((w = weft__waitq_pop(&ch->receivers)))
		weft__waitq_complete(w, -EPIPE);
}

void weft_chan_destroy(weft_chan *ch)
{
	if (!ch)
		return;
	if (!weft__waitq_empty(&ch->senders) || !weft__waitq_empty(&ch->receivers))
		WEFT__BUG(weft_self(), "weft_chan_destroy with fibers parked on the channel");
	free(ch);
}
