/* SPDX-License-Identifier: MIT */
/*
 * Issue 11, defect 13: when io_uring_enter is refused after a successful
 * set-up (a seccomp profile that allows only io_uring_setup), a full SQ
 * aborted with "BUG ... io_uring_enter failed while flushing a full SQ",
 * and with fewer fibers the loop returned -EPERM and weft_loop_explain
 * blamed io_uring_setup. Now every operation fails with the kernel's
 * answer, the loop returns it, the loop can be destroyed, and
 * weft_loop_explain names io_uring_enter.
 */
#include "../helpers.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int fibers;
static int eperm;
static int other;

static int nop_once(void *arg)
{
	(void)arg;

	int rc = weft_nop();

	if (rc == -EPERM)
		eperm++;
	else
		other++;
	return 0;
}

/* In the child: a ring, then a filter refusing io_uring_enter, then work. */
static void run_refused(void)
{
	weft_config cfg;
	weft_loop *l;
	int nrs[] = { __NR_io_uring_enter };

	weft_config_init(&cfg);
	cfg.sq_entries = 8;
	if (weft_loop_create(&l, &cfg) < 0)
		_exit(3);
	if (t_seccomp_refuse(nrs, 1, EPERM) < 0)
		_exit(4);
	for (int i = 0; i < fibers; i++)
		if (weft_spawn(l, nop_once, NULL, NULL) < 0)
			_exit(5);

	int rc = weft_loop_run(l);

	fprintf(stderr, "run=%d explain=%s\n", rc, weft_loop_explain(rc));
	weft_loop_destroy(l); /* must not hang or abort */
	fprintf(stderr, "destroyed eperm=%d other=%d\n", eperm, other);
	_exit(rc == -EPERM && eperm == fibers && other == 0 ? 0 : 1);
}

static void check(int n)
{
	char err[4096];
	int status;

	fibers = n;
	status = t_fork(run_refused, err, sizeof(err));
	print_message("%d fibers: %s", n, err);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_non_null(strstr(err, "io_uring_enter was refused"));
	assert_null(strstr(err, "BUG"));
}

static void test_enter_refused_with_a_full_sq_fails_every_op_cleanly(void **state)
{
	(void)state;
	check(300); /* far more than the 8 SQ slots */
}

static void test_enter_refused_with_few_fibers_names_io_uring_enter(void **state)
{
	(void)state;
	check(1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enter_refused_with_a_full_sq_fails_every_op_cleanly),
		cmocka_unit_test(test_enter_refused_with_few_fibers_names_io_uring_enter),
	};

	if (!t_io_uring_usable() || !t_on_uring())
		return 77; /* io_uring only */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
