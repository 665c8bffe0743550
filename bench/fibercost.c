/* SPDX-License-Identifier: MIT */
/*
 * bench_fibercost: what a default fiber costs against what the machine
 * charges for the memory it must touch, in the same run.
 *   fault: map N stacks' worth of address space (64 KiB apart, as weft's
 *          slabs) and write one byte in the top page of each: ns per page,
 *          the raw first-touch fault (mostly the kernel zeroing the page).
 *   fiber: N fibers of the default configuration gathered, each sleeping D
 *          ms (weft_gather): (wall of the gather - D) / N, in ns.
 * The two take turns, RUNS times, the order alternating; the line reports
 * medians and their ratio (the goal of issue 12: fiber <= 1.3 x fault).
 *   bench=fibercost n=… d_ms=… runs=… fault_ns=… fiber_ns=… ratio=… maxrss_kb=…
 */
#define _GNU_SOURCE
#include "common.h"

#include <weft.h>

#include <sys/mman.h>
#include <unistd.h>

#define SLOT (64 * 1024)

static long long n = 100000;
static long long d_ms = 100;
static long long runs = 5;

static double fault_once(void)
{
	size_t len = (size_t)n * SLOT;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int64_t t0, t1;

	if (p == MAP_FAILED)
		return -1;
	t0 = b_now();
	for (long long i = 0; i < n; i++)
		p[(size_t)(i + 1) * SLOT - 64] = 1;
	t1 = b_now();
	munmap(p, len);
	return (double)(t1 - t0) / (double)n;
}

static int sleeper(void *arg)
{
	(void)arg;
	return weft_sleep(d_ms * WEFT_MSEC);
}

struct gathered {
	weft_call *calls;
	int64_t wall;
};

static int gather_all(void *arg)
{
	struct gathered *g = arg;
	int64_t t0 = weft_now();
	int rc = weft_gather(g->calls, (size_t)n);

	g->wall = weft_now() - t0;
	return rc;
}

static double fiber_once(void)
{
	struct gathered g = { .calls = calloc((size_t)n, sizeof(weft_call)) };
	int rc;

	if (!g.calls)
		return -1;
	for (long long i = 0; i < n; i++)
		g.calls[i].fn = sleeper;
	rc = weft_main(gather_all, &g);
	free(g.calls);
	if (rc != 0) {
		fprintf(stderr, "bench_fibercost: %s\n", weft_loop_explain(rc));
		return -1;
	}
	return (double)(g.wall - d_ms * 1000000) / (double)n;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, long long k)
{
	qsort(v, (size_t)k, sizeof(*v), cmp);
	return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "bench_fibercost: %s\n", why);
	fprintf(stderr, "usage: bench_fibercost [--n N] [--ms D] [--runs R]\n"
			"  N fibers (default 100000) each sleeping D ms (default 100), gathered,\n"
			"  against N first-touch page faults; R runs each, taking turns (default "
			"5)\n");
	return 2;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		long long *v = !strcmp(argv[i], "--n")	    ? &n
			       : !strcmp(argv[i], "--ms")   ? &d_ms
			       : !strcmp(argv[i], "--runs") ? &runs
							    : NULL;

		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return usage(NULL), 0;
		if (!v)
			return usage("unknown argument");
		if (i + 1 >= argc)
			return usage("an option lacks its value");
		i++;
		*v = b_parse_count(argv[i], argv[i - 1]);
		if (*v < 1)
			return usage("every value must be a whole number of at least 1");
	}
	if (n > 10000000 || runs > 101 || d_ms > 60000)
		return usage("at most 10000000 fibers, 101 runs and 60000 ms");

	double *fault = calloc((size_t)runs, sizeof(double));
	double *fiber = calloc((size_t)runs, sizeof(double));

	if (!fault || !fiber)
		return 1;
	for (long long r = 0; r < runs; r++) {
		if (r % 2 == 0) {
			fault[r] = fault_once();
			fiber[r] = fiber_once();
		} else {
			fiber[r] = fiber_once();
			fault[r] = fault_once();
		}
		if (fault[r] < 0 || fiber[r] < 0) {
			fprintf(stderr, "bench_fibercost: run %lld failed (out of memory?)\n",
				r + 1);
			return 1;
		}
		fprintf(stderr, "run %lld: fault %.0f ns, fiber %.0f ns\n", r + 1, fault[r],
			fiber[r]);
	}

	double fm = median(fault, runs), bm = median(fiber, runs);
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	printf("bench=fibercost n=%lld d_ms=%lld runs=%lld fault_ns=%.0f fiber_ns=%.0f ratio=%.2f "
	       "maxrss_kb=%ld\n",
	       n, d_ms, runs, fm, bm, bm / fm, ru.ru_maxrss);
	free(fault);
	free(fiber);
	return 0;
}
