/* SPDX-License-Identifier: MIT */
/*
 * Issue 11, defects 6 and 9: the tiny-ring test claimed to overflow the CQ
 * and never did, and stats.cq_overflow counted ticks that saw the flag.
 * Here 1000 kernel timeouts on a ring of 16 SQ and 32 CQ entries expire
 * while the loop's thread is blocked in a plain system call; on its return
 * the kernel runs their task work and posts 1000 completions into 32 slots,
 * holding the rest back (IORING_FEAT_NODROP). Every fiber must still wake,
 * exactly once, and the loop must have seen the overflow.
 *
 * COOP_TASKRUN and plain rings only: a DEFER_TASKRUN ring runs its task
 * work inside io_uring_enter, a bounded batch at a time (recent kernels),
 * so it never posts more than the CQ holds in this way.
 */
#include "../helpers.h"

#include <errno.h>
#include <time.h>

#define N 1000

struct ctx {
	int64_t at;
	int woke;
	int bad;
};

static int sleeper(void *arg)
{
	struct ctx *c = arg;
	int rc = weft_sleep_until(c->at);

	if (rc == 0)
		c->woke++;
	else
		c->bad++;
	return rc;
}

/* Blocks the loop's thread on purpose until every timeout has expired. */
static int blocker(void *arg)
{
	struct ctx *c = arg;
	int64_t left;

	weft_nop(); /* a tick: every sleeper's SQE reaches the kernel */
	while ((left = c->at + 50 * WEFT_MSEC - weft_now()) > 0) {
		struct timespec ts = { left / WEFT_SEC, left % WEFT_SEC };

		nanosleep(&ts, NULL);
	}
	return 0;
}

static int all_at_once(void *arg)
{
	struct ctx *c = arg;
	static weft_call calls[N + 1];

	c->at = weft_now() + 100 * WEFT_MSEC;
	for (int i = 0; i < N; i++)
		calls[i] = (weft_call){ .fn = sleeper, .arg = c };
	calls[N] = (weft_call){ .fn = blocker, .arg = c };
	return weft_gather(calls, N + 1);
}

static void test_cq_overflow_holds_completions_back_and_loses_none(void **state)
{
	static const uint32_t modes[] = { WEFT_RING_COOP_TASKRUN, WEFT_RING_PLAIN };

	(void)state;
	for (int m = 0; m < 2; m++) {
		weft_config cfg;
		weft_stats st;
		struct ctx c = { 0 };

		weft_config_init(&cfg);
		cfg.ring_mode = modes[m];
		cfg.sq_entries = 16;
		cfg.cq_entries = 32;
		cfg.timer_mode = WEFT_TIMERS_KERNEL; /* one IORING_OP_TIMEOUT per sleep */
		assert_int_equal(t_run_cfg(&cfg, all_at_once, &c, &st), 0);
		assert_int_equal(c.woke, N);
		assert_int_equal(c.bad, 0);
		print_message("ring mode %u: cq_overflow %llu, cqes %llu, enters %llu\n", modes[m],
			      (unsigned long long)st.cq_overflow, (unsigned long long)st.cqes,
			      (unsigned long long)st.enters);
		assert_true(st.cq_overflow > 0);
		assert_int_equal(st.cqes, st.sqes);
		assert_int_equal(st.inflight, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cq_overflow_holds_completions_back_and_loses_none),
	};

	if (!t_io_uring_usable() || !t_on_uring())
		return 77; /* io_uring only */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
