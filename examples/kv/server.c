/* SPDX-License-Identifier: MIT */
/*
 * kv_server: a Redis-protocol server on weft, one shard of the keyspace per
 * loop of a pool, every loop accepting on the port (SO_REUSEPORT).
 *
 *   kv_server --port P [--loops N] [--maxclients N] [--maxmemory BYTES]
 *             [--max-bulk BYTES] [--timeout SECONDS] [--bind HOST]
 *
 * A fiber per connection reads commands (resp.c), runs each on the shard
 * of its key (here, or in a fiber spawned on that shard's loop and joined),
 * and collects the replies in an output buffer that it writes out when no
 * more pipelined bytes wait or it holds 64 KiB: a client that stops reading
 * blocks its fiber in weft_send, which then stops reading it too.
 * SIGINT/SIGTERM stop every loop and exit 0.
 */
#include "resp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

#define FLUSH_AT (64 * 1024) /* the output buffer's cap: past it, write before reading on */

struct kv_config kv_cfg = {
	.port = 6379,
	.loops = 1,
	.maxclients = 10000,
	.max_bulk = 512ll << 20,
	.max_query = 1ll << 30,
};

struct shard { /* one per loop; db only ever touched on that loop's thread */
	struct db db;
	_Atomic size_t used; /* bytes of db's allocations (data.c) */
	weft_loop *loop;
	int lfd;
	weft_group *conns;
	weft_fiber *acceptor;
	_Atomic bool stopping;
	uint64_t served;
};

static const char *bind_host;
static struct shard *shards;
static unsigned nshards = 1;
static weft_pool *pool;
static _Atomic long long clients;
static _Atomic int bound;	 /* loop 0's port once it listens, or -errno */
static _Atomic unsigned drained; /* loops whose connections have all ended */

unsigned kv_nshards(void)
{
	return nshards;
}

unsigned kv_shard_of(const char *key, size_t klen)
{
	return nshards == 1 ? 0 : (unsigned)((kv_hash(key, klen) >> 40) % nshards);
}

size_t kv_used_memory(void)
{
	size_t n = 0;

	for (unsigned i = 0; i < nshards; i++)
		n += atomic_load_explicit(&shards[i].used, memory_order_relaxed);
	return n;
}

long long kv_clients(void)
{
	return atomic_load(&clients);
}

struct remote {
	void (*fn)(struct cmdctx *);
	struct cmdctx *ctx;
};

static int remote_run(void *arg)
{
	struct remote *r = arg;

	r->fn(r->ctx);
	return 0;
}

/*
 * The caller's fiber waits for the shard's fiber even when it is cancelled
 * (a shutdown): that fiber writes into the caller's buffers, so it must end
 * first. It never blocks, so the wait is short.
 */
void kv_run_on(unsigned shard, void (*fn)(struct cmdctx *), struct cmdctx *ctx)
{
	ctx->db = &shards[shard].db;
	if (nshards == 1 || shard == (unsigned)weft_loop_index()) {
		fn(ctx);
		return;
	}
	struct remote r = { .fn = fn, .ctx = ctx };
	weft_fiber *f;
	int rc = weft_spawn(shards[shard].loop, remote_run, &r, &f);

	if (rc < 0) {
		out_errorf(ctx->out, "ERR shard %u: %s", shard, weft_strerror(rc));
		ctx->acc = 0;
		return;
	}
	while ((rc = weft_join(f, NULL)) == -ECANCELED || rc == -ETIMEDOUT)
		weft_yield();
}

/* ---- connections ---- */

struct conn {
	int fd;
	struct req q;
	struct out out;
	struct conn_state cs;
};

static int conn_flush(void *arg)
{
	struct conn *c = arg;

	if (!c->out.len)
		return 0;
	ssize_t n = weft_send_all(c->fd, c->out.buf, c->out.len, 0);

	c->out.len = 0;
	if (c->out.cap > 4 * FLUSH_AT) { /* a big reply went out: do not keep its buffer */
		free(c->out.buf);
		c->out = (struct out){ 0 };
	}
	return n < 0 ? (int)n : 0;
}

/* The next command, within --timeout when there is one. */
static int conn_read(struct conn *c)
{
	if (!kv_cfg.timeout_ns)
		return req_read(&c->q);
	int64_t outer = weft_set_timeout(kv_cfg.timeout_ns);
	int rc = req_read(&c->q);

	weft_set_deadline(outer);
	return rc;
}

/* Shut our side, then read (briefly, boundedly) what the peer still sends, so the
 * reply we wrote last is not overtaken by a reset. */
static void linger_close(int fd)
{
	char buf[1024];
	size_t drained_bytes = 0;
	int64_t outer = weft_set_timeout(200 * WEFT_MSEC);
	ssize_t n;

	if (weft_shutdown(fd, SHUT_WR) == 0)
		while (drained_bytes < (64u << 10) && (n = weft_recv(fd, buf, sizeof(buf), 0)) > 0)
			drained_bytes += (size_t)n;
	weft_set_deadline(outer);
	weft_close(fd);
}

static void conn_serve(struct conn *c)
{
	for (;;) {
		int rc = conn_read(c);

		if (rc == -EPROTO) { /* the error is in the buffer: send it, then hang up */
			conn_flush(c);
			linger_close(c->fd);
			c->fd = -1;
			return;
		}
		if (rc <= 0)
			return;
		if (c->q.argc > 0)
			kv_dispatch(c->q.argc, c->q.argv, &c->out, &c->cs);
		if (c->out.broken)
			return;
		if (c->cs.quit || c->out.len >= FLUSH_AT || weft_reader_buffered(c->q.r) == 0)
			if (conn_flush(c) < 0)
				return;
		if (c->cs.quit)
			return;
	}
}

static int conn_main(void *arg)
{
	static const char full[] = "-ERR max number of clients reached\r\n";
	struct conn c = { .fd = (int)(intptr_t)arg };

	if (atomic_fetch_add(&clients, 1) >= kv_cfg.maxclients) {
		atomic_fetch_sub(&clients, 1);
		weft_send_all(c.fd, full, sizeof(full) - 1, 0);
		linger_close(c.fd);
		return 0;
	}
	int one = 1;

	/* Replies go out as soon as they are written (redis does the same). */
	setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c.q.out = &c.out;
	c.q.flush = conn_flush;
	c.q.flush_arg = &c;
	if (weft_reader_create(&c.q.r, c.fd, RESP_LINE_MAX) == 0) {
		conn_serve(&c);
		weft_reader_destroy(c.q.r);
	}
	req_fini(&c.q);
	free(c.out.buf);
	if (c.fd >= 0)
		weft_close(c.fd);
	atomic_fetch_sub(&clients, 1);
	return 0;
}

/* ---- loops ---- */

static int acceptor(void *arg)
{
	struct shard *s = arg;

	for (;;) {
		int fd = weft_accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd == -ECANCELED)
			return 0;
		if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM ||
		    fd == -ECONNABORTED) {
			weft_sleep(10 * WEFT_MSEC);
			continue;
		}
		if (fd < 0) {
			fprintf(stderr, "kv_server: accept: %s\n", strerror(-fd));
			return fd;
		}
		if (weft_group_spawn(s->conns, conn_main, (void *)(intptr_t)fd) < 0)
			weft_close(fd);
		else
			s->served++;
	}
}

/* The active expiry of one shard: a cycle every 100 ms, as redis's hz 10. */
static int sweeper(void *arg)
{
	struct shard *s = arg;

	while (weft_sleep(100 * WEFT_MSEC) == 0)
		db_expire_cycle(&s->db, weft_now(), 2 * WEFT_MSEC);
	return 0;
}

/* On each loop, posted by the signal fiber: stop accepting, end every connection. */
static int stop_here(void *arg)
{
	struct shard *s = arg;

	atomic_store(&s->stopping, true);
	if (s->acceptor)
		weft_cancel(s->acceptor);
	if (s->conns)
		weft_group_cancel(s->conns);
	return 0;
}

static int signals(void *arg)
{
	sigset_t set;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	int sig = weft_signal_wait(&set, NULL);

	if (sig == -ECANCELED)
		return 0;
	if (sig > 0)
		fprintf(stderr, "kv_server: %s: shutting down\n", strsignal(sig));
	for (unsigned i = 0; i < nshards; i++)
		if (weft_loop_post(shards[i].loop, stop_here, &shards[i]) < 0)
			fprintf(stderr, "kv_server: could not stop loop %u\n", i);
	return 0;
}

/* Loop 0 listens first (it may pick the port), then the others on its port. */
static int listen_here(struct shard *s, int index)
{
	int port = kv_cfg.port;

	if (index > 0) {
		while ((port = atomic_load(&bound)) == 0)
			weft_sleep(WEFT_MSEC);
		if (port < 0)
			return port;
	}
	s->lfd = weft_tcp_listen(bind_host, port, 4096, nshards > 1 ? WEFT_TCP_REUSEPORT : 0);
	if (s->lfd < 0) {
		fprintf(stderr, "kv_server: listen on port %d: %s\n", port, strerror(-s->lfd));
		if (index == 0)
			atomic_store(&bound, s->lfd);
		return s->lfd;
	}
	if (index == 0) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		getsockname(s->lfd, (struct sockaddr *)&ss, &len);
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		kv_cfg.port = port;
		fprintf(stderr, "kv_server: %u loops; listening on port %d\n", nshards, port);
		atomic_store(&bound, port);
	}
	return 0;
}

/* After every loop's connections are gone, no command can reach this shard: free it. */
static void shard_drain(struct shard *s, weft_fiber *sweep)
{
	atomic_fetch_add(&drained, 1);
	while (atomic_load(&drained) < nshards)
		if (weft_sleep(WEFT_MSEC) < 0)
			weft_yield();
	weft_cancel(sweep);
	weft_join(sweep, NULL);
	db_flush(&s->db);
}

static int loop_main(void *arg)
{
	int index = weft_loop_index();
	struct shard *s = &shards[index];
	weft_fiber *sig = NULL, *sweep = NULL;
	int rc, arc = 0;

	(void)arg;
	kv_mem_bind(&s->used);
	if ((rc = listen_here(s, index)) < 0)
		return rc;
	if ((rc = weft_group_create_flags(&s->conns, WEFT_GROUP_INDEPENDENT)) < 0 ||
	    (rc = weft_spawn(NULL, acceptor, s, &s->acceptor)) < 0 ||
	    (rc = weft_spawn(NULL, sweeper, s, &sweep)) < 0 ||
	    (index == 0 && (rc = weft_spawn(NULL, signals, NULL, &sig)) < 0)) {
		fprintf(stderr, "kv_server: loop %d: %s\n", index, weft_strerror(rc));
		exit(1); /* a half-started pool cannot be stopped in order */
	}
	if (atomic_load(&s->stopping))
		weft_cancel(s->acceptor);
	weft_join(s->acceptor, &arc);
	if (sig) {
		weft_cancel(sig);
		weft_join(sig, NULL);
	}
	weft_group_cancel(s->conns); /* the acceptor may have ended on its own */
	weft_group_wait(s->conns);
	weft_group_destroy(s->conns);
	shard_drain(s, sweep);
	weft_close(s->lfd);
	return arc;
}

/* ---- options ---- */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: kv_server [--port P] [--loops N] [--maxclients N] [--maxmemory BYTES]\n"
		"                 [--max-bulk BYTES] [--timeout SECONDS] [--bind HOST]\n"
		"  --port P          TCP port (6379; 0 picks a free one and prints it)\n"
		"  --loops N         N loops, one shard of the keyspace each (1; 0: one per CPU)\n"
		"  --maxclients N    connections served at once (10000); others get an error\n"
		"  --maxmemory B     refuse writes once the data takes B bytes (0: no bound)\n"
		"  --max-bulk B      the longest argument (512mb); a command takes at most 2x\n"
		"  --timeout S       close connections idle for S seconds (0: never)\n"
		"  --bind HOST       the address to listen on (every IPv4 address)\n"
		"Sizes take a k, m or g suffix (kb, mb, gb: powers of 1024).\n");
}

/* A number with an optional k/m/g (kb/mb/gb) suffix. */
static int parse_size(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	int shift = 0;

	if (end == s)
		return -1;
	if (*end == 'k' || *end == 'K')
		shift = 10;
	else if (*end == 'm' || *end == 'M')
		shift = 20;
	else if (*end == 'g' || *end == 'G')
		shift = 30;
	if (shift && *++end == 'b')
		end++;
	if (*end || v < 0 || (shift && v > (max >> shift)))
		return -1;
	v <<= shift;
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

struct option_def {
	const char *name;
	long long min, max;
	long long *dst;
};

static int parse_args(int argc, char **argv)
{
	long long port = kv_cfg.port, loops = 1, timeout_s = 0;
	const struct option_def opts[] = {
		{ "--port", 0, 65535, &port },
		{ "--loops", 0, 1024, &loops },
		{ "--maxclients", 1, 1000000, &kv_cfg.maxclients },
		{ "--maxmemory", 0, 1ll << 50, &kv_cfg.maxmemory },
		{ "--max-bulk", 1, 1ll << 40, &kv_cfg.max_bulk },
		{ "--timeout", 0, 1ll << 30, &timeout_s },
	};

	for (int i = 1; i < argc; i++) {
		size_t k = 0;

		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			exit(0);
		}
		if (!strcmp(argv[i], "--bind") && i + 1 < argc) {
			bind_host = argv[++i];
			continue;
		}
		while (k < sizeof(opts) / sizeof(opts[0]) && strcmp(argv[i], opts[k].name))
			k++;
		if (k == sizeof(opts) / sizeof(opts[0]) || i + 1 >= argc ||
		    parse_size(argv[i + 1], opts[k].min, opts[k].max, opts[k].dst) < 0) {
			fprintf(stderr, "kv_server: bad option or value: %s%s%s\n", argv[i],
				i + 1 < argc ? " " : "", i + 1 < argc ? argv[i + 1] : "");
			usage(stderr);
			return -1;
		}
		i++;
	}
	kv_cfg.port = (int)port;
	kv_cfg.loops = (unsigned)loops;
	kv_cfg.timeout_ns = timeout_s * WEFT_SEC;
	kv_cfg.max_query = kv_cfg.max_bulk * 2 > (1ll << 20) ? kv_cfg.max_bulk * 2 : 1ll << 20;
	return 0;
}

int main(int argc, char **argv)
{
	weft_config cfg;
	sigset_t set;
	int rc;

	if (parse_args(argc, argv) < 0)
		return 2;
	/* Blocked before the port is announced: weft_signal_wait takes them (see serve.h). */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	srandom((unsigned)weft_now());
	kv_hash_seed((uint64_t)weft_now() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid());

	weft_config_init(&cfg);
#if defined(__SANITIZE_ADDRESS__)
	cfg.stack_size = 256 * 1024; /* sanitizers need deeper stacks */
#endif
	rc = weft_pool_create(&pool, kv_cfg.loops, &cfg);
	if (rc < 0) {
		fprintf(stderr, "kv_server: %s\n", weft_loop_explain(rc));
		return 1;
	}
	nshards = weft_pool_size(pool);
	shards = calloc(nshards, sizeof(*shards));
	if (!shards) {
		weft_pool_destroy(pool);
		fprintf(stderr, "kv_server: out of memory\n");
		return 1;
	}
	for (unsigned i = 0; i < nshards; i++)
		shards[i].loop = weft_pool_loop(pool, i);
	rc = weft_pool_run(pool, loop_main, NULL);
	weft_pool_destroy(pool);
	free(shards);
	if (rc < 0) {
		fprintf(stderr, "kv_server: %s\n", weft_strerror(rc));
		return 1;
	}
	return 0;
}
