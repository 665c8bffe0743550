/* SPDX-License-Identifier: MIT */
/*
 * RESP2: the request parser over weft_reader, and the reply writers. The
 * parser copies each argument into the connection's arena (a reader's view
 * lasts only until its next call), growing it as bytes arrive, never by a
 * length the client merely announced: a hostile "$536870912" costs nothing
 * until the bytes come, and every connection is bounded by --max-bulk per
 * argument and by kv_cfg.max_query per command.
 */
#include "resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- replies ---- */

static bool out_reserve(struct out *o, size_t n)
{
	if (o->broken)
		return false;
	if (o->len + n <= o->cap)
		return true;
	size_t cap = o->cap ? o->cap : 4096;

	while (cap < o->len + n)
		cap *= 2;
	char *p = realloc(o->buf, cap);

	if (!p) {
		o->broken = true;
		return false;
	}
	o->buf = p;
	o->cap = cap;
	return true;
}

void out_raw(struct out *o, const char *p, size_t len)
{
	if (!out_reserve(o, len))
		return;
	memcpy(o->buf + o->len, p, len);
	o->len += len;
}

static void out_line(struct out *o, char c, const char *s, size_t len)
{
	if (!out_reserve(o, len + 3))
		return;
	o->buf[o->len++] = c;
	memcpy(o->buf + o->len, s, len);
	o->len += len;
	o->buf[o->len++] = '\r';
	o->buf[o->len++] = '\n';
}

void out_status(struct out *o, const char *s)
{
	out_line(o, '+', s, strlen(s));
}

void out_error(struct out *o, const char *s)
{
	out_line(o, '-', s, strlen(s));
}

void out_errorf(struct out *o, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);

	va_end(ap);
	if (n < 0)
		n = 0;
	/* Newlines would end the reply early: redis replaces them with spaces too. */
	for (int i = 0; i < n && i < (int)sizeof(buf) - 1; i++)
		if (buf[i] == '\r' || buf[i] == '\n')
			buf[i] = ' ';
	out_line(o, '-', buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void out_prefixed(struct out *o, char c, long long v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%lld", v);

	out_line(o, c, buf, (size_t)n);
}

void out_int(struct out *o, long long v)
{
	out_prefixed(o, ':', v);
}

void out_array(struct out *o, long long n)
{
	out_prefixed(o, '*', n);
}

void out_bulk(struct out *o, const char *p, size_t len)
{
	out_prefixed(o, '$', (long long)len);
	if (!out_reserve(o, len + 2))
		return;
	memcpy(o->buf + o->len, p, len);
	o->len += len;
	o->buf[o->len++] = '\r';
	o->buf[o->len++] = '\n';
}

void out_nil(struct out *o)
{
	out_raw(o, "$-1\r\n", 5);
}

void out_double(struct out *o, double v)
{
	char buf[64];
	int n = kv_fmt_double(buf, sizeof(buf), v);

	out_bulk(o, buf, (size_t)n);
}

/* ---- the arena ---- */

static int arena_reserve(struct req *q, size_t n)
{
	if (q->alen + n <= q->acap)
		return 0;
	if ((long long)(q->alen + n) > kv_cfg.max_query)
		return -E2BIG;
	size_t cap = q->acap ? q->acap : 256;

	while (cap < q->alen + n)
		cap *= 2;
	char *p = realloc(q->arena, cap);

	if (!p)
		return -ENOMEM;
	q->arena = p;
	q->acap = cap;
	return 0;
}

/* Start argument argc at the arena's end (its length is filled in as bytes come). */
static int arg_begin(struct req *q)
{
	if ((size_t)q->argc == q->argcap) {
		size_t cap = q->argcap ? q->argcap * 2 : 16;
		struct arg *a = realloc(q->argv, cap * sizeof(*a));

		if (!a)
			return -ENOMEM;
		q->argv = a;
		q->argcap = cap;
	}
	/* p holds the offset until req_read ends: the arena may still move. */
	q->argv[q->argc] = (struct arg){ .p = (const char *)(uintptr_t)q->alen, .len = 0 };
	q->argc++;
	return 0;
}

static int arg_append(struct req *q, const char *p, size_t n)
{
	int rc = arena_reserve(q, n);

	if (rc < 0)
		return rc;
	memcpy(q->arena + q->alen, p, n);
	q->alen += n;
	q->argv[q->argc - 1].len += n;
	return 0;
}

void req_fini(struct req *q)
{
	free(q->arena);
	free(q->argv);
	q->arena = NULL;
	q->argv = NULL;
	q->acap = q->argcap = 0;
}

/* ---- reading ---- */

static int proto_error(struct req *q, const char *msg)
{
	out_errorf(q->out, "ERR Protocol error: %s", msg);
	return -EPROTO;
}

/* Flush the replies before a read that would wait for more than what is buffered. */
static int before_read(struct req *q, size_t need)
{
	if (q->out->len && weft_reader_buffered(q->r) < need)
		return q->flush(q->flush_arg);
	return 0;
}

/* The next line, its CR LF (or LF) cut off. Return: 1, 0 at EOF, -errno. */
static int read_line(struct req *q, const char **line, size_t *len, const char *too_big)
{
	int rc = before_read(q, 1);

	if (rc < 0)
		return rc;
	ssize_t n = weft_reader_until(q->r, '\n', line);

	if (n == -EMSGSIZE)
		return proto_error(q, too_big);
	if (n <= 0)
		return (int)n;
	if ((*line)[n - 1] != '\n')
		return 0; /* the stream ended inside a line: drop it, as redis does */
	n--;
	if (n > 0 && (*line)[n - 1] == '\r')
		n--;
	*len = (size_t)n;
	return 1;
}

/* @n bytes of payload and its CR LF, in chunks no longer than a line. */
static int read_bulk(struct req *q, size_t n)
{
	size_t left = n + 2;
	int rc;

	while (left > 0) {
		size_t chunk = left < RESP_LINE_MAX ? left : RESP_LINE_MAX;
		const char *p;

		if ((rc = before_read(q, chunk)) < 0)
			return rc;
		ssize_t got = weft_reader_exact(q->r, chunk, &p);

		if (got <= 0)
			return got == -ENODATA ? 0 : (int)got;
		size_t payload = left > 2 ? left - 2 : 0; /* the CR LF is not kept */
		size_t keep = chunk < payload ? chunk : payload;

		if ((rc = arg_append(q, p, keep)) < 0)
			return rc == -E2BIG ? proto_error(q, "query buffer limit reached") : rc;
		left -= chunk;
	}
	return 1;
}

/* One "$len" line and its payload. */
static int read_arg(struct req *q)
{
	const char *line;
	size_t len;
	long long n;
	int rc = read_line(q, &line, &len, "too big bulk count string");

	if (rc <= 0)
		return rc;
	if (len == 0 || line[0] != '$') {
		char got[64];

		snprintf(got, sizeof(got), "expected '$', got '%c'", len ? line[0] : ' ');
		return proto_error(q, got);
	}
	if (kv_parse_ll(line + 1, len - 1, &n) < 0 || n < 0 || n > kv_cfg.max_bulk)
		return proto_error(q, "invalid bulk length");
	if ((rc = arg_begin(q)) < 0)
		return rc;
	return read_bulk(q, (size_t)n);
}

/* "*N" then N arguments. N is bounded (1M) and argv grows as arguments come. */
static int read_multibulk(struct req *q, const char *line, size_t len)
{
	long long n;

	if (kv_parse_ll(line + 1, len - 1, &n) < 0 || n > 1024 * 1024)
		return proto_error(q, "invalid multibulk length");
	for (long long i = 0; i < n; i++) {
		int rc = read_arg(q);

		if (rc <= 0)
			return rc;
	}
	return 1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One escape of a double-quoted inline argument at *s: its byte, and how many it took. */
static char unescape(const char *s, const char *end, size_t *used)
{
	*used = 2;
	if (s + 3 < end && s[1] == 'x' && hexval(s[2]) >= 0 && hexval(s[3]) >= 0) {
		*used = 4;
		return (char)(hexval(s[2]) * 16 + hexval(s[3]));
	}
	switch (s[1]) {
	case 'n':
		return '\n';
	case 'r':
		return '\r';
	case 't':
		return '\t';
	case 'b':
		return '\b';
	case 'a':
		return '\a';
	default:
		return s[1];
	}
}

/* A quoted argument from *ps (at the quote); as sdssplitargs. Return: 0, -EPROTO, -errno. */
static int inline_quoted(struct req *q, const char **ps, const char *end)
{
	const char *s = *ps;
	char quote = *s++;
	int rc;

	for (;;) {
		if (s >= end)
			return proto_error(q, "unbalanced quotes in request");
		if (*s == quote) {
			s++;
			break;
		}
		char c = *s;
		size_t used = 1;

		if (*s == '\\' && s + 1 < end && quote == '"') {
			c = unescape(s, end, &used);
		} else if (*s == '\\' && s + 1 < end && s[1] == '\'') {
			c = '\'';
			used = 2;
		}
		if ((rc = arg_append(q, &c, 1)) < 0)
			return rc;
		s += used;
	}
	if (s < end && *s != ' ' && *s != '\t')
		return proto_error(q, "unbalanced quotes in request");
	*ps = s;
	return 0;
}

/* An inline command: arguments split at blanks, with quotes as redis-cli writes them. */
static int read_inline(struct req *q, const char *line, size_t len)
{
	const char *s = line;
	const char *end = line + len;
	int rc;

	for (;;) {
		while (s < end && (*s == ' ' || *s == '\t'))
			s++;
		if (s == end)
			return 1;
		if ((rc = arg_begin(q)) < 0)
			return rc;
		if (*s == '"' || *s == '\'') {
			if ((rc = inline_quoted(q, &s, end)) < 0)
				return rc;
			continue;
		}
		const char *w = s;

		while (s < end && *s != ' ' && *s != '\t')
			s++;
		if ((rc = arg_append(q, w, (size_t)(s - w))) < 0)
			return rc;
	}
}

int req_read(struct req *q)
{
	const char *line;
	size_t len;
	int rc;

	if (q->acap > 64 * 1024)
		req_fini(q); /* give back what a big command took */
	q->alen = 0;
	q->argc = 0;
	rc = read_line(q, &line, &len, "too big inline request");
	if (rc <= 0)
		return rc;
	if (len > 0 && line[0] == '*')
		rc = read_multibulk(q, line, len);
	else
		rc = read_inline(q, line, len);
	if (rc == -E2BIG)
		rc = proto_error(q, "query buffer limit reached");
	if (rc <= 0)
		return rc;
	for (int i = 0; i < q->argc; i++)
		q->argv[i].p = q->arena + (uintptr_t)q->argv[i].p;
	return 1;
}
