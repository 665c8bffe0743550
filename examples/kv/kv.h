/* SPDX-License-Identifier: MIT */
/*
 * kv_server: a Redis-protocol (RESP2) key-value server on weft. The shared
 * types: byte strings, the hash table, the value types, a shard's keyspace,
 * the reply buffer and the command context.
 *
 * Invariant: a shard (struct db and everything reachable from it) is only
 * ever touched by the thread of its loop; a command for a key of another
 * shard runs in a fiber spawned on that shard's loop (server.c).
 */
#ifndef KV_H
#define KV_H

#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- memory: counted per thread (= per shard), summed for --maxmemory ---- */

void kv_mem_bind(_Atomic size_t *slot); /* this thread's counter */
void *kv_alloc(size_t n);		/* NULL when out of memory */
void *kv_realloc(void *p, size_t n);
void kv_free(void *p);

/* ---- binary-safe byte strings ---- */

struct kstr {
	size_t len;
	char buf[]; /* len bytes, then a NUL (for strtoll) */
};

struct kstr *kstr_new(const char *p, size_t len);
struct kstr *kstr_from_ll(long long v);
void kstr_free(struct kstr *s);
/* Parse the whole of p[0..len) as a long long: 0, or -1 if it is not one. */
int kv_parse_ll(const char *p, size_t len, long long *out);
int kv_parse_double(const char *p, size_t len, double *out);
int kv_fmt_double(char *buf, size_t cap, double v);

/* ---- hash table: chained, power-of-two buckets, rehashed in one step ---- */

struct dent {
	struct dent *next;
	uint64_t hash;
	void *val; /* keyspace: the value (type below); hash: a kstr; zset: its node */
	union {
		int64_t expire; /* keyspace: ns on weft_now's clock, or -1 */
		double score;	/* zset */
	} u;
	uint32_t type; /* keyspace: enum kv_type */
	uint32_t klen;
	char key[];
};

struct dict {
	struct dent **tab;
	size_t mask; /* buckets - 1 (tab NULL while empty) */
	size_t count;
};

uint64_t kv_hash(const char *p, size_t len);
void kv_hash_seed(uint64_t seed); /* once, before any key is hashed */
struct dent *dict_find(struct dict *d, const char *key, size_t klen);
/* The entry for key, added (val NULL) if absent; *created says which. NULL: out of memory. */
struct dent *dict_add(struct dict *d, const char *key, size_t klen, bool *created);
/* Unlink the entry for key and return it (the caller frees it with kv_free), or NULL. */
struct dent *dict_unlink(struct dict *d, const char *key, size_t klen);
/* A random entry, or NULL if empty. */
struct dent *dict_random(struct dict *d);
/* Free every entry, calling fn(entry) first when fn is not NULL. */
void dict_clear(struct dict *d, void (*fn)(struct dent *e));
/* Shrink the table if it is mostly empty (after deletions). */
void dict_shrink(struct dict *d);

/* ---- the value types ---- */

enum kv_type { KV_STR, KV_LIST, KV_SET, KV_HASH, KV_ZSET };

struct list { /* a deque: a ring of string pointers */
	struct kstr **a;
	size_t cap; /* a power of two, or 0 */
	size_t head;
	size_t len;
};

struct list *list_new(void);
void list_free(struct list *l);
int list_push(struct list *l, struct kstr *s, bool left); /* 0 or -ENOMEM */
struct kstr *list_pop(struct list *l, bool left);
struct kstr *list_at(const struct list *l, size_t i);

struct zset; /* a skiplist ordered by (score, member) beside a dict member -> node */

struct zset *zset_new(void);
void zset_free(struct zset *z);
size_t zset_len(const struct zset *z);
/* Add or update: 1 added, 0 updated (or unchanged), -ENOMEM. */
int zset_add(struct zset *z, const char *m, size_t mlen, double score);
int zset_score(struct zset *z, const char *m, size_t mlen, double *out);
/* The member at rank i (0 = lowest score). */
int zset_at(struct zset *z, size_t i, const char **m, size_t *mlen, double *score);
/* Remove the lowest-ranked member, copying it out first: 0, or -ENOENT when empty. */
int zset_pop_min(struct zset *z, struct kstr **m, double *score);

/* A hash or a set: a dict whose values are kstr (hash) or NULL (set). */
struct dict *hdict_new(void);
void hdict_free(struct dict *d);

/* ---- a shard's keyspace ---- */

struct db {
	struct dict keys;
	struct dict expires; /* the keys that have a TTL (no value; u.expire) */
	uint64_t expired;    /* keys removed because their TTL passed */
};

/* The live entry for key (an expired one is deleted first), or NULL. */
struct dent *db_lookup(struct db *db, const char *key, size_t klen);
/* A new entry of @type for an absent key (db_lookup said so). NULL: out of memory. */
struct dent *db_create(struct db *db, const char *key, size_t klen, enum kv_type type, void *val);
bool db_delete(struct db *db, const char *key, size_t klen);
/* Set or clear (-1) a key's expiry time. 0, or -ENOMEM. */
int db_set_expire(struct db *db, struct dent *e, int64_t when);
void db_flush(struct db *db);
void db_free_value(enum kv_type type, void *val);
/* One active-expiry cycle: sample keys with a TTL, delete the dead. Return: how many. */
size_t db_expire_cycle(struct db *db, int64_t now, int64_t budget_ns);

/* ---- replies ---- */

struct out {
	char *buf;
	size_t len;
	size_t cap;
	bool broken; /* a reply could not be stored: the connection is closed */
};

void out_raw(struct out *o, const char *p, size_t len);
void out_status(struct out *o, const char *s); /* "+s\r\n" */
void out_error(struct out *o, const char *s);  /* "-s\r\n"; s starts with ERR, WRONGTYPE... */
void out_errorf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void out_int(struct out *o, long long v);
void out_bulk(struct out *o, const char *p, size_t len);
void out_nil(struct out *o);
void out_array(struct out *o, long long n);
void out_double(struct out *o, double v);

#define KV_ERR_WRONGTYPE "WRONGTYPE Operation against a key holding the wrong kind of value"
#define KV_ERR_NOTINT "ERR value is not an integer or out of range"
#define KV_ERR_SYNTAX "ERR syntax error"
#define KV_ERR_OOM "OOM command not allowed when used memory > 'maxmemory'."
#define KV_ERR_NOMEM "ERR out of memory"

/* ---- commands ---- */

struct arg {
	const char *p;
	size_t len;
};

struct conn_state { /* what a command may change on its connection */
	bool quit;
};

struct cmdctx {
	struct db *db; /* the shard the command runs on */
	int argc;
	const struct arg *argv;
	struct out *out;
	struct conn_state *conn;
	long long acc; /* what a step of a multi-key command adds up */
};

struct kv_config {
	int port;
	unsigned loops;
	long long maxclients;
	long long maxmemory; /* 0: no bound */
	long long max_bulk;
	long long max_query;  /* the most bytes one command's arguments take */
	long long timeout_ns; /* idle connections are closed after it; 0: never */
};

extern struct kv_config kv_cfg;

/* Run one parsed command (argc > 0) and append its reply to @out. */
void kv_dispatch(int argc, const struct arg *argv, struct out *out, struct conn_state *cs);

/* server.c: the sharding the commands use. */
unsigned kv_nshards(void);
unsigned kv_shard_of(const char *key, size_t klen);
/* Run fn(ctx) with ctx->db set to shard i, on that shard's loop. */
void kv_run_on(unsigned shard, void (*fn)(struct cmdctx *), struct cmdctx *ctx);
size_t kv_used_memory(void);
long long kv_clients(void);

#endif
