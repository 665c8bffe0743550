/* SPDX-License-Identifier: MIT */
/*
 * Issue 11, defect 2: the timer entry of a fiber woken by an event stayed
 * in the heap until it reached the top. 1.5 M channel rendezvous under a
 * 1-hour deadline beside one 60 s sleeper grew RSS by 18-24 MiB (a server
 * with a 1-hour request deadline at 100k parks/s would grow ~8 GB/hour).
 * Now a woken fiber leaves the heap at once: the heap never holds more
 * entries than fibers parked with a deadline.
 */
#include "../helpers.h"

#include <errno.h>

#define ROUNDS 300000

struct ctx {
	weft_chan *ch;
	uint64_t most_timers;
	size_t rss_mid, rss_end;
	int rc;
};

static void note_timers(struct ctx *c)
{
	weft_stats st;

	weft_loop_stats(weft_loop_current(), &st);
	if (st.timers > c->most_timers)
		c->most_timers = st.timers;
}

static int sender(void *arg)
{
	struct ctx *c = arg;

	weft_set_deadline(weft_now() + 3600 * WEFT_SEC);
	for (int i = 0; i < ROUNDS; i++) {
		int rc = weft_chan_send(c->ch, &i);

		if (rc < 0)
			return rc;
		if (i % 1000 == 0)
			note_timers(c);
		if (i == ROUNDS / 2)
			c->rss_mid = t_rss_bytes();
	}
	c->rss_end = t_rss_bytes();
	return 0;
}

static int receiver(void *arg)
{
	struct ctx *c = arg;
	int v;

	weft_set_deadline(weft_now() + 3600 * WEFT_SEC);
	for (int i = 0; i < ROUNDS; i++) {
		int rc = weft_chan_recv(c->ch, &v);

		if (rc < 0)
			return rc;
		if (v != i)
			return -EIO;
	}
	return 0;
}

static int sleeper(void *arg)
{
	(void)arg;
	return weft_sleep(60 * WEFT_SEC) == -ECANCELED ? 0 : -EIO;
}

static int scenario(void *arg)
{
	struct ctx *c = arg;
	weft_fiber *s;
	weft_call calls[2] = { { .fn = sender, .arg = c }, { .fn = receiver, .arg = c } };

	if (weft_chan_create(&c->ch, 0, sizeof(int)) < 0)
		return -ENOMEM;
	if (weft_spawn(NULL, sleeper, NULL, &s) < 0)
		return -ENOMEM;
	c->rc = weft_gather(calls, 2);
	weft_cancel(s);

	int rc = weft_join(s, NULL);

	weft_chan_destroy(c->ch);
	return rc;
}

static void test_rendezvous_under_long_deadline_keeps_the_heap_bounded(void **state)
{
	struct ctx c = { 0 };

	(void)state;
	assert_int_equal(t_run(scenario, &c), 0);
	assert_int_equal(c.rc, 0);
	print_message("most timers armed: %llu; RSS growth over the second half: %zd KiB\n",
		      (unsigned long long)c.most_timers,
		      ((ssize_t)c.rss_end - (ssize_t)c.rss_mid) / 1024);
	/* The sleeper, and at most one of the pair parked on the channel. */
	assert_true(c.most_timers <= 2);
	/* 150,000 more parks: nothing grows (the old heap grew ~24 bytes each). */
	assert_true(c.rss_end < c.rss_mid + 1024 * 1024);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rendezvous_under_long_deadline_keeps_the_heap_bounded),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
