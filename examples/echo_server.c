/* SPDX-License-Identifier: MIT */
/*
 * A TCP echo server: one fiber per connection, all of them in an independent
 * group (a client's reset ends its own fiber, no other), and a fiber that
 * waits for SIGINT/SIGTERM with weft_signal_wait and shuts down gracefully:
 * stop accepting, cancel every connection, wait for them (serve.h, shared
 * with http_server).
 *
 *   echo_server [--loops N] [--pin] [port] [host]   (port 7007 by default; 0 picks one)
 *
 * --loops N runs N loops in one process, each with a listener on the port.
 */
#include "serve.h"

static int conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[16384];
	ssize_t n;

	while ((n = weft_recv(fd, buf, sizeof(buf), 0)) > 0)
		if (weft_send_all(fd, buf, (size_t)n, 0) < 0)
			break;
	weft_close(fd);
	return 0; /* a connection's own end is never the group's failure */
}

int main(int argc, char **argv)
{
	struct fleet f = { .name = "echo_server", .port = 7007, .backlog = 0, .conn = conn };

	return serve_main(argc, argv, &f);
}
