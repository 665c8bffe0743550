/* SPDX-License-Identifier: MIT */
/*
 * bench_echo: echo ping-pong with the server and the client on different
 * CPUs. How many requests per second a one-thread server answers, and the
 * server CPU time each costs.
 *
 *   bench_echo [-n CONNS] [-z SIZE] [-t SECS] [-w WARMUP_S] [-s SERVER_CPU]
 *              [-c CLIENT_CPU] [-x WRAPPER] SERVER
 *
 * SERVER is one of
 *   weft           weft on io_uring: a fiber per connection in weft_recv
 *                  into a SIZE-byte stack buffer, weft_send_all back
 *   weftbuf        the same with weft_recv_buf (a buffer lent by the loop,
 *                  released once echoed), its multishot receive on
 *                  (WEFT_MULTISHOT_RECV=on)
 *   weftbuf-oneshot  the same with WEFT_MULTISHOT_RECV=off: one receive SQE
 *                  per call
 *   weft-epoll     weft on its epoll backend (WEFT_BACKEND=epoll), weft_recv
 *   weftbuf-epoll  the same with weft_recv_buf
 *   epoll          one thread: non-blocking sockets in epoll (level
 *                  triggered), recv(2) what is there and send(2) it back,
 *                  the rest kept for EPOLLOUT where a send is short
 *
 * One command, one line. This process makes the listener (127.0.0.1, an
 * ephemeral port), forks and execs the server pinned to SERVER_CPU (default
 * 1) and is itself the client, pinned to CLIENT_CPU (default 0): one
 * thread, CONNS (default 500) non-blocking connections in epoll, each with
 * one SIZE-byte (default 64) request in flight, sent again once its whole
 * echo came back. Every connection has TCP_NODELAY on both ends. WARMUP_S
 * (default 0.5) of load first, then SECS (default 3) of measurement; then
 * the client closes every connection and the server stops.
 *
 * The server protocol (also for `bench_echo serve MODE SIZE` by hand): fd 3
 * is the listener, fd 4 a pipe from the client: 'm' starts the measured
 * window, 'e' ends it, end of file stops the server once its connections
 * are gone. The server prints one line of key=value: bytes echoed in the
 * window, the window's seconds, its CPU time (user+sys of the process) in
 * it, and for weft the loop's counters in it. -x WRAPPER runs the server
 * under a command (e.g. "strace -f -c -o FILE") for system calls per request.
 *
 * Prints: echo server=... conns=... size=... requests=... secs=...
 * requests_per_s=... server_cpu_us_per_req=... server_busy=... client_busy=...
 */
#define _GNU_SOURCE
#include <weft.h>

#include "common.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define BACKLOG 4096
#define MAX_CONNS 16384
#define MAX_SIZE (1 << 20)
#define FD_LISTEN 3
#define FD_CTL 4

static int pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

static void nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Raise the soft fd limit to fit @n connections, or say why not. */
static int fit_fds(long n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
		rl.rlim_cur = (rlim_t)n + 64;
		if (rl.rlim_max < rl.rlim_cur || setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			fprintf(stderr,
				"bench_echo: RLIMIT_NOFILE (hard %llu) is too low for %ld "
				"connections\n",
				(unsigned long long)rl.rlim_max, n);
			return -1;
		}
	}
	return 0;
}

/* ---- servers ------------------------------------------------------------------ */

struct srv_mark {
	long long bytes;
	int64_t ns, cpu;
	weft_stats st;
};

static struct {
	long long bytes; /* echoed, in all */
	long errors;	 /* failures other than a peer's close */
	long live;	 /* connections open now */
	long accepted;
	struct srv_mark at[2]; /* the window's start ('m') and end ('e') */
	int marks;
} srv;

static size_t srv_size;
static int srv_is_weft;
static int srv_use_buf;

static void srv_snapshot(char c)
{
	weft_loop *l = weft_loop_current();

	if ((c == 'm' && srv.marks == 0) || (c == 'e' && srv.marks == 1)) {
		struct srv_mark *m = &srv.at[srv.marks++];

		m->bytes = srv.bytes;
		m->ns = b_now();
		m->cpu = b_cpu_ns();
		if (l)
			weft_loop_stats(l, &m->st);
	}
}

static int srv_report(void)
{
	if (srv.marks != 2) {
		fprintf(stderr, "bench_echo serve: the client never ended the window\n");
		return 1;
	}
	printf("bytes=%lld bytes_total=%lld accepted=%ld errors=%ld secs=%.4f cpu_ns=%lld",
	       srv.at[1].bytes - srv.at[0].bytes, srv.bytes, srv.accepted, srv.errors,
	       (double)(srv.at[1].ns - srv.at[0].ns) / 1e9,
	       (long long)(srv.at[1].cpu - srv.at[0].cpu));
	if (srv_is_weft) {
		const weft_stats *a = &srv.at[0].st, *b = &srv.at[1].st;

		printf(" backend=%s enters=%llu sqes=%llu cqes=%llu switches=%llu "
		       "bufs_fallbacks=%llu bufs_lent_peak=%llu",
		       b->backend == WEFT_BACKEND_EPOLL ? "epoll" : "io_uring",
		       (unsigned long long)(b->enters - a->enters),
		       (unsigned long long)(b->sqes - a->sqes),
		       (unsigned long long)(b->cqes - a->cqes),
		       (unsigned long long)(b->switches - a->switches),
		       (unsigned long long)(b->bufs_fallbacks - a->bufs_fallbacks),
		       (unsigned long long)b->bufs_lent_peak);
	}
	printf("\n");
	return fflush(stdout) == 0 ? 0 : 1;
}

/* The message buffer is on the heap, not the stack: fibers' stacks stay at the default for
 * every SIZE. */
static int conn_plain(int fd)
{
	char *buf = malloc(srv_size);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	while ((n = weft_recv(fd, buf, srv_size, 0)) > 0) {
		if (weft_send_all(fd, buf, (size_t)n, 0) < 0)
			break;
		srv.bytes += n;
	}
	free(buf);
	return n < 0 && n != -ECONNRESET ? (int)n : 0;
}

static int conn_buf(int fd)
{
	weft_buf b;
	ssize_t n;

	while ((n = weft_recv_buf(fd, &b, 0)) > 0) {
		ssize_t w = weft_send_all(fd, b.data, b.len, 0);

		weft_buf_release(&b);
		if (w < 0)
			break;
		srv.bytes += n;
	}
	return n < 0 && n != -ECONNRESET ? (int)n : 0;
}

static int conn_fiber(void *arg)
{
	int fd = (int)(intptr_t)arg;
	int rc = srv_use_buf ? conn_buf(fd) : conn_plain(fd);

	if (rc < 0)
		srv.errors++;
	weft_close(fd);
	srv.live--;
	return 0;
}

static int acceptor(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = weft_accept4(FD_LISTEN, NULL, NULL, SOCK_CLOEXEC);

		if (fd == -ECANCELED || fd == -EBADF)
			return 0; /* the listener was closed: the end */
		if (fd < 0) {
			srv.errors++;
			if (fd == -ECONNABORTED || fd == -EINTR)
				continue;
			fprintf(stderr, "bench_echo: weft_accept4: %s\n", strerror(-fd));
			return fd;
		}
		nodelay(fd);
		srv.accepted++;
		srv.live++;
		if (weft_go(conn_fiber, (void *)(intptr_t)fd) < 0) {
			srv.errors++;
			srv.live--;
			weft_close(fd);
		}
	}
}

static int serve_weft(void *arg)
{
	weft_fiber *acc;
	int rc;

	(void)arg;
	rc = weft_spawn(NULL, acceptor, NULL, &acc);
	if (rc < 0)
		return rc;
	for (;;) {
		char c;
		ssize_t n = weft_read(FD_CTL, &c, 1, -1);

		if (n == 1) {
			srv_snapshot(c);
			continue;
		}
		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n < 0) {
			fprintf(stderr, "bench_echo: control pipe: %s\n", strerror((int)-n));
			rc = (int)n;
		}
		break;
	}
	weft_close(FD_LISTEN); /* cancels the acceptor's accept */
	weft_join(acc, NULL);
	/* The client closed every connection before the pipe: wait for their fibers. */
	for (int i = 0; srv.live > 0 && i < 5000; i++)
		weft_sleep(WEFT_MSEC);
	if (srv.live > 0) {
		fprintf(stderr, "bench_echo: %ld connections still open 5 s after the end\n",
			srv.live);
		return -ETIMEDOUT;
	}
	return rc;
}

/* One connection of the epoll server: what a short send left to write. */
struct econn {
	int fd;
	size_t off, len; /* pending bytes in buf[off, len) */
	char buf[];
};

static int epoll_flush(int ep, struct econn *c)
{
	while (c->off < c->len) {
		ssize_t w = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };

			return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0 ? -errno : 1;
		}
		if (w < 0)
			return -errno;
		c->off += (size_t)w;
		srv.bytes += w;
	}
	c->off = c->len = 0;
	return 0;
}

static void epoll_drop(struct econn *c)
{
	close(c->fd); /* also leaves the epoll set */
	free(c);
	srv.live--;
}

static int serve_epoll(void)
{
	struct epoll_event ev[256];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int listening = 1, stopping = 0;

	if (ep < 0 || fcntl(FD_LISTEN, F_SETFL, fcntl(FD_LISTEN, F_GETFL) | O_NONBLOCK) < 0)
		return -errno;
	ev[0] = (struct epoll_event){ .events = EPOLLIN, .data.ptr = NULL };
	ev[1] = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &srv };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, FD_LISTEN, &ev[0]) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, FD_CTL, &ev[1]) < 0)
		return -errno;
	while (!stopping || srv.live > 0) {
		int n = epoll_wait(ep, ev, 256, stopping ? 5000 : -1);

		if (n < 0 && errno != EINTR)
			return -errno;
		if (n == 0) {
			fprintf(stderr,
				"bench_echo: %ld connections still open 5 s after the end\n",
				srv.live);
			return -ETIMEDOUT;
		}
		for (int i = 0; i < n; i++) {
			void *p = ev[i].data.ptr;

			if (p == &srv) { /* the control pipe */
				char c;
				ssize_t r = read(FD_CTL, &c, 1);

				if (r == 1) {
					srv_snapshot(c);
				} else if (r == 0 || errno != EINTR) {
					epoll_ctl(ep, EPOLL_CTL_DEL, FD_CTL, NULL);
					stopping = 1;
					if (listening)
						close(FD_LISTEN);
					listening = 0;
				}
				continue;
			}
			if (!p) { /* the listener */
				for (;;) {
					int fd = accept4(FD_LISTEN, NULL, NULL,
							 SOCK_CLOEXEC | SOCK_NONBLOCK);
					struct econn *c;

					if (fd < 0 && errno == EAGAIN)
						break;
					if (fd < 0 && (errno == ECONNABORTED || errno == EINTR)) {
						srv.errors++;
						continue;
					}
					if (fd < 0)
						return -errno;
					c = malloc(sizeof(*c) + srv_size);
					if (!c) {
						close(fd);
						srv.errors++;
						continue;
					}
					*c = (struct econn){ .fd = fd };
					nodelay(fd);

					struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };

					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) {
						close(fd);
						free(c);
						srv.errors++;
						continue;
					}
					srv.accepted++;
					srv.live++;
				}
				continue;
			}

			struct econn *c = p;
			int rc;

			if (c->len > 0) { /* EPOLLOUT: finish the short send, then read again */
				rc = epoll_flush(ep, c);
				if (rc == 0) {
					struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };

					rc = epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) < 0 ? -errno
											 : 0;
				}
				if (rc < 0) {
					srv.errors++;
					epoll_drop(c);
				}
				continue;
			}

			ssize_t got = recv(c->fd, c->buf, srv_size, 0);

			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got <= 0) {
				if (got < 0 && errno != ECONNRESET)
					srv.errors++;
				epoll_drop(c);
				continue;
			}
			c->len = (size_t)got;
			if (epoll_flush(ep, c) < 0) {
				srv.errors++;
				epoll_drop(c);
			}
		}
	}
	if (listening)
		close(FD_LISTEN);
	close(ep);
	return 0;
}

/* bench_echo serve weft|weftbuf|epoll SIZE: the server, with fds 3 and 4 as above. */
static int serve_main(int argc, char **argv)
{
	long long size;
	int rc;

	if (argc != 4 ||
	    (strcmp(argv[2], "weft") && strcmp(argv[2], "weftbuf") && strcmp(argv[2], "epoll"))) {
		fprintf(stderr, "usage: bench_echo serve weft|weftbuf|epoll SIZE (fd 3: the "
				"listener, fd 4: the control pipe)\n");
		return 2;
	}
	size = b_parse_count(argv[3], "SIZE");
	if (size < 1 || size > MAX_SIZE) {
		fprintf(stderr, "bench_echo: SIZE must be 1..%d\n", MAX_SIZE);
		return 2;
	}
	if (fcntl(FD_LISTEN, F_GETFD) < 0 || fcntl(FD_CTL, F_GETFD) < 0) {
		fprintf(stderr, "bench_echo serve: fds 3 and 4 must be open\n");
		return 2;
	}
	if (fit_fds(MAX_CONNS) < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	srv_size = (size_t)size;
	srv_is_weft = strcmp(argv[2], "epoll") != 0;
	srv_use_buf = !strcmp(argv[2], "weftbuf");
	if (srv_is_weft) {
		weft_config cfg;
		weft_loop *loop;

		weft_config_init(&cfg);
		cfg.sq_entries = 4096;
		rc = weft_loop_create(&loop, &cfg);
		if (rc == 0) {
			rc = weft_spawn(loop, serve_weft, NULL, NULL);
			if (rc == 0)
				rc = weft_loop_run(loop);
			weft_loop_destroy(loop);
		}
		if (rc < 0)
			fprintf(stderr, "bench_echo serve: %s\n", weft_loop_explain(rc));
	} else {
		rc = serve_epoll();
		if (rc < 0)
			fprintf(stderr, "bench_echo serve: %s\n", strerror(-rc));
	}
	if (rc < 0)
		return 1;
	return srv_report();
}

/* ---- the client ------------------------------------------------------------------ */

struct opts {
	long conns, size;
	double secs, warmup;
	int server_cpu, client_cpu;
	const char *server, *wrapper;
};

struct cconn {
	int fd;
	size_t sent, got; /* of the request in flight */
	int want_out;	  /* registered for EPOLLOUT */
};

static struct {
	long long done; /* whole echoes back */
	long failed;	/* connections that broke */
} cli;

static char *cli_msg, *cli_sink;

/* Send what is left of @c's request; 0, or -errno. */
static int cli_send(int ep, struct cconn *c, size_t size, uint32_t idx)
{
	while (c->sent < size) {
		ssize_t w = send(c->fd, cli_msg + c->sent, size - c->sent, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0)
			return -errno;
		c->sent += (size_t)w;
	}

	int want = c->sent < size;

	if (want != c->want_out) {
		struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0u),
					  .data.u32 = idx };

		if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
			return -errno;
		c->want_out = want;
	}
	return 0;
}

/* Connect every connection (blocking, one at a time: the backlog never overflows). */
static struct cconn *cli_connect(const struct opts *o, int port, int ep)
{
	struct sockaddr_in to = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons((uint16_t)port) };
	struct cconn *cs = calloc((size_t)o->conns, sizeof(*cs));

	if (!cs)
		return NULL;
	for (long i = 0; i < o->conns; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };

		if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0 ||
		    fcntl(fd, F_SETFL, O_NONBLOCK) < 0 ||
		    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			fprintf(stderr, "bench_echo: connection %ld: %s\n", i, strerror(errno));
			if (fd >= 0)
				close(fd);
			for (long k = 0; k < i; k++)
				close(cs[k].fd);
			free(cs);
			return NULL;
		}
		nodelay(fd);
		cs[i].fd = fd;
	}
	return cs;
}

/* Run the load until the window is over, telling the server 'm' and 'e' at its edges. */
static int load(const struct opts *o, int port, int ctl, long long *win_done, double *win_secs,
		double *win_cpu_s)
{
	size_t size = (size_t)o->size;
	struct epoll_event ev[256];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct cconn *cs;
	int rc = 0, phase = 0;
	long long mark_done = 0;
	int64_t mark_cpu = 0, start, mark, end;

	if (ep < 0)
		return -errno;
	cs = cli_connect(o, port, ep);
	if (!cs) {
		close(ep);
		return -EIO;
	}
	start = b_now();
	mark = start + (int64_t)(o->warmup * 1e9);
	end = mark + (int64_t)(o->secs * 1e9);
	for (long i = 0; i < o->conns && rc == 0; i++)
		rc = cli_send(ep, &cs[i], size, (uint32_t)i);
	while (rc == 0 && phase < 2) {
		int64_t now = b_now();

		if (phase == 0 && now >= mark) {
			if (write(ctl, "m", 1) != 1) {
				rc = -EPIPE;
				break;
			}
			mark_done = cli.done;
			mark_cpu = b_cpu_ns();
			mark = now;
			phase = 1;
		} else if (phase == 1 && now >= end) {
			if (write(ctl, "e", 1) != 1) {
				rc = -EPIPE;
				break;
			}
			*win_done = cli.done - mark_done;
			*win_secs = (double)(now - mark) / 1e9;
			*win_cpu_s = (double)(b_cpu_ns() - mark_cpu) / 1e9;
			phase = 2;
			break;
		}

		int n = epoll_wait(ep, ev, 256, 100);

		if (n < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
		for (int k = 0; k < n && rc == 0; k++) {
			uint32_t idx = ev[k].data.u32;
			struct cconn *c = &cs[idx];

			if (ev[k].events & EPOLLOUT) {
				rc = cli_send(ep, c, size, idx);
				if (rc < 0)
					break;
			}
			if (!(ev[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				continue;

			ssize_t got = recv(c->fd, cli_sink, size - c->got, 0);

			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got <= 0) {
				fprintf(stderr, "bench_echo: connection %u broke: %s\n", idx,
					got == 0 ? "the server closed it" : strerror(errno));
				cli.failed++;
				rc = -EIO;
				break;
			}
			c->got += (size_t)got;
			if (c->got < size)
				continue;
			cli.done++;
			c->got = c->sent = 0;
			rc = cli_send(ep, c, size, idx);
		}
	}
	for (long i = 0; i < o->conns; i++)
		close(cs[i].fd);
	free(cs);
	close(ep);
	return rc;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: bench_echo [-n CONNS] [-z SIZE] [-t SECS] [-w WARMUP_S] [-s SERVER_CPU]\n"
		"                  [-c CLIENT_CPU] [-x WRAPPER] SERVER\n"
		"SERVER: weft, weftbuf, weftbuf-oneshot, weft-epoll, weftbuf-epoll or epoll\n"
		"        bench_echo serve weft|weftbuf|epoll SIZE (the server alone)\n");
	return 2;
}

static int parse_secs(const char *s, const char *what, double lo, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || *out < lo || *out > 3600) {
		fprintf(stderr,
			"bench_echo: %s must be a number of seconds in %g..3600, not '%s'\n", what,
			lo, s);
		return -1;
	}
	return 0;
}

static int parse_int(const char *s, const char *what, long lo, long hi, long *out)
{
	long long v = b_parse_count(s, what);

	if (v < lo || v > hi) {
		if (v >= 0)
			fprintf(stderr, "bench_echo: %s must be %ld..%ld, not '%s'\n", what, lo, hi,
				s);
		return -1;
	}
	*out = (long)v;
	return 0;
}

/* Run the server in a child: fds 3 and 4 as the protocol says, stdout to @out_wr. */
static pid_t spawn_server(const struct opts *o, int lfd, int ctl_rd, int out_wr)
{
	char self[PATH_MAX], size[32];
	char *argv[64];
	int argc = 0;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *wrap = NULL;

	if (n < 0)
		return -1;
	self[n] = 0;
	snprintf(size, sizeof(size), "%ld", o->size);
	if (o->wrapper) {
		wrap = strdup(o->wrapper);
		for (char *t = strtok(wrap, " "); t && argc < 48; t = strtok(NULL, " "))
			argv[argc++] = t;
	}
	argv[argc++] = self;
	argv[argc++] = "serve";
	argv[argc++] = !strcmp(o->server, "epoll")	   ? "epoll"
		       : !strncmp(o->server, "weftbuf", 7) ? "weftbuf"
							   : "weft";
	argv[argc++] = size;
	argv[argc] = NULL;

	pid_t pid = fork();

	if (pid != 0) {
		free(wrap);
		return pid;
	}
	/* The child: move the fds out of the way, then into place (dup2 clears CLOEXEC). */
	int l = fcntl(lfd, F_DUPFD_CLOEXEC, 10), c = fcntl(ctl_rd, F_DUPFD_CLOEXEC, 10);

	if (l < 0 || c < 0 || dup2(l, FD_LISTEN) < 0 || dup2(c, FD_CTL) < 0 || dup2(out_wr, 1) < 0)
		_exit(127);
	if (pin(o->server_cpu) < 0) {
		fprintf(stderr, "bench_echo: cannot pin the server to CPU %d\n", o->server_cpu);
		_exit(127);
	}
	if (strstr(o->server, "-epoll"))
		setenv("WEFT_BACKEND", "epoll", 1);
	else if (!strncmp(o->server, "weft", 4))
		setenv("WEFT_BACKEND", "uring", 1);
	setenv("WEFT_MULTISHOT_RECV", strstr(o->server, "-oneshot") ? "off" : "on", 1);
	execvp(argv[0], argv);
	fprintf(stderr, "bench_echo: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int make_listener(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, BACKLOG) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		perror("bench_echo: listen");
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

/* Read the server's one line from @fd into @line. */
static void read_line(int fd, char *line, size_t cap)
{
	size_t got = 0;
	ssize_t n;

	while (got < cap - 1 && (n = read(fd, line + got, cap - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += (size_t)n;
	}
	line[got] = 0;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.conns = 500, .size = 64, .secs = 3, .warmup = 0.5, .server_cpu = 1, .client_cpu = 0
	};
	long v;
	int opt;

	if (argc >= 2 && !strcmp(argv[1], "serve"))
		return serve_main(argc, argv);
	while ((opt = getopt(argc, argv, "n:z:t:w:s:c:x:h")) != -1) {
		switch (opt) {
		case 'n':
			if (parse_int(optarg, "CONNS", 1, MAX_CONNS, &o.conns) < 0)
				return 2;
			break;
		case 'z':
			if (parse_int(optarg, "SIZE", 1, MAX_SIZE, &o.size) < 0)
				return 2;
			break;
		case 't':
			if (parse_secs(optarg, "SECS", 0.1, &o.secs) < 0)
				return 2;
			break;
		case 'w':
			if (parse_secs(optarg, "WARMUP_S", 0, &o.warmup) < 0)
				return 2;
			break;
		case 's':
		case 'c':
			if (parse_int(optarg, opt == 's' ? "SERVER_CPU" : "CLIENT_CPU", 0,
				      CPU_SETSIZE - 1, &v) < 0)
				return 2;
			*(opt == 's' ? &o.server_cpu : &o.client_cpu) = (int)v;
			break;
		case 'x':
			o.wrapper = optarg;
			break;
		default:
			return usage();
		}
	}
	if (optind != argc - 1)
		return usage();
	o.server = argv[optind];
	if (strcmp(o.server, "weft") && strcmp(o.server, "weftbuf") &&
	    strcmp(o.server, "weft-epoll") && strcmp(o.server, "weftbuf-epoll") &&
	    strcmp(o.server, "weftbuf-oneshot") && strcmp(o.server, "epoll")) {
		fprintf(stderr, "bench_echo: unknown server '%s'\n", o.server);
		return usage();
	}
	if (fit_fds(o.conns) < 0)
		return 1;
	cli_msg = malloc((size_t)o.size);
	cli_sink = malloc((size_t)o.size);
	if (!cli_msg || !cli_sink) {
		fprintf(stderr, "bench_echo: out of memory\n");
		return 1;
	}
	memset(cli_msg, 'p', (size_t)o.size);

	int port, ctl[2], res[2];
	int lfd = make_listener(&port);

	if (lfd < 0)
		return 1;
	if (pipe2(ctl, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0) {
		perror("bench_echo: pipe");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);

	pid_t pid = spawn_server(&o, lfd, ctl[0], res[1]);

	if (pid < 0)
		return 1;
	close(lfd); /* the server's now; the client only connects */
	close(ctl[0]);
	close(res[1]);
	if (pin(o.client_cpu) < 0) {
		fprintf(stderr, "bench_echo: cannot pin the client to CPU %d\n", o.client_cpu);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return 1;
	}

	long long win_done = 0;
	double win_secs = 0, win_cpu_s = 0;
	int rc = load(&o, port, ctl[1], &win_done, &win_secs, &win_cpu_s);

	close(ctl[1]); /* every connection is closed: the server stops */

	char line[1024];
	int st;

	read_line(res[0], line, sizeof(line));
	close(res[0]);
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "bench_echo: the %s server failed (%s %d)\n", o.server,
			WIFSIGNALED(st) ? "signal" : "status",
			WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "bench_echo: the load failed: %s\n", strerror(-rc));
		return 1;
	}

	double bytes = b_field(line, "bytes"), secs = b_field(line, "secs");
	double cpu = b_field(line, "cpu_ns");
	double req = (double)win_done;

	if (win_done <= 0 || secs <= 0 || cpu < 0 || bytes < 0) {
		fprintf(stderr, "bench_echo: no requests in the window (server: '%s')\n", line);
		return 1;
	}
	printf("echo server=%s conns=%ld size=%ld requests=%lld secs=%.3f requests_per_s=%.0f "
	       "server_cpu_us_per_req=%.3f server_busy=%.3f client_busy=%.3f server_secs=%.3f "
	       "server_bytes_per_req=%.1f server_errors=%.0f requests_total_bytes=%.0f",
	       o.server, o.conns, o.size, win_done, win_secs, req / win_secs,
	       cpu / 1e3 / (bytes / (double)o.size), cpu / 1e9 / secs, win_cpu_s / win_secs, secs,
	       bytes / req, b_field(line, "errors"), b_field(line, "bytes_total"));
	if (strstr(line, " backend=")) {
		char b[32];
		double sreq =
		    bytes / (double)o.size; /* requests the server answered in its window */

		printf(" backend=%s enters_per_req=%.4f sqes_per_req=%.4f switches_per_req=%.3f "
		       "bufs_fallbacks=%.0f bufs_lent_peak=%.0f",
		       b_word(line, "backend", b, sizeof(b)), b_field(line, "enters") / sreq,
		       b_field(line, "sqes") / sreq, b_field(line, "switches") / sreq,
		       b_field(line, "bufs_fallbacks"), b_field(line, "bufs_lent_peak"));
	}
	printf("\n");
	return 0;
}
