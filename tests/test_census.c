/* SPDX-License-Identifier: MIT */
/*
 * The library's own stack use (issue 12, item 2), measured through
 * weft_stats.stack_deepest in builds configured with -Dstack_census=true
 * (the test skips in other builds, where it reads 0). Each public call runs
 * in the only fiber of a fresh loop; its own use is that loop's deepest use
 * less the deepest use of a fiber that returns at once. The bound: OWN_BOUND
 * bytes for every call, on every backend that runs here.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define OWN_BOUND 1024

static int port;

static int c_nothing(void *arg)
{
	(void)arg;
	return 0;
}

static int c_sleep(void *arg)
{
	(void)arg;
	return weft_sleep(WEFT_MSEC);
}

static int c_yield(void *arg)
{
	(void)arg;
	weft_yield();
	return weft_nop();
}

static int c_spawn_join(void *arg)
{
	weft_fiber *f;
	int r = -1;
	int rc = weft_spawn(NULL, c_nothing, arg, &f);

	return rc < 0 ? rc : (weft_join(f, &r) < 0 ? -EIO : r);
}

static int c_gather(void *arg)
{
	weft_call calls[2] = { { c_nothing, arg, -1 }, { c_sleep, arg, -1 } };

	return weft_gather(calls, 2);
}

static int c_chan(void *arg)
{
	weft_chan *ch;
	int v = 7, w = 0;
	int rc = weft_chan_create(&ch, 1, sizeof(int));

	(void)arg;
	if (rc < 0)
		return rc;
	rc = weft_chan_send(ch, &v);
	if (rc == 0)
		rc = weft_chan_recv(ch, &w);
	weft_chan_close(ch);
	weft_chan_destroy(ch);
	return rc < 0 ? rc : (w == 7 ? 0 : -EIO);
}

static int c_mutex(void *arg)
{
	weft_mutex *m;
	int rc = weft_mutex_create(&m);

	(void)arg;
	if (rc < 0)
		return rc;
	rc = weft_mutex_lock(m);
	if (rc == 0)
		weft_mutex_unlock(m);
	weft_mutex_destroy(m);
	return rc;
}

static int c_group(void *arg)
{
	weft_group *g;
	int rc = weft_group_create(&g);

	if (rc < 0)
		return rc;
	rc = weft_group_spawn(g, c_sleep, arg);
	if (rc == 0)
		rc = weft_group_wait(g);
	weft_group_destroy(g);
	return rc;
}

static int c_files(void *arg)
{
	char path[64] = "/tmp/weft-census-XXXXXX";
	int tmp = mkstemp(path);
	static char data[4096];
	struct statx stx;

	(void)arg;
	if (tmp < 0)
		return -errno;
	close(tmp);

	int fd = weft_open(path, O_RDWR | O_TRUNC | O_CLOEXEC, 0);

	if (fd < 0)
		return fd;

	ssize_t n = weft_write(fd, data, sizeof(data), 0);

	if (n == (ssize_t)sizeof(data))
		n = weft_read(fd, data, sizeof(data), 0);

	int rc = n == (ssize_t)sizeof(data) ? weft_fsync(fd) : (n < 0 ? (int)n : -EIO);

	if (rc == 0)
		rc = weft_statx(AT_FDCWD, path, 0, STATX_SIZE, &stx);

	int c = weft_close(fd);
	int u = weft_unlink(path, 0);

	return rc < 0 ? rc : (c < 0 ? c : u);
}

static int c_sockets(void *arg)
{
	int sv[2];
	char buf[64] = "census";

	(void)arg;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;

	ssize_t n = weft_send(sv[0], buf, 7, 0);

	if (n == 7)
		n = weft_recv(sv[1], buf, sizeof(buf), 0);
	weft_close(sv[0]);
	weft_close(sv[1]);
	return n == 7 ? 0 : (n < 0 ? (int)n : -EIO);
}

static int c_dial_numeric(void *arg)
{
	int fd = weft_tcp_dial("127.0.0.1", port);

	(void)arg;
	if (fd < 0)
		return fd;
	return weft_close(fd);
}

static int c_dial_name(void *arg)
{
	int fd = weft_tcp_dial("localhost", port);

	(void)arg;
	if (fd < 0)
		return fd;
	return weft_close(fd);
}

static int c_listen_accept(void *arg)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int l = weft_tcp_listen("127.0.0.1", 0, 4, 0);
	int c, s, rc;

	(void)arg;
	if (l < 0)
		return l;
	if (getsockname(l, (struct sockaddr *)&a, &len) < 0)
		return -errno;
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	rc = connect(c, (struct sockaddr *)&a, len); /* loopback: completes in the backlog */
	s = weft_accept(l, NULL, NULL);
	close(c);
	weft_close(l);
	if (s < 0)
		return s;
	weft_close(s);
	return rc < 0 && errno != EINPROGRESS ? -errno : 0;
}

static int job(void *arg)
{
	return (int)(intptr_t)arg;
}

static int c_offload(void *arg)
{
	int r = -1;
	int rc = weft_offload(job, arg, &r);

	return rc < 0 ? rc : r;
}

static const struct {
	const char *name;
	weft_fn fn;
} calls[] = {
	{ "weft_sleep", c_sleep },
	{ "weft_yield + weft_nop", c_yield },
	{ "weft_spawn + weft_join", c_spawn_join },
	{ "weft_gather", c_gather },
	{ "weft_chan_*", c_chan },
	{ "weft_mutex_*", c_mutex },
	{ "weft_group_*", c_group },
	{ "file calls", c_files },
	{ "weft_send + weft_recv", c_sockets },
	{ "weft_tcp_dial (numeric)", c_dial_numeric },
	{ "weft_tcp_dial (name)", c_dial_name },
	{ "weft_tcp_listen + accept", c_listen_accept },
	{ "weft_offload", c_offload },
};

/* The deepest stack use of a loop that ran @fn in its only fiber; -1 on failure. */
static long deepest(uint32_t backend, weft_fn fn)
{
	weft_config cfg;
	weft_stats st;

	weft_config_init(&cfg);
	cfg.backend = backend;
	if (t_run_cfg(&cfg, fn, NULL, &st) != 0)
		return -1;
	return (long)st.stack_deepest;
}

static void check_backend(uint32_t backend)
{
	long base = deepest(backend, c_nothing);
	long worst = 0;

	assert_true(base > 0);
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		long d = deepest(backend, calls[i].fn);

		print_message("%-6s %-26s own use %4ld bytes (deepest %ld, an empty fiber %ld)\n",
			      backend == WEFT_BACKEND_EPOLL ? "epoll" : "uring", calls[i].name,
			      d - base, d, base);
		assert_true(d >= base);
		if (d - base > worst)
			worst = d - base;
		assert_true(d - base <= OWN_BOUND);
	}
	print_message("deepest own use on this backend: %ld bytes (bound %d)\n", worst, OWN_BOUND);
}

static void test_every_call_stays_within_its_own_stack_bound(void **state)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	(void)state;
	if (deepest(WEFT_BACKEND_AUTO, c_nothing) == 0) {
		print_message("not a -Dstack_census=true build: nothing measured\n");
		skip();
	}
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 64), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	if (t_on_uring())
		check_backend(WEFT_BACKEND_URING);
	check_backend(WEFT_BACKEND_EPOLL);
	close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_call_stays_within_its_own_stack_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
