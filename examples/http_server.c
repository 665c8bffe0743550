/* SPDX-License-Identifier: MIT */
/*
 * A minimal HTTP/1.1 server: GET / answers "hello, world", with keep-alive
 * and pipelining, so wrk can load it. A fiber per connection, a signalfd
 * fiber for SIGINT/SIGTERM, as in echo_server.c.
 *
 *   http_server [port] [host]     (port 8080 by default)
 *   wrk -t2 -c100 -d10s http://127.0.0.1:8080/
 */
#define _GNU_SOURCE
#include <weft.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define REQ_MAX 8192

static const char ok_body[] = "hello, world\n";

struct server {
	const char *host;
	int port;
	int lfd;
	int sfd;
	weft_group *conns;
	weft_fiber *acceptor;
};

/* Whether the request's headers ask to close (or, for HTTP/1.0, do not ask to keep alive). */
static int wants_close(const char *req, size_t len, int http10)
{
	for (const char *p = req; p < req + len;) {
		const char *eol = memchr(p, '\n', (size_t)(req + len - p));

		if (!eol)
			break;
		if (!strncasecmp(p, "Connection:", 11)) {
			const char *v = p + 11;

			while (*v == ' ')
				v++;
			if (!strncasecmp(v, "close", 5))
				return 1;
			if (!strncasecmp(v, "keep-alive", 10))
				return 0;
		}
		p = eol + 1;
	}
	return http10;
}

/* Answer one request of @len bytes (headers only). Return: 1 to keep going, 0 to close. */
static int answer(int fd, const char *req, size_t len)
{
	char out[256];
	int http10 = len > 16 && memmem(req, len < 256 ? len : 256, "HTTP/1.0", 8) != NULL;
	int close_after = wants_close(req, len, http10);
	const char *status = "200 OK";
	const char *body = ok_body;

	if (strncmp(req, "GET ", 4) != 0) {
		status = "405 Method Not Allowed";
		body = "GET only\n";
		close_after = 1;
	} else if (strncmp(req + 4, "/ ", 2) != 0) {
		status = "404 Not Found";
		body = "not found\n";
	}

	int n = snprintf(out, sizeof(out),
			 "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
			 "Connection: %s\r\n\r\n%s",
			 status, strlen(body), close_after ? "close" : "keep-alive", body);

	if (weft_send_all(fd, out, (size_t)n, 0) < 0)
		return 0;
	return !close_after;
}

static int conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[REQ_MAX];
	size_t have = 0;

	for (;;) {
		char *end = have ? memmem(buf, have, "\r\n\r\n", 4) : NULL;

		if (end) { /* a whole request: answer it, keep what follows (pipelining) */
			size_t len = (size_t)(end + 4 - buf);

			if (!answer(fd, buf, len))
				break;
			memmove(buf, buf + len, have - len);
			have -= len;
			continue;
		}
		if (have == sizeof(buf)) {
			static const char big[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
						  "Content-Length: 0\r\nConnection: close\r\n\r\n";

			weft_send_all(fd, big, sizeof(big) - 1, 0);
			break;
		}

		ssize_t n = weft_recv(fd, buf + have, sizeof(buf) - have, 0);

		if (n <= 0)
			break;
		have += (size_t)n;
	}
	weft_close(fd);
	return 0;
}

static int acceptor(void *arg)
{
	struct server *s = arg;

	for (;;) {
		int fd = weft_accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd == -ECANCELED)
			return 0;
		if (fd < 0) {
			fprintf(stderr, "http_server: accept: %s\n", strerror(-fd));
			if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
				weft_sleep(100 * WEFT_MSEC);
				continue;
			}
			return fd;
		}
		if (weft_group_spawn(s->conns, conn, (void *)(intptr_t)fd) < 0)
			close(fd);
	}
}

static int signals(void *arg)
{
	struct server *s = arg;
	struct signalfd_siginfo si;

	if (weft_read(s->sfd, &si, sizeof(si), -1) == (ssize_t)sizeof(si))
		fprintf(stderr, "http_server: signal %u: shutting down\n", si.ssi_signo);
	weft_cancel(s->acceptor);
	weft_group_cancel(s->conns);
	return 0;
}

static int amain(void *arg)
{
	struct server *s = arg;
	weft_fiber *sig;
	int rc;

	s->lfd = weft_tcp_listen(s->host, s->port, 4096, 0);
	if (s->lfd < 0) {
		fprintf(stderr, "http_server: listen on port %d: %s\n", s->port, strerror(-s->lfd));
		return s->lfd;
	}

	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	getsockname(s->lfd, (struct sockaddr *)&ss, &len);
	fprintf(stderr, "http_server: listening on port %d\n",
		ntohs(((struct sockaddr_in *)&ss)->sin_port));
	if ((rc = weft_group_create(&s->conns)) < 0 ||
	    (rc = weft_spawn(NULL, acceptor, s, &s->acceptor)) < 0 ||
	    (rc = weft_spawn(NULL, signals, s, &sig)) < 0)
		return rc;

	int arc;

	weft_join(s->acceptor, &arc);
	weft_cancel(sig);
	weft_join(sig, NULL);
	weft_group_wait(s->conns);
	weft_group_destroy(s->conns);
	weft_close(s->lfd);
	return arc;
}

int main(int argc, char **argv)
{
	struct server s = { .port = 8080 };
	sigset_t set;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: http_server [port] [host]\n(port 8080 by default; 0 picks a free "
		       "one and prints it)\n");
		return 0;
	}
	if (argc > 1) {
		char *end;
		long p = strtol(argv[1], &end, 10);

		if (*end || p < 0 || p > 65535) {
			fprintf(stderr, "usage: http_server [port] [host]\n");
			return 2;
		}
		s.port = (int)p;
	}
	if (argc > 2)
		s.host = argv[2];
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* An ignored signal (SIGINT under '&' in a script) never reaches a signalfd. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigprocmask(SIG_BLOCK, &set, NULL);
	s.sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (s.sfd < 0) {
		perror("http_server: signalfd");
		return 1;
	}

	int rc = weft_main(amain, &s);

	close(s.sfd);
	if (rc < 0) {
		/* A set-up error (any errno) gets its fix; the server's own, a plain sentence. */
		fprintf(stderr, "http_server: %s\n", weft_loop_explain(rc));
		return 1;
	}
	return 0;
}
