/* SPDX-License-Identifier: MIT */
/*
 * bench_io: the I/O surface against its baselines, one case per run.
 *
 *   bench_io randread weft  FILE DEPTH OPS   random 4 KiB weft_read, DEPTH fibers
 *   bench_io randread pread FILE DEPTH OPS   the same with DEPTH threads in blocking pread loops
 *   bench_io nop weft  - DEPTH OPS           weft_nop from DEPTH fibers
 *   bench_io nop raw   - DEPTH OPS           liburing NOPs, DEPTH in flight, same batching
 *   bench_io echo weft    - CONNS ROUNDS     loopback TCP ping-pong, one loop for both ends
 *   bench_io echo weftbuf - CONNS ROUNDS     the same, the server end in weft_recv_buf
 *   bench_io echo epoll   - CONNS ROUNDS     the same shape as weft's: one thread, both
 *                                            ends, non-blocking sockets and epoll
 *   bench_io echo threads - CONNS ROUNDS     a blocking thread per connection end (2 x CONNS
 *                                            threads: every message wakes another thread)
 *
 * Prints one line of key=value: ops, seconds, ops_per_s, and for weft the
 * loop's io_uring_enter calls per operation.
 */
#define _GNU_SOURCE
#include <weft.h>

#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static long depth;
static long total;
static long done_ops;
static const char *path;
static int file_fd = -1;
static uint64_t file_blocks;
static weft_stats stats;
static int have_stats;

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static double now_s(void)
{
	return (double)weft_now() / 1e9;
}

/* ---- random reads ---- */

static int reader(void *arg)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)arg;
	char buf[4096] __attribute__((aligned(64)));

	while (done_ops < total) {
		done_ops++;

		int64_t off = (int64_t)(xorshift(&seed) % file_blocks) * 4096;
		ssize_t n = weft_read(file_fd, buf, sizeof(buf), off);

		if (n != (ssize_t)sizeof(buf))
			return n < 0 ? (int)n : -EIO;
	}
	return 0;
}

static int run_fibers(weft_fn fn)
{
	weft_call *calls = calloc((size_t)depth, sizeof(*calls));
	int rc;

	for (long i = 0; i < depth; i++)
		calls[i] = (weft_call){ fn, (void *)(uintptr_t)(i + 1), 0 };
	rc = weft_gather(calls, (size_t)depth);
	weft_loop_stats(weft_loop_current(), &stats);
	have_stats = 1;
	free(calls);
	return rc;
}

static int randread_weft(void *arg)
{
	(void)arg;
	return run_fibers(reader);
}

static void *pread_thread(void *arg)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)arg;
	char buf[4096] __attribute__((aligned(64)));

	while (__atomic_fetch_add(&done_ops, 1, __ATOMIC_RELAXED) < total) {
		off_t off = (off_t)(xorshift(&seed) % file_blocks) * 4096;

		if (pread(file_fd, buf, sizeof(buf), off) != (ssize_t)sizeof(buf))
			return (void *)-1;
	}
	return NULL;
}

/* DEPTH threads in blocking pread loops: the same depth as weft's fibers. */
static int randread_pread(void)
{
	pthread_t *t = calloc((size_t)depth, sizeof(*t));
	int rc = 0;
	long started = 0;

	if (!t)
		return -ENOMEM;
	while (started < depth && pthread_create(&t[started], NULL, pread_thread,
						 (void *)(uintptr_t)(started + 1)) == 0)
		started++;
	for (long i = 0; i < started; i++) {
		void *res;

		pthread_join(t[i], &res);
		if (res)
			rc = -EIO;
	}
	free(t);
	done_ops = total;
	return started < depth ? -EAGAIN : rc;
}

/* ---- NOPs ---- */

static int nopper(void *arg)
{
	(void)arg;
	while (done_ops < total) {
		done_ops++;

		int rc = weft_nop();

		if (rc < 0)
			return rc;
	}
	return 0;
}

static int nop_weft(void *arg)
{
	(void)arg;
	return run_fibers(nopper);
}

/* The same work with liburing alone: DEPTH NOPs in flight, refilled per batch. */
static int nop_raw(void)
{
	struct io_uring ring;
	struct io_uring_params p;
	long submitted = 0;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	unsigned entries = 256;

	while (entries < (unsigned)depth)
		entries *= 2;

	int rc = io_uring_queue_init_params(entries, &ring, &p);

	if (rc < 0)
		return rc;
	for (long i = 0; i < depth && submitted < total; i++, submitted++)
		io_uring_prep_nop(io_uring_get_sqe(&ring));
	while (done_ops < total) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 && rc != -EINTR)
			break;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			n++;
			if (submitted < total) {
				io_uring_prep_nop(io_uring_get_sqe(&ring));
				submitted++;
			}
		}
		io_uring_cq_advance(&ring, n);
		done_ops += n;
	}
	io_uring_queue_exit(&ring);
	return rc < 0 && rc != -EINTR ? rc : 0;
}

/* ---- echo ping-pong over loopback TCP ---- */

#define MSG 64

static int listen_fd = -1;
static int listen_port;
static long rounds;

static int make_listener(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int one = 1;

	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(listen_fd, 4096) < 0 ||
	    getsockname(listen_fd, (struct sockaddr *)&a, &len) < 0)
		return -errno;
	listen_port = ntohs(a.sin_port);
	return 0;
}

static int echo_srv_weft(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[MSG];
	ssize_t n;

	while ((n = weft_recv(fd, buf, sizeof(buf), 0)) > 0)
		if (weft_send_all(fd, buf, (size_t)n, 0) < 0)
			break;
	weft_close(fd);
	return 0;
}

/* The server end with weft_recv_buf: a buffer is lent only while bytes wait to be echoed. */
static int echo_srv_weftbuf(void *arg)
{
	int fd = (int)(intptr_t)arg;
	weft_buf b;
	ssize_t n;

	while ((n = weft_recv_buf(fd, &b, 0)) > 0) {
		ssize_t w = weft_send_all(fd, b.data, b.len, 0);

		weft_buf_release(&b);
		if (w < 0)
			break;
	}
	weft_close(fd);
	return 0;
}

static int use_buf;

static int acceptor_weft(void *arg)
{
	(void)arg;
	for (long i = 0; i < depth; i++) {
		int fd = weft_accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		int one = 1;

		if (fd < 0)
			return fd;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		weft_go(use_buf ? echo_srv_weftbuf : echo_srv_weft, (void *)(intptr_t)fd);
	}
	return 0;
}

static int client_weft(void *arg)
{
	char buf[MSG];
	int one = 1;
	int fd = weft_tcp_dial("127.0.0.1", listen_port);

	(void)arg;
	if (fd < 0)
		return fd;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(buf, 'p', sizeof(buf));
	for (long r = 0; r < rounds; r++) {
		if (weft_send_all(fd, buf, sizeof(buf), 0) < 0)
			return -EIO;
		for (size_t got = 0; got < sizeof(buf);) {
			ssize_t n = weft_recv(fd, buf + got, sizeof(buf) - got, 0);

			if (n <= 0)
				return -EIO;
			got += (size_t)n;
		}
		done_ops++;
	}
	weft_close(fd);
	return 0;
}

static int echo_weft(void *arg)
{
	weft_fiber *acc;

	(void)arg;
	weft_spawn(NULL, acceptor_weft, NULL, &acc);

	int rc = run_fibers(client_weft);

	weft_join(acc, NULL);
	return rc;
}

static void *echo_srv_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[MSG];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
			break;
	close(fd);
	return NULL;
}

static void *client_thread(void *arg)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)listen_port) };
	char buf[MSG];
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	long *mine = arg;

	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return NULL;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(buf, 'p', sizeof(buf));
	for (long r = 0; r < rounds; r++) {
		if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) != sizeof(buf) ||
		    recv(fd, buf, sizeof(buf), MSG_WAITALL) != sizeof(buf))
			break;
		(*mine)++;
	}
	close(fd);
	return NULL;
}

/* One thread doing both ends with epoll, as weft's loop does both ends. */
static int echo_epoll(void)
{
	struct end {
		int fd;
		int client;
		long left;
		size_t got;
	};
	struct end *ends = calloc((size_t)depth * 2, sizeof(*ends));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	char buf[MSG];
	long finished = 0;
	int one = 1;

	if (!ends || ep < 0)
		return -ENOMEM;
	memset(buf, 'p', sizeof(buf));
	for (long i = 0; i < depth; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
					 .sin_port = htons((uint16_t)listen_port) };
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
			return -errno;

		int s = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (s < 0)
			return -errno;
		fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		ends[2 * i] = (struct end){ .fd = c, .client = 1, .left = rounds };
		ends[2 * i + 1] = (struct end){ .fd = s };
		for (int k = 0; k < 2; k++) {
			struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &ends[2 * i + k] };

			epoll_ctl(ep, EPOLL_CTL_ADD, ends[2 * i + k].fd, &ev);
		}
	}
	for (long i = 0; i < depth; i++)
		if (send(ends[2 * i].fd, buf, sizeof(buf), MSG_NOSIGNAL) != sizeof(buf))
			return -EIO;
	while (finished < depth) {
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, -1);

		if (n < 0 && errno != EINTR)
			return -errno;
		for (int k = 0; k < n; k++) {
			struct end *e = evs[k].data.ptr;
			ssize_t got = recv(e->fd, buf, sizeof(buf) - (e->client ? e->got : 0), 0);

			if (got < 0 && errno == EAGAIN)
				continue;
			if (got <= 0)
				return -EIO;
			if (!e->client) { /* the server end echoes what came */
				if (send(e->fd, buf, (size_t)got, MSG_NOSIGNAL) != got)
					return -EIO;
				continue;
			}
			e->got += (size_t)got;
			if (e->got < MSG)
				continue;
			e->got = 0;
			done_ops++;
			if (--e->left == 0) {
				finished++;
				continue;
			}
			if (send(e->fd, buf, sizeof(buf), MSG_NOSIGNAL) != sizeof(buf))
				return -EIO;
		}
	}
	for (long i = 0; i < depth * 2; i++)
		close(ends[i].fd);
	close(ep);
	free(ends);
	return 0;
}

static int echo_threads(void)
{
	pthread_t *srv = calloc((size_t)depth, sizeof(*srv));
	pthread_t *cli = calloc((size_t)depth, sizeof(*cli));
	long *counts = calloc((size_t)depth, sizeof(*counts));

	for (long i = 0; i < depth; i++)
		if (pthread_create(&cli[i], NULL, client_thread, &counts[i]) != 0)
			return -EAGAIN;
	for (long i = 0; i < depth; i++) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		int one = 1;

		if (fd < 0)
			return -errno;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (pthread_create(&srv[i], NULL, echo_srv_thread, (void *)(intptr_t)fd) != 0)
			return -EAGAIN;
	}
	for (long i = 0; i < depth; i++) {
		pthread_join(cli[i], NULL);
		done_ops += counts[i];
	}
	for (long i = 0; i < depth; i++)
		pthread_join(srv[i], NULL);
	free(srv);
	free(cli);
	free(counts);
	return 0;
}

static weft_fn main_fn;
static int main_rc;

static int main_fiber(void *arg)
{
	main_rc = main_fn(arg);
	return main_rc;
}

static int open_file(void)
{
	struct stat st;

	file_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (file_fd < 0 || fstat(file_fd, &st) < 0 || st.st_size < 4096) {
		fprintf(stderr, "bench_io: %s: not a readable file of at least 4 KiB\n", path);
		return -1;
	}
	file_blocks = (uint64_t)st.st_size / 4096;
	return 0;
}

/* A whole number >= 1, or -1 after saying what is wrong. */
static long whole(const char *s, const char *what)
{
	long long v = b_parse_count(s, what);

	if (v == 0)
		fprintf(stderr, "bench_io: %s must be at least 1\n", what);
	return v < 1 ? -1 : (long)v;
}

static int usage(void)
{
	fprintf(stderr, "usage: bench_io randread weft|pread FILE DEPTH OPS\n"
			"       bench_io nop weft|raw - DEPTH OPS\n"
			"       bench_io echo weft|weftbuf|epoll|threads - CONNS ROUNDS\n");
	return 2;
}

int main(int argc, char **argv)
{
	weft_config cfg;
	int rc;

	if (argc != 6)
		return usage();

	const char *work = argv[1];
	const char *mode = argv[2];

	path = argv[3];
	depth = whole(argv[4], "DEPTH");
	total = whole(argv[5], "OPS");
	rounds = total;
	if (depth <= 0 || total <= 0)
		return 2;
	weft_config_init(&cfg);
	while (cfg.sq_entries < (uint32_t)depth * 2 && cfg.sq_entries < 32768)
		cfg.sq_entries *= 2;

	weft_loop *loop;
	weft_fn fn = NULL;

	if (!strcmp(work, "randread")) {
		if (open_file() < 0)
			return 1;
		if (!strcmp(mode, "weft"))
			fn = randread_weft;
		else if (strcmp(mode, "pread"))
			return usage();
	} else if (!strcmp(work, "nop")) {
		if (!strcmp(mode, "weft"))
			fn = nop_weft;
		else if (strcmp(mode, "raw"))
			return usage();
	} else if (!strcmp(work, "echo")) {
		if (make_listener() < 0) {
			perror("bench_io: listen");
			return 1;
		}
		total = depth * rounds;
		if (!strcmp(mode, "weft") || !strcmp(mode, "weftbuf")) {
			fn = echo_weft;
			use_buf = !strcmp(mode, "weftbuf");
		} else if (strcmp(mode, "threads") && strcmp(mode, "epoll"))
			return usage();
	} else {
		return usage();
	}

	double t0 = now_s();

	if (fn) {
		rc = weft_loop_create(&loop, &cfg);
		if (rc < 0) {
			fprintf(stderr, "bench_io: %s\n", weft_loop_explain(rc));
			return 1;
		}
		main_fn = fn;
		rc = weft_spawn(loop, main_fiber, NULL, NULL);
		if (rc == 0)
			rc = weft_loop_run(loop);
		if (rc == 0)
			rc = main_rc;
		weft_loop_destroy(loop);
	} else if (!strcmp(work, "randread")) {
		rc = randread_pread();
	} else if (!strcmp(work, "nop")) {
		rc = nop_raw();
	} else if (!strcmp(mode, "epoll")) {
		rc = echo_epoll();
	} else {
		rc = echo_threads();
	}

	double secs = now_s() - t0;
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	if (rc < 0) {
		fprintf(stderr, "bench_io: %s %s failed: %s\n", work, mode, strerror(-rc));
		return 1;
	}
	printf("bench=%s mode=%s depth=%ld ops=%ld seconds=%.4f ops_per_s=%.0f cpu_s=%.3f", work,
	       mode, depth, done_ops, secs, (double)done_ops / secs,
	       (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		   (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	if (have_stats)
		printf(" enters_per_op=%.4f", (double)stats.enters / (double)done_ops);
	printf("\n");
	return 0;
}
