/* SPDX-License-Identifier: MIT */
/*
 * Peer: raw liburing, N IORING_OP_TIMEOUTs of D each, submitted in batches
 * of the SQ size, then every CQE reaped. No fibers, no stacks: the floor
 * that any io_uring sleep design pays. Prints one line like bench_sleep.
 */
#define _GNU_SOURCE
#include "../common.h"

#include <liburing.h>

int main(int argc, char **argv)
{
	struct io_uring ring;
	struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE, .cq_entries = 65536 };
	long long n;
	long long d_ms;
	long long seen = 0;
	unsigned enters = 0;
	int rc;

	const char *log = NULL;

	if (argc == 5 && !strcmp(argv[3], "--log"))
		log = argv[4];
	else if (argc != 3)
		n = -1;
	if ((argc != 3 && argc != 5) || !(argc == 3 || log) ||
	    (n = b_parse_count(argv[1], "N")) < 0 || (d_ms = b_parse_count(argv[2], "D_MS")) < 0) {
		fprintf(stderr, "usage: peer_uring_timeouts N D_MS [--log FILE]\n");
		return 2;
	}
	int64_t t0 = b_now();
	struct __kernel_timespec ts = { .tv_sec = d_ms / 1000, .tv_nsec = (d_ms % 1000) * 1000000 };

	rc = io_uring_queue_init_params(4096, &ring, &p);
	if (rc < 0) {
		fprintf(stderr, "peer_uring_timeouts: io_uring_queue_init: %s\n", strerror(-rc));
		return 1;
	}
	for (long long i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		if (!sqe) {
			io_uring_submit(&ring);
			enters++;
			sqe = io_uring_get_sqe(&ring);
		}
		io_uring_prep_timeout(sqe, &ts, 0, 0);
	}
	while (seen < n) {
		struct io_uring_cqe *cqe;
		unsigned head;
		unsigned got = 0;

		rc = io_uring_submit_and_wait(&ring, 1);
		enters++;
		if (rc < 0 && rc != -EINTR && rc != -ETIME) {
			fprintf(stderr, "peer_uring_timeouts: %s\n", strerror(-rc));
			return 1;
		}
		io_uring_for_each_cqe(&ring, head, cqe) got++;
		io_uring_cq_advance(&ring, got);
		seen += got;
	}
	io_uring_queue_exit(&ring);

	FILE *logf = log ? fopen(log, "a") : NULL;
	FILE *outs[2] = { stdout, logf };

	for (int i = 0; i < 2 && outs[i]; i++) {
		fprintf(outs[i],
			"bench=sleep mode=uring-timeouts n=%lld d_ms=%lld status=ok done=%lld "
			"wall_s=%.4f",
			n, d_ms, seen, (double)(b_now() - t0) / 1e9);
		b_print_rusage(outs[i]);
		fprintf(outs[i], " enters=%u enters_per_task=%.6f\n", enters,
			(double)enters / (double)(n ? n : 1));
	}
	if (logf)
		fclose(logf);
	return 0;
}
