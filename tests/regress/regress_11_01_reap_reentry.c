/* SPDX-License-Identifier: MIT */
/*
 * Issue 11, defect 1: reaping re-entered itself. An SQPOLL ring of 8 SQ
 * entries with 256 fibers doing weft_nop and 64 doing weft_offload aborted
 * in about one run of six with "a CQE arrived for an operation that is not
 * in flight": the offload pool re-armed its eventfd poll from inside the
 * completion handler, and on a full SQ that flush reaped again from the
 * same CQ head. Now no completion handler takes an SQE (work submitted
 * while completions are dispatched waits for the tick), and finished
 * offload jobs come back through the loop's inbox.
 *
 * The mix below (many offloads finishing on many workers while 32 fibers
 * keep the 8-slot SQ full) aborted today's main in about one run in four;
 * 20 runs make a pass by luck unlikely (under 1%).
 */
#include "../helpers.h"

#include <errno.h>

/* Operations per fiber: fewer under valgrind, where 64 threads crawl. */
static int per_fiber = 300;

static int nopper(void *arg)
{
	(void)arg;
	for (int i = 0; i < per_fiber; i++) {
		int rc = weft_nop();

		if (rc < 0)
			return rc;
	}
	return 0;
}

static int work(void *arg)
{
	(void)arg;
	return 7;
}

static int offloader(void *arg)
{
	(void)arg;
	for (int i = 0; i < per_fiber; i++) {
		int result = 0;
		int rc = weft_offload(work, NULL, &result);

		if (rc < 0)
			return rc;
		if (result != 7)
			return -EIO;
	}
	return 0;
}

static int mix(void *arg)
{
	weft_call calls[96];

	(void)arg;
	for (int i = 0; i < 96; i++)
		calls[i] = (weft_call){ .fn = i < 64 ? offloader : nopper };
	return weft_gather(calls, 96);
}

static void test_full_sq_sqpoll_nops_and_offloads_never_reenter_reaping(void **state)
{
	int runs = 20;

	(void)state;
	if (t_under_valgrind()) {
		runs = 1;
		per_fiber = 10;
	}
	for (int run = 0; run < runs; run++) {
		weft_config cfg;
		weft_stats st;

		weft_config_init(&cfg);
		cfg.sq_entries = 8;
		cfg.flags = WEFT_CONFIG_SQPOLL;
		cfg.offload_threads = 64;

		int rc = t_run_cfg(&cfg, mix, NULL, &st);

		if (rc == -EPERM || rc == -EINVAL) {
			print_message("SQPOLL is not allowed here (io_uring_setup: %d)\n", rc);
			skip();
		}
		assert_int_equal(rc, 0);
		assert_int_equal(st.inflight, 0);
		if (st.backend == WEFT_BACKEND_URING)
			assert_true(st.sq_full > 0); /* the SQ really was full */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_sq_sqpoll_nops_and_offloads_never_reenter_reaping),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
