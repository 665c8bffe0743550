/* SPDX-License-Identifier: MIT */
/*
 * Issue 11, defect 11: with SQPOLL, a fiber that was never cancelled got
 * -ECANCELED (9-13 times in 40,000 recv races with deadlines), and
 * -ECANCELED where -ETIMEDOUT was due. The op record's address was reused
 * for the next operation as soon as the op's own CQE arrived, while its
 * linked timeout's CQE was still to come, and the kernel cancels by that
 * address (user_data). Now an operation ends only when every CQE it caused
 * has arrived (DESIGN principle 3).
 *
 * Two receivers, 20,000 recvs each under a 50 us deadline, against a peer
 * thread that sends each a byte every ~50 us: today's main gave 64-227
 * stray -ECANCELED per run here.
 */
#include "../helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAIRS 2
#define ROUNDS 20000

struct ctx {
	int sv[PAIRS][2];
	atomic_int stop;
	int got, timedout, cancelled, other;
};

static void *peer(void *arg)
{
	struct ctx *c = arg;
	struct timespec gap = { 0, 50000 };

	while (!atomic_load(&c->stop)) {
		for (int i = 0; i < PAIRS; i++)
			(void)send(c->sv[i][1], "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		nanosleep(&gap, NULL);
	}
	return NULL;
}

struct side {
	struct ctx *c;
	int fd;
};

static int receiver(void *arg)
{
	struct side *s = arg;
	char b;

	for (int i = 0; i < ROUNDS; i++) {
		weft_set_deadline(weft_now() + 50 * WEFT_USEC);

		ssize_t n = weft_recv(s->fd, &b, 1, 0);

		if (n == 1)
			s->c->got++;
		else if (n == -ETIMEDOUT)
			s->c->timedout++;
		else if (n == -ECANCELED)
			s->c->cancelled++;
		else
			s->c->other++;
	}
	return 0;
}

static int both(void *arg)
{
	struct ctx *c = arg;
	struct side sides[PAIRS];
	weft_call calls[PAIRS];

	for (int i = 0; i < PAIRS; i++) {
		sides[i] = (struct side){ .c = c, .fd = c->sv[i][0] };
		calls[i] = (weft_call){ .fn = receiver, .arg = &sides[i] };
	}
	return weft_gather(calls, PAIRS);
}

static void test_sqpoll_recv_with_deadline_is_never_cancelled_by_a_stale_timeout(void **state)
{
	weft_config cfg;
	struct ctx c = { 0 };
	pthread_t t;

	(void)state;
	for (int i = 0; i < PAIRS; i++)
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c.sv[i]), 0);
	assert_int_equal(pthread_create(&t, NULL, peer, &c), 0);
	weft_config_init(&cfg);
	cfg.flags = WEFT_CONFIG_SQPOLL;

	int rc = t_run_cfg(&cfg, both, &c, NULL);

	atomic_store(&c.stop, 1);
	pthread_join(t, NULL);
	for (int i = 0; i < PAIRS; i++) {
		close(c.sv[i][0]);
		close(c.sv[i][1]);
	}
	if (rc == -EPERM || rc == -EINVAL) {
		print_message("SQPOLL is not allowed here (io_uring_setup: %d)\n", rc);
		skip();
	}
	assert_int_equal(rc, 0);
	print_message("%d got, %d timed out, %d cancelled, %d other\n", c.got, c.timedout,
		      c.cancelled, c.other);
	assert_int_equal(c.cancelled, 0);
	assert_int_equal(c.other, 0);
	assert_true(c.got > 0);
	assert_true(c.timedout > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_sqpoll_recv_with_deadline_is_never_cancelled_by_a_stale_timeout),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
