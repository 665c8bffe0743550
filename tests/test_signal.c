/* SPDX-License-Identifier: MIT */
/*
 * weft_signal_wait: a signal sent while the waiter sleeps, one already
 * pending, one sent while nobody waits (it stays pending), two waiters with
 * their own sets, queued real-time signals shared by two waiters, sleepers
 * undisturbed, deadline and cancel, bad input; and, in forked children
 * (the handler and the masks are the process's), a SIGTERM that lands on a
 * thread where it is not blocked (main, in a pool; a plain thread, with
 * sigqueue's value kept) handed on to a fiber on another loop instead of
 * killing the process, and the masks of the threads weft starts.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static sigset_t set_of(int a, int b)
{
	sigset_t s;

	sigemptyset(&s);
	if (a)
		sigaddset(&s, a);
	if (b)
		sigaddset(&s, b);
	return s;
}

/* ---- one waiter ------------------------------------------------------------------- */

struct one {
	int sig;   /* what to wait for */
	int got;   /* what weft_signal_wait returned */
	pid_t pid; /* si_pid */
	int sleepers_done;
};

static int sender(void *arg)
{
	struct one *o = arg;

	weft_sleep(5 * WEFT_MSEC);
	return kill(getpid(), o->sig) == 0 ? 0 : -errno;
}

static int sleeper(void *arg)
{
	struct one *o = arg;

	for (int i = 0; i < 10; i++)
		if (weft_sleep(WEFT_MSEC) != 0)
			return -1;
	o->sleepers_done++;
	return 0;
}

static int wait_main(void *arg)
{
	struct one *o = arg;
	sigset_t s = set_of(o->sig, 0);
	siginfo_t si;

	for (int i = 0; i < 20; i++)
		if (weft_go(sleeper, o) < 0)
			return -ENOMEM;
	if (weft_go(sender, o) < 0)
		return -ENOMEM;
	o->got = weft_signal_wait(&s, &si);
	o->pid = si.si_pid;
	while (o->sleepers_done < 20)
		weft_sleep(WEFT_MSEC);
	return 0;
}

static void test_signal_sent_while_waiting(void **state)
{
	struct one o = { .sig = SIGUSR1 };

	(void)state;
	assert_int_equal(t_run(wait_main, &o), 0);
	assert_int_equal(o.got, SIGUSR1);
	assert_int_equal(o.pid, getpid());
	assert_int_equal(o.sleepers_done, 20);
}

static int pending_main(void *arg)
{
	struct one *o = arg;
	sigset_t s = set_of(o->sig, 0);

	/* Blocked by the first wait (which times out), sent while nobody waits. */
	weft_set_timeout(WEFT_MSEC);
	if (weft_signal_wait(&s, NULL) != -ETIMEDOUT)
		return -1;
	weft_set_deadline(WEFT_FOREVER);
	if (kill(getpid(), o->sig) != 0)
		return -errno;
	weft_sleep(WEFT_MSEC);
	o->got = weft_signal_wait(&s, NULL);
	return 0;
}

static void test_signal_sent_while_nobody_waits_stays_pending(void **state)
{
	struct one o = { .sig = SIGUSR2 };

	(void)state;
	assert_int_equal(t_run(pending_main, &o), 0);
	assert_int_equal(o.got, SIGUSR2);
}

/* ---- several waiters ---------------------------------------------------------------- */

struct pair {
	int sig[2];
	int got[2];
	int values[2];
	int order[2]; /* which waiter finished first, second */
	int finished;
};

struct waiter_arg {
	struct pair *p;
	int k;
};

static int pair_waiter(void *arg)
{
	struct waiter_arg *a = arg;
	sigset_t s = set_of(a->p->sig[a->k], 0);
	siginfo_t si;

	a->p->got[a->k] = weft_signal_wait(&s, &si);
	a->p->values[a->k] = si.si_value.sival_int;
	a->p->order[a->p->finished++] = a->k;
	return 0;
}

static int pair_main(void *arg)
{
	struct pair *p = arg;
	struct waiter_arg a[2] = { { p, 0 }, { p, 1 } };
	weft_call calls[2] = { { pair_waiter, &a[0], 0 }, { pair_waiter, &a[1], 0 } };
	int rc;

	/* Block both first (a wait that times out), so the sends below stay queued. */
	sigset_t both = set_of(p->sig[0], p->sig[1]);

	weft_set_timeout(WEFT_MSEC);
	weft_signal_wait(&both, NULL);
	weft_set_deadline(WEFT_FOREVER);
	/* The second waiter's signal first, with a value each. */
	if (sigqueue(getpid(), p->sig[1], (union sigval){ .sival_int = 11 }) != 0 ||
	    sigqueue(getpid(), p->sig[0], (union sigval){ .sival_int = 10 }) != 0)
		return -errno;
	rc = weft_gather(calls, 2);
	return rc;
}

static void test_two_waiters_take_their_own_signals(void **state)
{
	struct pair p = { .sig = { SIGRTMIN + 1, SIGRTMIN + 2 } };

	(void)state;
	assert_int_equal(t_run(pair_main, &p), 0);
	assert_int_equal(p.got[0], SIGRTMIN + 1);
	assert_int_equal(p.got[1], SIGRTMIN + 2);
	assert_int_equal(p.values[0], 10);
	assert_int_equal(p.values[1], 11);
}

static int same_main(void *arg)
{
	struct pair *p = arg;
	struct waiter_arg a[2] = { { p, 0 }, { p, 1 } };
	weft_call calls[2] = { { pair_waiter, &a[0], 0 }, { pair_waiter, &a[1], 0 } };
	sigset_t s = set_of(p->sig[0], 0);

	weft_set_timeout(WEFT_MSEC);
	weft_signal_wait(&s, NULL);
	weft_set_deadline(WEFT_FOREVER);
	/* Two queued real-time signals of one number: each waiter takes one. */
	if (sigqueue(getpid(), p->sig[0], (union sigval){ .sival_int = 1 }) != 0 ||
	    sigqueue(getpid(), p->sig[0], (union sigval){ .sival_int = 2 }) != 0)
		return -errno;
	return weft_gather(calls, 2);
}

static void test_two_waiters_of_one_signal_take_one_each(void **state)
{
	struct pair p = { .sig = { SIGRTMIN + 3, SIGRTMIN + 3 } };

	(void)state;
	assert_int_equal(t_run(same_main, &p), 0);
	assert_int_equal(p.got[0], SIGRTMIN + 3);
	assert_int_equal(p.got[1], SIGRTMIN + 3);
	assert_int_equal(p.values[0] + p.values[1], 3); /* 1 and 2, in either order */
	assert_int_not_equal(p.values[0], p.values[1]);
}

/* ---- deadline, cancel, bad input ----------------------------------------------------- */

static int deadline_main(void *arg)
{
	sigset_t s = set_of(SIGUSR1, 0);
	int64_t t0 = weft_now();
	int rc;

	(void)arg;
	weft_set_timeout(10 * WEFT_MSEC);
	rc = weft_signal_wait(&s, NULL);
	if (rc != -ETIMEDOUT)
		return rc == 0 ? -1 : rc;
	return weft_now() - t0 >= 10 * WEFT_MSEC ? 0 : -2;
}

static void test_deadline(void **state)
{
	(void)state;
	assert_int_equal(t_run(deadline_main, NULL), 0);
}

static int cancelled_waiter(void *arg)
{
	sigset_t s = set_of(SIGUSR1, 0);

	*(int *)arg = weft_signal_wait(&s, NULL);
	return 0;
}

static int cancel_main(void *arg)
{
	weft_fiber *f;
	int result = 0;

	if (weft_spawn(NULL, cancelled_waiter, arg, &f) < 0)
		return -ENOMEM;
	weft_sleep(2 * WEFT_MSEC);
	weft_cancel(f);
	return weft_join(f, &result);
}

static void test_cancel(void **state)
{
	int got = 0;

	(void)state;
	assert_int_equal(t_run(cancel_main, &got), 0);
	assert_int_equal(got, -ECANCELED);
}

static int bad_main(void *arg)
{
	sigset_t empty = set_of(0, 0);
	sigset_t kill9 = set_of(SIGKILL, SIGUSR1);
	sigset_t stop = set_of(SIGSTOP, 0);
	sigset_t segv = set_of(SIGSEGV, 0);
	sigset_t bus = set_of(SIGBUS, SIGUSR1);

	(void)arg;
	if (weft_signal_wait(NULL, NULL) != -EINVAL || weft_signal_wait(&empty, NULL) != -EINVAL ||
	    weft_signal_wait(&kill9, NULL) != -EINVAL || weft_signal_wait(&stop, NULL) != -EINVAL ||
	    weft_signal_wait(&segv, NULL) != -EINVAL || weft_signal_wait(&bus, NULL) != -EINVAL)
		return -1;
	return 0;
}

static void test_bad_input(void **state)
{
	sigset_t s = set_of(SIGUSR1, 0);

	(void)state;
	assert_int_equal(weft_signal_wait(&s, NULL), -EPERM); /* outside a fiber */
	assert_int_equal(t_run(bad_main, NULL), 0);
}

/* ---- forked: the handler and the thread masks ---------------------------------------- */

static atomic_int term_waiting;

static int term_waiter(void *arg)
{
	sigset_t s = set_of(SIGTERM, 0);

	(void)arg;
	atomic_store(&term_waiting, 1);
	return weft_signal_wait(&s, NULL) == SIGTERM ? 0 : -1;
}

static int term_sender(void *arg)
{
	struct one o = { .sig = 0 };

	(void)arg;
	for (int i = 0; i < 20; i++)
		weft_go(sleeper, &o);
	/* Loop 1's thread may start late on a loaded machine: SIGTERM sent before
	 * its fiber waits would kill the process, as it should. */
	while (!atomic_load(&term_waiting))
		weft_sleep(WEFT_MSEC);
	weft_sleep(10 * WEFT_MSEC);
	/* This thread (main, loop 0) has SIGTERM unblocked: the kernel may pick it. */
	kill(getpid(), SIGTERM);
	while (o.sleepers_done < 20)
		weft_sleep(WEFT_MSEC);
	return 0;
}

static int pool_main(void *arg)
{
	weft_pool *p = arg;
	weft_call calls[2] = { { term_sender, NULL, 0 }, { term_waiter, NULL, 0 } };

	/* weft_pool_run runs this on every loop: gather from loop 0 only. */
	return weft_loop_index() == 0 ? weft_pool_gather(p, calls, 2) : 0; /* waiter on loop 1 */
}

static void child_pool_term(void)
{
	weft_pool *p;

	alarm(60); /* a hang fails the test instead of holding the suite */
	if (weft_pool_create(&p, 2, NULL) != 0)
		_exit(3);

	int rc = weft_pool_run(p, pool_main, p);

	weft_pool_destroy(p);
	_exit(rc == 0 ? 0 : 4);
}

static void test_sigterm_in_a_pool_reaches_the_fiber(void **state)
{
	char err[512];
	int st = 0;

	(void)state;
	for (int i = 0; i < 5; i++) {
		st = t_fork(child_pool_term, err, sizeof(err));
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			break;
	}
	if (WIFSIGNALED(st))
		fail_msg("killed by signal %d: %s", WTERMSIG(st), err);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* A plain thread with the signal unblocked sends it with a value to the process. */
static void *plain_thread(void *arg)
{
	sigset_t none;

	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);
	usleep(10000);
	sigqueue(getpid(), SIGUSR1, (union sigval){ .sival_int = 42 });
	usleep(50000); /* still alive, unblocked, while the signal is delivered */
	(void)arg;
	return NULL;
}

static int plain_main(void *arg)
{
	sigset_t s = set_of(SIGUSR1, 0);
	siginfo_t si;
	pthread_t t;

	(void)arg;
	/* Blocked here first, so the kernel gives the signal to the plain thread. */
	weft_set_timeout(WEFT_MSEC);
	weft_signal_wait(&s, NULL);
	weft_set_deadline(WEFT_FOREVER);
	if (pthread_create(&t, NULL, plain_thread, NULL) != 0)
		return -1;
	weft_set_timeout(5 * WEFT_SEC);

	int got = weft_signal_wait(&s, &si);

	pthread_join(t, NULL);
	return got == SIGUSR1 && si.si_value.sival_int == 42 ? 0 : -2;
}

static void child_plain_thread(void)
{
	alarm(60); /* a hang fails the test instead of holding the suite */
	_exit(t_run(plain_main, NULL) == 0 ? 0 : 5);
}

static void test_signal_on_a_plain_thread_is_handed_on(void **state)
{
	char err[512];
	int st;

	(void)state;
	/* valgrind delivers the signal to the plain thread whatever its handler
	 * does to the mask it returns to, and the hand-on does not reach the
	 * waiter there (it did on every kernel run). */
	if (t_under_valgrind())
		skip();
	st = t_fork(child_plain_thread, err, sizeof(err));
	if (WIFSIGNALED(st))
		fail_msg("killed by signal %d: %s", WTERMSIG(st), err);
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* In a fiber of loop 1: its thread blocks SIGTERM and SIGINT but not the faults. */
static int mask_check(void *arg)
{
	sigset_t cur;

	(void)arg;
	if (weft_loop_index() != 1)
		return 0;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	if (sigismember(&cur, SIGTERM) != 1 || sigismember(&cur, SIGINT) != 1)
		return -1;
	if (sigismember(&cur, SIGSEGV) || sigismember(&cur, SIGBUS) || sigismember(&cur, SIGFPE))
		return -2;
	return 0;
}

static int masks_main(void *arg)
{
	weft_call calls[2] = { { mask_check, NULL, 0 }, { mask_check, NULL, 0 } };

	return weft_loop_index() == 0 ? weft_pool_gather(arg, calls, 2) : 0;
}

static void test_pool_threads_block_signals_but_faults(void **state)
{
	weft_pool *p;

	(void)state;
	assert_int_equal(weft_pool_create(&p, 2, NULL), 0);
	assert_int_equal(weft_pool_run(p, masks_main, p), 0);
	weft_pool_destroy(p);
}

/* Sent to the loop's own thread (tgkill): on an SQPOLL ring too, where the SQ thread cannot see it.
 */
static int kicker(void *arg)
{
	pid_t *tid = arg;

	weft_sleep(5 * WEFT_MSEC);
	return syscall(SYS_tgkill, getpid(), *tid, SIGUSR2) == 0 ? 0 : -errno;
}

static int thread_main(void *arg)
{
	sigset_t s = set_of(SIGUSR2, 0);
	pid_t tid = (pid_t)syscall(SYS_gettid);

	(void)arg;
	if (weft_go(kicker, &tid) < 0)
		return -ENOMEM;
	weft_set_timeout(5 * WEFT_SEC);
	return weft_signal_wait(&s, NULL);
}

static void test_signal_sent_to_the_loops_thread(void **state)
{
	(void)state;
	assert_int_equal(t_run(thread_main, NULL), SIGUSR2);
}

/* A deadline already past: -ETIMEDOUT at once, as every call, though the signal is pending. */
static int past_main(void *arg)
{
	sigset_t s = set_of(SIGUSR1, 0);
	siginfo_t si;
	int rc;

	(void)arg;
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	kill(getpid(), SIGUSR1);
	weft_set_deadline(weft_now() - 1);
	rc = weft_signal_wait(&s, NULL);
	weft_set_deadline(WEFT_FOREVER);
	if (rc != -ETIMEDOUT)
		return -1;
	return weft_signal_wait(&s, &si) == SIGUSR1 ? 0 : -2; /* still pending, then taken */
}

static void test_past_deadline_times_out_first(void **state)
{
	(void)state;
	assert_int_equal(t_run(past_main, NULL), 0);
}

/*
 * SIGCHLD left at SIG_IGN reaps children; waiting for it keeps that. And a
 * SIG_DFL installed with SA_SIGINFO is still SIG_DFL: weft takes it over.
 */
static int chld_main(void *arg)
{
	sigset_t s = set_of(SIGCHLD, 0);
	sigset_t u = set_of(SIGRTMIN + 6, 0); /* used by no other test: not taken over yet */
	pid_t pid;

	(void)arg;
	weft_set_timeout(WEFT_MSEC);
	weft_signal_wait(&s, NULL);
	weft_set_deadline(WEFT_FOREVER);
	pid = fork();
	if (pid == 0)
		_exit(0);
	weft_sleep(50 * WEFT_MSEC);
	if (waitpid(pid, NULL, WNOHANG) != -1 || errno != ECHILD)
		return -1; /* a zombie: the reaping was lost */
	weft_set_timeout(WEFT_MSEC);
	weft_signal_wait(&u, NULL); /* takes it over */
	weft_set_timeout(5 * WEFT_SEC);

	pthread_sigmask(SIG_UNBLOCK, &u, NULL); /* lands here, handed on */
	kill(getpid(), SIGRTMIN + 6);
	return weft_signal_wait(&u, NULL) == SIGRTMIN + 6 ? 0 : -2;
}

static void child_chld(void)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL, .sa_flags = SA_SIGINFO };

	alarm(60);
	signal(SIGCHLD, SIG_IGN);
	sigaction(SIGRTMIN + 6, &dfl, NULL);
	_exit(t_run(chld_main, NULL) == 0 ? 0 : 6);
}

static void test_sigchld_ignored_still_reaps_and_siginfo_dfl_is_dfl(void **state)
{
	char err[512];
	int st;

	(void)state;
	if (t_under_valgrind())
		skip(); /* the hand-on from an unblocked thread, as above */
	st = t_fork(child_chld, err, sizeof(err));
	if (WIFSIGNALED(st))
		fail_msg("killed by signal %d: %s", WTERMSIG(st), err);
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	if (!t_io_uring_usable())
		return 77;

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signal_sent_while_waiting),
		cmocka_unit_test(test_signal_sent_while_nobody_waits_stays_pending),
		cmocka_unit_test(test_two_waiters_take_their_own_signals),
		cmocka_unit_test(test_two_waiters_of_one_signal_take_one_each),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_sigterm_in_a_pool_reaches_the_fiber),
		cmocka_unit_test(test_signal_on_a_plain_thread_is_handed_on),
		cmocka_unit_test(test_pool_threads_block_signals_but_faults),
		cmocka_unit_test(test_signal_sent_to_the_loops_thread),
		cmocka_unit_test(test_past_deadline_times_out_first),
		cmocka_unit_test(test_sigchld_ignored_still_reaps_and_siginfo_dfl_is_dfl),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
