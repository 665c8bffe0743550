/* SPDX-License-Identifier: MIT */
/*
 * A minimal HTTP/1.1 server: GET / answers "hello, world", with keep-alive
 * and pipelining, so wrk can load it. A fiber per connection, a signalfd
 * fiber for SIGINT/SIGTERM (serve.h, shared with echo_server).
 *
 *   http_server [--loops N] [--pin] [port] [host]     (port 8080 by default)
 *   wrk -t2 -c100 -d10s http://127.0.0.1:8080/
 *
 * --loops N runs N loops in one process (0: one per CPU), each with a
 * listener of its own on the port (SO_REUSEPORT).
 */
#include "serve.h"

#include <strings.h>

#define REQ_MAX 8192

static const char ok_body[] = "hello, world\n";

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

/*
 * Close a connection whose request bytes may still be unread (an answer
 * that closes, a request too large): closing with unread data makes the
 * kernel reset the connection, and the reset can overtake the answer on its
 * way to the client. So shut our side down first (the answer, then FIN, go
 * out in order) and read what the client still sends, for at most a second
 * and 1 MiB, before the close (what nginx calls a lingering close).
 */
static void linger_close(int fd, char *buf, size_t cap)
{
	int64_t mine = weft_now() + WEFT_SEC;
	int64_t outer = weft_set_deadline(mine);
	size_t drained = 0;
	ssize_t n;

	if (outer != WEFT_FOREVER && outer < mine)
		weft_set_deadline(outer); /* the caller's deadline is sooner: keep it */
	if (weft_shutdown(fd, SHUT_WR) == 0)
		while (drained < (1u << 20) && (n = weft_recv(fd, buf, cap, 0)) > 0)
			drained += (size_t)n;
	weft_set_deadline(outer);
	weft_close(fd);
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

		if (n <= 0) {
			weft_close(fd); /* the peer is gone, or it failed: nothing to linger for */
			return 0;
		}
		have += (size_t)n;
	}
	linger_close(fd, buf, sizeof(buf));
	return 0;
}

int main(int argc, char **argv)
{
	struct fleet f = { .name = "http_server", .port = 8080, .backlog = 4096, .conn = conn };

	return serve_main(argc, argv, &f);
}
