/* SPDX-License-Identifier: MIT */
/*
 * libweft-tls: OpenSSL 3 over weft's fiber calls. A BIO of our own sends and
 * receives with weft_send / weft_recv, so OpenSSL's "blocking" I/O parks the
 * fiber; the BIO reports a deadline or a cancel as a retry (the SSL object
 * stays consistent) and every other socket error as a failure, and keeps
 * the -errno so that the caller sees the socket's own error.
 *
 * Writes are gathered in a buffer of the object and sent when OpenSSL
 * flushes, before any receive, and at the end of every call: a handshake
 * flight of five records is one send, not five.
 */
#include <weft_tls.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define TLS_WBUF 16384 /* a full flight with a certificate chain, or one record */
#define TLS_ERRLEN 256

enum tls_op { OP_HANDSHAKE, OP_READ, OP_WRITE, OP_SHUTDOWN };

struct weft_tls {
	SSL *ssl;	      /* owns the BIO (SSL_set_bio) */
	int fd;		      /* borrowed: never closed here */
	int io_err;	      /* -errno of the BIO's failure in the current call; 0 none */
	int eof;	      /* the socket's recv returned 0 */
	int fatal;	      /* sticky error for every call; 0 none */
	int wfatal;	      /* sticky error for writes and shutdown; 0 none */
	int busy;	      /* a call is in progress (maybe parked) */
	int shut;	      /* close_notify has been sent */
	size_t wlen;	      /* bytes gathered in wbuf */
	size_t woff;	      /* of which already sent */
	char err[TLS_ERRLEN]; /* text of the last failure, "" none */
	unsigned char wbuf[TLS_WBUF];
};

/* The text of the last failed weft_tls_server / weft_tls_client on this thread. */
static _Thread_local char last_err[TLS_ERRLEN];

static BIO_METHOD *bio_meth;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/*
 * OpenSSL's error queue is per thread, so the fibers of a loop share it. A
 * fiber that parks inside an SSL_* call keeps what is queued for it aside
 * (the codes, at most a few) and puts it back when it resumes: what the
 * other fibers' calls did to the queue meanwhile (each clears it at its
 * start and end) is neither lost to it nor mixed into it.
 */
#define TLS_STASH 8

struct err_stash {
	int n;
	unsigned long code[TLS_STASH];
};

static void err_stash(struct err_stash *st)
{
	unsigned long e;

	st->n = 0;
	while (st->n < TLS_STASH && (e = ERR_get_error()) != 0)
		st->code[st->n++] = e;
	ERR_clear_error();
}

static void err_unstash(const struct err_stash *st)
{
	ERR_clear_error();
	for (int i = 0; i < st->n; i++)
		ERR_raise(ERR_GET_LIB(st->code[i]), ERR_GET_REASON(st->code[i]));
}

static ssize_t park_send(struct weft_tls *t, const void *buf, size_t len)
{
	struct err_stash st;

	err_stash(&st);

	ssize_t n = weft_send(t->fd, buf, len, 0);

	err_unstash(&st);
	return n;
}

static ssize_t park_recv(struct weft_tls *t, void *buf, size_t len)
{
	struct err_stash st;

	err_stash(&st);

	ssize_t n = weft_recv(t->fd, buf, len, 0);

	err_unstash(&st);
	return n;
}

/*
 * Send what is gathered in wbuf. Progress is kept in woff, so a flush cut
 * short by a deadline resumes exactly where it stopped on the next call.
 */
static int tls_flush(struct weft_tls *t)
{
	while (t->woff < t->wlen) {
		ssize_t n = park_send(t, t->wbuf + t->woff, t->wlen - t->woff);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EPIPE;
		t->woff += (size_t)n;
	}
	t->wlen = 0;
	t->woff = 0;
	return 0;
}

/*
 * Record a failure of the BIO. A deadline or a cancel is a retry for
 * OpenSSL (SSL_ERROR_WANT_*, the record layer keeps its state, so a later
 * read goes on); anything else is a hard failure (SSL_ERROR_SYSCALL).
 */
static int bio_fail(BIO *b, struct weft_tls *t, int rc, int writing)
{
	t->io_err = rc;
	if (rc == -ETIMEDOUT || rc == -ECANCELED || rc == -EAGAIN || rc == -EINTR) {
		if (writing)
			BIO_set_retry_write(b);
		else
			BIO_set_retry_read(b);
	}
	return 0;
}

static int bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
	struct weft_tls *t = BIO_get_data(b);
	int rc;

	BIO_clear_retry_flags(b);
	if (t->wlen + len > sizeof(t->wbuf)) {
		rc = tls_flush(t);
		if (rc < 0)
			return bio_fail(b, t, rc, 1);
	}
	if (len >= sizeof(t->wbuf)) {
		/* A big record goes straight out; OpenSSL calls again for the rest of it. */
		ssize_t n = park_send(t, data, len);

		if (n <= 0)
			return bio_fail(b, t, n < 0 ? (int)n : -EPIPE, 1);
		*written = (size_t)n;
		return 1;
	}
	memcpy(t->wbuf + t->wlen, data, len);
	t->wlen += len;
	*written = len;
	return 1;
}

static int bio_read(BIO *b, char *data, size_t len, size_t *readbytes)
{
	struct weft_tls *t = BIO_get_data(b);
	int rc;

	BIO_clear_retry_flags(b);
	/* What OpenSSL wrote must reach the peer before we wait for its answer. */
	rc = tls_flush(t);
	if (rc < 0)
		return bio_fail(b, t, rc, 1);

	ssize_t n = park_recv(t, data, len);

	if (n > 0) {
		*readbytes = (size_t)n;
		return 1;
	}
	if (n == 0) {
		t->eof = 1; /* OpenSSL asks BIO_CTRL_EOF next */
		return 0;
	}
	return bio_fail(b, t, (int)n, 0);
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct weft_tls *t = BIO_get_data(b);
	int rc;

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		BIO_clear_retry_flags(b);
		rc = tls_flush(t);
		if (rc < 0)
			return bio_fail(b, t, rc, 1);
		return 1;
	case BIO_CTRL_EOF:
		return t->eof;
	case BIO_CTRL_WPENDING:
		return (long)(t->wlen - t->woff);
	default:
		return 0; /* PUSH, POP, PENDING, kTLS queries...: nothing to do or offer */
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void bio_meth_make(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weft");

	if (!m)
		return;
	if (!BIO_meth_set_write_ex(m, bio_write) || !BIO_meth_set_read_ex(m, bio_read) ||
	    !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
		BIO_meth_free(m);
		return;
	}
	bio_meth = m;
}

/* At unload, so that leak checkers see nothing left of ours. */
__attribute__((destructor)) static void bio_meth_drop(void)
{
	BIO_meth_free(bio_meth);
	bio_meth = NULL;
}

/* The system's text for a socket error, thread-safely (GNU strerror_r). */
static void set_errno_text(char *dst, int rc)
{
	char tmp[128];

	snprintf(dst, TLS_ERRLEN, "socket: %s", strerror_r(-rc, tmp, sizeof(tmp)));
}

/* Whether OpenSSL's queue says the peer's certificate failed verification. */
static int verify_failed(void)
{
	unsigned long first = ERR_peek_error();
	unsigned long last = ERR_peek_last_error();

	return (ERR_GET_LIB(first) == ERR_LIB_SSL &&
		ERR_GET_REASON(first) == SSL_R_CERTIFICATE_VERIFY_FAILED) ||
	       (ERR_GET_LIB(last) == ERR_LIB_SSL &&
		ERR_GET_REASON(last) == SSL_R_CERTIFICATE_VERIFY_FAILED);
}

/*
 * OpenSSL's text for a TLS failure: the last error queued (the SSL routines'
 * own reason, where the first is often a detail below it), or for a failed
 * verification the verifier's reason ("hostname mismatch").
 */
static void set_ssl_text(struct weft_tls *t, int rc, const char *fallback)
{
	unsigned long e = ERR_peek_last_error();

	if (rc == -EKEYREJECTED) {
		long v = SSL_get_verify_result(t->ssl);

		snprintf(t->err, sizeof(t->err), "certificate verify failed: %s",
			 X509_verify_cert_error_string(v));
		return;
	}
	if (!e) {
		snprintf(t->err, sizeof(t->err), "%s", fallback);
		return;
	}
	ERR_error_string_n(e, t->err, sizeof(t->err));
}

/*
 * Turn a failed SSL_* call into -errno and keep its text. The BIO's error
 * comes first: when the socket failed (or timed out, or the fiber was
 * cancelled), that is the cause, whatever OpenSSL made of it.
 */
static int tls_failure(struct weft_tls *t, int ret, enum tls_op op)
{
	int e = SSL_get_error(t->ssl, ret);
	int rc;

	if (t->io_err) {
		set_errno_text(t->err, t->io_err);
		return t->io_err;
	}
	if (e == SSL_ERROR_ZERO_RETURN && op == OP_READ)
		return 0;
	if (e == SSL_ERROR_SSL) {
		rc = verify_failed() ? -EKEYREJECTED : -EPROTO;
		set_ssl_text(t, rc, "TLS failure");
		return rc;
	}
	if (t->eof) {
		snprintf(t->err, sizeof(t->err), "the peer closed the connection");
		return -ECONNRESET;
	}
	rc = -EPROTO;
	set_ssl_text(t, rc, "TLS failure without a reason from OpenSSL");
	return rc;
}

/* Run one SSL_* call. Return: bytes (read, write), 0 (handshake, shutdown), or -errno. */
static ssize_t tls_call(struct weft_tls *t, enum tls_op op, void *buf, size_t len)
{
	size_t n = 0;
	int ret = 0;

	ERR_clear_error();
	t->io_err = 0;
	switch (op) {
	case OP_HANDSHAKE:
		ret = SSL_do_handshake(t->ssl);
		break;
	case OP_READ:
		ret = SSL_read_ex(t->ssl, buf, len, &n);
		break;
	case OP_WRITE:
		ret = SSL_write_ex(t->ssl, buf, len, &n);
		break;
	case OP_SHUTDOWN:
		ret = SSL_shutdown(t->ssl) >= 0; /* 0: sent, the peer's not seen yet */
		break;
	}

	ssize_t rc = ret > 0 ? (ssize_t)n : tls_failure(t, ret, op);

	if (ret > 0) {
		int frc = tls_flush(t);

		if (frc < 0) {
			set_errno_text(t->err, frc);
			/* Bytes read are never lost: the failure shows at the next call. */
			if (op == OP_READ && n > 0) {
				if (frc != -ETIMEDOUT && frc != -ECANCELED)
					t->wfatal = frc;
			} else {
				rc = frc;
			}
		}
	}
	ERR_clear_error();
	return rc;
}

/* Checks shared by read, write and shutdown. */
static int tls_enter(struct weft_tls *t, int writing)
{
	if (!t)
		return -EINVAL;
	if (!weft_self())
		return -EPERM;
	if (t->busy)
		return -EBUSY;
	if (t->fatal)
		return t->fatal;
	if (writing && t->wfatal)
		return t->wfatal;
	t->busy = 1;
	return 0;
}

static int tls_new(struct weft_tls **ret, int fd, SSL_CTX *ctx)
{
	struct weft_tls *t;
	BIO *bio;

	pthread_once(&bio_once, bio_meth_make);
	if (!bio_meth)
		return -ENOMEM;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fd = fd;
	t->ssl = SSL_new(ctx);
	if (!t->ssl)
		goto out_free;
	bio = BIO_new(bio_meth);
	if (!bio)
		goto out_free_ssl;
	BIO_set_data(bio, t);
	SSL_set_bio(t->ssl, bio, bio); /* one reference, taken by the SSL object */
	/* Read what the socket holds in one recv, not a header and then a body. */
	SSL_set_read_ahead(t->ssl, 1);
	/* A bare EOF reads as 0, as the header says (no truncation check). */
	SSL_set_options(t->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	*ret = t;
	return 0;

out_free_ssl:
	SSL_free(t->ssl);
out_free:
	free(t);
	ERR_clear_error();
	return -ENOMEM;
}

/* SNI and the name check for a client: a name gets both, an IP address its own check only. */
static int tls_set_host(struct weft_tls *t, const char *host)
{
	unsigned char addr[16];
	int ok;

	if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) {
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host);
	} else {
		SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		ok = SSL_set_tlsext_host_name(t->ssl, host) && SSL_set1_host(t->ssl, host);
	}
	ERR_clear_error();
	return ok ? 0 : -EINVAL;
}

static int tls_start(weft_tls **out, int fd, SSL_CTX *ctx, const char *host, int client)
{
	struct weft_tls *t;
	int rc;

	if (!out || !ctx)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	if (!weft_self())
		return -EPERM;
	rc = tls_new(&t, fd, ctx);
	if (rc < 0) {
		snprintf(last_err, sizeof(last_err), "out of memory");
		return rc;
	}
	if (client && host) {
		rc = tls_set_host(t, host);
		if (rc < 0) {
			snprintf(t->err, sizeof(t->err), "bad hostname for SNI or verification");
			goto out_fail;
		}
	}
	if (client)
		SSL_set_connect_state(t->ssl);
	else
		SSL_set_accept_state(t->ssl);
	t->busy = 1;
	rc = (int)tls_call(t, OP_HANDSHAKE, NULL, 0);
	t->busy = 0;
	if (rc < 0)
		goto out_fail;
	*out = t;
	return 0;

out_fail:
	memcpy(last_err, t->err, sizeof(last_err));
	weft_tls_free(t);
	return rc;
}

int weft_tls_server(weft_tls **out, int fd, SSL_CTX *ctx)
{
	return tls_start(out, fd, ctx, NULL, 0);
}

int weft_tls_client(weft_tls **out, int fd, SSL_CTX *ctx, const char *hostname)
{
	return tls_start(out, fd, ctx, hostname, 1);
}

ssize_t weft_tls_read(weft_tls *t, void *buf, size_t len)
{
	if (t && !buf && len)
		return -EINVAL;

	int rc = tls_enter(t, 0);

	if (rc < 0)
		return rc;
	if (len == 0) {
		t->busy = 0;
		return 0;
	}

	ssize_t n = tls_call(t, OP_READ, buf, len);

	if (n < 0 && n != -ETIMEDOUT && n != -ECANCELED)
		t->fatal = (int)n;
	t->busy = 0;
	return n;
}

ssize_t weft_tls_write(weft_tls *t, const void *buf, size_t len)
{
	if (t && !buf && len)
		return -EINVAL;

	int rc = tls_enter(t, 1);

	if (rc < 0)
		return rc;
	if (len == 0 || t->shut) {
		t->busy = 0;
		return t->shut ? -EPIPE : 0; /* after close_notify, as a socket after SHUT_WR */
	}

	ssize_t n = tls_call(t, OP_WRITE, (void *)buf, len);

	if (n < 0) {
		t->wfatal = (int)n;
		/* A TLS failure (not the socket's) leaves nothing usable. */
		if (n == -EPROTO)
			t->fatal = (int)n;
	}
	t->busy = 0;
	return n;
}

int weft_tls_shutdown(weft_tls *t)
{
	int rc = tls_enter(t, 1);

	if (rc < 0)
		return rc;
	if (!t->shut) {
		rc = (int)tls_call(t, OP_SHUTDOWN, NULL, 0);
		if (rc == 0)
			t->shut = 1;
		else if (rc != -ETIMEDOUT && rc != -ECANCELED)
			t->wfatal = rc;
	}
	t->busy = 0;
	return rc;
}

void weft_tls_free(weft_tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl); /* and the BIO */
	ERR_clear_error();
	free(t);
}

const char *weft_tls_error(const weft_tls *t)
{
	return t ? t->err : last_err;
}
