/* SPDX-License-Identifier: MIT */
/*
 * The op table: what op.c and every backend need to know about each of
 * weft's operations, in one place, as the kernel's io_uring/opdef.c keeps
 * its own. How the record's fields carry each op's arguments (they mirror
 * the system call's, in the layout io_uring's SQE uses too):
 *
 *   op          fd        addr         len        off           op_flags     fd2/off2
 *   read/write  fd        buf          len        offset (-1)   -            -
 *   readv/v     fd        iovec array  count      offset (-1)   -            -
 *   fsync       fd        -            -          -             FSYNC_*      -
 *   close       fd        -            -          -             -            -
 *   openat      dirfd     path         mode       -             O_*          -
 *   statx       dirfd     path         mask       struct statx* AT_*         -
 *   unlinkat    dirfd     path         -          -             AT_REMOVEDIR -
 *   renameat    olddirfd  oldpath      -          -             RENAME_*     newdirfd/newpath
 *   mkdirat     dirfd     path         mode       -             -            -
 *   fallocate   fd        length       mode       offset        -            -
 *   ftruncate   fd        -            -          length        -            -
 *   socket      domain    -            protocol   type          -            -
 *   accept      fd        sockaddr *   -          socklen_t *   SOCK_*       -
 *   connect     fd        sockaddr *   -          addrlen       -            -
 *   recv/send   fd        buf          len        -             MSG_*        -
 *   recv/sendmsg fd       msghdr *     1          -             MSG_*        -
 *   shutdown    fd        -            how        -             -            -
 *   timeout     -         -            -          deadline (ns) -            -
 *   poll        fd        -            -          -             POLL* events -
 *   splice      fd_out    off_in       len        off_out       SPLICE_F_*   fd_in/-
 *   send_zc     fd        buf          len        -             MSG_*        -
 *   recv_buf    fd        -            buf size   lent (out)    MSG_*        -/the bufs
 *   accept_multishot fd   -            -          -             SOCK_*       -
 *
 * The io_uring backend copies fd, addr, len, off and op_flags into the SQE
 * field for field; uring_prep fixes what that gets wrong for an op. The
 * epoll backend and the fallbacks run the hooks of opsys.c.
 *
 * To add an operation: a code in enum weft__opcode (opdef.h), its row
 * here (and its hooks in opsys.c where it has any), one thin public
 * function that fills a record and calls weft__op_run, and a test.
 */
#include "opdef.h"
#include "opsys.h"

#include <linux/io_uring.h> /* the kernel's opcode numbers and SQE layout: data, no liburing */

/* Linux 6.9; the headers of liburing 2.3's era lack it. */
#define URING_OP_FTRUNCATE 55

/* The timeout's absolute deadline is in op->off; the kernel reads a timespec. */
static void prep_timeout(void *p, struct weft__op *op)
{
	struct io_uring_sqe *sqe = p;
	op->ts[0] = (int64_t)op->off / WEFT_SEC;
	op->ts[1] = (int64_t)op->off % WEFT_SEC;
	sqe->addr = (uint64_t)(uintptr_t)op->ts;
	sqe->len = 1;
	sqe->off = 0;
	sqe->timeout_flags = IORING_TIMEOUT_ABS;
}

/* The accept goes on after each connection (IORING_ACCEPT_MULTISHOT, in ioprio). */
static void prep_accept_multi(void *p, struct weft__op *op)
{
	struct io_uring_sqe *sqe = p;

	(void)op;
	sqe->ioprio |= IORING_ACCEPT_MULTISHOT;
}

/* renameat's new directory and path go where the SQE has them. */
static void prep_renameat(void *p, struct weft__op *op)
{
	struct io_uring_sqe *sqe = p;

	sqe->len = (uint32_t)op->fd2;
	sqe->addr2 = op->off2;
}

/* splice's input fd goes where the SQE has it (its offset is already in addr's place). */
static void prep_splice(void *p, struct weft__op *op)
{
	struct io_uring_sqe *sqe = p;

	sqe->splice_fd_in = op->fd2;
}

/* A lending receive: the kernel picks a buffer of the loop's group when the bytes arrive. */
static void prep_recv_buf(void *p, struct weft__op *op)
{
	struct io_uring_sqe *sqe = p;

	(void)op;
	sqe->addr = 0;
	sqe->off = 0;
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
}

/* A multishot receive into the loop's buffers (IORING_RECV_MULTISHOT, in ioprio; len 0). */
static void prep_recv_multi(void *p, struct weft__op *op)
{
	struct io_uring_sqe *sqe = p;

	prep_recv_buf(p, op);
	sqe->len = 0;
	sqe->ioprio |= IORING_RECV_MULTISHOT;
}

#define SOCK (WEFT__OPD_FD | WEFT__OPD_DEADLINE)
#define MSG_OP (SOCK | WEFT__OPD_MSG)
#define FILE_OP (WEFT__OPD_FD | WEFT__OPD_DEADLINE)
#define PATH_OP (WEFT__OPD_DIRFD | WEFT__OPD_DEADLINE)

const struct weft__opdef weft__opdefs[] = {
	[WEFT__OP_NOP] = { .name = "nop",
			   .uring_op = IORING_OP_NOP,
			   .flags = WEFT__OPD_DEADLINE,
			   .try_nb = weft__nb_nop },
	[WEFT__OP_READ] = { .name = "read",
			    .uring_op = IORING_OP_READ,
			    .flags = FILE_OP,
			    .fill = WEFT__FILL_BUF,
			    .reads = WEFT__READS_DATA,
			    .ready = WEFT__READY_IN,
			    .try_nb = weft__nb_read,
			    .blocking = weft__blk_read },
	[WEFT__OP_WRITE] = { .name = "write",
			     .uring_op = IORING_OP_WRITE,
			     .flags = FILE_OP,
			     .reads = WEFT__READS_DATA,
			     .ready = WEFT__READY_OUT,
			     .try_nb = weft__nb_write,
			     .blocking = weft__blk_write },
	[WEFT__OP_READV] = { .name = "readv",
			     .uring_op = IORING_OP_READV,
			     .flags = FILE_OP,
			     .fill = WEFT__FILL_IOV,
			     .reads = WEFT__READS_DATA,
			     .ready = WEFT__READY_IN,
			     .try_nb = weft__nb_readv,
			     .blocking = weft__blk_readv },
	[WEFT__OP_WRITEV] = { .name = "writev",
			      .uring_op = IORING_OP_WRITEV,
			      .flags = FILE_OP,
			      .reads = WEFT__READS_DATA,
			      .ready = WEFT__READY_OUT,
			      .try_nb = weft__nb_writev,
			      .blocking = weft__blk_writev },
	[WEFT__OP_FSYNC] = { .name = "fsync",
			     .uring_op = IORING_OP_FSYNC,
			     .flags = FILE_OP,
			     .blocking = weft__blk_fsync },
	/* A close must happen even for a cancelled fiber, or the fd leaks. */
	[WEFT__OP_CLOSE] = { .name = "close",
			     .uring_op = IORING_OP_CLOSE,
			     .flags = WEFT__OPD_MUST_RUN | WEFT__OPD_CLOSES,
			     .try_nb = weft__nb_close },
	[WEFT__OP_OPENAT] = { .name = "openat",
			      .uring_op = IORING_OP_OPENAT,
			      .flags = PATH_OP | WEFT__OPD_NEW_FD,
			      .reads = WEFT__READS_PATH,
			      .blocking = weft__blk_openat },
	[WEFT__OP_STATX] = { .name = "statx",
			     .uring_op = IORING_OP_STATX,
			     .flags = PATH_OP,
			     .fill = WEFT__FILL_STATX,
			     .reads = WEFT__READS_PATH,
			     .blocking = weft__blk_statx },
	[WEFT__OP_UNLINKAT] = { .name = "unlinkat",
				.uring_op = IORING_OP_UNLINKAT,
				.flags = PATH_OP,
				.reads = WEFT__READS_PATH,
				.blocking = weft__blk_unlinkat },
	[WEFT__OP_RENAMEAT] = { .name = "renameat",
				.uring_op = IORING_OP_RENAMEAT,
				.flags = PATH_OP | WEFT__OPD_DIRFD2,
				.reads = WEFT__READS_PATHS,
				.uring_prep = prep_renameat,
				.blocking = weft__blk_renameat },
	/* Linux 5.15. */
	[WEFT__OP_MKDIRAT] = { .name = "mkdirat",
			       .uring_op = IORING_OP_MKDIRAT,
			       .flags = PATH_OP,
			       .reads = WEFT__READS_PATH,
			       .blocking = weft__blk_mkdirat },
	[WEFT__OP_FALLOCATE] = { .name = "fallocate",
				 .uring_op = IORING_OP_FALLOCATE,
				 .flags = FILE_OP,
				 .blocking = weft__blk_fallocate },
	/* Linux 6.9. */
	[WEFT__OP_FTRUNCATE] = { .name = "ftruncate",
				 .uring_op = URING_OP_FTRUNCATE,
				 .flags = FILE_OP,
				 .blocking = weft__blk_ftruncate },
	/* Linux 5.19; socket(2) does not block, so without the opcode it runs in place. */
	[WEFT__OP_SOCKET] = { .name = "socket",
			      .uring_op = IORING_OP_SOCKET,
			      .flags = WEFT__OPD_DEADLINE | WEFT__OPD_NEW_FD,
			      .try_nb = weft__nb_socket },
	[WEFT__OP_ACCEPT] = { .name = "accept",
			      .uring_op = IORING_OP_ACCEPT,
			      .flags = SOCK | WEFT__OPD_NEW_FD,
			      .fill = WEFT__FILL_SOCKADDR,
			      .ready = WEFT__READY_IN,
			      .try_nb = weft__nb_accept },
	[WEFT__OP_CONNECT] = { .name = "connect",
			       .uring_op = IORING_OP_CONNECT,
			       .flags = SOCK,
			       .ready = WEFT__READY_OUT,
			       .try_nb = weft__nb_connect,
			       .nb_end = weft__nb_connect_end },
	[WEFT__OP_RECV] = { .name = "recv",
			    .uring_op = IORING_OP_RECV,
			    .flags = MSG_OP | WEFT__OPD_RECV,
			    .fill = WEFT__FILL_BUF,
			    .ready = WEFT__READY_IN,
			    .try_nb = weft__nb_recv },
	[WEFT__OP_SEND] = { .name = "send",
			    .uring_op = IORING_OP_SEND,
			    .flags = MSG_OP,
			    .ready = WEFT__READY_OUT,
			    .try_nb = weft__nb_send },
	[WEFT__OP_RECVMSG] = { .name = "recvmsg",
			       .uring_op = IORING_OP_RECVMSG,
			       .flags = MSG_OP,
			       .fill = WEFT__FILL_MSG,
			       .ready = WEFT__READY_IN,
			       .try_nb = weft__nb_recvmsg },
	[WEFT__OP_SENDMSG] = { .name = "sendmsg",
			       .uring_op = IORING_OP_SENDMSG,
			       .flags = MSG_OP,
			       .ready = WEFT__READY_OUT,
			       .try_nb = weft__nb_sendmsg },
	[WEFT__OP_SHUTDOWN] = { .name = "shutdown",
				.uring_op = IORING_OP_SHUTDOWN,
				.flags = SOCK,
				.try_nb = weft__nb_shutdown },
	/* A kernel timer (WEFT_TIMERS_KERNEL); the sleep is its own deadline. */
	[WEFT__OP_TIMEOUT] = { .name = "timeout",
			       .uring_op = IORING_OP_TIMEOUT,
			       .flags = WEFT__OPD_TIMER,
			       .uring_prep = prep_timeout },
	/* Readiness of an fd (the io_uring backend's wake eventfd; the poll-then-try fallback). */
	[WEFT__OP_POLL] = { .name = "poll",
			    .uring_op = IORING_OP_POLL_ADD,
			    .flags = WEFT__OPD_FD | WEFT__OPD_DEADLINE,
			    .ready = WEFT__READY_EVENTS,
			    .try_nb = weft__nb_poll },
	/*
	 * Linux 5.7. Between two fds, which the readiness of one op cannot say:
	 * where the backend lacks it, weft_splice tries and polls by itself.
	 */
	[WEFT__OP_SPLICE] = { .name = "splice",
			      .uring_op = IORING_OP_SPLICE,
			      .flags = FILE_OP | WEFT__OPD_LOOP_TIMER,
			      .uring_prep = prep_splice },
	/* Linux 6.0: two completions, the result and the kernel's notification that buf is free. */
	[WEFT__OP_SEND_ZC] = { .name = "send_zc",
			       .uring_op = IORING_OP_SEND_ZC,
			       .flags = MSG_OP | WEFT__OPD_MORE,
			       .ready = WEFT__READY_OUT,
			       .try_nb = weft__nb_send },
	/* A receive into a buffer the loop lends (bufs.h): the kernel's pick, or the try's. */
	[WEFT__OP_RECV_BUF] = { .name = "recv_buf",
				.uring_op = IORING_OP_RECV,
				.flags = MSG_OP | WEFT__OPD_RECV,
				.ready = WEFT__READY_IN,
				.uring_prep = prep_recv_buf,
				.try_nb = weft__nb_recv_buf },
	/*
	 * Linux 5.19: a listener's multishot accept (accept.c), one new fd per
	 * CQE, no addresses (the kernel would write every one into one slot).
	 * Only io_uring runs it; elsewhere weft_accept is the plain accept.
	 */
	[WEFT__OP_ACCEPT_MULTI] = { .name = "accept_multishot",
				    .uring_op = IORING_OP_ACCEPT,
				    .flags = WEFT__OPD_MULTISHOT | WEFT__OPD_NEW_FD,
				    .uring_prep = prep_accept_multi },
	/*
	 * Linux 6.0: weft_recv_buf's multishot receive on a stream socket
	 * (recvmulti.c), one lent buffer per CQE. Only io_uring runs it;
	 * elsewhere weft_recv_buf is the single-shot receive.
	 */
	[WEFT__OP_RECV_MULTI] = { .name = "recv_multishot",
				  .uring_op = IORING_OP_RECV,
				  .flags = WEFT__OPD_MULTISHOT,
				  .uring_prep = prep_recv_multi },
};

_Static_assert(sizeof(weft__opdefs) / sizeof(weft__opdefs[0]) == WEFT__OP_COUNT,
	       "every weft opcode has a row in the op table");
_Static_assert(WEFT__OP_COUNT <= 64, "the supported-op set is one 64-bit word");
