/* SPDX-License-Identifier: MIT */
/*
 * Issue 21, defect 3: on the epoll backend a fiber parked in weft_recv on
 * fd N stayed on N's ring after a plain close(N); when weft_accept then
 * returned N for a new connection, the stale fiber received the new
 * connection's bytes and the new reader starved until its deadline.
 *
 * Checked: the stale reader fails -EBADF as soon as weft sees N born again
 * (the accept), and the new connection's reader gets its bytes.
 */
#include "../helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

struct crosstalk {
	int stale_fd;
	ssize_t stale_rc;
	ssize_t fresh_rc;
	char fresh[8];
	int reused; /* the accept got the stale number back */
};

static int stale_reader(void *arg)
{
	struct crosstalk *c = arg;
	char buf[8];

	weft_set_deadline(weft_now() + 3 * WEFT_SEC);
	c->stale_rc = weft_recv(c->stale_fd, buf, sizeof(buf), 0);
	return 0;
}

static int fresh_reader(void *arg)
{
	struct crosstalk *c = arg;
	int fd = c->stale_fd;

	weft_set_deadline(weft_now() + 3 * WEFT_SEC);
	c->fresh_rc = weft_recv(fd, c->fresh, sizeof(c->fresh), 0);
	return 0;
}

static int crosstalk_main(void *arg)
{
	struct crosstalk *c = arg;
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int sv[2];
	weft_fiber *a, *b;

	int lfd = weft_tcp_listen("127.0.0.1", 0, 16, 0);

	if (lfd < 0 || getsockname(lfd, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	c->stale_fd = sv[0];
	if (weft_spawn(NULL, stale_reader, c, &a) < 0)
		return -1;
	weft_yield(); /* it parks on sv[0] */

	int cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	close(sv[0]); /* behind weft's back: its number is free again */
	if (cl < 0 || connect(cl, (struct sockaddr *)&sa, len) < 0)
		return -1;

	int fd = weft_accept(lfd, NULL, NULL);

	if (fd < 0)
		return fd;
	c->reused = fd == c->stale_fd;
	c->stale_fd = fd;
	if (weft_spawn(NULL, fresh_reader, c, &b) < 0)
		return -1;
	weft_yield();
	if (write(cl, "hello", 5) != 5)
		return -1;
	weft_join(b, NULL);
	weft_join(a, NULL);
	close(fd);
	close(cl);
	close(sv[1]);
	close(lfd);
	return 0;
}

static void test_stale_reader_fails_ebadf_and_the_new_one_gets_the_bytes(void **state)
{
	struct crosstalk c = { 0 };
	weft_config cfg;

	(void)state;
	weft_config_init(&cfg);
	cfg.backend = WEFT_BACKEND_EPOLL;
	assert_int_equal(t_run_cfg(&cfg, crosstalk_main, &c, NULL), 0);
	if (!c.reused)
		skip(); /* the kernel gave the accept another number: nothing to check */
	assert_int_equal(c.stale_rc, -EBADF);
	assert_int_equal(c.fresh_rc, 5);
	assert_memory_equal(c.fresh, "hello", 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stale_reader_fails_ebadf_and_the_new_one_gets_the_bytes),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
