/* SPDX-License-Identifier: MIT */
/*
 * Issue 21, defect 4: two threads making a fresh loop's first run at once
 * both ran it (SIGSEGV in 4 of 6 runs of 3,000 races; ThreadSanitizer
 * reported the race on running/owner/ran).
 *
 * Checked, 300 times: one of the two runs the loop (0), the other gets
 * -EBUSY (or -EXDEV, if the first run was already over); the loop's fiber
 * ran once. This test also runs under ThreadSanitizer (suite pool).
 */
#include "../helpers.h"

#include <pthread.h>
#include <stdatomic.h>

#define ROUNDS 300

struct race {
	weft_loop *l;
	pthread_barrier_t go;
	int rc[2];
};

static _Atomic int fiber_runs;

struct arg {
	struct race *r;
	int i;
};

static int once(void *arg)
{
	(void)arg;
	atomic_fetch_add(&fiber_runs, 1);
	return weft_nop();
}

static void *runner(void *p)
{
	struct arg *a = p;

	pthread_barrier_wait(&a->r->go);
	a->r->rc[a->i] = weft_loop_run(a->r->l);
	return NULL;
}

static void test_two_first_runs_one_wins(void **state)
{
	(void)state;
	for (int round = 0; round < ROUNDS; round++) {
		struct race r;
		struct arg args[2] = { { &r, 0 }, { &r, 1 } };
		pthread_t t[2];

		assert_int_equal(weft_loop_create(&r.l, NULL), 0);
		assert_int_equal(weft_spawn(r.l, once, NULL, NULL), 0);
		pthread_barrier_init(&r.go, NULL, 2);
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&t[i], NULL, runner, &args[i]), 0);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&r.go);
		weft_loop_destroy(r.l);

		int wins = (r.rc[0] == 0) + (r.rc[1] == 0);
		int lost = r.rc[0] ? r.rc[0] : r.rc[1];

		assert_int_equal(wins, 1);
		assert_true(lost == -EBUSY || lost == -EXDEV);
	}
	assert_int_equal(atomic_load(&fiber_runs), ROUNDS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_first_runs_one_wins),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
