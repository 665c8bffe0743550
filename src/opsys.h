/* SPDX-License-Identifier: MIT */
/*
 * The system calls behind the op table's hooks (opsys.c): for each op, one
 * try that never blocks, the blocking form a worker thread runs, and what
 * undoes a try. They read the op record as opdef.c's field map says.
 */
#ifndef WEFT_OPSYS_H
#define WEFT_OPSYS_H

#include "types.h"

#pragma GCC visibility push(hidden)

/* Tries that never block (result, or -EAGAIN to wait for readiness). */
long weft__nb_nop(struct weft__op *op, uint8_t *memo);
long weft__nb_close(struct weft__op *op, uint8_t *memo);
long weft__nb_socket(struct weft__op *op, uint8_t *memo);
long weft__nb_shutdown(struct weft__op *op, uint8_t *memo);
long weft__nb_read(struct weft__op *op, uint8_t *memo);
long weft__nb_readv(struct weft__op *op, uint8_t *memo);
long weft__nb_write(struct weft__op *op, uint8_t *memo);
long weft__nb_writev(struct weft__op *op, uint8_t *memo);
long weft__nb_accept(struct weft__op *op, uint8_t *memo);
long weft__nb_connect(struct weft__op *op, uint8_t *memo);
long weft__nb_recv(struct weft__op *op, uint8_t *memo);
long weft__nb_send(struct weft__op *op, uint8_t *memo);
long weft__nb_recvmsg(struct weft__op *op, uint8_t *memo);
long weft__nb_sendmsg(struct weft__op *op, uint8_t *memo);
long weft__nb_poll(struct weft__op *op, uint8_t *memo);
long weft__nb_recv_buf(struct weft__op *op, uint8_t *memo);
/* Undo what connect's tries did to the socket's flags. */
void weft__nb_connect_end(struct weft__op *op);

/* Blocking forms, for worker threads (result or -errno). */
long weft__blk_read(const struct weft__op *op);
long weft__blk_readv(const struct weft__op *op);
long weft__blk_write(const struct weft__op *op);
long weft__blk_writev(const struct weft__op *op);
long weft__blk_fsync(const struct weft__op *op);
long weft__blk_openat(const struct weft__op *op);
long weft__blk_statx(const struct weft__op *op);
long weft__blk_unlinkat(const struct weft__op *op);
long weft__blk_renameat(const struct weft__op *op);
long weft__blk_mkdirat(const struct weft__op *op);
long weft__blk_fallocate(const struct weft__op *op);
long weft__blk_ftruncate(const struct weft__op *op);

#pragma GCC visibility pop

#endif
