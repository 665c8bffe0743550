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
 * To add an operation: a code in enum weft__opcode (internal.h), its row
 * here, its kernel opcode in each backend's table (backend_uring.c), and
 * one thin function that fills a record and calls weft__op_run.
 */
#include "internal.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

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
	[WEFT__OP_NOP] = { .name = "nop", .flags = WEFT__OPD_DEADLINE },
	[WEFT__OP_READ] = { .name = "read",
			    .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE,
			    .fill = WEFT__FILL_BUF },
	[WEFT__OP_WRITE] = { .name = "write", .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	[WEFT__OP_READV] = { .name = "readv",
			     .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE,
			     .fill = WEFT__FILL_IOV },
	[WEFT__OP_WRITEV] = { .name = "writev", .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	[WEFT__OP_FSYNC] = { .name = "fsync", .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	/* A close must happen even for a cancelled fiber, or the fd leaks. */
	[WEFT__OP_CLOSE] = { .name = "close", .flags = WEFT__OPD_MUST_RUN | WEFT__OPD_CLOSES },
	[WEFT__OP_OPENAT] = { .name = "openat", .flags = WEFT__OPD_DEADLINE },
	[WEFT__OP_STATX] = { .name = "statx",
			     .flags = WEFT__OPD_DEADLINE,
			     .fill = WEFT__FILL_STATX },
	[WEFT__OP_UNLINKAT] = { .name = "unlinkat", .flags = WEFT__OPD_DEADLINE },
	[WEFT__OP_RENAMEAT] = { .name = "renameat", .flags = WEFT__OPD_DEADLINE },
	/* Linux 5.15. */
	[WEFT__OP_MKDIRAT] = { .name = "mkdirat", .flags = WEFT__OPD_DEADLINE, .sys = sys_mkdirat },
	[WEFT__OP_FALLOCATE] = { .name = "fallocate", .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	/* Linux 6.9. */
	[WEFT__OP_FTRUNCATE] = { .name = "ftruncate",
				 .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE,
				 .sys = sys_ftruncate },
	/* Linux 5.19; socket(2) does not block, so the fallback runs in place. */
	[WEFT__OP_SOCKET] = { .name = "socket",
			      .flags = WEFT__OPD_DEADLINE,
			      .sys = sys_socket,
			      .inline_fallback = true },
	[WEFT__OP_ACCEPT] = { .name = "accept",
			      .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE,
			      .fill = WEFT__FILL_SOCKADDR },
	[WEFT__OP_CONNECT] = { .name = "connect", .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	[WEFT__OP_RECV] = { .name = "recv",
			    .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE,
			    .fill = WEFT__FILL_BUF },
	[WEFT__OP_SEND] = { .name = "send", .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	[WEFT__OP_RECVMSG] = { .name = "recvmsg",
			       .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE,
			       .fill = WEFT__FILL_MSG },
	[WEFT__OP_SENDMSG] = { .name = "sendmsg", .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	[WEFT__OP_SHUTDOWN] = { .name = "shutdown", .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE },
	/* A kernel timer (WEFT_TIMERS_KERNEL); the sleep is its own deadline. */
	[WEFT__OP_TIMEOUT] = { .name = "timeout" },
	/* Readiness of an fd of weft's own (the offload pool's eventfd). */
	[WEFT__OP_POLL] = { .name = "poll" },
};

_Static_assert(sizeof(weft__opdefs) / sizeof(weft__opdefs[0]) == WEFT__OP_COUNT,
	       "every weft opcode has a row in the op table");
_Static_assert(WEFT__OP_COUNT <= 64, "the supported-op set is one 64-bit word");
