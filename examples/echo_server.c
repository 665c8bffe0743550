/* SPDX-License-Identifier: MIT */
/*
 * A TCP echo server: one fiber per connection, all of them in a task group,
 * and a fiber that reads SIGINT/SIGTERM from a signalfd and shuts down
 * gracefully: stop accepting, cancel every connection, wait for them.
 *
 *   echo_server [port] [host]     (port 7007 by default; 0 picks one)
 */
#define _GNU_SOURCE
#include <weft.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct server {
	const char *host;
	int port;
	int lfd;
	int sfd;
	weft_group *conns;
	weft_fiber *acceptor;
	uint64_t served;
};

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

static int acceptor(void *arg)
{
	struct server *s = arg;

	for (;;) {
		int fd = weft_accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd == -ECANCELED)
			return 0;
		if (fd < 0) {
			if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
				fprintf(stderr, "echo_server: accept: %s; retrying\n",
					strerror(-fd));
				weft_sleep(100 * WEFT_MSEC);
				continue;
			}
			fprintf(stderr, "echo_server: accept: %s\n", strerror(-fd));
			return fd;
		}
		if (weft_group_spawn(s->conns, conn, (void *)(intptr_t)fd) < 0) {
			close(fd);
			continue;
		}
		s->served++;
	}
}

static int signals(void *arg)
{
	struct server *s = arg;
	struct signalfd_siginfo si;
	ssize_t n = weft_read(s->sfd, &si, sizeof(si), -1);

	if (n == (ssize_t)sizeof(si))
		fprintf(stderr, "echo_server: signal %u: shutting down\n", si.ssi_signo);
	weft_cancel(s->acceptor);
	weft_group_cancel(s->conns);
	return 0;
}

static int amain(void *arg)
{
	struct server *s = arg;
	weft_fiber *sig;
	int rc;

	s->lfd = weft_tcp_listen(s->host, s->port, 0, 0);
	if (s->lfd < 0) {
		fprintf(stderr, "echo_server: listen on port %d: %s\n", s->port, strerror(-s->lfd));
		return s->lfd;
	}

	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	getsockname(s->lfd, (struct sockaddr *)&ss, &len);
	fprintf(stderr, "echo_server: listening on port %d\n",
		ntohs(((struct sockaddr_in *)&ss)->sin_port));
	if ((rc = weft_group_create(&s->conns)) < 0 ||
	    (rc = weft_spawn(NULL, acceptor, s, &s->acceptor)) < 0 ||
	    (rc = weft_spawn(NULL, signals, s, &sig)) < 0)
		return rc;

	int arc;

	weft_join(s->acceptor, &arc);
	weft_cancel(sig); /* if accept failed on its own, stop waiting for a signal */
	weft_join(sig, NULL);
	weft_group_wait(s->conns);
	weft_group_destroy(s->conns);
	weft_close(s->lfd);
	fprintf(stderr, "echo_server: served %llu connections\n", (unsigned long long)s->served);
	return arc;
}

int main(int argc, char **argv)
{
	struct server s = { .port = 7007, .host = NULL };
	sigset_t set;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: echo_server [port] [host]\n(port 7007 by default; 0 picks a free "
		       "one and prints it)\n");
		return 0;
	}
	if (argc > 1) {
		char *end;
		long p = strtol(argv[1], &end, 10);

		if (*end || p < 0 || p > 65535) {
			fprintf(stderr, "usage: echo_server [port] [host]\n");
			return 2;
		}
		s.port = (int)p;
	}
	if (argc > 2)
		s.host = argv[2];

	/* Signals arrive through the signalfd, in a fiber, not as handlers. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* An ignored signal (SIGINT under '&' in a script) never reaches a signalfd. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigprocmask(SIG_BLOCK, &set, NULL);
	s.sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (s.sfd < 0) {
		perror("echo_server: signalfd");
		return 1;
	}

	int rc = weft_main(amain, &s);

	close(s.sfd);
	if (rc < 0) {
		/* A set-up error (any errno) gets its fix; the server's own, a plain sentence. */
		fprintf(stderr, "echo_server: %s\n", weft_loop_explain(rc));
		return 1;
	}
	return 0;
}
