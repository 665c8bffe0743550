/* SPDX-License-Identifier: MIT */
/*
 * weft_recv_buf's multishot receive (on io_uring; the same behaviour on
 * every backend, where the receive is single-shot): a stream that arrives
 * faster than it is read keeps its order through the queue's bound and
 * the re-arms; copying receives (weft_recv with and without MSG_PEEK and
 * MSG_WAITALL, weft_read, weft_recvmsg) and weft_poll see what was queued
 * first; weft_close with receptions queued gives every buffer back while
 * lent ones stay valid; deadlines and cancels while armed lose no byte;
 * end of file after data; an fd closed behind weft's back whose number
 * comes back; a loop destroyed with receptions queued; datagrams keep
 * their boundaries.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <unistd.h>

/*
 * Whether this run's weft_recv_buf is the multishot receive: io_uring, Linux
 * 6.0, asked for (every loop here sets WEFT_CONFIG_MULTISHOT_RECV), not
 * turned off by WEFT_MULTISHOT_RECV=off.
 */
static int multishot_expected(void)
{
	const char *w = getenv("WEFT_MULTISHOT_RECV");
	const char *off = getenv("WEFT_DISABLE_OPS");
	struct utsname u;
	int major = 0;

	if (!t_on_uring() || (w && !strcmp(w, "off")) || uname(&u) < 0)
		return 0;
	if (off) {
		char list[128];

		snprintf(list, sizeof(list), ",%s,", off);
		if (strstr(list, ",27,") || strstr(list, ",47,"))
			return 0;
	}
	sscanf(u.release, "%d", &major);
	return major >= 6;
}

/* Run @fn on a loop that asks for the multishot receive (WEFT_MULTISHOT_RECV=off still wins). */
static int run_ms(weft_fn fn, void *arg)
{
	weft_config cfg;

	weft_config_init(&cfg);
	cfg.flags |= WEFT_CONFIG_MULTISHOT_RECV;
	return t_run_cfg(&cfg, fn, arg, NULL);
}

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 7 + 3);
}

/* Send @n bytes of the pattern from stream offset @at, in pieces of @piece. */
static int send_pattern(int fd, size_t at, size_t n, size_t piece)
{
	unsigned char buf[4096];

	for (size_t done = 0; done < n;) {
		size_t k = n - done < piece ? n - done : piece;

		for (size_t i = 0; i < k; i++)
			buf[i] = pattern(at + done + i);
		if (weft_send_all(fd, buf, k, 0) < 0)
			return -EIO;
		done += k;
	}
	return 0;
}

/* Count bytes of @p (stream offset @at) that break the pattern. */
static int off_pattern(const void *p, size_t at, size_t n)
{
	int bad = 0;

	for (size_t i = 0; i < n; i++)
		bad += ((const unsigned char *)p)[i] != pattern(at + i);
	return bad;
}

/* ---- a stream read slower than it arrives ---------------------------------------- */

#define BURST (64 * 1024)

struct slow {
	int sv[2];
	size_t got;
	int bad, calls;
	weft_stats st;
};

static int slow_sender(void *arg)
{
	struct slow *c = arg;

	/* Pieces of 100 bytes as fast as they go: many receptions land while the reader sleeps. */
	return send_pattern(c->sv[0], 0, BURST, 100);
}

static int slow_main(void *arg)
{
	struct slow *c = arg;
	weft_fiber *s;

	if (t_tcp_pair(c->sv) < 0)
		return -EIO;
	weft_spawn(NULL, slow_sender, c, &s);
	while (c->got < BURST) {
		weft_buf b;
		ssize_t n = weft_recv_buf(c->sv[1], &b, 0);

		if (n <= 0) {
			c->bad++;
			break;
		}
		c->bad += off_pattern(b.data, c->got, (size_t)n);
		c->got += (size_t)n;
		c->calls++;
		weft_buf_release(&b);
		if (c->calls % 8 == 0)
			weft_sleep(200 * WEFT_USEC); /* let receptions pile up past the bound */
	}
	weft_join(s, NULL);
	weft_close(c->sv[0]);
	weft_close(c->sv[1]);
	weft_loop_stats(weft_loop_current(), &c->st);
	return 0;
}

static void test_a_stream_read_slower_than_it_arrives_keeps_its_order(void **state)
{
	struct slow c = { .got = 0 };
	weft_config cfg;

	(void)state;
	weft_config_init(&cfg);
	cfg.recv_buffers = 16;
	cfg.recv_buffer_size = 256;
	cfg.flags |= WEFT_CONFIG_MULTISHOT_RECV;
	assert_int_equal(t_run_cfg(&cfg, slow_main, &c, NULL), 0);
	print_message("%d calls, %llu re-arms, %u fallbacks, peak %u lent\n", c.calls,
		      (unsigned long long)c.st.multishot_rearms, c.st.bufs_fallbacks,
		      c.st.bufs_lent_peak);
	assert_int_equal(c.bad, 0);
	assert_int_equal(c.got, BURST);
	assert_int_equal(c.st.bufs_lent, 0);
	assert_true(c.st.bufs_lent_peak <= 16);
	if (multishot_expected())
		assert_true(c.st.multishot_rearms > 0); /* the bound stopped it, a call armed it */
}

/* ---- copying receives after receptions were queued ------------------------------- */

struct mix {
	int sv[2];
	int bad;
	ssize_t n[10], dontwait, oob;
	int polled;
	uint32_t lent_end;
};

/* Wait until @fd has bytes the loop would lend, then give the receive time to queue them. */
static void let_land(void)
{
	weft_sleep(20 * WEFT_MSEC);
}

static int mix_main(void *arg)
{
	struct mix *c = arg;
	unsigned char buf[64];
	size_t at = 0;
	weft_buf b;
	ssize_t n;

	if (t_tcp_pair(c->sv) < 0)
		return -EIO;
	/* One weft_recv_buf arms the receive... */
	send_pattern(c->sv[0], 0, 10, 10);
	n = weft_recv_buf(c->sv[1], &b, 0);
	c->n[0] = n;
	if (n > 0) {
		c->bad += off_pattern(b.data, at, (size_t)n);
		at += (size_t)n;
		weft_buf_release(&b);
	}
	/* Armed, nothing queued: MSG_DONTWAIT does not wait; flags the queue cannot honour fail. */
	c->dontwait = weft_recv_buf(c->sv[1], &b, MSG_DONTWAIT);
	c->oob = weft_recv_buf(c->sv[1], &b, MSG_OOB);
	/* ...then 3 pieces land while nobody receives: queued on io_uring. */
	send_pattern(c->sv[0], 10, 30, 10);
	let_land();
	c->polled = weft_poll(c->sv[1], POLLIN);
	/* A peek sees them and takes nothing. */
	c->n[1] = weft_recv(c->sv[1], buf, 5, MSG_PEEK);
	c->bad += c->n[1] == 5 ? off_pattern(buf, at, 5) : 1;
	/* A short weft_recv takes part of one. */
	c->n[2] = weft_recv(c->sv[1], buf, 5, 0);
	c->bad += c->n[2] == 5 ? off_pattern(buf, at, 5) : 1;
	at += 5;
	/* weft_read takes more, across receptions. */
	c->n[3] = weft_read(c->sv[1], buf, 12, -1);
	if (c->n[3] > 0) {
		c->bad += off_pattern(buf, at, (size_t)c->n[3]);
		at += (size_t)c->n[3];
	}
	/* weft_recvmsg into two pieces. */
	{
		struct iovec v[2] = { { buf, 3 }, { buf + 3, 40 } };
		struct msghdr m = { .msg_iov = v, .msg_iovlen = 2 };

		c->n[4] = weft_recvmsg(c->sv[1], &m, 0);
		if (c->n[4] > 0) {
			c->bad += off_pattern(buf, at, (size_t)c->n[4]);
			at += (size_t)c->n[4];
		}
	}
	/* weft_recv_buf again: where the copies stopped. */
	while (at < 40) {
		n = weft_recv_buf(c->sv[1], &b, 0);
		if (n <= 0) {
			c->bad++;
			break;
		}
		c->bad += off_pattern(b.data, at, (size_t)n);
		at += (size_t)n;
		weft_buf_release(&b);
	}
	/* MSG_WAITALL for more than is queued: the rest comes from the socket. */
	send_pattern(c->sv[0], 40, 30, 10);
	let_land();
	n = weft_recv_buf(c->sv[1], &b, 0); /* arm, take one */
	c->n[5] = n;
	if (n > 0) {
		c->bad += off_pattern(b.data, at, (size_t)n);
		at += (size_t)n;
		weft_buf_release(&b);
	}
	send_pattern(c->sv[0], 70, 10, 10);
	c->n[6] = weft_recv(c->sv[1], buf, 80 - at, MSG_WAITALL);
	if (c->n[6] > 0) {
		c->bad += off_pattern(buf, at, (size_t)c->n[6]);
		at += (size_t)c->n[6];
	}
	c->n[7] = (ssize_t)at;
	/* Nothing queued, nothing sent: MSG_DONTWAIT does not wait. */
	c->n[8] = weft_recv(c->sv[1], buf, sizeof(buf), MSG_DONTWAIT);
	weft_close(c->sv[0]);
	c->n[9] = weft_recv(c->sv[1], buf, sizeof(buf), 0); /* end of file */
	weft_close(c->sv[1]);

	weft_stats st;

	weft_loop_stats(weft_loop_current(), &st);
	c->lent_end = st.bufs_lent;
	return 0;
}

static void test_copying_receives_and_poll_see_queued_bytes_first(void **state)
{
	struct mix c = { .bad = 0 };

	(void)state;
	assert_int_equal(run_ms(mix_main, &c), 0);
	assert_int_equal(c.bad, 0);
	assert_int_equal(c.n[0], 10);
	assert_int_equal(c.dontwait, -EAGAIN);
	assert_int_equal(c.oob, -EINVAL); /* armed: refused; else recv(2)'s: no urgent byte */
	assert_true(c.polled > 0 && (c.polled & POLLIN));
	assert_int_equal(c.n[1], 5);
	assert_int_equal(c.n[2], 5);
	assert_true(c.n[3] > 0 && c.n[3] <= 12);
	assert_true(c.n[4] > 0);
	assert_true(c.n[5] > 0);
	assert_int_equal(c.n[7], 80); /* every byte, in order */
	assert_int_equal(c.n[8], -EAGAIN);
	assert_int_equal(c.n[9], 0);
	assert_int_equal(c.lent_end, 0);
}

/* ---- close, deadlines, cancels, end of file --------------------------------------- */

struct stages {
	int sv[2];
	ssize_t timed, cancelled, after, eof[2];
	int bad;
	uint32_t lent_queued, lent_after_close, lent_end;
	char kept[16];
};

static int waiter_cancelled(void *arg)
{
	struct stages *c = arg;
	weft_buf b;

	c->cancelled = weft_recv_buf(c->sv[1], &b, 0);
	if (c->cancelled > 0)
		weft_buf_release(&b);
	return 0;
}

static uint32_t lent_now(void)
{
	weft_stats st;

	weft_loop_stats(weft_loop_current(), &st);
	return st.bufs_lent;
}

static int stages_main(void *arg)
{
	struct stages *c = arg;
	weft_fiber *f;
	weft_buf b, kept;
	ssize_t n;

	if (t_tcp_pair(c->sv) < 0)
		return -EIO;
	/* A deadline while armed, nothing sent: -ETIMEDOUT. */
	int64_t was = weft_set_deadline(weft_now() + 20 * WEFT_MSEC);

	c->timed = weft_recv_buf(c->sv[1], &b, 0);
	weft_set_deadline(was);
	/* A cancel while armed: -ECANCELED. */
	weft_spawn(NULL, waiter_cancelled, c, &f);
	weft_sleep(5 * WEFT_MSEC);
	weft_cancel(f);
	weft_join(f, NULL);
	/* What comes after is not lost. */
	send_pattern(c->sv[0], 0, 16, 16);
	n = weft_recv_buf(c->sv[1], &kept, 0);
	c->after = n;
	if (n > 0)
		c->bad += off_pattern(kept.data, 0, (size_t)n);
	/* End of file after data: the data, then 0, and 0 again. */
	send_pattern(c->sv[0], (size_t)(n > 0 ? n : 0), 16 - (size_t)(n > 0 ? n : 0), 16);
	shutdown(c->sv[0], SHUT_WR);
	let_land();
	c->lent_queued = lent_now();
	for (size_t at = (size_t)(n > 0 ? n : 0); at < 16;) {
		ssize_t k = weft_recv_buf(c->sv[1], &b, 0);

		if (k <= 0) {
			c->bad++;
			break;
		}
		c->bad += off_pattern(b.data, at, (size_t)k);
		at += (size_t)k;
		weft_buf_release(&b);
	}
	c->eof[0] = weft_recv_buf(c->sv[1], &b, 0);
	c->eof[1] = weft_recv_buf(c->sv[1], &b, 0);
	/* weft_close with a buffer still lent: it stays valid until released. */
	weft_close(c->sv[1]);
	c->lent_after_close = lent_now();
	if (c->after > 0)
		memcpy(c->kept, kept.data, (size_t)c->after);
	weft_buf_release(&kept);
	weft_close(c->sv[0]);
	c->lent_end = lent_now();
	return 0;
}

static void test_deadline_cancel_eof_and_close_lose_no_byte(void **state)
{
	struct stages c = { .bad = 0 };

	(void)state;
	assert_int_equal(run_ms(stages_main, &c), 0);
	assert_int_equal(c.timed, -ETIMEDOUT);
	assert_int_equal(c.cancelled, -ECANCELED);
	assert_true(c.after > 0);
	assert_int_equal(c.bad, 0);
	assert_int_equal(c.eof[0], 0);
	assert_int_equal(c.eof[1], 0);
	assert_true(c.lent_queued >= 1); /* the kept one at least */
	assert_int_equal(c.lent_after_close, 1);
	assert_int_equal(off_pattern(c.kept, 0, (size_t)c.after), 0);
	assert_int_equal(c.lent_end, 0);
}

/* ---- queued receptions at weft_close and at the loop's end ------------------------ */

struct closing {
	int sv[2][2];
	uint32_t lent_queued, lent_closed;
	int peer_eof;
};

static int closing_main(void *arg)
{
	struct closing *c = arg;
	weft_buf b;
	char x;

	for (int i = 0; i < 2; i++)
		if (t_tcp_pair(c->sv[i]) < 0)
			return -EIO;
	/* Both arm, then receptions queue on both. */
	for (int i = 0; i < 2; i++) {
		send_pattern(c->sv[i][0], 0, 1, 1);
		if (weft_recv_buf(c->sv[i][1], &b, 0) != 1)
			return -EIO;
		weft_buf_release(&b);
		for (int k = 0; k < 3; k++) {
			send_pattern(c->sv[i][0], 1, 1, 1);
			weft_sleep(2 * WEFT_MSEC);
		}
	}
	let_land();
	c->lent_queued = lent_now();
	/* One is closed by weft_close: its queue goes back, and the peer sees the end. */
	weft_close(c->sv[0][1]);
	weft_sleep(5 * WEFT_MSEC);
	c->lent_closed = lent_now();
	/* The end, or a reset where unread bytes were still in the socket (single-shot). */
	ssize_t r = recv(c->sv[0][0], &x, 1, MSG_DONTWAIT);

	c->peer_eof = r == 0 || (r < 0 && errno == ECONNRESET);
	weft_close(c->sv[0][0]);
	/* The other is left queued to the loop's destroy (the harness closes nothing). */
	return 0;
}

static void test_close_and_destroy_give_queued_buffers_back(void **state)
{
	struct closing c = { .lent_queued = 0 };

	(void)state;
	assert_int_equal(run_ms(closing_main, &c), 0);
	print_message("%u lent while queued, %u after one close\n", c.lent_queued, c.lent_closed);
	if (multishot_expected()) {
		assert_true(c.lent_queued >= 2); /* queued receptions hold buffers */
		assert_true(c.lent_closed < c.lent_queued);
	} else {
		assert_int_equal(c.lent_queued, 0); /* single-shot: lent only to a caller */
		assert_int_equal(c.lent_closed, 0);
	}
	assert_true(c.peer_eof);
	close(c.sv[1][0]);
	close(c.sv[1][1]);
}

/* ---- an fd closed behind weft's back ----------------------------------------------- */

struct reuse {
	int sv[2], fresh[2];
	int same_number, old_peer_eof, bad;
	ssize_t n;
};

static int reuse_main(void *arg)
{
	struct reuse *c = arg;
	weft_buf b;
	char x;

	if (t_tcp_pair(c->sv) < 0)
		return -EIO;
	send_pattern(c->sv[0], 0, 1, 1);
	if (weft_recv_buf(c->sv[1], &b, 0) != 1)
		return -EIO;
	weft_buf_release(&b); /* the receive stays armed on sv[1] */
	close(c->sv[1]);      /* not weft_close: weft does not see it */

	int s = weft_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	c->same_number = s == c->sv[1];
	if (s >= 0)
		close(s);
	weft_sleep(5 * WEFT_MSEC);
	/* The old connection's end was dropped with the stale receive: its peer sees the end. */
	c->old_peer_eof = recv(c->sv[0], &x, 1, MSG_DONTWAIT) == 0;
	weft_close(c->sv[0]);
	/* A new connection on whatever number: its own bytes, nothing of the old one. */
	if (t_tcp_pair(c->fresh) < 0)
		return -EIO;
	send_pattern(c->fresh[0], 0, 20, 20);
	c->n = weft_recv_buf(c->fresh[1], &b, 0);
	if (c->n > 0) {
		c->bad += off_pattern(b.data, 0, (size_t)c->n);
		weft_buf_release(&b);
	}
	weft_close(c->fresh[0]);
	weft_close(c->fresh[1]);
	return 0;
}

static void test_an_fd_closed_behind_weft_whose_number_returns(void **state)
{
	struct reuse c = { .bad = 0 };

	(void)state;
	assert_int_equal(run_ms(reuse_main, &c), 0);
	assert_true(c.n > 0);
	assert_int_equal(c.bad, 0);
	if (c.same_number && multishot_expected())
		assert_true(c.old_peer_eof);
}

/* ---- two copying receives on one fd while its receive is armed ------------------- */

struct two {
	int sv[2];
	ssize_t n[2];
	char got[2][8];
};

static int copier(void *arg)
{
	struct two *c = *(struct two **)arg;
	int me = ((struct two **)arg)[1] != NULL;

	c->n[me] = weft_recv(c->sv[1], c->got[me], 1, 0);
	return 0;
}

static int two_main(void *arg)
{
	struct two *c = arg;
	struct two *args[2][2] = { { c, NULL }, { c, c } };
	weft_fiber *f[2];
	weft_buf b;

	if (t_tcp_pair(c->sv) < 0)
		return -EIO;
	send_pattern(c->sv[0], 0, 1, 1);
	if (weft_recv_buf(c->sv[1], &b, 0) != 1) /* armed from now on, nothing queued */
		return -EIO;
	weft_buf_release(&b);
	for (int i = 0; i < 2; i++)
		weft_spawn(NULL, copier, args[i], &f[i]);
	weft_sleep(5 * WEFT_MSEC); /* both wait for the receive's end, then read the socket */
	send_pattern(c->sv[0], 1, 2, 1);
	for (int i = 0; i < 2; i++)
		weft_join(f[i], NULL);
	weft_close(c->sv[0]);
	weft_close(c->sv[1]);
	return 0;
}

static void test_two_copying_receives_while_the_receive_is_armed(void **state)
{
	struct two c = { .n = { 0, 0 } };

	(void)state;
	assert_int_equal(run_ms(two_main, &c), 0);
	assert_int_equal(c.n[0], 1);
	assert_int_equal(c.n[1], 1);
	/* Between them, bytes 1 and 2 of the stream, once each. */
	assert_int_equal(off_pattern(c.got[0], 1, 1) + off_pattern(c.got[1], 2, 1) == 0 ||
			     off_pattern(c.got[0], 2, 1) + off_pattern(c.got[1], 1, 1) == 0,
			 1);
}

/* ---- datagrams --------------------------------------------------------------------- */

struct dgram {
	ssize_t n[3];
	int bad;
};

static int dgram_main(void *arg)
{
	struct dgram *c = arg;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	for (int i = 0; i < 3; i++) {
		char m[8];

		memset(m, 'a' + i, sizeof(m));
		if (send(sv[0], m, (size_t)(i + 3), 0) != i + 3)
			return -EIO;
	}
	for (int i = 0; i < 3; i++) {
		weft_buf b;

		c->n[i] = weft_recv_buf(sv[1], &b, 0);
		for (ssize_t k = 0; k < c->n[i]; k++)
			c->bad += ((char *)b.data)[k] != 'a' + i;
		weft_buf_release(&b);
	}
	weft_close(sv[0]);
	weft_close(sv[1]);
	return 0;
}

static void test_datagrams_keep_their_boundaries(void **state)
{
	struct dgram c = { .bad = 0 };

	(void)state;
	assert_int_equal(run_ms(dgram_main, &c), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(c.n[i], i + 3);
	assert_int_equal(c.bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_stream_read_slower_than_it_arrives_keeps_its_order),
		cmocka_unit_test(test_copying_receives_and_poll_see_queued_bytes_first),
		cmocka_unit_test(test_deadline_cancel_eof_and_close_lose_no_byte),
		cmocka_unit_test(test_close_and_destroy_give_queued_buffers_back),
		cmocka_unit_test(test_an_fd_closed_behind_weft_whose_number_returns),
		cmocka_unit_test(test_two_copying_receives_while_the_receive_is_armed),
		cmocka_unit_test(test_datagrams_keep_their_boundaries),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
