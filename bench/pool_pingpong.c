/* SPDX-License-Identifier: MIT */
/*
 * bench_pool_pingpong: a ball passed between two loops of a pool through two
 * shared rendezvous channels, N round trips: every hand-over wakes a fiber
 * parked on the other loop. Run with the loops waking each other by
 * IORING_OP_MSG_RING (WEFT_WAKE=auto) and by eventfd (WEFT_WAKE=eventfd),
 * taking turns RUNS times; medians of ns per round trip, and the system
 * calls each used per round trip (io_uring_enter calls counted by weft, and
 * the eventfd reads and writes: one each per eventfd wake).
 *   bench=pool_pingpong n=… runs=… msg_ring_ns=… eventfd_ns=… ratio=…
 */
#include "common.h"

#include <weft.h>

#include <stdbool.h>

static long long n = 100000;
static long long runs = 5;
static weft_chan *ping, *pong;
static int64_t wall;

static int player(void *arg)
{
	long ball = 0;

	(void)arg;
	if (weft_loop_index() == 0) {
		int64_t t0 = weft_now();

		for (long long i = 0; i < n; i++) {
			if (weft_chan_send(ping, &ball) < 0 || weft_chan_recv(pong, &ball) < 0)
				return -EIO;
		}
		wall = weft_now() - t0;
		weft_chan_close(ping);
		return ball == n ? 0 : -EBADMSG;
	}
	while (weft_chan_recv(ping, &ball) == 0) {
		ball++;
		if (weft_chan_send(pong, &ball) < 0)
			return -EIO;
	}
	return 0;
}

struct result {
	double ns;
	double enters, eventfd; /* per round trip */
};

static int once(const char *wake, struct result *r)
{
	weft_pool *p;
	weft_stats st;
	int rc;

	setenv("WEFT_WAKE", wake, 1);
	rc = weft_chan_create_shared(&ping, 0, sizeof(long));
	if (rc == 0)
		rc = weft_chan_create_shared(&pong, 0, sizeof(long));
	if (rc == 0)
		rc = weft_pool_create(&p, 2, NULL);
	if (rc < 0) {
		fprintf(stderr, "bench_pool_pingpong: %s\n", weft_loop_explain(rc));
		return rc;
	}
	rc = weft_pool_run(p, player, NULL);
	*r = (struct result){ .ns = (double)wall / (double)n };
	for (unsigned i = 0; i < 2; i++) {
		weft_loop_stats(weft_pool_loop(p, i), &st);
		r->enters += (double)st.enters / (double)n;
		r->eventfd += 2.0 * (double)st.wakes_eventfd / (double)n;
	}
	weft_pool_destroy(p);
	weft_chan_destroy(ping);
	weft_chan_destroy(pong);
	if (rc < 0)
		fprintf(stderr, "bench_pool_pingpong: the run failed: %s\n", strerror(-rc));
	return rc;
}

static int cmp(const void *a, const void *b)
{
	double x = ((const struct result *)a)->ns, y = ((const struct result *)b)->ns;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		long long *v = !strcmp(argv[i], "--n")	    ? &n
			       : !strcmp(argv[i], "--runs") ? &runs
							    : NULL;

		if (!v || i + 1 >= argc) {
			fprintf(stderr, "usage: bench_pool_pingpong [--n N] [--runs R]\n");
			return 2;
		}
		i++;
		*v = b_parse_count(argv[i], argv[i - 1]);
		if (*v < 1 || *v > 100000000 || (v == &runs && *v > 101)) {
			fprintf(stderr,
				"bench_pool_pingpong: %s takes a whole number from 1 (at most "
				"100000000 round trips, 101 runs)\n",
				argv[i - 1]);
			return 2;
		}
	}

	struct result *msg = calloc((size_t)runs, sizeof(*msg));
	struct result *efd = calloc((size_t)runs, sizeof(*efd));

	if (!msg || !efd)
		return 1;
	for (long long r = 0; r < runs; r++) {
		if (once("auto", &msg[r]) < 0 || once("eventfd", &efd[r]) < 0)
			return 1;
		fprintf(
		    stderr,
		    "run %lld: MSG_RING %.0f ns (%.2f enters, %.2f eventfd calls), eventfd %.0f "
		    "ns (%.2f enters, %.2f eventfd calls) per round trip\n",
		    r + 1, msg[r].ns, msg[r].enters, msg[r].eventfd, efd[r].ns, efd[r].enters,
		    efd[r].eventfd);
	}
	qsort(msg, (size_t)runs, sizeof(*msg), cmp);
	qsort(efd, (size_t)runs, sizeof(*efd), cmp);

	struct result a = msg[runs / 2], b = efd[runs / 2];

	printf("bench=pool_pingpong n=%lld runs=%lld msg_ring_ns=%.0f msg_ring_syscalls=%.2f "
	       "eventfd_ns=%.0f eventfd_syscalls=%.2f ratio=%.2f\n",
	       n, runs, a.ns, a.enters + a.eventfd, b.ns, b.enters + b.eventfd, a.ns / b.ns);
	return 0;
}
