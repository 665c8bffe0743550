/* SPDX-License-Identifier: MIT */
/*
 * RESP2 requests: multibulk (*N / $len) and inline commands read from a
 * weft_reader into one connection's argument arena, with the bounds of
 * kv_cfg (--max-bulk, the query bound, 64 KiB lines as redis's
 * PROTO_INLINE_MAX_SIZE).
 */
#ifndef KV_RESP_H
#define KV_RESP_H

#include "kv.h"

#include <weft.h>

/* Lines (inline commands, *N and $len headers) and bulk chunks: at most this long. */
#define RESP_LINE_MAX (64 * 1024)

struct req {
	weft_reader *r;
	struct out *out;
	int (*flush)(void *arg); /* write out what is in @out: called before a read would wait */
	void *flush_arg;
	char *arena; /* the arguments' bytes, one after the other */
	size_t alen;
	size_t acap;
	struct arg *argv;
	size_t argcap;
	int argc;
};

/*
 * Read the next command into q->argv[0..argc): argc 0 for an empty one.
 * Context: fiber. Return: 1; 0 at the end of the stream; -EPROTO for a
 * protocol error (its -ERR reply is in q->out: flush it and close); or a
 * reader or flush error (-ECONNRESET, -ETIMEDOUT, -ECANCELED, -ENOMEM).
 */
int req_read(struct req *q);
/* Free the arena and argv. */
void req_fini(struct req *q);

#endif
