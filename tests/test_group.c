/* SPDX-License-Identifier: MIT */
/* weft_gather: concurrency, results, the error rule, cancel, deadlines. */
#include "helpers.h"

#include <errno.h>
#include <string.h>

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
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
