/* SPDX-License-Identifier: MIT */
/* Time: sleep, sleep_until, deadlines, cancel, both timer modes, many sleepers. */
#include "helpers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t timer_mode; /* each case runs in both modes: see main */

static int run_timed(weft_fn fn, void *arg, weft_stats *st)
{
	weft_config cfg;

	weft_config_init(&cfg);
	cfg.timer_mode = timer_mode;
	return t_run_cfg(&cfg, fn, arg, st);
}

static void test_now_is_monotonic_nanoseconds(void **state)
{
	int64_t a = weft_now();
	int64_t b = weft_now();

	(void)state;
	assert_true(a > 0);
	assert_true(b >= a);
	assert_int_equal(WEFT_SEC, 1000 * WEFT_MSEC);
	assert_int_equal(WEFT_MSEC, 1000 * WEFT_USEC);
}

struct slept {
	int rc;
	int64_t ns;
};

static int sleep_20ms(void *arg)
{
	struct slept *s = arg;
	int64_t t0 = weft_now();

	s->rc = weft_sleep(20 * WEFT_MSEC);
	s->ns = weft_now() - t0;
	return 0;
}

static void test_sleep_waits_at_least_its_duration(void **state)
{
	struct slept s = { 1, 0 };

	(void)state;
	assert_int_equal(run_timed(sleep_20ms, &s, NULL), 0);
	assert_int_equal(s.rc, 0);
	assert_true(s.ns >= 20 * WEFT_MSEC);
	assert_true(s.ns < 2 * WEFT_SEC); /* woke at all, on a noisy machine */
}

struct until {
	int past_rc;
	int zero_rc;
	int neg_rc;
	int future_rc;
	int64_t late_ns;
};

static int sleep_untils(void *arg)
{
	struct until *u = arg;
	int64_t target;

	u->past_rc = weft_sleep_until(weft_now() - WEFT_SEC);
	u->zero_rc = weft_sleep(0);
	u->neg_rc = weft_sleep(-1);
	target = weft_now() + 10 * WEFT_MSEC;
	u->future_rc = weft_sleep_until(target);
	u->late_ns = weft_now() - target;
	return 0;
}

static void test_sleep_until_past_returns_and_negative_fails_einval(void **state)
{
	struct until u;

	(void)state;
	memset(&u, 0x55, sizeof(u));
	assert_int_equal(run_timed(sleep_untils, &u, NULL), 0);
	assert_int_equal(u.past_rc, 0);
	assert_int_equal(u.zero_rc, 0);
	assert_int_equal(u.neg_rc, -EINVAL);
	assert_int_equal(u.future_rc, 0);
	assert_true(u.late_ns >= 0);
}

static int order_log[8];
static int order_len;

static int sleep_and_log(void *arg)
{
	int ms = (int)(intptr_t)arg;

	if (weft_sleep(ms * WEFT_MSEC) == 0)
		order_log[order_len++] = ms;
	return 0;
}

static int spawn_sleepers_out_of_order(void *arg)
{
	static const int ms[] = { 30, 10, 40, 20 };

	(void)arg;
	for (int i = 0; i < 4; i++)
		if (weft_go(sleep_and_log, (void *)(intptr_t)ms[i]) < 0)
			return -1;
	return 0;
}

static void test_sleepers_wake_in_deadline_order(void **state)
{
	(void)state;
	order_len = 0;
	assert_int_equal(run_timed(spawn_sleepers_out_of_order, NULL, NULL), 0);
	assert_int_equal(order_len, 4);
	assert_int_equal(order_log[0], 10);
	assert_int_equal(order_log[1], 20);
	assert_int_equal(order_log[2], 30);
	assert_int_equal(order_log[3], 40);
}

struct dl {
	int sleep_rc;
	int nop_rc;
	int after_rc;
	int old_was_forever;
	int64_t woke_late_ns;
	int64_t deadline_read;
	int64_t deadline;
};

static int sleep_past_deadline(void *arg)
{
	struct dl *d = arg;

	d->deadline = weft_now() + 15 * WEFT_MSEC;
	d->old_was_forever = weft_set_deadline(d->deadline) == WEFT_FOREVER;
	d->deadline_read = weft_deadline();
	d->sleep_rc = weft_sleep(10 * WEFT_SEC);
	d->woke_late_ns = weft_now() - d->deadline;
	d->nop_rc = weft_nop(); /* past the deadline: every blocking call fails */
	weft_set_deadline(WEFT_FOREVER);
	d->after_rc = weft_nop();
	return 0;
}

static void test_sleep_fails_etimedout_at_deadline(void **state)
{
	struct dl d;

	(void)state;
	memset(&d, 0x55, sizeof(d));
	assert_int_equal(run_timed(sleep_past_deadline, &d, NULL), 0);
	assert_true(d.old_was_forever);
	assert_int_equal(d.deadline_read, d.deadline);
	assert_int_equal(d.sleep_rc, -ETIMEDOUT);
	assert_true(d.woke_late_ns >= 0);
	assert_true(d.woke_late_ns < 2 * WEFT_SEC);
	assert_int_equal(d.nop_rc, -ETIMEDOUT);
	assert_int_equal(d.after_rc, 0);
}

static int short_sleep_under_deadline(void *arg)
{
	struct dl *d = arg;

	weft_set_deadline(weft_now() + 10 * WEFT_SEC);
	d->sleep_rc = weft_sleep(5 * WEFT_MSEC); /* ends well before the deadline */
	return 0;
}

static void test_sleep_shorter_than_deadline_returns_zero(void **state)
{
	struct dl d;

	(void)state;
	d.sleep_rc = 1;
	assert_int_equal(run_timed(short_sleep_under_deadline, &d, NULL), 0);
	assert_int_equal(d.sleep_rc, 0);
}

static int join_past_deadline(void *arg)
{
	int *rc = arg;
	weft_fiber *f;
	int result = 0;

	if (weft_spawn(NULL, sleep_and_log, (void *)(intptr_t)60, &f) < 0)
		return -1;
	weft_set_deadline(weft_now() + 10 * WEFT_MSEC);
	rc[0] = weft_join(f, NULL); /* times out; f stays joinable */
	weft_set_deadline(WEFT_FOREVER);
	rc[1] = weft_join(f, &result);
	return result;
}

static void test_join_fails_etimedout_and_stays_joinable(void **state)
{
	int rc[2] = { 1, 1 };

	(void)state;
	order_len = 0;
	assert_int_equal(run_timed(join_past_deadline, rc, NULL), 0);
	assert_int_equal(rc[0], -ETIMEDOUT);
	assert_int_equal(rc[1], 0);
	assert_int_equal(order_len, 1);
}

struct cancel_sleep {
	int rc;
	int64_t ns;
};

static int sleep_hour(void *arg)
{
	struct cancel_sleep *c = arg;
	int64_t t0 = weft_now();

	c->rc = weft_sleep(3600 * WEFT_SEC);
	c->ns = weft_now() - t0;
	return 0;
}

static int cancel_sleeping(void *arg)
{
	weft_fiber *f;

	if (weft_spawn(NULL, sleep_hour, arg, &f) < 0)
		return -1;
	weft_sleep(5 * WEFT_MSEC);
	weft_cancel(f);
	return weft_join(f, NULL);
}

static void test_cancel_wakes_sleeping_fiber_with_ecanceled(void **state)
{
	struct cancel_sleep c = { 1, 0 };
	weft_stats st;

	(void)state;
	assert_int_equal(run_timed(cancel_sleeping, &c, &st), 0);
	assert_int_equal(c.rc, -ECANCELED);
	assert_true(c.ns < 10 * WEFT_SEC);
	assert_int_equal(st.inflight, 0);
}

struct many {
	int n;
	int failed;
	int woke;
};

static int sleep_once(void *arg)
{
	struct many *m = arg;
	int rc = weft_sleep(50 * WEFT_MSEC);

	if (rc)
		m->failed = rc;
	else
		m->woke++;
	return 0;
}

static int gather_sleepers(void *arg)
{
	struct many *m = arg;
	weft_call *calls = calloc((size_t)m->n, sizeof(*calls));
	int rc;

	if (!calls)
		return -ENOMEM;
	for (int i = 0; i < m->n; i++)
		calls[i] = (weft_call){ .fn = sleep_once, .arg = m };
	rc = weft_gather(calls, (size_t)m->n);
	free(calls);
	return rc;
}

static void test_100k_concurrent_sleepers_share_few_enters(void **state)
{
	struct many m = { .n = 100000 };
	weft_config cfg;
	weft_stats st;

	(void)state;
	weft_config_init(&cfg);
	cfg.timer_mode = timer_mode;
	/* One page each: 100k fibers in 400 MiB (ASan's frames need more). */
#if defined(WEFT_TEST_SANITIZED)
	cfg.stack_size = 16384;
#else
	cfg.stack_size = 4096;
#endif
	cfg.sq_entries = 4096;
	assert_int_equal(t_run_cfg(&cfg, gather_sleepers, &m, &st), 0);
	assert_int_equal(m.failed, 0);
	assert_int_equal(m.woke, m.n);
	assert_int_equal(st.fibers_peak, (uint64_t)m.n + 1);
	assert_int_equal(st.inflight, 0);
	print_message("%d sleepers: %llu enters\n", m.n, (unsigned long long)st.enters);
	if (timer_mode == WEFT_TIMERS_HEAP)
		/* One kernel wait per tick, not per sleeper (the bound: 1/100). */
		assert_true(st.enters <= (uint64_t)m.n / 100);
	else
		assert_true(st.sqes >= (uint64_t)m.n);
}

static int run_both_modes(const struct CMUnitTest *tests, size_t n)
{
	int failed = 0;

	timer_mode = WEFT_TIMERS_HEAP;
	failed += _cmocka_run_group_tests("time (heap timers)", tests, n, NULL, NULL);
	timer_mode = WEFT_TIMERS_KERNEL;
	failed += _cmocka_run_group_tests("time (kernel timeouts)", tests, n, NULL, NULL);
	return failed;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_now_is_monotonic_nanoseconds),
		cmocka_unit_test(test_sleep_waits_at_least_its_duration),
		cmocka_unit_test(test_sleep_until_past_returns_and_negative_fails_einval),
		cmocka_unit_test(test_sleepers_wake_in_deadline_order),
		cmocka_unit_test(test_sleep_fails_etimedout_at_deadline),
		cmocka_unit_test(test_sleep_shorter_than_deadline_returns_zero),
		cmocka_unit_test(test_join_fails_etimedout_and_stays_joinable),
		cmocka_unit_test(test_cancel_wakes_sleeping_fiber_with_ecanceled),
		cmocka_unit_test(test_100k_concurrent_sleepers_share_few_enters),
	};

	if (!t_io_uring_usable())
		return 77;
	return run_both_modes(tests, sizeof(tests) / sizeof(tests[0]));
}
