/* SPDX-License-Identifier: MIT */
/* Pools of loops: posts from any thread, pool runs, gathers spread, cancel, shutdown. */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- posts from foreign threads ---------------------------------------------------- */

#define POSTERS 4
#define PER_POSTER 50000

static weft_pool *the_pool;
static _Atomic unsigned char seen[POSTERS * PER_POSTER];
static _Atomic long ran;
static _Atomic int post_errors;

static int count_post(void *arg)
{
	size_t slot = (size_t)(uintptr_t)arg;

	atomic_fetch_add(&seen[slot], 1);
	atomic_fetch_add(&ran, 1);
	return 0;
}

static void *poster(void *arg)
{
	size_t t = (size_t)(uintptr_t)arg;

	for (size_t i = 0; i < PER_POSTER; i++) {
		size_t slot = t * PER_POSTER + i;
		weft_loop *to =
		    weft_pool_loop(the_pool, (unsigned)(slot % weft_pool_size(the_pool)));
		int rc;

		while ((rc = weft_loop_post(to, count_post, (void *)(uintptr_t)slot)) == -ENOMEM)
			usleep(100);
		if (rc != 0)
			atomic_fetch_add(&post_errors, 1);
	}
	return NULL;
}

static int wait_for_posters(void *arg)
{
	pthread_t tids[POSTERS];

	(void)arg;
	if (weft_loop_index() != 0)
		return 0; /* the other loops idle, waiting for posts */
	for (size_t t = 0; t < POSTERS; t++)
		if (pthread_create(&tids[t], NULL, poster, (void *)(uintptr_t)t) != 0)
			return -EAGAIN;
	while (atomic_load(&ran) < (long)POSTERS * PER_POSTER && atomic_load(&post_errors) == 0)
		weft_sleep(WEFT_MSEC);
	for (size_t t = 0; t < POSTERS; t++)
		pthread_join(tids[t], NULL);
	return 0;
}

static void test_posts_from_four_threads_none_lost_none_twice(void **state)
{
	(void)state;
	assert_int_equal(weft_pool_create(&the_pool, 2, NULL), 0);
	assert_int_equal(weft_pool_size(the_pool), 2);
	assert_int_equal(weft_pool_run(the_pool, wait_for_posters, NULL), 0);
	assert_int_equal(atomic_load(&post_errors), 0);
	assert_int_equal(atomic_load(&ran), (long)POSTERS * PER_POSTER);
	for (size_t i = 0; i < POSTERS * PER_POSTER; i++)
		if (atomic_load(&seen[i]) != 1)
			fail_msg("post %zu ran %u times", i, (unsigned)atomic_load(&seen[i]));
	weft_pool_destroy(the_pool);
	the_pool = NULL;
}

/* ---- a pool runs fn on every loop and returns the first failure ---------------------- */

static _Atomic unsigned ran_on_mask;

static int mark_and_fail_on_one(void *arg)
{
	(void)arg;
	atomic_fetch_or(&ran_on_mask, 1u << weft_loop_index());
	weft_sleep(WEFT_MSEC);
	return weft_loop_index() == 1 ? -ENOTSUP : 0;
}

static void test_pool_runs_fn_on_every_loop_and_returns_first_failure(void **state)
{
	weft_pool *p;

	(void)state;
	assert_int_equal(weft_pool_create(&p, 3, NULL), 0);
	assert_int_equal(weft_pool_run(p, mark_and_fail_on_one, NULL), -ENOTSUP);
	assert_int_equal(atomic_load(&ran_on_mask), 7);
	assert_non_null(weft_pool_loop(p, 2));
	assert_null(weft_pool_loop(p, 3));
	/* A pool runs again. */
	atomic_store(&ran_on_mask, 0);
	assert_int_equal(weft_pool_run(p, mark_and_fail_on_one, NULL), -ENOTSUP);
	assert_int_equal(atomic_load(&ran_on_mask), 7);
	weft_pool_destroy(p);
	assert_int_equal(weft_main_pool(2, mark_and_fail_on_one, NULL), -ENOTSUP);
}

static void test_pool_bad_arguments(void **state)
{
	weft_pool *p;

	(void)state;
	assert_int_equal(weft_pool_create(NULL, 1, NULL), -EINVAL);
	assert_int_equal(weft_pool_run(NULL, mark_and_fail_on_one, NULL), -EINVAL);
	assert_int_equal(weft_loop_post(NULL, count_post, NULL), -EINVAL);
	assert_int_equal(weft_pool_size(NULL), 0);
	assert_int_equal(weft_pool_create(&p, 0, NULL), 0); /* one per CPU */
	assert_true(weft_pool_size(p) >= 1);
	assert_int_equal(weft_pool_run(p, NULL, NULL), -EINVAL);
	weft_pool_destroy(p);
	weft_pool_destroy(NULL);
	weft_pool_cancel(NULL);
	assert_int_equal(weft_loop_index(), 0);
}

/* ---- weft_pool_gather spreads calls over the loops --------------------------------- */

#define GATHERED 1000

static int where(void *arg)
{
	(void)arg;
	weft_sleep(WEFT_MSEC);
	return weft_loop_index();
}

static int fails(void *arg)
{
	(void)arg;
	return -EIO;
}

static int gather_spread(void *arg)
{
	weft_pool *p = *(weft_pool **)arg;
	weft_call *calls;
	int counts[2] = { 0, 0 };
	int rc;

	if (weft_loop_index() != 0)
		return 0;
	calls = calloc(GATHERED, sizeof(*calls));
	if (!calls)
		return -ENOMEM;
	for (size_t i = 0; i < GATHERED; i++)
		calls[i].fn = where;
	rc = weft_pool_gather(p, calls, GATHERED);
	for (size_t i = 0; i < GATHERED && rc == 0; i++) {
		if (calls[i].result != (int)(i % 2))
			rc = -EBADMSG;
		else
			counts[calls[i].result]++;
	}
	if (rc == 0 && (counts[0] != GATHERED / 2 || counts[1] != GATHERED / 2))
		rc = -EBADMSG;
	if (rc == 0) {
		calls[7].fn = fails;
		rc = weft_pool_gather(p, calls, 10) == -EIO ? 0 : -EBADMSG;
	}
	if (rc == 0 && weft_pool_gather(NULL, calls, 1) != -EINVAL)
		rc = -EBADMSG;
	free(calls);
	return rc;
}

static void test_pool_gather_spreads_calls_and_keeps_the_result_rule(void **state)
{
	weft_pool *p;
	weft_call c = { .fn = where };

	(void)state;
	assert_int_equal(weft_pool_create(&p, 2, NULL), 0);
	assert_int_equal(weft_pool_run(p, gather_spread, &p), 0);
	/* From a loop of no pool, and outside fibers. */
	assert_int_equal(weft_pool_gather(p, &c, 1), -EPERM);
	weft_pool_destroy(p);
}

static int gather_from_foreign_loop(void *arg)
{
	weft_call c = { .fn = where };

	return weft_pool_gather(arg, &c, 1);
}

static void test_pool_gather_from_another_loop_is_exdev(void **state)
{
	weft_pool *p;

	(void)state;
	assert_int_equal(weft_pool_create(&p, 1, NULL), 0);
	assert_int_equal(t_run(gather_from_foreign_loop, p), -EXDEV);
	weft_pool_destroy(p);
}

/* ---- weft_pool_cancel while fibers are parked on every loop ---------------------------- */

static void *cancel_later(void *arg)
{
	usleep(50 * 1000);
	weft_pool_cancel(arg);
	return NULL;
}

static int park_long(void *arg)
{
	(void)arg;
	return weft_sleep(10 * WEFT_SEC);
}

static void test_pool_cancel_reaches_every_loop(void **state)
{
	weft_pool *p;
	pthread_t tid;
	int64_t t0;

	(void)state;
	assert_int_equal(weft_pool_create(&p, 3, NULL), 0);
	assert_int_equal(pthread_create(&tid, NULL, cancel_later, p), 0);
	t0 = weft_now();
	assert_int_equal(weft_pool_run(p, park_long, NULL), -ECANCELED);
	assert_true(weft_now() - t0 < 5 * WEFT_SEC);
	pthread_join(tid, NULL);
	weft_pool_destroy(p);
}

/* ---- shutdown with posts still arriving ----------------------------------------------- */

#define LATE_POSTS 10000

static _Atomic long shut_ran;
static _Atomic int post_in_destroy = 1;

static int count_shut(void *arg)
{
	(void)arg;
	atomic_fetch_add(&shut_ran, 1);
	return 0;
}

static int post_when_cancelled(void *arg);

static void *post_late(void *arg)
{
	for (int i = 0; i < LATE_POSTS; i++)
		if (weft_loop_post(arg, count_shut, NULL) != 0)
			return (void *)1;
	return weft_loop_post(arg, post_when_cancelled, NULL) == 0 ? NULL : (void *)1;
}

/* Parked until destroy cancels it; then it posts to its own, closing loop. */
static int post_when_cancelled(void *arg)
{
	(void)arg;
	if (weft_sleep(10 * WEFT_SEC) == -ECANCELED)
		atomic_store(&post_in_destroy,
			     weft_loop_post(weft_loop_current(), count_shut, NULL));
	return 0;
}

static int brief(void *arg)
{
	(void)arg;
	return weft_sleep(WEFT_MSEC);
}

static void test_pool_shutdown_runs_posts_that_got_in_and_refuses_later_ones(void **state)
{
	weft_pool *p;
	pthread_t tid;
	void *res;

	(void)state;
	assert_int_equal(weft_pool_create(&p, 2, NULL), 0);
	assert_int_equal(weft_pool_run(p, brief, NULL), 0);
	/* The pool is not running: these wait in loop 1's inbox. */
	assert_int_equal(pthread_create(&tid, NULL, post_late, weft_pool_loop(p, 1)), 0);
	pthread_join(tid, &res);
	assert_null(res);
	weft_pool_destroy(p);
	assert_int_equal(atomic_load(&shut_ran), LATE_POSTS);
	assert_int_equal(atomic_load(&post_in_destroy), -ESHUTDOWN);
}

/* ---- a plain loop takes posts while it runs ------------------------------------------- */

static _Atomic int plain_ran;

static int plain_post(void *arg)
{
	(void)arg;
	atomic_fetch_add(&plain_ran, 1);
	return 0;
}

static void *post_to_plain(void *arg)
{
	for (int i = 0; i < 1000; i++)
		if (weft_loop_post(arg, plain_post, NULL) != 0)
			return (void *)1;
	return NULL;
}

static int wait_for_plain_posts(void *arg)
{
	pthread_t tid;
	void *res;

	(void)arg;
	if (pthread_create(&tid, NULL, post_to_plain, weft_loop_current()) != 0)
		return -EAGAIN;
	while (atomic_load(&plain_ran) < 1000)
		weft_sleep(WEFT_MSEC);
	pthread_join(tid, &res);
	return res ? -EIO : 0;
}

static void test_plain_loop_runs_posts_from_another_thread(void **state)
{
	(void)state;
	assert_int_equal(t_run(wait_for_plain_posts, NULL), 0);
	assert_int_equal(atomic_load(&plain_ran), 1000);
}

/* ---- calls on another thread's loop ---------------------------------------------- */

static weft_fiber *_Atomic parked_on_one;
static _Atomic int cross_ran;

static int cross_detached(void *arg)
{
	(void)arg;
	atomic_fetch_add(&cross_ran, 1);
	return 0;
}

static int park_then_note(void *arg)
{
	(void)arg;
	return weft_sleep(WEFT_SEC) == -ECANCELED ? 0 : -EIO;
}

static int cross_loop_calls(void *arg)
{
	weft_pool *p = *(weft_pool **)arg;
	weft_fiber *f = NULL;
	int rc = 0;

	if (weft_loop_index() == 1) {
		/* A joinable fiber here, for loop 0 to try to cancel and join. */
		if (weft_spawn(NULL, park_then_note, NULL, &f) < 0)
			return -EIO;
		atomic_store(&parked_on_one, f);
		weft_sleep(50 * WEFT_MSEC);
		weft_cancel(f);
		return weft_join(f, NULL);
	}
	weft_sleep(10 * WEFT_MSEC);
	if (weft_spawn(weft_pool_loop(p, 1), cross_detached, NULL, NULL) != 0)
		rc = -EBADMSG; /* detached: goes by post */
	if (weft_spawn(weft_pool_loop(p, 1), cross_detached, NULL, &f) != -EXDEV)
		rc = -EBADMSG;
	if (weft_cancel(atomic_load(&parked_on_one)) != -EXDEV)
		rc = -EBADMSG;
	if (weft_join(atomic_load(&parked_on_one), NULL) != -EXDEV)
		rc = -EBADMSG;
	return rc;
}

static void test_calls_on_another_threads_loop_post_or_fail_exdev(void **state)
{
	weft_pool *p;

	(void)state;
	assert_int_equal(weft_pool_create(&p, 2, NULL), 0);
	assert_int_equal(weft_pool_run(p, cross_loop_calls, &p), 0);
	assert_int_equal(atomic_load(&cross_ran), 1);
	weft_pool_destroy(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_posts_from_four_threads_none_lost_none_twice),
		cmocka_unit_test(test_pool_runs_fn_on_every_loop_and_returns_first_failure),
		cmocka_unit_test(test_pool_bad_arguments),
		cmocka_unit_test(test_pool_gather_spreads_calls_and_keeps_the_result_rule),
		cmocka_unit_test(test_pool_gather_from_another_loop_is_exdev),
		cmocka_unit_test(test_pool_cancel_reaches_every_loop),
		cmocka_unit_test(test_pool_shutdown_runs_posts_that_got_in_and_refuses_later_ones),
		cmocka_unit_test(test_plain_loop_runs_posts_from_another_thread),
		cmocka_unit_test(test_calls_on_another_threads_loop_post_or_fail_exdev),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
