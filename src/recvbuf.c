/* SPDX-License-Identifier: MIT */
/*
 * weft_recv_buf and weft_buf_release, over the loop's lent buffers
 * (bufs.h). Where the kernel picks the buffer (io_uring's provided-buffer
 * ring), the op completes with the buffer's id; elsewhere the op's try
 * takes one once bytes are there (opsys.c). A receive the set cannot serve
 * goes into a buffer allocated for it: io_uring's -ENOBUFS (every buffer
 * lent), or an fd that holds its bound.
 */
#include "bufs.h"
#include "recvmulti.h"
#include "op.h"
#include "opdef.h"

#include <errno.h>
#include <sys/socket.h>

/* A plain receive into a buffer of its own, when the set cannot serve. */
static ssize_t recv_own(struct weft__bufs *b, int fd, int flags, struct weft__lent **out)
{
	struct weft__lent *d = weft__bufs_alloc(b);
	ssize_t n;

	if (!d)
		return -ENOMEM;
	n = weft_recv(fd, weft__bufs_data(d), b->size, flags);
	if (n <= 0) {
		weft__bufs_put(d);
		return n;
	}
	b->loop->stats.bufs_fallbacks++;
	*out = d;
	return n;
}

/* The kernel picks: the op's completion names the buffer it filled. */
static ssize_t recv_picked(struct weft__bufs *b, int fd, int flags, struct weft__lent **out,
			   size_t *skip_out)
{
	struct weft__op op;
	ssize_t n;

	if (weft__op_native(b->loop, WEFT__OP_RECV_MULTI) &&
	    (flags == 0 || weft__recvm_has(b->loop, fd))) {
		size_t skip = 0;

		n = weft__recvm_recv(b->loop, b, fd, flags, out, &skip);
		if (n != WEFT__RECVM_PLAIN) {
			*skip_out = skip;
			return n;
		}
	}
	if (weft__bufs_fd_full(b, fd))
		return recv_own(b, fd, flags, out);
	weft__op_init(&op, WEFT__OP_RECV_BUF, fd, 0, b->size, 0, (uint32_t)flags);
	op.off2 = (uint64_t)(uintptr_t)b;
	n = weft__op_run(&op);
	if (n == -ENOBUFS)
		return recv_own(b, fd, flags, out);
	if (n >= 0 && (op.cflags & WEFT__CF_BUF)) {
		struct weft__lent *d = weft__bufs_picked(b, op.cflags >> WEFT__CF_BUF_SHIFT, fd);

		if (WEFT__UNLIKELY(!d))
			WEFT__BUG(NULL, "the kernel picked a buffer that is not free");
		if (n == 0)
			weft__bufs_put(d);
		else
			*out = d;
	}
	return n;
}

/* The try takes a free buffer once bytes are there (opsys.c). */
static ssize_t recv_taken(struct weft__bufs *b, int fd, int flags, struct weft__lent **out)
{
	struct weft__op op;
	ssize_t n;

	weft__op_init(&op, WEFT__OP_RECV_BUF, fd, 0, b->size, 0, (uint32_t)flags);
	op.off2 = (uint64_t)(uintptr_t)b;
	n = weft__op_run(&op);
	if (n > 0)
		*out = (struct weft__lent *)(uintptr_t)op.off;
	return n;
}

ssize_t weft_recv_buf(int fd, weft_buf *out, int flags)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft__lent *d = NULL;
	struct weft__bufs *b;
	size_t skip = 0;
	ssize_t n;

	if (!out)
		return -EINVAL;
	*out = (weft_buf){ .data = NULL };
	if (flags & (MSG_PEEK | MSG_WAITALL))
		return -EINVAL;
	if (!l || !l->cur)
		return -EPERM;
	if (fd < 0)
		return -EBADF;
	b = weft__bufs_get(l);
	if (!b)
		return -ENOMEM;
	if (b->ring_put && weft__op_native(l, WEFT__OP_RECV_BUF))
		n = recv_picked(b, fd, flags, &d, &skip);
	else
		n = recv_taken(b, fd, flags, &d);
	if (n > 0 && d) {
		out->data = (char *)weft__bufs_data(d) + skip;
		out->len = (size_t)n;
		out->token = (uint64_t)(uintptr_t)d;
	}
	return n;
}

void weft_buf_release(weft_buf *b)
{
	struct weft__lent *d;

	if (!b || !b->token)
		return;
	d = (struct weft__lent *)(uintptr_t)b->token;
	*b = (weft_buf){ .data = NULL };
	weft__bufs_release(d);
}
