/* SPDX-License-Identifier: MIT */
/*
 * The op table: what op.c and every backend need to know about each of
 * weft's operations, in one place, as the kernel's io_uring/opdef.c keeps
 * its own. How the record's fields carry each op's arguments (they mirror
 * the system call's, in the layout io_uring's SQE uses too):
 *
 *   op          fd        addr            len         off             op_flags
 *   read/write  fd        buf             len         offset (-1)     -
 *   readv/v     fd        iovec array     count       offset (-1)     -
 *   fsync       fd        -               -           -               IORING_FSYNC_*
 *   close       fd        -               -           -               -
 *   openat      dirfd     path            mode        -               O_*
 *   statx       dirfd     path            mask        struct statx *  AT_*
 *   unlinkat    dirfd     path            -           -               AT_REMOVEDIR
 *   renameat    olddirfd  oldpath         newdirfd    newpath         RENAME_*
 *   mkdirat     dirfd     path            mode        -               -
 *   fallocate   fd        length          mode        offset          -
 *   ftruncate   fd        -               -           length          -
 *   socket      domain    -               protocol    type            -
 *   accept      fd        sockaddr *      -           socklen_t *     SOCK_*
 *   connect     fd        sockaddr *      -           addrlen         -
 *   recv/send   fd        buf             len         -               MSG_*
 *   recv/sendmsg fd       msghdr *        1           -               MSG_*
 *   shutdown    fd        -               how         -               -
 *   timeout     -         -               -           deadline (ns)   -
 *   poll        fd        -               -           -               POLL* events
 *
 * Each row also carries what a backend needs to know of the op: for the
 * io_uring backend, its IORING_OP_* number (only numbers: the preparing of
 * SQEs is backend_uring.c's alone).
 *
 * To add an operation: a code in enum weft__opcode (internal.h), its row
 * here, and one thin function that fills a record and calls weft__op_run.
 */
#include "internal.h"

#include <errno.h>
#include <linux/io_uring.h> /* the kernel's opcode numbers: data, no liburing */
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Linux 6.9; the headers of liburing 2.3's era lack it. */
#define URING_OP_FTRUNCATE 55

/* The fallbacks: the system call, made with the record's fields. */
static long sys_mkdirat(const struct weft__op *op)
{
	return syscall(SYS_mkdirat, op->fd, (const char *)(uintptr_t)op->addr, (mode_t)op->len);
}

static long sys_ftruncate(const struct weft__op *op)
{
	return syscall(SYS_ftruncate, op->fd, (off_t)op->off);
}

static long sys_socket(const struct weft__op *op)
{
	return socket(op->fd, (int)op->off, (int)op->len);
}

const struct weft__opdef weft__opdefs[] = {
	[WEFT__OP_NOP] = { .name = "nop", .uring_op = IORING_OP_NOP, .flags = WEFT__OPD_DEADLINE },
	[WEFT__OP_READ] = { .name = "read",
			    .uring_op = IORING_OP_READ,
			    .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE,
			    .fill = WEFT__FILL_BUF },
	[WEFT__OP_WRITE] = { .name = "write",
			     .uring_op = IORING_OP_WRITE,
			     .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	[WEFT__OP_READV] = { .name = "readv",
			     .uring_op = IORING_OP_READV,
			     .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE,
			     .fill = WEFT__FILL_IOV },
	[WEFT__OP_WRITEV] = { .name = "writev",
			      .uring_op = IORING_OP_WRITEV,
			      .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	[WEFT__OP_FSYNC] = { .name = "fsync",
			     .uring_op = IORING_OP_FSYNC,
			     .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	/* A close must happen even for a cancelled fiber, or the fd leaks. */
	[WEFT__OP_CLOSE] = { .name = "close",
			     .uring_op = IORING_OP_CLOSE,
			     .flags = WEFT__OPD_MUST_RUN | WEFT__OPD_CLOSES },
	[WEFT__OP_OPENAT] = { .name = "openat",
			      .uring_op = IORING_OP_OPENAT,
			      .flags = WEFT__OPD_DEADLINE },
	[WEFT__OP_STATX] = { .name = "statx",
			     .uring_op = IORING_OP_STATX,
			     .flags = WEFT__OPD_DEADLINE,
			     .fill = WEFT__FILL_STATX },
	[WEFT__OP_UNLINKAT] = { .name = "unlinkat",
				.uring_op = IORING_OP_UNLINKAT,
				.flags = WEFT__OPD_DEADLINE },
	[WEFT__OP_RENAMEAT] = { .name = "renameat",
				.uring_op = IORING_OP_RENAMEAT,
				.flags = WEFT__OPD_DEADLINE },
	/* Linux 5.15. */
	[WEFT__OP_MKDIRAT] = { .name = "mkdirat",
			       .uring_op = IORING_OP_MKDIRAT,
			       .flags = WEFT__OPD_DEADLINE,
			       .sys = sys_mkdirat },
	[WEFT__OP_FALLOCATE] = { .name = "fallocate",
				 .uring_op = IORING_OP_FALLOCATE,
				 .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	/* Linux 6.9. */
	[WEFT__OP_FTRUNCATE] = { .name = "ftruncate",
				 .uring_op = URING_OP_FTRUNCATE,
				 .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE,
				 .sys = sys_ftruncate },
	/* Linux 5.19; socket(2) does not block, so the fallback runs in place. */
	[WEFT__OP_SOCKET] = { .name = "socket",
			      .uring_op = IORING_OP_SOCKET,
			      .flags = WEFT__OPD_DEADLINE,
			      .sys = sys_socket,
			      .inline_fallback = true },
	[WEFT__OP_ACCEPT] = { .name = "accept",
			      .uring_op = IORING_OP_ACCEPT,
			      .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE,
			      .fill = WEFT__FILL_SOCKADDR },
	[WEFT__OP_CONNECT] = { .name = "connect",
			       .uring_op = IORING_OP_CONNECT,
			       .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	[WEFT__OP_RECV] = { .name = "recv",
			    .uring_op = IORING_OP_RECV,
			    .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE,
			    .fill = WEFT__FILL_BUF },
	[WEFT__OP_SEND] = { .name = "send",
			    .uring_op = IORING_OP_SEND,
			    .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	[WEFT__OP_RECVMSG] = { .name = "recvmsg",
			       .uring_op = IORING_OP_RECVMSG,
			       .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE,
			       .fill = WEFT__FILL_MSG },
	[WEFT__OP_SENDMSG] = { .name = "sendmsg",
			       .uring_op = IORING_OP_SENDMSG,
			       .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	[WEFT__OP_SHUTDOWN] = { .name = "shutdown",
				.uring_op = IORING_OP_SHUTDOWN,
				.flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	/* A kernel timer (WEFT_TIMERS_KERNEL); the sleep is its own deadline. */
	[WEFT__OP_TIMEOUT] = { .name = "timeout", .uring_op = IORING_OP_TIMEOUT },
	/* Readiness of an fd of weft's own (the offload pool's eventfd). */
	[WEFT__OP_POLL] = { .name = "poll", .uring_op = IORING_OP_POLL_ADD },
};

_Static_assert(sizeof(weft__opdefs) / sizeof(weft__opdefs[0]) == WEFT__OP_COUNT,
	       "every weft opcode has a row in the op table");
_Static_assert(WEFT__OP_COUNT <= 64, "the supported-op set is one 64-bit word");
