/* SPDX-License-Identifier: MIT */
/*
 * weft-tls: TLS (OpenSSL 3) over a connected socket, from a fiber.
 *
 * A weft_tls wraps one SSL object whose reads and writes go through weft's
 * fiber calls (weft_recv, weft_send) by a BIO of weft's own: a handshake, a
 * read or a write parks the fiber rather than the thread, and is bounded by
 * the fiber's deadline (-ETIMEDOUT) and by weft_cancel (-ECANCELED), on the
 * io_uring and the epoll backends alike. The configuration (protocol
 * versions, ciphers, certificates, trust, verification mode) is the
 * caller's SSL_CTX, borrowed for the life of the weft_tls (SSL_new takes a
 * reference of its own).
 *
 * Link with libweft-tls (pkg-config weft-tls), which needs libweft and
 * OpenSSL 3. weft.h itself never includes OpenSSL.
 *
 * Errors: a socket's own error comes back unchanged (-ECONNRESET, -EPIPE,
 * -EBADF, -ENOTSOCK...); a certificate that fails verification is
 * -EKEYREJECTED; any other TLS failure (a bad record, an alert from the
 * peer, no common version or cipher) is -EPROTO. weft_tls_error() gives
 * OpenSSL's text for the last failure. OpenSSL's error queue (one per
 * thread, so shared by the fibers of a loop) is cleared at the start and
 * at the end of every call here.
 *
 * Threads and fibers: a weft_tls is used from the loop (thread) that made
 * it, by one call at a time: a second call on the same object while one is
 * parked (say, a write from another fiber during a read) fails -EBUSY.
 * So a connection is read and written by one fiber in turn, as HTTP/1.1
 * does; full duplex from two fibers is not supported.
 */
#ifndef WEFT_TLS_H
#define WEFT_TLS_H

#include <weft.h>

#include <openssl/ssl.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

typedef struct weft_tls weft_tls;

/*
 * Make a TLS server connection over the connected socket @fd and run the
 * handshake as the server.
 * @out: where the new object goes (written only on success).
 * @fd: a connected stream socket, borrowed: it stays the caller's, and
 *      nothing here closes it (not even weft_tls_free).
 * @ctx: the configuration (certificate and key, versions; with
 *       SSL_VERIFY_PEER the client's certificate is verified as @ctx says).
 * Context: fiber. The fiber's deadline and weft_cancel bound the handshake.
 * Return: 0; -EINVAL for a NULL @out or @ctx; -EBADF for @fd < 0 (or not
 * open); -EPERM outside a fiber; -ENOMEM; -ETIMEDOUT, -ECANCELED; the
 * socket's error (-ECONNRESET, -EPIPE, -ENOTSOCK...); -ECONNRESET also
 * when the peer closed before the handshake finished; -EKEYREJECTED when
 * a client certificate @ctx asks for fails verification; -EPROTO for any
 * other TLS failure. On failure the text is in weft_tls_error(NULL).
 */
int weft_tls_server(weft_tls **out, int fd, SSL_CTX *ctx);

/*
 * Make a TLS client connection over the connected socket @fd and run the
 * handshake as the client.
 * @hostname: borrowed for the call. When not NULL: a name is sent as SNI
 *     and the server's certificate must match it (SSL_set1_host); an IP
 *     address (IPv4 or IPv6, numeric) is matched against the
 *     certificate's IP addresses instead, and no SNI is sent (RFC 6066).
 *     NULL: no SNI and no name check.
 * Whether a failed check ends the handshake follows @ctx: with
 * SSL_VERIFY_PEER (and trust loaded, e.g. SSL_CTX_load_verify_locations or
 * SSL_CTX_set_default_verify_paths) it does; with SSL_VERIFY_NONE (OpenSSL's
 * default) nothing is verified.
 * Other parameters and Context: as weft_tls_server.
 * Return: as weft_tls_server; -EKEYREJECTED when the server's certificate
 * fails verification (untrusted, expired, wrong name).
 */
int weft_tls_client(weft_tls **out, int fd, SSL_CTX *ctx, const char *hostname);

/*
 * Read up to @len bytes of application data: what one TLS record (or what
 * OpenSSL already holds) gives, so the count may be short.
 * Context: fiber.
 * Return: the bytes read (> 0); 0 once the peer has sent close_notify, and
 * also at a plain EOF of the socket without it (SSL_OP_IGNORE_UNEXPECTED_EOF:
 * a truncation is not told apart), and for @len 0; -EINVAL for a NULL @t, or
 * a NULL @buf with @len > 0; -EPERM outside a fiber; -EBUSY (see the top);
 * -ETIMEDOUT or -ECANCELED, after which the connection is still usable (a
 * later read goes on where this one stopped); the socket's error
 * (-ECONNRESET for a peer that reset the connection); -EPROTO for a bad
 * record or an alert. Those last two (the connection's own failures) are
 * sticky: every later read, write and shutdown returns the same error.
 */
ssize_t weft_tls_read(weft_tls *t, void *buf, size_t len);

/*
 * Write all @len bytes of @buf as application data (records of up to
 * 16 KiB). The rule of weft_send_all: either all of it was handed to the
 * socket, or an error, in which case an unknown prefix may have been sent.
 * Context: fiber.
 * Return: @len (0 for @len 0); -EINVAL, -EPERM, -EBUSY as for weft_tls_read;
 * -EPIPE after weft_tls_shutdown (close_notify was sent); -ETIMEDOUT,
 * -ECANCELED, the socket's error (-EPIPE, -ECONNRESET), -EPROTO. Any error
 * but -EINVAL, -EPERM and -EBUSY (a timeout too: a record may be half sent)
 * leaves the connection unable to write: every later write and shutdown
 * returns the same error; reads still work unless the error was sticky
 * for them too.
 */
ssize_t weft_tls_write(weft_tls *t, const void *buf, size_t len);

/*
 * Send close_notify (once; a second call does nothing and returns 0). It
 * does not wait for the peer's close_notify: read until weft_tls_read
 * returns 0 for that. The fd stays open and the caller's (close it after
 * weft_tls_free, or before: weft_tls_free does no I/O).
 * Context: fiber.
 * Return: 0; -EINVAL for a NULL @t; -EPERM, -EBUSY; -ETIMEDOUT, -ECANCELED,
 * the socket's error; a sticky error of an earlier read or write.
 */
int weft_tls_shutdown(weft_tls *t);

/*
 * Free @t and its SSL object, without any I/O: call weft_tls_shutdown first
 * for a clean close. The fd is not closed. NULL does nothing. Must not be
 * called while a call on @t is parked.
 * Context: any (the thread that owns @t's loop).
 */
void weft_tls_free(weft_tls *t);

/*
 * OpenSSL's text for @t's last failure (or, for a socket error, the
 * system's), kept in @t until the next failure: valid until the next call
 * on @t or its free. "" when none failed.
 * @t NULL: the text for the last failed weft_tls_server or weft_tls_client
 * on this thread (a thread-local buffer that lives as long as the thread;
 * read it before another fiber of the loop runs), or "" when none failed.
 * Never NULL.
 * Context: any.
 */
const char *weft_tls_error(const weft_tls *t);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* WEFT_TLS_H */
