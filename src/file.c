/* SPDX-License-Identifier: MIT */
/*
 * File operations: one thin function each, filling an op record (see the
 * field map in opdef.c) and running it. Arguments are checked here so that
 * bad input is a clear -errno before anything reaches the kernel.
 */
#include "accept.h"
#include "recvmulti.h"
#include "op.h"
#include "opdef.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

/* IORING_FSYNC_DATASYNC, as the kernel defines it. */
#define FSYNC_DATASYNC (1U << 0)

/* The most one read or write moves, as the kernel's MAX_RW_COUNT. */
#define RW_MAX ((size_t)0x7ffff000)

#define PTR(p) ((uint64_t)(uintptr_t)(p))

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

/* A read or write: @addr and @len are a buffer, or an iovec array and its count. */
static ssize_t rw(uint8_t code, int fd, const void *addr, size_t len, int64_t off)
{
	struct weft__op op;

	weft__op_init(&op, code, fd, PTR(addr), (uint32_t)(len < RW_MAX ? len : RW_MAX),
		      (uint64_t)off, 0);

	return weft__op_run(&op);
}

ssize_t weft_read(int fd, void *buf, size_t len, int64_t off)
{
	int rc = check_buf(buf, len, off);
	struct iovec v = { buf, len };
	ssize_t n = rc < 0 ? rc : weft__recvm_before(fd, &v, 1, 0);

	if (WEFT__UNLIKELY(n != WEFT__RECVM_PLAIN))
		return n; /* a socket's bytes queued by weft_recv_buf (recvmulti.h), or rc */
	return rw(WEFT__OP_READ, fd, buf, len, off);
}

ssize_t weft_write(int fd, const void *buf, size_t len, int64_t off)
{
	int rc = check_buf(buf, len, off);

	return rc < 0 ? rc : rw(WEFT__OP_WRITE, fd, buf, len, off);
}

ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
	int rc = check_iov(iov, iovcnt, off);
	ssize_t n = rc < 0 ? rc : weft__recvm_before(fd, iov, (size_t)iovcnt, 0);

	if (WEFT__UNLIKELY(n != WEFT__RECVM_PLAIN))
		return n;
	return rw(WEFT__OP_READV, fd, iov, (size_t)iovcnt, off);
}

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
	int rc = check_iov(iov, iovcnt, off);

	return rc < 0 ? rc : rw(WEFT__OP_WRITEV, fd, iov, (size_t)iovcnt, off);
}

int weft_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_OPENAT, dirfd, PTR(path), mode, 0, (uint32_t)flags);

	return path ? weft__op_run(&op) : -EINVAL;
}

int weft_open(const char *path, int flags, mode_t mode)
{
	return weft_openat(AT_FDCWD, path, flags, mode);
}

int weft_fsync(int fd)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_FSYNC, fd, 0, 0, 0, 0);

	return weft__op_run(&op);
}

int weft_fdatasync(int fd)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_FSYNC, fd, 0, 0, 0, FSYNC_DATASYNC);

	return weft__op_run(&op);
}

/*
 * Runs even for a cancelled fiber or past its deadline (the op table's
 * must_run), or the fd would leak; the ops pending on the fd are cancelled
 * first (its closes flag). Only -EPERM (no fiber) stops it.
 */
int weft_close(int fd)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_CLOSE, fd, 0, 0, 0, 0);
	/* A listener's multishot accept holds the socket open: end it (and what it queued). */
	if (l && l->acceptors && l->cur)
		weft__accept_close(l, fd);
	/* So does weft_recv_buf's multishot receive (and what it queued goes back). */
	if (l && l->cur && weft__recvm_has(l, fd))
		weft__recvm_forget(l, fd);

	return weft__op_run(&op);
}

int weft_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *out)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_STATX, dirfd, PTR(path), mask, PTR(out), (uint32_t)flags);

	return path && out ? weft__op_run(&op) : -EINVAL;
}

int weft_unlink(const char *path, int flags)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_UNLINKAT, AT_FDCWD, PTR(path), 0, 0, (uint32_t)flags);

	return path ? weft__op_run(&op) : -EINVAL;
}

int weft_rename(const char *from, const char *to)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_RENAMEAT, AT_FDCWD, PTR(from), 0, 0, 0);
	op.fd2 = AT_FDCWD;
	op.off2 = PTR(to);

	return from && to ? weft__op_run(&op) : -EINVAL;
}

int weft_mkdir(const char *path, mode_t mode)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_MKDIRAT, AT_FDCWD, PTR(path), mode, 0, 0);

	return path ? weft__op_run(&op) : -EINVAL;
}

int weft_fallocate(int fd, int mode, int64_t off, int64_t len)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_FALLOCATE, fd, (uint64_t)len, (uint32_t)mode, (uint64_t)off, 0);

	return off < 0 || len <= 0 ? -EINVAL : weft__op_run(&op);
}

int weft_ftruncate(int fd, int64_t len)
{
	struct weft__op op;

	weft__op_init(&op, WEFT__OP_FTRUNCATE, fd, 0, 0, (uint64_t)len, 0);

	return len < 0 ? -EINVAL : weft__op_run(&op);
}
