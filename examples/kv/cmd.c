/* SPDX-License-Identifier: MIT */
/*
 * The command table and dispatch (name, arity, the shard a command runs
 * on, --maxmemory), the server commands, and the multi-key commands, which
 * run one step per key on that key's shard, in order, so that a reply
 * reads as redis's does.
 */
#include "cmd.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
	CMD_WRITE = 1 << 0, /* may grow memory: refused past --maxmemory (redis's denyoom) */
	CMD_KEY = 1 << 1,   /* argv[1] is the key: run on its shard */
};

struct command {
	const char *name; /* lower case; the table is sorted by it */
	int arity;	  /* as redis: n exactly, -n at least n */
	unsigned flags;
	void (*fn)(struct cmdctx *c);
};

/* ---- helpers shared by the handlers ---- */

bool arg_is(const struct cmdctx *c, int i, const char *word)
{
	size_t n = strlen(word);

	return c->argv[i].len == n && !strncasecmp(c->argv[i].p, word, n);
}

int arg_ll(struct cmdctx *c, int i, long long *out)
{
	if (kv_parse_ll(c->argv[i].p, c->argv[i].len, out) == 0)
		return 0;
	out_error(c->out, KV_ERR_NOTINT);
	return -1;
}

struct dent *lookup_typed(struct cmdctx *c, enum kv_type type, bool *wrong)
{
	struct dent *e = db_lookup(c->db, c->argv[1].p, c->argv[1].len);

	*wrong = false;
	if (e && e->type != type) {
		*wrong = true;
		out_error(c->out, KV_ERR_WRONGTYPE);
		return NULL;
	}
	return e;
}

void reply_wrong_args(struct cmdctx *c)
{
	char name[32];
	size_t n = c->argv[0].len < sizeof(name) - 1 ? c->argv[0].len : sizeof(name) - 1;

	for (size_t i = 0; i < n; i++)
		name[i] = (char)tolower((unsigned char)c->argv[0].p[i]);
	name[n] = 0;
	out_errorf(c->out, "ERR wrong number of arguments for '%s' command", name);
}

/* ---- server commands ---- */

static HANDLER(cmd_ping)
{
	if (c->argc > 2)
		reply_wrong_args(c);
	else if (c->argc == 2)
		out_bulk(c->out, c->argv[1].p, c->argv[1].len);
	else
		out_status(c->out, "PONG");
}

static HANDLER(cmd_echo)
{
	out_bulk(c->out, c->argv[1].p, c->argv[1].len);
}

static HANDLER(cmd_quit)
{
	out_status(c->out, "OK");
	c->conn->quit = true;
}

static HANDLER(cmd_select)
{
	long long n;

	if (kv_parse_ll(c->argv[1].p, c->argv[1].len, &n) < 0)
		out_error(c->out, KV_ERR_NOTINT);
	else if (n != 0)
		out_error(c->out, "ERR DB index is out of range");
	else
		out_status(c->out, "OK");
}

static HANDLER(dbsize_one)
{
	c->acc += (long long)c->db->keys.count;
}

static long long count_keys(struct cmdctx *c)
{
	c->acc = 0;
	for (unsigned i = 0; i < kv_nshards(); i++)
		kv_run_on(i, dbsize_one, c);
	return c->acc;
}

static HANDLER(cmd_dbsize)
{
	out_int(c->out, count_keys(c));
}

static HANDLER(flush_one)
{
	db_flush(c->db);
}

static HANDLER(cmd_flushall)
{
	if (c->argc > 2 || (c->argc == 2 && !arg_is(c, 1, "sync") && !arg_is(c, 1, "async"))) {
		out_error(c->out, KV_ERR_SYNTAX);
		return;
	}
	for (unsigned i = 0; i < kv_nshards(); i++)
		kv_run_on(i, flush_one, c);
	out_status(c->out, "OK");
}

static HANDLER(cmd_info)
{
	char buf[1024];
	long long keys = count_keys(c);
	int n = snprintf(buf, sizeof(buf),
			 "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
			 "weft_kv:1\r\nshards:%u\r\ntcp_port:%d\r\n\r\n"
			 "# Clients\r\nconnected_clients:%lld\r\nmaxclients:%lld\r\n\r\n"
			 "# Memory\r\nused_memory:%zu\r\nmaxmemory:%lld\r\n"
			 "maxmemory_policy:noeviction\r\n\r\n"
			 "# Persistence\r\nloading:0\r\naof_enabled:0\r\n\r\n"
			 "# Keyspace\r\n",
			 kv_nshards(), kv_cfg.port, kv_clients(), kv_cfg.maxclients,
			 kv_used_memory(), kv_cfg.maxmemory);

	if (keys > 0)
		n +=
		    snprintf(buf + n, sizeof(buf) - (size_t)n, "db0:keys=%lld,expires=0\r\n", keys);
	out_bulk(c->out, buf, (size_t)n);
}

/* CONFIG GET: what redis-benchmark and redis-cli ask (no persistence here). */
static HANDLER(cmd_config)
{
	if (!arg_is(c, 1, "get")) {
		out_errorf(c->out, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.",
			   (int)(c->argv[1].len > 128 ? 128 : c->argv[1].len), c->argv[1].p);
		return;
	}
	if (c->argc < 3) {
		out_error(c->out, "ERR wrong number of arguments for 'config|get' command");
		return;
	}
	int found = 0;
	struct out *o = c->out;
	size_t mark = o->len;

	out_raw(o, "*00000000000000000000\r\n", 23); /* patched below */
	for (int i = 2; i < c->argc; i++) {
		if (arg_is(c, i, "save")) {
			out_bulk(o, "save", 4);
			out_bulk(o, "", 0);
			found++;
		} else if (arg_is(c, i, "appendonly")) {
			out_bulk(o, "appendonly", 10);
			out_bulk(o, "no", 2);
			found++;
		}
	}
	if (o->broken)
		return;
	char head[32];
	int n = snprintf(head, sizeof(head), "*%d\r\n", found * 2);

	memmove(o->buf + mark + n, o->buf + mark + 23, o->len - mark - 23);
	memcpy(o->buf + mark, head, (size_t)n);
	o->len -= 23 - (size_t)n;
}

static HANDLER(cmd_command)
{
	if (c->argc >= 2 && arg_is(c, 1, "count"))
		out_int(c->out, 0);
	else
		out_array(c->out, 0); /* redis-cli does without the command docs */
}

/* ---- multi-key commands: one step per key, each on the key's shard ---- */

/* A context whose argv[1] (and argv[2]) are arguments @i (and @i + 1) of @c. */
static struct cmdctx step_at(const struct cmdctx *c, int i)
{
	struct cmdctx s = *c;

	s.argv = c->argv + i - 1;
	s.argc = c->argc - i + 1;
	return s;
}

static HANDLER(cmd_mget)
{
	out_array(c->out, c->argc - 1);
	for (int i = 1; i < c->argc; i++) {
		struct cmdctx s = step_at(c, i);

		kv_run_on(kv_shard_of(s.argv[1].p, s.argv[1].len), cmd_mget_one, &s);
	}
}

/* Not atomic across shards (a reader on another connection may see half of it). */
static HANDLER(cmd_mset)
{
	if (c->argc % 2 == 0) {
		reply_wrong_args(c);
		return;
	}
	long long failed = 0;

	for (int i = 1; i < c->argc; i += 2) {
		struct cmdctx s = step_at(c, i);

		s.acc = 0;
		kv_run_on(kv_shard_of(s.argv[1].p, s.argv[1].len), cmd_set_one, &s);
		failed += s.acc;
	}
	if (failed)
		out_error(c->out, KV_ERR_NOMEM);
	else
		out_status(c->out, "OK");
}

static void count_keys_with(struct cmdctx *c, void (*fn)(struct cmdctx *))
{
	long long n = 0;

	for (int i = 1; i < c->argc; i++) {
		struct cmdctx s = step_at(c, i);

		s.acc = 0;
		kv_run_on(kv_shard_of(s.argv[1].p, s.argv[1].len), fn, &s);
		n += s.acc;
	}
	out_int(c->out, n);
}

static HANDLER(cmd_del)
{
	count_keys_with(c, cmd_del_one);
}

static HANDLER(cmd_exists)
{
	count_keys_with(c, cmd_exists_one);
}

/* ---- the table ---- */

#define W CMD_WRITE
#define K CMD_KEY

static const struct command commands[] = {
	{ "append", 3, W | K, cmd_append },
	{ "command", -1, 0, cmd_command },
	{ "config", -2, 0, cmd_config },
	{ "dbsize", 1, 0, cmd_dbsize },
	{ "decr", 2, W | K, cmd_decr },
	{ "decrby", 3, W | K, cmd_decrby },
	{ "del", -2, 0, cmd_del },
	{ "echo", 2, 0, cmd_echo },
	{ "exists", -2, 0, cmd_exists },
	{ "expire", -3, K, cmd_expire },
	{ "flushall", -1, 0, cmd_flushall },
	{ "get", 2, K, cmd_get },
	{ "hdel", -3, K, cmd_hdel },
	{ "hget", 3, K, cmd_hget },
	{ "hgetall", 2, K, cmd_hgetall },
	{ "hlen", 2, K, cmd_hlen },
	{ "hset", -4, W | K, cmd_hset },
	{ "incr", 2, W | K, cmd_incr },
	{ "incrby", 3, W | K, cmd_incrby },
	{ "info", -1, 0, cmd_info },
	{ "llen", 2, K, cmd_llen },
	{ "lpop", -2, K, cmd_lpop },
	{ "lpush", -3, W | K, cmd_lpush },
	{ "lrange", 4, K, cmd_lrange },
	{ "mget", -2, 0, cmd_mget },
	{ "mset", -3, W, cmd_mset },
	{ "persist", 2, K, cmd_persist },
	{ "pexpire", -3, K, cmd_pexpire },
	{ "ping", -1, 0, cmd_ping },
	{ "pttl", 2, K, cmd_pttl },
	{ "quit", -1, 0, cmd_quit },
	{ "rpop", -2, K, cmd_rpop },
	{ "rpush", -3, W | K, cmd_rpush },
	{ "sadd", -3, W | K, cmd_sadd },
	{ "scard", 2, K, cmd_scard },
	{ "select", 2, 0, cmd_select },
	{ "set", -3, W | K, cmd_set },
	{ "sismember", 3, K, cmd_sismember },
	{ "smembers", 2, K, cmd_smembers },
	{ "spop", -2, K, cmd_spop },
	{ "srem", -3, K, cmd_srem },
	{ "strlen", 2, K, cmd_strlen },
	{ "ttl", 2, K, cmd_ttl },
	{ "type", 2, K, cmd_type },
	{ "zadd", -4, W | K, cmd_zadd },
	{ "zcard", 2, K, cmd_zcard },
	{ "zpopmin", -2, K, cmd_zpopmin },
	{ "zrange", -4, K, cmd_zrange },
	{ "zscore", 3, K, cmd_zscore },
};

#undef W
#undef K

static int command_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct command *)elem)->name);
}

static const struct command *command_find(const struct arg *name)
{
	char lower[16];

	if (name->len >= sizeof(lower))
		return NULL;
	for (size_t i = 0; i < name->len; i++)
		lower[i] = (char)tolower((unsigned char)name->p[i]);
	lower[name->len] = 0;
	return bsearch(lower, commands, sizeof(commands) / sizeof(commands[0]), sizeof(commands[0]),
		       command_cmp);
}

/* As redis 7: the name and the first arguments, 128 bytes of them at most. */
static void reply_unknown(struct cmdctx *c)
{
	char args[160];
	size_t n = 0;

	args[0] = 0;
	for (int i = 1; i < c->argc && n < 128; i++) {
		int w = snprintf(args + n, sizeof(args) - n, "'%.*s' ",
				 (int)(c->argv[i].len < 128 - n ? c->argv[i].len : 128 - n),
				 c->argv[i].p);

		if (w < 0 || (size_t)w >= sizeof(args) - n)
			break;
		n += (size_t)w;
	}
	out_errorf(c->out, "ERR unknown command '%.*s', with args beginning with: %s",
		   (int)(c->argv[0].len > 128 ? 128 : c->argv[0].len), c->argv[0].p, args);
}

void kv_dispatch(int argc, const struct arg *argv, struct out *out, struct conn_state *cs)
{
	struct cmdctx c = { .argc = argc, .argv = argv, .out = out, .conn = cs };
	const struct command *cmd = command_find(&argv[0]);

	if (!cmd) {
		reply_unknown(&c);
		return;
	}
	if ((cmd->arity > 0 && argc != cmd->arity) || (cmd->arity < 0 && argc < -cmd->arity)) {
		reply_wrong_args(&c);
		return;
	}
	if ((cmd->flags & CMD_WRITE) && kv_cfg.maxmemory > 0 &&
	    kv_used_memory() > (size_t)kv_cfg.maxmemory) {
		out_error(out, KV_ERR_OOM);
		return;
	}
	if (cmd->flags & CMD_KEY)
		kv_run_on(kv_shard_of(argv[1].p, argv[1].len), cmd->fn, &c);
	else
		cmd->fn(&c); /* keyless, or a multi-key command that visits the shards itself */
}
