/* SPDX-License-Identifier: MIT */
/*
 * bench_pool_sleep: N fibers each sleeping 100 ms, gathered on one loop
 * (weft_gather) or spread over a pool of LOOPS loops (weft_pool_gather from
 * loop 0), the two taking turns RUNS times; medians of the gather's wall.
 *   bench=pool_sleep n=… loops=… runs=… one_loop_ms=… pool_ms=… ratio=…
 * The goal of issue 14 on a 2-CPU machine: 200,000 sleeps over 2 loops in
 * at most 0.75x one loop's time.
 */
#include "common.h"

#include <weft.h>

#include <stdbool.h>

static long long n = 200000;
static long long loops = 2;
static long long runs = 5;
static weft_call *calls;
static weft_pool *pool;
static int64_t wall;

static int sleeper(void *arg)
{
	(void)arg;
	return weft_sleep(100 * WEFT_MSEC);
}

static int on_one_loop(void *arg)
{
	int64_t t0 = weft_now();
	int rc = weft_gather(calls, (size_t)n);

	(void)arg;
	wall = weft_now() - t0;
	return rc;
}

static int on_the_pool(void *arg)
{
	int64_t t0;
	int rc;

	(void)arg;
	if (weft_loop_index() != 0)
		return 0;
	t0 = weft_now();
	rc = weft_pool_gather(pool, calls, (size_t)n);
	wall = weft_now() - t0;
	return rc;
}

static double once(bool spread)
{
	int rc;

	if (spread) {
		rc = weft_pool_create(&pool, (unsigned)loops, NULL);
		if (rc == 0) {
			rc = weft_pool_run(pool, on_the_pool, NULL);
			weft_pool_destroy(pool);
		}
	} else {
		rc = weft_main(on_one_loop, NULL);
	}
	if (rc != 0) {
		fprintf(stderr, "bench_pool_sleep: %s\n", weft_loop_explain(rc));
		return -1;
	}
	return (double)wall / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		long long *v = !strcmp(argv[i], "--n")	     ? &n
			       : !strcmp(argv[i], "--loops") ? &loops
			       : !strcmp(argv[i], "--runs")  ? &runs
							     : NULL;

		if (!v || i + 1 >= argc) {
			fprintf(stderr, "usage: bench_pool_sleep [--n N] [--loops L] [--runs R]\n");
			return 2;
		}
		i++;
		*v = b_parse_count(argv[i], argv[i - 1]);
		if (*v < 1 || *v > 10000000 || (v == &loops && *v > 4096) ||
		    (v == &runs && *v > 101)) {
			fprintf(stderr,
				"bench_pool_sleep: %s takes a whole number from 1 (at most "
				"10000000 fibers, 4096 loops, 101 runs)\n",
				argv[i - 1]);
			return 2;
		}
	}
	calls = calloc((size_t)n, sizeof(*calls));

	double *one = calloc((size_t)runs, sizeof(double));
	double *spread = calloc((size_t)runs, sizeof(double));

	if (!calls || !one || !spread)
		return 1;
	for (long long i = 0; i < n; i++)
		calls[i].fn = sleeper;
	for (long long r = 0; r < runs; r++) {
		one[r] = once(false);
		spread[r] = once(true);
		if (one[r] < 0 || spread[r] < 0)
			return 1;
		fprintf(stderr, "run %lld: one loop %.1f ms, %lld loops %.1f ms\n", r + 1, one[r],
			loops, spread[r]);
	}
	qsort(one, (size_t)runs, sizeof(double), cmp);
	qsort(spread, (size_t)runs, sizeof(double), cmp);

	double a = one[runs / 2], b = spread[runs / 2];

	printf("bench=pool_sleep n=%lld loops=%lld runs=%lld one_loop_ms=%.1f pool_ms=%.1f "
	       "ratio=%.2f\n",
	       n, loops, runs, a, b, b / a);
	return 0;
}
