/* SPDX-License-Identifier: MIT */
/*
 * Issue 11, defect 10: a bad fd number allocated memory in proportion to
 * its value. weft_read(1 << 26, ...) returned -EBADF and left RSS 512 MiB
 * higher; weft_recv(INT_MAX, ...), weft_close(INT_MAX) and
 * weft_socket(INT_MAX, ...) (whose domain was counted as an fd) each added
 * 8 GiB, kept until the loop was destroyed. Per-fd state is now bounded by
 * the fds that really have an operation in flight.
 */
#include "../helpers.h"

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>

struct ctx {
	ssize_t read_rc, recv_rc;
	int close_rc, socket_rc;
	size_t before, after;
};

static int bad_fds(void *arg)
{
	struct ctx *c = arg;
	char buf[16];

	c->before = t_rss_bytes();
	c->read_rc = weft_read(1 << 26, buf, sizeof(buf), 0);
	c->recv_rc = weft_recv(INT_MAX, buf, sizeof(buf), 0);
	c->close_rc = weft_close(INT_MAX);
	c->socket_rc = weft_socket(INT_MAX, SOCK_STREAM, 0);
	c->after = t_rss_bytes();
	return 0;
}

static void test_bad_fd_numbers_cost_no_memory(void **state)
{
	struct ctx c = { 0 };

	(void)state;
	assert_int_equal(t_run(bad_fds, &c), 0);
	assert_int_equal(c.read_rc, -EBADF);
	assert_int_equal(c.recv_rc, -EBADF);
	assert_int_equal(c.close_rc, -EBADF);
	assert_true(c.socket_rc == -EAFNOSUPPORT || c.socket_rc == -EINVAL);
	print_message("RSS before %zu KiB, after %zu KiB\n", c.before / 1024, c.after / 1024);
	assert_true(c.after < c.before + 4 * 1024 * 1024);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_fd_numbers_cost_no_memory),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
