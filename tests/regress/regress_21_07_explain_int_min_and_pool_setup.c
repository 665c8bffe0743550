/* SPDX-License-Identifier: MIT */
/*
 * Issue 21, defect 7: weft_loop_explain(INT_MIN) negated INT_MIN (UBSan);
 * and a pool's set-up failures (-EAGAIN creating a thread, -ENOMEM at the
 * first spawn) were explained as "not an error of setting up weft's loop".
 *
 * Checked: any int gets a sentence; in a child whose address space is too
 * small for a thread's stack, weft_pool_create fails -EAGAIN and the
 * sentence names the thread limit; in one with room for threads but not for
 * a slab of 1 GiB stacks, weft_pool_run fails -ENOMEM and the sentence
 * names the first fiber.
 */
#include "../helpers.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_explain_takes_any_int(void **state)
{
	static const int errs[] = { INT_MIN, INT_MIN + 1, -4096, -1, 1, INT_MAX };

	(void)state;
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		const char *s = weft_loop_explain(errs[i]);

		assert_non_null(s);
		assert_true(strlen(s) > 10);
	}
}

/* Virtual memory this process has mapped now, in bytes. */
static size_t vm_bytes(void)
{
	unsigned long pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%lu", &pages) != 1)
			pages = 0;
		fclose(f);
	}
	return pages * (size_t)sysconf(_SC_PAGESIZE);
}

static void limit_as(size_t extra)
{
	struct rlimit rl = { .rlim_cur = vm_bytes() + extra, .rlim_max = RLIM_INFINITY };

	setrlimit(RLIMIT_AS, &rl);
}

static int nothing(void *arg)
{
	(void)arg;
	return 0;
}

static void child_no_thread(void)
{
	weft_pool *p;
	int rc;

	limit_as(6 << 20); /* room for loop 0, not for a thread's 8 MiB stack */
	rc = weft_pool_create(&p, 2, NULL);
	fprintf(stderr, "create=%d: %s\n", rc, weft_loop_explain(rc));
	_exit(rc == -EAGAIN || rc == -ENOMEM ? 0 : 1);
}

static void child_no_stack(void)
{
	weft_config cfg;
	weft_pool *p;
	int rc;

	weft_config_init(&cfg);
	cfg.stack_size = (size_t)1 << 30;
	limit_as(256 << 20); /* threads and rings fit; a slab of 1 GiB stacks does not */
	rc = weft_pool_create(&p, 2, &cfg);
	if (rc < 0)
		_exit(2);
	rc = weft_pool_run(p, nothing, NULL);
	fprintf(stderr, "run=%d: %s\n", rc, weft_loop_explain(rc));
	weft_pool_destroy(p);
	_exit(rc == -ENOMEM ? 0 : 1);
}

static void test_pool_setup_failures_are_explained(void **state)
{
	char err[1024];
	int status;

	(void)state;
#ifdef WEFT_TEST_SANITIZED
	skip(); /* ASan reserves terabytes of address space */
#endif
	if (t_under_valgrind())
		skip();
	status = t_fork(child_no_thread, err, sizeof(err));
	print_message("%s", err);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(strstr(err, "thread") || strstr(err, "memory"));
	assert_null(strstr(err, "not an error of setting up"));
	status = t_fork(child_no_stack, err, sizeof(err));
	print_message("%s", err);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_non_null(strstr(err, "first fiber"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_explain_takes_any_int),
		cmocka_unit_test(test_pool_setup_failures_are_explained),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
