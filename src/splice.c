/* SPDX-License-Identifier: MIT */
/*
 * weft_splice and weft_sendfile. Where the backend runs IORING_OP_SPLICE,
 * a splice is one op, and a sendfile is splices through a pipe the loop
 * keeps (file -> pipe, then pipe -> socket until the pipe is empty). Where
 * it does not (epoll), splice(2) and sendfile(2) are tried without
 * blocking, and the fiber waits, by weft_poll, for the side that is not
 * ready: one op's readiness cannot say which of two fds that is. Both
 * report the bytes moved even when the deadline or a cancel ends them
 * midway, and neither raises SIGPIPE.
 */
#include "splice.h"
#include "op.h"
#include "opdef.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The most one splice moves, as the kernel's MAX_RW_COUNT. */
#define XFER_MAX ((size_t)0x7ffff000)
/* Empty pipes a loop keeps for weft_sendfile, and the size it asks for them. */
#define PIPES_KEPT 16
#define PIPE_SIZE (1 << 20)

struct weft__pipe {
	int r, w;
	size_t size;
};

struct weft__pipes {
	unsigned n;
	struct weft__pipe v[PIPES_KEPT];
};

/* ---- the loop's pipes -------------------------------------------------------------- */

static int pipe_take(struct weft_loop *l, struct weft__pipe *p)
{
	struct weft__pipes *ps = l->pipes;
	int fd[2];

	if (ps && ps->n > 0) {
		*p = ps->v[--ps->n];
		return 0;
	}
	if (pipe2(fd, O_CLOEXEC) < 0)
		return -errno;
	/* Bigger than the default 64 KiB where the limit allows: fewer rounds. */
	(void)fcntl(fd[1], F_SETPIPE_SZ, PIPE_SIZE);

	int size = fcntl(fd[1], F_GETPIPE_SZ);

	*p = (struct weft__pipe){ .r = fd[0], .w = fd[1], .size = size > 0 ? (size_t)size : 65536 };
	return 0;
}

/* Keep @p for the next call, unless bytes are left in it (@dirty) or enough are kept. */
static void pipe_give(struct weft_loop *l, struct weft__pipe *p, bool dirty)
{
	struct weft__pipes *ps = l->pipes;

	if (!dirty && !ps)
		ps = l->pipes = calloc(1, sizeof(*ps));
	if (dirty || !ps || ps->n == PIPES_KEPT) {
		close(p->r);
		close(p->w);
		return;
	}
	ps->v[ps->n++] = *p;
}

void weft__pipes_free(struct weft_loop *l)
{
	struct weft__pipes *ps = l->pipes;

	if (!ps)
		return;
	while (ps->n > 0) {
		ps->n--;
		close(ps->v[ps->n].r);
		close(ps->v[ps->n].w);
	}
	free(ps);
	l->pipes = NULL;
}

/* ---- through io_uring ---------------------------------------------------------------- */

static ssize_t splice_op(int in, int64_t off_in, int out, int64_t off_out, size_t len,
			 unsigned flags)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_SPLICE, out, (uint64_t)off_in, (uint32_t)len, (uint64_t)off_out,
		      flags);
	op.fd2 = in;
	return weft__op_run(&op);
}

/* Empty @n bytes of @p into @out. Return: how many went (all, or fewer with *@err set). */
static size_t drain(const struct weft__pipe *p, int out, size_t n, ssize_t *err)
{
	size_t done = 0;

	while (done < n) {
		ssize_t k = splice_op(p->r, -1, out, -1, n - done, SPLICE_F_MOVE);

		if (k <= 0) {
			*err = k < 0 ? k : -EIO; /* a pipe with bytes in it never gives 0 */
			break;
		}
		done += (size_t)k;
	}
	return done;
}

static ssize_t sendfile_ring(struct weft_loop *l, int out, int in, int64_t off, size_t len)
{
	struct weft__pipe p;
	size_t done = 0;
	ssize_t err = 0;
	bool dirty = false;
	int rc = pipe_take(l, &p);

	if (rc < 0)
		return rc;
	while (done < len) {
		size_t want = len - done < p.size ? len - done : p.size;
		ssize_t n = splice_op(in, off + (int64_t)done, p.w, -1, want, SPLICE_F_MOVE);

		if (n <= 0) {
			err = n; /* 0: the end of the file */
			break;
		}

		size_t went = drain(&p, out, (size_t)n, &err);

		done += went;
		if (went < (size_t)n) {
			dirty = true; /* bytes left in the pipe: it cannot serve again */
			break;
		}
		if ((size_t)n < want)
			break; /* the file ended */
	}
	pipe_give(l, &p, dirty);
	return done > 0 ? (ssize_t)done : err;
}

/* ---- by tries (epoll) ---------------------------------------------------------------- */

/* A socket made non-blocking for a call, and SIGPIPE held off while it runs. */
struct held {
	int fd;
	bool restore; /* O_NONBLOCK was added */
	bool sock;
};

static void hold(struct held *h, int fd)
{
	struct stat st;
	int fl;

	*h = (struct held){ .fd = fd };
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return;
	h->sock = true;
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0)
		h->restore = true;
}

static void unhold(const struct held *h)
{
	int fl;

	if (h->restore && (fl = fcntl(h->fd, F_GETFL)) >= 0)
		(void)fcntl(h->fd, F_SETFL, fl & ~O_NONBLOCK);
}

struct nopipe {
	sigset_t old;
	bool held;
	bool pending; /* SIGPIPE was pending before the call */
};

static void sigpipe_hold(struct nopipe *s)
{
	sigset_t set, pend;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	s->held = pthread_sigmask(SIG_BLOCK, &set, &s->old) == 0;
	s->pending = s->held && sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE);
}

/* Take back the SIGPIPE the call raised (@epipe), unless one was pending before it. */
static void sigpipe_release(struct nopipe *s, bool epipe)
{
	if (!s->held)
		return;
	if (epipe && !s->pending) {
		sigset_t set;
		struct timespec zero = { 0, 0 };

		sigemptyset(&set);
		sigaddset(&set, SIGPIPE);
		(void)sigtimedwait(&set, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &s->old, NULL);
}

/* What op.c checks before an op: the fiber cancelled, or past its deadline. */
static int fiber_over(struct weft_loop *l)
{
	struct weft_fiber *self = l->cur;

	if (self->cancelled)
		return -ECANCELED;
	if (self->deadline != WEFT_FOREVER && l->be->now(l) >= self->deadline)
		return -ETIMEDOUT;
	return 0;
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static ssize_t splice_tries(int in, int64_t off_in, int out, int64_t off_out, size_t len,
			    unsigned flags)
{
	struct held a, b;
	struct nopipe np = { .held = false };
	loff_t oi = off_in, oo = off_out;
	ssize_t res;

	hold(&a, in);
	hold(&b, out);
	if (b.sock)
		sigpipe_hold(&np);
	for (;;) {
		res = splice(in, off_in < 0 ? NULL : &oi, out, off_out < 0 ? NULL : &oo, len,
			     flags | SPLICE_F_NONBLOCK);
		if (res >= 0)
			break;
		res = -errno;
		if (res == -EINTR)
			continue;
		if (res != -EAGAIN)
			break;
		/* Wait for the side that is not ready: the input, else the output. */
		res = readable(in) ? weft_poll(out, POLLOUT) : weft_poll(in, POLLIN);
		if (res < 0)
			break;
	}
	sigpipe_release(&np, res == -EPIPE);
	unhold(&b);
	unhold(&a);
	return res;
}

static ssize_t sendfile_tries(int out, int in, int64_t off, size_t len)
{
	struct held h;
	struct nopipe np = { .held = false };
	off_t pos = off;
	size_t done = 0;
	ssize_t err = 0;

	hold(&h, out);
	if (h.sock)
		sigpipe_hold(&np);
	while (done < len) {
		ssize_t r = sendfile(out, in, &pos, len - done);

		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r == 0)
			break; /* the end of the file */
		err = -errno;
		if (err == -EINTR)
			continue;
		if (err != -EAGAIN)
			break;
		err = weft_poll(out, POLLOUT);
		if (err < 0)
			break;
	}
	sigpipe_release(&np, err == -EPIPE);
	unhold(&h);
	return done > 0 ? (ssize_t)done : err;
}

/* ---- the calls --------------------------------------------------------------------- */

ssize_t weft_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out, size_t len,
		    unsigned flags)
{
	struct weft_loop *l = weft__tls_loop;
	int rc;

	if (!l || !l->cur)
		return -EPERM;
	if ((flags & ~(unsigned)(SPLICE_F_MOVE | SPLICE_F_MORE)) || off_in < -1 || off_out < -1)
		return -EINVAL;
	if (fd_in < 0 || fd_out < 0)
		return -EBADF;
	if (len > XFER_MAX)
		len = XFER_MAX;
	if (weft__op_native(l, WEFT__OP_SPLICE))
		return splice_op(fd_in, off_in, fd_out, off_out, len, flags);
	rc = fiber_over(l);
	return rc < 0 ? rc : splice_tries(fd_in, off_in, fd_out, off_out, len, flags);
}

ssize_t weft_sendfile(int out_fd, int in_fd, int64_t off, size_t len)
{
	struct weft_loop *l = weft__tls_loop;
	int rc;

	if (!l || !l->cur)
		return -EPERM;
	if (off < 0)
		return -EINVAL;
	if (out_fd < 0 || in_fd < 0)
		return -EBADF;
	if (len > XFER_MAX)
		len = XFER_MAX;
	if (len == 0)
		return 0;
	rc = fiber_over(l);
	if (rc < 0)
		return rc;
	if (weft__op_native(l, WEFT__OP_SPLICE))
		return sendfile_ring(l, out_fd, in_fd, off, len);
	return sendfile_tries(out_fd, in_fd, off, len);
}
