/* SPDX-License-Identifier: MIT */
/*
 * Sockets through the public API: ping-pong over a socketpair, a TCP echo
 * over loopback with listen and dial, UDP with sendmsg/recvmsg, a peer that
 * hung up, bad fds, deadlines and cancel on accept and recv, and the race
 * where a recv completes anyway.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- ping-pong over a Unix socketpair ---- */

#define ROUNDS 2000

struct pp {
	int fd;
	int bad;
	ssize_t err;
};

static int ping(void *arg)
{
	struct pp *p = arg;

	for (uint32_t i = 0; i < ROUNDS; i++) {
		uint32_t v = i;
		ssize_t n = weft_send(p->fd, &v, sizeof(v), 0);

		if (n != sizeof(v)) {
			p->err = n;
			return -1;
		}
		n = weft_recv(p->fd, &v, sizeof(v), MSG_WAITALL);
		if (n != sizeof(v)) {
			p->err = n;
			return -1;
		}
		if (v != i + 1)
			p->bad++;
	}
	return 0;
}

static int pong(void *arg)
{
	struct pp *p = arg;

	for (;;) {
		uint32_t v;
		ssize_t n = weft_recv(p->fd, &v, sizeof(v), MSG_WAITALL);

		if (n == 0)
			return 0;
		if (n != sizeof(v)) {
			p->err = n;
			return -1;
		}
		v++;
		if (weft_send(p->fd, &v, sizeof(v), 0) != sizeof(v))
			return -1;
	}
}

struct pingpong {
	int sv[2];
	struct pp a, b;
	int ra, rb;
};

static int pingpong_main(void *arg)
{
	struct pingpong *t = arg;
	weft_fiber *fa, *fb;

	t->a.fd = t->sv[0];
	t->b.fd = t->sv[1];
	weft_spawn(NULL, pong, &t->b, &fb);
	weft_spawn(NULL, ping, &t->a, &fa);
	weft_join(fa, &t->ra);
	weft_shutdown(t->sv[0], SHUT_WR); /* pong sees EOF */
	weft_join(fb, &t->rb);
	return 0;
}

static void test_ping_pong_over_socketpair(void **state)
{
	struct pingpong t;
	weft_stats st;

	(void)state;
	memset(&t, 0, sizeof(t));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, t.sv), 0);
	assert_int_equal(t_run_cfg(NULL, pingpong_main, &t, &st), 0);
	assert_int_equal(t.ra, 0);
	assert_int_equal(t.rb, 0);
	assert_int_equal(t.a.bad, 0);
	assert_int_equal(t.a.err, 0);
	assert_int_equal(t.b.err, 0);
	/* Each send and recv is an op for the backend, unless it runs a fallback in place. */
	if (!getenv("WEFT_DISABLE_OPS"))
		assert_true(st.sqes >= 4 * ROUNDS);
	close(t.sv[0]);
	close(t.sv[1]);
}

/* ---- TCP over loopback: listen, accept, dial by address and by name ---- */

static int local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	ssize_t n;

	while ((n = weft_recv(fd, buf, sizeof(buf), 0)) > 0)
		if (weft_send_all(fd, buf, (size_t)n, 0) < 0)
			break;
	weft_close(fd);
	return 0;
}

/* Accept @count connections, each echoed by its own fiber. */
struct server {
	int lfd;
	int count;
	int accept_err;
	struct sockaddr_storage peer;
	socklen_t peer_len;
};

static int serve(void *arg)
{
	struct server *s = arg;

	for (int i = 0; i < s->count; i++) {
		s->peer_len = sizeof(s->peer);

		int fd =
		    weft_accept4(s->lfd, (struct sockaddr *)&s->peer, &s->peer_len, SOCK_CLOEXEC);

		if (fd < 0) {
			s->accept_err = fd;
			return fd;
		}
		weft_go(echo_conn, (void *)(intptr_t)fd);
	}
	return 0;
}

struct tcp {
	int listen_rc;
	int dial_num, dial_name, dial_v6;
	ssize_t echo_bytes;
	int mismatch;
	struct server srv;
	int bad_port, bad_flags, refused;
};

static ssize_t echo_through(int fd, size_t len, int *mismatch)
{
	char *out = malloc(len), *in = malloc(len);
	ssize_t got = 0;

	for (size_t i = 0; i < len; i++)
		out[i] = (char)(i * 7);

	ssize_t n = weft_send_all(fd, out, len, 0);

	if (n != (ssize_t)len) {
		got = n < 0 ? n : -EIO;
		goto out;
	}
	while ((size_t)got < len) {
		n = weft_recv(fd, in + got, len - (size_t)got, 0);
		if (n <= 0) {
			got = n < 0 ? n : -EPIPE;
			goto out;
		}
		got += n;
	}
	if (memcmp(in, out, len))
		(*mismatch)++;
out:
	free(out);
	free(in);
	return got;
}

static int tcp_main(void *arg)
{
	struct tcp *t = arg;
	weft_fiber *srv;

	t->bad_port = weft_tcp_listen("127.0.0.1", 70000, 16, 0);
	t->bad_flags = weft_tcp_listen("127.0.0.1", 0, 16, 0x80);
	t->srv.lfd = weft_tcp_listen("::", 0, 16, WEFT_TCP_REUSEPORT);
	if (t->srv.lfd < 0)
		t->srv.lfd = weft_tcp_listen(NULL, 0, 16, WEFT_TCP_REUSEPORT); /* no IPv6 here */
	t->listen_rc = t->srv.lfd < 0 ? t->srv.lfd : 0;
	if (t->srv.lfd < 0)
		return t->srv.lfd;

	int port = local_port(t->srv.lfd);

	t->srv.count = 2;
	weft_spawn(NULL, serve, &t->srv, &srv);

	t->dial_num = weft_tcp_dial("127.0.0.1", port);
	if (t->dial_num >= 0) {
		t->echo_bytes = echo_through(t->dial_num, 1 << 20, &t->mismatch);
		weft_close(t->dial_num);
	}
	t->dial_name = weft_tcp_dial("localhost", port); /* resolved on an offload worker */
	if (t->dial_name >= 0) {
		echo_through(t->dial_name, 1000, &t->mismatch);
		weft_close(t->dial_name);
	}
	weft_join(srv, NULL);
	weft_close(t->srv.lfd);

	/* A port nobody listens on: take one, then close it. */
	int probe = weft_tcp_listen("127.0.0.1", 0, 1, 0);
	int dead = local_port(probe);

	weft_close(probe);
	t->refused = weft_tcp_dial("127.0.0.1", dead);
	return 0;
}

static void test_tcp_listen_dial_accept_and_echo(void **state)
{
	struct tcp t;

	(void)state;
	memset(&t, 0, sizeof(t));
	assert_int_equal(t_run(tcp_main, &t), 0);
	assert_int_equal(t.bad_port, -EINVAL);
	assert_int_equal(t.bad_flags, -EINVAL);
	assert_int_equal(t.listen_rc, 0);
	assert_true(t.dial_num >= 0);
	assert_int_equal(t.echo_bytes, 1 << 20);
	assert_true(t.dial_name >= 0);
	assert_int_equal(t.mismatch, 0);
	assert_int_equal(t.srv.accept_err, 0);
	assert_true(t.srv.peer_len > 0);
	assert_int_equal(t.refused, -ECONNREFUSED);
}

/* ---- UDP with sendmsg / recvmsg ---- */

struct udp {
	ssize_t sent, got;
	char buf[32];
	int from_port, to_port;
};

static int udp_main(void *arg)
{
	struct udp *u = arg;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in from;
	socklen_t len = sizeof(a);
	int rx = weft_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int tx = weft_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (rx < 0 || tx < 0)
		return -EIO;
	if (bind(rx, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(rx, (struct sockaddr *)&a, &len) < 0)
		return -errno;

	struct iovec out = { "datagram", 8 };
	struct msghdr m = {
		.msg_name = &a, .msg_namelen = sizeof(a), .msg_iov = &out, .msg_iovlen = 1
	};

	u->sent = weft_sendmsg(tx, &m, 0);

	struct iovec in = { u->buf, sizeof(u->buf) };
	struct msghdr r = {
		.msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &in, .msg_iovlen = 1
	};

	u->got = weft_recvmsg(rx, &r, 0);
	u->from_port = ntohs(from.sin_port);
	len = sizeof(a);
	getsockname(tx, (struct sockaddr *)&a, &len);
	u->to_port = ntohs(a.sin_port);
	weft_close(rx);
	weft_close(tx);
	return 0;
}

static void test_udp_sendmsg_recvmsg(void **state)
{
	struct udp u;

	(void)state;
	memset(&u, 0, sizeof(u));
	assert_int_equal(t_run(udp_main, &u), 0);
	assert_int_equal(u.sent, 8);
	assert_int_equal(u.got, 8);
	assert_memory_equal(u.buf, "datagram", 8);
	assert_int_equal(u.from_port, u.to_port);
}

/* ---- a peer that hung up; bad fds ---- */

struct hangup {
	ssize_t recv_eof;
	ssize_t send_err;
	int sends_ok;
	ssize_t bad_fd, not_socket, null_buf, bad_how, accept_bad;
};

static int hangup_main(void *arg)
{
	struct hangup *h = arg;
	int sv[2];
	char buf[64] = { 0 };

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	weft_close(sv[1]);
	h->recv_eof = weft_recv(sv[0], buf, sizeof(buf), 0);
	h->send_err = weft_send(sv[0], buf, sizeof(buf), 0); /* no SIGPIPE: MSG_NOSIGNAL */
	weft_close(sv[0]);

	/* TCP: the peer closes with unread data, so it resets. */
	int l = weft_tcp_listen("127.0.0.1", 0, 4, 0);
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	getsockname(l, (struct sockaddr *)&a, &len);

	int c = weft_tcp_dial("127.0.0.1", ntohs(a.sin_port));
	int s = weft_accept(l, NULL, NULL);

	weft_send(c, "unread", 6, 0);
	weft_sleep(5 * WEFT_MSEC);
	weft_close(s); /* unread data: RST */
	weft_sleep(5 * WEFT_MSEC);
	for (int i = 0; i < 100; i++) {
		ssize_t n = weft_send(c, buf, sizeof(buf), 0);

		if (n < 0) {
			h->send_err = h->send_err == -EPIPE ? n : h->send_err;
			break;
		}
		h->sends_ok++;
		weft_sleep(WEFT_MSEC);
	}
	weft_close(c);
	weft_close(l);

	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	h->bad_fd = weft_recv(-1, buf, 1, 0);
	h->not_socket = weft_recv(p[0], buf, 1, MSG_DONTWAIT);
	h->null_buf = weft_send(p[1], NULL, 5, 0);
	h->bad_how = weft_shutdown(p[0], 42);
	h->accept_bad = weft_accept(p[0], NULL, NULL);
	close(p[0]);
	close(p[1]);
	return 0;
}

static void test_peer_hangup_and_bad_fds(void **state)
{
	struct hangup h;

	(void)state;
	memset(&h, 0, sizeof(h));
	assert_int_equal(t_run(hangup_main, &h), 0);
	assert_int_equal(h.recv_eof, 0);
	/* EPIPE from the socketpair; then the TCP reset shows as ECONNRESET or EPIPE. */
	assert_true(h.send_err == -ECONNRESET || h.send_err == -EPIPE);
	assert_true(h.sends_ok < 100);
	assert_int_equal(h.bad_fd, -EBADF);
	assert_int_equal(h.not_socket, -ENOTSOCK);
	assert_int_equal(h.null_buf, -EINVAL);
	assert_int_equal(h.bad_how, -EINVAL);
	assert_int_equal(h.accept_bad, -ENOTSOCK);
}

/* ---- deadlines and cancel on accept and recv ---- */

struct blocked {
	int fd;
	int accept;	  /* accept instead of recv */
	int64_t deadline; /* relative, 0: none */
	ssize_t rc;
	int64_t waited;
};

static int block_on(void *arg)
{
	struct blocked *b = arg;
	char c;
	int64_t t0 = weft_now();

	if (b->deadline)
		weft_set_deadline(t0 + b->deadline);
	b->rc = b->accept ? weft_accept(b->fd, NULL, NULL) : weft_recv(b->fd, &c, 1, 0);
	b->waited = weft_now() - t0;
	return 0;
}

struct blockcase {
	struct blocked timed[2];
	struct blocked cancelled[2];
	int fds[4];
};

static int block_main(void *arg)
{
	struct blockcase *c = arg;
	int sv[2];
	int l = weft_tcp_listen("127.0.0.1", 0, 4, 0);

	if (l < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -EIO;
	c->fds[0] = l;
	c->fds[1] = sv[0];
	c->fds[2] = sv[1];
	c->timed[0] = (struct blocked){ .fd = l, .accept = 1, .deadline = 20 * WEFT_MSEC };
	c->timed[1] = (struct blocked){ .fd = sv[0], .deadline = 20 * WEFT_MSEC };
	c->cancelled[0] = (struct blocked){ .fd = l, .accept = 1 };
	c->cancelled[1] = (struct blocked){ .fd = sv[0] };

	weft_call calls[2] = { { block_on, &c->timed[0], 0 }, { block_on, &c->timed[1], 0 } };

	weft_gather(calls, 2);

	weft_fiber *f[2];

	weft_spawn(NULL, block_on, &c->cancelled[0], &f[0]);
	weft_spawn(NULL, block_on, &c->cancelled[1], &f[1]);
	weft_sleep(10 * WEFT_MSEC);
	weft_cancel(f[0]);
	weft_cancel(f[1]);
	weft_join(f[0], NULL);
	weft_join(f[1], NULL);
	return 0;
}

static void test_accept_and_recv_past_deadline_and_cancelled(void **state)
{
	struct blockcase c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(t_run(block_main, &c), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(c.timed[i].rc, -ETIMEDOUT);
		assert_true(c.timed[i].waited >= 15 * WEFT_MSEC);
		assert_true(c.timed[i].waited < 5 * WEFT_SEC);
		assert_int_equal(c.cancelled[i].rc, -ECANCELED);
	}
	for (int i = 0; i < 3; i++)
		close(c.fds[i]);
}

/* ---- weft_close ends operations other fibers have pending on the fd ---- */

struct closecase {
	struct blocked recv_side, accept_side;
	int close_rc[2];
};

static int close_main(void *arg)
{
	struct closecase *c = arg;
	int sv[2];
	weft_fiber *f[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	c->recv_side = (struct blocked){ .fd = sv[0] };
	c->accept_side =
	    (struct blocked){ .fd = weft_tcp_listen("127.0.0.1", 0, 4, 0), .accept = 1 };
	weft_spawn(NULL, block_on, &c->recv_side, &f[0]);
	weft_spawn(NULL, block_on, &c->accept_side, &f[1]);
	weft_sleep(5 * WEFT_MSEC); /* both are parked in the kernel */
	c->close_rc[0] = weft_close(sv[0]);
	c->close_rc[1] = weft_close(c->accept_side.fd);
	weft_join(f[0], NULL); /* would hang if the close left them pending */
	weft_join(f[1], NULL);
	close(sv[1]);
	return 0;
}

static void test_close_cancels_operations_pending_on_the_fd(void **state)
{
	struct closecase c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(t_run(close_main, &c), 0);
	assert_int_equal(c.close_rc[0], 0);
	assert_int_equal(c.close_rc[1], 0);
	assert_int_equal(c.recv_side.rc, -ECANCELED);
	assert_int_equal(c.accept_side.rc, -ECANCELED);
}

/*
 * Several fibers parked on one fd, and others on a second: closing the
 * first ends exactly its eight (whichever of them the loop tracks as the
 * fd's first), and the other eight still get their bytes.
 */
struct manyonfd {
	struct blocked a[8], b[8];
	int close_rc;
	int sent;
};

static int many_on_fd_main(void *arg)
{
	struct manyonfd *c = arg;
	int s1[2], s2[2];
	weft_fiber *fa[8], *fb[8];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s1) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s2) < 0)
		return -errno;
	for (int i = 0; i < 8; i++) {
		c->a[i] = (struct blocked){ .fd = s1[0] };
		c->b[i] = (struct blocked){ .fd = s2[0] };
		weft_spawn(NULL, block_on, &c->a[i], &fa[i]);
		weft_spawn(NULL, block_on, &c->b[i], &fb[i]);
	}
	weft_sleep(5 * WEFT_MSEC); /* all sixteen are parked in the kernel */
	c->close_rc = weft_close(s1[0]);
	for (int i = 0; i < 8; i++)
		weft_join(fa[i], NULL);
	for (int i = 0; i < 8; i++) /* one byte each: block_on reads one */
		c->sent += (int)send(s2[1], "x", 1, 0);
	for (int i = 0; i < 8; i++)
		weft_join(fb[i], NULL);
	close(s1[1]);
	close(s2[0]);
	close(s2[1]);
	return 0;
}

static void test_close_ends_every_op_on_its_fd_and_no_other(void **state)
{
	struct manyonfd c;

	(void)state;
	/* With the default SQ, and with a 2-entry SQ that each cancel must flush. */
	for (int tiny = 0; tiny <= 1; tiny++) {
		weft_config cfg;

		weft_config_init(&cfg);
		if (tiny)
			cfg.sq_entries = 2;
		memset(&c, 0, sizeof(c));
		assert_int_equal(t_run_cfg(&cfg, many_on_fd_main, &c, NULL), 0);
		assert_int_equal(c.close_rc, 0);
		assert_int_equal(c.sent, 8);
		for (int i = 0; i < 8; i++) {
			assert_int_equal(c.a[i].rc, -ECANCELED);
			assert_int_equal(c.b[i].rc, 1);
		}
	}
}

/* ---- recv that completes anyway: bytes are returned, the rest stays ---- */

struct race {
	int rounds, got, cancelled, lost, other;
};

struct recvr {
	int fd;
	ssize_t rc;
	char buf[4];
};

static int recv_some(void *arg)
{
	struct recvr *r = arg;

	r->rc = weft_recv(r->fd, r->buf, 2, 0);
	return 0;
}

static int race_main(void *arg)
{
	struct race *rc = arg;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	for (int i = 0; i < rc->rounds; i++) {
		struct recvr r = { .fd = sv[0] };
		weft_fiber *f;
		char rest[8];

		r.rc = 1000;
		weft_spawn(NULL, recv_some, &r, &f);
		weft_yield();
		weft_nop();
		/* The three orders of the pipe race in test_file.c: both outcomes, every mode. */
		if (i % 3 == 2) {
			weft_cancel(f);
			weft_nop();
		}
		if (i % 3 == 1)
			weft_cancel(f);
		if (send(sv[1], "abc", 3, 0) != 3)
			return -EIO;
		for (int k = 0; i % 3 == 0 && k < 1000 && r.rc == 1000; k++)
			weft_nop();
		weft_cancel(f);
		weft_join(f, NULL);

		/* Whatever the recv did not return must still be in the socket. */
		ssize_t want = 3;

		if (r.rc == 2 && !memcmp(r.buf, "ab", 2)) {
			rc->got++;
			want = 1;
		} else if (r.rc == -ECANCELED) {
			rc->cancelled++;
		} else {
			rc->other++;
			continue;
		}
		if (recv(sv[0], rest, sizeof(rest), MSG_DONTWAIT) != want ||
		    memcmp(rest, want == 1 ? "c" : "abc", (size_t)want))
			rc->lost++;
	}
	close(sv[0]);
	close(sv[1]);
	return 0;
}

/* An accept that completes anyway hands back its socket: never dropped. */
struct acceptrace {
	int rounds, got, cancelled, lost, other;
};

static int accept_race_main(void *arg)
{
	struct acceptrace *ar = arg;
	int l = weft_tcp_listen("127.0.0.1", 0, 64, 0);
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	if (l < 0 || getsockname(l, (struct sockaddr *)&a, &len) < 0)
		return -EIO;
	for (int i = 0; i < ar->rounds; i++) {
		struct blocked b = { .fd = l, .accept = 1 };
		weft_fiber *f;
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		b.rc = 1000;
		weft_spawn(NULL, block_on, &b, &f);
		weft_yield();
		weft_nop();
		/* The three orders of the pipe race in test_file.c: both outcomes, every mode. */
		if (i % 3 == 2) {
			weft_cancel(f);
			weft_nop();
		}
		if (i % 3 == 1)
			weft_cancel(f);
		connect(c, (struct sockaddr *)&a, sizeof(a)); /* EINPROGRESS; loopback is instant */
		for (int k = 0; i % 3 == 0 && k < 1000 && b.rc == 1000; k++)
			weft_nop();
		weft_cancel(f);
		weft_join(f, NULL);
		if (b.rc >= 0) {
			ar->got++;
			close((int)b.rc);
		} else if (b.rc == -ECANCELED) {
			/*
			 * Then the connection is still in the backlog (plain
			 * accept), or in the listener's queue (multishot): the
			 * next accept gets it.
			 */
			int64_t was = weft_set_deadline(weft_now() + 5 * WEFT_SEC);
			int s2 = weft_accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

			weft_set_deadline(was);
			ar->cancelled++;
			if (s2 < 0)
				ar->lost++;
			else
				close(s2);
		} else {
			ar->other++;
		}
		close(c);
	}
	weft_close(l);
	return 0;
}

static void test_accept_that_completes_anyway_returns_its_socket(void **state)
{
	struct acceptrace ar = { .rounds = 300 };

	(void)state;
	assert_int_equal(t_run(accept_race_main, &ar), 0);
	assert_int_equal(ar.other, 0);
	assert_int_equal(ar.lost, 0);
	assert_int_equal(ar.got + ar.cancelled, ar.rounds);
	print_message("accept race: %d got, %d cancelled\n", ar.got, ar.cancelled);
	assert_true(ar.got >= ar.rounds / 3);
	assert_true(ar.cancelled >= ar.rounds / 3);
}

static void test_recv_that_completes_anyway_loses_nothing(void **state)
{
	struct race r = { .rounds = 600 };

	(void)state;
	assert_int_equal(t_run(race_main, &r), 0);
	assert_int_equal(r.other, 0);
	assert_int_equal(r.lost, 0);
	assert_int_equal(r.got + r.cancelled, r.rounds);
	print_message("recv race: %d got, %d cancelled\n", r.got, r.cancelled);
	assert_true(r.got >= r.rounds / 3);
	assert_true(r.cancelled >= r.rounds / 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ping_pong_over_socketpair),
		cmocka_unit_test(test_tcp_listen_dial_accept_and_echo),
		cmocka_unit_test(test_udp_sendmsg_recvmsg),
		cmocka_unit_test(test_peer_hangup_and_bad_fds),
		cmocka_unit_test(test_accept_and_recv_past_deadline_and_cancelled),
		cmocka_unit_test(test_close_cancels_operations_pending_on_the_fd),
		cmocka_unit_test(test_close_ends_every_op_on_its_fd_and_no_other),
		cmocka_unit_test(test_recv_that_completes_anyway_loses_nothing),
		cmocka_unit_test(test_accept_that_completes_anyway_returns_its_socket),
	};

	if (!t_io_uring_usable())
		return 77;
	signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the test: weft must not raise one */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
