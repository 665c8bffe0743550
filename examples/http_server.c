/* SPDX-License-Identifier: MIT */
/*
 * A minimal HTTP/1.1 server: GET / answers "hello, world", with keep-alive
 * and pipelining, so wrk can load it. A fiber per connection in an
 * independent group, a fiber waiting for SIGINT/SIGTERM with
 * weft_signal_wait (serve.h, shared with echo_server).
 *
 *   http_server [--loops N] [--pin] [port] [host]     (port 8080 by default)
 *   wrk -t2 -c100 -d10s http://127.0.0.1:8080/
 *
 * --loops N runs N loops in one process (0: one per CPU), each with a
 * listener of its own on the port (SO_REUSEPORT).
 *
 * --tls CERT KEY (where weft was built with libweft-tls) serves HTTPS with
 * the same handler: CERT is a PEM certificate chain, KEY its private key.
 *   http_server --tls cert.pem key.pem 8443
 *   openssl s_client -connect 127.0.0.1:8443 -quiet
 */
#include "serve.h"

#include <strings.h>

#ifdef HTTP_SERVER_TLS
#include <weft_tls.h>

#include <openssl/err.h>

static SSL_CTX *tls_ctx; /* set by --tls; shared by every loop (SSL_new is thread-safe) */
#endif

/* One connection's transport: the socket, or TLS over it. */
struct io {
	int fd;
#ifdef HTTP_SERVER_TLS
	weft_tls *tls;
#endif
};

static ssize_t io_recv(struct io *io, void *buf, size_t len)
{
#ifdef HTTP_SERVER_TLS
	if (io->tls)
		return weft_tls_read(io->tls, buf, len);
#endif
	return weft_recv(io->fd, buf, len, 0);
}

static ssize_t io_send_all(struct io *io, const void *buf, size_t len)
{
#ifdef HTTP_SERVER_TLS
	if (io->tls)
		return weft_tls_write(io->tls, buf, len);
#endif
	return weft_send_all(io->fd, buf, len, 0);
}

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
static int answer(struct io *io, const char *req, size_t len)
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

	if (io_send_all(io, out, (size_t)n) < 0)
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
static void linger_close(struct io *io, char *buf, size_t cap)
{
	int fd = io->fd;
	int64_t mine = weft_now() + WEFT_SEC;
	int64_t outer = weft_set_deadline(mine);
	size_t drained = 0;
	ssize_t n;

	if (outer != WEFT_FOREVER && outer < mine)
		weft_set_deadline(outer); /* the caller's deadline is sooner: keep it */
#ifdef HTTP_SERVER_TLS
	if (io->tls) { /* close_notify first, then the same lingering close of the socket */
		weft_tls_shutdown(io->tls);
		weft_tls_free(io->tls);
		io->tls = NULL;
	}
#endif
	if (weft_shutdown(fd, SHUT_WR) == 0)
		while (drained < (1u << 20) && (n = weft_recv(fd, buf, cap, 0)) > 0)
			drained += (size_t)n;
	weft_set_deadline(outer);
	weft_close(fd);
}

/* Serve requests on @io until one closes, the peer goes, or a call fails. */
static void serve_requests(struct io *io)
{
	char buf[REQ_MAX];
	size_t have = 0;

	for (;;) {
		char *end = have ? memmem(buf, have, "\r\n\r\n", 4) : NULL;

		if (end) { /* a whole request: answer it, keep what follows (pipelining) */
			size_t len = (size_t)(end + 4 - buf);

			if (!answer(io, buf, len))
				break;
			memmove(buf, buf + len, have - len);
			have -= len;
			continue;
		}
		if (have == sizeof(buf)) {
			static const char big[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
						  "Content-Length: 0\r\nConnection: close\r\n\r\n";

			io_send_all(io, big, sizeof(big) - 1);
			break;
		}

		ssize_t n = io_recv(io, buf + have, sizeof(buf) - have);

		if (n <= 0) {
			/* The peer is gone, or it failed: no close_notify, nothing to linger for.
			 */
#ifdef HTTP_SERVER_TLS
			weft_tls_free(io->tls);
#endif
			weft_close(io->fd);
			return;
		}
		have += (size_t)n;
	}
	linger_close(io, buf, sizeof(buf));
}

static int conn(void *arg)
{
	struct io io = { .fd = (int)(intptr_t)arg };

#ifdef HTTP_SERVER_TLS
	if (tls_ctx) {
		int64_t outer = weft_set_timeout(10 * WEFT_SEC); /* a client that never finishes */
		int rc = weft_tls_server(&io.tls, io.fd, tls_ctx);

		weft_set_deadline(outer);
		if (rc < 0) {
			weft_close(io.fd);
			return 0;
		}
	}
#endif
	serve_requests(&io);
	return 0;
}

/*
 * Take "--tls CERT KEY" out of argv (serve_main parses the rest) and load
 * them. Return: 0, or 1 after saying why on stderr.
 */
static int take_tls_args(int *argc, char **argv)
{
	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--tls") != 0)
			continue;
		if (i + 2 >= *argc) {
			fprintf(stderr, "http_server: --tls needs CERT and KEY (PEM files)\n");
			return 1;
		}
#ifdef HTTP_SERVER_TLS
		if (tls_ctx) {
			fprintf(stderr, "http_server: --tls given twice\n");
			return 1;
		}
		tls_ctx = SSL_CTX_new(TLS_server_method());
		if (!tls_ctx || SSL_CTX_use_certificate_chain_file(tls_ctx, argv[i + 1]) != 1 ||
		    SSL_CTX_use_PrivateKey_file(tls_ctx, argv[i + 2], SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(tls_ctx) != 1) {
			fprintf(stderr, "http_server: --tls %s %s: %s\n", argv[i + 1], argv[i + 2],
				ERR_reason_error_string(ERR_peek_last_error()));
			return 1;
		}
#else
		fprintf(stderr, "http_server: --tls: this build has no TLS (weft was built "
				"without OpenSSL)\n");
		return 1;
#endif
		memmove(&argv[i], &argv[i + 3], (size_t)(*argc - i - 3 + 1) * sizeof(*argv));
		*argc -= 3;
		i--;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct fleet f = { .name = "http_server",
			   .port = 8080,
			   .backlog = 4096,
			   .conn = conn,
			   .options = " [--tls CERT KEY]" };

	if (take_tls_args(&argc, argv))
		return 1;

	int rc = serve_main(argc, argv, &f);

#ifdef HTTP_SERVER_TLS
	SSL_CTX_free(tls_ctx);
#endif
	return rc;
}
