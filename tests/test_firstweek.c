/* SPDX-License-Identifier: MIT */
/*
 * What a server author reaches for in the first week: the semaphore (1,000
 * fibers through 10 permits, FIFO hand-off, deadline and cancel while
 * waiting lose no permit, try_acquire, bad input, the wrong thread),
 * weft_set_timeout (a relative deadline), weft_strerror (weft's meaning
 * of an -errno) and weft_main_config (a first fiber with a big stack).
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- semaphore ------------------------------------------------------------------- */

#define CROWD 1000
#define PERMITS 10

struct crowd {
	weft_sem *s;
	int inside, most, done, bad;
};

static int crowd_member(void *arg)
{
	struct crowd *c = arg;

	if (weft_sem_acquire(c->s) != 0) {
		c->bad++;
		return -1;
	}
	if (++c->inside > c->most)
		c->most = c->inside;
	weft_sleep(100 * WEFT_USEC); /* park inside, so others pile up */
	c->inside--;
	c->done++;
	weft_sem_release(c->s);
	return 0;
}

static int crowd_main(void *arg)
{
	struct crowd *c = arg;

	if (weft_sem_create(&c->s, PERMITS) < 0)
		return -ENOMEM;
	for (int i = 0; i < CROWD; i++)
		if (weft_go(crowd_member, c) < 0)
			return -ENOMEM;
	while (c->done < CROWD)
		weft_sleep(WEFT_MSEC);
	return 0;
}

static void test_a_thousand_fibers_through_ten_permits(void **state)
{
	struct crowd c = { .s = NULL };

	(void)state;
	assert_int_equal(t_run(crowd_main, &c), 0);
	assert_int_equal(c.done, CROWD);
	assert_int_equal(c.bad, 0);
	assert_int_equal(c.most, PERMITS);
	assert_int_equal(weft_sem_value(c.s), PERMITS);
	weft_sem_destroy(c.s);
}

struct order {
	weft_sem *s;
	int seq[4], n, k; /* seq: who was served, in the order served */
	int timed, cancelled, try_busy, try_free, late_try;
	unsigned value_after;
};

static int queued(void *arg)
{
	struct order *o = arg;
	int me = o->n++;

	if (weft_sem_acquire(o->s) == 0)
		o->seq[o->k++] = me + 1;
	return 0;
}

static int cancelled_waiter(void *arg)
{
	struct order *o = arg;

	o->cancelled = weft_sem_acquire(o->s);
	return 0;
}

static int order_main(void *arg)
{
	struct order *o = arg;
	weft_fiber *f[3], *victim;

	if (weft_sem_create(&o->s, 1) < 0)
		return -ENOMEM;
	o->try_free = weft_sem_try_acquire(o->s); /* takes the only permit */
	o->try_busy = weft_sem_try_acquire(o->s);
	/* A deadline while waiting: -ETIMEDOUT, no permit taken. */
	int64_t was = weft_set_timeout(5 * WEFT_MSEC);

	o->timed = weft_sem_acquire(o->s);
	weft_set_deadline(was);
	/* A cancel while waiting, between two waiters. */
	weft_spawn(NULL, queued, o, &f[0]);
	weft_spawn(NULL, cancelled_waiter, o, &victim);
	weft_spawn(NULL, queued, o, &f[1]);
	weft_sleep(WEFT_MSEC);
	weft_cancel(victim);
	weft_join(victim, NULL);
	/* A newcomer's try does not jump the queue once a permit is handed over. */
	weft_spawn(NULL, queued, o, &f[2]);
	weft_sleep(WEFT_MSEC);
	weft_sem_release(o->s); /* to f[0] */
	o->late_try = weft_sem_try_acquire(o->s);
	weft_sleep(WEFT_MSEC);
	weft_sem_release(o->s); /* f[0]'s permit back: to f[1] */
	weft_sleep(WEFT_MSEC);
	weft_sem_release(o->s); /* to f[2] */
	for (int i = 0; i < 3; i++)
		weft_join(f[i], NULL);
	weft_sem_release(o->s); /* f[2]'s, back to the count */
	o->value_after = weft_sem_value(o->s);
	weft_sem_destroy(o->s);
	return 0;
}

static void test_permits_go_first_come_first_served_and_a_cancel_loses_none(void **state)
{
	struct order o = { .n = 0 };

	(void)state;
	assert_int_equal(t_run(order_main, &o), 0);
	assert_int_equal(o.try_free, 0);
	assert_int_equal(o.try_busy, -EAGAIN);
	assert_int_equal(o.timed, -ETIMEDOUT);
	assert_int_equal(o.cancelled, -ECANCELED);
	assert_int_equal(o.late_try, -EAGAIN);
	for (int i = 0; i < 3; i++)
		assert_int_equal(o.seq[i], i + 1);
	assert_int_equal(o.value_after, 1);
}

static weft_sem *shared_sem;
static int there[2];

static int other_thread_main(void *arg)
{
	(void)arg;
	there[0] = weft_sem_acquire(shared_sem);
	there[1] = weft_sem_try_acquire(shared_sem);
	weft_sem_release(shared_sem); /* does nothing here */
	return 0;
}

static void *other_thread(void *arg)
{
	(void)arg;
	weft_main(other_thread_main, NULL);
	return NULL;
}

static int bind_main(void *arg)
{
	(void)arg;
	return weft_sem_acquire(shared_sem); /* binds it to this thread */
}

static void test_semaphore_bad_input_outside_fibers_and_the_wrong_thread(void **state)
{
	pthread_t t;
	weft_sem *s;

	(void)state;
	assert_int_equal(weft_sem_create(NULL, 1), -EINVAL);
	assert_int_equal(weft_sem_acquire(NULL), -EINVAL);
	assert_int_equal(weft_sem_try_acquire(NULL), -EINVAL);
	weft_sem_release(NULL);
	weft_sem_destroy(NULL);
	assert_int_equal(weft_sem_value(NULL), 0);
	assert_int_equal(weft_sem_create(&s, 1), 0);
	assert_int_equal(weft_sem_acquire(s), -EPERM); /* not in a fiber */
	weft_sem_destroy(s);

	assert_int_equal(weft_sem_create(&shared_sem, 2), 0);
	assert_int_equal(t_run(bind_main, NULL), 0);
	assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
	pthread_join(t, NULL);
	assert_int_equal(there[0], -EXDEV);
	assert_int_equal(there[1], -EXDEV);
	assert_int_equal(weft_sem_value(shared_sem), 1);
	weft_sem_destroy(shared_sem);
}

/* ---- weft_set_timeout ------------------------------------------------------------- */

struct timeout {
	int64_t old, set, after_neg, after_huge;
	int slept;
	int64_t waited;
};

static int timeout_main(void *arg)
{
	struct timeout *t = arg;
	int64_t t0 = weft_now();

	t->old = weft_set_timeout(20 * WEFT_MSEC);
	t->set = weft_deadline() - t0;
	t->slept = weft_sleep(10 * WEFT_SEC);
	t->waited = weft_now() - t0;
	weft_set_timeout(-5);
	t->after_neg = weft_deadline();
	weft_set_timeout(INT64_MAX);
	t->after_huge = weft_deadline();
	return 0;
}

static void test_set_timeout_is_a_deadline_from_now(void **state)
{
	struct timeout t = { .old = 0 };

	(void)state;
	assert_int_equal(t_run(timeout_main, &t), 0);
	assert_true(t.old == WEFT_FOREVER);
	assert_true(t.set >= 20 * WEFT_MSEC && t.set < 20 * WEFT_MSEC + WEFT_SEC);
	assert_int_equal(t.slept, -ETIMEDOUT);
	assert_true(t.waited >= 20 * WEFT_MSEC && t.waited < 5 * WEFT_SEC);
	assert_true(t.after_neg == WEFT_FOREVER);
	assert_true(t.after_huge == WEFT_FOREVER);
	assert_true(weft_set_timeout(WEFT_SEC) == WEFT_FOREVER); /* outside a fiber: nothing */
}

/* ---- weft_strerror ---------------------------------------------------------------- */

static void test_strerror_says_what_weft_means(void **state)
{
	(void)state;
	assert_non_null(strstr(weft_strerror(-EPERM), "not called from a fiber"));
	assert_non_null(strstr(weft_strerror(EPERM), "not called from a fiber"));
	assert_non_null(strstr(weft_strerror(-EXDEV), "another thread"));
	assert_non_null(strstr(weft_strerror(-ETIMEDOUT), "deadline"));
	assert_non_null(strstr(weft_strerror(-ECANCELED), "cancelled"));
	assert_string_equal(weft_strerror(-ENOENT), "No such file or directory");
	assert_string_equal(weft_strerror(0), "success");
	assert_non_null(weft_strerror(-100000));
	assert_non_null(weft_strerror(INT32_MIN + 1));
}

/* ---- weft_main_config ------------------------------------------------------------- */

static int big_stack(void *arg)
{
	char buf[512 * 1024];

	(void)arg;
	memset(buf, 7, sizeof(buf));
	weft_sleep(WEFT_MSEC);			   /* parks with the buffer live */
	return buf[sizeof(buf) - 1] + buf[0] + 28; /* 42 */
}

static int tiny(void *arg)
{
	(void)arg;
	return 5;
}

static void test_main_config_runs_the_first_fiber_with_the_loop_it_asks(void **state)
{
	weft_config cfg;

	(void)state;
	weft_config_init(&cfg);
	cfg.stack_size = 1024 * 1024;
	assert_int_equal(weft_main_config(&cfg, big_stack, NULL), 42);
	assert_int_equal(weft_main_config(NULL, tiny, NULL), 5);
	assert_int_equal(weft_main_config(&cfg, NULL, NULL), -EINVAL);
	cfg.stack_size = 0;
	assert_int_equal(weft_main_config(&cfg, tiny, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_thousand_fibers_through_ten_permits),
		cmocka_unit_test(test_permits_go_first_come_first_served_and_a_cancel_loses_none),
		cmocka_unit_test(test_semaphore_bad_input_outside_fibers_and_the_wrong_thread),
		cmocka_unit_test(test_set_timeout_is_a_deadline_from_now),
		cmocka_unit_test(test_strerror_says_what_weft_means),
		cmocka_unit_test(test_main_config_runs_the_first_fiber_with_the_loop_it_asks),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
