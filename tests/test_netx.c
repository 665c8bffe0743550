/* SPDX-License-Identifier: MIT */
/*
 * Server-grade networking through the public API: weft_poll on a pipe, a
 * socket, an eventfd and a closed fd; weft_splice and weft_sendfile (a
 * sparse 1 GiB file to a socket, checked by a checksum; a peer that hung
 * up; a deadline after some bytes moved and before any); weft_send_zc; and
 * weft_recv_buf's lent buffers: idle fibers hold none, more connections
 * than buffers lose no byte, releases after close, from another thread and
 * after the loop is gone, deadlines and cancels while armed, bad input;
 * and weft_accept's multishot accept: its bounded queue, order and
 * addresses, a listener closed (and a loop destroyed) with connections
 * queued, deadlines and cancels while armed and while queued, the flags
 * each caller asked, a kernel that ends it (no fd left), bad listeners.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- weft_poll ------------------------------------------------------------------ */

struct pollcase {
	int rc[12];
	int64_t waited;
};

static int poll_cancelled(void *arg)
{
	int *fd = arg;

	return weft_poll(*fd, POLLIN);
}

static int poll_main(void *arg)
{
	struct pollcase *c = arg;
	int p[2], sv[2], ev = eventfd(0, EFD_CLOEXEC);
	uint64_t one = 1;
	int64_t t0;

	if (pipe2(p, O_CLOEXEC) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    ev < 0)
		return -EIO;
	weft_set_deadline(weft_now() + 20 * WEFT_MSEC);
	t0 = weft_now();
	c->rc[0] = weft_poll(p[0], POLLIN); /* nothing to read: the deadline */
	c->waited = weft_now() - t0;
	weft_set_deadline(WEFT_FOREVER);
	c->rc[1] = weft_poll(p[1], POLLOUT);
	if (write(p[1], "x", 1) != 1)
		return -EIO;
	c->rc[2] = weft_poll(p[0], POLLIN);
	c->rc[3] = weft_poll(sv[0], POLLOUT);
	if (write(sv[1], "y", 1) != 1)
		return -EIO;
	c->rc[4] = weft_poll(sv[0], POLLIN | POLLRDHUP);
	if (write(ev, &one, sizeof(one)) != sizeof(one))
		return -EIO;
	c->rc[5] = weft_poll(ev, POLLIN);
	close(sv[1]);
	c->rc[6] = weft_poll(sv[0], POLLRDHUP);

	int gone = dup(p[0]);

	close(gone);
	c->rc[7] = weft_poll(gone, POLLIN); /* a closed fd: -EBADF at once */
	c->rc[8] = weft_poll(p[0], 0);
	c->rc[9] = weft_poll(p[0], 1u << 30);

	weft_fiber *f;
	int idle[2];

	if (pipe2(idle, O_CLOEXEC) < 0 || weft_spawn(NULL, poll_cancelled, &idle[0], &f) < 0)
		return -EIO;
	weft_sleep(5 * WEFT_MSEC);
	weft_cancel(f);
	weft_join(f, &c->rc[10]);
	c->rc[11] = weft_poll(-1, POLLIN);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(ev);
	close(idle[0]);
	close(idle[1]);
	return 0;
}

static void test_poll_on_pipe_socket_eventfd_and_closed_fd(void **state)
{
	struct pollcase c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(t_run(poll_main, &c), 0);
	assert_int_equal(c.rc[0], -ETIMEDOUT);
	assert_true(c.waited >= 15 * WEFT_MSEC);
	assert_int_equal(c.rc[1], POLLOUT);
	assert_int_equal(c.rc[2], POLLIN);
	assert_int_equal(c.rc[3], POLLOUT);
	assert_int_equal(c.rc[4], POLLIN);
	assert_int_equal(c.rc[5], POLLIN);
	assert_true(c.rc[6] > 0 && (c.rc[6] & (POLLRDHUP | POLLHUP)));
	assert_int_equal(c.rc[7], -EBADF);
	assert_int_equal(c.rc[8], -EINVAL);
	assert_int_equal(c.rc[9], -EINVAL);
	assert_int_equal(c.rc[10], -ECANCELED);
	assert_int_equal(c.rc[11], -EBADF);
}

/* A receive with MSG_DONTWAIT tries at once, even where the last one found the socket empty. */
static int dontwait_main(void *arg)
{
	ssize_t *n = arg;
	int sv[2];
	char c;
	weft_buf b;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -EIO;
	n[0] = weft_recv(sv[0], &c, 1, MSG_DONTWAIT); /* empty: -EAGAIN */
	weft_set_deadline(weft_now() + 5 * WEFT_MSEC);
	n[1] = weft_recv(sv[0], &c, 1, 0); /* empty: it waited first, until the deadline */
	weft_set_deadline(WEFT_FOREVER);
	if (write(sv[1], "ab", 2) != 2)
		return -EIO;
	n[2] = weft_recv(sv[0], &c, 1, MSG_DONTWAIT);
	n[3] = weft_recv_buf(sv[0], &b, MSG_DONTWAIT);
	weft_buf_release(&b);
	n[4] = weft_recv_buf(sv[0], &b, MSG_DONTWAIT);
	close(sv[0]);
	close(sv[1]);
	return 0;
}

static void test_recv_with_dontwait_tries_at_once(void **state)
{
	ssize_t n[5] = { 0 };

	(void)state;
	assert_int_equal(t_run(dontwait_main, n), 0);
	assert_int_equal(n[0], -EAGAIN);
	assert_int_equal(n[1], -ETIMEDOUT);
	assert_int_equal(n[2], 1);
	assert_int_equal(n[3], 1);
	assert_int_equal(n[4], -EAGAIN);
}

/* ---- splice and sendfile ---------------------------------------------------------- */

/* Marks written into the sparse file: the rest reads as zeros. */
static const int64_t marks[] = { 0, 4095, 65536, 1000003, 33554431, 536870912, 1073741000 };

/* A checksum that zeros do not change: sum of (byte * (position + 1)). */
static uint64_t weigh(const unsigned char *p, size_t n, uint64_t at)
{
	uint64_t h = 0;

	for (size_t i = 0; i < n; i++)
		if (p[i])
			h += (uint64_t)p[i] * (at + i + 1);
	return h;
}

struct sfcase {
	int64_t size;
	uint64_t want, got;
	int64_t got_bytes;
	ssize_t sent;
	int rc;
};

struct sink {
	int fd;
	int64_t bytes;
	uint64_t sum;
	int rc;
};

static int sink_main(void *arg)
{
	struct sink *s = arg;
	size_t cap = 1 << 16;
	unsigned char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = weft_recv(s->fd, buf, cap, 0);

		if (n <= 0) {
			s->rc = (int)n;
			break;
		}
		s->sum += weigh(buf, (size_t)n, (uint64_t)s->bytes);
		s->bytes += n;
	}
	free(buf);
	return 0;
}

static int sendfile_main(void *arg)
{
	struct sfcase *c = arg;
	char path[] = "/tmp/weft-sparse-XXXXXX";
	int fd = mkstemp(path), sv[2];

	if (fd < 0)
		return -errno;
	unlink(path);
	if (ftruncate(fd, c->size) < 0)
		return -errno;
	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		unsigned char v = (unsigned char)(0x11 * (i + 1));

		if (marks[i] >= c->size)
			continue;
		if (pwrite(fd, &v, 1, marks[i]) != 1)
			return -errno;
		c->want += (uint64_t)v * (uint64_t)(marks[i] + 1);
	}
	if (t_tcp_pair(sv) < 0)
		return -EIO;

	struct sink s = { .fd = sv[1] };
	weft_fiber *f;
	int64_t off = 0;

	if (weft_spawn(NULL, sink_main, &s, &f) < 0)
		return -EIO;
	while (off < c->size) {
		ssize_t n = weft_sendfile(sv[0], fd, off, (size_t)(c->size - off));

		if (n <= 0) {
			c->rc = (int)n;
			break;
		}
		off += n;
	}
	c->sent = off;
	weft_shutdown(sv[0], SHUT_WR);
	weft_join(f, NULL);
	c->got = s.sum;
	c->got_bytes = s.bytes;
	weft_close(sv[0]);
	weft_close(sv[1]);
	close(fd);
	return s.rc;
}

static void test_sendfile_of_a_sparse_gigabyte_arrives_whole(void **state)
{
	struct sfcase c = { .size = t_under_valgrind() ? (int64_t)32 << 20 : (int64_t)1 << 30 };

	(void)state;
	assert_int_equal(t_run(sendfile_main, &c), 0);
	assert_int_equal(c.rc, 0);
	assert_true(c.sent == c.size);
	assert_true(c.got_bytes == c.size);
	assert_true(c.want != 0);
	assert_true(c.got == c.want);
}

struct splcase {
	char got[64];
	ssize_t n[6];
};

/* socket -> pipe -> socket, with weft_splice alone. */
static int splice_main(void *arg)
{
	struct splcase *c = arg;
	int a[2], b[2], p[2];
	const char msg[] = "spliced through a pipe";

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b) < 0 || pipe2(p, O_CLOEXEC) < 0)
		return -EIO;
	if (write(a[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
		return -EIO;
	c->n[0] = weft_splice(a[0], -1, p[1], -1, sizeof(msg), 0);
	c->n[1] =
	    weft_splice(p[0], -1, b[0], -1, (size_t)(c->n[0] > 0 ? c->n[0] : 0), SPLICE_F_MOVE);
	c->n[2] = weft_recv(b[1], c->got, sizeof(c->got), 0);
	/* Nothing to move, and a deadline: -ETIMEDOUT, not a hang. */
	weft_set_deadline(weft_now() + 20 * WEFT_MSEC);
	c->n[3] = weft_splice(a[0], -1, p[1], -1, 64, 0);
	weft_set_deadline(WEFT_FOREVER);
	c->n[4] = weft_splice(a[0], -1, b[0], -1, 64, 0); /* neither is a pipe */
	c->n[5] = weft_splice(a[0], -1, p[1], -1, 64, 0x100);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	close(p[0]);
	close(p[1]);
	return 0;
}

static void test_splice_between_sockets_and_a_pipe(void **state)
{
	struct splcase c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(t_run(splice_main, &c), 0);
	assert_int_equal(c.n[0], 23);
	assert_int_equal(c.n[1], 23);
	assert_int_equal(c.n[2], 23);
	assert_string_equal(c.got, "spliced through a pipe");
	assert_int_equal(c.n[3], -ETIMEDOUT);
	assert_int_equal(c.n[4], -EINVAL);
	assert_int_equal(c.n[5], -EINVAL);
}

struct stall {
	ssize_t some, none, hup, bad;
	size_t len;
};

/* A file of @len bytes of 'z', unlinked. */
static int filled_file(size_t len)
{
	char path[] = "/tmp/weft-sf-XXXXXX";
	int fd = mkstemp(path);
	char *buf = malloc(len);

	if (fd < 0 || !buf)
		return -1;
	unlink(path);
	memset(buf, 'z', len);
	if (write(fd, buf, len) != (ssize_t)len)
		fd = -1;
	free(buf);
	return fd;
}

static int stall_main(void *arg)
{
	struct stall *c = arg;
	int sv[2], small = 4096, fd = filled_file(c->len);

	if (fd < 0 || t_tcp_pair(sv) < 0)
		return -EIO;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	/* The peer reads nothing: some bytes go, then the deadline returns their count. */
	weft_set_deadline(weft_now() + 50 * WEFT_MSEC);
	c->some = weft_sendfile(sv[0], fd, 0, c->len);
	/* Now the socket is full: the deadline comes before any byte. */
	weft_set_deadline(weft_now() + 30 * WEFT_MSEC);
	c->none = weft_sendfile(sv[0], fd, 0, c->len);
	weft_set_deadline(WEFT_FOREVER);
	weft_close(sv[1]);
	/* A peer that hung up: -EPIPE (or the reset), and no SIGPIPE kills the test. */
	c->hup = weft_sendfile(sv[0], fd, 0, c->len);
	if (c->hup > 0)
		c->hup = weft_sendfile(sv[0], fd, 0, c->len);
	c->bad = weft_sendfile(sv[0], fd, -1, 10);
	weft_close(sv[0]);
	close(fd);
	return 0;
}

static void test_sendfile_deadline_returns_the_bytes_moved_and_hangup_is_epipe(void **state)
{
	struct stall c = { .len = 8 << 20 };

	(void)state;
	assert_int_equal(t_run(stall_main, &c), 0);
	print_message("sendfile to a stalled peer: %zd bytes before the deadline\n", c.some);
	assert_true(c.some > 0 && (size_t)c.some < c.len);
	assert_int_equal(c.none, -ETIMEDOUT);
	assert_true(c.hup == -EPIPE || c.hup == -ECONNRESET);
	assert_int_equal(c.bad, -EINVAL);
}

/* ---- send_zc ------------------------------------------------------------------ */

struct zc {
	size_t len;
	ssize_t sent, unix_sent;
	int mismatch;
	int64_t got;
};

static int zc_main(void *arg)
{
	struct zc *c = arg;
	int sv[2], u[2];
	unsigned char *buf = malloc(c->len), *in = malloc(c->len);

	if (!buf || !in || t_tcp_pair(sv) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, u) < 0)
		return -EIO;
	for (size_t i = 0; i < c->len; i++)
		buf[i] = (unsigned char)(i * 7);
	/* Sent in pieces, each one reused at once: the call returns only when the kernel is done.
	 */
	size_t off = 0;

	while (off < c->len) {
		size_t piece = c->len - off < 16384 ? c->len - off : 16384;
		ssize_t n = weft_send_zc(sv[0], buf + off, piece, 0);

		if (n <= 0)
			break;
		off += (size_t)n;
		ssize_t r = weft_recv(sv[1], in + c->got, c->len - (size_t)c->got, 0);

		while (r > 0 && (c->got += r) < (int64_t)off)
			r = weft_recv(sv[1], in + c->got, c->len - (size_t)c->got, 0);
	}
	c->sent = (ssize_t)off;
	c->mismatch = memcmp(buf, in, c->len) != 0;
	c->unix_sent = weft_send_zc(u[0], "unix", 4, 0); /* no zero copy there: a plain send */
	weft_close(sv[0]);
	weft_close(sv[1]);
	close(u[0]);
	close(u[1]);
	free(buf);
	free(in);
	return 0;
}

static void test_send_zc_sends_every_byte_and_falls_back_where_it_cannot(void **state)
{
	struct zc c = { .len = 256 << 10 };

	(void)state;
	assert_int_equal(t_run(zc_main, &c), 0);
	assert_int_equal(c.sent, (ssize_t)c.len);
	assert_int_equal(c.got, (int64_t)c.len);
	assert_int_equal(c.mismatch, 0);
	assert_int_equal(c.unix_sent, 4);
}

/* ---- lent buffers ------------------------------------------------------------------ */

struct idle {
	int fd;
	ssize_t n;
	char first;
};

static int idle_recv(void *arg)
{
	struct idle *i = arg;
	weft_buf b;

	i->n = weft_recv_buf(i->fd, &b, 0);
	if (i->n > 0)
		i->first = ((char *)b.data)[0];
	weft_buf_release(&b);
	return 0;
}

#define IDLE 64

struct idlecase {
	struct idle v[IDLE];
	int sv[IDLE][2];
	uint32_t lent_while_idle, lent_after;
	int wrong;
};

static int idle_main(void *arg)
{
	struct idlecase *c = arg;
	weft_fiber *f[IDLE];
	weft_stats st;

	for (int i = 0; i < IDLE; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->sv[i]) < 0)
			return -EIO;
		c->v[i].fd = c->sv[i][0];
		weft_spawn(NULL, idle_recv, &c->v[i], &f[i]);
	}
	weft_sleep(10 * WEFT_MSEC);
	weft_loop_stats(weft_loop_current(), &st);
	c->lent_while_idle = st.bufs_lent;
	for (int i = 0; i < IDLE; i++) {
		char v = (char)('A' + i % 26);

		if (write(c->sv[i][1], &v, 1) != 1)
			return -EIO;
	}
	for (int i = 0; i < IDLE; i++) {
		weft_join(f[i], NULL);
		if (c->v[i].n != 1 || c->v[i].first != (char)('A' + i % 26))
			c->wrong++;
		close(c->sv[i][0]);
		close(c->sv[i][1]);
	}
	weft_loop_stats(weft_loop_current(), &st);
	c->lent_after = st.bufs_lent;
	return 0;
}

static void test_fibers_parked_in_recv_buf_hold_no_buffer(void **state)
{
	struct idlecase c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(t_run(idle_main, &c), 0);
	assert_int_equal(c.lent_while_idle, 0);
	assert_int_equal(c.lent_after, 0);
	assert_int_equal(c.wrong, 0);
}

/* Many connections, few buffers, receivers that hold what they got until the end. */
#define CONNS 16
#define MSG 4096

struct hoard {
	int fd;
	int bad;
	size_t got;
	weft_buf held[MSG];
	size_t nheld;
};

static int hoard_recv(void *arg)
{
	struct hoard *h = arg;

	while (h->got < MSG) {
		weft_buf *b = &h->held[h->nheld];
		ssize_t n = weft_recv_buf(h->fd, b, 0);

		if (n <= 0) {
			h->bad++;
			break;
		}
		for (ssize_t i = 0; i < n; i++)
			if (((unsigned char *)b->data)[i] !=
			    (unsigned char)((h->got + (size_t)i) * 13 + 1))
				h->bad++;
		h->got += (size_t)n;
		h->nheld++;
	}
	/* Released in an order of their own: the last first. */
	while (h->nheld > 0)
		weft_buf_release(&h->held[--h->nheld]);
	return 0;
}

static int feed(void *arg)
{
	int fd = *(int *)arg;
	unsigned char buf[MSG];

	for (size_t i = 0; i < MSG; i++)
		buf[i] = (unsigned char)(i * 13 + 1);
	for (size_t off = 0; off < MSG; off += 100) {
		size_t n = MSG - off < 100 ? MSG - off : 100;

		if (weft_send_all(fd, buf + off, n, 0) < 0)
			return -1;
		weft_sleep(100 * WEFT_USEC);
	}
	return 0;
}

struct hoardcase {
	struct hoard h[CONNS];
	int sv[CONNS][2];
	weft_stats st;
};

static int hoard_main(void *arg)
{
	struct hoardcase *c = arg;
	weft_fiber *fr[CONNS], *fs[CONNS];

	for (int i = 0; i < CONNS; i++) {
		if (t_tcp_pair(c->sv[i]) < 0)
			return -EIO;
		c->h[i].fd = c->sv[i][1];
		weft_spawn(NULL, hoard_recv, &c->h[i], &fr[i]);
		weft_spawn(NULL, feed, &c->sv[i][0], &fs[i]);
	}
	for (int i = 0; i < CONNS; i++) {
		weft_join(fs[i], NULL);
		weft_join(fr[i], NULL);
		weft_close(c->sv[i][0]);
		weft_close(c->sv[i][1]);
	}
	weft_loop_stats(weft_loop_current(), &c->st);
	return 0;
}

static void test_more_connections_than_buffers_lose_no_byte(void **state)
{
	struct hoardcase *c = calloc(1, sizeof(*c));
	weft_config cfg;

	(void)state;
	weft_config_init(&cfg);
	cfg.recv_buffers = 8;
	cfg.recv_buffer_size = 64;
	assert_int_equal(t_run_cfg(&cfg, hoard_main, c, NULL), 0);
	for (int i = 0; i < CONNS; i++) {
		assert_int_equal(c->h[i].bad, 0);
		assert_int_equal(c->h[i].got, MSG);
	}
	print_message("%u fallbacks, peak %u of 8 lent\n", c->st.bufs_fallbacks,
		      c->st.bufs_lent_peak);
	assert_true(c->st.bufs_fallbacks > 0);
	assert_true(c->st.bufs_lent_peak <= 8);
	assert_int_equal(c->st.bufs_lent, 0);
	free(c);
}

struct later {
	weft_buf kept, other, after;
	char copy[8];
	ssize_t n[8];
	uint32_t lent_before, lent_after;
	int foreign_ok;
};

static void *release_there(void *arg)
{
	weft_buf_release(arg);
	return NULL;
}

static int later_main(void *arg)
{
	struct later *c = arg;
	int sv[2];
	weft_stats st;
	pthread_t t;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -EIO;
	if (write(sv[1], "before", 6) != 6)
		return -EIO;
	c->n[0] = weft_recv_buf(sv[0], &c->kept, 0);
	weft_close(sv[0]); /* the buffer outlives its fd */
	memcpy(c->copy, c->kept.data, 6);
	weft_buf_release(&c->kept);
	c->n[1] = (ssize_t)c->kept.token; /* zeroed by the release */
	weft_buf_release(&c->kept);	  /* a zeroed one: nothing */

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -EIO;
	if (write(sv[1], "thread", 6) != 6)
		return -EIO;
	c->n[2] = weft_recv_buf(sv[0], &c->other, 0);
	weft_loop_stats(weft_loop_current(), &st);
	c->lent_before = st.bufs_lent;
	/* Released by a thread that runs no loop: it reaches the loop through its inbox. */
	pthread_create(&t, NULL, release_there, &c->other);
	pthread_join(t, NULL);
	for (int i = 0; i < 50; i++) {
		weft_sleep(WEFT_MSEC);
		weft_loop_stats(weft_loop_current(), &st);
		if (st.bufs_lent == 0)
			break;
	}
	c->lent_after = st.bufs_lent;
	/* Shut down: 0 and nothing lent. */
	close(sv[1]);
	c->n[3] = weft_recv_buf(sv[0], &c->after, 0);
	c->n[4] = (ssize_t)c->after.token;
	/* Kept past the loop's end: still valid, freed by its release (ASan, valgrind). */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -EIO;
	if (write(sv[1], "beyond", 6) != 6)
		return -EIO;
	c->n[5] = weft_recv_buf(sv[0], &c->after, 0);
	close(sv[0]);
	close(sv[1]);
	return 0;
}

static void test_buffers_released_after_close_elsewhere_and_after_the_loop(void **state)
{
	struct later c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(t_run(later_main, &c), 0);
	assert_int_equal(c.n[0], 6);
	assert_memory_equal(c.copy, "before", 6);
	assert_int_equal(c.n[1], 0);
	assert_int_equal(c.n[2], 6);
	assert_int_equal(c.lent_before, 1);
	assert_int_equal(c.lent_after, 0);
	assert_int_equal(c.n[3], 0);
	assert_int_equal(c.n[4], 0);
	assert_int_equal(c.n[5], 6);
	assert_memory_equal(c.after.data, "beyond", 6); /* the loop is gone */
	weft_buf_release(&c.after);
}

struct armed {
	ssize_t timed, cancelled, bad[6];
	int64_t waited;
	uint32_t lent;
};

static int recv_buf_cancelled(void *arg)
{
	int *fd = arg;
	weft_buf b;

	return (int)weft_recv_buf(*fd, &b, 0);
}

static int armed_main(void *arg)
{
	struct armed *c = arg;
	int sv[2], gone;
	weft_buf b;
	weft_fiber *f;
	weft_stats st;
	int64_t t0 = weft_now();

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -EIO;
	weft_set_deadline(t0 + 20 * WEFT_MSEC);
	c->timed = weft_recv_buf(sv[0], &b, 0);
	c->waited = weft_now() - t0;
	weft_set_deadline(WEFT_FOREVER);
	weft_spawn(NULL, recv_buf_cancelled, &sv[0], &f);
	weft_sleep(5 * WEFT_MSEC);
	weft_cancel(f);
	int r;

	weft_join(f, &r);
	c->cancelled = r;
	c->bad[0] = weft_recv_buf(sv[0], NULL, 0);
	c->bad[1] = weft_recv_buf(sv[0], &b, MSG_PEEK);
	c->bad[2] = weft_recv_buf(-1, &b, 0);
	gone = dup(sv[0]);
	close(gone);
	c->bad[3] = weft_recv_buf(gone, &b, 0);
	c->bad[4] = (ssize_t)b.token;
	weft_loop_stats(weft_loop_current(), &st);
	c->lent = st.bufs_lent;
	close(sv[0]);
	close(sv[1]);
	return 0;
}

static void test_recv_buf_deadline_cancel_and_bad_input(void **state)
{
	struct armed c;
	weft_buf b;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(t_run(armed_main, &c), 0);
	assert_int_equal(c.timed, -ETIMEDOUT);
	assert_true(c.waited >= 15 * WEFT_MSEC);
	assert_int_equal(c.cancelled, -ECANCELED);
	assert_int_equal(c.bad[0], -EINVAL);
	assert_int_equal(c.bad[1], -EINVAL);
	assert_int_equal(c.bad[2], -EBADF);
	assert_int_equal(c.bad[3], -EBADF);
	assert_int_equal(c.bad[4], 0);
	assert_int_equal(c.lent, 0);
	assert_int_equal(weft_recv_buf(0, &b, 0), -EPERM); /* outside a fiber */
	weft_buf_release(NULL);
}

static int twice_main(void *arg)
{
	int sv[2];
	weft_buf b, copy;

	(void)arg;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || write(sv[1], "x", 1) != 1)
		return -EIO;
	if (weft_recv_buf(sv[0], &b, 0) != 1)
		return -EIO;
	copy = b;
	weft_buf_release(&b);
	weft_buf_release(&copy); /* aborts, with a sentence */
	return 0;
}

static void twice_child(void)
{
	t_run(twice_main, NULL);
	_exit(0);
}

static void test_releasing_a_buffer_twice_aborts_with_a_message(void **state)
{
	char err[512];
	int st = t_fork(twice_child, err, sizeof(err));

	(void)state;
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	assert_non_null(strstr(err, "weft_buf_release"));
}

/* ---- weft_accept: the listener's multishot accept ----------------------------------- */

/*
 * Whether weft_accept runs multishot here: io_uring on 5.19 or later
 * (IORING_OP_SOCKET is the probe), not turned off, ACCEPT not disabled.
 */
static int multishot_expected(void)
{
	const char *w = getenv("WEFT_MULTISHOT_ACCEPT");
	const char *off = getenv("WEFT_DISABLE_OPS");
	struct utsname u;
	int major = 0, minor = 0;

	if (!t_on_uring() || (w && !strcmp(w, "off")) || uname(&u) < 0)
		return 0;
	if (off) {
		char list[128];

		snprintf(list, sizeof(list), ",%s,", off);
		if (strstr(list, ",13,") || strstr(list, ",45,"))
			return 0;
	}
	sscanf(u.release, "%d.%d", &major, &minor);
	return major > 5 || (major == 5 && minor >= 19);
}

/* Open fds of the process (the directory's own fd is counted each time alike). */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int listener(int backlog, struct sockaddr_in *at)
{
	socklen_t len = sizeof(*at);
	int l = weft_tcp_listen("127.0.0.1", 0, backlog, 0);

	if (l >= 0 && getsockname(l, (struct sockaddr *)at, &len) < 0)
		return -errno;
	return l;
}

/* A blocking connect over loopback: done at once while the backlog has room. */
static int dial(const struct sockaddr_in *at)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -errno;
	if (connect(s, (const struct sockaddr *)at, sizeof(*at)) < 0) {
		close(s);
		return -EIO;
	}
	return s;
}

static int local_port(int s)
{
	struct sockaddr_in me;
	socklen_t len = sizeof(me);

	return getsockname(s, (struct sockaddr *)&me, &len) < 0 ? -1 : ntohs(me.sin_port);
}

/* What a fd's flags say: 1 close-on-exec, 2 non-blocking. */
static int fd_flags(int fd)
{
	int fd_fl = fcntl(fd, F_GETFD), fl = fcntl(fd, F_GETFL);

	if (fd_fl < 0 || fl < 0)
		return -1;
	return ((fd_fl & FD_CLOEXEC) ? 1 : 0) | ((fl & O_NONBLOCK) ? 2 : 0);
}

/* A client whose server end is gone: it reads EOF or a reset (never hangs). */
static int sees_end(int s)
{
	char c;
	int64_t was = weft_set_deadline(weft_now() + 5 * WEFT_SEC);
	ssize_t r = weft_recv(s, &c, 1, 0);

	weft_set_deadline(was);
	return r == 0 || r == -ECONNRESET;
}

/*
 * Give the kernel's accepts time to land (a polling SQ thread may lag):
 * wait until @want more fds than @base are open, for at most 2 s.
 */
static int settle(int base, int want)
{
	for (int i = 0; i < 2000 && count_fds() - base < want; i++)
		weft_sleep(WEFT_MSEC);
	return count_fds() - base;
}

#define QN 150

struct qcase {
	int accepted, in_order, named, queued, fds_leaked;
	uint64_t rearms;
};

static int queue_main(void *arg)
{
	struct qcase *c = arg;
	struct sockaddr_in at;
	int cl[QN], before = count_fds(), l = listener(256, &at);
	weft_stats st;

	if (l < 0 || (cl[0] = dial(&at)) < 0)
		return -EIO;
	int s = weft_accept4(l, NULL, NULL, SOCK_CLOEXEC); /* arms the multishot accept */

	if (s < 0)
		return s;
	close(s);
	/* No fiber waits: weft queues up to its bound, the backlog holds the rest. */
	for (int i = 1; i < QN; i++) {
		if ((cl[i] = dial(&at)) < 0)
			return -EIO;
		weft_sleep(WEFT_MSEC / 2);
	}
	c->queued = settle(before, 1 + QN + (multishot_expected() ? 64 : 0)) - 1 - QN;
	for (int i = 1; i < QN; i++) {
		struct sockaddr_in peer;
		socklen_t len = sizeof(peer);

		s = weft_accept4(l, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
		if (s < 0)
			break;
		c->accepted++;
		c->in_order += len == sizeof(peer) && ntohs(peer.sin_port) == local_port(cl[i]);
		c->named +=
		    peer.sin_family == AF_INET && peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK);
		weft_close(s);
	}
	weft_loop_stats(weft_loop_current(), &st);
	c->rearms = st.multishot_rearms;
	for (int i = 0; i < QN; i++)
		close(cl[i]);
	weft_close(l);
	c->fds_leaked = count_fds() - before;
	return 0;
}

static void check_queue(int multishot)
{
	struct qcase c;

	memset(&c, 0, sizeof(c));
	assert_int_equal(t_run(queue_main, &c), 0);
	assert_int_equal(c.accepted, QN - 1);
	assert_int_equal(c.in_order, QN - 1);
	assert_int_equal(c.named, QN - 1);
	assert_int_equal(c.fds_leaked, 0);
	if (multishot) {
		/* Stopped at its bound (more may come while the stop is on its way: 11 more
		 * were seen on SQPOLL, whose SQ thread submits the cancel later), well
		 * short of the QN - 1 that came... */
		assert_in_range(c.queued, 64, 64 + 32);
		/* ...and armed again once the queue had drained. */
		assert_true(c.rearms >= 1);
	} else {
		assert_int_equal(c.queued, 0);
		assert_int_equal(c.rearms, 0);
	}
}

static void test_accept_queues_to_its_bound_in_order_and_arms_again(void **state)
{
	(void)state;
	check_queue(multishot_expected());
	/* The same with every accept a single one. */
	setenv("WEFT_MULTISHOT_ACCEPT", "off", 1);
	check_queue(0);
	unsetenv("WEFT_MULTISHOT_ACCEPT");
}

struct closecase {
	int before, queued, after_close, ends_seen, waiter, leaked;
};

static int accept_waiting(void *arg)
{
	int *l = arg;

	return weft_accept4(*l, NULL, NULL, SOCK_CLOEXEC);
}

static int close_main(void *arg)
{
	struct closecase *c = arg;
	struct sockaddr_in at;
	int cl[10], l = listener(64, &at), c0, s, r;
	weft_fiber *f;

	c->before = count_fds();
	if (l < 0 || (c0 = dial(&at)) < 0 || (s = weft_accept4(l, NULL, NULL, 0)) < 0)
		return -EIO;
	weft_close(s);
	for (int i = 0; i < 10; i++) {
		if ((cl[i] = dial(&at)) < 0)
			return -EIO;
		weft_sleep(WEFT_MSEC / 2);
	}
	c->queued = settle(c->before, 11 + (multishot_expected() ? 10 : 0)) - 11;
	weft_close(l); /* closes what was queued, ends the accept */
	c->after_close = count_fds() - c->before - 11;
	for (int i = 0; i < 10; i++) {
		c->ends_seen += sees_end(cl[i]);
		close(cl[i]);
	}
	close(c0);

	/* A fiber waiting in weft_accept when another closes the listener. */
	if ((l = listener(4, &at)) < 0)
		return l;
	weft_spawn(NULL, accept_waiting, &l, &f);
	weft_sleep(5 * WEFT_MSEC);
	weft_close(l);
	weft_join(f, &r);
	c->waiter = r;
	c->leaked = count_fds() - c->before + 1; /* the first listener was counted in before */
	return 0;
}

static void test_closing_a_listener_closes_its_queued_connections(void **state)
{
	struct closecase c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(t_run(close_main, &c), 0);
	assert_int_equal(c.queued, multishot_expected() ? 10 : 0);
	assert_int_equal(c.after_close, -1); /* the listener, and nothing queued left */
	assert_int_equal(c.ends_seen, 10);
	assert_int_equal(c.waiter, -ECANCELED);
	assert_int_equal(c.leaked, 0);
}

struct leftcase {
	int l, cl[6];
};

static int left_main(void *arg)
{
	struct leftcase *c = arg;
	struct sockaddr_in at;
	int s;

	if ((c->l = listener(16, &at)) < 0 || (c->cl[0] = dial(&at)) < 0 ||
	    (s = weft_accept4(c->l, NULL, NULL, 0)) < 0)
		return -EIO;
	weft_close(s);
	for (int i = 1; i < 6; i++) {
		if ((c->cl[i] = dial(&at)) < 0)
			return -EIO;
		weft_sleep(WEFT_MSEC / 2);
	}
	return 0; /* the loop goes with connections queued and the accept armed */
}

static void test_loop_destroyed_with_queued_connections_leaks_none(void **state)
{
	struct leftcase c;
	int before = count_fds();

	(void)state;
	assert_int_equal(t_run(left_main, &c), 0);
	assert_int_equal(count_fds() - before, 1 + 6); /* the listener and the clients */
	/*
	 * Each client was either queued by weft, and the destroy closed it (EOF
	 * or a reset), or it still waits in the kernel's backlog (single
	 * accepts; or the accept was not run for it yet): none is lost, none
	 * leaked.
	 */
	int waiting[6], nwaiting = 0, s;

	fcntl(c.l, F_SETFL, fcntl(c.l, F_GETFL) | O_NONBLOCK); /* an empty backlog: EAGAIN */
	while (nwaiting < 6 && (s = accept4(c.l, NULL, NULL, 0)) >= 0) {
		struct sockaddr_in peer;
		socklen_t len = sizeof(peer);

		assert_int_equal(getpeername(s, (struct sockaddr *)&peer, &len), 0);
		waiting[nwaiting++] = ntohs(peer.sin_port);
		close(s);
	}
	if (!multishot_expected())
		assert_int_equal(nwaiting, 5);
	for (int i = 1; i < 6; i++) {
		struct pollfd p = { .fd = c.cl[i], .events = POLLIN };
		int in_backlog = 0;
		char ch;

		for (int k = 0; k < nwaiting; k++)
			in_backlog |= waiting[k] == local_port(c.cl[i]);
		if (in_backlog)
			continue;
		assert_int_equal(poll(&p, 1, 5000), 1);
		assert_true(read(c.cl[i], &ch, 1) <= 0);
	}
	for (int i = 0; i < 6; i++)
		close(c.cl[i]);
	close(c.l);
	assert_int_equal(count_fds(), before);
}

struct stagecase {
	int timed, cancelled, early_cancel, past_deadline, got_port, want_port;
	int64_t waited;
};

static int self_cancelled(void *arg)
{
	int *l = arg;

	return weft_accept4(*l, NULL, NULL, 0);
}

static int stage_main(void *arg)
{
	struct stagecase *c = arg;
	struct sockaddr_in at, peer;
	socklen_t len = sizeof(peer);
	int l = listener(16, &at), c1, s, r;
	int64_t t0 = weft_now();
	weft_fiber *f;

	if (l < 0)
		return l;
	/* Armed, nothing arrives: the deadline, then a cancel. */
	weft_set_deadline(t0 + 20 * WEFT_MSEC);
	c->timed = weft_accept4(l, NULL, NULL, 0);
	c->waited = weft_now() - t0;
	weft_set_deadline(WEFT_FOREVER);
	weft_spawn(NULL, accept_waiting, &l, &f);
	weft_sleep(5 * WEFT_MSEC);
	weft_cancel(f);
	weft_join(f, &r);
	c->cancelled = r;
	/* A connection arrives with nobody waiting: queued (or in the backlog). */
	if ((c1 = dial(&at)) < 0)
		return -EIO;
	c->want_port = local_port(c1);
	weft_sleep(2 * WEFT_MSEC);
	/* Queued: a cancelled fiber and a passed deadline fail at once, and take nothing. */
	weft_spawn(NULL, self_cancelled, &l, &f);
	weft_cancel(f);
	weft_join(f, &r);
	c->early_cancel = r;
	weft_set_deadline(weft_now());
	c->past_deadline = weft_accept4(l, NULL, NULL, 0);
	weft_set_deadline(weft_now() + 5 * WEFT_SEC);
	s = weft_accept4(l, (struct sockaddr *)&peer, &len, 0);
	weft_set_deadline(WEFT_FOREVER);
	if (s >= 0) {
		c->got_port = ntohs(peer.sin_port);
		weft_close(s);
	}
	close(c1);
	weft_close(l);
	return 0;
}

static void test_accept_deadline_and_cancel_while_armed_and_while_queued(void **state)
{
	struct stagecase c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(t_run(stage_main, &c), 0);
	assert_int_equal(c.timed, -ETIMEDOUT);
	assert_true(c.waited >= 15 * WEFT_MSEC);
	assert_int_equal(c.cancelled, -ECANCELED);
	assert_int_equal(c.early_cancel, -ECANCELED);
	assert_int_equal(c.past_deadline, -ETIMEDOUT);
	assert_int_equal(c.got_port, c.want_port);
}

struct flagcase {
	int got[5];
};

static int accept_both(void *arg)
{
	int *l = arg;

	return weft_accept4(*l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

static int flags_main(void *arg)
{
	struct flagcase *c = arg;
	static const int want[] = { SOCK_CLOEXEC, SOCK_NONBLOCK, 0 };
	struct sockaddr_in at;
	int l = listener(16, &at), cl[5], s;
	weft_fiber *f;

	if (l < 0 || (cl[0] = dial(&at)) < 0)
		return -EIO;
	for (int i = 0; i < 3; i++) {
		/* The accept is armed with SOCK_CLOEXEC; each fd gets what its caller asked. */
		if (i > 0 && (cl[i] = dial(&at)) < 0)
			return -EIO;
		weft_sleep(WEFT_MSEC);
		if ((s = weft_accept4(l, NULL, NULL, want[i])) < 0)
			return s;
		c->got[i] = fd_flags(s);
		weft_close(s);
	}
	/* Handed to a waiting fiber that asked for other flags than the arm's. */
	weft_spawn(NULL, accept_both, &l, &f);
	weft_sleep(2 * WEFT_MSEC);
	if ((cl[3] = dial(&at)) < 0)
		return -EIO;
	weft_join(f, &s);
	c->got[3] = s < 0 ? s : fd_flags(s);
	if (s >= 0)
		weft_close(s);
	/* weft_accept: no flags. */
	if ((cl[4] = dial(&at)) < 0 || (s = weft_accept(l, NULL, NULL)) < 0)
		return -EIO;
	c->got[4] = fd_flags(s);
	weft_close(s);
	for (int i = 0; i < 5; i++)
		close(cl[i]);
	weft_close(l);
	return 0;
}

static void test_accepted_fds_have_the_flags_their_caller_asked(void **state)
{
	struct flagcase c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(t_run(flags_main, &c), 0);
	assert_int_equal(c.got[0], 1);
	assert_int_equal(c.got[1], 2);
	assert_int_equal(c.got[2], 0);
	assert_int_equal(c.got[3], 3);
	assert_int_equal(c.got[4], 0);
}

struct emfilecase {
	int full, after;
	uint64_t rearms;
};

static int emfile_main(void *arg)
{
	struct emfilecase *c = arg;
	struct sockaddr_in at;
	struct rlimit was, low;
	int l = listener(16, &at), cl, free_fd, s;
	weft_stats st;

	/* A connection waits in the backlog (an epoll loop waits for one before it tries). */
	if (l < 0 || (cl = dial(&at)) < 0)
		return -EIO;
	/* Every fd number in use: the kernel's accept fails, and ends the multishot. */
	if ((free_fd = dup(0)) < 0 || close(free_fd) < 0 || getrlimit(RLIMIT_NOFILE, &was) < 0)
		return -EIO;
	low = was;
	low.rlim_cur = (rlim_t)free_fd;
	if (setrlimit(RLIMIT_NOFILE, &low) < 0)
		return -EIO;
	c->full = weft_accept4(l, NULL, NULL, 0);
	setrlimit(RLIMIT_NOFILE, &was);
	/* Room again: the next accept arms it again and gets the connection. */
	weft_set_deadline(weft_now() + 5 * WEFT_SEC);
	s = weft_accept4(l, NULL, NULL, 0);
	weft_set_deadline(WEFT_FOREVER);
	c->after = s >= 0;
	if (s >= 0)
		weft_close(s);
	weft_loop_stats(weft_loop_current(), &st);
	c->rearms = st.multishot_rearms;
	close(cl);
	weft_close(l);
	return 0;
}

static void test_accept_out_of_fds_fails_and_the_next_arms_again(void **state)
{
	struct emfilecase c;

	(void)state;
	if (t_under_valgrind())
		skip(); /* valgrind keeps RLIMIT_NOFILE to itself: the kernel's limit does not move
			 */
	memset(&c, 0, sizeof(c));
	assert_int_equal(t_run(emfile_main, &c), 0);
	assert_int_equal(c.full, -EMFILE);
	assert_int_equal(c.after, 1);
	assert_int_equal(c.rearms, multishot_expected() ? 1 : 0);
}

struct badcase {
	int rc[6], then_ok;
};

static int bad_accept_main(void *arg)
{
	struct badcase *c = arg;
	struct sockaddr_in at = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(at);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), p[2], gone, cl, a;

	if (s < 0 || u < 0 || pipe(p) < 0 || (gone = dup(p[0])) < 0)
		return -EIO;
	close(gone);
	c->rc[0] = weft_accept4(s, NULL, NULL, 0); /* not listening */
	c->rc[1] = weft_accept4(u, NULL, NULL, 0); /* a datagram socket */
	c->rc[2] = weft_accept4(p[0], NULL, NULL, 0);
	c->rc[3] = weft_accept4(gone, NULL, NULL, 0);
	c->rc[4] = weft_accept4(s, NULL, NULL, 0x40000000);
	c->rc[5] = weft_accept4(s, (struct sockaddr *)&at, NULL, 0);
	/* The same socket, listening now: its accepts work (nothing stale was kept). */
	if (bind(s, (struct sockaddr *)&at, sizeof(at)) < 0 || listen(s, 4) < 0 ||
	    getsockname(s, (struct sockaddr *)&at, &len) < 0 || (cl = dial(&at)) < 0)
		return -EIO;
	weft_set_deadline(weft_now() + 5 * WEFT_SEC);
	a = weft_accept4(s, NULL, NULL, 0);
	weft_set_deadline(WEFT_FOREVER);
	c->then_ok = a >= 0;
	if (a >= 0)
		weft_close(a);
	close(cl);
	weft_close(s);
	close(u);
	close(p[0]);
	close(p[1]);
	return 0;
}

static void test_accept_on_what_is_no_listener_fails_clearly(void **state)
{
	struct badcase c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(t_run(bad_accept_main, &c), 0);
	print_message("bad: %d %d %d %d %d %d\n", c.rc[0], c.rc[1], c.rc[2], c.rc[3], c.rc[4],
		      c.rc[5]);
	assert_int_equal(c.rc[0], -EINVAL);
	assert_int_equal(c.rc[1], -EOPNOTSUPP);
	assert_int_equal(c.rc[2], -ENOTSOCK);
	assert_int_equal(c.rc[3], -EBADF);
	assert_int_equal(c.rc[4], -EINVAL);
	assert_int_equal(c.rc[5], -EINVAL);
	assert_int_equal(c.then_ok, 1);
	assert_int_equal(weft_accept(0, NULL, NULL), -EPERM); /* outside a fiber */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_poll_on_pipe_socket_eventfd_and_closed_fd),
		cmocka_unit_test(test_recv_with_dontwait_tries_at_once),
		cmocka_unit_test(test_splice_between_sockets_and_a_pipe),
		cmocka_unit_test(test_sendfile_of_a_sparse_gigabyte_arrives_whole),
		cmocka_unit_test(
		    test_sendfile_deadline_returns_the_bytes_moved_and_hangup_is_epipe),
		cmocka_unit_test(test_send_zc_sends_every_byte_and_falls_back_where_it_cannot),
		cmocka_unit_test(test_fibers_parked_in_recv_buf_hold_no_buffer),
		cmocka_unit_test(test_more_connections_than_buffers_lose_no_byte),
		cmocka_unit_test(test_buffers_released_after_close_elsewhere_and_after_the_loop),
		cmocka_unit_test(test_recv_buf_deadline_cancel_and_bad_input),
		cmocka_unit_test(test_releasing_a_buffer_twice_aborts_with_a_message),
		cmocka_unit_test(test_accept_queues_to_its_bound_in_order_and_arms_again),
		cmocka_unit_test(test_closing_a_listener_closes_its_queued_connections),
		cmocka_unit_test(test_loop_destroyed_with_queued_connections_leaks_none),
		cmocka_unit_test(test_accept_deadline_and_cancel_while_armed_and_while_queued),
		cmocka_unit_test(test_accepted_fds_have_the_flags_their_caller_asked),
		cmocka_unit_test(test_accept_out_of_fds_fails_and_the_next_arms_again),
		cmocka_unit_test(test_accept_on_what_is_no_listener_fails_clearly),
	};

	if (!t_io_uring_usable())
		return 77;
	signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the test: weft must not raise one */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
