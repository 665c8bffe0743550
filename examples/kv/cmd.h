/* SPDX-License-Identifier: MIT */
/*
 * The command handlers, by family, and the helpers they share. A handler
 * runs on the loop of ctx->db's shard and appends exactly one reply.
 */
#ifndef KV_CMD_H
#define KV_CMD_H

#include "kv.h"

/* The entry of key argv[1] if it holds @type; NULL if absent, or if of another type (then
 * *wrong is set and WRONGTYPE replied). */
struct dent *lookup_typed(struct cmdctx *c, enum kv_type type, bool *wrong);
/* Whether argument i is @word, case-insensitively. */
bool arg_is(const struct cmdctx *c, int i, const char *word);
/* Parse argument i as a long long; on failure reply "not an integer" and return -1. */
int arg_ll(struct cmdctx *c, int i, long long *out);
void reply_wrong_args(struct cmdctx *c);

#define HANDLER(name) void name(struct cmdctx *c)

/* strings and keys (cmd_str.c) */
HANDLER(cmd_get);
HANDLER(cmd_set);
HANDLER(cmd_incr);
HANDLER(cmd_decr);
HANDLER(cmd_incrby);
HANDLER(cmd_decrby);
HANDLER(cmd_append);
HANDLER(cmd_strlen);
HANDLER(cmd_expire);
HANDLER(cmd_pexpire);
HANDLER(cmd_ttl);
HANDLER(cmd_pttl);
HANDLER(cmd_persist);
HANDLER(cmd_type);
HANDLER(cmd_mget_one); /* MGET's step: a bulk or nil */
HANDLER(cmd_set_one);  /* MSET's step: argv[1] = argv[2] */
HANDLER(cmd_del_one);  /* DEL's step: acc += deleted */
HANDLER(cmd_exists_one);

/* lists, sets, hashes (cmd_coll.c) */
HANDLER(cmd_lpush);
HANDLER(cmd_rpush);
HANDLER(cmd_lpop);
HANDLER(cmd_rpop);
HANDLER(cmd_llen);
HANDLER(cmd_lrange);
HANDLER(cmd_sadd);
HANDLER(cmd_srem);
HANDLER(cmd_sismember);
HANDLER(cmd_scard);
HANDLER(cmd_spop);
HANDLER(cmd_smembers);
HANDLER(cmd_hset);
HANDLER(cmd_hget);
HANDLER(cmd_hdel);
HANDLER(cmd_hgetall);
HANDLER(cmd_hlen);

/* sorted sets (cmd_zset.c) */
HANDLER(cmd_zadd);
HANDLER(cmd_zpopmin);
HANDLER(cmd_zrange);
HANDLER(cmd_zcard);
HANDLER(cmd_zscore);

#endif
