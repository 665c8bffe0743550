/* SPDX-License-Identifier: MIT */
/* The loop: create, run, destroy, stats, ring modes, full SQ, CQ overflow. */
#define _GNU_SOURCE /* dlvsym */
#include "helpers.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_create_destroy_without_fibers(void **state)
{
	weft_loop *l;

	(void)state;
	assert_int_equal(weft_loop_create(&l, NULL), 0);
	assert_int_equal(weft_loop_run(l), 0);
	weft_loop_destroy(l);
	weft_loop_destroy(NULL);
}

static void test_create_rejects_bad_config(void **state)
{
	weft_config cfg;
	weft_loop *l = NULL;

	(void)state;
	assert_int_equal(weft_loop_create(NULL, NULL), -EINVAL);
	weft_config_init(&cfg);
	cfg.sq_entries = 3;
	assert_int_equal(weft_loop_create(&l, &cfg), -EINVAL);
	weft_config_init(&cfg);
	cfg.sq_entries = 64;
	cfg.cq_entries = 64; /* less than twice the SQ */
	assert_int_equal(weft_loop_create(&l, &cfg), -EINVAL);
	weft_config_init(&cfg);
	cfg.stack_size = 0;
	assert_int_equal(weft_loop_create(&l, &cfg), -EINVAL);
	weft_config_init(&cfg);
	cfg.ring_mode = 99;
	assert_int_equal(weft_loop_create(&l, &cfg), -EINVAL);
	weft_config_init(&cfg);
	cfg.reserved[0] = 1;
	assert_int_equal(weft_loop_create(&l, &cfg), -EINVAL);
	assert_null(l);
}

static int ran;

static int count_run(void *arg)
{
	(void)arg;
	ran++;
	return 0;
}

static void test_run_one_fiber(void **state)
{
	weft_loop *l;
	weft_stats st;

	(void)state;
	ran = 0;
	assert_int_equal(weft_loop_create(&l, NULL), 0);
	assert_int_equal(weft_spawn(l, count_run, NULL, NULL), 0);
	assert_int_equal(weft_loop_run(l), 0);
	weft_loop_stats(l, &st);
	assert_int_equal(ran, 1);
	assert_int_equal(st.spawned, 1);
	assert_int_equal(st.fibers, 0);
	assert_true(st.switches >= 2);
	weft_loop_destroy(l);
}

static void test_run_100k_fibers(void **state)
{
	enum { N = 100000 };
	weft_loop *l;
	weft_stats st;

	(void)state;
	ran = 0;
	assert_int_equal(weft_loop_create(&l, NULL), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(weft_spawn(l, count_run, NULL, NULL), 0);
	assert_int_equal(weft_loop_run(l), 0);
	weft_loop_stats(l, &st);
	assert_int_equal(ran, N);
	assert_int_equal(st.fibers_peak, N);
	weft_loop_destroy(l);
}

/* Fills a stack buffer with its index, parks, and checks nobody else wrote it. */
static int own_page(void *arg)
{
	unsigned char buf[256]; /* one-page stacks: the lazy PLT resolver wants ~1.5 KiB too */
	size_t id = (size_t)(uintptr_t)arg;

	memset(buf, (int)(id & 0xff), sizeof(buf));
	for (int round = 0; round < 2; round++) {
		if (weft_sleep(WEFT_MSEC) != 0)
			return -1;
		for (size_t i = 0; i < sizeof(buf); i++)
			if (buf[i] != (unsigned char)(id & 0xff))
				return -2;
	}
	ran++;
	return 0;
}

static void test_one_page_unguarded_stacks_stay_separate(void **state)
{
	enum { N = 5000 };
	weft_config cfg;
	weft_loop *l;
	weft_stats st;

	(void)state;
	ran = 0;
	weft_config_init(&cfg);
#ifdef WEFT_TEST_SANITIZED
	cfg.stack_size = 16384; /* sanitizer frames do not fit a page: unguarded, small pages */
#else
	cfg.stack_size = 4096;
#endif
	cfg.stack_guards = 0; /* one-page stacks: all in huge-page slabs */
	assert_int_equal(weft_loop_create(&l, &cfg), 0);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(weft_spawn(l, own_page, (void *)(uintptr_t)i, NULL), 0);
	assert_int_equal(weft_loop_run(l), 0);
	weft_loop_stats(l, &st);
	assert_int_equal(ran, N);
	assert_int_equal(st.stacks_guarded, 0);
	assert_true(st.stacks >= N);
	weft_loop_destroy(l);
}

static void test_run_is_not_reentrant(void **state)
{
	weft_loop *l;

	(void)state;
	assert_int_equal(weft_loop_create(&l, NULL), 0);
	assert_int_equal(weft_loop_run(NULL), -EINVAL);
	weft_loop_destroy(l);
}

static int nested_rc;

static int try_nested(void *arg)
{
	weft_loop *l = arg;

	nested_rc = weft_loop_run(l);
	return 0;
}

static void test_run_inside_fiber_fails_ebusy(void **state)
{
	weft_loop *l;
	weft_loop *other;

	(void)state;
	assert_int_equal(weft_loop_create(&l, NULL), 0);
	assert_int_equal(weft_loop_create(&other, NULL), 0);
	assert_int_equal(weft_spawn(l, try_nested, other, NULL), 0);
	assert_int_equal(weft_loop_run(l), 0);
	assert_int_equal(nested_rc, -EBUSY);
	weft_loop_destroy(other);
	weft_loop_destroy(l);
}

static int unwound;

static int sleep_forever(void *arg)
{
	int *rc = arg;

	*rc = weft_sleep(3600 * WEFT_SEC);
	unwound++;
	return 0;
}

static void test_destroy_cancels_and_joins_fibers_left(void **state)
{
	weft_loop *l;
	weft_fiber *joinable;
	int rc[3] = { 1, 1, 1 };

	(void)state;
	unwound = 0;
	assert_int_equal(weft_loop_create(&l, NULL), 0);
	assert_int_equal(weft_spawn(l, sleep_forever, &rc[0], NULL), 0);
	assert_int_equal(weft_spawn(l, sleep_forever, &rc[1], &joinable), 0);
	assert_int_equal(weft_spawn(l, sleep_forever, &rc[2], NULL), 0);
	weft_loop_destroy(l); /* never run: destroy must still unwind all three */
	assert_int_equal(unwound, 3);
	/* They were never parked before the cancel, so the sleep saw it at once. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(rc[i], -ECANCELED);
}

static int join_rc[2];

static int a_joins_b(void *arg)
{
	weft_fiber **pair = arg;

	join_rc[0] = weft_join(pair[1], NULL);
	return 0;
}

static int b_joins_a(void *arg)
{
	weft_fiber **pair = arg;

	join_rc[1] = weft_join(pair[0], NULL);
	return 0;
}

static void test_run_reports_deadlock_and_destroy_cancels_parked(void **state)
{
	weft_loop *l;
	weft_fiber *pair[2];

	(void)state;
	join_rc[0] = join_rc[1] = 1;
	assert_int_equal(weft_loop_create(&l, NULL), 0);
	assert_int_equal(weft_spawn(l, a_joins_b, pair, &pair[0]), 0);
	assert_int_equal(weft_spawn(l, b_joins_a, pair, &pair[1]), 0);
	assert_int_equal(weft_loop_run(l), -EDEADLK);
	assert_int_equal(join_rc[0], 1); /* both still parked */
	weft_loop_destroy(l);		 /* cancels both joins, runs them out, frees both */
	/*
	 * The first to run sees its cancel and returns; its return completes
	 * the other's join, which then succeeds (a wait that completed wins
	 * over a cancel that came at the same time, as for an operation).
	 */
	assert_true((join_rc[0] == -ECANCELED && join_rc[1] == 0) ||
		    (join_rc[0] == 0 && join_rc[1] == -ECANCELED));
}

struct nops {
	int each;
	int failed;
	int done;
};

static int do_nops(void *arg)
{
	struct nops *n = arg;

	for (int i = 0; i < n->each; i++) {
		int rc = weft_nop();

		if (rc != 0 && !n->failed)
			n->failed = rc ? rc : -1;
	}
	n->done++;
	return 0;
}

static int spawn_nop_fibers(void *arg)
{
	struct nops *n = arg;

	for (int i = 0; i < 10000; i++)
		if (weft_go(do_nops, n) < 0)
			n->failed = -ENOMEM;
	return 0;
}

static void test_tiny_sq_with_10k_fibers_loses_nothing(void **state)
{
	weft_config cfg;
	weft_stats st;
	struct nops n = { .each = 3 };

	(void)state;
	weft_config_init(&cfg);
	cfg.sq_entries = 4;
	cfg.cq_entries = 8; /* each flush of the full SQ reaps: this fills the SQ, not the CQ */
	assert_int_equal(t_run_cfg(&cfg, spawn_nop_fibers, &n, &st), 0);
	assert_int_equal(n.failed, 0);
	assert_int_equal(n.done, 10000);
	if (st.backend == WEFT_BACKEND_URING)
		assert_true(st.sq_full > 0);
	assert_int_equal(st.sqes, 30000);
	assert_int_equal(st.cqes, 30000);
	assert_int_equal(st.inflight, 0);
}

static void test_stats_count_enters_and_ops(void **state)
{
	weft_stats st;
	struct nops n = { .each = 100 };

	(void)state;
	assert_int_equal(t_run_cfg(NULL, do_nops, &n, &st), 0);
	assert_int_equal(n.failed, 0);
	assert_int_equal(st.sqes, 100);
	assert_int_equal(st.cqes, 100);
	if (st.backend == WEFT_BACKEND_EPOLL) {
		assert_true(st.enters <= 1); /* a NOP finishes in place: no system call */
		return;
	}
	assert_true(st.enters >= 100); /* one fiber: one op per tick */
	assert_true(st.enters <= 101);
}

static int batched_nop(void *arg)
{
	(void)arg;
	return weft_nop();
}

static int gather_nops(void *arg)
{
	static weft_call calls[1000];

	(void)arg;
	for (int i = 0; i < 1000; i++)
		calls[i] = (weft_call){ .fn = batched_nop };
	return weft_gather(calls, 1000);
}

static void test_concurrent_ops_share_enters(void **state)
{
	weft_config cfg;
	weft_stats st;

	(void)state;
	weft_config_init(&cfg);
	cfg.sq_entries = 1024;
	assert_int_equal(t_run_cfg(&cfg, gather_nops, NULL, &st), 0);
	assert_int_equal(st.sqes, 1000);
	assert_true(st.enters <= 3); /* one round submits all 1000 NOPs at once */
}

static void test_every_ring_mode(void **state)
{
	static const uint32_t modes[] = { WEFT_RING_DEFER_TASKRUN, WEFT_RING_COOP_TASKRUN,
					  WEFT_RING_PLAIN };

	(void)state;
	int missing = 0;

	if (!t_on_uring())
		skip();

	for (size_t i = 0; i < 3; i++) {
		weft_config cfg;
		weft_stats st;
		struct nops n = { .each = 10 };

		weft_config_init(&cfg);
		cfg.ring_mode = modes[i];

		int rc = t_run_cfg(&cfg, do_nops, &n, &st);

		if (rc == -EINVAL) {
			print_message("ring mode %u is not supported by this kernel\n", modes[i]);
			missing++;
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(n.failed, 0);
		assert_int_equal(st.ring_mode, modes[i]);
	}
	if (missing)
		skip(); /* the modes the kernel has passed; the others are named above */
}

struct spin {
	struct nops n;
	int stop;
};

static int nops_then_stop(void *arg)
{
	struct spin *s = arg;

	do_nops(&s->n);
	s->stop = 1;
	return 0;
}

static int yield_until_stop(void *arg)
{
	struct spin *s = arg;

	while (!s->stop)
		weft_yield();
	return 0;
}

static int nops_beside_a_busy_fiber(void *arg)
{
	weft_call calls[2] = {
		{ .fn = nops_then_stop, .arg = arg },
		{ .fn = yield_until_stop, .arg = arg },
	};

	return weft_gather(calls, 2);
}

/*
 * SQPOLL: while another fiber keeps the loop busy, a fiber's operations are
 * submitted by the kernel's SQ thread and completed without the loop
 * entering the kernel. Without SQPOLL the same run enters once per round.
 */
static void test_sqpoll_submits_without_entering(void **state)
{
	weft_config cfg;
	weft_stats st;
	weft_loop *l = NULL;

	(void)state;
	weft_config_init(&cfg);
	cfg.flags = 1u << 7; /* unknown flag */
	assert_int_equal(weft_loop_create(&l, &cfg), -EINVAL);
	weft_config_init(&cfg);
	cfg.flags = WEFT_CONFIG_SQPOLL;
	cfg.ring_mode = WEFT_RING_DEFER_TASKRUN; /* cannot be combined with SQPOLL */
	assert_int_equal(weft_loop_create(&l, &cfg), -EINVAL);
	assert_null(l);
	if (!t_on_uring())
		skip(); /* what follows counts io_uring_enter calls */

	for (int sqpoll = 0; sqpoll <= 1; sqpoll++) {
		struct spin s = { .n = { .each = 2000 } };

		weft_config_init(&cfg);
		cfg.flags = sqpoll ? WEFT_CONFIG_SQPOLL : 0;
		/* SQPOLL rings run plain; without it, COOP enters once per round. */
		cfg.ring_mode = sqpoll ? WEFT_RING_AUTO : WEFT_RING_COOP_TASKRUN;

		int rc = t_run_cfg(&cfg, nops_beside_a_busy_fiber, &s, &st);

		/*
		 * With other tests on both CPUs the SQ thread may get no CPU for a
		 * whole run (9482 enters for 2000 NOPs were seen so): try again, up
		 * to five runs, before calling the behaviour missing.
		 */
		for (int again = 0; sqpoll && rc == 0 && st.enters >= 2000 && again < 4; again++) {
			s = (struct spin){ .n = { .each = 2000 } };
			rc = t_run_cfg(&cfg, nops_beside_a_busy_fiber, &s, &st);
		}

		if (rc == -EPERM || rc == -EINVAL) {
			print_message("SQPOLL is not allowed here (io_uring_setup: %d)\n", rc);
			skip();
		}
		assert_int_equal(rc, 0);
		assert_int_equal(s.n.failed, 0);
		assert_int_equal(st.sqes, 2000);
		assert_int_equal(st.cqes, 2000);
		assert_int_equal(!!(st.ring_flags & (1u << 1) /* IORING_SETUP_SQPOLL */), sqpoll);
		print_message("sqpoll=%d: %llu enters for 2000 NOPs\n", sqpoll,
			      (unsigned long long)st.enters);
		/*
		 * Some NOPs go without an enter; how many depends on when the SQ
		 * thread gets a CPU, which on 2 CPUs is the scheduler's business
		 * (322 of 2000 still entered in one CI run, 1503 in another, both
		 * under the ucontext switch). The behaviour: fewer enters than
		 * NOPs. How many fewer is a benchmark's figure (bench/gather's
		 * weft-sqpoll rows), not a test's.
		 */
		if (sqpoll)
			assert_true(st.enters < 2000);
		else
			assert_true(st.enters >= 2000);
	}
}

/* In a child: io_uring_setup refused with the errno in explain_err, as a container does. */
static int explain_err;

static void refuse_setup_and_explain(void)
{
	int nrs[] = { __NR_io_uring_setup };
	weft_config cfg;
	weft_loop *l;

	if (t_seccomp_refuse(nrs, 1, explain_err) < 0)
		_exit(3);
	weft_config_init(&cfg);
	cfg.backend = WEFT_BACKEND_URING; /* no fallback: the error itself */

	int rc = weft_loop_create(&l, &cfg);

	fprintf(stderr, "create=%d: %s\n", rc, weft_loop_explain(rc));
	_exit(rc == -explain_err ? 0 : 1);
}

static int nop_and_sleep(void *arg)
{
	(void)arg;
	if (weft_nop() != 0)
		return -EIO;
	return weft_sleep(WEFT_MSEC);
}

/* In a child: io_uring_setup refused with explain_err; AUTO must fall back where it should. */
static void refuse_setup_and_fall_back(void)
{
	int nrs[] = { __NR_io_uring_setup };
	weft_config cfg;
	weft_loop *l;
	weft_stats st;

	if (t_seccomp_refuse(nrs, 1, explain_err) < 0)
		_exit(3);
	weft_config_init(&cfg);
	cfg.backend = WEFT_BACKEND_AUTO;

	int rc = weft_loop_create(&l, &cfg);

	fprintf(stderr, "create=%d backend=%s: %s\n", rc, rc == 0 ? weft_loop_backend(l) : "-",
		weft_loop_explain(rc));
	if (rc < 0)
		_exit(explain_err == EINVAL && rc == -EINVAL ? 0 : 1);
	weft_loop_stats(l, &st);
	if (strcmp(weft_loop_backend(l), "epoll") || st.backend != WEFT_BACKEND_EPOLL ||
	    weft_spawn(l, nop_and_sleep, NULL, NULL) < 0 || weft_loop_run(l) < 0)
		_exit(4);
	weft_loop_destroy(l);
	_exit(explain_err == EINVAL ? 5 : 0);
}

static void test_auto_falls_back_to_epoll_where_io_uring_is_refused(void **state)
{
	static const struct {
		int err;
		const char *says;
	} cases[] = {
		{ ENOSYS, "failed with ENOSYS, so this loop runs on epoll" },
		{ EPERM, "failed with EPERM, so this loop runs on epoll" },
		{ EACCES, "allow io_uring_setup" },
		{ ENOMEM, "ulimit -l" },
		{ EINVAL, "weft_config is invalid" }, /* weft's own settings: no fallback */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[1024];

		explain_err = cases[i].err;

		int status = t_fork(refuse_setup_and_fall_back, err, sizeof(err));

		print_message("%s", err);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		assert_non_null(strstr(err, cases[i].says));
	}
}

static int fiber_fails_eperm(void *arg)
{
	(void)arg;
	return -EPERM; /* the program's own error, not weft's set-up */
}

static void test_explain_names_the_fix(void **state)
{
	static const struct {
		int err;
		const char *says;
	} cases[] = {
		{ ENOSYS, "seccomp" },
		{ EPERM, "io_uring_setup" },
		{ ENOMEM, "ulimit -l" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[1024];

		explain_err = cases[i].err;

		int status = t_fork(refuse_setup_and_explain, err, sizeof(err));

		print_message("%s", err);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		assert_non_null(strstr(err, cases[i].says));
	}
	/* weft_main hands back the fiber's own -EPERM: not a set-up sentence. */
	assert_int_equal(weft_main(fiber_fails_eperm, NULL), -EPERM);

	const char *why = weft_loop_explain(-EPERM);

	print_message("fiber's own -EPERM: %s\n", why);
	assert_non_null(strstr(why, "not an error of setting up"));
	assert_null(strstr(why, "io_uring"));
	assert_non_null(weft_loop_explain(-12345));
}

static void test_version_matches_header(void **state)
{
	char want[32];

	(void)state;
	snprintf(want, sizeof(want), "%d.%d.%d", WEFT_VERSION_MAJOR, WEFT_VERSION_MINOR,
		 WEFT_VERSION_PATCH);
	assert_string_equal(weft_version(), want);
}

/* In a child: two loops made with a misspelt name and tools' own names set. */
static void child_unknown_env(void)
{
	weft_loop *l = NULL;

	setenv("WEFT_BAKEND", "epoll", 1);
	setenv("WEFT_TEST_SOMETHING", "1", 1);
	setenv("WEFT_BUILD", "/tmp", 1);
	for (int i = 0; i < 2; i++) {
		if (weft_loop_create(&l, NULL) != 0)
			_exit(3);
		weft_loop_destroy(l);
	}
	_exit(0);
}

static void child_known_env(void)
{
	weft_loop *l = NULL;

	setenv("WEFT_MULTISHOT_RECV", "auto", 1);
	setenv("WEFT_TEST_SOMETHING", "1", 1);
	if (weft_loop_create(&l, NULL) != 0)
		_exit(3);
	weft_loop_destroy(l);
	_exit(0);
}

/* A WEFT_* name weft does not read: one warning line, the nearest name, the known ones. */
static void test_unknown_environment_name_warns_once(void **state)
{
	char err[2048];
	int st = t_fork(child_unknown_env, err, sizeof(err));
	const char *line = strstr(err, "weft: warning:");

	(void)state;
	print_message("%s", err);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_non_null(line);
	assert_non_null(strstr(line, "WEFT_BAKEND is not one weft reads"));
	assert_non_null(strstr(line, "did you mean WEFT_BACKEND?"));
	assert_non_null(strstr(line, "WEFT_DISABLE_OPS"));
	assert_null(strstr(line + 1, "weft: warning:")); /* once, for two loops */
	assert_null(strstr(err, "WEFT_TEST_SOMETHING"));
	assert_null(strstr(err, "WEFT_BUILD"));

	st = t_fork(child_known_env, err, sizeof(err));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_null(strstr(err, "weft: warning:"));
}

/* A misspelt environment variable is refused, with a sentence that names it. */
static void test_misspelt_environment_is_refused_with_a_sentence(void **state)
{
	static const char *const cases[][3] = {
		{ "WEFT_RING_MODE", "bogus", "auto, defer, coop or plain" },
		{ "WEFT_SQPOLL", "yes", "0 or 1" },
		{ "WEFT_DISABLE_OPS", "abc", "IORING_OP_*" },
		{ "WEFT_DISABLE_OPS", "55;37", "IORING_OP_*" },
		{ "WEFT_GUARD_MARKERS", "of", "auto or off" },
	};
	const char *mode = getenv("WEFT_RING_MODE");
	char *saved = mode ? strdup(mode) : NULL;
	const char *sq = getenv("WEFT_SQPOLL");
	char *saved_sq = sq ? strdup(sq) : NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		weft_loop *l = NULL;

		unsetenv("WEFT_RING_MODE");
		unsetenv("WEFT_SQPOLL");
		setenv(cases[i][0], cases[i][1], 1);

		int rc = weft_loop_create(&l, NULL);
		const char *why = weft_loop_explain(rc);

		unsetenv(cases[i][0]);
		print_message("%s=%s: %s\n", cases[i][0], cases[i][1], why);
		assert_int_equal(rc, -EINVAL);
		assert_null(l);
		assert_non_null(strstr(why, cases[i][0]));
		assert_non_null(strstr(why, cases[i][2]));
	}
	/* Accepted values still work, and a later error gets its own sentence. */
	setenv("WEFT_DISABLE_OPS", "55,37", 1);

	weft_loop *l = NULL;

	assert_int_equal(weft_loop_create(&l, NULL), 0);
	weft_loop_destroy(l);
	unsetenv("WEFT_DISABLE_OPS");

	weft_config cfg;

	weft_config_init(&cfg);
	cfg.sq_entries = 3;
	assert_int_equal(weft_loop_create(&l, &cfg), -EINVAL);
	assert_null(strstr(weft_loop_explain(-EINVAL), "not understood"));
	if (saved)
		setenv("WEFT_RING_MODE", saved, 1);
	if (saved_sq)
		setenv("WEFT_SQPOLL", saved_sq, 1);
	free(saved);
	free(saved_sq);
}

static int fork_in_a_fiber(void *arg)
{
	int status = -1;
	pid_t pid;

	(void)arg;
	/* fork + exec from a fiber works. */
	pid = fork();
	if (pid == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/*
	 * A child that uses the parent's loop does not get its ring (it is not
	 * inherited): it crashes rather than corrupting the parent's. valgrind
	 * does not honour MADV_DONTFORK.
	 */
	if (!t_under_valgrind() && t_on_uring()) {
		pid = fork();
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);

			/* Die of the fault: no cmocka or weft handler may carry on in here. */
			signal(SIGSEGV, SIG_DFL);
			signal(SIGBUS, SIG_DFL);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			weft_nop();
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* Our loop is intact. */
	for (int i = 0; i < 100; i++)
		assert_int_equal(weft_nop(), 0);
	return 0;
}

static void test_fork_child_cannot_touch_the_parents_ring(void **state)
{
	(void)state;
	assert_int_equal(t_run(fork_in_a_fiber, NULL), 0);
}

/* ---- the SIGSEGV handler and the alternate signal stack ---- */

static void test_segv_handler_is_put_back_after_the_last_loop(void **state)
{
	struct sigaction before;
	struct sigaction during;
	struct sigaction after;
	weft_loop *a;

	(void)state;
	assert_int_equal(sigaction(SIGSEGV, NULL, &before), 0);
	assert_int_equal(weft_loop_create(&a, NULL), 0);
	assert_int_equal(sigaction(SIGSEGV, NULL, &during), 0);
	assert_true(during.sa_flags & SA_SIGINFO);
	assert_true(during.sa_sigaction != before.sa_sigaction || !(before.sa_flags & SA_SIGINFO));
	weft_loop_destroy(a);
	assert_int_equal(sigaction(SIGSEGV, NULL, &after), 0);
	assert_true(after.sa_handler == before.sa_handler);
	assert_int_equal(after.sa_flags & SA_SIGINFO, before.sa_flags & SA_SIGINFO);
}

#ifndef WEFT_TEST_SANITIZED
static sigjmp_buf segv_jump;
static volatile int segv_seen;

static void my_segv(int sig, siginfo_t *si, void *uctx)
{
	(void)sig;
	(void)si;
	(void)uctx;
	segv_seen++;
	siglongjmp(segv_jump, 1);
}
#endif

static void test_segv_handler_chains_to_the_programs_own(void **state)
{
	(void)state;
#ifdef WEFT_TEST_SANITIZED
	skip(); /* the sanitizer owns SIGSEGV */
#else
	struct sigaction mine;
	struct sigaction old;
	weft_loop *l;

	if (t_under_valgrind())
		skip(); /* the deliberate fault would count as a memcheck error */
	memset(&mine, 0, sizeof(mine));
	mine.sa_sigaction = my_segv;
	mine.sa_flags = SA_SIGINFO;
	sigemptyset(&mine.sa_mask);
	assert_int_equal(sigaction(SIGSEGV, &mine, &old), 0);
	assert_int_equal(weft_loop_create(&l, NULL), 0);
	volatile int *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	if (sigsetjmp(segv_jump, 1) == 0)
		*p = 1; /* not a fiber's guard page: the program's handler gets it */
	munmap((void *)p, 4096);
	assert_int_equal(segv_seen, 1);
	weft_loop_destroy(l);
	sigaction(SIGSEGV, &old, NULL);
#endif
}

static void *loop_on_a_thread(void *arg)
{
	weft_loop *l;

	(void)arg;
	if (weft_loop_create(&l, NULL) != 0)
		return (void *)1;
	weft_loop_destroy(l);
	return NULL;
}

/* Each thread that made a loop got an alternate signal stack; it goes with the thread. */
static void test_threads_that_made_loops_leave_nothing_behind(void **state)
{
	(void)state;
	for (int i = 0; i < 64; i++) {
		pthread_t t;
		void *res = (void *)1;

		assert_int_equal(pthread_create(&t, NULL, loop_on_a_thread, NULL), 0);
		pthread_join(t, &res);
		assert_null(res);
	}
	/* The leak checker of the sanitized run fails the suite if 64 KiB stayed per thread. */
}

/* ---- operations the backend cannot run -------------------------------------------- */

static int recv_one_byte(void *arg)
{
	const int *sv = arg;
	char c;

	weft_set_deadline(weft_now() + 2 * WEFT_SEC);
	return (int)weft_recv(sv[0], &c, 1, 0);
}

/* Run recv_one_byte on a loop made with WEFT_DISABLE_OPS=@ops. */
static int recv_without(const char *ops, const int *sv)
{
	int rc;

	setenv("WEFT_DISABLE_OPS", ops, 1);
	rc = t_run(recv_one_byte, (void *)sv);
	unsetenv("WEFT_DISABLE_OPS");
	return rc;
}

/*
 * Where the kernel lacks IORING_OP_RECV, a recv runs as its row says: a
 * poll of its readiness, then recv(2). Where POLL_ADD is missing too, it
 * cannot run: -EOPNOTSUPP, and weft_loop_explain names the operation.
 */
static void test_op_without_its_opcode_falls_back_or_fails_eopnotsupp_explained(void **state)
{
	int sv[2];

	(void)state;
	if (!t_on_uring() || getenv("WEFT_DISABLE_OPS"))
		skip();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(write(sv[1], "xy", 2), 2);
	assert_int_equal(recv_without("27", sv), 1); /* ready: the try answers at once */
	assert_int_equal(recv_without("27", sv), 1);
	assert_int_equal(recv_without("27", sv), -ETIMEDOUT); /* it polled, up to the deadline */
	assert_int_equal(recv_without("27,6", sv), -EOPNOTSUPP);

	const char *why = weft_loop_explain(-EOPNOTSUPP);

	print_message("%s\n", why);
	assert_non_null(strstr(why, "recv"));
	assert_non_null(strstr(why, "io_uring"));
	close(sv[0]);
	close(sv[1]);
}

/*
 * A program built against 0.4's weft.h, whose weft_stats ends before
 * multishot_rearms, binds weft_loop_stats@WEFT_0.1: it must write no byte
 * past the struct that program knows.
 */
static void test_old_stats_symbol_writes_only_the_old_struct(void **state)
{
	typedef void (*stats_fn)(weft_loop *, weft_stats *);
	stats_fn old = (stats_fn)dlvsym(RTLD_DEFAULT, "weft_loop_stats", "WEFT_0.1");
	size_t old_size = offsetof(weft_stats, multishot_rearms);
	unsigned char buf[sizeof(weft_stats)];
	weft_stats now;
	weft_loop *l;

	(void)state;
	if (!old)
		skip(); /* linked statically: no symbol versions */
	assert_int_equal(weft_loop_create(&l, NULL), 0);
	memset(buf, 0xab, sizeof(buf));
	old(l, (weft_stats *)buf);
	weft_loop_stats(l, &now);
	for (size_t i = old_size; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xab);
	assert_memory_equal(buf, &now, offsetof(weft_stats, stacks_trimmed));
	assert_int_equal(now.multishot_rearms, 0);
	weft_loop_destroy(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_misspelt_environment_is_refused_with_a_sentence),
		cmocka_unit_test(test_unknown_environment_name_warns_once),
		cmocka_unit_test(test_create_destroy_without_fibers),
		cmocka_unit_test(test_old_stats_symbol_writes_only_the_old_struct),
		cmocka_unit_test(test_create_rejects_bad_config),
		cmocka_unit_test(test_run_one_fiber),
		cmocka_unit_test(test_run_100k_fibers),
		cmocka_unit_test(test_one_page_unguarded_stacks_stay_separate),
		cmocka_unit_test(test_run_is_not_reentrant),
		cmocka_unit_test(test_run_inside_fiber_fails_ebusy),
		cmocka_unit_test(test_destroy_cancels_and_joins_fibers_left),
		cmocka_unit_test(test_run_reports_deadlock_and_destroy_cancels_parked),
		cmocka_unit_test(test_tiny_sq_with_10k_fibers_loses_nothing),
		cmocka_unit_test(test_stats_count_enters_and_ops),
		cmocka_unit_test(test_concurrent_ops_share_enters),
		cmocka_unit_test(test_every_ring_mode),
		cmocka_unit_test(test_sqpoll_submits_without_entering),
		cmocka_unit_test(test_explain_names_the_fix),
		cmocka_unit_test(
		    test_op_without_its_opcode_falls_back_or_fails_eopnotsupp_explained),
		cmocka_unit_test(test_version_matches_header),
		cmocka_unit_test(test_fork_child_cannot_touch_the_parents_ring),
		cmocka_unit_test(test_auto_falls_back_to_epoll_where_io_uring_is_refused),
		cmocka_unit_test(test_segv_handler_is_put_back_after_the_last_loop),
		cmocka_unit_test(test_segv_handler_chains_to_the_programs_own),
		cmocka_unit_test(test_threads_that_made_loops_leave_nothing_behind),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
