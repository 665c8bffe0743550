/* SPDX-License-Identifier: MIT */
/*
 * Issue 11, defects 4 and 5: ring sizes at both ends.
 *   4: sq_entries = 1 with any deadline spun for ever (an op and its linked
 *      timeout need two SQ slots at once). One slot is now refused with
 *      -EINVAL; two slots run deadline-bound operations.
 *   5: sq_entries 16384 and 32768 failed with -EINVAL because the default
 *      CQ (8 x SQ) passed the kernel's 65536; the default is now clamped.
 */
#include "../helpers.h"

#include <errno.h>

static int nops_with_deadline(void *arg)
{
	(void)arg;
	weft_set_deadline(weft_now() + 10 * WEFT_SEC);
	for (int i = 0; i < 100; i++) {
		int rc = weft_nop();

		if (rc < 0)
			return rc;
	}
	return 0;
}

static int many_nops(void *arg)
{
	(void)arg;

	weft_call calls[64];

	for (int i = 0; i < 64; i++)
		calls[i] = (weft_call){ .fn = nops_with_deadline };
	return weft_gather(calls, 64);
}

static void test_sq_entries_one_is_refused(void **state)
{
	weft_config cfg;
	weft_loop *l = NULL;

	(void)state;
	weft_config_init(&cfg);
	cfg.sq_entries = 1;
	assert_int_equal(weft_loop_create(&l, &cfg), -EINVAL);
	assert_null(l);
}

static void test_sq_entries_two_runs_deadline_ops(void **state)
{
	weft_config cfg;
	weft_stats st;

	(void)state;
	weft_config_init(&cfg);
	cfg.sq_entries = 2;
	assert_int_equal(t_run_cfg(&cfg, many_nops, NULL, &st), 0);
	assert_int_equal(st.inflight, 0);
	if (st.backend == WEFT_BACKEND_URING)
		assert_true(st.sq_full > 0);
}

static void test_largest_sq_sizes_get_a_clamped_cq(void **state)
{
	static const uint32_t sizes[] = { 16384, 32768 };

	(void)state;
	for (int i = 0; i < 2; i++) {
		weft_config cfg;
		weft_loop *l = NULL;

		weft_config_init(&cfg);
		cfg.sq_entries = sizes[i];

		int rc = weft_loop_create(&l, &cfg);

		if (rc == -ENOMEM) {
			print_message("a ring of %u entries does not fit here: %s\n", sizes[i],
				      weft_loop_explain(rc));
			skip();
		}
		assert_int_equal(rc, 0);
		weft_loop_destroy(l);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sq_entries_one_is_refused),
		cmocka_unit_test(test_sq_entries_two_runs_deadline_ops),
		cmocka_unit_test(test_largest_sq_sizes_get_a_clamped_cq),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
