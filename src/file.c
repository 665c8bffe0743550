/* SPDX-License-Identifier: MIT */
/*
 * File operations: one thin function per opcode over the await in op.c.
 * Arguments are checked here so that bad input is a clear -errno before
 * anything reaches the kernel.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#ifndef IORING_FSYNC_DATASYNC
#define IORING_FSYNC_DATASYNC (1U << 0)
#endif
/* Linux 6.9; liburing 2.3 has neither the constant nor a helper. */
#define WEFT__OP_FTRUNCATE 55

/* The most one read or write moves, as the kernel's MAX_RW_COUNT. */
#define RW_MAX ((size_t)0x7ffff000)

static int check_buf(const void *buf, size_t len, int64_t off)
{
	if ((!buf && len) || len > (size_t)SSIZE_MAX || off < -1)
		return -EINVAL;
	return 0;
}

static int check_iov(const struct iovec *iov, int iovcnt, int64_t off)
{
	if (iovcnt < 0 || iovcnt > IOV_MAX || (!iov && iovcnt) || off < -1)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++)
		if ((!iov[i].iov_base && iov[i].iov_len) || iov[i].iov_len > (size_t)SSIZE_MAX)
			return -EINVAL;
	return 0;
}

int weft_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	struct weft__call c;
	struct io_uring_sqe *sqe;

	if (!path)
		return -EINVAL;

	int rc = weft__call_begin(&c, &sqe);

	if (rc < 0)
		return rc;
	io_uring_prep_openat(sqe, dirfd, path, flags, mode);
	return weft__call_await(&c, sqe);
}

int weft_open(const char *path, int flags, mode_t mode)
{
	return weft_openat(AT_FDCWD, path, flags, mode);
}

/* One read or write opcode: @addr and @len are a buffer, or an iovec array and its count. */
static ssize_t rw(int opcode, int fd, const void *addr, unsigned len, int64_t off)
{
	struct weft__call c;
	struct io_uring_sqe *sqe;
	int rc = weft__call_begin(&c, &sqe);

	if (rc < 0)
		return rc;
	io_uring_prep_rw(opcode, sqe, fd, addr, len, (uint64_t)off);
	return weft__call_await(&c, sqe);
}

ssize_t weft_read(int fd, void *buf, size_t len, int64_t off)
{
	int rc = check_buf(buf, len, off);

	return rc < 0 ? rc
		      : rw(IORING_OP_READ, fd, buf, (unsigned)(len < RW_MAX ? len : RW_MAX), off);
}

ssize_t weft_write(int fd, const void *buf, size_t len, int64_t off)
{
	int rc = check_buf(buf, len, off);

	return rc < 0 ? rc
		      : rw(IORING_OP_WRITE, fd, buf, (unsigned)(len < RW_MAX ? len : RW_MAX), off);
}

ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
	int rc = check_iov(iov, iovcnt, off);

	return rc < 0 ? rc : rw(IORING_OP_READV, fd, iov, (unsigned)iovcnt, off);
}

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
	int rc = check_iov(iov, iovcnt, off);

	return rc < 0 ? rc : rw(IORING_OP_WRITEV, fd, iov, (unsigned)iovcnt, off);
}

static int fsync_flags(int fd, unsigned flags)
{
	struct weft__call c;
	struct io_uring_sqe *sqe;
	int rc = weft__call_begin(&c, &sqe);

	if (rc < 0)
		return rc;
	io_uring_prep_fsync(sqe, fd, flags);
	return weft__call_await(&c, sqe);
}

int weft_fsync(int fd)
{
	return fsync_flags(fd, 0);
}

int weft_fdatasync(int fd)
{
	return fsync_flags(fd, IORING_FSYNC_DATASYNC);
}

int weft_close(int fd)
{
	struct weft_fiber *self;
	struct weft__op op;
	int rc = weft__op_check(&self);

	/*
	 * A close must happen even for a cancelled fiber or past its
	 * deadline, or the fd leaks: only -EPERM stops it.
	 */
	if (rc == -EPERM)
		return rc;
	self = weft__tls_loop->cur;

	struct weft_loop *l = self->loop;

	/*
	 * Closing an fd does not end io_uring operations pending on it (they
	 * hold their own reference to the file), so a fiber parked in a recv
	 * on it would wait forever: cancel them first, by fd (Linux 5.19; an
	 * older kernel answers -EINVAL and nothing is lost). The cancel is
	 * issued before the close, in SQ order, and only when this loop has
	 * an operation in flight on the fd (another loop's ring is not ours
	 * to cancel in anyway).
	 */
	if (fd >= 0 && (l->fd_untracked || ((size_t)fd < l->fd_busy_len && l->fd_busy[fd]))) {
		struct io_uring_sqe *c = weft__ring_sqe(l);

		io_uring_prep_cancel_fd(c, fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(c, WEFT__UD_IGNORE);
		l->inflight++;
		l->stats.sqes++;
	}

	struct io_uring_sqe *sqe = weft__op_sqe(l, self, false);

	/* A cancel that reaches it finds nothing: close completes when submitted. */
	io_uring_prep_close(sqe, fd);
	return weft__op_await(l, self, &op, sqe, false);
}

int weft_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *out)
{
	struct weft__call c;
	struct io_uring_sqe *sqe;

	if (!path || !out)
		return -EINVAL;

	int rc = weft__call_begin(&c, &sqe);

	if (rc < 0)
		return rc;
	io_uring_prep_statx(sqe, dirfd, path, flags, mask, out);
	return weft__call_await(&c, sqe);
}

int weft_unlink(const char *path, int flags)
{
	struct weft__call c;
	struct io_uring_sqe *sqe;

	if (!path)
		return -EINVAL;

	int rc = weft__call_begin(&c, &sqe);

	if (rc < 0)
		return rc;
	io_uring_prep_unlinkat(sqe, AT_FDCWD, path, flags);
	return weft__call_await(&c, sqe);
}

int weft_rename(const char *from, const char *to)
{
	struct weft__call c;
	struct io_uring_sqe *sqe;

	if (!from || !to)
		return -EINVAL;

	int rc = weft__call_begin(&c, &sqe);

	if (rc < 0)
		return rc;
	io_uring_prep_renameat(sqe, AT_FDCWD, from, AT_FDCWD, to, 0);
	return weft__call_await(&c, sqe);
}

int weft_mkdir(const char *path, mode_t mode)
{
	struct weft__call c;
	struct io_uring_sqe *sqe;

	if (!path)
		return -EINVAL;

	int rc = weft__op_check(&c.self);

	if (rc < 0)
		return rc;
	if (!weft__op_supported(c.self->loop, IORING_OP_MKDIRAT))
		return (int)weft__offload_syscall(SYS_mkdirat, AT_FDCWD, (long)path, (long)mode, 0,
						  0);
	rc = weft__call_begin(&c, &sqe);
	if (rc < 0)
		return rc;
	io_uring_prep_mkdirat(sqe, AT_FDCWD, path, mode);
	return weft__call_await(&c, sqe);
}

int weft_fallocate(int fd, int mode, int64_t off, int64_t len)
{
	struct weft__call c;
	struct io_uring_sqe *sqe;

	if (off < 0 || len <= 0)
		return -EINVAL;

	int rc = weft__call_begin(&c, &sqe);

	if (rc < 0)
		return rc;
	io_uring_prep_fallocate(sqe, fd, mode, (off_t)off, (off_t)len);
	return weft__call_await(&c, sqe);
}

int weft_ftruncate(int fd, int64_t len)
{
	struct weft__call c;
	struct io_uring_sqe *sqe;

	if (len < 0)
		return -EINVAL;

	int rc = weft__op_check(&c.self);

	if (rc < 0)
		return rc;
	if (!weft__op_supported(c.self->loop, WEFT__OP_FTRUNCATE))
		return (int)weft__offload_syscall(SYS_ftruncate, fd, (long)len, 0, 0, 0);
	rc = weft__call_begin(&c, &sqe);
	if (rc < 0)
		return rc;
	io_uring_prep_rw(WEFT__OP_FTRUNCATE, sqe, fd, NULL, 0, (uint64_t)len);
	return weft__call_await(&c, sqe);
}
