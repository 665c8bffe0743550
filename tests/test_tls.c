/* SPDX-License-Identifier: MIT */
/*
 * libweft-tls through its public API: handshakes (TLS 1.2 and 1.3) and data
 * against weft itself and against openssl s_server / s_client, failed
 * verification, deadlines and cancels in handshakes and reads, a reset, a
 * large transfer with short reads, close_notify, bad input. The CA and the
 * server certificate ("localhost", 127.0.0.1) are made at run time.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <weft_tls.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

extern char **environ;

/* ---- certificates, made once for the group -------------------------------- */

static struct {
	EVP_PKEY *ca_key, *srv_key, *evil_key;
	X509 *ca, *srv, *evil;
	char dir[64]; /* ca.pem, cert.pem, key.pem for the openssl subprocesses */
	char openssl[512];
} pki;

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);

	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);

	if (!e)
		return -1;

	int ok = X509_add_ext(x, e, -1);

	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

/* A certificate for @key named @cn, signed by @issuer (NULL: self-signed CA). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey)
{
	static long serial = 1;
	X509 *x = X509_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));

	int rc = issuer
		     ? add_ext(x, issuer, NID_basic_constraints, "CA:FALSE") |
			   add_ext(x, issuer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1") |
			   add_ext(x, issuer, NID_ext_key_usage, "serverAuth")
		     : add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") |
			   add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") |
			   add_ext(x, x, NID_subject_key_identifier, "hash");

	if (rc || !X509_sign(x, issuer ? ikey : key, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int write_pem(const char *name, X509 *x, EVP_PKEY *k)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", pki.dir, name);

	FILE *f = fopen(path, "w");

	if (!f)
		return -1;

	int ok = x ? PEM_write_X509(f, x) : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);

	fclose(f);
	return ok ? 0 : -1;
}

/* Where the openssl binary is on PATH, or "" when it is not there. */
static void find_openssl(void)
{
	const char *path = getenv("PATH");
	char *dirs = strdup(path ? path : "/usr/bin:/bin");
	char *save = NULL;

	pki.openssl[0] = 0;
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(pki.openssl, sizeof(pki.openssl), "%s/openssl", d);
		if (access(pki.openssl, X_OK) == 0)
			break;
		pki.openssl[0] = 0;
	}
	free(dirs);
}

static int pki_setup(void **state)
{
	(void)state;
	pki.ca_key = EVP_EC_gen("P-256");
	pki.srv_key = EVP_EC_gen("P-256");
	pki.evil_key = EVP_EC_gen("P-256");
	if (!pki.ca_key || !pki.srv_key || !pki.evil_key)
		return -1;
	pki.ca = make_cert(pki.ca_key, "weft test CA", NULL, NULL);
	pki.evil = make_cert(pki.evil_key, "weft test CA", NULL, NULL); /* same name, other key */
	if (!pki.ca || !pki.evil)
		return -1;
	pki.srv = make_cert(pki.srv_key, "localhost", pki.ca, pki.ca_key);
	if (!pki.srv)
		return -1;
	snprintf(pki.dir, sizeof(pki.dir), "/tmp/weft-tls-XXXXXX");
	if (!mkdtemp(pki.dir))
		return -1;
	if (write_pem("ca.pem", pki.ca, NULL) || write_pem("cert.pem", pki.srv, NULL) ||
	    write_pem("key.pem", NULL, pki.srv_key))
		return -1;
	find_openssl();
	return 0;
}

static int pki_teardown(void **state)
{
	char path[128];

	(void)state;
	for (const char *const *n = (const char *const[]){ "ca.pem", "cert.pem", "key.pem", NULL };
	     *n; n++) {
		snprintf(path, sizeof(path), "%s/%s", pki.dir, *n);
		unlink(path);
	}
	rmdir(pki.dir);
	X509_free(pki.ca);
	X509_free(pki.srv);
	X509_free(pki.evil);
	EVP_PKEY_free(pki.ca_key);
	EVP_PKEY_free(pki.srv_key);
	EVP_PKEY_free(pki.evil_key);
	return 0;
}

/* @version: 0 for any, else TLS1_2_VERSION or TLS1_3_VERSION only. */
static SSL_CTX *server_ctx(int version)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());

	assert_non_null(c);
	assert_int_equal(SSL_CTX_use_certificate(c, pki.srv), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(c, pki.srv_key), 1);
	if (version) {
		SSL_CTX_set_min_proto_version(c, version);
		SSL_CTX_set_max_proto_version(c, version);
	}
	return c;
}

/* A client that verifies the server against @trust. */
static SSL_CTX *client_ctx(int version, X509 *trust)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());

	assert_non_null(c);
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(c), trust), 1);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	if (version) {
		SSL_CTX_set_min_proto_version(c, version);
		SSL_CTX_set_max_proto_version(c, version);
	}
	return c;
}

/* ---- two sides in one loop ------------------------------------------------- */

struct side;
typedef int side_fn(weft_tls *t, struct side *s);

struct side {
	int fd;
	SSL_CTX *ctx;	    /* NULL: a raw peer that reads until EOF and never answers */
	int client;	    /* handshake as the client */
	const char *host;   /* client: the name to check */
	int64_t timeout_ns; /* for the handshake; 0 none */
	int64_t cancel_ns;  /* cancel this side's fiber after so long; 0 never */
	side_fn *body;	    /* after the handshake; NULL: none */
	int hs_rc;	    /* the handshake's result */
	int rc;		    /* body's result */
	int64_t hs_ns;	    /* how long the handshake took */
	char err[256];	    /* weft_tls_error(NULL) after a failed handshake */
	ssize_t got[4];	    /* results a body records */
	int ready;	    /* 1: in the handshake; 2: parked where a cancel is wanted */
	int cancel_at;	    /* the ready level cancel_ns counts from (default 1) */
	struct side *peer;
	weft_fiber *fiber;
};

/* Wait (in a fiber) until @flag is non-zero: the other side has got that far. */
static void wait_for(const volatile ssize_t *flag)
{
	while (!*flag)
		weft_sleep(2 * WEFT_MSEC);
}

static int raw_peer(struct side *s)
{
	char buf[4096];

	while (weft_recv(s->fd, buf, sizeof(buf), 0) > 0)
		;
	return 0;
}

static int side_fiber(void *arg)
{
	struct side *s = arg;
	weft_tls *t = NULL;
	int64_t t0 = weft_now();

	if (!s->ctx) {
		raw_peer(s);
		goto out;
	}
	if (s->timeout_ns)
		weft_set_timeout(s->timeout_ns);
	s->ready = 1;
	s->hs_rc = s->client ? weft_tls_client(&t, s->fd, s->ctx, s->host)
			     : weft_tls_server(&t, s->fd, s->ctx);
	s->hs_ns = weft_now() - t0;
	weft_set_deadline(WEFT_FOREVER);
	if (s->hs_rc < 0) {
		snprintf(s->err, sizeof(s->err), "%s", weft_tls_error(NULL));
		goto out;
	}
	s->rc = s->body ? s->body(t, s) : 0;
	weft_tls_free(t);
out:
	weft_close(s->fd);
	return 0;
}

static int duo_main(void *arg)
{
	struct side *sv = arg;
	struct side *victim = sv[0].cancel_ns ? &sv[0] : &sv[1];
	int rc;

	for (int i = 0; i < 2; i++) {
		rc = weft_spawn(NULL, side_fiber, &sv[i], &sv[i].fiber);
		if (rc < 0)
			return rc;
	}
	if (victim->cancel_ns) {
		while (victim->ready < (victim->cancel_at ? victim->cancel_at : 1))
			weft_sleep(WEFT_MSEC);
		weft_sleep(victim->cancel_ns);
		weft_cancel(victim->fiber);
	}
	for (int i = 0; i < 2; i++) {
		rc = weft_join(sv[i].fiber, NULL);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* A connected TCP pair over loopback (plain system calls; no loop runs yet). */
static void tcp_pair(int fds[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
	fds[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fds[1], (struct sockaddr *)&a, sizeof(a)), 0);
	fds[0] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(fds[0] >= 0);
	close(l);
}

/* Run sv[0] (server) against sv[1] (client) over TCP or a socketpair; both fds are closed. */
static void duo(struct side sv[2], int tcp)
{
	int fds[2];

	if (tcp)
		tcp_pair(fds);
	else
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	sv[0].fd = fds[0];
	sv[1].fd = fds[1];
	sv[1].client = 1;
	sv[0].peer = &sv[1];
	sv[1].peer = &sv[0];
	assert_int_equal(t_run(duo_main, sv), 0);
}

/* ---- bodies ------------------------------------------------------------------ */

/* Read until @want bytes or EOF/error into @buf. Return: the count, or -errno. */
static ssize_t read_n(weft_tls *t, char *buf, size_t want)
{
	size_t have = 0;

	while (have < want) {
		ssize_t n = weft_tls_read(t, buf + have, want - have);

		if (n < 0)
			return n;
		if (n == 0)
			break;
		have += (size_t)n;
	}
	return (ssize_t)have;
}

/* Client: "ping" out, "pong" back, then close_notify both ways. */
static int ping_client(weft_tls *t, struct side *s)
{
	char buf[8] = { 0 };

	s->got[0] = weft_tls_write(t, "ping", 4);
	s->got[1] = read_n(t, buf, 4);
	if (s->got[1] == 4 && memcmp(buf, "pong", 4) != 0)
		s->got[1] = -EILSEQ;
	s->got[2] = weft_tls_shutdown(t);
	if (s->got[2] == 0 && weft_tls_shutdown(t) != 0) /* a second one does nothing */
		s->got[2] = -EILSEQ;
	if (s->got[2] == 0 && weft_tls_write(t, "x", 1) != -EPIPE)
		s->got[2] = -EILSEQ;
	s->got[3] = weft_tls_read(t, buf, sizeof(buf)); /* the server's close_notify: 0 */
	return 0;
}

static int pong_server(weft_tls *t, struct side *s)
{
	char buf[8] = { 0 };

	s->got[0] = read_n(t, buf, 4);
	if (s->got[0] == 4 && memcmp(buf, "ping", 4) != 0)
		s->got[0] = -EILSEQ;
	s->got[1] = weft_tls_write(t, "pong", 4);
	s->got[2] = weft_tls_read(t, buf, sizeof(buf)); /* the client's close_notify: 0 */
	s->got[3] = weft_tls_shutdown(t);
	return 0;
}

static void check_ping_pong(const struct side sv[2])
{
	assert_int_equal(sv[0].hs_rc, 0);
	assert_int_equal(sv[1].hs_rc, 0);
	assert_int_equal(sv[1].got[0], 4);
	assert_int_equal(sv[1].got[1], 4);
	assert_int_equal(sv[1].got[2], 0);
	assert_int_equal(sv[1].got[3], 0);
	assert_int_equal(sv[0].got[0], 4);
	assert_int_equal(sv[0].got[1], 4);
	assert_int_equal(sv[0].got[2], 0);
	assert_int_equal(sv[0].got[3], 0);
}

static void ping_pong(int version, const char *host, int tcp)
{
	SSL_CTX *sc = server_ctx(version);
	SSL_CTX *cc = client_ctx(version, pki.ca);
	struct side sv[2] = {
		{ .ctx = sc, .body = pong_server },
		{ .ctx = cc, .host = host, .body = ping_client },
	};

	duo(sv, tcp);
	check_ping_pong(sv);
	SSL_CTX_free(sc);
	SSL_CTX_free(cc);
}

static void test_tls_weft_to_weft_tls13_exchanges_data(void **state)
{
	(void)state;
	ping_pong(TLS1_3_VERSION, "localhost", 1);
}

static void test_tls_weft_to_weft_tls12_exchanges_data(void **state)
{
	(void)state;
	ping_pong(TLS1_2_VERSION, "localhost", 0);
}

static void test_tls_client_verifies_ip_address_without_sni(void **state)
{
	(void)state;
	ping_pong(0, "127.0.0.1", 1);
}

#define BIG (8u << 20)

static unsigned char big_byte(size_t i)
{
	return (unsigned char)((i * 31u + (i >> 13)) % 251u);
}

/* Client: 8 MiB in writes of odd sizes, then close_notify. */
static int big_client(weft_tls *t, struct side *s)
{
	static unsigned char buf[200000];
	size_t off = 0;

	for (int i = 0; off < BIG; i++) {
		size_t len = 1 + (size_t)(i * 7919) % sizeof(buf);

		if (len > BIG - off)
			len = BIG - off;
		for (size_t j = 0; j < len; j++)
			buf[j] = big_byte(off + j);

		ssize_t n = weft_tls_write(t, buf, len);

		if (n != (ssize_t)len) {
			s->got[0] = n;
			return 0;
		}
		off += len;
	}
	s->got[0] = (ssize_t)off;
	s->got[1] = weft_tls_shutdown(t);
	/* Read to the server's close_notify: a close with its session tickets unread would reset.
	 */
	s->got[2] = weft_tls_read(t, buf, sizeof(buf));
	return 0;
}

/* Server: read it all in reads of at most 1000 bytes, check every byte. */
static int big_server(weft_tls *t, struct side *s)
{
	unsigned char buf[1000];
	size_t off = 0;
	ssize_t n;

	while ((n = weft_tls_read(t, buf, sizeof(buf))) > 0) {
		for (ssize_t j = 0; j < n; j++)
			if (buf[j] != big_byte(off + (size_t)j)) {
				s->got[0] = -EILSEQ;
				return 0;
			}
		off += (size_t)n;
		s->got[1]++; /* reads */
	}
	s->got[0] = n < 0 ? n : (ssize_t)off;
	s->got[2] = weft_tls_shutdown(t);
	return 0;
}

static void test_tls_large_transfer_with_short_reads(void **state)
{
	SSL_CTX *sc = server_ctx(0);
	SSL_CTX *cc = client_ctx(0, pki.ca);
	struct side sv[2] = {
		{ .ctx = sc, .body = big_server },
		{ .ctx = cc, .host = "localhost", .body = big_client },
	};

	(void)state;
	duo(sv, 1);
	assert_int_equal(sv[0].hs_rc, 0);
	assert_int_equal(sv[1].got[0], BIG);
	assert_int_equal(sv[1].got[1], 0);
	assert_int_equal(sv[1].got[2], 0);
	assert_int_equal(sv[0].got[0], BIG);
	assert_int_equal(sv[0].got[2], 0);
	assert_true(sv[0].got[1] >= (ssize_t)(BIG / 1000)); /* short reads, as asked */
	SSL_CTX_free(sc);
	SSL_CTX_free(cc);
}

/* ---- verification -------------------------------------------------------------- */

static void expect_rejected(X509 *trust, const char *host, const char *why)
{
	SSL_CTX *sc = server_ctx(0);
	SSL_CTX *cc = client_ctx(0, trust);
	struct side sv[2] = { { .ctx = sc }, { .ctx = cc, .host = host } };

	duo(sv, 0);
	assert_int_equal(sv[1].hs_rc, -EKEYREJECTED);
	if (!strstr(sv[1].err, "certificate verify failed") || !strstr(sv[1].err, why))
		fail_msg("error text: %s", sv[1].err);
	assert_true(sv[0].hs_rc < 0); /* the server saw the alert, or the close */
	SSL_CTX_free(sc);
	SSL_CTX_free(cc);
}

static void test_tls_client_fails_ekeyrejected_on_wrong_hostname(void **state)
{
	(void)state;
	expect_rejected(pki.ca, "example.com", "hostname mismatch");
}

static void test_tls_client_fails_ekeyrejected_on_untrusted_ca(void **state)
{
	(void)state;
	expect_rejected(pki.evil, "localhost", "signature failure");
}

static void test_tls_handshake_fails_eproto_without_common_version(void **state)
{
	SSL_CTX *sc = server_ctx(TLS1_3_VERSION);
	SSL_CTX *cc = client_ctx(TLS1_2_VERSION, pki.ca);
	struct side sv[2] = { { .ctx = sc }, { .ctx = cc, .host = "localhost" } };

	(void)state;
	duo(sv, 0);
	assert_int_equal(sv[0].hs_rc, -EPROTO);
	assert_true(sv[1].hs_rc == -EPROTO || sv[1].hs_rc == -ECONNRESET);
	assert_true(strlen(sv[0].err) > 0);
	SSL_CTX_free(sc);
	SSL_CTX_free(cc);
}

/* ---- deadlines and cancels -------------------------------------------------------- */

static void test_tls_handshake_fails_etimedout_on_stalled_peer(void **state)
{
	SSL_CTX *cc = client_ctx(0, pki.ca);
	struct side sv[2] = {
		{ .ctx = NULL }, /* reads the ClientHello, never answers */
		{ .ctx = cc, .host = "localhost", .timeout_ns = 50 * WEFT_MSEC },
	};

	(void)state;
	duo(sv, 1);
	assert_int_equal(sv[1].hs_rc, -ETIMEDOUT);
	assert_true(sv[1].hs_ns >= 50 * WEFT_MSEC);
	assert_true(sv[1].hs_ns < 2 * WEFT_SEC);
	SSL_CTX_free(cc);
}

static void test_tls_server_handshake_fails_etimedout_on_silent_client(void **state)
{
	SSL_CTX *sc = server_ctx(0);
	struct side sv[2] = { { .ctx = sc, .timeout_ns = 30 * WEFT_MSEC }, { .ctx = NULL } };

	(void)state;
	duo(sv, 0);
	assert_int_equal(sv[0].hs_rc, -ETIMEDOUT);
	assert_true(sv[0].hs_ns < 2 * WEFT_SEC);
	SSL_CTX_free(sc);
}

static void test_tls_cancel_wakes_fiber_parked_in_handshake(void **state)
{
	SSL_CTX *cc = client_ctx(0, pki.ca);
	struct side sv[2] = {
		{ .ctx = NULL },
		{ .ctx = cc, .host = "localhost", .cancel_ns = 30 * WEFT_MSEC },
	};

	(void)state;
	duo(sv, 0);
	assert_int_equal(sv[1].hs_rc, -ECANCELED);
	assert_true(sv[1].hs_ns < 2 * WEFT_SEC);
	SSL_CTX_free(cc);
}

/* Server: one read, parked until the cancel. */
static int parked_reader(weft_tls *t, struct side *s)
{
	char buf[16];

	s->ready = 2;
	s->got[0] = weft_tls_read(t, buf, sizeof(buf));
	return 0;
}

/* Client: silent until the server goes away. */
static int idle_client(weft_tls *t, struct side *s)
{
	char buf[16];

	s->got[0] = weft_tls_read(t, buf, sizeof(buf));
	return 0;
}

static void test_tls_cancel_wakes_fiber_parked_in_read(void **state)
{
	SSL_CTX *sc = server_ctx(0);
	SSL_CTX *cc = client_ctx(0, pki.ca);
	struct side sv[2] = {
		{ .ctx = sc, .body = parked_reader, .cancel_ns = 20 * WEFT_MSEC, .cancel_at = 2 },
		{ .ctx = cc, .host = "localhost", .body = idle_client },
	};

	(void)state;
	duo(sv, 1);
	assert_int_equal(sv[0].hs_rc, 0);
	assert_int_equal(sv[0].got[0], -ECANCELED);
	SSL_CTX_free(sc);
	SSL_CTX_free(cc);
}

/* Server: a read times out, the connection goes on, and the next read gets the bytes. */
static int patient_reader(weft_tls *t, struct side *s)
{
	char buf[16] = { 0 };

	weft_set_timeout(30 * WEFT_MSEC);
	s->got[0] = weft_tls_read(t, buf, sizeof(buf));
	weft_set_deadline(WEFT_FOREVER);
	s->got[1] = read_n(t, buf, 4);
	if (s->got[1] == 4 && memcmp(buf, "late", 4) != 0)
		s->got[1] = -EILSEQ;
	s->got[2] = weft_tls_write(t, "ok", 2);
	return 0;
}

static int late_writer(weft_tls *t, struct side *s)
{
	char buf[4];

	wait_for(&s->peer->got[0]); /* the server's read has timed out */
	s->got[0] = weft_tls_write(t, "late", 4);
	s->got[1] = read_n(t, buf, 2);
	return 0;
}

static void test_tls_read_goes_on_after_etimedout(void **state)
{
	SSL_CTX *sc = server_ctx(0);
	SSL_CTX *cc = client_ctx(0, pki.ca);
	struct side sv[2] = {
		{ .ctx = sc, .body = patient_reader },
		{ .ctx = cc, .host = "localhost", .body = late_writer },
	};

	(void)state;
	duo(sv, 0);
	assert_int_equal(sv[0].got[0], -ETIMEDOUT);
	assert_int_equal(sv[0].got[1], 4);
	assert_int_equal(sv[0].got[2], 2);
	assert_int_equal(sv[1].got[0], 4);
	assert_int_equal(sv[1].got[1], 2);
	SSL_CTX_free(sc);
	SSL_CTX_free(cc);
}

/* ---- resets, close_notify, concurrent use ------------------------------------------- */

/* Client: a few bytes, then a close with SO_LINGER 0 (side_fiber's close sends an RST). */
static int resetting_client(weft_tls *t, struct side *s)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	s->got[0] = weft_tls_write(t, "abc", 3);
	wait_for(&s->peer->got[0]); /* the server has read them */
	setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	return 0;
}

static int reading_server(weft_tls *t, struct side *s)
{
	char buf[16];

	s->got[0] = read_n(t, buf, 3);
	s->got[1] = weft_tls_read(t, buf, sizeof(buf));
	s->got[2] = weft_tls_write(t, "x", 1); /* sticky: the same error */
	return 0;
}

static void test_tls_read_fails_econnreset_on_reset(void **state)
{
	SSL_CTX *sc = server_ctx(0);
	SSL_CTX *cc = client_ctx(0, pki.ca);
	struct side sv[2] = {
		{ .ctx = sc, .body = reading_server },
		{ .ctx = cc, .host = "localhost", .body = resetting_client },
	};

	(void)state;
	duo(sv, 1);
	assert_int_equal(sv[1].got[0], 3);
	assert_int_equal(sv[0].got[0], 3);
	assert_int_equal(sv[0].got[1], -ECONNRESET);
	assert_int_equal(sv[0].got[2], -ECONNRESET);
	SSL_CTX_free(sc);
	SSL_CTX_free(cc);
}

static void test_tls_shutdown_reads_as_zero_on_both_sides(void **state)
{
	(void)state;
	ping_pong(0, "localhost", 0); /* got[2], got[3] of both: shutdown 0, read 0 */
}

struct busy_ctx {
	weft_tls *t;
	ssize_t n;
	char buf[8];
};

static int busy_reader(void *arg)
{
	struct busy_ctx *b = arg;

	b->n = weft_tls_read(b->t, b->buf, sizeof(b->buf));
	return 0;
}

/* Server: a read parked in another fiber makes this fiber's write -EBUSY. */
static int busy_server(weft_tls *t, struct side *s)
{
	struct busy_ctx b = { .t = t };
	weft_fiber *f;

	if (weft_spawn(NULL, busy_reader, &b, &f) < 0)
		return -1;
	weft_sleep(10 * WEFT_MSEC);
	s->got[0] = weft_tls_write(t, "no", 2);
	s->got[1] = weft_tls_shutdown(t);
	weft_join(f, NULL);
	s->got[2] = b.n;
	s->got[3] = weft_tls_write(t, "ok", 2);
	return 0;
}

static int busy_client(weft_tls *t, struct side *s)
{
	char buf[4];

	wait_for(&s->peer->got[0]); /* the server's write has been refused */
	s->got[0] = weft_tls_write(t, "hi", 2);
	s->got[1] = read_n(t, buf, 2);
	return 0;
}

static void test_tls_second_call_fails_ebusy_while_one_is_parked(void **state)
{
	SSL_CTX *sc = server_ctx(0);
	SSL_CTX *cc = client_ctx(0, pki.ca);
	struct side sv[2] = {
		{ .ctx = sc, .body = busy_server },
		{ .ctx = cc, .host = "localhost", .body = busy_client },
	};

	(void)state;
	duo(sv, 0);
	assert_int_equal(sv[0].got[0], -EBUSY);
	assert_int_equal(sv[0].got[1], -EBUSY);
	assert_int_equal(sv[0].got[2], 2);
	assert_int_equal(sv[0].got[3], 2);
	assert_int_equal(sv[1].got[1], 2);
	SSL_CTX_free(sc);
	SSL_CTX_free(cc);
}

/*
 * Many handshakes at once in one loop, every other one failing verification:
 * the fibers share the thread's OpenSSL error queue while they park, and each
 * must still see its own outcome (and text).
 */
#define CROWD 24

struct crowd {
	struct side sv[CROWD][2];
};

static int crowd_main(void *arg)
{
	struct crowd *c = arg;

	for (int i = 0; i < CROWD; i++)
		for (int j = 0; j < 2; j++)
			if (weft_spawn(NULL, side_fiber, &c->sv[i][j], &c->sv[i][j].fiber) < 0)
				return -1;
	for (int i = 0; i < CROWD; i++)
		for (int j = 0; j < 2; j++)
			weft_join(c->sv[i][j].fiber, NULL);
	return 0;
}

static void test_tls_concurrent_handshakes_keep_their_own_errors(void **state)
{
	static struct crowd c;
	SSL_CTX *sc = server_ctx(0);
	SSL_CTX *cc = client_ctx(0, pki.ca);

	(void)state;
	memset(&c, 0, sizeof(c));
	for (int i = 0; i < CROWD; i++) {
		int fds[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
		c.sv[i][0] = (struct side){ .fd = fds[0], .ctx = sc, .body = pong_server };
		c.sv[i][1] = (struct side){ .fd = fds[1],
					    .ctx = cc,
					    .client = 1,
					    .host = i % 2 ? "example.com" : "localhost",
					    .body = ping_client };
		c.sv[i][0].peer = &c.sv[i][1];
		c.sv[i][1].peer = &c.sv[i][0];
	}
	assert_int_equal(t_run(crowd_main, &c), 0);
	for (int i = 0; i < CROWD; i++) {
		if (i % 2) {
			assert_int_equal(c.sv[i][1].hs_rc, -EKEYREJECTED);
			assert_non_null(strstr(c.sv[i][1].err, "hostname mismatch"));
		} else {
			check_ping_pong(c.sv[i]);
		}
	}
	SSL_CTX_free(sc);
	SSL_CTX_free(cc);
}

/* ---- bad input ------------------------------------------------------------------------ */

struct bad_ctx {
	SSL_CTX *ctx;
	int fd;
	int closed_fd;
	int rc[8];
};

static int bad_input(void *arg)
{
	struct bad_ctx *b = arg;
	weft_tls *t = (weft_tls *)(uintptr_t)1; /* must stay untouched */
	char c;

	b->rc[0] = weft_tls_server(NULL, b->fd, b->ctx);
	b->rc[1] = weft_tls_client(&t, b->fd, NULL, "localhost");
	b->rc[2] = weft_tls_server(&t, -1, b->ctx);
	b->rc[3] = weft_tls_client(&t, b->closed_fd, b->ctx, NULL);
	b->rc[4] = (int)weft_tls_read(NULL, &c, 1);
	b->rc[5] = (int)weft_tls_write(NULL, &c, 1);
	b->rc[6] = weft_tls_shutdown(NULL);
	b->rc[7] = t == (weft_tls *)(uintptr_t)1;
	return 0;
}

static void test_tls_bad_input_fails_einval_ebadf_eperm(void **state)
{
	struct bad_ctx b = { .ctx = client_ctx(0, pki.ca) };
	int sv[2];
	weft_tls *t = NULL;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	b.fd = sv[0];
	b.closed_fd = 999999; /* not open (a closed low number could be the loop's ring by then) */
	assert_int_equal(fcntl(b.closed_fd, F_GETFD), -1);
	assert_int_equal(t_run(bad_input, &b), 0);
	assert_int_equal(b.rc[0], -EINVAL);
	assert_int_equal(b.rc[1], -EINVAL);
	assert_int_equal(b.rc[2], -EBADF);
	assert_int_equal(b.rc[3], -EBADF);
	assert_int_equal(b.rc[4], -EINVAL);
	assert_int_equal(b.rc[5], -EINVAL);
	assert_int_equal(b.rc[6], -EINVAL);
	assert_int_equal(b.rc[7], 1);
	/* Outside a fiber. */
	assert_int_equal(weft_tls_server(&t, sv[0], b.ctx), -EPERM);
	assert_int_equal(weft_tls_client(&t, sv[0], b.ctx, "localhost"), -EPERM);
	assert_null(t);
	assert_non_null(weft_tls_error(NULL));
	weft_tls_free(NULL);
	close(sv[0]);
	close(sv[1]);
	SSL_CTX_free(b.ctx);
}

/* ---- against the openssl command ---------------------------------------------------------- */

/* Start openssl with @argv (after "openssl"), stdin from @in, stdout and stderr to @out. */
static pid_t spawn_openssl(const char *const *argv, const char *in, const char *out)
{
	const char *full[32] = { pki.openssl };
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int i;

	for (i = 0; argv[i] && i < 30; i++)
		full[i + 1] = argv[i];
	full[i + 1] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, in, O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);

	int rc = posix_spawn(&pid, pki.openssl, &fa, NULL, (char *const *)full, environ);

	posix_spawn_file_actions_destroy(&fa);
	return rc ? -1 : pid;
}

/* Wait up to 5 s for @pid, then kill it: it is always reaped. Return: its wait status. */
static int reap(pid_t pid)
{
	int status = 0;

	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return status;
}

static void slurp(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, cap - 1, f) : 0;

	buf[n] = 0;
	if (f)
		fclose(f);
}

/* The port of s_server's "ACCEPT 127.0.0.1:PORT" line in @out, within 5 s; 0 if none. */
static int accept_port(const char *out)
{
	char text[4096];

	for (int i = 0; i < 500; i++) {
		slurp(out, text, sizeof(text));

		char *a = strstr(text, "ACCEPT ");
		char *eol = a ? strchr(a, '\n') : NULL;

		if (eol) {
			*eol = 0;
			return atoi(strrchr(a, ':') + 1);
		}
		usleep(10000);
	}
	return 0;
}

struct sproc {
	SSL_CTX *ctx;
	int port;
	int lfd;
	ssize_t got[4];
	char reply[64];
	char err[256];
};

/* Client to s_server -rev: a line out, the line reversed back, close_notify. */
static int to_s_server(void *arg)
{
	struct sproc *p = arg;
	weft_tls *t;
	int fd = weft_tcp_dial("127.0.0.1", p->port);

	if (fd < 0)
		return fd;
	weft_set_timeout(10 * WEFT_SEC);
	p->got[0] = weft_tls_client(&t, fd, p->ctx, "localhost");
	if (p->got[0] < 0) {
		snprintf(p->err, sizeof(p->err), "%s", weft_tls_error(NULL));
		weft_close(fd);
		return 0;
	}
	p->got[1] = weft_tls_write(t, "hello weft\n", 11);

	size_t have = 0;

	while (have < 11) {
		ssize_t n = weft_tls_read(t, p->reply + have, sizeof(p->reply) - 1 - have);

		if (n <= 0)
			break;
		have += (size_t)n;
	}
	p->got[2] = (ssize_t)have;
	p->got[3] = weft_tls_shutdown(t);
	weft_tls_free(t);
	weft_close(fd);
	return 0;
}

static void need_openssl(void)
{
	if (!pki.openssl[0]) {
		print_message("the openssl command is not on PATH: skipping\n");
		skip();
	}
}

static void against_s_server(const char *vflag, int version)
{
	char in[128], out[128], text[4096];
	struct sproc p = { .ctx = client_ctx(version, pki.ca) };
	char cert[128], key[128];

	need_openssl();
	snprintf(cert, sizeof(cert), "%s/cert.pem", pki.dir);
	snprintf(key, sizeof(key), "%s/key.pem", pki.dir);
	snprintf(in, sizeof(in), "/dev/null");
	snprintf(out, sizeof(out), "%s/s_server.%d.out", pki.dir, (int)getpid());

	const char *argv[] = { "s_server", "-accept", "127.0.0.1:0", "-cert",	 cert, "-key",
			       key,	   vflag,     "-rev",	     "-naccept", "1",  NULL };
	pid_t pid = spawn_openssl(argv, in, out);

	assert_true(pid > 0);
	p.port = accept_port(out);
	if (p.port > 0)
		t_run(to_s_server, &p);
	reap(pid);
	slurp(out, text, sizeof(text));
	unlink(out);
	SSL_CTX_free(p.ctx);
	if (p.port <= 0)
		fail_msg("s_server did not start: %s", text);
	if (p.got[0] < 0)
		fail_msg("handshake: %d %s; s_server said: %s", (int)p.got[0], p.err, text);
	assert_int_equal(p.got[1], 11);
	assert_int_equal(p.got[2], 11);
	assert_string_equal(p.reply, "tfew olleh\n");
	assert_int_equal(p.got[3], 0);
}

static void test_tls_client_talks_to_s_server_tls13(void **state)
{
	(void)state;
	against_s_server("-tls1_3", TLS1_3_VERSION);
}

static void test_tls_client_talks_to_s_server_tls12(void **state)
{
	(void)state;
	against_s_server("-tls1_2", TLS1_2_VERSION);
}

/* Server for s_client: a line in, the line upper-cased back, close_notify. */
static int for_s_client(void *arg)
{
	struct sproc *p = arg;
	weft_tls *t;
	char line[64] = { 0 };

	weft_set_timeout(10 * WEFT_SEC);

	int fd = weft_accept(p->lfd, NULL, NULL);

	if (fd < 0)
		return fd;
	p->got[0] = weft_tls_server(&t, fd, p->ctx);
	if (p->got[0] < 0) {
		snprintf(p->err, sizeof(p->err), "%s", weft_tls_error(NULL));
		weft_close(fd);
		return 0;
	}

	size_t have = 0;

	while (have < sizeof(line) - 1 && !memchr(line, '\n', have)) {
		ssize_t n = weft_tls_read(t, line + have, sizeof(line) - 1 - have);

		if (n <= 0)
			break;
		have += (size_t)n;
	}
	p->got[1] = (ssize_t)have;
	for (size_t i = 0; i < have; i++)
		if (line[i] >= 'a' && line[i] <= 'z')
			line[i] = (char)(line[i] - 'a' + 'A');
	p->got[2] = weft_tls_write(t, line, have);
	p->got[3] = weft_tls_shutdown(t);
	weft_tls_free(t);
	weft_close(fd);
	return 0;
}

/* A listener on 127.0.0.1, port chosen by the kernel. */
static int listen_any(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 4), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
	*port = ntohs(a.sin_port);
	return l;
}

static void against_s_client(const char *vflag, int version)
{
	char in[128], out[128], text[4096], connect[64], ca[128];
	struct sproc p = { .ctx = server_ctx(version) };

	need_openssl();
	p.lfd = listen_any(&p.port);
	snprintf(connect, sizeof(connect), "127.0.0.1:%d", p.port);
	snprintf(ca, sizeof(ca), "%s/ca.pem", pki.dir);
	snprintf(in, sizeof(in), "%s/s_client.%d.in", pki.dir, (int)getpid());
	snprintf(out, sizeof(out), "%s/s_client.%d.out", pki.dir, (int)getpid());

	FILE *f = fopen(in, "w");

	assert_non_null(f);
	fputs("hello weft\n", f);
	fclose(f);

	const char *argv[] = { "s_client",  "-connect",
			       connect,	    "-servername",
			       "localhost", "-verify_hostname",
			       "localhost", "-CAfile",
			       ca,	    "-verify_return_error",
			       vflag,	    "-quiet",
			       NULL };
	pid_t pid = spawn_openssl(argv, in, out);

	assert_true(pid > 0);
	t_run(for_s_client, &p);
	close(p.lfd);

	int status = reap(pid);

	slurp(out, text, sizeof(text));
	unlink(in);
	unlink(out);
	SSL_CTX_free(p.ctx);
	if (p.got[0] < 0)
		fail_msg("handshake: %d %s; s_client said: %s", (int)p.got[0], p.err, text);
	assert_int_equal(p.got[1], 11);
	assert_int_equal(p.got[2], 11);
	assert_int_equal(p.got[3], 0);
	if (!strstr(text, "HELLO WEFT\n"))
		fail_msg("s_client printed: %s", text);
	assert_true(WIFEXITED(status));
}

static void test_tls_server_talks_to_s_client_tls13(void **state)
{
	(void)state;
	against_s_client("-tls1_3", TLS1_3_VERSION);
}

static void test_tls_server_talks_to_s_client_tls12(void **state)
{
	(void)state;
	against_s_client("-tls1_2", TLS1_2_VERSION);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_weft_to_weft_tls13_exchanges_data),
		cmocka_unit_test(test_tls_weft_to_weft_tls12_exchanges_data),
		cmocka_unit_test(test_tls_client_verifies_ip_address_without_sni),
		cmocka_unit_test(test_tls_large_transfer_with_short_reads),
		cmocka_unit_test(test_tls_client_fails_ekeyrejected_on_wrong_hostname),
		cmocka_unit_test(test_tls_client_fails_ekeyrejected_on_untrusted_ca),
		cmocka_unit_test(test_tls_handshake_fails_eproto_without_common_version),
		cmocka_unit_test(test_tls_handshake_fails_etimedout_on_stalled_peer),
		cmocka_unit_test(test_tls_server_handshake_fails_etimedout_on_silent_client),
		cmocka_unit_test(test_tls_cancel_wakes_fiber_parked_in_handshake),
		cmocka_unit_test(test_tls_cancel_wakes_fiber_parked_in_read),
		cmocka_unit_test(test_tls_read_goes_on_after_etimedout),
		cmocka_unit_test(test_tls_read_fails_econnreset_on_reset),
		cmocka_unit_test(test_tls_shutdown_reads_as_zero_on_both_sides),
		cmocka_unit_test(test_tls_second_call_fails_ebusy_while_one_is_parked),
		cmocka_unit_test(test_tls_concurrent_handshakes_keep_their_own_errors),
		cmocka_unit_test(test_tls_bad_input_fails_einval_ebadf_eperm),
		cmocka_unit_test(test_tls_client_talks_to_s_server_tls13),
		cmocka_unit_test(test_tls_client_talks_to_s_server_tls12),
		cmocka_unit_test(test_tls_server_talks_to_s_client_tls13),
		cmocka_unit_test(test_tls_server_talks_to_s_client_tls12),
	};

	if (!t_io_uring_usable())
		return 77;
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
