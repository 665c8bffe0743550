/* SPDX-License-Identifier: MIT */
/*
 * Issue 11, defect 3: weft_sleep(INT64_MAX) returned 0 at once (now + ns
 * overflowed to a time in the past). It now sleeps until the end of time,
 * clamped: the fiber's deadline or a cancel ends it.
 */
#include "../helpers.h"

#include <errno.h>
#include <stdint.h>

struct ctx {
	int rc;
	int64_t waited;
};

static int sleep_max_under_deadline(void *arg)
{
	struct ctx *c = arg;
	int64_t t0 = weft_now();

	weft_set_deadline(t0 + 20 * WEFT_MSEC);
	c->rc = weft_sleep(INT64_MAX);
	c->waited = weft_now() - t0;
	return 0;
}

static int sleep_max(void *arg)
{
	struct ctx *c = arg;

	c->rc = weft_sleep(INT64_MAX);
	return 0;
}

static int cancel_sleeper(void *arg)
{
	struct ctx *c = arg;
	weft_fiber *f;

	if (weft_spawn(NULL, sleep_max, c, &f) < 0)
		return -ENOMEM;
	weft_sleep(10 * WEFT_MSEC);
	weft_cancel(f);
	return weft_join(f, NULL);
}

static void test_sleep_int64_max_waits_for_the_deadline(void **state)
{
	struct ctx c = { 0 };

	(void)state;
	assert_int_equal(t_run(sleep_max_under_deadline, &c), 0);
	assert_int_equal(c.rc, -ETIMEDOUT);
	assert_true(c.waited >= 20 * WEFT_MSEC);
}

static void test_sleep_int64_max_ends_when_cancelled(void **state)
{
	struct ctx c = { .rc = 1 };

	(void)state;
	assert_int_equal(t_run(cancel_sleeper, &c), 0);
	assert_int_equal(c.rc, -ECANCELED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sleep_int64_max_waits_for_the_deadline),
		cmocka_unit_test(test_sleep_int64_max_ends_when_cancelled),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
