/* SPDX-License-Identifier: MIT */
/*
 * weft_gather: concurrency, results, the error rule, cancel, deadlines;
 * weft_first (a sleep against a recv, results kept, deadline, cancel);
 * independent groups (a server surviving 100 failing connections).
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int sleep_ms_return(void *arg)
{
	int ms = (int)(intptr_t)arg;
	int rc = weft_sleep(ms * WEFT_MSEC);

	return rc < 0 ? rc : ms;
}

struct gathered {
	int rc;
	int results[4];
	int64_t ns;
};

static int gather_sleeps(void *arg)
{
	struct gathered *g = arg;
	weft_call calls[3] = {
		{ .fn = sleep_ms_return, .arg = (void *)(intptr_t)60 },
		{ .fn = sleep_ms_return, .arg = (void *)(intptr_t)30 },
		{ .fn = sleep_ms_return, .arg = (void *)(intptr_t)60 },
	};
	int64_t t0 = weft_now();

	g->rc = weft_gather(calls, 3);
	g->ns = weft_now() - t0;
	for (int i = 0; i < 3; i++)
		g->results[i] = calls[i].result;
	return 0;
}

static void test_gather_runs_calls_concurrently_and_stores_results(void **state)
{
	struct gathered g;

	(void)state;
	memset(&g, 0x55, sizeof(g));
	assert_int_equal(t_run(gather_sleeps, &g), 0);
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.results[0], 60);
	assert_int_equal(g.results[1], 30);
	assert_int_equal(g.results[2], 60);
	assert_true(g.ns >= 60 * WEFT_MSEC);
	assert_true(g.ns < 150 * WEFT_MSEC); /* 150 sequential: it ran concurrently */
}

static int fail_with(void *arg)
{
	weft_yield();
	return (int)(intptr_t)arg;
}

static int fail_late(void *arg)
{
	weft_sleep(20 * WEFT_MSEC);
	return (int)(intptr_t)arg;
}

static int gather_failures(void *arg)
{
	struct gathered *g = arg;
	weft_call calls[4] = {
		{ .fn = fail_with, .arg = (void *)(intptr_t)3 },
		{ .fn = fail_late, .arg = (void *)(intptr_t)-ENOENT }, /* fails last... */
		{ .fn = fail_with, .arg = (void *)(intptr_t)-EIO },    /* ...this one first */
		{ .fn = fail_late, .arg = (void *)(intptr_t)7 },
	};

	g->rc = weft_gather(calls, 4);
	for (int i = 0; i < 4; i++)
		g->results[i] = calls[i].result;
	return 0;
}

static void test_gather_returns_first_negative_in_call_order(void **state)
{
	struct gathered g;

	(void)state;
	memset(&g, 0x55, sizeof(g));
	assert_int_equal(t_run(gather_failures, &g), 0);
	assert_int_equal(g.rc, -ENOENT); /* call order, not completion order */
	assert_int_equal(g.results[0], 3);
	assert_int_equal(g.results[1], -ENOENT);
	assert_int_equal(g.results[2], -EIO);
	assert_int_equal(g.results[3], 7); /* a failure does not cancel the others */
}

static int gather_bad_input(void *arg)
{
	int *rc = arg;
	weft_call calls[2] = { { .fn = fail_with }, { .fn = NULL } };

	rc[0] = weft_gather(NULL, 1);
	rc[1] = weft_gather(calls, 2);
	rc[2] = weft_gather(NULL, 0);
	rc[3] = weft_gather(calls, 0);
	return 0;
}

static void test_gather_fails_einval_on_bad_calls_and_allows_zero(void **state)
{
	int rc[4] = { 1, 1, 1, 1 };

	(void)state;
	assert_int_equal(t_run(gather_bad_input, rc), 0);
	assert_int_equal(rc[0], -EINVAL);
	assert_int_equal(rc[1], -EINVAL);
	assert_int_equal(rc[2], 0);
	assert_int_equal(rc[3], 0);
}

static int gather_hour_sleeps(void *arg)
{
	struct gathered *g = arg;
	weft_call calls[3];

	for (int i = 0; i < 3; i++)
		calls[i] = (weft_call){ .fn = sleep_ms_return, .arg = (void *)(intptr_t)3600000 };
	g->rc = weft_gather(calls, 3);
	for (int i = 0; i < 3; i++)
		g->results[i] = calls[i].result;
	return g->rc;
}

static int cancel_gatherer(void *arg)
{
	struct gathered *g = arg;
	weft_fiber *f;
	int result = 0;
	int64_t t0 = weft_now();

	if (weft_spawn(NULL, gather_hour_sleeps, g, &f) < 0)
		return -1;
	weft_sleep(5 * WEFT_MSEC);
	weft_cancel(f);
	if (weft_join(f, &result) < 0)
		return -2;
	g->ns = weft_now() - t0;
	return result;
}

static void test_cancel_of_gatherer_cancels_every_call_and_waits(void **state)
{
	struct gathered g;
	weft_stats st;

	(void)state;
	memset(&g, 0x55, sizeof(g));
	assert_int_equal(t_run_cfg(NULL, cancel_gatherer, &g, &st), -ECANCELED);
	for (int i = 0; i < 3; i++)
		assert_int_equal(g.results[i], -ECANCELED);
	assert_true(g.ns < 10 * WEFT_SEC);
	assert_int_equal(st.fibers, 0);
}

static int gather_already_cancelled(void *arg)
{
	struct gathered *g = arg;
	weft_call calls[2] = { { .fn = fail_with }, { .fn = fail_with } };

	weft_cancel(weft_self());
	g->rc = weft_gather(calls, 2);
	g->results[0] = calls[0].result;
	g->results[1] = calls[1].result;
	return 0;
}

static void test_gather_when_cancelled_runs_nothing(void **state)
{
	struct gathered g;
	weft_stats st;

	(void)state;
	memset(&g, 0x55, sizeof(g));
	assert_int_equal(t_run_cfg(NULL, gather_already_cancelled, &g, &st), 0);
	assert_int_equal(g.rc, -ECANCELED);
	assert_int_equal(g.results[0], -ECANCELED);
	assert_int_equal(g.results[1], -ECANCELED);
	assert_int_equal(st.spawned, 1);
}

static int gather_under_deadline(void *arg)
{
	struct gathered *g = arg;
	weft_call calls[2] = {
		{ .fn = sleep_ms_return, .arg = (void *)(intptr_t)5 },
		{ .fn = sleep_ms_return, .arg = (void *)(intptr_t)3600000 },
	};
	int64_t t0 = weft_now();

	weft_set_deadline(t0 + 30 * WEFT_MSEC);
	g->rc = weft_gather(calls, 2);
	g->ns = weft_now() - t0;
	g->results[0] = calls[0].result;
	g->results[1] = calls[1].result;
	return 0;
}

static void test_gather_children_inherit_the_deadline(void **state)
{
	struct gathered g;

	(void)state;
	memset(&g, 0x55, sizeof(g));
	assert_int_equal(t_run(gather_under_deadline, &g), 0);
	assert_int_equal(g.rc, -ETIMEDOUT);
	assert_int_equal(g.results[0], 5);
	assert_int_equal(g.results[1], -ETIMEDOUT);
	assert_true(g.ns >= 30 * WEFT_MSEC);
	assert_true(g.ns < 10 * WEFT_SEC);
}

static int nested_leaf(void *arg)
{
	return weft_sleep(WEFT_MSEC) < 0 ? -1 : (int)(intptr_t)arg;
}

static int nested_gather(void *arg)
{
	weft_call calls[10];
	int sum = 0;

	for (int i = 0; i < 10; i++)
		calls[i] =
		    (weft_call){ .fn = nested_leaf, .arg = (void *)(intptr_t)(i + (intptr_t)arg) };
	if (weft_gather(calls, 10) < 0)
		return -1;
	for (int i = 0; i < 10; i++)
		sum += calls[i].result;
	return sum;
}

static int gather_of_gathers(void *arg)
{
	weft_call calls[10];
	int *sum = arg;

	for (int i = 0; i < 10; i++)
		calls[i] = (weft_call){ .fn = nested_gather, .arg = (void *)(intptr_t)(i * 10) };
	if (weft_gather(calls, 10) < 0)
		return -1;
	for (int i = 0; i < 10; i++)
		*sum += calls[i].result;
	return 0;
}

static void test_gather_nests(void **state)
{
	int sum = 0;

	(void)state;
	assert_int_equal(t_run(gather_of_gathers, &sum), 0);
	assert_int_equal(sum, 99 * 100 / 2);
}

static int gather_past_max(void *arg)
{
	weft_call calls[10];
	struct gathered *g = arg;

	for (int i = 0; i < 10; i++)
		calls[i] = (weft_call){ .fn = sleep_ms_return, .arg = (void *)(intptr_t)3600000 };
	g->rc = weft_gather(calls, 10);
	g->results[0] = calls[0].result;
	g->results[1] = calls[4].result; /* the last one spawned, cancelled */
	g->results[2] = calls[5].result; /* the first refused */
	g->results[3] = calls[9].result;
	return 0;
}

static void test_gather_partial_spawn_failure_cancels_and_reports(void **state)
{
	weft_config cfg;
	struct gathered g;

	(void)state;
	memset(&g, 0x55, sizeof(g));
	weft_config_init(&cfg);
	cfg.max_fibers = 6; /* the caller + 5 children */
	assert_int_equal(t_run_cfg(&cfg, gather_past_max, &g, NULL), 0);
	assert_int_equal(g.rc, -EAGAIN); /* why not all could run, not a cancel it caused */
	assert_int_equal(g.results[0], -ECANCELED);
	assert_int_equal(g.results[1], -ECANCELED);
	assert_int_equal(g.results[2], -EAGAIN);
	assert_int_equal(g.results[3], -EAGAIN);
}

/* ---- weft_first ------------------------------------------------------------------- */

struct firsts {
	int rc;
	int results[2];
	int ran;
	int sv[2];
};

static int recv_one(void *arg)
{
	struct firsts *f = arg;
	char c;
	ssize_t n = weft_recv(f->sv[0], &c, 1, 0);

	return n < 0 ? (int)n : (int)c;
}

static int send_later(void *arg)
{
	struct firsts *f = arg;

	weft_sleep(2 * WEFT_MSEC);
	return weft_send(f->sv[1], "A", 1, 0) == 1 ? 0 : -1;
}

static int first_sleep_vs_recv(void *arg)
{
	struct firsts *f = arg;
	weft_first_call calls[2] = { { sleep_ms_return, (void *)(intptr_t)5, 0 },
				     { recv_one, f, 0 } };

	f->rc = weft_first(calls, 2);
	f->results[0] = calls[0].result;
	f->results[1] = calls[1].result;
	return 0;
}

static int first_recv_wins(void *arg)
{
	struct firsts *f = arg;
	weft_first_call calls[2] = { { sleep_ms_return, (void *)(intptr_t)5000, 0 },
				     { recv_one, f, 0 } };

	if (weft_go(send_later, f) < 0)
		return -ENOMEM;
	f->rc = weft_first(calls, 2);
	f->results[0] = calls[0].result;
	f->results[1] = calls[1].result;
	return 0;
}

static void test_first_of_a_sleep_and_a_recv(void **state)
{
	struct firsts f = { .rc = 99 };

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f.sv), 0);
	assert_int_equal(t_run(first_sleep_vs_recv, &f), 0);
	assert_int_equal(f.rc, 0); /* the sleep */
	assert_int_equal(f.results[0], 5);
	assert_int_equal(f.results[1], -ECANCELED);
	assert_int_equal(t_run(first_recv_wins, &f), 0);
	assert_int_equal(f.rc, 1); /* the recv */
	assert_int_equal(f.results[1], 'A');
	assert_int_equal(f.results[0], -ECANCELED);
	close(f.sv[0]);
	close(f.sv[1]);
}

/* Returns 7 whatever its sleep says: it finishes on its own while being cancelled. */
static int stubborn(void *arg)
{
	(void)arg;
	weft_sleep(5 * WEFT_SEC);
	return 7;
}

static int quick(void *arg)
{
	(void)arg;
	weft_yield();
	return 5;
}

static int first_keeps_results(void *arg)
{
	struct firsts *f = arg;
	weft_first_call calls[2] = { { stubborn, NULL, 0 }, { quick, NULL, 0 } };

	f->rc = weft_first(calls, 2);
	f->results[0] = calls[0].result;
	f->results[1] = calls[1].result;
	return 0;
}

static int first_past_deadline(void *arg)
{
	struct firsts *f = arg;
	weft_first_call calls[2] = { { sleep_ms_return, (void *)(intptr_t)5000, 0 },
				     { sleep_ms_return, (void *)(intptr_t)5000, 0 } };

	weft_set_timeout(3 * WEFT_MSEC);
	f->rc = weft_first(calls, 2);
	f->results[0] = calls[0].result;
	f->results[1] = calls[1].result;
	return 0;
}

static void test_first_keeps_every_result_and_follows_the_deadline(void **state)
{
	struct firsts f = { .rc = 99 };

	(void)state;
	assert_int_equal(t_run(first_keeps_results, &f), 0);
	assert_int_equal(f.rc, 1);
	assert_int_equal(f.results[1], 5);
	assert_int_equal(f.results[0], 7);
	assert_int_equal(t_run(first_past_deadline, &f), 0);
	assert_int_equal(f.rc, -ETIMEDOUT);
	assert_int_equal(f.results[0], -ETIMEDOUT);
	assert_int_equal(f.results[1], -ETIMEDOUT);
}

static int counted(void *arg)
{
	((struct firsts *)arg)->ran++;
	return 0;
}

static int first_in_cancelled(void *arg)
{
	struct firsts *f = arg;
	weft_first_call calls[2] = { { sleep_ms_return, (void *)(intptr_t)5000, 0 },
				     { sleep_ms_return, (void *)(intptr_t)5000, 0 } };

	f->rc = weft_first(calls, 2);
	f->results[0] = calls[0].result;
	f->results[1] = calls[1].result;
	return 0;
}

static int first_cancel_main(void *arg)
{
	struct firsts *f = arg;
	weft_fiber *fib;
	weft_first_call none[1] = { { counted, f, 0 } };

	if (weft_spawn(NULL, first_in_cancelled, f, &fib) < 0)
		return -ENOMEM;
	weft_sleep(2 * WEFT_MSEC);
	weft_cancel(fib);
	weft_join(fib, NULL);
	/* Cancelled at entry: nothing runs. */
	weft_cancel(weft_self());
	if (weft_first(none, 1) != -ECANCELED || none[0].result != -ECANCELED || f->ran != 0)
		return -1;
	return 0;
}

static void test_first_when_the_caller_is_cancelled(void **state)
{
	struct firsts f = { .rc = 99 };

	(void)state;
	assert_int_equal(t_run(first_cancel_main, &f), 0);
	assert_int_equal(f.rc, -ECANCELED);
	assert_int_equal(f.results[0], -ECANCELED);
	assert_int_equal(f.results[1], -ECANCELED);
}

static int first_bad(void *arg)
{
	weft_first_call calls[2] = { { quick, NULL, 0 }, { NULL, NULL, 0 } };

	(void)arg;
	if (weft_first(NULL, 1) != -EINVAL || weft_first(calls, 0) != -EINVAL ||
	    weft_first(calls, 2) != -EINVAL)
		return -1;
	return 0;
}

static void test_first_bad_input(void **state)
{
	weft_first_call calls[1] = { { quick, NULL, 0 } };

	(void)state;
	assert_int_equal(weft_first(calls, 1), -EPERM);
	assert_int_equal(t_run(first_bad, NULL), 0);
}

/* ---- independent groups: a server's connections ------------------------------------ */

#define CLIENTS 200

struct server {
	weft_group *g;
	int lfd, port;
	int accepted, echoed, client_bad;
};

static int conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char c;
	ssize_t n = weft_recv(fd, &c, 1, 0);

	if (n == 1)
		n = weft_send(fd, &c, 1, 0);
	weft_close(fd);
	return n == 1 ? 0 : (n == 0 ? -ECONNRESET : (int)n); /* the natural return n */
}

static int acceptor(void *arg)
{
	struct server *s = arg;

	while (s->accepted < CLIENTS + 1) {
		int fd = weft_accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			return fd;
		s->accepted++;
		if (weft_group_spawn(s->g, conn_main, (void *)(intptr_t)fd) < 0) {
			weft_close(fd);
			return -1;
		}
	}
	return 0;
}

/* Client i: odd ones reset the connection, even ones get their byte echoed. */
static int client(void *arg)
{
	struct server *s = arg;
	static int next;
	int i = next++;
	int fd = weft_tcp_dial("127.0.0.1", s->port);
	char c = 'x';

	if (fd < 0)
		return fd;
	if (i % 2) {
		struct linger lg = { 1, 0 };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		weft_close(fd); /* RST */
		return 0;
	}
	if (weft_send(fd, &c, 1, 0) != 1 || weft_recv(fd, &c, 1, 0) != 1 || c != 'x')
		s->client_bad++;
	else
		s->echoed++;
	weft_close(fd);
	return 0;
}

static int server_main(void *arg)
{
	struct server *s = arg;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	weft_fiber *acc;
	int first = 0;

	if (weft_group_create_flags(&s->g, WEFT_GROUP_INDEPENDENT) < 0)
		return -ENOMEM;
	s->lfd = weft_tcp_listen("127.0.0.1", 0, 512, 0);
	if (s->lfd < 0 || getsockname(s->lfd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (weft_spawn(NULL, acceptor, s, &acc) < 0)
		return -ENOMEM;
	for (int i = 0; i < CLIENTS; i++) {
		if (weft_go(client, s) < 0)
			return -ENOMEM;
		if (i % 20 == 19)
			weft_sleep(WEFT_MSEC);
	}
	while (s->echoed + s->client_bad < CLIENTS / 2 || weft_group_running(s->g) > 0)
		weft_sleep(WEFT_MSEC);
	/* After 100 failures the group still takes members: one more client. */
	if (weft_group_failures(s->g, &first) != CLIENTS / 2 || first >= 0)
		return -2;
	weft_go(client, s); /* an even one: i == CLIENTS */
	weft_join(acc, NULL);
	if (weft_group_wait(s->g) != 0)
		return -3;
	weft_close(s->lfd);
	weft_group_destroy(s->g);
	return 0;
}

static void test_independent_group_survives_failing_members_and_keeps_accepting(void **state)
{
	struct server s = { .lfd = -1 };

	(void)state;
	assert_int_equal(t_run(server_main, &s), 0);
	assert_int_equal(s.accepted, CLIENTS + 1);
	assert_int_equal(s.echoed, CLIENTS / 2 + 1);
	assert_int_equal(s.client_bad, 0);
}

static int fail_now(void *arg)
{
	(void)arg;
	return -EIO;
}

static int independent_cancel_main(void *arg)
{
	weft_group *g;
	int first = 1;

	(void)arg;
	if (weft_group_create_flags(&g, 0x2) != -EINVAL ||
	    weft_group_create_flags(NULL, 0) != -EINVAL)
		return -1;
	if (weft_group_create_flags(&g, WEFT_GROUP_INDEPENDENT) < 0)
		return -ENOMEM;
	if (weft_group_failures(g, &first) != 0 || first != 0)
		return -2;
	weft_group_spawn(g, fail_now, NULL);
	weft_group_spawn(g, sleep_ms_return, (void *)(intptr_t)5000);
	weft_group_spawn(g, sleep_ms_return, (void *)(intptr_t)5000);
	weft_sleep(WEFT_MSEC);
	if (weft_group_running(g) != 2 || weft_group_failures(g, &first) != 1 || first != -EIO)
		return -3;
	weft_group_cancel(g);
	if (weft_group_wait(g) != -ECANCELED || weft_group_spawn(g, fail_now, NULL) != -ECANCELED)
		return -4;
	if (weft_group_failures(g, NULL) != 3) /* the two sleeps returned -ECANCELED */
		return -5;
	weft_group_destroy(g);
	return 0;
}

static void test_independent_group_cancel_and_bad_input(void **state)
{
	(void)state;
	assert_int_equal(weft_group_failures(NULL, NULL), 0);
	assert_int_equal(weft_group_running(NULL), 0);
	assert_int_equal(t_run(independent_cancel_main, NULL), 0);
}

/* A member that turns its cancel into another error: the cancelled group still says -ECANCELED. */
static int pipe_on_cancel(void *arg)
{
	(void)arg;
	return weft_sleep(WEFT_SEC) == -ECANCELED ? -EPIPE : 0;
}

static int cancel_then_fail_main(void *arg)
{
	weft_group *g;
	int rc;

	(void)arg;
	if (weft_group_create(&g) != 0)
		return -1;
	weft_group_spawn(g, pipe_on_cancel, NULL);
	weft_group_spawn(g, pipe_on_cancel, NULL);
	weft_sleep(WEFT_MSEC);
	weft_group_cancel(g);
	rc = weft_group_wait(g);
	weft_group_destroy(g);
	return rc;
}

static void test_cancelled_group_waits_ecanceled_whatever_members_return(void **state)
{
	(void)state;
	assert_int_equal(t_run(cancel_then_fail_main, NULL), -ECANCELED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gather_runs_calls_concurrently_and_stores_results),
		cmocka_unit_test(test_gather_returns_first_negative_in_call_order),
		cmocka_unit_test(test_gather_fails_einval_on_bad_calls_and_allows_zero),
		cmocka_unit_test(test_cancel_of_gatherer_cancels_every_call_and_waits),
		cmocka_unit_test(test_gather_when_cancelled_runs_nothing),
		cmocka_unit_test(test_gather_children_inherit_the_deadline),
		cmocka_unit_test(test_gather_nests),
		cmocka_unit_test(test_gather_partial_spawn_failure_cancels_and_reports),
		cmocka_unit_test(test_first_of_a_sleep_and_a_recv),
		cmocka_unit_test(test_first_keeps_every_result_and_follows_the_deadline),
		cmocka_unit_test(test_first_when_the_caller_is_cancelled),
		cmocka_unit_test(test_first_bad_input),
		cmocka_unit_test(
		    test_independent_group_survives_failing_members_and_keeps_accepting),
		cmocka_unit_test(test_independent_group_cancel_and_bad_input),
		cmocka_unit_test(test_cancelled_group_waits_ecanceled_whatever_members_return),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
