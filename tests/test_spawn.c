/* SPDX-License-Identifier: MIT */
/*
 * weft_spawn_with: a stack size per spawn (size classes, rounding, limits,
 * reuse), fiber names (at spawn, weft_set_name, truncation, bad input), and
 * the overflow report naming the fiber by its name.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Touch @depth KiB of stack, one 1 KiB frame at a time; switch at the bottom if asked. */
static __attribute__((noinline)) int use_stack(int depth, int yield_at_bottom)
{
	volatile char buf[1024];

	memset((char *)buf, depth & 0xff, sizeof(buf));
	if (depth == 0) {
		if (yield_at_bottom)
			weft_sleep(WEFT_MSEC); /* a switch: the red zone is checked */
		return buf[7];
	}
	return use_stack(depth - 1, yield_at_bottom) + buf[depth % sizeof(buf)];
}

/* ---- stack sizes ----------------------------------------------------------- */

/* A 128 KiB local buffer, written end to end, kept across a switch. */
static int big_buffer(void *arg)
{
	volatile char buf[128 * 1024];
	unsigned sum = 0;

	(void)arg;
	memset((char *)buf, 3, sizeof(buf));
	weft_sleep(WEFT_MSEC);
	for (size_t i = 0; i < sizeof(buf); i += 512)
		sum += (unsigned)buf[i];
	return sum == 3 * sizeof(buf) / 512 ? 0 : -1;
}

static int spawn_big(void *arg)
{
	const weft_spawn_opts o = { .stack_size = 256 * 1024 };
	weft_fiber *f;
	int result = -100;
	int rc = weft_spawn_with(NULL, big_buffer, NULL, &o, &f);

	(void)arg;
	if (rc < 0)
		return rc;
	rc = weft_join(f, &result);
	return rc < 0 ? rc : result;
}

static void test_spawn_with_256k_stack_holds_a_128k_buffer(void **state)
{
	weft_config cfg;
	weft_stats st;

	(void)state;
	weft_config_init(&cfg);
	cfg.stack_size = 16 * 1024; /* the loop's own stacks could not hold the buffer */
	assert_int_equal(t_run_cfg(&cfg, spawn_big, NULL, &st), 0);
	assert_int_equal(st.stack_size, 16 * 1024); /* the loop's size, unchanged */
	assert_int_equal(st.stacks_guarded, st.stacks);
}

struct sizes {
	int rc[8];
};

static int return_one(void *arg)
{
	(void)arg;
	return 1;
}

static int use_2k(void *arg)
{
	(void)arg;
	return use_stack(2, 1) >= 0 ? 1 : -1;
}

/*
 * 12 KiB and a switch: more than 12345 bytes rounded down to 3 pages would
 * hold (ASan's frames are larger: 8 KiB there).
 */
static int use_12k(void *arg)
{
	(void)arg;
#if defined(WEFT_TEST_SANITIZED)
	return use_stack(7, 1) >= 0 ? 2 : -1;
#else
	return use_stack(11, 1) >= 0 ? 2 : -1;
#endif
}

/* Spawn, join, and return its result or the first error. */
static int spawn_join(weft_fn fn, size_t size)
{
	const weft_spawn_opts o = { .stack_size = size };
	weft_fiber *f;
	int result = -100;
	int rc = weft_spawn_with(NULL, fn, NULL, &o, &f);

	if (rc < 0)
		return rc;
	rc = weft_join(f, &result);
	return rc < 0 ? rc : result;
}

static int try_sizes(void *arg)
{
	struct sizes *z = arg;
	weft_fiber *f = NULL;

	z->rc[0] = spawn_join(return_one, 1);	 /* one byte: one page */
	z->rc[1] = spawn_join(use_12k, 12345);	 /* unaligned: 4 pages, the 16 KiB class */
	z->rc[2] = spawn_join(use_2k, 64 << 20); /* a large class */
	z->rc[3] = weft_spawn_with(NULL, use_2k, NULL,
				   &(weft_spawn_opts){ .stack_size = WEFT_STACK_SIZE_MAX + 1 }, &f);
	z->rc[4] =
	    weft_spawn_with(NULL, use_2k, NULL, &(weft_spawn_opts){ .stack_size = SIZE_MAX }, NULL);
	z->rc[5] = weft_spawn_with(NULL, NULL, NULL, &(weft_spawn_opts){ 0 }, NULL);
	z->rc[6] = spawn_join(use_2k, 0); /* 0: the loop's own size */
	/* NULL options: weft_spawn itself. */
	z->rc[7] = weft_spawn_with(NULL, use_2k, NULL, NULL, &f);
	if (z->rc[7] == 0 && weft_join(f, &z->rc[7]) < 0)
		z->rc[7] = -200;
	return 0;
}

static void test_spawn_with_sizes_rounded_up_or_refused(void **state)
{
	struct sizes z;
	weft_stats st;

	(void)state;
	memset(&z, 0x55, sizeof(z));
	assert_int_equal(t_run_cfg(NULL, try_sizes, &z, &st), 0);
	assert_int_equal(z.rc[0], 1);
	assert_int_equal(z.rc[1], 2);
	assert_int_equal(z.rc[2], 1);
	assert_int_equal(z.rc[3], -EINVAL);
	assert_int_equal(z.rc[4], -EINVAL);
	assert_int_equal(z.rc[5], -EINVAL);
	assert_int_equal(z.rc[6], 1);
	assert_int_equal(z.rc[7], 1);
	assert_int_equal(st.stack_size, 64 * 1024);
}

static void test_spawn_with_fails_eperm_outside_a_loop(void **state)
{
	const weft_spawn_opts o = { .stack_size = 8192, .name = "x" };

	(void)state;
	assert_int_equal(weft_spawn_with(NULL, use_2k, NULL, &o, NULL), -EPERM);
	assert_int_equal(weft_spawn_with(NULL, use_2k, NULL, NULL, NULL), -EPERM);
	assert_int_equal(weft_spawn_with(NULL, NULL, NULL, &o, NULL), -EINVAL);
}

/* ---- another thread's loop ---------------------------------------------------- */

struct foreign {
	pthread_barrier_t made, used;
	weft_loop *loop;
	int rc;
};

static void *own_a_loop(void *arg)
{
	struct foreign *fo = arg;

	fo->rc = weft_loop_create(&fo->loop, NULL);
	pthread_barrier_wait(&fo->made);
	pthread_barrier_wait(&fo->used);
	weft_loop_destroy(fo->loop);
	return NULL;
}

static void test_spawn_with_options_fails_exdev_on_another_threads_loop(void **state)
{
	struct foreign fo = { 0 };
	const weft_spawn_opts o = { .name = "elsewhere" };
	pthread_t t;
	weft_fiber *f;

	(void)state;
	pthread_barrier_init(&fo.made, NULL, 2);
	pthread_barrier_init(&fo.used, NULL, 2);
	assert_int_equal(pthread_create(&t, NULL, own_a_loop, &fo), 0);
	pthread_barrier_wait(&fo.made);
	assert_int_equal(fo.rc, 0);
	assert_int_equal(weft_spawn_with(fo.loop, use_2k, NULL, &o, &f), -EXDEV);
	assert_int_equal(weft_spawn_with(fo.loop, use_2k, NULL, &o, NULL), -EXDEV);
	pthread_barrier_wait(&fo.used);
	pthread_join(t, NULL);
	pthread_barrier_destroy(&fo.made);
	pthread_barrier_destroy(&fo.used);
}

/* ---- reuse: mixed sizes, round after round ----------------------------------- */

#define ROUNDS 20
#define PER_ROUND 120

static int touch_then_sleep(void *arg)
{
	(void)arg;
	return use_stack(2, 1) >= 0 ? 0 : -1;
}

/* *arg: the stacks mapped after the first round, then after the last. */
static int mixed_rounds(void *arg)
{
	static const size_t sizes[] = { 0, 8192, 12345, 32768, 100000, 256 << 10, 1 << 20 };
	uint64_t *mapped = arg;
	weft_fiber *f[PER_ROUND];
	weft_stats st;

	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < PER_ROUND; i++) {
			const weft_spawn_opts o = { .stack_size = sizes[(i + r) % 7],
						    .name = "mix" };

			if (weft_spawn_with(NULL, touch_then_sleep, NULL, &o, &f[i]) < 0)
				return -1;
		}
		for (int i = 0; i < PER_ROUND; i++) {
			int result = -1;

			if (weft_join(f[i], &result) < 0 || result != 0)
				return -2;
		}
		weft_loop_stats(weft_loop_current(), &st);
		mapped[r == 0 ? 0 : 1] = st.stacks;
	}
	return 0;
}

static void test_spawn_with_mixed_sizes_reuses_stacks(void **state)
{
	uint64_t mapped[2] = { 0, 0 };
	weft_stats st;

	(void)state;
	assert_int_equal(t_run_cfg(NULL, mixed_rounds, mapped, &st), 0);
	print_message("%d rounds of %d fibers of 7 sizes: %llu stacks after the first, %llu "
		      "after the last\n",
		      ROUNDS, PER_ROUND, (unsigned long long)mapped[0],
		      (unsigned long long)mapped[1]);
	assert_true(mapped[0] > 0);
	assert_int_equal(mapped[1], mapped[0]); /* every later round reused the first's */
	assert_int_equal(st.spawned, 1 + ROUNDS * PER_ROUND);
}

/* ---- names ------------------------------------------------------------------ */

struct names {
	char at_spawn[WEFT_FIBER_NAME_MAX];
	char own[WEFT_FIBER_NAME_MAX];
	char renamed[WEFT_FIBER_NAME_MAX];
	char truncated[WEFT_FIBER_NAME_MAX];
	char reused[WEFT_FIBER_NAME_MAX];
	int own_rc, set_null, small, small_left, exact, zero_len, null_buf, null_f, joined;
};

static int read_own_name(void *arg)
{
	struct names *n = arg;

	n->own_rc = weft_fiber_name(weft_self(), n->own, sizeof(n->own));
	n->set_null = weft_set_name(NULL);
	if (weft_set_name("renamed") < 0)
		return -1;
	weft_yield();
	return 0;
}

static int no_op(void *arg)
{
	(void)arg;
	return 0;
}

#define LONG_NAME "0123456789abcdefghijklmnopqrstuvwxyz" /* 36 bytes */

static int name_checks(struct names *n)
{
	const weft_spawn_opts o = { .name = LONG_NAME };
	char small[8];
	weft_fiber *f;

	if (weft_spawn_with(NULL, no_op, NULL, &o, &f) < 0)
		return -2;
	if (weft_fiber_name(f, n->truncated, sizeof(n->truncated)) != 31)
		return -3;
	memset(small, 'k', sizeof(small));
	n->small = weft_fiber_name(f, small, sizeof(small));
	n->small_left = small[0] == 'k' && small[7] == 'k';
	n->exact = weft_fiber_name(f, small, 31); /* 31 bytes and no room for the NUL */
	n->zero_len = weft_fiber_name(f, small, 0);
	n->null_buf = weft_fiber_name(f, NULL, 8);
	n->null_f = weft_fiber_name(NULL, small, sizeof(small));
	if (weft_join(f, NULL) < 0)
		return -4;
	n->joined = weft_fiber_name(f, small, sizeof(small)); /* its stack is free again */
	/* The same control block, reused: no name of its own. */
	if (weft_spawn(NULL, no_op, NULL, &f) < 0)
		return -5;
	n->reused[0] = 'z';
	if (weft_fiber_name(f, n->reused, sizeof(n->reused)) != 0)
		return -6;
	return weft_join(f, NULL);
}

static int names_main(void *arg)
{
	struct names *n = arg;
	const weft_spawn_opts o = { .stack_size = 8192, .name = "reader" };
	weft_fiber *f;

	if (weft_spawn_with(NULL, read_own_name, n, &o, &f) < 0)
		return -1;
	if (weft_fiber_name(f, n->at_spawn, sizeof(n->at_spawn)) != 6)
		return -10;
	weft_yield(); /* it reads its name and renames itself */
	if (weft_fiber_name(f, n->renamed, sizeof(n->renamed)) != 7)
		return -11;
	if (weft_join(f, NULL) < 0)
		return -12;
	return name_checks(n);
}

static void test_fiber_names_at_spawn_by_set_name_truncated_and_checked(void **state)
{
	struct names n;
	char buf[WEFT_FIBER_NAME_MAX];

	(void)state;
	memset(&n, 0, sizeof(n));
	assert_int_equal(t_run(names_main, &n), 0);
	assert_string_equal(n.at_spawn, "reader");
	assert_int_equal(n.own_rc, 6);
	assert_string_equal(n.own, "reader");
	assert_int_equal(n.set_null, -EINVAL);
	assert_string_equal(n.renamed, "renamed");
	assert_int_equal(strlen(n.truncated), 31);
	assert_memory_equal(n.truncated, LONG_NAME, 31);
	assert_int_equal(n.small, -ERANGE);
	assert_true(n.small_left);
	assert_int_equal(n.exact, -ERANGE);
	assert_int_equal(n.zero_len, -EINVAL);
	assert_int_equal(n.null_buf, -EINVAL);
	assert_int_equal(n.null_f, -EINVAL);
	assert_int_equal(n.joined, -EINVAL);
	assert_string_equal(n.reused, "");
	/* Outside a fiber. */
	assert_int_equal(weft_set_name("nobody"), -EPERM);
	assert_int_equal(weft_fiber_name(NULL, buf, sizeof(buf)), -EINVAL);
}

/* ---- the overflow report names the fiber -------------------------------------- */

static int overflow_then_yield(void *arg)
{
	(void)arg;
	return use_stack(20, 1); /* ~21 KiB on a 16 KiB stack, then a switch */
}

static int sleep_long(void *arg)
{
	(void)arg;
	return weft_sleep(10 * WEFT_SEC);
}

/* A 16 KiB-class sleeper, then the named one that overflows (a stack lies below it). */
static int spawn_named_overflow(void *arg)
{
	const weft_spawn_opts sleeper = { .stack_size = 16 * 1024 };
	const weft_spawn_opts o = { .stack_size = 16 * 1024, .name = "deep-diver" };
	weft_fiber *f;

	(void)arg;
	if (weft_spawn_with(NULL, sleep_long, NULL, &sleeper, NULL) < 0 ||
	    weft_spawn_with(NULL, overflow_then_yield, NULL, &o, &f) < 0)
		return -1;
	return weft_join(f, NULL);
}

static void run_overflow(const weft_config *cfg)
{
	struct sigaction dfl;

	/* cmocka (and ASan) catch SIGSEGV; weft reports only over the default. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGSEGV, &dfl, NULL);
	t_run_cfg(cfg, spawn_named_overflow, NULL, NULL);
	_exit(0); /* not reached if the overflow was caught */
}

static void child_named_guarded(void)
{
	run_overflow(NULL);
}

static void child_named_unguarded(void)
{
	weft_config cfg;

	weft_config_init(&cfg);
	cfg.stack_guards = 0;
	run_overflow(&cfg);
}

static void test_overflow_of_a_sized_stack_into_its_guard_names_the_fiber(void **state)
{
	(void)state;
	t_assert_overflow(child_named_guarded, "guard page", "deep-diver");
}

static void test_overflow_of_a_sized_unguarded_stack_names_the_fiber(void **state)
{
	(void)state;
	t_assert_overflow(child_named_unguarded, "red zone", "deep-diver");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spawn_with_256k_stack_holds_a_128k_buffer),
		cmocka_unit_test(test_spawn_with_sizes_rounded_up_or_refused),
		cmocka_unit_test(test_spawn_with_fails_eperm_outside_a_loop),
		cmocka_unit_test(test_spawn_with_options_fails_exdev_on_another_threads_loop),
		cmocka_unit_test(test_spawn_with_mixed_sizes_reuses_stacks),
		cmocka_unit_test(test_fiber_names_at_spawn_by_set_name_truncated_and_checked),
		cmocka_unit_test(test_overflow_of_a_sized_stack_into_its_guard_names_the_fiber),
		cmocka_unit_test(test_overflow_of_a_sized_unguarded_stack_names_the_fiber),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
