/* SPDX-License-Identifier: MIT */
/*
 * bench_churn: accept churn. How many loopback TCP connections a server
 * accepts and closes per second, and the server CPU time each costs.
 *
 *   bench_churn [-k ACCEPTORS] [-t SECS] [-w WARMUP_S] [-m INFLIGHT]
 *               [-s SERVER_CPU] [-c CLIENT_CPU] [-g GO_PEER] [-x WRAPPER] SERVER
 *
 * SERVER is one of
 *   weft-multishot  weft on io_uring (WEFT_BACKEND=uring): ACCEPTORS fibers
 *                   in weft_accept4 + weft_close; the listener's multishot
 *                   accept (the default)
 *   weft-oneshot    the same with WEFT_MULTISHOT_ACCEPT=off: one
 *                   IORING_OP_ACCEPT per call
 *   weft-epoll      the same on the epoll backend (WEFT_BACKEND=epoll)
 *   epoll           one thread: a non-blocking listener in epoll, accept4
 *                   until EAGAIN, close(2) each
 *   go              bench/peers/churn.go (net.Listener, Accept, Close),
 *                   GOMAXPROCS=1; -g names the binary (default: peer_churn_go
 *                   beside this program)
 *
 * One command, one line. This process makes the listener (127.0.0.1, an
 * ephemeral port, backlog 4096, which net.core.somaxconn may lower), then
 * forks and execs the server pinned to SERVER_CPU (default 1), and is
 * itself the load generator, pinned to CLIENT_CPU (default 0) by
 * sched_setaffinity: one thread keeps INFLIGHT (default 64) non-blocking
 * connects in flight with epoll. A connection is done when the server's
 * FIN arrives (so the server is on every connection's path and the
 * kernel's accept queue never holds more than INFLIGHT); the client then
 * closes with SO_LINGER {1, 0}: an RST, which frees both ends at once, so
 * neither side collects TIME_WAIT sockets and ephemeral ports are reused
 * at once. WARMUP_S (default 0.5) of load first, then SECS (default 3) of
 * measurement, then the client drains and the server is told to stop.
 *
 * The server protocol (also for `bench_churn serve MODE ACCEPTORS` by hand,
 * and the Go peer): fd 3 is the listener, fd 4 a pipe from the client: a
 * byte 'm' starts the measured window, 'e' ends it, end of file stops the
 * server (it closes the listener: weft_close for weft). The server prints
 * one line of key=value on stdout: connections accepted in the window and
 * in all, the window's seconds by its own clock, its CPU time (user+sys of
 * the whole process) in the window, and for weft the loop's counters in
 * the window. -x WRAPPER runs the server under a command (e.g. "strace -f
 * -c -o FILE") for system calls per connection.
 *
 * Prints: churn server=... acceptors=... conns=... secs=... conns_per_s=...
 * server_cpu_us_per_conn=... server_busy=... and the client's counts.
 */
#define _GNU_SOURCE
#include <weft.h>

#include "common.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define BACKLOG 4096
#define MAX_ACCEPTORS 1024
#define MAX_INFLIGHT 4096
#define FD_LISTEN 3
#define FD_CTL 4

static int pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

/* ---- servers ------------------------------------------------------------------ */

/* What every server measures: the window's start and end, and the totals. */
struct srv_mark {
	long acc;
	int64_t ns, cpu;
	weft_stats st;
};

static struct {
	long accepted;	       /* in all */
	long errors;	       /* accept or close failures other than the final cancel */
	struct srv_mark at[2]; /* the window's start ('m') and end ('e') */
	int marks;	       /* 0, 1 after 'm', 2 after 'e' */
} srv;

static const char *srv_mode;
static int srv_is_weft;

static void srv_snapshot(char c)
{
	weft_loop *l = weft_loop_current();

	if ((c == 'm' && srv.marks == 0) || (c == 'e' && srv.marks == 1)) {
		struct srv_mark *m = &srv.at[srv.marks++];

		m->acc = srv.accepted;
		m->ns = b_now();
		m->cpu = b_cpu_ns();
		if (l)
			weft_loop_stats(l, &m->st);
	}
}

static int srv_report(void)
{
	if (srv.marks != 2) {
		fprintf(stderr, "bench_churn serve: the client never ended the window\n");
		return 1;
	}
	printf("accepted=%ld accepted_total=%ld errors=%ld secs=%.4f cpu_ns=%lld",
	       srv.at[1].acc - srv.at[0].acc, srv.accepted, srv.errors,
	       (double)(srv.at[1].ns - srv.at[0].ns) / 1e9,
	       (long long)(srv.at[1].cpu - srv.at[0].cpu));
	if (srv_is_weft) {
		const weft_stats *a = &srv.at[0].st, *b = &srv.at[1].st;

		printf(" backend=%s enters=%llu sqes=%llu cqes=%llu switches=%llu "
		       "multishot_rearms=%llu multishot_rearms_total=%llu",
		       b->backend == WEFT_BACKEND_EPOLL ? "epoll" : "io_uring",
		       (unsigned long long)(b->enters - a->enters),
		       (unsigned long long)(b->sqes - a->sqes),
		       (unsigned long long)(b->cqes - a->cqes),
		       (unsigned long long)(b->switches - a->switches),
		       (unsigned long long)(b->multishot_rearms - a->multishot_rearms),
		       (unsigned long long)b->multishot_rearms);
	}
	printf("\n");
	return fflush(stdout) == 0 ? 0 : 1;
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
			fprintf(stderr, "bench_churn: weft_accept4: %s\n", strerror(-fd));
			return fd;
		}
		srv.accepted++;
		if (weft_close(fd) < 0)
			srv.errors++;
	}
}

static long n_acceptors;

static int serve_weft(void *arg)
{
	weft_fiber *f[MAX_ACCEPTORS];
	long started = 0;
	int rc = 0;

	(void)arg;
	for (; started < n_acceptors; started++) {
		rc = weft_spawn(NULL, acceptor, NULL, &f[started]);
		if (rc < 0)
			break;
	}
	/* The control pipe: 'm', 'e', then end of file. */
	for (;;) {
		char c;
		ssize_t n = weft_read(FD_CTL, &c, 1, -1);

		if (n == 1) {
			srv_snapshot(c);
			continue;
		}
		if (n < 0 && n != -EINTR && n != -EAGAIN) {
			fprintf(stderr, "bench_churn: control pipe: %s\n", strerror((int)-n));
			rc = (int)n;
		}
		if (n <= 0 && n != -EINTR && n != -EAGAIN)
			break;
	}
	/* Closing the listener cancels the acceptors' pending accepts (-ECANCELED). */
	if (weft_close(FD_LISTEN) < 0)
		srv.errors++;
	for (long i = 0; i < started; i++) {
		int res = 0;

		weft_join(f[i], &res);
		if (res < 0 && rc == 0)
			rc = res;
	}
	return rc;
}

static int serve_epoll(void)
{
	struct epoll_event ev[16];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int running = 1;

	if (ep < 0 || fcntl(FD_LISTEN, F_SETFL, fcntl(FD_LISTEN, F_GETFL) | O_NONBLOCK) < 0)
		return -errno;
	ev[0] = (struct epoll_event){ .events = EPOLLIN, .data.fd = FD_LISTEN };
	ev[1] = (struct epoll_event){ .events = EPOLLIN, .data.fd = FD_CTL };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, FD_LISTEN, &ev[0]) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, FD_CTL, &ev[1]) < 0)
		return -errno;
	while (running) {
		int n = epoll_wait(ep, ev, 16, -1);

		if (n < 0 && errno != EINTR)
			return -errno;
		for (int i = 0; i < n; i++) {
			if (ev[i].data.fd == FD_CTL) {
				char c;
				ssize_t r = read(FD_CTL, &c, 1);

				if (r == 1)
					srv_snapshot(c);
				else if (r == 0 || errno != EINTR)
					running = 0;
				continue;
			}
			for (;;) {
				int fd = accept4(FD_LISTEN, NULL, NULL, SOCK_CLOEXEC);

				if (fd < 0) {
					if (errno == EAGAIN)
						break;
					srv.errors++;
					if (errno == ECONNABORTED || errno == EINTR)
						continue;
					return -errno;
				}
				srv.accepted++;
				if (close(fd) < 0)
					srv.errors++;
			}
		}
	}
	close(FD_LISTEN);
	close(ep);
	return 0;
}

/* bench_churn serve weft|epoll ACCEPTORS: the server, with fds 3 and 4 as above. */
static int serve_main(int argc, char **argv)
{
	int rc;

	if (argc != 4 || (strcmp(argv[2], "weft") && strcmp(argv[2], "epoll"))) {
		fprintf(stderr,
			"usage: bench_churn serve weft|epoll ACCEPTORS (fd 3: the listener, "
			"fd 4: the control pipe)\n");
		return 2;
	}
	n_acceptors = (long)b_parse_count(argv[3], "ACCEPTORS");
	if (n_acceptors < 1 || n_acceptors > MAX_ACCEPTORS) {
		fprintf(stderr, "bench_churn: ACCEPTORS must be 1..%d\n", MAX_ACCEPTORS);
		return 2;
	}
	if (fcntl(FD_LISTEN, F_GETFD) < 0 || fcntl(FD_CTL, F_GETFD) < 0) {
		fprintf(stderr, "bench_churn serve: fds 3 and 4 must be open\n");
		return 2;
	}
	srv_mode = argv[2];
	srv_is_weft = !strcmp(srv_mode, "weft");
	if (srv_is_weft) {
		rc = weft_main(serve_weft, NULL);
		if (rc < 0)
			fprintf(stderr, "bench_churn serve: %s\n", weft_loop_explain(rc));
	} else {
		rc = serve_epoll();
		if (rc < 0)
			fprintf(stderr, "bench_churn serve: %s\n", strerror(-rc));
	}
	if (rc < 0)
		return 1;
	return srv_report();
}

/* ---- the load generator ----------------------------------------------------------- */

static struct {
	long done;     /* connections the server closed and the client then reset */
	long failed;   /* connect failures (refused, reset, no port) */
	long opened;   /* sockets connected or connecting */
	long max_wait; /* the slowest connection, in microseconds */
} cli;

struct slot {
	int fd;
	int64_t t0;
};

static int open_one(int ep, struct sockaddr_in *to, struct slot *s, uint32_t idx)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u32 = idx };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0 ||
	    (connect(fd, (struct sockaddr *)to, sizeof(*to)) < 0 && errno != EINPROGRESS) ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	s->fd = fd;
	s->t0 = b_now();
	cli.opened++;
	return 0;
}

struct opts {
	long acceptors, inflight;
	double secs, warmup;
	int server_cpu, client_cpu;
	const char *server, *go_peer, *wrapper;
};

/*
 * Run the load against the listener until the window is over, tell the
 * server 'm' and 'e' at its edges, then drain. Returns 0, or -errno.
 */
static int load(const struct opts *o, int port, int ctl, long *win_done, double *win_secs,
		double *win_cpu_s)
{
	struct sockaddr_in to = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons((uint16_t)port) };
	struct slot *slots = calloc((size_t)o->inflight, sizeof(*slots));
	struct epoll_event ev[256];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int64_t start = b_now();
	int64_t mark = start + (int64_t)(o->warmup * 1e9);
	int64_t end = mark + (int64_t)(o->secs * 1e9);
	int64_t drain_by = 0;
	long live = 0, mark_done = 0;
	int64_t mark_cpu = 0;
	int phase = 0; /* 0 warm-up, 1 window, 2 draining */
	int rc = 0;

	if (!slots || ep < 0) {
		free(slots);
		return -ENOMEM;
	}
	for (long i = 0; i < o->inflight; i++)
		slots[i].fd = -1;
	for (;;) {
		int64_t now = b_now();

		if (phase == 0 && now >= mark) {
			if (write(ctl, "m", 1) != 1) {
				rc = -EPIPE;
				break;
			}
			mark_done = cli.done;
			mark_cpu = b_cpu_ns();
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
			drain_by = now + 5000000000LL;
		}
		if (phase == 2 && (live == 0 || now >= drain_by))
			break;
		/* Refill every empty slot (not while draining). */
		for (long i = 0; phase < 2 && i < o->inflight; i++) {
			if (slots[i].fd >= 0)
				continue;

			int err = open_one(ep, &to, &slots[i], (uint32_t)i);

			if (err == -EADDRNOTAVAIL || err == -EAGAIN || err == -ECONNREFUSED) {
				cli.failed++;
				break; /* no port free now: wait for completions */
			}
			if (err < 0) {
				rc = err;
				goto out;
			}
			live++;
		}
		if (live == 0 && phase < 2) {
			usleep(1000);
			continue;
		}

		int n = epoll_wait(ep, ev, 256, 100);

		if (n < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
		now = n > 0 ? b_now() : now;
		for (int k = 0; k < n; k++) {
			struct slot *s = &slots[ev[k].data.u32];
			long us = (long)((now - s->t0) / 1000);

			if (ev[k].events & EPOLLERR)
				cli.failed++;
			else
				cli.done++;
			if (us > cli.max_wait)
				cli.max_wait = us;
			close(s->fd); /* SO_LINGER {1, 0}: an RST, no TIME_WAIT */
			s->fd = -1;
			live--;
		}
	}
out:
	for (long i = 0; i < o->inflight; i++)
		if (slots[i].fd >= 0)
			close(slots[i].fd);
	if (phase == 2 && live > 0) {
		fprintf(stderr, "bench_churn: %ld connections still open 5 s after the end\n",
			live);
		rc = rc ? rc : -ETIMEDOUT;
	}
	free(slots);
	close(ep);
	return rc;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: bench_churn [-k ACCEPTORS] [-t SECS] [-w WARMUP_S] [-m INFLIGHT]\n"
		"                   [-s SERVER_CPU] [-c CLIENT_CPU] [-g GO_PEER] [-x WRAPPER] "
		"SERVER\n"
		"SERVER: weft-multishot, weft-oneshot, weft-epoll, epoll or go\n"
		"        bench_churn serve weft|epoll ACCEPTORS (the server alone)\n");
	return 2;
}

static int parse_secs(const char *s, const char *what, double lo, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || *out < lo || *out > 3600) {
		fprintf(stderr,
			"bench_churn: %s must be a number of seconds in %g..3600, not '%s'\n", what,
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
			fprintf(stderr, "bench_churn: %s must be %ld..%ld, not '%s'\n", what, lo,
				hi, s);
		return -1;
	}
	*out = (long)v;
	return 0;
}

/* Run the server's argv in a child: fds 3 and 4 as the protocol says, stdout to @out. */
static pid_t spawn_server(const struct opts *o, int lfd, int ctl_rd, int out_wr)
{
	char self[PATH_MAX], peer[PATH_MAX], k[32];
	char *argv[64];
	int argc = 0;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *wrap = NULL;

	if (n < 0)
		return -1;
	self[n] = 0;
	snprintf(k, sizeof(k), "%ld", o->acceptors);
	if (o->wrapper) {
		wrap = strdup(o->wrapper);
		for (char *t = strtok(wrap, " "); t && argc < 48; t = strtok(NULL, " "))
			argv[argc++] = t;
	}
	if (!strcmp(o->server, "go")) {
		if (o->go_peer) {
			snprintf(peer, sizeof(peer), "%s", o->go_peer);
		} else {
			char dir[PATH_MAX];

			memcpy(dir, self, (size_t)n + 1);
			snprintf(peer, sizeof(peer), "%s/peer_churn_go", dirname(dir));
		}
		if (access(peer, X_OK) < 0) {
			fprintf(stderr,
				"bench_churn: no Go peer at %s (build bench/peers/churn.go)\n",
				peer);
			free(wrap);
			return -1;
		}
		argv[argc++] = peer;
	} else {
		argv[argc++] = self;
		argv[argc++] = "serve";
		argv[argc++] = strncmp(o->server, "weft", 4) ? "epoll" : "weft";
		argv[argc++] = k;
	}
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
		fprintf(stderr, "bench_churn: cannot pin the server to CPU %d\n", o->server_cpu);
		_exit(127);
	}
	if (!strcmp(o->server, "weft-multishot")) {
		setenv("WEFT_BACKEND", "uring", 1);
		setenv("WEFT_MULTISHOT_ACCEPT", "auto", 1);
	} else if (!strcmp(o->server, "weft-oneshot")) {
		setenv("WEFT_BACKEND", "uring", 1);
		setenv("WEFT_MULTISHOT_ACCEPT", "off", 1);
	} else if (!strcmp(o->server, "weft-epoll")) {
		setenv("WEFT_BACKEND", "epoll", 1);
	} else if (!strcmp(o->server, "go")) {
		setenv("GOMAXPROCS", "1", 1);
	}
	execvp(argv[0], argv);
	fprintf(stderr, "bench_churn: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int make_listener(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, BACKLOG) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		perror("bench_churn: listen");
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static long somaxconn(void)
{
	FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

int main(int argc, char **argv)
{
	struct opts o = { .acceptors = 1,
			  .inflight = 64,
			  .secs = 3,
			  .warmup = 0.5,
			  .server_cpu = 1,
			  .client_cpu = 0 };
	long v;
	int opt;

	if (argc >= 2 && !strcmp(argv[1], "serve"))
		return serve_main(argc, argv);
	while ((opt = getopt(argc, argv, "k:t:w:m:s:c:g:x:h")) != -1) {
		switch (opt) {
		case 'k':
			if (parse_int(optarg, "ACCEPTORS", 1, MAX_ACCEPTORS, &o.acceptors) < 0)
				return 2;
			break;
		case 'm':
			if (parse_int(optarg, "INFLIGHT", 1, MAX_INFLIGHT, &o.inflight) < 0)
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
		case 'g':
			o.go_peer = optarg;
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
	if (strcmp(o.server, "weft-multishot") && strcmp(o.server, "weft-oneshot") &&
	    strcmp(o.server, "weft-epoll") && strcmp(o.server, "epoll") && strcmp(o.server, "go")) {
		fprintf(stderr, "bench_churn: unknown server '%s'\n", o.server);
		return usage();
	}
	if (strncmp(o.server, "weft", 4))
		o.acceptors = 1; /* the peers have one accept loop */

	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)o.inflight + 64) {
		rl.rlim_cur = (rlim_t)o.inflight + 64;
		if (rl.rlim_max < rl.rlim_cur || setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			fprintf(stderr, "bench_churn: RLIMIT_NOFILE is too low for %ld in flight\n",
				o.inflight);
			return 1;
		}
	}

	int port, ctl[2], res[2];
	int lfd = make_listener(&port);

	if (lfd < 0)
		return 1;
	if (pipe2(ctl, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0) {
		perror("bench_churn: pipe");
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
		fprintf(stderr, "bench_churn: cannot pin the client to CPU %d\n", o.client_cpu);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return 1;
	}

	long win_done = 0;
	double win_secs = 0, win_cpu_s = 0;
	int rc = load(&o, port, ctl[1], &win_done, &win_secs, &win_cpu_s);

	close(ctl[1]); /* the server stops */

	char line[1024];
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(line) - 1 &&
	       (n = read(res[0], line + got, sizeof(line) - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += (size_t)n;
	}
	line[got] = 0;
	close(res[0]);

	int st;

	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "bench_churn: the %s server failed (%s %d)\n", o.server,
			WIFSIGNALED(st) ? "signal" : "status",
			WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "bench_churn: the load failed: %s\n", strerror(-rc));
		return 1;
	}

	double acc = b_field(line, "accepted"), secs = b_field(line, "secs");
	double cpu = b_field(line, "cpu_ns");

	if (acc <= 0 || secs <= 0 || cpu < 0) {
		/*
		 * Under a wrapper (strace) only the totals matter, and a slowed
		 * server may see 'm' and 'e' together (the epoll peer's accept
		 * loop reads the control pipe only once the backlog is empty).
		 */
		if (!o.wrapper || b_field(line, "accepted_total") <= 0) {
			fprintf(stderr, "bench_churn: the server's line makes no sense: '%s'\n",
				line);
			return 1;
		}
		fprintf(stderr,
			"bench_churn: the %s server saw an empty window (it read the control "
			"pipe late); its totals stand\n",
			o.server);
		acc = acc > 0 ? acc : 1;
		secs = secs > 0 ? secs : 1e-9;
	}

	long sm = somaxconn();

	printf("churn server=%s acceptors=%ld inflight=%ld backlog=%ld conns=%.0f secs=%.3f "
	       "conns_per_s=%.0f server_cpu_us_per_conn=%.3f server_busy=%.3f",
	       o.server, o.acceptors, o.inflight, sm > 0 && sm < BACKLOG ? sm : BACKLOG, acc, secs,
	       acc / secs, cpu / 1e3 / acc, cpu / 1e9 / secs);
	printf(" client_conns=%ld client_secs=%.3f client_busy=%.3f client_failed=%ld "
	       "client_max_wait_us=%ld server_errors=%.0f accepted_total=%.0f",
	       win_done, win_secs, win_secs > 0 ? win_cpu_s / win_secs : 0, cli.failed,
	       cli.max_wait, b_field(line, "errors"), b_field(line, "accepted_total"));
	if (strstr(line, " backend=")) {
		char b[32];

		printf(" backend=%s enters_per_conn=%.3f sqes_per_conn=%.3f multishot_rearms=%.0f "
		       "multishot_rearms_total=%.0f",
		       b_word(line, "backend", b, sizeof(b)), b_field(line, "enters") / acc,
		       b_field(line, "sqes") / acc, b_field(line, "multishot_rearms"),
		       b_field(line, "multishot_rearms_total"));
	}
	printf("\n");
	return 0;
}
