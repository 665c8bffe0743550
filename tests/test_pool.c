/* SPDX-License-Identifier: MIT */
/* Pools of loops: posts from any thread, pool runs, gathers spread, cancel, shutdown. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			print_message("failed on loop %d: %s (line %d)\n", weft_loop_index(),      \
				      #cond, __LINE__);                                            \
			return -EBADMSG;                                                           \
		}                                                                                  \
	} while (0)

/* ---- posts from foreign threads ---------------------------------------------------- */

#define POSTERS 4
#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer counts every live fiber as a thread, and stops at 8128. */
#define PER_POSTER 1500
#else
#define PER_POSTER 50000
#endif

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

		/* -EAGAIN: the loop is max_posts behind (back-pressure); -ENOMEM: out of memory. */
		while ((rc = weft_loop_post(to, count_post, (void *)(uintptr_t)slot)) == -ENOMEM ||
		       rc == -EAGAIN)
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

/* A cancel of the gatherer, and its deadline, reach the calls on every loop. */
static int sleep_ten_seconds(void *arg)
{
	(void)arg;
	return weft_sleep(10 * WEFT_SEC);
}

static weft_fiber *gatherer;

static int cancel_gatherer_soon(void *arg)
{
	(void)arg;
	weft_sleep(20 * WEFT_MSEC);
	return weft_cancel(gatherer);
}

static int gather_then_cancel(void *arg)
{
	weft_pool *p = arg;
	weft_call calls[9];
	weft_fiber *canceller;
	int64_t t0 = weft_now();

	if (weft_loop_index() != 0)
		return 0;
	for (int i = 0; i < 9; i++)
		calls[i] = (weft_call){ .fn = sleep_ten_seconds };
	/* The deadline: every call ends -ETIMEDOUT, on whichever loop. */
	weft_set_deadline(weft_now() + 20 * WEFT_MSEC);
	CHECK(weft_pool_gather(p, calls, 9) == -ETIMEDOUT);
	for (int i = 0; i < 9; i++)
		CHECK(calls[i].result == -ETIMEDOUT);
	weft_set_deadline(WEFT_FOREVER);
	/* A cancel: every call ends -ECANCELED. */
	gatherer = weft_self();
	CHECK(weft_spawn(NULL, cancel_gatherer_soon, NULL, &canceller) == 0);
	CHECK(weft_pool_gather(p, calls, 9) == -ECANCELED);
	for (int i = 0; i < 9; i++)
		CHECK(calls[i].result == -ECANCELED);
	CHECK(weft_join(canceller, NULL) == 0);
	CHECK(weft_now() - t0 < 5 * WEFT_SEC);
	/* Already cancelled: nothing runs. */
	CHECK(weft_pool_gather(p, calls, 9) == -ECANCELED);
	return 0;
}

static void test_pool_gather_passes_cancel_and_deadline_to_every_loop(void **state)
{
	weft_pool *p;

	(void)state;
	assert_int_equal(weft_pool_create(&p, 3, NULL), 0);
	assert_int_equal(weft_pool_run(p, gather_then_cancel, p), 0);
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

#if defined(__SANITIZE_THREAD__)
#define LATE_POSTS 4000 /* ThreadSanitizer: at most 8128 live fibers and threads */
#else
#define LATE_POSTS 10000
#endif

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

static _Atomic int cross_ran;

static int cross_detached(void *arg)
{
	(void)arg;
	atomic_fetch_add(&cross_ran, 1);
	return 0;
}

/* Returns 100 + the index of the loop it ran on, after sleeping *arg ms. */
static int where_am_i(void *arg)
{
	int ms = (int)(intptr_t)arg;

	if (ms && weft_sleep(ms * WEFT_MSEC) < 0)
		return -ECANCELED;
	return 100 + weft_loop_index();
}

static int sleep_long_see_cancel(void *arg)
{
	(void)arg;
	return weft_sleep(10 * WEFT_SEC) == -ECANCELED ? 7 : -EIO;
}

struct foreign_try {
	weft_loop *loop;
	weft_fiber *f;
	int spawn_rc, cancel_rc;
};

static void *foreign_thread_tries(void *arg)
{
	struct foreign_try *t = arg;
	weft_fiber *f = NULL;

	t->spawn_rc = weft_spawn(t->loop, where_am_i, NULL, &f);
	t->cancel_rc = weft_cancel(t->f);
	return NULL;
}

static int cross_loop_calls(void *arg)
{
	weft_pool *p = *(weft_pool **)arg;
	weft_loop *other = weft_pool_loop(p, 1 - weft_loop_index());
	weft_fiber *f = NULL;
	int res = 0;

	/* Detached: goes by post. */
	CHECK(weft_spawn(other, cross_detached, NULL, NULL) == 0);
	/* Joinable on the other loop, joined from here. */
	CHECK(weft_spawn(other, where_am_i, (void *)(intptr_t)5, &f) == 0);
	CHECK(weft_join(f, &res) == 0);
	CHECK(res == 100 + (1 - weft_loop_index()));
	/* Joined after it returned (no wait). */
	CHECK(weft_spawn(other, where_am_i, NULL, &f) == 0);
	weft_sleep(20 * WEFT_MSEC);
	CHECK(weft_join(f, &res) == 0 && res == 100 + (1 - weft_loop_index()));
	/* Cancelled from here, carried out there. */
	int64_t t0 = weft_now();

	CHECK(weft_spawn(other, sleep_long_see_cancel, NULL, &f) == 0);
	weft_sleep(5 * WEFT_MSEC);
	CHECK(weft_cancel(f) == 0);
	CHECK(weft_join(f, &res) == 0 && res == 7);
	CHECK(weft_now() - t0 < 5 * WEFT_SEC);
	/* A join that times out leaves the fiber joinable; a second join takes it. */
	CHECK(weft_spawn(other, where_am_i, (void *)(intptr_t)200, &f) == 0);
	weft_set_deadline(weft_now() + 20 * WEFT_MSEC);
	CHECK(weft_join(f, &res) == -ETIMEDOUT);
	weft_set_deadline(WEFT_FOREVER);
	CHECK(weft_join(f, &res) == 0 && res == 100 + (1 - weft_loop_index()));
	/* A thread outside the pool may not spawn joinable fibers on it, nor cancel. */
	CHECK(weft_spawn(other, sleep_long_see_cancel, NULL, &f) == 0);

	struct foreign_try t = { .loop = other, .f = f };
	pthread_t tid;

	CHECK(pthread_create(&tid, NULL, foreign_thread_tries, &t) == 0);
	pthread_join(tid, NULL);
	CHECK(t.spawn_rc == -EXDEV && t.cancel_rc == -EXDEV);
	CHECK(weft_cancel(f) == 0);
	CHECK(weft_join(f, &res) == 0 && res == 7);
	return 0;
}

static void test_spawn_join_cancel_across_loops(void **state)
{
	weft_pool *p;

	(void)state;
	atomic_store(&cross_ran, 0);
	assert_int_equal(weft_pool_create(&p, 2, NULL), 0);
	assert_int_equal(weft_pool_run(p, cross_loop_calls, &p), 0);
	assert_int_equal(atomic_load(&cross_ran), 2);
	weft_pool_destroy(p);
}

/* Many round trips: each loop spawns on the next and joins, some cancelled. */
#define ROUNDS 3000

static int echo_index(void *arg)
{
	if ((uintptr_t)arg & 1)
		weft_yield();
	return weft_loop_index();
}

static int many_cross_joins(void *arg)
{
	weft_pool *p = arg;
	unsigned n = weft_pool_size(p);
	unsigned next = ((unsigned)weft_loop_index() + 1) % n;
	weft_fiber *f;
	int res;

	for (uintptr_t i = 0; i < ROUNDS; i++) {
		CHECK(weft_spawn(weft_pool_loop(p, next), echo_index, (void *)i, &f) == 0);
		if (i % 7 == 0)
			CHECK(weft_cancel(f) == 0); /* may land before or after it returns */
		CHECK(weft_join(f, &res) == 0);
		CHECK(res == (int)next);
	}
	return 0;
}

static void test_many_joins_across_three_loops(void **state)
{
	weft_pool *p;

	(void)state;
	assert_int_equal(weft_pool_create(&p, 3, NULL), 0);
	assert_int_equal(weft_pool_run(p, many_cross_joins, p), 0);
	weft_pool_destroy(p);
}

/* ---- objects of one thread, used from another: -EXDEV ------------------------- */

static weft_chan *plain_ch;
static weft_mutex *plain_mu;
static weft_group *plain_group;
static _Atomic int plain_bound;

static int use_objects_from_two_loops(void *arg)
{
	int v = 1;

	(void)arg;
	if (weft_loop_index() == 0) {
		CHECK(weft_chan_try_send(plain_ch, &v) == 0);
		CHECK(weft_mutex_lock(plain_mu) == 0);
		weft_mutex_unlock(plain_mu);
		CHECK(weft_group_spawn(plain_group, cross_detached, NULL) == 0);
		CHECK(weft_group_wait(plain_group) == 0);
		atomic_store(&plain_bound, 1);
		return 0;
	}
	while (!atomic_load(&plain_bound))
		weft_sleep(WEFT_MSEC);
	CHECK(weft_chan_send(plain_ch, &v) == -EXDEV);
	CHECK(weft_chan_recv(plain_ch, &v) == -EXDEV);
	CHECK(weft_chan_try_recv(plain_ch, &v) == -EXDEV);
	CHECK(weft_mutex_lock(plain_mu) == -EXDEV);
	CHECK(weft_mutex_trylock(plain_mu) == -EXDEV);
	CHECK(weft_group_spawn(plain_group, cross_detached, NULL) == -EXDEV);
	CHECK(weft_group_wait(plain_group) == -EXDEV);
	weft_chan_close(plain_ch); /* not this thread's: does nothing */
	return 0;
}

static void test_objects_of_one_loop_refuse_another_loop(void **state)
{
	weft_pool *p;
	int v = 0;

	(void)state;
	assert_int_equal(weft_chan_create(&plain_ch, 4, sizeof(int)), 0);
	assert_int_equal(weft_mutex_create(&plain_mu), 0);
	assert_int_equal(weft_group_create(&plain_group), 0);
	assert_int_equal(weft_pool_create(&p, 2, NULL), 0);
	/* Loop 0 runs on this thread: the objects are this thread's. */
	assert_int_equal(weft_pool_run(p, use_objects_from_two_loops, NULL), 0);
	assert_int_equal(weft_chan_try_recv(plain_ch, &v), 0); /* not closed by loop 1 */
	assert_int_equal(v, 1);
	weft_pool_destroy(p);
	weft_chan_destroy(plain_ch);
	weft_mutex_destroy(plain_mu);
	weft_group_destroy(plain_group);
}

/* ---- weft_loop_run on another thread; a loop inside another loop's fiber ------- */

/* A loop's first fiber on the thread it moved to: I/O through its ring, a timer. */
static _Atomic int moved_result = 1;

static int work_here(void *arg)
{
	char buf[8];
	int fd = weft_open("/dev/zero", O_RDONLY, 0);
	int rc = 0;

	(void)arg;
	if (fd < 0 || weft_read(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		rc = -EIO;
	if (fd >= 0)
		weft_close(fd);
	if (rc == 0 && (weft_nop() < 0 || weft_sleep(WEFT_MSEC) < 0))
		rc = -EIO;
	atomic_store(&moved_result, rc);
	return rc;
}

static void *run_elsewhere(void *arg)
{
	return (void *)(intptr_t)weft_loop_run(arg);
}

static void test_loop_moves_to_the_thread_of_its_first_run(void **state)
{
	weft_loop *l;
	pthread_t tid;
	void *rc;

	(void)state;
	assert_int_equal(weft_loop_create(&l, NULL), 0);
	/* Created here (and its first fiber spawned here), run there: it moves with its first run.
	 */
	assert_int_equal(weft_spawn(l, work_here, NULL, NULL), 0);
	assert_int_equal(pthread_create(&tid, NULL, run_elsewhere, l), 0);
	pthread_join(tid, &rc);
	assert_int_equal((int)(intptr_t)rc, 0);
	assert_int_equal(atomic_load(&moved_result), 0);
	/* Then it stays there: not here, and weft_loop_explain says why. */
	assert_int_equal(weft_loop_run(l), -EXDEV);
	assert_non_null(strstr(weft_loop_explain(-EXDEV), "another thread"));
	weft_loop_destroy(l);
}

static int nested_loop(void *arg)
{
	weft_fiber *self = weft_self();
	weft_loop *outer = weft_loop_current();
	weft_loop *inner;

	(void)arg;
	CHECK(weft_loop_create(&inner, NULL) == 0);
	CHECK(weft_spawn(inner, cross_detached, NULL, NULL) == 0); /* never runs: cancelled */
	CHECK(weft_loop_run(inner) == -EBUSY);
	weft_loop_destroy(inner);
	CHECK(weft_self() == self && weft_loop_current() == outer);
	CHECK(weft_sleep(WEFT_MSEC) == 0);
	return 42;
}

static void test_loop_created_and_destroyed_in_a_fiber_leaves_it_intact(void **state)
{
	(void)state;
	assert_int_equal(weft_main(nested_loop, NULL), 42);
}

/* ---- shared channels -------------------------------------------------------------- */

#define SH_LOOPS 3
#define SH_PRODUCERS 4 /* per loop */
#define SH_CONSUMERS 3 /* per loop */
#define SH_EACH 5000

static weft_chan *shared_ch;
static _Atomic long long consumed_sum;
static _Atomic long consumed_count;
static _Atomic int producers_left;

static int sh_producer(void *arg)
{
	long base = (long)(intptr_t)arg;

	for (long i = 0; i < SH_EACH; i++) {
		long v = base * SH_EACH + i + 1;

		if (i % 97 == 0)
			weft_yield();
		CHECK(weft_chan_send(shared_ch, &v) == 0);
	}
	if (atomic_fetch_sub(&producers_left, 1) == 1)
		weft_chan_close(shared_ch); /* the last producer, on whichever loop */
	return 0;
}

static int sh_consumer(void *arg)
{
	long v;
	int rc;

	(void)arg;
	while ((rc = weft_chan_recv(shared_ch, &v)) == 0) {
		atomic_fetch_add(&consumed_sum, v);
		atomic_fetch_add(&consumed_count, 1);
	}
	return rc == -EPIPE ? 0 : rc;
}

static int sh_loop_main(void *arg)
{
	weft_call calls[SH_PRODUCERS + SH_CONSUMERS];
	int idx = weft_loop_index();

	(void)arg;
	for (int i = 0; i < SH_PRODUCERS; i++)
		calls[i] = (weft_call){ .fn = sh_producer,
					.arg = (void *)(intptr_t)(idx * SH_PRODUCERS + i) };
	for (int i = 0; i < SH_CONSUMERS; i++)
		calls[SH_PRODUCERS + i] = (weft_call){ .fn = sh_consumer };
	return weft_gather(calls, SH_PRODUCERS + SH_CONSUMERS);
}

static void shared_channel_sums_match(size_t capacity)
{
	weft_pool *p;
	long total = (long)SH_LOOPS * SH_PRODUCERS * SH_EACH;

	assert_int_equal(weft_chan_create_shared(&shared_ch, capacity, sizeof(long)), 0);
	atomic_store(&consumed_sum, 0);
	atomic_store(&consumed_count, 0);
	atomic_store(&producers_left, SH_LOOPS * SH_PRODUCERS);
	assert_int_equal(weft_pool_create(&p, SH_LOOPS, NULL), 0);
	assert_int_equal(weft_pool_run(p, sh_loop_main, NULL), 0);
	assert_int_equal(atomic_load(&consumed_count), total);
	assert_true(atomic_load(&consumed_sum) == (long long)total * (total + 1) / 2);
	assert_int_equal(weft_chan_len(shared_ch), 0);
	weft_pool_destroy(p);
	weft_chan_destroy(shared_ch);
}

static void test_shared_channel_producers_and_consumers_on_every_loop(void **state)
{
	(void)state;
	shared_channel_sums_match(16);
	shared_channel_sums_match(0); /* rendezvous: every element hand to hand */
}

/* Close drains: what is buffered is received after the close, then -EPIPE. */
static int sh_drain(void *arg)
{
	long v = 0;

	(void)arg;
	if (weft_loop_index() == 0) {
		for (long i = 1; i <= 8; i++)
			CHECK(weft_chan_send(shared_ch, &i) == 0);
		weft_chan_close(shared_ch);
		CHECK(weft_chan_send(shared_ch, &v) == -EPIPE);
		return 0;
	}
	weft_sleep(20 * WEFT_MSEC);
	for (long i = 1; i <= 8; i++) {
		CHECK(weft_chan_recv(shared_ch, &v) == 0);
		CHECK(v == i);
	}
	CHECK(weft_chan_recv(shared_ch, &v) == -EPIPE);
	return 0;
}

/* A receiver parked on loop 1: its deadline, then a cancel from loop 0, end the wait. */
static _Atomic int sh_stage;

static int sh_parked_receiver(void *arg)
{
	long v;

	(void)arg;
	weft_set_deadline(weft_now() + 10 * WEFT_MSEC);
	CHECK(weft_chan_recv(shared_ch, &v) == -ETIMEDOUT);
	weft_set_deadline(WEFT_FOREVER);
	atomic_store(&sh_stage, 1);
	CHECK(weft_chan_recv(shared_ch, &v) == -ECANCELED);
	return 5;
}

static int sh_cancel_across(void *arg)
{
	weft_pool *p = arg;
	weft_fiber *f;
	int res;
	long v = 3;

	if (weft_loop_index() != 0)
		return 0;
	CHECK(weft_spawn(weft_pool_loop(p, 1), sh_parked_receiver, NULL, &f) == 0);
	while (!atomic_load(&sh_stage))
		weft_sleep(WEFT_MSEC);
	weft_sleep(5 * WEFT_MSEC);
	CHECK(weft_cancel(f) == 0);
	CHECK(weft_join(f, &res) == 0 && res == 5);
	/* Nobody parked now: the element stays buffered. */
	CHECK(weft_chan_try_send(shared_ch, &v) == 0);
	CHECK(weft_chan_len(shared_ch) == 1);
	return 0;
}

static void test_shared_channel_close_drains_and_waits_end_early(void **state)
{
	weft_pool *p;
	long v;

	(void)state;
	assert_int_equal(weft_chan_create_shared(&shared_ch, 8, sizeof(long)), 0);
	assert_int_equal(weft_pool_create(&p, 2, NULL), 0);
	assert_int_equal(weft_pool_run(p, sh_drain, NULL), 0);
	weft_chan_destroy(shared_ch);

	assert_int_equal(weft_chan_create_shared(&shared_ch, 4, sizeof(long)), 0);
	assert_int_equal(weft_pool_run(p, sh_cancel_across, p), 0);
	/* Any thread may use the try_ calls of a shared channel. */
	assert_int_equal(weft_chan_try_recv(shared_ch, &v), 0);
	assert_int_equal(v, 3);
	weft_pool_destroy(p);
	weft_chan_destroy(shared_ch);
}

/* ---- how loops wake each other: MSG_RING, or the eventfd forced ----------------- */

static void wake_counts(const char *wake, uint64_t *msg, uint64_t *efd)
{
	weft_pool *p;
	weft_stats st;

	if (wake)
		setenv("WEFT_WAKE", wake, 1);
	else
		unsetenv("WEFT_WAKE");
	assert_int_equal(weft_pool_create(&p, 3, NULL), 0);
	assert_int_equal(weft_pool_run(p, many_cross_joins, p), 0);
	*msg = *efd = 0;
	for (unsigned i = 0; i < 3; i++) {
		weft_loop_stats(weft_pool_loop(p, i), &st);
		*msg += st.wakes_msg_ring;
		*efd += st.wakes_eventfd;
	}
	weft_pool_destroy(p);
	unsetenv("WEFT_WAKE");
}

static void test_wakes_go_by_msg_ring_or_the_eventfd_forced(void **state)
{
	uint64_t msg, efd;
	weft_pool *p;

	(void)state;
	wake_counts("eventfd", &msg, &efd);
	print_message("WEFT_WAKE=eventfd: %llu by MSG_RING, %llu by eventfd\n",
		      (unsigned long long)msg, (unsigned long long)efd);
	assert_int_equal(msg, 0);
	assert_true(efd > 0);
	wake_counts(NULL, &msg, &efd);
	print_message("WEFT_WAKE unset: %llu by MSG_RING, %llu by eventfd\n",
		      (unsigned long long)msg, (unsigned long long)efd);
	if (t_on_uring()) /* Linux 5.18+ has MSG_RING: every loop-to-loop wake uses it */
		assert_true(msg > 0 && efd == 0);
	else
		assert_true(msg == 0 && efd > 0);
	setenv("WEFT_WAKE", "pigeon", 1);
	assert_int_equal(weft_pool_create(&p, 2, NULL), -EINVAL);
	assert_non_null(strstr(weft_loop_explain(-EINVAL), "WEFT_WAKE"));
	unsetenv("WEFT_WAKE");
}

/* ---- signals stay with the program's own threads -------------------------------------- */

static _Atomic int term_blocked[3];
static _Atomic int worker_blocked = -1;

static int sigterm_blocked(void)
{
	sigset_t set;

	pthread_sigmask(SIG_BLOCK, NULL, &set);
	return sigismember(&set, SIGTERM);
}

static int worker_mask(void *arg)
{
	(void)arg;
	return sigterm_blocked();
}

static int note_mask(void *arg)
{
	int r = 0;

	(void)arg;
	atomic_store(&term_blocked[weft_loop_index()], sigterm_blocked());
	if (weft_loop_index() == 1 && weft_offload(worker_mask, NULL, &r) == 0)
		atomic_store(&worker_blocked, r);
	return 0;
}

/*
 * Every thread weft starts (a pool's loops beyond the first, workers) has
 * every signal blocked, so a SIGTERM goes to the program's own threads (its
 * signalfd or handler), never to a loop thread that would die of it. Loop 0
 * runs on the caller's thread and keeps the caller's mask.
 */
static void test_threads_weft_starts_block_signals(void **state)
{
	(void)state;
	assert_int_equal(weft_main_pool(3, note_mask, NULL), 0);
	assert_int_equal(atomic_load(&term_blocked[0]), sigterm_blocked());
	assert_int_equal(atomic_load(&term_blocked[1]), 1);
	assert_int_equal(atomic_load(&term_blocked[2]), 1);
	assert_int_equal(atomic_load(&worker_blocked), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_posts_from_four_threads_none_lost_none_twice),
		cmocka_unit_test(test_pool_runs_fn_on_every_loop_and_returns_first_failure),
		cmocka_unit_test(test_pool_bad_arguments),
		cmocka_unit_test(test_pool_gather_spreads_calls_and_keeps_the_result_rule),
		cmocka_unit_test(test_pool_gather_from_another_loop_is_exdev),
		cmocka_unit_test(test_pool_gather_passes_cancel_and_deadline_to_every_loop),
		cmocka_unit_test(test_pool_cancel_reaches_every_loop),
		cmocka_unit_test(test_pool_shutdown_runs_posts_that_got_in_and_refuses_later_ones),
		cmocka_unit_test(test_plain_loop_runs_posts_from_another_thread),
		cmocka_unit_test(test_spawn_join_cancel_across_loops),
		cmocka_unit_test(test_many_joins_across_three_loops),
		cmocka_unit_test(test_objects_of_one_loop_refuse_another_loop),
		cmocka_unit_test(test_loop_moves_to_the_thread_of_its_first_run),
		cmocka_unit_test(test_loop_created_and_destroyed_in_a_fiber_leaves_it_intact),
		cmocka_unit_test(test_shared_channel_producers_and_consumers_on_every_loop),
		cmocka_unit_test(test_shared_channel_close_drains_and_waits_end_early),
		cmocka_unit_test(test_wakes_go_by_msg_ring_or_the_eventfd_forced),
		cmocka_unit_test(test_threads_weft_starts_block_signals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
