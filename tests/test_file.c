/* SPDX-License-Identifier: MIT */
/*
 * Files through the public API: a large file written and read back by
 * concurrent fibers, short reads at EOF, the path operations, bad input,
 * deadlines and cancel on a pipe read, and the completes-anyway race.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static char dir[256];

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	(void)state;
	snprintf(dir, sizeof(dir), "%s/weft-test-file-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

/* ---- a big file, written in order and read back by 4 fibers at once ---- */

#define BIG (64u << 20)
#define CHUNK (1u << 20)

static unsigned char pattern(uint64_t off)
{
	return (unsigned char)((off * 2654435761u) >> 13);
}

struct big {
	char path[300];
	int fd;
	int write_rc;
	int fsync_rc;
	int bad_chunks;
	int short_reads;
	int read_rc;
};

struct quarter {
	struct big *b;
	unsigned idx;
};

static int read_quarter(void *arg)
{
	struct quarter *q = arg;
	unsigned char *buf = malloc(CHUNK);
	uint64_t start = (uint64_t)q->idx * (BIG / 4);

	if (!buf)
		return -ENOMEM;
	for (uint64_t off = start; off < start + BIG / 4; off += CHUNK) {
		ssize_t n = weft_read(q->b->fd, buf, CHUNK, (int64_t)off);

		if (n < 0) {
			q->b->read_rc = (int)n;
			break;
		}
		if (n != CHUNK) {
			q->b->short_reads++;
			continue;
		}
		for (uint64_t i = 0; i < CHUNK; i += 4093)
			if (buf[i] != pattern(off + i)) {
				q->b->bad_chunks++;
				break;
			}
	}
	free(buf);
	return 0;
}

static int big_file(void *arg)
{
	struct big *b = arg;
	unsigned char *buf = malloc(CHUNK);

	if (!buf)
		return -ENOMEM;
	b->fd = weft_open(b->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (b->fd < 0) {
		free(buf);
		return b->fd;
	}
	for (uint64_t off = 0; off < BIG && b->write_rc == 0; off += CHUNK) {
		for (uint64_t i = 0; i < CHUNK; i++)
			buf[i] = pattern(off + i);

		ssize_t n = weft_write(b->fd, buf, CHUNK, (int64_t)off);

		if (n != CHUNK)
			b->write_rc = n < 0 ? (int)n : -EIO;
	}
	free(buf);
	b->fsync_rc = weft_fsync(b->fd);

	struct quarter q[4];
	weft_call calls[4];

	for (unsigned i = 0; i < 4; i++) {
		q[i] = (struct quarter){ b, i };
		calls[i] = (weft_call){ read_quarter, &q[i], 0 };
	}
	weft_gather(calls, 4);
	weft_close(b->fd);
	return weft_unlink(b->path, 0);
}

static void test_64mib_file_written_and_read_back_concurrently(void **state)
{
	struct big b = { .fd = -1 };
	struct statvfs vfs;

	(void)state;
	if (statvfs(dir, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < 3ull * BIG) {
		fprintf(stderr, "skipping the 64 MiB file: little disk in %s\n", dir);
		skip();
	}
	path_of(b.path, sizeof(b.path), "big");
	assert_int_equal(t_run(big_file, &b), 0);
	assert_int_equal(b.write_rc, 0);
	assert_int_equal(b.fsync_rc, 0);
	assert_int_equal(b.read_rc, 0);
	assert_int_equal(b.short_reads, 0);
	assert_int_equal(b.bad_chunks, 0);
}

/* ---- short reads, the file position, vectors, path operations ---- */

struct small {
	char path[300];
	char path2[300];
	char sub[300];
	ssize_t whole, at_eof, past_eof, pos1, pos2, pos3;
	ssize_t wv, rv;
	char head[8], tail[8];
	int fsync_rc, fdatasync_rc, statx_rc, ftrunc_rc, falloc_rc, rename_rc, mkdir_rc;
	int rmdir_rc, unlink_rc, unlink_again, open_missing, close_rc;
	uint64_t size_after_trunc, size_after_falloc;
	char back[200];
};

static int small_ops(void *arg)
{
	struct small *s = arg;
	char buf[4096];
	struct statx stx;
	int fd = weft_open(s->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		return fd;
	memset(buf, 'x', 100);
	if (weft_write(fd, buf, 100, 0) != 100)
		return -EIO;
	s->whole = weft_read(fd, buf, sizeof(buf), 0);	     /* 100: short at EOF */
	s->at_eof = weft_read(fd, buf, sizeof(buf), 100);    /* 0 */
	s->past_eof = weft_read(fd, buf, sizeof(buf), 1000); /* 0 */
	s->pos1 = weft_read(fd, buf, 40, -1);		     /* file position: 0..40 */
	s->pos2 = weft_read(fd, buf, 40, -1);		     /* 40..80 */
	s->pos3 = weft_read(fd, buf, 40, -1);		     /* 80..100: 20 */

	struct iovec wiov[2] = { { "headHEAD", 8 }, { "tailTAIL", 8 } };
	struct iovec riov[2] = { { s->head, 8 }, { s->tail, 8 } };

	s->wv = weft_writev(fd, wiov, 2, 200);
	s->rv = weft_readv(fd, riov, 2, 200);
	s->fsync_rc = weft_fsync(fd);
	s->fdatasync_rc = weft_fdatasync(fd);
	s->ftrunc_rc = weft_ftruncate(fd, 50);
	s->statx_rc = weft_statx(AT_FDCWD, s->path, 0, STATX_SIZE, &stx);
	s->size_after_trunc = stx.stx_size;
	s->falloc_rc = weft_fallocate(fd, 0, 0, 8192);
	weft_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx);
	s->size_after_falloc = stx.stx_size;
	s->close_rc = weft_close(fd);

	s->rename_rc = weft_rename(s->path, s->path2);
	s->open_missing = weft_open(s->path, O_RDONLY, 0);
	s->mkdir_rc = weft_mkdir(s->sub, 0700);
	s->rmdir_rc = weft_unlink(s->sub, AT_REMOVEDIR);
	s->unlink_rc = weft_unlink(s->path2, 0);
	s->unlink_again = weft_unlink(s->path2, 0);
	return 0;
}

static void test_short_reads_positions_vectors_and_path_operations(void **state)
{
	struct small s;

	(void)state;
	memset(&s, 0, sizeof(s));
	path_of(s.path, sizeof(s.path), "small");
	path_of(s.path2, sizeof(s.path2), "small2");
	path_of(s.sub, sizeof(s.sub), "sub");
	assert_int_equal(t_run(small_ops, &s), 0);
	assert_int_equal(s.whole, 100);
	assert_int_equal(s.at_eof, 0);
	assert_int_equal(s.past_eof, 0);
	assert_int_equal(s.pos1, 40);
	assert_int_equal(s.pos2, 40);
	assert_int_equal(s.pos3, 20);
	assert_int_equal(s.wv, 16);
	assert_int_equal(s.rv, 16);
	assert_memory_equal(s.head, "headHEAD", 8);
	assert_memory_equal(s.tail, "tailTAIL", 8);
	assert_int_equal(s.fsync_rc, 0);
	assert_int_equal(s.fdatasync_rc, 0);
	assert_int_equal(s.ftrunc_rc, 0);
	assert_int_equal(s.statx_rc, 0);
	assert_int_equal(s.size_after_trunc, 50);
	if (s.falloc_rc != -EOPNOTSUPP) { /* some filesystems lack fallocate */
		assert_int_equal(s.falloc_rc, 0);
		assert_int_equal(s.size_after_falloc, 8192);
	}
	assert_int_equal(s.close_rc, 0);
	assert_int_equal(s.rename_rc, 0);
	assert_int_equal(s.open_missing, -ENOENT);
	assert_int_equal(s.mkdir_rc, 0);
	assert_int_equal(s.rmdir_rc, 0);
	assert_int_equal(s.unlink_rc, 0);
	assert_int_equal(s.unlink_again, -ENOENT);
}

/*
 * The same with the kernel's ftruncate, mkdirat and socket opcodes hidden
 * (WEFT_DISABLE_OPS): the fallbacks (an offloaded system call, or a direct
 * socket(2)) must give the same results.
 */
static int fallback_ops(void *arg)
{
	struct small *s = arg;
	int fd = weft_socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return fd;
	weft_close(fd);
	return small_ops(s);
}

static void test_fallbacks_for_opcodes_the_kernel_lacks(void **state)
{
	struct small s;

	(void)state;
	memset(&s, 0, sizeof(s));
	path_of(s.path, sizeof(s.path), "fb");
	path_of(s.path2, sizeof(s.path2), "fb2");
	path_of(s.sub, sizeof(s.sub), "fbsub");
	setenv("WEFT_DISABLE_OPS", "55,37,45", 1);
	int rc = t_run(fallback_ops, &s);
	unsetenv("WEFT_DISABLE_OPS");
	assert_int_equal(rc, 0);
	assert_int_equal(s.ftrunc_rc, 0);
	assert_int_equal(s.size_after_trunc, 50);
	assert_int_equal(s.mkdir_rc, 0);
	assert_int_equal(s.rmdir_rc, 0);
	assert_int_equal(s.whole, 100);
}

/* ---- bad input ---- */

struct bad {
	ssize_t read_neg_fd, read_closed, write_rdonly, null_buf, huge_len, bad_off, zero_len;
	ssize_t bad_iovcnt, null_iov;
	int close_bad, open_null, trunc_neg, falloc_neg, statx_null;
};

static int bad_input(void *arg)
{
	struct bad *b = arg;
	char buf[16];
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	close(p[1]);
	b->read_neg_fd = weft_read(-1, buf, sizeof(buf), 0);
	b->read_closed = weft_read(p[1], buf, sizeof(buf), -1); /* closed above */
	b->write_rdonly = weft_write(p[0], "x", 1, -1);
	b->null_buf = weft_read(p[0], NULL, 10, -1);
	b->huge_len = weft_read(p[0], buf, (size_t)-5, -1); /* a negative length, cast */
	b->bad_off = weft_read(p[0], buf, sizeof(buf), -7);
	b->zero_len = weft_read(p[0], NULL, 0, -1);
	b->bad_iovcnt = weft_readv(p[0], NULL, -1, -1);
	b->null_iov = weft_writev(p[0], NULL, 3, -1);
	b->close_bad = weft_close(-1);
	b->open_null = weft_open(NULL, O_RDONLY, 0);
	b->trunc_neg = weft_ftruncate(p[0], -1);
	b->falloc_neg = weft_fallocate(p[0], 0, -1, 10);
	b->statx_null = weft_statx(AT_FDCWD, "/", 0, STATX_SIZE, NULL);
	close(p[0]);
	return 0;
}

static void test_bad_fds_and_bad_arguments_fail_cleanly(void **state)
{
	struct bad b;
	char buf[4];

	(void)state;
	assert_int_equal(t_run(bad_input, &b), 0);
	assert_int_equal(b.read_neg_fd, -EBADF);
	assert_int_equal(b.read_closed, -EBADF);
	assert_int_equal(b.write_rdonly, -EBADF);
	assert_int_equal(b.null_buf, -EINVAL);
	assert_int_equal(b.huge_len, -EINVAL);
	assert_int_equal(b.bad_off, -EINVAL);
	assert_int_equal(b.zero_len, 0); /* the write end is closed: EOF */
	assert_int_equal(b.bad_iovcnt, -EINVAL);
	assert_int_equal(b.null_iov, -EINVAL);
	assert_int_equal(b.close_bad, -EBADF);
	assert_int_equal(b.open_null, -EINVAL);
	assert_int_equal(b.trunc_neg, -EINVAL);
	assert_int_equal(b.falloc_neg, -EINVAL);
	assert_int_equal(b.statx_null, -EINVAL);
	/* Outside a fiber: -EPERM, not a crash. */
	assert_int_equal(weft_read(0, buf, sizeof(buf), -1), -EPERM);
	assert_int_equal(weft_open("/", O_RDONLY, 0), -EPERM);
	assert_int_equal(weft_fsync(0), -EPERM);
}

/* ---- a pipe read: deadline, cancel, and the race with data arriving ---- */

struct piperead {
	int fd;
	ssize_t rc;
	char byte;
	int64_t waited;
};

static int read_pipe(void *arg)
{
	struct piperead *r = arg;
	int64_t t0 = weft_now();

	r->rc = weft_read(r->fd, &r->byte, 1, -1);
	r->waited = weft_now() - t0;
	return 0;
}

struct pipecase {
	int p[2];
	struct piperead r;
	ssize_t after;
};

static int deadline_case(void *arg)
{
	struct pipecase *c = arg;

	weft_set_deadline(weft_now() + 30 * WEFT_MSEC);
	read_pipe(&c->r);
	weft_set_deadline(WEFT_FOREVER);
	/* The pipe still works afterwards. */
	if (write(c->p[1], "z", 1) != 1)
		return -EIO;
	c->after = weft_read(c->p[0], &c->r.byte, 1, -1);
	return 0;
}

static void test_pipe_read_past_deadline_fails_etimedout(void **state)
{
	struct pipecase c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(pipe2(c.p, O_CLOEXEC), 0);
	c.r.fd = c.p[0];
	assert_int_equal(t_run(deadline_case, &c), 0);
	assert_int_equal(c.r.rc, -ETIMEDOUT);
	assert_true(c.r.waited >= 25 * WEFT_MSEC);
	assert_true(c.r.waited < 5 * WEFT_SEC);
	assert_int_equal(c.after, 1);
	assert_int_equal(c.r.byte, 'z');
	close(c.p[0]);
	close(c.p[1]);
}

static int cancel_case(void *arg)
{
	struct pipecase *c = arg;
	weft_fiber *f;
	int rc = weft_spawn(NULL, read_pipe, &c->r, &f);

	if (rc < 0)
		return rc;
	weft_sleep(10 * WEFT_MSEC); /* the reader is parked in the kernel by now */
	weft_cancel(f);
	return weft_join(f, NULL);
}

static void test_cancel_fiber_blocked_in_pipe_read(void **state)
{
	struct pipecase c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(pipe2(c.p, O_CLOEXEC), 0);
	c.r.fd = c.p[0];
	assert_int_equal(t_run(cancel_case, &c), 0);
	assert_int_equal(c.r.rc, -ECANCELED);
	close(c.p[0]);
	close(c.p[1]);
}

/*
 * A cancel against data arriving, in three orders taken in turn, so that
 * every ring mode sees both outcomes:
 *   0: the read completes and is reaped first: the cancel only marks the
 *      fiber, and the byte is returned;
 *   1: the cancel is queued, then the byte arrives: the kernel decides
 *      (task work runs at the write's return with COOP_TASKRUN, at the next
 *      enter with DEFER_TASKRUN), and either outcome is correct;
 *   2: the kernel has the cancel before the byte: -ECANCELED, byte kept.
 * Whatever happens, the byte is never lost.
 */
struct race {
	int rounds;
	int got;
	int cancelled;
	int lost;
	int other;
};

static int race_case(void *arg)
{
	struct race *rc = arg;

	for (int i = 0; i < rc->rounds; i++) {
		int p[2];
		weft_fiber *f;
		struct piperead r = { .rc = 1000 };

		if (pipe2(p, O_CLOEXEC) < 0)
			return -errno;
		r.fd = p[0];
		if (weft_spawn(NULL, read_pipe, &r, &f) < 0)
			return -ENOMEM;
		weft_yield(); /* the reader prepares its SQE */
		weft_nop();   /* ... and the kernel has it */
		switch (i % 3) {
		case 0:
			if (write(p[1], "r", 1) != 1)
				return -EIO;
			for (int k = 0; k < 1000 && r.rc == 1000; k++)
				weft_nop();
			weft_cancel(f);
			break;
		case 1:
			weft_cancel(f);
			if (write(p[1], "r", 1) != 1)
				return -EIO;
			break;
		default:
			weft_cancel(f);
			weft_nop();
			if (write(p[1], "r", 1) != 1)
				return -EIO;
			break;
		}
		weft_join(f, NULL);
		if (r.rc == 1 && r.byte == 'r') {
			rc->got++;
		} else if (r.rc == -ECANCELED) {
			char b = 0;

			rc->cancelled++;
			if (read(p[0], &b, 1) != 1 || b != 'r')
				rc->lost++;
		} else {
			rc->other++;
		}
		close(p[0]);
		close(p[1]);
	}
	return 0;
}

/*
 * weft_close sends its cancel-by-fd only when this loop has an operation
 * in flight on the fd: each such cancel walks every pending request of the
 * ring, which made closing N connections O(N^2). A close with nothing
 * pending is one SQE; with a parked read on the fd it is two, and the read
 * still ends -ECANCELED.
 */
struct closecase {
	int p[2];
	uint64_t sqes_idle, sqes_busy;
	struct piperead r;
};

static int close_cases(void *arg)
{
	struct closecase *c = arg;
	weft_loop *l = weft_loop_current();
	weft_stats a, b;
	weft_fiber *f;

	int spare = dup(c->p[1]);

	if (spare < 0)
		return -errno;
	weft_loop_stats(l, &a);
	if (weft_close(spare) != 0)
		return -EIO;
	weft_loop_stats(l, &b);
	c->sqes_idle = b.sqes - a.sqes;
	if (weft_spawn(NULL, read_pipe, &c->r, &f) < 0)
		return -ENOMEM;
	weft_sleep(10 * WEFT_MSEC); /* parked in the kernel, on p[0] */
	weft_loop_stats(l, &a);
	if (weft_close(c->p[0]) != 0)
		return -EIO;
	weft_loop_stats(l, &b);
	c->sqes_busy = b.sqes - a.sqes;
	return weft_join(f, NULL);
}

static void test_close_cancels_only_when_something_waits(void **state)
{
	struct closecase c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(pipe2(c.p, O_CLOEXEC), 0);
	c.r.fd = c.p[0];
	assert_int_equal(t_run(close_cases, &c), 0);
	assert_int_equal(c.r.rc, -ECANCELED);
	if (t_on_uring()) { /* a cancel is an SQE of its own there */
		assert_int_equal(c.sqes_idle, 1);
		assert_int_equal(c.sqes_busy, 2);
	}
	close(c.p[1]);
}

static void test_read_that_completes_anyway_keeps_its_data(void **state)
{
	struct race r = { .rounds = 501 };

	(void)state;
	assert_int_equal(t_run(race_case, &r), 0);
	assert_int_equal(r.lost, 0);
	assert_int_equal(r.other, 0);
	print_message("race: %d got, %d cancelled\n", r.got, r.cancelled);
	assert_int_equal(r.got + r.cancelled, r.rounds);
	assert_true(r.got >= r.rounds / 3);	  /* order 0 always completes */
	assert_true(r.cancelled >= r.rounds / 3); /* order 2 always cancels */
}

/* ---- an open that blocks: a FIFO with no writer ---------------------------------- */

struct fifo_open {
	char path[64];
	int rc;
	int64_t took;
};

static int open_fifo_bounded(void *arg)
{
	struct fifo_open *f = arg;
	int64_t t0 = weft_now();

	weft_set_deadline(t0 + 50 * WEFT_MSEC);
	f->rc = weft_open(f->path, O_RDONLY | O_CLOEXEC, 0);
	f->took = weft_now() - t0;
	if (f->rc >= 0)
		close(f->rc);
	return 0;
}

static int cancel_open_fifo(void *arg)
{
	struct fifo_open *f = arg;
	weft_fiber *fib;

	if (weft_spawn(NULL, open_fifo_bounded, f, &fib) < 0)
		return -ENOMEM;
	weft_sleep(10 * WEFT_MSEC);
	weft_cancel(fib);
	return weft_join(fib, NULL);
}

/*
 * A FIFO's open for reading waits for a writer that never comes: the
 * fiber's deadline (or a cancel) ends it on time, whoever runs it. On epoll,
 * and where the kernel lacks the opcode, it runs on a worker, which the
 * fiber leaves behind. io_uring's own open does not wait for a writer (it
 * opens the FIFO at once), so there an fd may come back at once instead.
 */
static void test_open_of_a_fifo_with_no_writer_ends_at_deadline_or_cancel(void **state)
{
	struct fifo_open f = { .rc = 1 };

	(void)state;
	snprintf(f.path, sizeof(f.path), "/tmp/weft-fifo-%d", (int)getpid());
	unlink(f.path);
	assert_int_equal(mkfifo(f.path, 0600), 0);
	bool waits = !t_on_uring() || getenv("WEFT_DISABLE_OPS");

	assert_int_equal(t_run(open_fifo_bounded, &f), 0);
	print_message("open with a 50 ms deadline: %d after %.1f ms\n", f.rc, f.took / 1e6);
	assert_true(f.rc == -ETIMEDOUT || (!waits && f.rc >= 0));
	assert_true(f.rc >= 0 || f.took >= 50 * WEFT_MSEC);
	assert_true(f.took < 1000 * WEFT_MSEC);
	f.rc = 1;
	assert_int_equal(t_run(cancel_open_fifo, &f), 0);
	assert_true(f.rc == -ECANCELED || (!waits && f.rc >= 0));
	assert_true(f.took < 1000 * WEFT_MSEC);
	unlink(f.path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_of_a_fifo_with_no_writer_ends_at_deadline_or_cancel),
		cmocka_unit_test(test_64mib_file_written_and_read_back_concurrently),
		cmocka_unit_test(test_short_reads_positions_vectors_and_path_operations),
		cmocka_unit_test(test_fallbacks_for_opcodes_the_kernel_lacks),
		cmocka_unit_test(test_bad_fds_and_bad_arguments_fail_cleanly),
		cmocka_unit_test(test_pipe_read_past_deadline_fails_etimedout),
		cmocka_unit_test(test_cancel_fiber_blocked_in_pipe_read),
		cmocka_unit_test(test_read_that_completes_anyway_keeps_its_data),
		cmocka_unit_test(test_close_cancels_only_when_something_waits),
	};

	if (!t_io_uring_usable())
		return 77;
	return cmocka_run_group_tests(tests, setup, teardown);
}
