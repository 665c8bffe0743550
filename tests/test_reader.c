/* SPDX-License-Identifier: MIT */
/*
 * weft_reader over socketpairs (a TCP pair for the reset), fed by a writer
 * fiber: lines a byte at a time, pipelined views, lines over max_buffer,
 * the end of the stream, frames, deadlines and cancels that lose no byte,
 * a reset, bad input, 10,000 records in random chunks, destroy with bytes.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static int t_pair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ? -errno : 0;
}

static void t_close2(int sv[2])
{
	weft_close(sv[0]);
	weft_close(sv[1]);
}

static uint32_t t_bufs_lent(void)
{
	weft_stats st;

	weft_loop_stats(weft_loop_current(), &st);
	return st.bufs_lent;
}

/* A config whose lent buffers are 64 bytes, so that records are cut often. */
static const weft_config *t_small_bufs(void)
{
	static weft_config cfg;

	weft_config_init(&cfg);
	cfg.recv_buffer_size = 64;
	return &cfg;
}

/* ---- the writer ------------------------------------------------------------------ */

struct feed {
	int fd;
	const char *data;
	size_t len;
	size_t chunk;	/* bytes per send; with random, at most that many */
	int random;	/* 1: each send takes 1..chunk bytes */
	unsigned seed;	/* for random */
	int64_t gap_ns; /* pause after each send (weft_sleep), 0: weft_yield */
	ssize_t rc;	/* 0, or the failed send's error */
};

static int feeder(void *arg)
{
	struct feed *f = arg;
	unsigned seed = f->seed;
	size_t off = 0;

	while (off < f->len) {
		size_t n = f->random ? 1 + (size_t)rand_r(&seed) % f->chunk : f->chunk;

		if (n > f->len - off)
			n = f->len - off;

		ssize_t s = weft_send(f->fd, f->data + off, n, MSG_NOSIGNAL);

		if (s < 0) {
			f->rc = s;
			break;
		}
		off += (size_t)s;
		if (f->gap_ns)
			weft_sleep(f->gap_ns);
		else
			weft_yield();
	}
	weft_shutdown(f->fd, SHUT_WR); /* then hang up */
	return 0;
}

/*
 * What the calls returned, in order, as one string: a record and '|', an
 * error's name and '|' ("END|" for 0), or "key=value|" for a count. In
 * records, a NUL shows as \0 and a byte 0xff as \xff.
 */
#define LOG 512

static void t_log(char *log, const char *what)
{
	strncat(log, what, LOG - strlen(log) - 1);
}

static void t_num(char *log, const char *key, long v)
{
	char b[64];

	snprintf(b, sizeof(b), "%s=%ld|", key, v);
	t_log(log, b);
}

static void t_rec(char *log, ssize_t n, const char *p)
{
	const char *name = n < 0 ? strerrorname_np((int)-n) : n == 0 ? "END" : "";
	char b[2] = "";

	for (ssize_t i = 0; i < n; i++) {
		b[0] = p[i];
		t_log(log, p[i] == 0 ? "\\0" : (unsigned char)p[i] == 0xff ? "\\xff" : b);
	}
	if (!name) {
		t_num(log, "rc", (long)n);
		return;
	}
	t_log(log, name);
	t_log(log, "|");
}

/* weft_reader_until and weft_reader_exact, logged; @p (may be NULL) gets the view. */
static ssize_t t_until(weft_reader *r, int delim, const char **p, char *log)
{
	const char *v = NULL;
	ssize_t n = weft_reader_until(r, delim, &v);

	t_rec(log, n, v);
	if (p)
		*p = v;
	return n;
}

static ssize_t t_exact(weft_reader *r, size_t len, char *log)
{
	const char *v = NULL;
	ssize_t n = weft_reader_exact(r, len, &v);

	t_rec(log, n, v);
	return n;
}

/*
 * A reader over a socketpair that a writer feeds @data (then hangs up),
 * called until it returns 0 (16 calls at most): until with '\n', or
 * exact(@frame) when @frame is not 0; @log says what they returned.
 */
struct script {
	const char *data;
	size_t chunk;
	int64_t gap_ns;
	size_t max;
	size_t frame;
	const weft_config *cfg;
	char log[LOG];
	ssize_t feed_rc;
};

static int script_main(void *arg)
{
	struct script *s = arg;
	struct feed f = { .data = s->data, .len = strlen(s->data) };
	weft_reader *r;
	weft_fiber *w;
	int sv[2];

	if (t_pair(sv) < 0 || weft_reader_create(&r, sv[0], s->max) < 0)
		return -1;
	f.fd = sv[1];
	f.chunk = s->chunk;
	f.gap_ns = s->gap_ns;
	if (weft_spawn(NULL, feeder, &f, &w) < 0)
		return -2;
	for (int i = 0; i < 16; i++)
		if ((s->frame ? t_exact(r, s->frame, s->log) : t_until(r, '\n', NULL, s->log)) == 0)
			break;
	weft_join(w, NULL);
	s->feed_rc = f.rc;
	weft_reader_destroy(r);
	t_close2(sv);
	return 0;
}

/* Run @s and check its log against @want. */
static void run_script(struct script *s, const char *want)
{
	assert_int_equal(t_run_cfg(s->cfg, script_main, s, NULL), 0);
	assert_int_equal(s->feed_rc, 0);
	assert_string_equal(s->log, want);
}

/* Run @fn(@log) as the first fiber of a loop and check the log against @want. */
static void run_logged(weft_fn fn, const char *want)
{
	char log[LOG] = "";

	assert_int_equal(t_run(fn, log), 0);
	assert_string_equal(log, want);
}

/* ---- lines ----------------------------------------------------------------------- */

static void test_reader_lines_arrive_a_byte_at_a_time(void **state)
{
	struct script s = { .data = "hello\n\na somewhat longer line here\nx\n",
			    .chunk = 1,
			    .gap_ns = 20 * WEFT_USEC,
			    .max = 64 };

	(void)state;
	run_script(&s, "hello\n|\n|a somewhat longer line here\n|x\n|END|");
}

/* Three lines in one receive: views into the one lent buffer, one after the other. */
static int piped_main(void *arg)
{
	static const char bytes[] = "one\ntwo\nthree\nab\0cd\xff"
				    "ef";
	char *log = arg;
	const char *p[3];
	weft_reader *r;
	int sv[2];

	if (t_pair(sv) < 0 || weft_reader_create(&r, sv[0], 32) < 0)
		return -1;
	if (weft_send(sv[1], bytes, sizeof(bytes) - 1, 0) != sizeof(bytes) - 1)
		return -2;
	weft_shutdown(sv[1], SHUT_WR);
	for (int i = 0; i < 3; i++) {
		t_until(r, '\n', &p[i], log);
		t_num(log, "left", (long)weft_reader_buffered(r));
	}
	t_num(log, "lent", t_bufs_lent());
	t_num(log, "step", p[1] - p[0]);
	t_num(log, "step", p[2] - p[1]);
	t_rec(log, 14, p[0]); /* the three views are still valid */
	t_until(r, 0, NULL, log);
	t_until(r, 255, NULL, log);
	t_until(r, '\n', NULL, log); /* "ef", then the end */
	t_until(r, '\n', NULL, log);
	t_num(log, "lent", t_bufs_lent());
	weft_reader_destroy(r);
	t_close2(sv);
	return 0;
}

static void test_reader_pipelined_lines_are_views_into_one_lent_buffer(void **state)
{
	(void)state;
	run_logged(piped_main, "one\n|left=18|two\n|left=14|three\n|left=8|lent=1|step=4|step=4|"
			       "one\ntwo\nthree\n|ab\\0|cd\\xff|ef|END|lent=0|");
}

struct parked {
	weft_reader *r;
	char *log;
};

static int parked_reader(void *arg)
{
	struct parked *c = arg;

	t_until(c->r, '\n', NULL, c->log);
	t_until(c->r, '\n', NULL, c->log);
	return 0;
}

static int parked_main(void *arg)
{
	struct parked c = { .log = arg };
	weft_fiber *f;
	int sv[2];

	if (t_pair(sv) < 0 || weft_reader_create(&c.r, sv[0], 32) < 0)
		return -1;
	weft_send(sv[1], "abc\ndef", 7, 0);
	weft_spawn(NULL, parked_reader, &c, &f);
	/* It took "abc\n", then copied "def" out and parked for the rest. */
	for (int i = 0; i < 1000 && weft_reader_buffered(c.r) != 3; i++)
		weft_sleep(WEFT_MSEC);
	t_num(c.log, "lent", t_bufs_lent());
	t_num(c.log, "left", (long)weft_reader_buffered(c.r));
	weft_send(sv[1], "\n", 1, 0);
	weft_join(f, NULL);
	weft_reader_destroy(c.r);
	t_close2(sv);
	return 0;
}

static void test_reader_parked_mid_line_holds_no_lent_buffer(void **state)
{
	(void)state;
	/* "def" was copied out and the lent buffer given back before the wait. */
	run_logged(parked_main, "abc\n|lent=0|left=3|def\n|");
}

static void test_reader_too_long_line_is_skipped(void **state)
{
	/* max 16: 15 bytes and the delimiter fit, 16 and the delimiter do not. */
	struct script s = { .data = "short\n"
				    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
				    "after\n"
				    "yyyyyyyyyyyyyyy\n"
				    "zzzzzzzzzzzzzzzz\n"
				    "last_of_sixteen!",
			    .chunk = 4096,
			    .max = 16 };

	(void)state;
	/* The last record, max bytes without a delimiter, is not too long. */
	run_script(&s, "short\n|EMSGSIZE|after\n|yyyyyyyyyyyyyyy\n|EMSGSIZE|last_of_sixteen!|END|");
}

static char long_text[8192];

/* A 5,000-byte line cut by 64-byte receives, and by the writer's 700- and 7-byte sends. */
static void test_reader_too_long_line_spanning_receives_is_skipped(void **state)
{
	struct script s = { .chunk = 700, .gap_ns = 10 * WEFT_USEC, .max = 100 };
	struct script t = { .chunk = 7, .max = 100 };
	struct script u = { .chunk = 333, .max = 100 };

	(void)state;
	strcpy(long_text, "first\n");
	memset(long_text + 6, 'q', 5000);
	strcpy(long_text + 5006, "\nnext one\n");
	s.data = t.data = u.data = long_text;
	s.cfg = t.cfg = t_small_bufs();
	run_script(&s, "first\n|EMSGSIZE|next one\n|END|");
	run_script(&t, "first\n|EMSGSIZE|next one\n|END|");
	long_text[5006] = 0; /* too long and never ended: -EMSGSIZE at the end, then 0 */
	run_script(&u, "first\n|EMSGSIZE|END|");
}

static void test_reader_end_of_stream_mid_line_and_at_once(void **state)
{
	struct script s = { .data = "abc\nlast", .chunk = 2, .max = 32 };
	struct script e = { .data = "", .chunk = 1, .max = 32 };

	(void)state;
	run_script(&s, "abc\n|last|END|");
	run_script(&e, "END|");
}

/* ---- frames ---------------------------------------------------------------------- */

static void test_reader_exact_frames_split_over_receives(void **state)
{
	struct script s = { .data = "abcdefghijkl", .chunk = 1, .gap_ns = 20 * WEFT_USEC };
	struct script p = { .data = "abcdefghij", .chunk = 3 };
	struct script e = { .data = "", .chunk = 1 };

	(void)state;
	s.max = p.max = e.max = 8;
	s.frame = p.frame = e.frame = 4;
	run_script(&s, "abcd|efgh|ijkl|END|");
	run_script(&p, "abcd|efgh|ENODATA|END|"); /* "ij", then the end: dropped */
	run_script(&e, "END|");
}

/* A header line, then a body of the length it gives, as a protocol parser reads them. */
static int mixed_main(void *arg)
{
	static const char msg[] = "5\nhello3\nabc";
	struct feed f = { .data = msg, .len = sizeof(msg) - 1, .chunk = 3 };
	char *log = arg;
	weft_reader *r;
	weft_fiber *w;
	const char *p;
	int sv[2];

	if (t_pair(sv) < 0 || weft_reader_create(&r, sv[0], 8) < 0)
		return -1;
	f.fd = sv[1];
	weft_spawn(NULL, feeder, &f, &w);
	for (int i = 0; i < 2; i++) {
		if (t_until(r, '\n', &p, log) <= 0)
			break;

		size_t len = (size_t)atoi(p); /* the record ends with '\n' */

		if (i == 0)
			t_exact(r, 9, log); /* over max: nothing taken */
		t_exact(r, len, log);
	}
	t_exact(r, 1, log);
	weft_join(w, NULL);
	weft_reader_destroy(r);
	t_close2(sv);
	return 0;
}

static void test_reader_lines_and_frames_mixed(void **state)
{
	(void)state;
	run_logged(mixed_main, "5\n|EMSGSIZE|hello|3\n|abc|END|");
}

/* ---- deadlines, cancels, resets -------------------------------------------------- */

struct interrupted {
	weft_reader *r;
	char *log;
};

static int read_line_once(void *arg)
{
	struct interrupted *c = arg;

	t_until(c->r, '\n', NULL, c->log);
	t_num(c->log, "left", (long)weft_reader_buffered(c->r));
	return 0;
}

/* A deadline mid-line, then a cancel mid-line (of another fiber): no byte lost. */
static int interrupted_main(void *arg)
{
	struct interrupted c = { .log = arg };
	weft_fiber *f;
	int sv[2];

	if (t_pair(sv) < 0 || weft_reader_create(&c.r, sv[0], 32) < 0)
		return -1;
	weft_send(sv[1], "x\nhel", 5, 0);
	t_until(c.r, '\n', NULL, c.log); /* "hel" is held: the deadline only cuts the wait */
	int64_t was = weft_set_timeout(5 * WEFT_MSEC);

	read_line_once(&c);
	weft_set_deadline(was);
	weft_send(sv[1], "lo\nwor", 6, 0);
	t_until(c.r, '\n', NULL, c.log);
	weft_spawn(NULL, read_line_once, &c, &f);
	weft_sleep(2 * WEFT_MSEC);
	weft_cancel(f);
	weft_join(f, NULL);
	weft_send(sv[1], "ld\n", 3, 0);
	t_until(c.r, '\n', NULL, c.log);
	weft_reader_destroy(c.r);
	t_close2(sv);
	return 0;
}

static void test_reader_deadline_and_cancel_mid_line_lose_no_byte(void **state)
{
	(void)state;
	run_logged(interrupted_main, "x\n|ETIMEDOUT|left=3|hello\n|ECANCELED|left=3|world\n|");
}

/* A deadline while a too long line is being skipped: the skip goes on at the next call. */
static int skip_deadline_main(void *arg)
{
	char *log = arg;
	char junk[302] = "a\n";
	weft_reader *r;
	int sv[2];

	if (t_pair(sv) < 0 || weft_reader_create(&r, sv[0], 16) < 0)
		return -1;
	memset(junk + 2, 'j', sizeof(junk) - 2);
	weft_send(sv[1], junk, sizeof(junk), 0);
	t_until(r, '\n', NULL, log); /* "a\n": the 300 'j' are held, then skipped */
	int64_t was = weft_set_timeout(5 * WEFT_MSEC);

	t_until(r, '\n', NULL, log);
	weft_set_deadline(was);
	weft_send(sv[1], junk + 2, 100, 0);
	weft_send(sv[1], "jj\nok\n", 6, 0);
	t_until(r, '\n', NULL, log);
	t_until(r, '\n', NULL, log);
	t_num(log, "left", (long)weft_reader_buffered(r));
	weft_reader_destroy(r);
	t_close2(sv);
	return 0;
}

static void test_reader_deadline_while_skipping_a_too_long_line(void **state)
{
	(void)state;
	run_logged(skip_deadline_main, "a\n|ETIMEDOUT|EMSGSIZE|ok\n|left=0|");
}

static int reset_main(void *arg)
{
	ssize_t *n = arg;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	weft_reader *r;
	const char *p;
	int sv[2] = { -1, -1 };

	if (t_tcp_pair(sv) < 0 || weft_reader_create(&r, sv[0], 64) < 0)
		return -1;
	weft_send(sv[1], "partial", 7, 0);
	weft_sleep(2 * WEFT_MSEC);
	setsockopt(sv[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	weft_close(sv[1]); /* an RST, not a FIN */
	n[0] = weft_reader_until(r, '\n', &p);
	n[1] = weft_reader_until(r, '\n', &p); /* whatever it is, no crash */
	n[2] = weft_reader_exact(r, 4, &p);
	weft_reader_destroy(r);
	weft_close(sv[0]);
	return 0;
}

static void test_reader_peer_reset_is_an_error(void **state)
{
	ssize_t n[3] = { 1, 1, 1 };

	(void)state;
	assert_int_equal(t_run(reset_main, n), 0);
	assert_true(n[0] < 0);
	assert_true(n[1] <= 7);
	assert_true(n[2] <= 4);
}

/* ---- bad input ------------------------------------------------------------------- */

static int bad_main(void *arg)
{
	char *log = arg;
	weft_reader *r = NULL;
	weft_reader *untouched = (weft_reader *)&untouched;
	const char *p = NULL;
	int sv[2];

	if (t_pair(sv) < 0 || weft_reader_create(&r, sv[0], 16) < 0)
		return -1;
	t_rec(log, weft_reader_create(NULL, sv[0], 16), NULL);
	t_rec(log, weft_reader_create(&untouched, sv[0], 0), NULL);
	t_rec(log, weft_reader_create(&untouched, -1, 16), NULL);
	t_num(log, "untouched", untouched == (weft_reader *)&untouched);
	t_rec(log, weft_reader_until(r, '\n', NULL), NULL);
	t_rec(log, weft_reader_until(r, 256, &p), NULL);
	t_rec(log, weft_reader_until(r, -1, &p), NULL);
	t_rec(log, weft_reader_until(NULL, '\n', &p), NULL);
	t_rec(log, weft_reader_exact(r, 4, NULL), NULL);
	t_rec(log, weft_reader_exact(r, 0, &p), NULL);
	t_rec(log, weft_reader_exact(NULL, 4, &p), NULL);
	t_rec(log, weft_reader_exact(r, 17, &p), NULL);
	t_num(log, "buffered", (long)weft_reader_buffered(NULL));
	weft_reader_destroy(NULL);
	weft_reader_destroy(r);
	t_close2(sv);
	return 0;
}

static void test_reader_bad_input(void **state)
{
	weft_reader *r;
	const char *p;
	int sv[2];

	(void)state;
	run_logged(bad_main, "EINVAL|EINVAL|EBADF|untouched=1|EINVAL|EINVAL|EINVAL|EINVAL|"
			     "EINVAL|EINVAL|EINVAL|EMSGSIZE|buffered=0|");
	/* Outside a fiber: made and freed, but a receive cannot wait. */
	assert_int_equal(t_pair(sv), 0);
	assert_int_equal(weft_reader_create(&r, sv[0], 16), 0);
	assert_int_equal(weft_reader_until(r, '\n', &p), -EPERM);
	assert_int_equal(weft_reader_exact(r, 1, &p), -EPERM);
	weft_reader_destroy(r);
	close(sv[0]);
	close(sv[1]);
}

/* ---- many records ---------------------------------------------------------------- */

#define MANY 10000
#define MANY_MAX 512

struct many {
	char *data;
	size_t len;
	const weft_config *cfg;
	int frames; /* 1: two-byte big-endian lengths, then as many bytes */
	unsigned seed;
	long bad_at; /* the offset of the first mismatch, -1 if none */
	int records, too_long;
	ssize_t last;
};

/* 10,000 lines of 0..700 random bytes (a few longer than MANY_MAX), or as many frames. */
static void many_make(struct many *m)
{
	unsigned seed = m->seed;

	m->data = malloc((size_t)MANY * 704);
	assert_non_null(m->data);
	m->len = 0;
	for (int i = 0; i < MANY; i++) {
		size_t n = (size_t)rand_r(&seed) % (i % 50 == 0 ? 700 : 300);

		if (m->frames) {
			n = n % (MANY_MAX - 2) + 1;
			m->data[m->len++] = (char)(n >> 8);
			m->data[m->len++] = (char)n;
		}
		for (size_t k = 0; k < n; k++)
			m->data[m->len++] = (char)('!' + rand_r(&seed) % 90);
		if (!m->frames)
			m->data[m->len++] = '\n';
	}
}

/* The next record, checked against what was sent from *@pos on. */
static int many_next(weft_reader *r, struct many *m, size_t *pos)
{
	const char *p;
	size_t want;
	ssize_t n;

	if (m->frames) {
		n = weft_reader_exact(r, 2, &p);
		m->last = n;
		if (n != 2)
			return -1;
		want = (size_t)(unsigned char)p[0] << 8 | (unsigned char)p[1];
		*pos += 2;
		n = weft_reader_exact(r, want, &p);
	} else {
		want = (size_t)((char *)memchr(m->data + *pos, '\n', m->len - *pos) -
				(m->data + *pos)) +
		       1;
		n = weft_reader_until(r, '\n', &p);
	}
	m->last = n;
	if (n == -EMSGSIZE && want > MANY_MAX)
		m->too_long++;
	else if (n != (ssize_t)want || memcmp(p, m->data + *pos, want) != 0)
		return -1;
	*pos += want;
	return 1;
}

static int many_main(void *arg)
{
	struct many *m = arg;
	struct feed f = {
		.data = m->data, .len = m->len, .chunk = 5000, .random = 1, .seed = m->seed
	};
	weft_reader *r;
	weft_fiber *w;
	const char *p;
	size_t pos = 0;
	int sv[2];

	if (t_pair(sv) < 0 || weft_reader_create(&r, sv[0], MANY_MAX) < 0)
		return -1;
	f.fd = sv[1];
	weft_spawn(NULL, feeder, &f, &w);
	m->bad_at = -1;
	while (pos < m->len) {
		if (many_next(r, m, &pos) < 0) {
			m->bad_at = (long)pos;
			break;
		}
		m->records++;
	}
	if (m->bad_at < 0)
		m->last = m->frames ? weft_reader_exact(r, 2, &p) : weft_reader_until(r, '\n', &p);
	weft_cancel(w); /* on a mismatch, the writer may still be blocked */
	weft_join(w, NULL);
	weft_reader_destroy(r);
	t_close2(sv);
	return 0;
}

static void run_many(int frames, const weft_config *cfg)
{
	for (unsigned seed = 1; seed <= 2; seed++) {
		struct many m = { .frames = frames, .cfg = cfg, .seed = seed };

		many_make(&m);
		assert_int_equal(t_run_cfg(cfg, many_main, &m, NULL), 0);
		if (m.bad_at >= 0)
			print_message("seed %u: mismatch at byte %ld (last %zd)\n", seed, m.bad_at,
				      m.last);
		assert_int_equal(m.bad_at, -1);
		assert_int_equal(m.records, MANY);
		assert_int_equal(m.last, 0);
		if (!frames)
			assert_true(m.too_long > 0);
		free(m.data);
	}
}

static void test_reader_ten_thousand_lines_in_random_chunks(void **state)
{
	(void)state;
	run_many(0, NULL);
	run_many(0, t_small_bufs());
}

static void test_reader_ten_thousand_frames_in_random_chunks(void **state)
{
	(void)state;
	run_many(1, NULL);
	run_many(1, t_small_bufs());
}

/* ---- destroy --------------------------------------------------------------------- */

/* A view outstanding, bytes in the own buffer, a frame view with bytes left: nothing leaks. */
static int destroy_main(void *arg)
{
	char *log = arg;
	weft_reader *r[3];
	int sv[2];

	if (t_pair(sv) < 0)
		return -1;
	for (int i = 0; i < 3; i++)
		if (weft_reader_create(&r[i], sv[0], 4096) < 0)
			return -2;
	weft_send(sv[1], "view\nrest", 9, 0);
	t_until(r[0], '\n', NULL, log);
	t_num(log, "lent", t_bufs_lent());
	weft_reader_destroy(r[0]); /* "rest" still in its lent buffer */
	t_num(log, "lent", t_bufs_lent());

	long_text[0] = 'x';
	long_text[1] = '\n';
	memset(long_text + 2, 'b', 3000);
	weft_send(sv[1], long_text, 3002, 0);
	t_until(r[1], '\n', NULL, log); /* "x\n", the 3,000 'b' held */

	int64_t was = weft_set_timeout(2 * WEFT_MSEC);

	t_until(r[1], '\n', NULL, log);
	weft_set_deadline(was);
	t_num(log, "left", (long)weft_reader_buffered(r[1]));
	weft_reader_destroy(r[1]);
	weft_send(sv[1], "abcdefgh", 8, 0);
	t_exact(r[2], 4, log);
	weft_reader_destroy(r[2]);
	t_num(log, "lent", t_bufs_lent());
	t_close2(sv);
	return 0;
}

static void test_reader_destroy_with_a_view_or_bytes_buffered(void **state)
{
	(void)state;
	run_logged(destroy_main, "view\n|lent=1|lent=0|x\n|ETIMEDOUT|left=3000|abcd|lent=0|");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reader_lines_arrive_a_byte_at_a_time),
		cmocka_unit_test(test_reader_pipelined_lines_are_views_into_one_lent_buffer),
		cmocka_unit_test(test_reader_parked_mid_line_holds_no_lent_buffer),
		cmocka_unit_test(test_reader_too_long_line_is_skipped),
		cmocka_unit_test(test_reader_too_long_line_spanning_receives_is_skipped),
		cmocka_unit_test(test_reader_end_of_stream_mid_line_and_at_once),
		cmocka_unit_test(test_reader_exact_frames_split_over_receives),
		cmocka_unit_test(test_reader_lines_and_frames_mixed),
		cmocka_unit_test(test_reader_deadline_and_cancel_mid_line_lose_no_byte),
		cmocka_unit_test(test_reader_deadline_while_skipping_a_too_long_line),
		cmocka_unit_test(test_reader_peer_reset_is_an_error),
		cmocka_unit_test(test_reader_bad_input),
		cmocka_unit_test(test_reader_ten_thousand_lines_in_random_chunks),
		cmocka_unit_test(test_reader_ten_thousand_frames_in_random_chunks),
		cmocka_unit_test(test_reader_destroy_with_a_view_or_bytes_buffered),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
