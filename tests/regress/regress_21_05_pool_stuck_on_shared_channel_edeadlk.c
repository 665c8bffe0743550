/* SPDX-License-Identifier: MIT */
/*
 * Issue 21, defect 5: a pool whose every fiber waited on a shared channel
 * never returned from weft_pool_run, while a plain loop in the same state
 * says -EDEADLK.
 *
 * Checked: every loop's fiber receiving on a shared channel the pool made
 * and nobody sends on (and one joining another loop's fiber that waits the
 * same way) makes weft_pool_run return -EDEADLK, and weft_pool_destroy
 * cancels them all; the same wait ended by a send from loop 0 after 50 ms
 * is no deadlock; a wait on a shared channel made outside the pool, which a
 * thread outside weft may still send on, is never taken for a deadlock (a
 * plain loop's either): the element sent 50 ms later arrives; and a wait
 * that parked as the pool's own, on a channel that a thread outside then
 * used, is not taken for a deadlock either (it used to be: the wait was
 * classed once, when it parked). A task group waiting on, after its
 * deadline, for a member that can never return is a deadlock its loop
 * reports (it waited for ever: the wait counted as owed from outside).
 */
#include "../helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static weft_chan *ch;
static weft_pool *pool;
static _Atomic int got, cancelled, join_rc = 1;

static int wait_forever(void *arg)
{
	int v;
	int rc;

	(void)arg;
	if (weft_loop_index() == 1) {
		weft_fiber *f;

		/* Loop 1 also joins a fiber of loop 2 that waits the same way. */
		if (weft_spawn(weft_pool_loop(pool, 2), wait_forever, NULL, &f) == 0)
			atomic_store(&join_rc, weft_join(f, NULL));
	}
	rc = weft_chan_recv(ch, &v);
	if (rc == -ECANCELED)
		atomic_fetch_add(&cancelled, 1);
	return 0;
}

/* On loop 0, in a fiber of the pool: the channel is the pool's. */
static int make_chan(void *arg)
{
	(void)arg;
	return weft_loop_index() == 0 ? weft_chan_create_shared(&ch, 0, sizeof(int)) : 0;
}

static void test_pool_waiting_on_itself_is_a_deadlock(void **state)
{
	(void)state;
	assert_int_equal(weft_pool_create(&pool, 3, NULL), 0);
	assert_int_equal(weft_pool_run(pool, make_chan, NULL), 0);
	assert_int_equal(weft_pool_run(pool, wait_forever, NULL), -EDEADLK);
	weft_pool_destroy(pool);
	/* 4 receivers: one per loop, one more on loop 2, which loop 1 joins. */
	assert_int_equal(atomic_load(&cancelled), 4);
	/* The join is cancelled, or completed by the joined fiber's return, if that came first. */
	assert_true(atomic_load(&join_rc) == -ECANCELED || atomic_load(&join_rc) == 0);
	weft_chan_destroy(ch);
}

static int send_later_or_receive(void *arg)
{
	int v = 7;

	(void)arg;
	if (weft_loop_index() == 0) {
		weft_sleep(50 * WEFT_MSEC);
		for (unsigned i = 1; i < weft_pool_size(pool); i++)
			if (weft_chan_send(ch, &v) != 0)
				return -1;
		return 0;
	}
	if (weft_chan_recv(ch, &v) == 0 && v == 7)
		atomic_fetch_add(&got, 1);
	return 0;
}

static void test_pool_waiting_for_a_sender_of_its_own_is_not(void **state)
{
	(void)state;
	assert_int_equal(weft_pool_create(&pool, 3, NULL), 0);
	assert_int_equal(weft_pool_run(pool, make_chan, NULL), 0);
	assert_int_equal(weft_pool_run(pool, send_later_or_receive, NULL), 0);
	assert_int_equal(atomic_load(&got), 2);
	weft_pool_destroy(pool);
	weft_chan_destroy(ch);
}

static int recv_one(void *arg)
{
	int v;

	(void)arg;
	return weft_chan_recv(ch, &v) == 0 && v == 9 ? 0 : -1;
}

static void *send_from_outside(void *arg)
{
	int v = 9;

	(void)arg;
	usleep(50000);
	while (weft_chan_try_send(ch, &v) == -EAGAIN)
		usleep(1000);
	return NULL;
}

/* Loop 1 waits for the outside thread's element; loop 0 has nothing to do. */
static int recv_on_loop_1(void *arg)
{
	return weft_loop_index() == 1 ? recv_one(arg) : 0;
}

static void test_wait_on_a_channel_from_outside_is_not_a_deadlock(void **state)
{
	pthread_t t;

	(void)state;
	/* Made here, outside any pool: a thread outside weft may send on it. */
	assert_int_equal(weft_chan_create_shared(&ch, 0, sizeof(int)), 0);
	assert_int_equal(pthread_create(&t, NULL, send_from_outside, NULL), 0);
	assert_int_equal(weft_main(recv_one, NULL), 0);
	pthread_join(t, NULL);
	assert_int_equal(pthread_create(&t, NULL, send_from_outside, NULL), 0);
	assert_int_equal(weft_main_pool(2, recv_on_loop_1, NULL), 0);
	pthread_join(t, NULL);
	weft_chan_destroy(ch);
}

static _Atomic(weft_chan *) pools_chan;

/* Outside the pool: use the pool's channel once, then send on it 300 ms later. */
static void *touch_then_send(void *arg)
{
	weft_chan *c;
	int v = 42;

	(void)arg;
	while (!(c = atomic_load(&pools_chan)))
		usleep(1000);
	usleep(50000);
	(void)weft_chan_try_recv(c, &v); /* -EAGAIN; the channel is used outside now */
	usleep(300000);
	while (weft_chan_try_send(c, &v) == -EAGAIN)
		usleep(1000);
	return NULL;
}

static int nap(void *arg)
{
	(void)arg;
	return weft_sleep(100 * WEFT_MSEC);
}

static int make_and_wait(void *arg)
{
	weft_chan *c;
	int v = 0;

	(void)arg;
	if (weft_chan_create_shared(&c, 0, sizeof(int)) < 0)
		return -ENOMEM;
	weft_go(nap, NULL); /* the loop idles only once this is over, after the outsider's use */
	atomic_store(&pools_chan, c);
	return weft_chan_recv(c, &v) == 0 && v == 42 ? 0 : -1;
}

static void test_wait_opened_to_outside_after_it_parked_is_not_a_deadlock(void **state)
{
	weft_pool *p;
	pthread_t t;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, touch_then_send, NULL), 0);
	assert_int_equal(weft_pool_create(&p, 1, NULL), 0);
	assert_int_equal(weft_pool_run(p, make_and_wait, NULL), 0);
	pthread_join(t, NULL);
	weft_pool_destroy(p);
	weft_chan_destroy(atomic_load(&pools_chan));
}

static weft_mutex *gm;
static weft_cond *gc;
static weft_group *gg;
static int gwait_rc = 1;

static int member_stuck(void *arg)
{
	(void)arg;
	weft_mutex_lock(gm);
	weft_cond_wait(gc, gm); /* cancelled: takes gm back, uninterrupted, for ever */
	weft_mutex_unlock(gm);
	return 0;
}

static int group_waiter(void *arg)
{
	(void)arg;
	if (weft_group_spawn(gg, member_stuck, NULL) < 0)
		return -ENOMEM;
	weft_yield(); /* the member holds gm and waits on gc */
	weft_mutex_lock(gm);
	weft_set_deadline(weft_now() + 50 * WEFT_MSEC);
	gwait_rc = weft_group_wait(gg); /* cancels the member, which needs gm: never */
	weft_mutex_unlock(gm);
	return 0;
}

static void test_group_waiting_on_its_own_stuck_member_is_a_deadlock(void **state)
{
	weft_loop *l;

	(void)state;
	assert_int_equal(weft_mutex_create(&gm), 0);
	assert_int_equal(weft_cond_create(&gc), 0);
	assert_int_equal(weft_group_create(&gg), 0);
	assert_int_equal(weft_loop_create(&l, NULL), 0);
	assert_int_equal(weft_spawn(l, group_waiter, NULL, NULL), 0);
	assert_int_equal(weft_loop_run(l), -EDEADLK);
	assert_int_equal(gwait_rc, 1); /* still waiting */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_waiting_on_itself_is_a_deadlock),
		cmocka_unit_test(test_pool_waiting_for_a_sender_of_its_own_is_not),
		cmocka_unit_test(test_wait_on_a_channel_from_outside_is_not_a_deadlock),
		cmocka_unit_test(test_wait_opened_to_outside_after_it_parked_is_not_a_deadlock),
		cmocka_unit_test(test_group_waiting_on_its_own_stuck_member_is_a_deadlock),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
