/* SPDX-License-Identifier: MIT */
/*
 * bench_sleep: N tasks that each sleep D, gathered, run one of three ways:
 *   weft        fibers under weft_gather (one loop, one thread)
 *   threads     a blocking thread per task (pthread_create + nanosleep, joined)
 *   sequential  one task after another (nanosleep in a loop)
 * plus `demo` (the asyncio demo: tasks of 2 and 1 units, sequential then
 * gathered) and `check` (can a weft loop be created here?).
 *
 * Prints one machine-readable line, also appended to --log FILE:
 *   bench=sleep mode=weft n=… d_ms=… status=ok wall_s=… user_s=… sys_s=…
 *   maxrss_kb=… kernel_kb=… nvcsw=… nivcsw=… enters=… …
 * A mode that fails prints status=<ERRNO> done=<tasks started> and exits 3.
 */
#define _GNU_SOURCE
#include "common.h"

#include <weft.h>

#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

struct opts {
	const char *mode;
	long long n;
	long long d_ms;
	long long stack;
	long long guards; /* -1: the library's default */
	int kernel_timers;
	const char *log;
};

static struct opts o = { .stack = 64 * 1024, .guards = -1 };
static long kernel_before;
static long kernel_mid = -1;
static char extra[512]; /* mode-specific fields of the result line */

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_sleep weft|threads|sequential N D_MS [--stack BYTES] "
		   "[--guards N] [--timers heap|kernel] [--log FILE]\n"
		   "       bench_sleep demo UNIT_MS\n"
		   "       bench_sleep check\n");
}

static void result(const char *status, long long done, double wall)
{
	char line[1024];
	FILE *mem = fmemopen(line, sizeof(line), "w");

	if (!mem)
		return;
	fprintf(mem, "bench=sleep mode=%s n=%lld d_ms=%lld status=%s done=%lld wall_s=%.4f", o.mode,
		o.n, o.d_ms, status, done, wall);
	b_print_rusage(mem);
	fprintf(mem, " kernel_kb=%ld%s", kernel_mid < 0 ? 0 : kernel_mid - kernel_before, extra);
	fclose(mem);
	puts(line);
	if (o.log) {
		FILE *f = fopen(o.log, "a");

		if (f) {
			fprintf(f, "%s\n", line);
			fclose(f);
		}
	}
}

static void nap_ms(long long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- weft ----------------------------------------------------------------- */

static int weft_task(void *arg)
{
	(void)arg;
	return weft_sleep(o.d_ms * WEFT_MSEC);
}

static int weft_sampler(void *arg)
{
	(void)arg;
	weft_sleep(o.d_ms * WEFT_MSEC / 2);
	kernel_mid = b_kernel_kb();
	return 0;
}

static int weft_gather_all(void *arg)
{
	weft_call *calls = arg;

	if (weft_go(weft_sampler, NULL) < 0)
		return -ENOMEM;
	return weft_gather(calls, (size_t)o.n);
}

static int run_weft(void)
{
	weft_config cfg;
	weft_loop *l;
	weft_stats st;
	weft_call *calls = calloc((size_t)o.n + 1, sizeof(*calls));
	int64_t t0 = b_now();
	int rc;

	if (!calls)
		return -ENOMEM;
	for (long long i = 0; i < o.n; i++)
		calls[i] = (weft_call){ .fn = weft_task };
	weft_config_init(&cfg);
	cfg.stack_size = (size_t)o.stack;
	if (o.guards >= 0)
		cfg.stack_guards = (uint32_t)o.guards;
	cfg.sq_entries = 4096;
	cfg.timer_mode = o.kernel_timers ? WEFT_TIMERS_KERNEL : WEFT_TIMERS_HEAP;
	rc = weft_loop_create(&l, &cfg);
	if (rc < 0) {
		fprintf(stderr, "bench_sleep: %s\n", weft_loop_explain(rc));
		return rc;
	}
	rc = weft_spawn(l, weft_gather_all, calls, NULL);
	if (rc == 0)
		rc = weft_loop_run(l);
	weft_loop_stats(l, &st);
	double wall = (double)(b_now() - t0) / 1e9;
	long long done = 0;

	for (long long i = 0; i < o.n; i++)
		done += calls[i].result == 0;
	snprintf(extra, sizeof(extra),
		 " enters=%llu enters_per_task=%.6f sqes=%llu switches=%llu stacks=%llu "
		 "stack_size=%llu fibers_peak=%llu ring_mode=%u timers=%s",
		 (unsigned long long)st.enters, (double)st.enters / (double)(o.n ? o.n : 1),
		 (unsigned long long)st.sqes, (unsigned long long)st.switches,
		 (unsigned long long)st.stacks, (unsigned long long)st.stack_size,
		 (unsigned long long)st.fibers_peak, st.ring_mode,
		 o.kernel_timers ? "kernel" : "heap");
	if (rc == 0 && done != o.n)
		rc = -EIO;
	result(rc == 0 ? "ok" : strerrorname_np(-rc), done, wall);
	weft_loop_destroy(l);
	free(calls);
	return rc;
}

/* ---- threads ---------------------------------------------------------------- */

static void *thread_task(void *arg)
{
	(void)arg;
	nap_ms(o.d_ms);
	return NULL;
}

static int run_threads(void)
{
	pthread_t *t = calloc((size_t)o.n + 1, sizeof(*t));
	pthread_attr_t attr;
	int64_t t0 = b_now();
	long long started = 0;
	int err = 0;

	if (!t)
		return -ENOMEM;
	pthread_attr_init(&attr);
	/* The same 64 KiB a fiber gets by default (glibc's default is 8 MiB). */
	pthread_attr_setstacksize(&attr, (size_t)o.stack);
	for (; started < o.n; started++) {
		err = pthread_create(&t[started], &attr, thread_task, NULL);
		if (err)
			break;
	}
	/* Sample kernel memory while the threads are all alive. */
	int64_t mid = t0 + o.d_ms * 1000000 / 2;
	int64_t now = b_now();

	if (now < mid)
		nap_ms((mid - now) / 1000000);
	kernel_mid = b_kernel_kb();
	for (long long i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	pthread_attr_destroy(&attr);
	free(t);
	snprintf(extra, sizeof(extra), " thread_stack=%lld", o.stack);
	result(err ? strerrorname_np(err) : "ok", started, (double)(b_now() - t0) / 1e9);
	return -err;
}

/* ---- sequential ------------------------------------------------------------- */

static int run_sequential(void)
{
	int64_t t0 = b_now();

	kernel_mid = b_kernel_kb();
	for (long long i = 0; i < o.n; i++)
		nap_ms(o.d_ms);
	result("ok", o.n, (double)(b_now() - t0) / 1e9);
	return 0;
}

/* ---- the asyncio demo --------------------------------------------------------- */

static int say_after(void *arg)
{
	long long units = (long long)(intptr_t)arg;

	return weft_sleep(units * o.d_ms * WEFT_MSEC);
}

static int demo_gather(void *arg)
{
	weft_call calls[2] = {
		{ .fn = say_after, .arg = (void *)(intptr_t)2 },
		{ .fn = say_after, .arg = (void *)(intptr_t)1 },
	};

	(void)arg;
	return weft_gather(calls, 2);
}

static int run_demo(void)
{
	int64_t t0 = b_now();
	double seq;
	double conc;
	int rc;

	nap_ms(2 * o.d_ms); /* task A: 2 units */
	nap_ms(1 * o.d_ms); /* task B: 1 unit */
	seq = (double)(b_now() - t0) / 1e9;
	t0 = b_now();
	rc = weft_main(demo_gather, NULL);
	conc = (double)(b_now() - t0) / 1e9;
	if (rc < 0) {
		fprintf(stderr, "bench_sleep: %s\n", weft_loop_explain(rc));
		return rc;
	}
	printf("bench=demo unit_ms=%lld sequential_s=%.4f sequential_units=%.2f gather_s=%.4f "
	       "gather_units=%.2f\n",
	       o.d_ms, seq, seq * 1000 / (double)o.d_ms, conc, conc * 1000 / (double)o.d_ms);
	return 0;
}

static int check(void)
{
	weft_loop *l;
	int rc = weft_loop_create(&l, NULL);
	weft_stats st;

	if (rc < 0) {
		fprintf(stderr, "weft cannot run here: %s\n", weft_loop_explain(rc));
		return rc;
	}
	weft_loop_stats(l, &st);
	printf("io_uring ok: ring_mode=%u ring_flags=0x%x\n", st.ring_mode, st.ring_flags);
	weft_loop_destroy(l);
	return 0;
}

int main(int argc, char **argv)
{
	int pos = 0;
	const char *args[3] = { 0 };

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--stack") && i + 1 < argc) {
			o.stack = b_parse_count(argv[++i], "--stack");
			if (o.stack < 4096)
				return fprintf(stderr, "--stack: at least 4096\n"), 2;
		} else if (!strcmp(argv[i], "--guards") && i + 1 < argc) {
			o.guards = b_parse_count(argv[++i], "--guards");
			if (o.guards < 0 || o.guards > UINT32_MAX)
				return fprintf(stderr, "--guards: 0 to %u\n", UINT32_MAX), 2;
		} else if (!strcmp(argv[i], "--timers") && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "heap") && strcmp(argv[i], "kernel"))
				return fprintf(stderr, "--timers: heap or kernel\n"), 2;
			o.kernel_timers = !strcmp(argv[i], "kernel");
		} else if (!strcmp(argv[i], "--log") && i + 1 < argc) {
			o.log = argv[++i];
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] == '-' || pos == 3) {
			fprintf(stderr, "bench_sleep: unexpected argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		} else {
			args[pos++] = argv[i];
		}
	}
	if (pos < 1) {
		usage(stderr);
		return 2;
	}
	o.mode = args[0];
	if (!strcmp(o.mode, "check"))
		return check() < 0 ? 1 : 0;
	if (!strcmp(o.mode, "demo")) {
		if (pos != 2 || (o.d_ms = b_parse_count(args[1], "UNIT_MS")) < 1)
			return usage(stderr), 2;
		return run_demo() < 0 ? 1 : 0;
	}
	if (pos != 3 || (o.n = b_parse_count(args[1], "N")) < 0 ||
	    (o.d_ms = b_parse_count(args[2], "D_MS")) < 0) {
		usage(stderr);
		return 2;
	}
	kernel_before = b_kernel_kb();

	int rc;

	if (!strcmp(o.mode, "weft"))
		rc = run_weft();
	else if (!strcmp(o.mode, "threads"))
		rc = run_threads();
	else if (!strcmp(o.mode, "sequential"))
		rc = run_sequential();
	else {
		fprintf(stderr, "bench_sleep: unknown mode '%s'\n", o.mode);
		usage(stderr);
		return 2;
	}
	return rc == 0 ? 0 : 3;
}
