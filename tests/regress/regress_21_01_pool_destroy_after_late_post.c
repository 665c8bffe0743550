/* SPDX-License-Identifier: MIT */
/*
 * Issue 21, defect 1: a weft_loop_post or weft_pool_cancel (documented "any
 * thread") that reached a pool after weft_pool_run had returned made
 * weft_pool_destroy wake every member through loops already NULL or freed
 * (SIGSEGV); fibers run during the destroy that spawned on or posted to a
 * sibling touched a dead loop (ASan: heap-use-after-free in weft_loop_post).
 *
 * Checked, 40 times over: after a run, another thread posts to every loop
 * fibers that, during the destroy, spawn a joinable fiber on a sibling and
 * join it, post to a sibling, and sleep; and cancels the pool. The destroy
 * finishes, every late fiber ran (and saw its cancel), the sibling spawn
 * was refused as the loop is being destroyed, the post -ESHUTDOWN.
 */
#include "../helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define LOOPS 3
#define ROUNDS 40

static weft_pool *pool;
static _Atomic int late_ran, spawn_refused, post_refused, other;

static int nothing(void *arg)
{
	(void)arg;
	return 0;
}

/* Runs during the destroy, on loop i: reach for loop i + 1. */
static int reach_sibling(void *arg)
{
	unsigned i = (unsigned)(uintptr_t)arg;
	weft_loop *next = weft_pool_loop(pool, (i + 1) % LOOPS);
	weft_fiber *f;
	int rc;

	atomic_fetch_add(&late_ran, 1);
	rc = weft_spawn(next, nothing, NULL, &f);
	if (rc == 0)
		rc = weft_join(f, NULL);
	if (rc == -ECANCELED)
		atomic_fetch_add(&spawn_refused, 1);
	else if (rc != 0)
		atomic_fetch_add(&other, 1);
	rc = weft_loop_post(next, nothing, NULL);
	if (rc == -ESHUTDOWN)
		atomic_fetch_add(&post_refused, 1);
	else if (rc != 0)
		atomic_fetch_add(&other, 1);
	if (weft_sleep(10 * WEFT_SEC) != -ECANCELED)
		atomic_fetch_add(&other, 1);
	return 0;
}

static void *late_poster(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < LOOPS; i++)
		if (weft_loop_post(weft_pool_loop(pool, i), reach_sibling, (void *)(uintptr_t)i) <
		    0)
			atomic_fetch_add(&other, 1);
	weft_pool_cancel(pool);
	return NULL;
}

static int brief(void *arg)
{
	(void)arg;
	return weft_sleep(WEFT_MSEC);
}

static void test_destroy_after_late_posts_and_cancel(void **state)
{
	(void)state;
	for (int round = 0; round < ROUNDS; round++) {
		pthread_t t;

		assert_int_equal(weft_pool_create(&pool, LOOPS, NULL), 0);
		assert_int_equal(weft_pool_run(pool, brief, NULL), 0);
		assert_int_equal(pthread_create(&t, NULL, late_poster, NULL), 0);
		pthread_join(t, NULL);
		weft_pool_destroy(pool);
		pool = NULL;
	}
	assert_int_equal(atomic_load(&other), 0);
	assert_int_equal(atomic_load(&late_ran), ROUNDS * LOOPS);
	assert_int_equal(atomic_load(&post_refused), ROUNDS * LOOPS);
	/* A spawn on a sibling is refused once that sibling is being destroyed. */
	assert_true(atomic_load(&spawn_refused) <= ROUNDS * LOOPS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_destroy_after_late_posts_and_cancel),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
