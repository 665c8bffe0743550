/* SPDX-License-Identifier: MIT */
/*
 * bench_idle: what an idle connection costs a server, in resident memory.
 *
 *   bench_idle recv     N   a fiber per connection parked in weft_recv into
 *                           a 4 KiB buffer on its stack
 *   bench_idle recv_buf N   a fiber per connection parked in weft_recv_buf
 *                           (a buffer is lent only when bytes arrive)
 *   bench_idle epoll    N   one thread, each connection registered with
 *                           epoll and a 16-byte record, no buffer (the
 *                           least a server can hold)
 *
 * One process: the server side (a weft loop, or the epoll thread) accepts
 * N loopback connections that a plain thread opens and then leaves idle.
 * RSS is read before the first accept and once every server end waits; the
 * difference over N is the figure. Then one byte goes down each connection
 * and every server end must answer it, so that the waits were real.
 * Prints: mode, conns, rss_before_kb, rss_idle_kb, bytes_per_conn.
 */
#define _GNU_SOURCE
#include <weft.h>

#include "common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static long conns;
static int mode; /* 0 recv, 1 recv_buf, 2 epoll */
static int port;
static int *client_fds;
static long answered;
static size_t rss_before, rss_idle;

static size_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, res = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &res) != 2)
		res = 0;
	fclose(f);
	return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

static int listener(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		perror("bench_idle: listen");
		exit(1);
	}
	port = ntohs(a.sin_port);
	return fd;
}

/*
 * The client, a process of its own (so that each side holds N fds): N
 * connections opened and left idle, "ready" on @up; at "poke" on @down, a
 * byte down each and its answer read; the count of answers back on @up.
 */
static int up[2], down[2];
static pid_t client_pid;

static void client_main(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)port) };
	long ok = 0;
	char go;

	for (long i = 0; i < conns; i++) {
		client_fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (client_fds[i] < 0 ||
		    connect(client_fds[i], (struct sockaddr *)&a, sizeof(a)) < 0) {
			perror("bench_idle: connect");
			_exit(1);
		}
	}
	if (write(up[1], &ok, sizeof(ok)) != sizeof(ok) || read(down[0], &go, 1) != 1)
		_exit(1);
	for (long i = 0; i < conns; i++)
		if (write(client_fds[i], "x", 1) != 1)
			_exit(1);
	for (long i = 0; i < conns; i++) {
		char c;

		if (read(client_fds[i], &c, 1) == 1 && c == 'y')
			ok++;
		close(client_fds[i]);
	}
	if (write(up[1], &ok, sizeof(ok)) != sizeof(ok))
		_exit(1);
	_exit(0);
}

static void start_clients(void)
{
	if (pipe(up) < 0 || pipe(down) < 0 || (client_pid = fork()) < 0) {
		perror("bench_idle: fork");
		exit(1);
	}
	if (client_pid == 0)
		client_main();
}

/* Tell the client to poke (from any thread); the answers it counted, once it has. */
static long poke_and_count(void)
{
	long n = 0;

	if (write(down[1], "p", 1) != 1 || read(up[0], &n, sizeof(n)) != sizeof(n))
		return -1;
	waitpid(client_pid, NULL, 0);
	return n;
}

static void wait_clients_ready(void)
{
	long n;

	if (read(up[0], &n, sizeof(n)) != sizeof(n)) {
		fprintf(stderr, "bench_idle: the client failed\n");
		exit(1);
	}
}

/* ---- weft ------------------------------------------------------------------------ */

static int conn_recv(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	ssize_t n = weft_recv(fd, buf, sizeof(buf), 0);

	if (n > 0)
		weft_send(fd, "y", 1, 0);
	weft_close(fd);
	return 0;
}

static int conn_recv_buf(void *arg)
{
	int fd = (int)(intptr_t)arg;
	weft_buf b;
	ssize_t n = weft_recv_buf(fd, &b, 0);

	if (n > 0)
		weft_send(fd, "y", 1, 0);
	weft_buf_release(&b);
	weft_close(fd);
	return 0;
}

static void *poke_thread(void *arg)
{
	(void)arg;
	answered = poke_and_count();
	return NULL;
}

static int server_weft(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	pthread_t p;

	rss_before = rss_bytes();
	start_clients();
	for (long i = 0; i < conns; i++) {
		int fd = weft_accept(lfd, NULL, NULL);

		if (fd < 0 ||
		    weft_go(mode == 0 ? conn_recv : conn_recv_buf, (void *)(intptr_t)fd) < 0) {
			fprintf(stderr, "bench_idle: accept or spawn: %d\n", fd);
			exit(1);
		}
	}
	wait_clients_ready();
	weft_sleep(200 * WEFT_MSEC); /* every fiber parked in its receive */
	rss_idle = rss_bytes();
	pthread_create(&p, NULL, poke_thread, NULL);
	while (pthread_tryjoin_np(p, NULL) != 0)
		weft_sleep(10 * WEFT_MSEC);
	weft_close(lfd);
	return 0;
}

/* ---- epoll ------------------------------------------------------------------------ */

struct econn {
	int fd;
	uint32_t state;
	uint64_t pad;
};

static void server_epoll(int lfd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct econn *v = calloc((size_t)conns, sizeof(*v));
	struct epoll_event ev[256];
	pthread_t p;
	long served = 0;

	rss_before = rss_bytes();
	start_clients();
	for (long i = 0; i < conns; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = &v[i] };

		v[i].fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (v[i].fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, v[i].fd, &e) < 0) {
			perror("bench_idle: accept");
			exit(1);
		}
	}
	wait_clients_ready();
	usleep(200000);
	rss_idle = rss_bytes();
	pthread_create(&p, NULL, poke_thread, NULL);
	while (served < conns) {
		int n = epoll_wait(ep, ev, 256, 1000);

		for (int i = 0; i < n; i++) {
			struct econn *c = ev[i].data.ptr;
			char b[64];

			if (read(c->fd, b, sizeof(b)) > 0 && write(c->fd, "y", 1) == 1)
				served++;
			close(c->fd);
		}
	}
	pthread_join(p, NULL);
	free(v);
	close(ep);
}

int main(int argc, char **argv)
{
	struct rlimit rl;

	if (argc != 3 ||
	    (strcmp(argv[1], "recv") && strcmp(argv[1], "recv_buf") && strcmp(argv[1], "epoll"))) {
		fprintf(stderr, "usage: bench_idle recv|recv_buf|epoll CONNS\n");
		return 2;
	}
	mode = !strcmp(argv[1], "recv") ? 0 : !strcmp(argv[1], "recv_buf") ? 1 : 2;
	conns = strtol(argv[2], NULL, 10);
	if (conns <= 0 || conns > 60000) {
		fprintf(stderr, "bench_idle: CONNS must be 1..60000, not '%s'\n", argv[2]);
		return 2;
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)(conns + 64)) {
		rl.rlim_cur = (rlim_t)(conns + 64);
		if (rl.rlim_max < rl.rlim_cur)
			rl.rlim_max = rl.rlim_cur; /* root may raise it */
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			fprintf(stderr,
				"bench_idle: RLIMIT_NOFILE %lu is too low for %ld connections\n",
				(unsigned long)rl.rlim_cur, conns);
			return 1;
		}
	}
	client_fds = calloc((size_t)conns, sizeof(int));

	int lfd = listener();

	if (mode == 2) {
		server_epoll(lfd);
	} else {
		int rc = weft_main(server_weft, (void *)(intptr_t)lfd);

		if (rc < 0) {
			fprintf(stderr, "bench_idle: weft_main: %d\n", rc);
			return 1;
		}
	}
	if (answered != conns) {
		fprintf(stderr, "bench_idle: %ld of %ld connections answered\n", answered, conns);
		return 1;
	}
	printf("mode=%s conns=%ld rss_before_kb=%zu rss_idle_kb=%zu bytes_per_conn=%.0f\n", argv[1],
	       conns, rss_before / 1024, rss_idle / 1024,
	       (double)(rss_idle - rss_before) / (double)conns);
	return 0;
}
