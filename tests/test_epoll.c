/* SPDX-License-Identifier: MIT */
/*
 * What is particular to the epoll backend (every other suite also runs on it,
 * in the 'epoll' suite): operations on workers keep the cancellation contract
 * (a running one completes before its fiber goes on, and its result is
 * returned; a queued one ends at once), a close waits for the workers using
 * its fd, fd numbers recycled behind weft's back still get their events,
 * connect puts a blocking socket's flags back, MSG_WAITALL, and ops that
 * finish in place cost no system call.
 */
#include "helpers.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

static weft_config epoll_cfg(void)
{
	weft_config cfg;

	weft_config_init(&cfg);
	cfg.backend = WEFT_BACKEND_EPOLL;
	return cfg;
}

static int run(weft_fn fn, void *arg, weft_stats *st)
{
	weft_config cfg = epoll_cfg();

	return t_run_cfg(&cfg, fn, arg, st);
}

/* ---- a worker op that blocks: opening a FIFO for reading waits for a writer ---- */

struct fifo {
	char path[64];
	int delay_ms;	   /* the writer opens it after this */
	int open_rc;	   /* weft_open's result */
	int64_t took;	   /* how long weft_open took */
	int64_t cancel_at; /* when the cancel was sent */
	int second_rc;	   /* a second op, queued behind it */
	int64_t second_took;
};

static void *open_writer(void *arg)
{
	struct fifo *f = arg;

	usleep((useconds_t)f->delay_ms * 1000);

	/*
	 * Open the writing end once a reader is there (a non-blocking open
	 * fails ENXIO until then). Under load the cancel may take the job back
	 * before a worker ever ran it: then no reader comes, and a blocking open
	 * would wait here for ever.
	 */
	for (int i = 0; i < 400; i++) {
		int fd = open(f->path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);

		if (fd >= 0) {
			close(fd);
			break;
		}
		if (errno != ENXIO)
			break;
		usleep(5000);
	}
	return NULL;
}

static int open_fifo(void *arg)
{
	struct fifo *f = arg;
	int64_t t0 = weft_now();

	f->open_rc = weft_open(f->path, O_RDONLY | O_CLOEXEC, 0);
	f->took = weft_now() - t0;
	if (f->open_rc >= 0)
		weft_close(f->open_rc);
	return 0;
}

static int cancel_running_open(void *arg)
{
	struct fifo *f = arg;
	weft_fiber *fib;
	pthread_t t;

	pthread_create(&t, NULL, open_writer, f);
	if (weft_spawn(NULL, open_fifo, f, &fib) < 0)
		return -ENOMEM;
	weft_sleep(20 * WEFT_MSEC);
	f->cancel_at = weft_now();
	weft_cancel(fib);
	weft_join(fib, NULL);
	pthread_join(t, NULL);
	return 0;
}

static void make_fifo(struct fifo *f)
{
	snprintf(f->path, sizeof(f->path), "/tmp/weft-epoll-fifo-%d", (int)getpid());
	unlink(f->path);
	assert_int_equal(mkfifo(f->path, 0600), 0);
}

/* Descriptors open in this process now. */
static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own */
}

static void test_cancelled_open_on_a_worker_returns_at_once_and_its_fd_is_released(void **state)
{
	struct fifo f = { .delay_ms = 150 };
	int before = open_fds();

	(void)state;
	make_fifo(&f);
	assert_int_equal(run(cancel_running_open, &f, NULL), 0);
	/* It stopped waiting at the cancel (20 ms), long before the writer came (150 ms). */
	assert_int_equal(f.open_rc, -ECANCELED);
	assert_true(f.took < 100 * WEFT_MSEC);
	/* The worker's open completed once the writer came; the fd nobody saw was closed. */
	for (int i = 0; i < 200 && open_fds() > before; i++)
		usleep(5000);
	assert_int_equal(open_fds(), before);
	unlink(f.path);
}

static int fsync_queued(void *arg)
{
	struct fifo *f = arg;
	int fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int64_t t0 = weft_now();

	weft_set_deadline(t0 + 30 * WEFT_MSEC);
	f->second_rc = weft_fsync(fd);
	f->second_took = weft_now() - t0;
	close(fd);
	return 0;
}

static int deadline_of_a_queued_op(void *arg)
{
	struct fifo *f = arg;
	weft_fiber *a;
	weft_fiber *b;
	pthread_t t;

	pthread_create(&t, NULL, open_writer, f);
	weft_spawn(NULL, open_fifo, f, &a); /* holds the one worker */
	weft_sleep(10 * WEFT_MSEC);
	weft_spawn(NULL, fsync_queued, f, &b); /* waits in the queue */
	weft_join(b, NULL);
	weft_join(a, NULL);
	pthread_join(t, NULL);
	return 0;
}

static void test_deadline_ends_an_op_still_queued_for_a_worker(void **state)
{
	struct fifo f = { .delay_ms = 200 };
	weft_config cfg = epoll_cfg();

	(void)state;
	make_fifo(&f);
	cfg.iowq_bounded = 1; /* one worker */
	assert_int_equal(t_run_cfg(&cfg, deadline_of_a_queued_op, &f, NULL), 0);
	unlink(f.path);
	assert_int_equal(f.second_rc, -ETIMEDOUT);
	assert_true(f.second_took >= 30 * WEFT_MSEC && f.second_took < 150 * WEFT_MSEC);
	assert_true(f.open_rc >= 0);
}

/* ---- fd numbers recycled behind weft's back ---- */

static int recv_one(int fd, char *c)
{
	return (int)weft_recv(fd, c, 1, 0);
}

struct recycle {
	int rounds_ok;
};

static void *send_later(void *arg)
{
	int fd = *(int *)arg;

	usleep(20000);
	(void)!write(fd, "x", 1);
	return NULL;
}

static int recycle_main(void *arg)
{
	struct recycle *r = arg;

	for (int round = 0; round < 5; round++) {
		int sv[2];
		char c;
		pthread_t t;

		/* Plain socketpair and close: weft never sees these numbers born or die. */
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return -errno;
		pthread_create(&t, NULL, send_later, &sv[1]);
		weft_set_deadline(weft_now() + 2 * WEFT_SEC);

		int n = recv_one(sv[0], &c); /* waits: registered in epoll */

		pthread_join(t, NULL);
		close(sv[0]);
		close(sv[1]);
		if (n != 1)
			return n < 0 ? n : -EIO;
		r->rounds_ok++;
	}
	return 0;
}

static void test_fd_numbers_recycled_behind_weft_still_get_events(void **state)
{
	struct recycle r = { 0 };

	(void)state;
	assert_int_equal(run(recycle_main, &r, NULL), 0);
	assert_int_equal(r.rounds_ok, 5);
}

/* ---- connect on a blocking socket ---- */

struct conn {
	int rc;
	int flags_before;
	int flags_after;
	int waitall;
};

static int connect_main(void *arg)
{
	struct conn *c = arg;
	int l = weft_tcp_listen("127.0.0.1", 0, 8, 0);
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	if (l < 0)
		return l;
	getsockname(l, (struct sockaddr *)&a, &len);

	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	c->flags_before = fcntl(fd, F_GETFL);
	c->rc = weft_connect(fd, (struct sockaddr *)&a, len);
	c->flags_after = fcntl(fd, F_GETFL);

	int s = weft_accept(l, NULL, NULL);
	char buf[8];

	/* MSG_WAITALL: two sends, one recv of both. */
	weft_send(s, "abcd", 4, 0);
	weft_send(s, "efgh", 4, 0);
	c->waitall = (int)weft_recv(fd, buf, 8, MSG_WAITALL);
	if (c->waitall == 8 && memcmp(buf, "abcdefgh", 8))
		c->waitall = -EIO;
	weft_close(s);
	weft_close(fd);
	weft_close(l);
	return 0;
}

static void test_connect_restores_a_blocking_socket_and_waitall_gathers(void **state)
{
	struct conn c = { 0 };

	(void)state;
	assert_int_equal(run(connect_main, &c, NULL), 0);
	assert_int_equal(c.rc, 0);
	assert_false(c.flags_before & O_NONBLOCK);
	assert_int_equal(c.flags_after, c.flags_before);
	assert_int_equal(c.waitall, 8);
}

/* ---- ops that finish in place ---- */

static int nops(void *arg)
{
	(void)arg;
	for (int i = 0; i < 1000; i++)
		if (weft_nop() != 0)
			return -EIO;
	return 0;
}

static void test_ops_that_finish_at_once_cost_no_system_call(void **state)
{
	weft_stats st;

	(void)state;
	assert_int_equal(run(nops, NULL, &st), 0);
	assert_int_equal(st.backend, WEFT_BACKEND_EPOLL);
	assert_int_equal(st.cqes, 1000);
	/* 16 in place per fiber switch, the rest after a yield: few waits, none blocking. */
	assert_true(st.enters < 100);
}

static void test_backend_is_named(void **state)
{
	weft_config cfg = epoll_cfg();
	weft_loop *l;

	(void)state;
	assert_int_equal(weft_loop_create(&l, &cfg), 0);
	assert_string_equal(weft_loop_backend(l), "epoll");
	assert_non_null(strstr(weft_loop_explain(0), "epoll"));
	weft_loop_destroy(l);
	assert_string_equal(weft_loop_backend(NULL), "");
	cfg.backend = 7;
	assert_int_equal(weft_loop_create(&l, &cfg), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backend_is_named),
		cmocka_unit_test(
		    test_cancelled_open_on_a_worker_returns_at_once_and_its_fd_is_released),
		cmocka_unit_test(test_deadline_ends_an_op_still_queued_for_a_worker),
		cmocka_unit_test(test_fd_numbers_recycled_behind_weft_still_get_events),
		cmocka_unit_test(test_connect_restores_a_blocking_socket_and_waitall_gathers),
		cmocka_unit_test(test_ops_that_finish_at_once_cost_no_system_call),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
