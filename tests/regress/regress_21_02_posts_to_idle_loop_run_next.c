/* SPDX-License-Identifier: MIT */
/*
 * Issue 21, defect 2: posts to an idle plain loop never ran in its next
 * weft_loop_run: run() returned when no fiber was alive and nothing was in
 * flight, before it looked at the inbox, so they ran only at destroy,
 * already cancelled. The same for weft_spawn(loop, fn, arg, NULL) from
 * another thread before the loop's first run.
 *
 * Checked: a post and a detached spawn from another thread before the first
 * run both run in it, not cancelled; a post made while the loop is idle
 * between two runs runs in the second.
 */
#include "../helpers.h"

#include <pthread.h>
#include <stdatomic.h>

static _Atomic int ran, cancelled;

static int count(void *arg)
{
	(void)arg;
	atomic_fetch_add(&ran, 1);
	if (weft_cancelled())
		atomic_fetch_add(&cancelled, 1);
	return 0;
}

static void *post_and_spawn(void *arg)
{
	weft_loop *l = arg;

	if (weft_loop_post(l, count, NULL) != 0 || weft_spawn(l, count, NULL, NULL) != 0)
		return (void *)1;
	return NULL;
}

static void test_posts_before_a_run_run_in_it(void **state)
{
	weft_loop *l;
	pthread_t t;
	void *res;

	(void)state;
	assert_int_equal(weft_loop_create(&l, NULL), 0);
	assert_int_equal(pthread_create(&t, NULL, post_and_spawn, l), 0);
	pthread_join(t, &res);
	assert_null(res);
	assert_int_equal(weft_loop_run(l), 0);
	assert_int_equal(atomic_load(&ran), 2);
	/* Idle again: a post now waits for the next run, and runs in it. */
	assert_int_equal(pthread_create(&t, NULL, post_and_spawn, l), 0);
	pthread_join(t, &res);
	assert_null(res);
	assert_int_equal(atomic_load(&ran), 2);
	assert_int_equal(weft_loop_run(l), 0);
	assert_int_equal(atomic_load(&ran), 4);
	weft_loop_destroy(l);
	assert_int_equal(atomic_load(&cancelled), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_posts_before_a_run_run_in_it),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
