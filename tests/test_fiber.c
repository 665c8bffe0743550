/* SPDX-License-Identifier: MIT */
/*
 * Fibers: spawn, join, detach, yield order, cancel, -EPERM, limits, overflow,
 * guard pages past the map-count budget.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <fenv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- spawn, join, detach ---------------------------------------------- */

static int return_arg(void *arg)
{
	return (int)(intptr_t)arg;
}

struct join_ctx {
	int rc[4];
	int result[4];
};

static int join_three(void *arg)
{
	struct join_ctx *c = arg;
	weft_fiber *f[3];

	for (int i = 0; i < 3; i++)
		c->rc[i] = weft_spawn(NULL, return_arg, (void *)(intptr_t)(i * 7 - 5), &f[i]);
	for (int i = 2; i >= 0; i--) /* joined in reverse: order does not matter */
		c->rc[i] = c->rc[i] ? c->rc[i] : weft_join(f[i], &c->result[i]);
	return 42;
}

static void test_join_returns_fiber_result(void **state)
{
	struct join_ctx c;

	(void)state;
	memset(&c, 0x55, sizeof(c));
	assert_int_equal(t_run(join_three, &c), 42);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c.rc[i], 0);
		assert_int_equal(c.result[i], i * 7 - 5);
	}
}

static void test_weft_main_returns_fn_result(void **state)
{
	(void)state;
	assert_int_equal(weft_main(return_arg, (void *)(intptr_t)-77), -77);
	assert_int_equal(weft_main(NULL, NULL), -EINVAL);
}

static int detached_ran;

static int bump_after_yield(void *arg)
{
	(void)arg;
	weft_yield();
	detached_ran++;
	return 0;
}

static int spawn_detached(void *arg)
{
	int *rc = arg;

	for (int i = 0; i < 1000 && *rc == 0; i++)
		*rc = weft_go(bump_after_yield, NULL);
	return 0; /* returns before its detached children finish */
}

static void test_detached_fibers_outlive_spawner_and_free_themselves(void **state)
{
	weft_stats st;
	int rc = 0;

	(void)state;
	detached_ran = 0;
	assert_int_equal(t_run_cfg(NULL, spawn_detached, &rc, &st), 0);
	assert_int_equal(rc, 0);
	assert_int_equal(detached_ran, 1000);
	assert_int_equal(st.spawned, 1001);
	assert_int_equal(st.fibers, 0);
	/* Freed stacks are reused: far fewer stacks than fibers spawned over time. */
	assert_true(st.stacks <= 1024 + 16);
}

static int join_done_rc = 1;
static int join_done_result;

static int join_finished_child(void *arg)
{
	weft_fiber *f;

	(void)arg;
	if (weft_spawn(NULL, return_arg, (void *)(intptr_t)9, &f) < 0)
		return -1;
	weft_yield(); /* the child runs and returns */
	weft_cancel(weft_self());
	/* A child that has returned is joined without blocking, even when cancelled. */
	join_done_rc = weft_join(f, &join_done_result);
	return 0;
}

static void test_join_of_returned_fiber_does_not_block(void **state)
{
	(void)state;
	assert_int_equal(t_run(join_finished_child, NULL), 0);
	assert_int_equal(join_done_rc, 0);
	assert_int_equal(join_done_result, 9);
}

struct join_errs {
	int null_rc;
	int self_rc;
	int busy_rc;
	int detached_rc;
	int first_rc;
};

static int sleeper_ms(void *arg)
{
	return weft_sleep((int64_t)(intptr_t)arg * WEFT_MSEC);
}

struct join_errs_frame {
	weft_fiber *target;
	struct join_errs e;
};

static int second_joiner(void *arg)
{
	struct join_errs_frame *fr = arg;

	fr->e.busy_rc = weft_join(fr->target, NULL);
	return 0;
}

static int join_errors(void *arg)
{
	struct join_errs_frame *fr = arg;
	weft_fiber *other;

	fr->e.null_rc = weft_join(NULL, NULL);
	fr->e.self_rc = weft_join(weft_self(), NULL);
	if (weft_spawn(NULL, sleeper_ms, (void *)(intptr_t)20, &fr->target) < 0)
		return -1;
	if (weft_spawn(NULL, second_joiner, fr, &other) < 0)
		return -1;
	weft_yield(); /* let second_joiner start first, then join the same fiber here */
	fr->e.first_rc = weft_join(fr->target, NULL);
	return weft_join(other, NULL);
}

static void test_join_fails_on_null_self_and_second_joiner(void **state)
{
	struct join_errs_frame fr;

	(void)state;
	memset(&fr, 0x55, sizeof(fr));
	assert_int_equal(t_run(join_errors, &fr), 0);
	assert_int_equal(fr.e.null_rc, -EINVAL);
	assert_int_equal(fr.e.self_rc, -EDEADLK);
	assert_int_equal(fr.e.busy_rc, 0); /* second_joiner got there first */
	assert_int_equal(fr.e.first_rc, -EBUSY);
}

/* ---- yield order -------------------------------------------------------- */

struct order {
	char log[64];
	int len;
};

struct order_arg {
	struct order *o;
	char name;
};

static int log_and_yield(void *arg)
{
	struct order_arg *a = arg;

	for (int i = 0; i < 3; i++) {
		a->o->log[a->o->len++] = a->name;
		weft_yield();
	}
	return 0;
}

static int spawn_three_yielders(void *arg)
{
	static struct order_arg a[3];
	struct order *o = arg;

	for (int i = 0; i < 3; i++) {
		a[i] = (struct order_arg){ .o = o, .name = (char)('a' + i) };
		if (weft_go(log_and_yield, &a[i]) < 0)
			return -1;
	}
	return 0;
}

static void test_yield_runs_ready_fibers_in_spawn_order(void **state)
{
	struct order o = { .len = 0 };

	(void)state;
	assert_int_equal(t_run(spawn_three_yielders, &o), 0);
	o.log[o.len] = '\0';
	assert_string_equal(o.log, "abcabcabc");
}

static void test_yield_outside_fiber_does_nothing(void **state)
{
	(void)state;
	weft_yield();
	assert_null(weft_self());
	assert_int_equal(weft_cancelled(), 0);
	assert_null(weft_loop_current());
}

/* ---- -EPERM outside a fiber, -EINVAL ----------------------------------- */

static void test_blocking_calls_fail_eperm_outside_fiber(void **state)
{
	weft_loop *l;
	weft_fiber *f;
	weft_call call = { .fn = return_arg };

	(void)state;
	assert_int_equal(weft_sleep(WEFT_MSEC), -EPERM);
	assert_int_equal(weft_sleep_until(weft_now() + WEFT_MSEC), -EPERM);
	assert_int_equal(weft_nop(), -EPERM);
	assert_int_equal(weft_gather(&call, 1), -EPERM);
	assert_int_equal(weft_go(return_arg, NULL), -EPERM);
	assert_int_equal(weft_spawn(NULL, return_arg, NULL, NULL), -EPERM);
	assert_int_equal(weft_set_deadline(weft_now()), WEFT_FOREVER);
	assert_int_equal(weft_deadline(), WEFT_FOREVER);

	assert_int_equal(weft_loop_create(&l, NULL), 0);
	assert_int_equal(weft_spawn(l, return_arg, NULL, &f), 0);
	assert_int_equal(weft_join(f, NULL), -EPERM); /* from the loop's thread, not a fiber */
	assert_int_equal(weft_loop_run(l), 0);
	weft_loop_destroy(l); /* frees the fiber nobody joined */
}

static void test_spawn_and_cancel_fail_einval_on_null(void **state)
{
	weft_loop *l;

	(void)state;
	assert_int_equal(weft_loop_create(&l, NULL), 0);
	assert_int_equal(weft_spawn(l, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(weft_cancel(NULL), -EINVAL);
	weft_loop_destroy(l);
}

static int spawn_until_refused(void *arg)
{
	int *rc = arg;
	int n = 0;

	while ((*rc = weft_go(sleeper_ms, (void *)(intptr_t)1)) == 0)
		n++;
	return n;
}

static void test_spawn_fails_eagain_past_max_fibers(void **state)
{
	weft_config cfg;
	int rc = 0;

	(void)state;
	weft_config_init(&cfg);
	cfg.max_fibers = 100;
	assert_int_equal(t_run_cfg(&cfg, spawn_until_refused, &rc, NULL), 99); /* + itself */
	assert_int_equal(rc, -EAGAIN);
}

/* ---- cancel ------------------------------------------------------------- */

struct cancel_ctx {
	int sleep_rc;
	int join_rc;
	int later_rc;
	int64_t slept_ns;
};

static int sleep_long(void *arg)
{
	struct cancel_ctx *c = arg;
	int64_t t0 = weft_now();

	c->sleep_rc = weft_sleep(10 * WEFT_SEC);
	c->slept_ns = weft_now() - t0;
	c->later_rc = weft_nop(); /* every later blocking call fails too */
	return 5;
}

static int join_long(void *arg)
{
	weft_fiber *f = arg;

	return weft_join(f, NULL);
}

static int cancel_sleeper_and_joiner(void *arg)
{
	struct cancel_ctx *c = arg;
	weft_fiber *sleeper;
	weft_fiber *joiner;
	int result = -1;

	if (weft_spawn(NULL, sleep_long, c, &sleeper) < 0 ||
	    weft_spawn(NULL, join_long, sleeper, &joiner) < 0)
		return -1;
	weft_sleep(5 * WEFT_MSEC); /* both are parked now */
	weft_cancel(joiner);
	if (weft_join(joiner, &c->join_rc) < 0)
		return -2;
	weft_cancel(sleeper);
	weft_cancel(sleeper); /* twice is harmless */
	if (weft_join(sleeper, &result) < 0)
		return -3;
	return result;
}

static void test_cancel_wakes_sleeping_and_joining_fibers(void **state)
{
	struct cancel_ctx c = { 1, 1, 1, 0 };

	(void)state;
	assert_int_equal(t_run(cancel_sleeper_and_joiner, &c), 5);
	assert_int_equal(c.join_rc, -ECANCELED);
	assert_int_equal(c.sleep_rc, -ECANCELED);
	assert_int_equal(c.later_rc, -ECANCELED);
	assert_true(c.slept_ns < 5 * WEFT_SEC);
}

static int cancel_before_start(void *arg)
{
	struct cancel_ctx *c = arg;
	weft_fiber *f;
	int result;

	if (weft_spawn(NULL, sleep_long, c, &f) < 0)
		return -1;
	weft_cancel(f); /* it has not run yet */
	if (weft_join(f, &result) < 0)
		return -2;
	c->join_rc = weft_cancelled();
	weft_cancel(weft_self()); /* a fiber may cancel itself */
	c->later_rc = weft_cancelled();
	return result;
}

static void test_cancel_before_first_run_fails_its_first_call(void **state)
{
	struct cancel_ctx c = { 1, 1, 1, 0 };

	(void)state;
	assert_int_equal(t_run(cancel_before_start, &c), 5);
	assert_int_equal(c.sleep_rc, -ECANCELED);
	assert_int_equal(c.join_rc, 0);
	assert_int_equal(c.later_rc, 1);
}

/* ---- the switch keeps per-fiber state ----------------------------------- */

struct fp_ctx {
	int a_seen;
	int b_seen;
	int a_after;
};

static int fp_a(void *arg)
{
	struct fp_ctx *c = arg;

	fesetround(FE_UPWARD);
	weft_yield();
	c->a_after = fegetround();
	fesetround(FE_TONEAREST);
	return 0;
}

static int fp_b(void *arg)
{
	struct fp_ctx *c = arg;

	c->b_seen = fegetround(); /* a fresh fiber starts with the default */
	fesetround(FE_DOWNWARD);
	weft_yield();
	fesetround(FE_TONEAREST);
	return 0;
}

static int fp_pair(void *arg)
{
	weft_fiber *a;
	weft_fiber *b;

	if (weft_spawn(NULL, fp_a, arg, &a) < 0 || weft_spawn(NULL, fp_b, arg, &b) < 0)
		return -1;
	return weft_join(a, NULL) | weft_join(b, NULL);
}

static void test_switch_keeps_rounding_mode_per_fiber(void **state)
{
	struct fp_ctx c = { 0 };

	(void)state;
	assert_int_equal(t_run(fp_pair, &c), 0);
	assert_int_equal(c.b_seen, FE_TONEAREST);
	assert_int_equal(c.a_after, FE_UPWARD);
	assert_int_equal(fegetround(), FE_TONEAREST);
}

static __attribute__((noinline)) int use_stack(int depth, int yield_at_bottom)
{
	volatile char buf[1024];

	memset((char *)buf, depth & 0xff, sizeof(buf));
	if (depth == 0) {
		if (yield_at_bottom)
			weft_yield();
		return buf[7];
	}
	return use_stack(depth - 1, yield_at_bottom) + buf[depth % sizeof(buf)];
}

static int use_48k(void *arg)
{
	(void)arg;
	return use_stack(44, 1) >= 0 ? 0 : 0;
}

static int many_deep(void *arg)
{
	weft_fiber *f[64];

	(void)arg;
	for (int i = 0; i < 64; i++)
		if (weft_spawn(NULL, use_48k, NULL, &f[i]) < 0)
			return -1;
	for (int i = 0; i < 64; i++)
		if (weft_join(f[i], NULL) < 0)
			return -2;
	return 0;
}

static void test_fibers_may_use_most_of_their_stack(void **state)
{
	(void)state;
	assert_int_equal(t_run(many_deep, NULL), 0);
}

/* ---- stack overflow, in a child process --------------------------------- */

static int overflow_forever(void *arg)
{
	(void)arg;
	return use_stack(1 << 20, 0);
}

static int overflow_then_yield(void *arg)
{
	(void)arg;
	return use_stack(20, 1); /* ~21 KiB on a 16 KiB stack, then a switch */
}

static int overflow_deep_then_yield(void *arg)
{
	(void)arg;
	return use_stack(80, 1); /* ~85 KiB on a 64 KiB stack, then a switch */
}

static int spawn_overflow_then_yield(void *arg)
{
	weft_fiber *f;

	(void)arg;
	/* The second stack of the slab: below it lies the first, not a guard page. */
	if (weft_spawn(NULL, overflow_then_yield, NULL, &f) < 0)
		return -1;
	return weft_join(f, NULL);
}

static void run_overflow(const weft_config *cfg, weft_fn fn)
{
	struct sigaction dfl;

	/* cmocka (and ASan) catch SIGSEGV; weft reports only over the default. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGSEGV, &dfl, NULL);
	t_run_cfg(cfg, fn, NULL, NULL);
	_exit(0); /* not reached if the overflow was caught */
}

static void child_overflow_guarded(void)
{
	run_overflow(NULL, overflow_forever);
}

static void child_overflow_canary(void)
{
	weft_config cfg;

	weft_config_init(&cfg);
	cfg.stack_guards = 0;
	cfg.stack_size = 16 * 1024;
	run_overflow(&cfg, spawn_overflow_then_yield);
}

static void test_stack_overflow_into_guard_page_aborts_naming_fiber(void **state)
{
	(void)state;
	t_assert_overflow(child_overflow_guarded, "guard page", NULL);
}

static void test_stack_overflow_without_guard_caught_at_switch(void **state)
{
	(void)state;
	t_assert_overflow(child_overflow_canary, "stack overflow: the", NULL);
}

/*
 * Frames of 3000 bytes that write only their lowest byte (and the return
 * address at their top): each leaps over the 64-byte red zone.
 */
static __attribute__((noinline)) int leap(int depth, int yield_at_bottom)
{
	volatile char big[3000];

	big[0] = (char)depth;
	if (depth == 0) {
		if (yield_at_bottom) /* a switch: the only fiber's weft_yield would not be one */
			weft_sleep(WEFT_MSEC);
		return big[0];
	}
	return leap(depth - 1, yield_at_bottom) + big[0];
}

static int leap_forever(void *arg)
{
	(void)arg;
	return leap(1 << 20, 0);
}

static int leap_then_yield(void *arg)
{
	(void)arg;
	return leap(7, 1); /* ~21 KiB on a 16 KiB stack, then a switch */
}

static int spawn_leap_then_yield(void *arg)
{
	weft_fiber *f;

	(void)arg;
	if (weft_spawn(NULL, leap_then_yield, NULL, &f) < 0)
		return -1;
	return weft_join(f, NULL);
}

static void child_leap_guarded(void)
{
	run_overflow(NULL, leap_forever); /* the default configuration */
}

static void child_leap_unguarded(void)
{
	weft_config cfg;

	weft_config_init(&cfg);
	cfg.stack_guards = 0;
	cfg.stack_size = 16 * 1024;
	run_overflow(&cfg, spawn_leap_then_yield);
}

static void test_frames_leaping_past_the_red_zone_hit_the_guard_page(void **state)
{
	(void)state;
	t_assert_overflow(child_leap_guarded, "guard page", NULL);
}

static void test_frames_leaping_past_the_red_zone_unguarded_caught_at_switch(void **state)
{
	(void)state;
#if defined(WEFT_TEST_SANITIZED)
	/* ASan's larger frames may leap past the stack below too, into the slab's guard. */
	t_assert_overflow(child_leap_unguarded, "overflow", NULL);
#else
	t_assert_overflow(child_leap_unguarded, "stack overflow: the", NULL);
#endif
}

/* ---- what stacks cost ----------------------------------------------------- */

#define IDLE_FIBERS 4000

static int idle_until_closed(void *arg)
{
	weft_chan *ch = arg;
	char c;

	return weft_chan_recv(ch, &c) == -EPIPE ? 0 : -1;
}

/* Spawn IDLE_FIBERS parked fibers; *arg: the RSS they added, in bytes. */
static int measure_idle(void *arg)
{
	size_t *grew = arg;
	size_t before = t_rss_bytes();
	weft_chan *ch;

	if (weft_chan_create(&ch, 0, 1) < 0)
		return -1;
	for (int i = 0; i < IDLE_FIBERS; i++)
		if (weft_go(idle_until_closed, ch) < 0)
			return -2;
	weft_sleep(5 * WEFT_MSEC); /* every one of them runs and parks */
	*grew = t_rss_bytes() - before;
	weft_chan_close(ch);
	weft_sleep(5 * WEFT_MSEC);
	weft_chan_destroy(ch);
	return 0;
}

static void test_guarded_and_unguarded_stacks_cost_the_same_memory(void **state)
{
	weft_config cfg;
	size_t guarded = 0, unguarded = 0;
	weft_stats st;

	(void)state;
#if defined(WEFT_TEST_SANITIZED)
	skip(); /* ASan's shadow and fake stacks move the figures */
#endif
	if (t_under_valgrind())
		skip();
	weft_config_init(&cfg);
	assert_int_equal(t_run_cfg(&cfg, measure_idle, &guarded, &st), 0);
	assert_int_equal(st.stacks_guarded, st.stacks);
	cfg.stack_guards = 0;
	assert_int_equal(t_run_cfg(&cfg, measure_idle, &unguarded, &st), 0);
	assert_int_equal(st.stacks_guarded, 0);
	print_message("%d idle fibers: %zu KiB guarded, %zu KiB unguarded\n", IDLE_FIBERS,
		      guarded >> 10, unguarded >> 10);
	/* One page each, give or take what else the process touched. */
	assert_true(guarded >= (size_t)IDLE_FIBERS * 4096 * 3 / 4);
	assert_true(unguarded <= guarded + guarded / 8);
	assert_true(guarded <= unguarded + unguarded / 8);
}

/* ---- trimming: memory follows the fibers alive ------------------------------ */

#define DEEP_FIBERS 1000

struct deep {
	size_t peak;
	size_t after;
};

static int deep_then_sleep(void *arg)
{
	(void)arg;
	return use_stack(38, 0) >= 0 && weft_sleep(20 * WEFT_MSEC) == 0 ? 0 : -1;
}

static int deep_burst(void *arg)
{
	struct deep *d = arg;
	weft_fiber **f = calloc(DEEP_FIBERS, sizeof(*f));
	int rc = 0;

	if (!f)
		return -1;
	for (int i = 0; i < DEEP_FIBERS && rc == 0; i++)
		rc = weft_spawn(NULL, deep_then_sleep, NULL, &f[i]);
	weft_sleep(10 * WEFT_MSEC); /* all deep and asleep */
	d->peak = t_rss_bytes();
	for (int i = 0; i < DEEP_FIBERS; i++)
		if (f[i] && weft_join(f[i], NULL) < 0)
			rc = -2;
	d->after = t_rss_bytes();
	free(f);
	return rc;
}

static void test_freed_stacks_give_their_pages_back(void **state)
{
	struct deep d;
	weft_stats st;

	(void)state;
	assert_int_equal(t_run_cfg(NULL, deep_burst, &d, &st), 0);
	print_message("%d fibers ~40 KiB deep: RSS %zu MiB at the peak, %zu MiB after; %llu "
		      "stacks trimmed\n",
		      DEEP_FIBERS, d.peak >> 20, d.after >> 20,
		      (unsigned long long)st.stacks_trimmed);
	/* All but the 64 warm ones and at most 256 more: trimmed to their top page. */
	assert_true(st.stacks_trimmed >= DEEP_FIBERS - 64 - 256);
	assert_true(st.stacks_trimmed <= DEEP_FIBERS);
#if !defined(WEFT_TEST_SANITIZED)
	if (!t_under_valgrind())
		assert_true(d.after + (size_t)DEEP_FIBERS * 20 * 1024 <= d.peak);
#endif
}

/* ---- guards on kernels without guard markers ------------------------------- */

#define UNGUARDED_LINE "weft: no memory mappings left for guard pages"

static void child_guard_budget(void)
{
	weft_config cfg;
	weft_stats st;
	int rc = 0;
	int n;

	setenv("WEFT_GUARD_MARKERS", "off", 1);
	weft_config_init(&cfg);
	cfg.stack_guards = WEFT_STACK_GUARDS_ALL; /* all or nothing, asked for */
	n = t_run_cfg(&cfg, spawn_until_refused, &rc, &st);
	fprintf(stderr, "n=%d rc=%d stacks=%llu guarded=%llu unguarded=%llu\n%s\n", n, rc,
		(unsigned long long)st.stacks, (unsigned long long)st.stacks_guarded,
		(unsigned long long)st.stacks_unguarded, weft_loop_explain(rc));
	_exit(0);
}

static void test_guards_past_the_map_count_budget_fail_enomem_not_silently(void **state)
{
	char err[4096];
	int n = -1, rc = 0;
	unsigned long long stacks = 0, guarded = 1, unguarded = 1;

	(void)state;
	if (t_under_valgrind())
		skip(); /* tens of thousands of mprotect()s */
	assert_int_equal(t_fork(child_guard_budget, err, sizeof(err)), 0);
	print_message("child: %s", err);
	assert_int_equal(sscanf(err, "n=%d rc=%d stacks=%llu guarded=%llu unguarded=%llu", &n, &rc,
				&stacks, &guarded, &unguarded),
			 5);
	assert_int_equal(rc, -ENOMEM);
	assert_true(n > 1000); /* tens of thousands on a stock vm.max_map_count */
	assert_true(guarded == stacks);
	assert_int_equal(unguarded, 0);
	assert_non_null(strstr(err, "vm.max_map_count"));
	assert_null(strstr(err, UNGUARDED_LINE)); /* an error to the program, not a line */
}

/* ---- the default past the guard budget: unguarded stacks, said once ------------ */

#define C40K 40000

/*
 * Whether vm.max_map_count leaves guard pages for all C40K stacks (distributions
 * that raise it to 1048576): then no budget runs out, and there is nothing to test.
 */
static int budget_covers_c40k(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long max = 0;

	if (f && fscanf(f, "%ld", &max) != 1)
		max = 0;
	if (f)
		fclose(f);
	if (max / 2 <= C40K)
		return 0;
	print_message("vm.max_map_count is %ld: guard pages for all %d stacks, no budget to "
		      "run out of\n",
		      max, C40K);
	return 1;
}

static int park_until_closed(void *arg)
{
	weft_chan *ch = arg;
	char c;

	return weft_chan_recv(ch, &c) == -EPIPE ? 7 : -1;
}

/* C40K joinable fibers alive at once, then all joined; 0 or a negative step. */
static int spawn_40k_and_join(void *arg)
{
	weft_fiber **f = calloc(C40K, sizeof(*f));
	weft_chan *ch;
	int rc = 0;

	(void)arg;
	if (!f || weft_chan_create(&ch, 0, 1) < 0)
		return -1;
	for (int i = 0; i < C40K && rc == 0; i++)
		if (weft_spawn(NULL, park_until_closed, ch, &f[i]) < 0)
			rc = -2 - i;
	weft_sleep(WEFT_MSEC); /* every one of them runs and parks: all alive */

	weft_stats st;

	weft_loop_stats(weft_loop_current(), &st);
	if (rc == 0 && st.fibers < C40K)
		rc = -3;
	weft_chan_close(ch);
	for (int i = 0; i < C40K; i++) {
		int result = 0;

		if (f[i] && (weft_join(f[i], &result) < 0 || result != 7) && rc == 0)
			rc = -4;
	}
	weft_chan_destroy(ch);
	free(f);
	return rc;
}

static void child_default_past_budget(void)
{
	weft_stats st[2];
	int rc[2];

	setenv("WEFT_GUARD_MARKERS", "off", 1);
	/* Two loops one after the other, each past the budget: the line comes once. */
	for (int i = 0; i < 2; i++)
		rc[i] = t_run_cfg(NULL, spawn_40k_and_join, NULL, &st[i]);
	for (int i = 0; i < 2; i++)
		fprintf(stderr, "rc=%d peak=%llu stacks=%llu guarded=%llu unguarded=%llu\n", rc[i],
			(unsigned long long)st[i].fibers_peak, (unsigned long long)st[i].stacks,
			(unsigned long long)st[i].stacks_guarded,
			(unsigned long long)st[i].stacks_unguarded);
	_exit(0);
}

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void test_default_guards_go_on_unguarded_past_the_budget_said_once(void **state)
{
	char err[8192];
	const char *p;

	(void)state;
	if (t_under_valgrind())
		skip(); /* 80,000 fibers and tens of thousands of mprotect()s */
	if (budget_covers_c40k())
		skip();
	assert_int_equal(t_fork(child_default_past_budget, err, sizeof(err)), 0);
	print_message("child: %s", err);
	assert_int_equal(count_of(err, UNGUARDED_LINE), 1);
	assert_non_null(strstr(err, "vm.max_map_count"));
	assert_non_null(strstr(err, "WEFT_STACK_GUARDS_ALL"));
	p = strstr(err, "rc=");
	for (int i = 0; i < 2; i++) {
		int rc = -1;
		unsigned long long peak = 0, stacks = 0, guarded = 0, unguarded = 0;

		assert_non_null(p);
		assert_int_equal(sscanf(p,
					"rc=%d peak=%llu stacks=%llu guarded=%llu unguarded=%llu",
					&rc, &peak, &stacks, &guarded, &unguarded),
				 5);
		assert_int_equal(rc, 0);
		assert_true(peak > C40K);
		assert_true(guarded > 1000); /* guards while the budget lasted */
		assert_true(unguarded > 0);
		assert_int_equal(guarded + unguarded, stacks); /* every stack was meant to be */
		p = strstr(p + 1, "rc=");
	}
}

/* Spawn parked fibers until the budget is spent, then one that overflows its stack. */
static int overflow_past_budget(void *arg)
{
	weft_stats st = { 0 };
	weft_fiber *f;

	(void)arg;
	while (st.stacks_unguarded == 0) {
		if (weft_go(sleeper_ms, (void *)(intptr_t)10000) < 0)
			return -1;
		weft_loop_stats(weft_loop_current(), &st);
	}
	/* One more: the overflowing stack is not its slab's lowest (a stack lies below). */
	if (weft_go(sleeper_ms, (void *)(intptr_t)10000) < 0 ||
	    weft_spawn(NULL, overflow_deep_then_yield, NULL, &f) < 0)
		return -2;
	return weft_join(f, NULL);
}

static void child_overflow_past_budget(void)
{
	setenv("WEFT_GUARD_MARKERS", "off", 1);
	run_overflow(NULL, overflow_past_budget); /* the default configuration */
}

static void test_overflow_of_a_stack_past_the_budget_is_caught(void **state)
{
	(void)state;
	if (t_under_valgrind() || budget_covers_c40k())
		skip();
	t_assert_overflow(child_overflow_past_budget, "stack overflow: the", NULL);
}

static int spawn_300(void *arg)
{
	(void)arg;
	for (int i = 0; i < 300; i++)
		if (weft_go(sleeper_ms, (void *)(intptr_t)1) < 0)
			return -1;
	return 0;
}

static void child_guard_number(void)
{
	weft_config cfg;
	weft_stats st;
	int rc;

	setenv("WEFT_GUARD_MARKERS", "off", 1);
	weft_config_init(&cfg);
	cfg.stack_guards = 100;
	rc = t_run_cfg(&cfg, spawn_300, NULL, &st);
	fprintf(stderr, "rc=%d stacks=%llu guarded=%llu\n", rc, (unsigned long long)st.stacks,
		(unsigned long long)st.stacks_guarded);
	_exit(0);
}

static void test_a_number_of_guards_guards_that_many_then_none(void **state)
{
	char err[4096];
	int rc = -1;
	unsigned long long stacks = 0, guarded = 0;

	(void)state;
	assert_int_equal(t_fork(child_guard_number, err, sizeof(err)), 0);
	assert_int_equal(sscanf(err, "rc=%d stacks=%llu guarded=%llu", &rc, &stacks, &guarded), 3);
	assert_int_equal(rc, 0);
	assert_true(stacks >= 301);
	assert_int_equal(guarded, 100);
}

/* ---- out of memory ------------------------------------------------------ */

static int spawn_until_oom(void *arg)
{
	int *rc = arg;
	int n = 0;

	while ((*rc = weft_go(sleeper_ms, (void *)(intptr_t)1)) == 0)
		n++;
	return n;
}

static void child_oom(void)
{
	weft_config cfg;
	weft_loop *l;
	int rc = 0;
	struct rlimit rl;
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;

	if (!f || fscanf(f, "%lu", &pages) != 1)
		_exit(10);
	fclose(f);
	weft_config_init(&cfg);
	cfg.stack_size = 1024 * 1024; /* a few slabs exhaust the limit quickly */
	if (weft_loop_create(&l, &cfg) < 0)
		_exit(11);
	/* 256 MiB of address space beyond what the process has now. */
	rl.rlim_cur = rl.rlim_max = pages * 4096UL + (256UL << 20);
	if (setrlimit(RLIMIT_AS, &rl) != 0)
		_exit(12);
	weft_loop_destroy(l);
	if (weft_loop_create(&l, &cfg) < 0)
		_exit(13);
	weft_loop_destroy(l);

	int n = t_run_cfg(&cfg, spawn_until_oom, &rc, NULL);

	if (rc != -ENOMEM)
		_exit(14);
	if (n < 16)
		_exit(15); /* it must have got somewhere before running out */
	_exit(0);
}

static void test_spawn_fails_enomem_when_address_space_runs_out(void **state)
{
	char err[4096];
	int status;

	(void)state;
#if defined(WEFT_TEST_SANITIZED)
	skip(); /* ASan's shadow memory does not fit under RLIMIT_AS */
#endif
	if (getenv("WEFT_TEST_VALGRIND"))
		skip();
	status = t_fork(child_oom, err, sizeof(err));
	print_message("%s", err);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_join_returns_fiber_result),
		cmocka_unit_test(test_weft_main_returns_fn_result),
		cmocka_unit_test(test_detached_fibers_outlive_spawner_and_free_themselves),
		cmocka_unit_test(test_join_of_returned_fiber_does_not_block),
		cmocka_unit_test(test_join_fails_on_null_self_and_second_joiner),
		cmocka_unit_test(test_yield_runs_ready_fibers_in_spawn_order),
		cmocka_unit_test(test_yield_outside_fiber_does_nothing),
		cmocka_unit_test(test_blocking_calls_fail_eperm_outside_fiber),
		cmocka_unit_test(test_spawn_and_cancel_fail_einval_on_null),
		cmocka_unit_test(test_spawn_fails_eagain_past_max_fibers),
		cmocka_unit_test(test_cancel_wakes_sleeping_and_joining_fibers),
		cmocka_unit_test(test_cancel_before_first_run_fails_its_first_call),
		cmocka_unit_test(test_switch_keeps_rounding_mode_per_fiber),
		cmocka_unit_test(test_fibers_may_use_most_of_their_stack),
		cmocka_unit_test(test_stack_overflow_into_guard_page_aborts_naming_fiber),
		cmocka_unit_test(test_stack_overflow_without_guard_caught_at_switch),
		cmocka_unit_test(test_frames_leaping_past_the_red_zone_hit_the_guard_page),
		cmocka_unit_test(test_frames_leaping_past_the_red_zone_unguarded_caught_at_switch),
		cmocka_unit_test(test_guarded_and_unguarded_stacks_cost_the_same_memory),
		cmocka_unit_test(test_freed_stacks_give_their_pages_back),
		cmocka_unit_test(test_guards_past_the_map_count_budget_fail_enomem_not_silently),
		cmocka_unit_test(test_a_number_of_guards_guards_that_many_then_none),
		cmocka_unit_test(test_default_guards_go_on_unguarded_past_the_budget_said_once),
		cmocka_unit_test(test_overflow_of_a_stack_past_the_budget_is_caught),
		cmocka_unit_test(test_spawn_fails_enomem_when_address_space_runs_out),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
