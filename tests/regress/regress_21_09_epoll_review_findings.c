/* SPDX-License-Identifier: MIT */
/*
 * Issue 21, found in the review of its own change, on the epoll backend:
 *   1. an accept whose new fd grew the fd table (realloc) left the event
 *      loop holding a pointer into the old table (ASan: heap-use-after-free
 *      in retry_ring);
 *   2. weft_close did not cancel an op still queued for the workers (made
 *      into a job at the next tick), which then duplicated whatever file
 *      had the number by then: an ftruncate truncated the wrong file;
 *   3. a cancelled connect put the socket's flags back at the next tick,
 *      after the close that cancelled it, on the new socket that got its
 *      number (it lost O_NONBLOCK);
 *   4. a job queued behind one that was abandoned (its class full) waited
 *      for the abandoned one's thread instead of getting a new one.
 */
#include "../helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static weft_config epoll_cfg(void)
{
	weft_config cfg;

	weft_config_init(&cfg);
	cfg.backend = WEFT_BACKEND_EPOLL;
	return cfg;
}

/* ---- 1. the fd table grows under an accept -------------------------------------------- */

static int lfd, lport;

static void *connect_later(void *arg)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)lport),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	(void)arg;
	usleep(50000);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		usleep(200000);
	close(s);
	return NULL;
}

static int accept_twice(void *arg)
{
	int *got = arg;

	got[0] = weft_accept(lfd, NULL, NULL); /* a number above the table's 64 */
	weft_set_deadline(weft_now() + 100 * WEFT_MSEC);
	got[1] = weft_accept(lfd, NULL, NULL); /* the listener's entry, after the growth */
	if (got[0] >= 0)
		close(got[0]);
	return 0;
}

static void test_accept_that_grows_the_fd_table(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	weft_config cfg = epoll_cfg();
	int fillers[100];
	int got[2] = { 1, 1 };
	pthread_t t;

	(void)state;
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 8), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	lport = ntohs(sa.sin_port);
	for (int i = 0; i < 100; i++)
		fillers[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_int_equal(pthread_create(&t, NULL, connect_later, NULL), 0);
	assert_int_equal(t_run_cfg(&cfg, accept_twice, got, NULL), 0);
	pthread_join(t, NULL);
	assert_true(got[0] > 64);
	assert_int_equal(got[1], -ETIMEDOUT);
	for (int i = 0; i < 100; i++)
		close(fillers[i]);
	close(lfd);
}

/* ---- 2. a close cancels an op still queued for the workers ---------------------------- */

struct two_files {
	char a[64], b[64];
	int fd;
	int trunc_rc;
};

static int truncate_a(void *arg)
{
	struct two_files *f = arg;

	f->trunc_rc = weft_ftruncate(f->fd, 0);
	return 0;
}

static int close_then_open_b(void *arg)
{
	struct two_files *f = arg;

	weft_close(f->fd);
	return open(f->b, O_RDWR | O_CLOEXEC) == f->fd ? 0 : 1; /* B gets A's number */
}

static int truncate_vs_close(void *arg)
{
	weft_fiber *a, *b;
	int rc_b = -1;

	if (weft_spawn(NULL, truncate_a, arg, &a) < 0 ||
	    weft_spawn(NULL, close_then_open_b, arg, &b) < 0)
		return -ENOMEM;
	weft_join(a, NULL);
	weft_join(b, &rc_b);
	close(((struct two_files *)arg)->fd);
	return rc_b;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void test_close_cancels_an_op_queued_for_the_workers(void **state)
{
	struct two_files f;
	weft_config cfg = epoll_cfg();
	struct stat sa, sb;

	(void)state;
	snprintf(f.a, sizeof(f.a), "/tmp/weft-r21-a-%d", (int)getpid());
	snprintf(f.b, sizeof(f.b), "/tmp/weft-r21-b-%d", (int)getpid());
	write_file(f.a, "AAAAAAAA");
	write_file(f.b, "BBBBBBBB");
	f.fd = open(f.a, O_RDWR | O_CLOEXEC);
	f.trunc_rc = 1;
	assert_int_equal(t_run_cfg(&cfg, truncate_vs_close, &f, NULL), 0);
	assert_int_equal(f.trunc_rc, -ECANCELED);
	assert_int_equal(stat(f.a, &sa), 0);
	assert_int_equal(stat(f.b, &sb), 0);
	assert_int_equal(sa.st_size, 8);
	assert_int_equal(sb.st_size, 8); /* the new file with the old number is untouched */
	unlink(f.a);
	unlink(f.b);
}

/* ---- 3. a cancelled connect's flags never reach the fd's next owner ------------------- */

struct connect_close {
	struct sockaddr_in to;
	int s;
	int connect_rc;
	int same_number;
	int nonblock_after;
};

static int connect_pending(void *arg)
{
	struct connect_close *c = arg;

	c->connect_rc = weft_connect(c->s, (struct sockaddr *)&c->to, sizeof(c->to));
	return 0;
}

static int close_and_reuse(void *arg)
{
	struct connect_close *c = arg;
	int n;

	weft_close(c->s);
	n = weft_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c->same_number = n == c->s;
	weft_sleep(10 * WEFT_MSEC); /* a tick or more */
	c->nonblock_after = !!(fcntl(n, F_GETFL) & O_NONBLOCK);
	close(n);
	return 0;
}

static int connect_vs_close(void *arg)
{
	weft_fiber *a, *b;

	if (weft_spawn(NULL, connect_pending, arg, &a) < 0 ||
	    weft_spawn(NULL, close_and_reuse, arg, &b) < 0)
		return -ENOMEM;
	weft_join(a, NULL);
	weft_join(b, NULL);
	return 0;
}

static void test_cancelled_connect_leaves_the_next_socket_alone(void **state)
{
	struct connect_close c = { .to = { .sin_family = AF_INET,
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) } };
	socklen_t len = sizeof(c.to);
	weft_config cfg = epoll_cfg();
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int fill[4];

	(void)state;
	assert_int_equal(bind(l, (struct sockaddr *)&c.to, sizeof(c.to)), 0);
	assert_int_equal(listen(l, 0), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&c.to, &len), 0);
	for (int i = 0; i < 4; i++) { /* fill the accept queue: a new SYN waits */
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		(void)connect(fill[i], (struct sockaddr *)&c.to, sizeof(c.to));
	}
	usleep(50000);
	c.s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* blocking */
	assert_int_equal(t_run_cfg(&cfg, connect_vs_close, &c, NULL), 0);
	if (!c.same_number || c.connect_rc != -ECANCELED)
		skip(); /* the kernel connected it, or gave another number: nothing to see */
	assert_int_equal(c.nonblock_after, 1);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(l);
}

/* ---- 4. an abandoned job makes room for the next at once ------------------------------ */

struct abandon {
	char fifo[64];
	int64_t t0;
	int a_rc, b_rc;
	int64_t b_took;
};

static int open_fifo_bounded(void *arg)
{
	struct abandon *x = arg;

	weft_set_deadline(weft_now() + 50 * WEFT_MSEC);
	x->a_rc = weft_open(x->fifo, O_RDONLY | O_CLOEXEC, 0); /* no writer: held, abandoned */
	return 0;
}

static int open_plain(void *arg)
{
	struct abandon *x = arg;

	x->b_rc = weft_open("/dev/null", O_RDONLY | O_CLOEXEC, 0);
	x->b_took = weft_now() - x->t0;
	if (x->b_rc >= 0)
		weft_close(x->b_rc);
	return 0;
}

static int two_opens(void *arg)
{
	struct abandon *x = arg;
	weft_fiber *a, *b;

	x->t0 = weft_now();
	if (weft_spawn(NULL, open_fifo_bounded, x, &a) < 0 ||
	    weft_spawn(NULL, open_plain, x, &b) < 0)
		return -ENOMEM;
	weft_join(a, NULL);
	weft_join(b, NULL);
	return 0;
}

static void *release_fifo(void *arg)
{
	struct abandon *x = arg;
	int fd;

	usleep(1000000);
	fd = open(x->fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC); /* lets the worker go */
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void test_an_abandoned_job_makes_room_for_the_next(void **state)
{
	struct abandon x = { .a_rc = 1, .b_rc = -1 };
	weft_config cfg = epoll_cfg();
	pthread_t t;

	(void)state;
	snprintf(x.fifo, sizeof(x.fifo), "/tmp/weft-r21-fifo-%d", (int)getpid());
	unlink(x.fifo);
	assert_int_equal(mkfifo(x.fifo, 0600), 0);
	cfg.iowq_bounded = 1; /* one job of this class at a time */
	assert_int_equal(pthread_create(&t, NULL, release_fifo, &x), 0);
	assert_int_equal(t_run_cfg(&cfg, two_opens, &x, NULL), 0);
	pthread_join(t, NULL);
	unlink(x.fifo);
	assert_int_equal(x.a_rc, -ETIMEDOUT);
	assert_true(x.b_rc >= 0);
	assert_true(x.b_took < 500 * WEFT_MSEC); /* not the 1 s the abandoned open is held */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept_that_grows_the_fd_table),
		cmocka_unit_test(test_close_cancels_an_op_queued_for_the_workers),
		cmocka_unit_test(test_cancelled_connect_leaves_the_next_socket_alone),
		cmocka_unit_test(test_an_abandoned_job_makes_room_for_the_next),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
