/* SPDX-License-Identifier: MIT */
/*
 * peer_echo_epoll: an echo server in one thread with epoll, for bench/gather's
 * socket and mixed workloads where weft's examples/echo_server cannot run
 * (io_uring refused), so that the modes that need no io_uring still have a
 * server to talk to. Same interface as echo_server: it prints "listening on
 * port N" on stderr and ends on SIGINT or SIGTERM.
 *
 *   peer_echo_epoll [port] [host]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

static void echo(int ep, int fd)
{
	char buf[16384];

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return; /* edge-triggered: drained until EAGAIN */
		if (n <= 0 || send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n) {
			/* A short send of a small echo means the peer stopped reading. */
			epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
			close(fd);
			return;
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	long port = argc > 1 ? strtol(argv[1], NULL, 10) : 7007;
	const char *host = argc > 2 ? argv[2] : "127.0.0.1";
	int one = 1;
	sigset_t set;

	if (argc > 3 || port < 0 || port > 65535 || inet_pton(AF_INET, host, &a.sin_addr) != 1) {
		fprintf(stderr, "usage: peer_echo_epoll [port] [IPv4 address]\n");
		return 2;
	}
	a.sin_port = htons((uint16_t)port);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &len) < 0) {
		fprintf(stderr, "peer_echo_epoll: %s:%ld: %s\n", host, port, strerror(errno));
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);

	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd };

	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	ev.data.fd = sfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	fprintf(stderr, "peer_echo_epoll: listening on port %u\n", ntohs(a.sin_port));
	for (;;) {
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == sfd)
				return 0;
			if (fd != lfd) {
				echo(ep, fd);
				continue;
			}
			for (int c;
			     (c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
				struct epoll_event cev = { .events = EPOLLIN | EPOLLET,
							   .data.fd = c };

				setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
				echo(ep, c); /* data may have come with the handshake */
			}
		}
	}
}
