/* SPDX-License-Identifier: MIT */
/*
 * weft_reader: delimited records and frames of a known length out of a
 * stream, returned as views. The bytes not returned yet are, in stream
 * order, those of the reader's own buffer, then those of the one lent
 * buffer it may hold; a record that lies whole in the lent buffer is
 * returned in place, and only a record a receive cut is copied into own.
 * The invariant: the reader receives only when it holds no lent buffer, so
 * it never holds more than max_buffer bytes of its own plus one lent buffer.
 */
#include "base.h"

#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/*
 * Own buffers of a page or less are kept once empty, for the next record a
 * receive cuts (a stream of short records pays no malloc per record); a
 * bigger one, grown for a long record, is freed as soon as it is empty, so
 * that a reader parked on an idle connection pins at most this much.
 */
#define OWN_KEEP 4096
#define OWN_MIN 256 /* the first own buffer, unless the record needs more */

/*
 * Where a reader's bytes come from. A socket's are weft_recv_buf's lent
 * buffers; a TLS stream would lend its decrypted bytes the same way, and
 * plug in through reader_open (to be declared in reader.h when it exists).
 */
struct reader_source {
	/* Lend the next bytes in @out: their count, 0 at the end, or -errno and nothing lent. */
	ssize_t (*recv_lent)(void *ctx, weft_buf *out);
	/* Give back what recv_lent lent; @b is zeroed. */
	void (*release)(void *ctx, weft_buf *b);
};

struct weft_reader {
	const struct reader_source *src; /* where the bytes come from */
	void *ctx;			 /* the source's (the fd, for a socket) */
	size_t max;			 /* the longest record, delimiter included */
	weft_buf lent;			 /* the lent buffer held; zeroed when none */
	size_t lent_off;		 /* its first byte not returned yet */
	char *own;			 /* the reader's own bytes: NULL until a record is cut */
	size_t own_cap;			 /* bytes allocated at own, at most max */
	size_t own_off;			 /* own's first byte not returned yet */
	size_t own_len;			 /* the end of own's bytes */
	size_t scanned;			 /* bytes from own_off known not to hold scan_delim */
	int scan_delim;			 /* the delimiter scanned was counted for */
	int skip_delim; /* -1, or the delimiter of a too long record being skipped */
	bool eof;	/* the source has said the stream ended */
};

static ssize_t fd_recv_lent(void *ctx, weft_buf *out)
{
	return weft_recv_buf((int)(intptr_t)ctx, out, 0);
}

static void fd_release(void *ctx, weft_buf *b)
{
	(void)ctx;
	weft_buf_release(b);
}

static const struct reader_source fd_source = {
	.recv_lent = fd_recv_lent,
	.release = fd_release,
};

static size_t own_avail(const struct weft_reader *r)
{
	return r->own_len - r->own_off;
}

static size_t lent_avail(const struct weft_reader *r)
{
	return r->lent.len - r->lent_off;
}

static void drop_lent(struct weft_reader *r)
{
	assert(r->lent.data);
	r->src->release(r->ctx, &r->lent);
	r->lent = (weft_buf){ .data = NULL };
	r->lent_off = 0;
}

/*
 * At the start of each call, the view the last one returned ends: give
 * back a lent buffer whose bytes have all been returned, and empty own (and
 * free it if it grew past OWN_KEEP) when all of its bytes have been.
 */
static void settle(struct weft_reader *r)
{
	if (r->lent.data && r->lent_off == r->lent.len)
		drop_lent(r);
	if (r->own_off < r->own_len)
		return;
	r->own_off = 0;
	r->own_len = 0;
	r->scanned = 0;
	if (r->own_cap > OWN_KEEP) {
		free(r->own);
		r->own = NULL;
		r->own_cap = 0;
	}
}

/*
 * Room in own for @extra more bytes after its own_avail ones, which then
 * total at most max: moved to the front if that is enough, else the buffer
 * doubles (from OWN_MIN) until they fit, up to max. Moving or growing own
 * ends the views into it: only a call on the reader, after settle, comes here.
 */
static int own_make_room(struct weft_reader *r, size_t extra)
{
	size_t have = own_avail(r);
	size_t need = have + extra;
	size_t cap = r->own_cap ? r->own_cap : OWN_MIN;
	char *p;

	assert(need <= r->max);
	if (r->own_len + extra <= r->own_cap)
		return 0;
	if (r->own_off > 0) {
		memmove(r->own, r->own + r->own_off, have);
		r->own_off = 0;
		r->own_len = have;
	}
	if (need <= r->own_cap)
		return 0;
	while (cap < need)
		cap = cap > r->max / 2 ? r->max : cap * 2;
	if (cap > r->max)
		cap = r->max;
	p = realloc(r->own, cap);
	if (!p)
		return -ENOMEM;
	r->own = p;
	r->own_cap = cap;
	return 0;
}

/* Copy the next @n lent bytes to the end of own; the lent buffer goes back once all are taken. */
static int absorb(struct weft_reader *r, size_t n)
{
	int rc = own_make_room(r, n);

	assert(n <= lent_avail(r));
	if (rc < 0)
		return rc;
	memcpy(r->own + r->own_len, (const char *)r->lent.data + r->lent_off, n);
	r->own_len += n;
	r->lent_off += n;
	if (r->lent_off == r->lent.len)
		drop_lent(r);
	return 0;
}

/* The next @n bytes, in own or in the lent buffer, as a view valid until the next call. */
static ssize_t give(struct weft_reader *r, bool from_own, size_t n, const char **out)
{
	if (from_own) {
		assert(n <= own_avail(r));
		*out = r->own + r->own_off;
		r->own_off += n;
		r->scanned = 0;
	} else {
		assert(own_avail(r) == 0 && n <= lent_avail(r));
		*out = (const char *)r->lent.data + r->lent_off;
		r->lent_off += n;
	}
	return (ssize_t)n;
}

/* The next bytes of the stream into r->lent: as the source's recv_lent; the end is remembered. */
static ssize_t refill(struct weft_reader *r)
{
	ssize_t n;

	assert(!r->lent.data);
	if (r->eof)
		return 0;
	n = r->src->recv_lent(r->ctx, &r->lent);
	if (n <= 0)
		r->lent = (weft_buf){ .data = NULL };
	if (n == 0)
		r->eof = true;
	assert(n <= 0 || (r->lent.data && r->lent.len == (size_t)n));
	r->lent_off = 0;
	return n;
}

/*
 * Skip a record longer than max: drop the bytes up to and including
 * skip_delim, receiving as many times as it takes and keeping none. An
 * error of a receive is returned and the skip goes on at the next call,
 * which then returns -EMSGSIZE for it. The end of the stream ends it too.
 * Known limitation: -EMSGSIZE comes only once the delimiter has, so a peer
 * that never sends one holds the caller until its deadline; returning it
 * at once and skipping at the next call would let a server answer sooner.
 */
static ssize_t skip(struct weft_reader *r)
{
	const int d = r->skip_delim;

	for (;;) {
		if (own_avail(r) > 0) {
			const char *own = r->own + r->own_off;
			const char *p = memchr(own, d, own_avail(r));

			if (p) {
				r->own_off += (size_t)(p - own) + 1;
				break;
			}
			r->own_off = r->own_len;
		}
		if (r->lent.data) {
			const char *lent = (const char *)r->lent.data + r->lent_off;
			const char *p = memchr(lent, d, lent_avail(r));

			if (p) {
				r->lent_off += (size_t)(p - lent) + 1;
				break;
			}
			drop_lent(r);
		}
		if (r->eof)
			break;
		settle(r);

		ssize_t n = refill(r);

		if (n < 0)
			return n;
	}
	r->skip_delim = -1;
	r->scanned = 0;
	return -EMSGSIZE;
}

/*
 * The next record ending with @delim, from what is buffered: its length
 * (0 at the end of the stream), or *@more set when a receive must come
 * first, for which every lent byte has been moved into own. own is
 * searched from where the last try stopped (scanned), so a line that comes
 * a byte at a time costs linear time. A record is at most max bytes, so
 * only the first max buffered bytes can hold its delimiter; max of them
 * without it is a record too long, unless the stream ends right there.
 */
static ssize_t find_line(struct weft_reader *r, int delim, const char **line, bool *more)
{
	size_t a = own_avail(r);
	size_t b = lent_avail(r);
	const char *p;
	int rc;

	assert(a <= r->max && r->scanned <= a);
	if (a > 0) {
		const char *own = r->own + r->own_off;

		p = memchr(own + r->scanned, delim, a - r->scanned);
		if (p)
			return give(r, true, (size_t)(p - own) + 1, line);
		r->scanned = a;
	}
	if (b > 0 && a < r->max) {
		const char *lent = (const char *)r->lent.data + r->lent_off;
		size_t lim_b = b < r->max - a ? b : r->max - a;

		p = memchr(lent, delim, lim_b);
		if (p && a == 0)
			return give(r, false, (size_t)(p - lent) + 1, line);
		if (p) {
			rc = absorb(r, (size_t)(p - lent) + 1);
			return rc < 0 ? rc : give(r, true, own_avail(r), line);
		}
	}
	if (a + b > r->max) {
		r->skip_delim = delim;
		return skip(r);
	}
	if (b > 0) {
		rc = absorb(r, b);
		if (rc < 0)
			return rc;
		r->scanned = a + b;
	}
	if (!r->eof) {
		*more = true;
		return 0;
	}
	return a + b == 0 ? 0 : give(r, true, a + b, line);
}

/*
 * The next @n bytes from what is buffered, in place in the lent buffer
 * when it holds them all; or *@more set, every lent byte moved into own.
 */
static ssize_t find_frame(struct weft_reader *r, size_t n, const char **data, bool *more)
{
	size_t a = own_avail(r);
	size_t b = lent_avail(r);
	int rc;

	if (a >= n)
		return give(r, true, n, data);
	if (a == 0 && b >= n)
		return give(r, false, n, data);
	if (a + b >= n) {
		rc = absorb(r, n - a);
		return rc < 0 ? rc : give(r, true, n, data);
	}
	if (b > 0) {
		rc = absorb(r, b);
		if (rc < 0)
			return rc;
	}
	if (!r->eof) {
		*more = true;
		return 0;
	}
	if (a + b == 0)
		return 0;
	r->own_off = r->own_len; /* a partial frame at the end: dropped */
	r->scanned = 0;
	return -ENODATA;
}

/* A reader over @src: the one constructor, whatever the source. */
static int reader_open(weft_reader **out, const struct reader_source *src, void *ctx, size_t max)
{
	struct weft_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->src = src;
	r->ctx = ctx;
	r->max = max;
	r->scan_delim = -1;
	r->skip_delim = -1;
	*out = r;
	return 0;
}

int weft_reader_create(weft_reader **out, int fd, size_t max_buffer)
{
	if (!out || max_buffer == 0)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	return reader_open(out, &fd_source, (void *)(intptr_t)fd, max_buffer);
}

ssize_t weft_reader_until(weft_reader *r, int delim, const char **line)
{
	if (!r || !line || delim < 0 || delim > 255)
		return -EINVAL;
	settle(r);
	if (r->skip_delim >= 0)
		return skip(r);
	if (delim != r->scan_delim) {
		r->scan_delim = delim;
		r->scanned = 0;
	}
	for (;;) {
		bool more = false;
		ssize_t n = find_line(r, delim, line, &more);

		if (!more)
			return n;
		n = refill(r);
		if (n < 0)
			return n;
	}
}

ssize_t weft_reader_exact(weft_reader *r, size_t n, const char **data)
{
	if (!r || !data || n == 0)
		return -EINVAL;
	if (n > r->max)
		return -EMSGSIZE;
	settle(r);
	if (r->skip_delim >= 0)
		return skip(r);
	for (;;) {
		bool more = false;
		ssize_t got = find_frame(r, n, data, &more);

		if (!more)
			return got;
		got = refill(r);
		if (got < 0)
			return got;
	}
}

size_t weft_reader_buffered(const weft_reader *r)
{
	return r ? own_avail(r) + lent_avail(r) : 0;
}

void weft_reader_destroy(weft_reader *r)
{
	if (!r)
		return;
	if (r->lent.data)
		drop_lent(r);
	free(r->own);
	free(r);
}
