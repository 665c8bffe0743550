/* SPDX-License-Identifier: MIT */
/*
 * bench_tasks: bench/gather's workloads (see workload.h) run by weft fibers
 * under weft_gather, with a normal ring (weft) or an SQPOLL ring
 * (weft-sqpoll), or by the baselines in baseline/blocking.c (threads,
 * sequential). Also `demo UNIT_MS` (the asyncio demo: tasks of 2 and 1
 * units, sequential then gathered) and `check` (can a weft loop be created
 * here, and with which flags?).
 */
#define _GNU_SOURCE
#include "workload.h"

#include <weft.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

static int read_slice(long long i)
{
	char *buf = w_buf(i);
	size_t got = 0;

	while (got < W_SLICE) {
		ssize_t n = weft_read(w_file_fd, buf + got, W_SLICE - got,
				      (int64_t)w_slice_off(i) + (int64_t)got);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO; /* the file shrank under us */
		got += (size_t)n;
	}
	return 0;
}

static int write_own_file(long long i)
{
	char path[512];
	int fd;
	int rc = 0;
	ssize_t n;

	w_task_path(path, sizeof(path), i);
	fd = weft_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fd;
	n = weft_write(fd, w_wbuf, W_WRITE, -1);
	if (n != W_WRITE)
		rc = n < 0 ? (int)n : -EIO;
	if (rc == 0)
		rc = weft_fsync(fd);
	int c = weft_close(fd);

	if (rc == 0)
		rc = c;
	c = weft_unlink(path, 0);
	return rc == 0 ? c : rc;
}

static int round_trips(long long k)
{
	struct sockaddr_in sa;
	char msg[W_MSG];
	int fd = weft_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc;

	if (fd < 0)
		return fd;
	w_server_addr(&sa);
	memset(msg, 'm', sizeof(msg));
	rc = weft_connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	for (long long r = 0; rc == 0 && r < k; r++) {
		ssize_t n = weft_send_all(fd, msg, W_MSG, 0);

		if (n < 0)
			rc = (int)n;
		for (size_t done = 0; rc == 0 && done < W_MSG; done += (size_t)n) {
			n = weft_recv(fd, msg + done, W_MSG - done, 0);
			if (n < 0)
				rc = (int)n;
			else if (n == 0)
				rc = -ECONNRESET; /* the server went away mid-reply */
		}
	}
	weft_close(fd);
	return rc;
}

static int task(void *arg)
{
	long long i = (long long)(intptr_t)arg;
	int rc;

	switch (w.kind) {
	case W_SLEEP:
		return weft_sleep(w.d_ms * WEFT_MSEC);
	case W_READ:
		return read_slice(i);
	case W_WRITE_FSYNC:
		return write_own_file(i);
	case W_SOCKET:
		return round_trips(w.rounds);
	case W_MIXED:
		rc = weft_sleep(w.d_ms * WEFT_MSEC);
		if (rc == 0)
			rc = read_slice(i);
		return rc < 0 ? rc : round_trips(1);
	}
	return -EINVAL;
}

/* Kernel memory half-way through the sleep, while every fiber is parked. */
static int sampler(void *arg)
{
	(void)arg;
	weft_sleep(w.d_ms * WEFT_MSEC / 2);
	w_kernel_mid = b_kernel_kb();
	return 0;
}

static weft_pool *pool; /* weft-pool: a loop per CPU */

static int gather_all(void *arg)
{
	weft_call *calls = arg;

	if (pool && weft_loop_index() != 0)
		return 0; /* the other loops run what loop 0 spreads to them */
	if (w.kind == W_SLEEP && weft_go(sampler, NULL) < 0)
		return -ENOMEM;
	return pool ? weft_pool_gather(pool, calls, (size_t)w.n) : weft_gather(calls, (size_t)w.n);
}

/* Every loop's counters, added up (one loop outside weft-pool). */
static void stats_of_all(weft_loop *l, weft_stats *st)
{
	weft_stats one;
	unsigned n = pool ? weft_pool_size(pool) : 1;

	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < n; i++) {
		weft_loop_stats(pool ? weft_pool_loop(pool, i) : l, &one);
		st->enters += one.enters;
		st->sqes += one.sqes;
		st->switches += one.switches;
		st->stacks += one.stacks;
		st->fibers_peak += one.fibers_peak;
		st->stack_size = one.stack_size;
		st->ring_mode = one.ring_mode;
		st->ring_flags = one.ring_flags;
	}
}

/* weft (@spread false) or weft-pool (@spread: weft_pool_gather over a loop per CPU). */
static int run_weft(bool sqpoll, uint32_t backend, bool spread)
{
	weft_config cfg;
	weft_loop *l;
	weft_stats st;
	weft_call *calls = calloc((size_t)w.n + 1, sizeof(*calls));
	int64_t t0 = b_now();
	char extra[512];
	int rc;

	if (!calls)
		return -ENOMEM;
	for (long long i = 0; i < w.n; i++)
		calls[i] = (weft_call){ .fn = task, .arg = (void *)(intptr_t)i };
	weft_config_init(&cfg);
	cfg.stack_size = (size_t)w.stack;
	if (w.guards >= 0)
		cfg.stack_guards = (uint32_t)w.guards;
	cfg.sq_entries = 4096;
	cfg.timer_mode = w.kernel_timers ? WEFT_TIMERS_KERNEL : WEFT_TIMERS_HEAP;
	if (sqpoll)
		cfg.flags |= WEFT_CONFIG_SQPOLL;
	if (backend != WEFT_BACKEND_AUTO)
		cfg.backend = backend;
	rc = spread ? weft_pool_create(&pool, 0, &cfg) : weft_loop_create(&l, &cfg);
	if (rc < 0) {
		fprintf(stderr, "bench_tasks: %s\n", weft_loop_explain(rc));
		w_result(strerrorname_np(-rc), 0, 0, "");
		free(calls);
		return rc;
	}
	if (spread) {
		l = weft_pool_loop(pool, 0);
		rc = weft_pool_run(pool, gather_all, calls);
	} else {
		rc = weft_spawn(l, gather_all, calls, NULL);
		if (rc == 0)
			rc = weft_loop_run(l);
	}
	stats_of_all(l, &st);

	double wall = (double)(b_now() - t0) / 1e9;
	long long done = 0;
	const char *status = rc < 0 ? strerrorname_np(-rc) : "ok";

	for (long long i = 0; i < w.n; i++) {
		done += calls[i].result == 0;
		if (calls[i].result < 0 && !strcmp(status, "ok"))
			status = strerrorname_np(-calls[i].result);
	}
	double ops = (double)(w.n ? w.n * w_ops_per_task() : 1);

	snprintf(extra, sizeof(extra),
		 " enters=%llu enters_per_op=%.6f sqes=%llu switches=%llu stacks=%llu "
		 "stack_size=%llu fibers_peak=%llu ring_mode=%u ring_flags=0x%x timers=%s "
		 "backend=%s loops=%u",
		 (unsigned long long)st.enters, (double)st.enters / ops,
		 (unsigned long long)st.sqes, (unsigned long long)st.switches,
		 (unsigned long long)st.stacks, (unsigned long long)st.stack_size,
		 (unsigned long long)st.fibers_peak, st.ring_mode, st.ring_flags,
		 w.kernel_timers ? "kernel" : "heap", weft_loop_backend(l),
		 pool ? weft_pool_size(pool) : 1);
	w_result(status, done, wall, extra);
	if (pool)
		weft_pool_destroy(pool);
	else
		weft_loop_destroy(l);
	free(calls);
	return strcmp(status, "ok") ? -EIO : 0;
}

/* ---- the asyncio demo ------------------------------------------------------- */

static long long unit_ms;

static int say_after(void *arg)
{
	return weft_sleep((long long)(intptr_t)arg * unit_ms * WEFT_MSEC);
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

	w_nap_ms(2 * unit_ms); /* task A: 2 units */
	w_nap_ms(1 * unit_ms); /* task B: 1 unit */
	seq = (double)(b_now() - t0) / 1e9;
	t0 = b_now();
	rc = weft_main(demo_gather, NULL);
	conc = (double)(b_now() - t0) / 1e9;
	if (rc < 0) {
		fprintf(stderr, "bench_tasks: %s\n", weft_loop_explain(rc));
		return rc;
	}
	printf("bench=demo unit_ms=%lld sequential_s=%.4f sequential_units=%.2f gather_s=%.4f "
	       "gather_units=%.2f\n",
	       unit_ms, seq, seq * 1000 / (double)unit_ms, conc, conc * 1000 / (double)unit_ms);
	return 0;
}

/* Can a loop be made here, and can it have an SQPOLL ring? */
static int check(void)
{
	weft_config cfg;
	weft_loop *l;
	weft_stats st;
	int rc = weft_loop_create(&l, NULL);

	if (rc < 0) {
		fprintf(stderr, "weft cannot run here: %s\n", weft_loop_explain(rc));
		return rc;
	}
	weft_loop_stats(l, &st);
	if (st.backend != WEFT_BACKEND_URING) {
		/* io_uring is refused here and the loop fell back: say so, and why. */
		printf("backend=%s why=\"%s\"\n", weft_loop_backend(l), weft_loop_explain(0));
		weft_loop_destroy(l);
		return 0;
	}
	printf("io_uring ok: backend=%s ring_mode=%u ring_flags=0x%x", weft_loop_backend(l),
	       st.ring_mode, st.ring_flags);
	weft_loop_destroy(l);
	weft_config_init(&cfg);
	cfg.flags |= WEFT_CONFIG_SQPOLL;
	rc = weft_loop_create(&l, &cfg);
	if (rc < 0) {
		printf(" sqpoll=%s\n", strerrorname_np(-rc));
		return 0;
	}
	weft_loop_stats(l, &st);
	printf(" sqpoll=ok sqpoll_ring_mode=%u sqpoll_ring_flags=0x%x\n", st.ring_mode,
	       st.ring_flags);
	weft_loop_destroy(l);
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const modes[] = { "weft",	"weft-sqpoll", "weft-epoll", "weft-pool",
					     "threads", "sequential",  NULL };
	int rc;

	if (argc == 2 && !strcmp(argv[1], "check"))
		return check() < 0 ? 1 : 0;
	if (argc == 3 && !strcmp(argv[1], "demo")) {
		if ((unit_ms = b_parse_count(argv[2], "UNIT_MS")) < 1)
			return 2;
		return run_demo() < 0 ? 1 : 0;
	}
	rc = w_parse(argc - 1, argv + 1, "bench_tasks", modes);
	if (rc)
		return rc;
	w_kernel_before = b_kernel_kb();
	rc = w_prepare();
	if (rc < 0) {
		w_result(strerrorname_np(-rc), 0, 0, "");
		return 3;
	}
	if (!strcmp(w.mode, "weft"))
		rc = run_weft(false, WEFT_BACKEND_AUTO, false);
	else if (!strcmp(w.mode, "weft-sqpoll"))
		rc = run_weft(true, WEFT_BACKEND_AUTO, false);
	else if (!strcmp(w.mode, "weft-epoll"))
		rc = run_weft(false, WEFT_BACKEND_EPOLL, false);
	else if (!strcmp(w.mode, "weft-pool"))
		rc = run_weft(false, WEFT_BACKEND_AUTO, true);
	else if (!strcmp(w.mode, "threads"))
		rc = w_run_threads();
	else
		rc = w_run_sequential();
	return rc == 0 ? 0 : 3;
}
