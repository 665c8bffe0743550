/* SPDX-License-Identifier: MIT */
/*
 * bench_switch: ns per fiber switch, two fibers yielding to each other,
 * against glibc swapcontext doing the same ping-pong in the same process,
 * and against Boost.Context's raw jump_fcontext (peer_switch_boost, beside
 * this program where libboost-context-dev was found at build time), the
 * three taking turns; and the same two fibers on the one loop of a pool
 * (a pool loop expects posts from other threads at any time, and must not
 * pay for it when none come). Each runs REPS times; the line reports medians.
 *   bench=switch n=… weft_ns=… swapcontext_ns=… ratio=… weft_pool_ns=… boost_ns=…
 *   weft_over_boost=…
 */
#define _GNU_SOURCE
#include "common.h"

#include <weft.h>

#include <limits.h>
#include <stdbool.h>
#include <ucontext.h>
#include <unistd.h>

enum { REPS = 7 };

static long long n = 10000000;

static int yielder(void *arg)
{
	(void)arg;
	for (long long i = 0; i < n; i++)
		weft_yield();
	return 0;
}

static double weft_once(double *switches_per_yield)
{
	weft_loop *l;
	weft_stats st;
	int64_t t0;

	if (weft_loop_create(&l, NULL) < 0)
		return -1;
	weft_spawn(l, yielder, NULL, NULL);
	weft_spawn(l, yielder, NULL, NULL);
	t0 = b_now();
	weft_loop_run(l);
	double ns = (double)(b_now() - t0);

	weft_loop_stats(l, &st);
	weft_loop_destroy(l);
	*switches_per_yield = (double)st.switches / (double)(2 * n);
	return ns / (double)st.switches;
}

static int two_yielders(void *arg)
{
	(void)arg;
	if (weft_go(yielder, NULL) < 0 || weft_go(yielder, NULL) < 0)
		return -ENOMEM;
	return 0;
}

/* The same ping-pong on loop 0 of a pool of one loop. */
static double weft_pool_once(void)
{
	weft_pool *p;
	weft_stats st;
	int64_t t0;

	if (weft_pool_create(&p, 1, NULL) < 0)
		return -1;
	t0 = b_now();
	if (weft_pool_run(p, two_yielders, NULL) < 0) {
		weft_pool_destroy(p);
		return -1;
	}

	double ns = (double)(b_now() - t0);

	weft_loop_stats(weft_pool_loop(p, 0), &st);
	weft_pool_destroy(p);
	return ns / (double)st.switches;
}

static ucontext_t main_uc, a_uc, b_uc;

static void uc_a(void)
{
	for (long long i = 0; i < n; i++)
		swapcontext(&a_uc, &b_uc);
	swapcontext(&a_uc, &main_uc);
}

static void uc_b(void)
{
	for (;;)
		swapcontext(&b_uc, &a_uc);
}

static double swapcontext_once(void)
{
	static char sa[64 * 1024], sb[64 * 1024];
	int64_t t0;

	getcontext(&a_uc);
	a_uc.uc_stack = (stack_t){ .ss_sp = sa, .ss_size = sizeof(sa) };
	a_uc.uc_link = &main_uc;
	makecontext(&a_uc, uc_a, 0);
	getcontext(&b_uc);
	b_uc.uc_stack = (stack_t){ .ss_sp = sb, .ss_size = sizeof(sb) };
	b_uc.uc_link = &main_uc;
	makecontext(&b_uc, uc_b, 0);
	t0 = b_now();
	swapcontext(&main_uc, &a_uc);
	return (double)(b_now() - t0) / (double)(2 * n);
}

/* Boost.Context's ns per switch from its peer next to this program; -1 if there is none. */
static double boost_once(long long pairs)
{
	char self[PATH_MAX];
	char cmd[PATH_MAX + 64];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	double ns = -1;

	if (len <= 0)
		return -1;
	self[len] = '\0';

	char *slash = strrchr(self, '/');

	if (!slash)
		return -1;
	*slash = '\0';
	snprintf(cmd, sizeof(cmd), "%s/peer_switch_boost", self);
	if (access(cmd, X_OK) != 0)
		return -1;
	snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), " %lld", pairs);

	FILE *p = popen(cmd, "r");
	char line[256];

	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p)) {
		char *at = strstr(line, "boost_ns=");

		if (at)
			ns = strtod(at + 9, NULL);
	}
	return pclose(p) == 0 ? ns : -1;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	double w[REPS], s[REPS], bo[REPS], wp[REPS], per_yield = 0;
	bool have_boost = true;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf(
		    "usage: bench_switch [YIELDS_PER_FIBER]\n"
		    "Two fibers yield to each other YIELDS_PER_FIBER times (default %lld); prints "
		    "the nanoseconds per switch beside swapcontext's.\n",
		    n);
		return 0;
	}
	if (argc > 2 || (argc == 2 && (n = b_parse_count(argv[1], "YIELDS_PER_FIBER")) < 1)) {
		if (argc == 2 && n == 0)
			fprintf(stderr, "bench_switch: YIELDS_PER_FIBER must be at least 1\n");
		fprintf(stderr, "usage: bench_switch [YIELDS_PER_FIBER]\n");
		return 2;
	}
	long long sn = n;

	for (int r = 0; r < REPS; r++) {
		n = sn;
		w[r] = weft_once(&per_yield);
		if (w[r] < 0) {
			weft_loop *l;
			int rc = weft_loop_create(&l, NULL);

			fprintf(stderr, "bench_switch: %s\n", weft_loop_explain(rc));
			return 1;
		}
		wp[r] = weft_pool_once();
		n = sn / 10; /* swapcontext is slow: fewer rounds, same per-switch figure */
		s[r] = swapcontext_once();
		if (have_boost && (bo[r] = boost_once(sn)) < 0)
			have_boost = false;
	}
	qsort(w, REPS, sizeof(double), cmp);
	qsort(s, REPS, sizeof(double), cmp);
	qsort(wp, REPS, sizeof(double), cmp);
	printf("bench=switch n=%lld weft_ns=%.2f weft_min_ns=%.2f weft_max_ns=%.2f "
	       "swapcontext_ns=%.1f ratio=%.0f switches_per_yield=%.3f weft_pool_ns=%.2f",
	       sn, w[REPS / 2], w[0], w[REPS - 1], s[REPS / 2], s[REPS / 2] / w[REPS / 2],
	       per_yield, wp[REPS / 2]);
	if (have_boost) {
		qsort(bo, REPS, sizeof(double), cmp);
		printf(" boost_ns=%.2f weft_over_boost=%.2f\n", bo[REPS / 2],
		       w[REPS / 2] / bo[REPS / 2]);
	} else {
		printf(" boost_ns=skipped\n");
		fprintf(stderr, "bench_switch: no Boost.Context peer beside this program (install "
				"libboost-context-dev and rebuild to compare with it)\n");
	}
	return 0;
}
