/* SPDX-License-Identifier: MIT */
/*
 * List, set and hash commands. A collection that becomes empty is deleted
 * with its key, as in redis.
 */
#include "cmd.h"

#include <stdlib.h>

/* The entry of @type at argv[1], created empty if absent. NULL: replied (WRONGTYPE, OOM). */
static struct dent *get_or_create(struct cmdctx *c, enum kv_type type)
{
	bool wrong;
	struct dent *e = lookup_typed(c, type, &wrong);

	if (e || wrong)
		return e;
	void *val = type == KV_LIST ? (void *)list_new() : (void *)hdict_new();

	if (val)
		e = db_create(c->db, c->argv[1].p, c->argv[1].len, type, val);
	if (!e) {
		db_free_value(type, val);
		out_error(c->out, KV_ERR_NOMEM);
	}
	return e;
}

static size_t coll_len(const struct dent *e)
{
	if (e->type == KV_LIST)
		return ((struct list *)e->val)->len;
	return ((struct dict *)e->val)->count;
}

static void delete_if_empty(struct cmdctx *c, struct dent *e)
{
	if (coll_len(e) == 0)
		db_delete(c->db, c->argv[1].p, c->argv[1].len);
}

/* ---- lists ---- */

static void push(struct cmdctx *c, bool left)
{
	struct dent *e = get_or_create(c, KV_LIST);

	if (!e)
		return;
	struct list *l = e->val;

	for (int i = 2; i < c->argc; i++) {
		struct kstr *s = kstr_new(c->argv[i].p, c->argv[i].len);

		if (!s || list_push(l, s, left) < 0) {
			kstr_free(s);
			delete_if_empty(c, e);
			out_error(c->out, KV_ERR_NOMEM);
			return;
		}
	}
	out_int(c->out, (long long)l->len);
}

HANDLER(cmd_lpush)
{
	push(c, true);
}

HANDLER(cmd_rpush)
{
	push(c, false);
}

/* A count argument (argv[2]) if there is one: 0 none, 1 read, -1 replied an error. */
static int opt_count(struct cmdctx *c, long long *count)
{
	if (c->argc == 2)
		return 0;
	if (c->argc > 3) {
		reply_wrong_args(c);
		return -1;
	}
	if (kv_parse_ll(c->argv[2].p, c->argv[2].len, count) < 0 || *count < 0) {
		out_error(c->out, "ERR value is out of range, must be positive");
		return -1;
	}
	return 1;
}

static void pop(struct cmdctx *c, bool left)
{
	long long count = 1;
	int has = opt_count(c, &count);
	bool wrong;
	struct dent *e = has < 0 ? NULL : lookup_typed(c, KV_LIST, &wrong);

	if (has < 0 || wrong)
		return;
	if (!e) {
		out_raw(c->out, has ? "*-1\r\n" : "$-1\r\n", 5);
		return;
	}
	struct list *l = e->val;

	if (has)
		out_array(c->out, count < (long long)l->len ? count : (long long)l->len);
	for (long long i = 0; i < count && l->len; i++) {
		struct kstr *s = list_pop(l, left);

		out_bulk(c->out, s->buf, s->len);
		kstr_free(s);
	}
	delete_if_empty(c, e);
}

HANDLER(cmd_lpop)
{
	pop(c, true);
}

HANDLER(cmd_rpop)
{
	pop(c, false);
}

HANDLER(cmd_llen)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_LIST, &wrong);

	if (!wrong)
		out_int(c->out, e ? (long long)((struct list *)e->val)->len : 0);
}

/* Clamp a redis range [start, stop] over @len items; false if it is empty. */
static bool clamp_range(long long len, long long *start, long long *stop)
{
	if (*start < 0)
		*start += len;
	if (*stop < 0)
		*stop += len;
	if (*start < 0)
		*start = 0;
	if (*stop >= len)
		*stop = len - 1;
	return *start <= *stop && *start < len;
}

HANDLER(cmd_lrange)
{
	long long start, stop;
	bool wrong;

	if (arg_ll(c, 2, &start) < 0 || arg_ll(c, 3, &stop) < 0)
		return;
	struct dent *e = lookup_typed(c, KV_LIST, &wrong);

	if (wrong)
		return;
	struct list *l = e ? e->val : NULL;

	if (!l || !clamp_range((long long)l->len, &start, &stop)) {
		out_array(c->out, 0);
		return;
	}
	out_array(c->out, stop - start + 1);
	for (long long i = start; i <= stop; i++) {
		struct kstr *s = list_at(l, (size_t)i);

		out_bulk(c->out, s->buf, s->len);
	}
}

/* ---- sets ---- */

HANDLER(cmd_sadd)
{
	struct dent *e = get_or_create(c, KV_SET);
	long long added = 0;

	if (!e)
		return;
	for (int i = 2; i < c->argc; i++) {
		bool created;

		if (!dict_add(e->val, c->argv[i].p, c->argv[i].len, &created)) {
			delete_if_empty(c, e);
			out_error(c->out, KV_ERR_NOMEM);
			return;
		}
		added += created;
	}
	out_int(c->out, added);
}

HANDLER(cmd_srem)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_SET, &wrong);
	long long removed = 0;

	if (wrong)
		return;
	for (int i = 2; e && i < c->argc; i++) {
		struct dent *m = dict_unlink(e->val, c->argv[i].p, c->argv[i].len);

		removed += m != NULL;
		kv_free(m);
	}
	if (e) {
		dict_shrink(e->val);
		delete_if_empty(c, e);
	}
	out_int(c->out, removed);
}

HANDLER(cmd_sismember)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_SET, &wrong);

	if (!wrong)
		out_int(c->out, e && dict_find(e->val, c->argv[2].p, c->argv[2].len) != NULL);
}

HANDLER(cmd_scard)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_SET, &wrong);

	if (!wrong)
		out_int(c->out, e ? (long long)((struct dict *)e->val)->count : 0);
}

HANDLER(cmd_spop)
{
	long long count = 1;
	int has = opt_count(c, &count);
	bool wrong;
	struct dent *e = has < 0 ? NULL : lookup_typed(c, KV_SET, &wrong);

	if (has < 0 || wrong)
		return;
	if (!e) {
		out_raw(c->out, has ? "*0\r\n" : "$-1\r\n", has ? 4 : 5);
		return;
	}
	struct dict *d = e->val;

	if (has)
		out_array(c->out, count < (long long)d->count ? count : (long long)d->count);
	for (long long i = 0; i < count && d->count; i++) {
		struct dent *m = dict_random(d);

		out_bulk(c->out, m->key, m->klen);
		kv_free(dict_unlink(d, m->key, m->klen));
	}
	dict_shrink(d);
	delete_if_empty(c, e);
}

/* Every entry of @d: its key, and with @values its kstr value too. */
static void reply_dict(struct cmdctx *c, struct dict *d, bool values)
{
	out_array(c->out, (long long)d->count * (values ? 2 : 1));
	for (size_t i = 0; d->tab && i <= d->mask; i++) {
		for (struct dent *m = d->tab[i]; m; m = m->next) {
			out_bulk(c->out, m->key, m->klen);
			if (values)
				out_bulk(c->out, ((struct kstr *)m->val)->buf,
					 ((struct kstr *)m->val)->len);
		}
	}
}

HANDLER(cmd_smembers)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_SET, &wrong);

	if (wrong)
		return;
	if (e)
		reply_dict(c, e->val, false);
	else
		out_array(c->out, 0);
}

/* ---- hashes ---- */

HANDLER(cmd_hset)
{
	if (c->argc % 2 != 0) {
		reply_wrong_args(c);
		return;
	}
	struct dent *e = get_or_create(c, KV_HASH);
	long long added = 0;

	if (!e)
		return;
	for (int i = 2; i < c->argc; i += 2) {
		bool created;
		struct dent *f = dict_add(e->val, c->argv[i].p, c->argv[i].len, &created);
		struct kstr *v = f ? kstr_new(c->argv[i + 1].p, c->argv[i + 1].len) : NULL;

		if (!v) {
			if (f && created)
				kv_free(dict_unlink(e->val, c->argv[i].p, c->argv[i].len));
			delete_if_empty(c, e);
			out_error(c->out, KV_ERR_NOMEM);
			return;
		}
		kstr_free(f->val);
		f->val = v;
		added += created;
	}
	out_int(c->out, added);
}

HANDLER(cmd_hget)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_HASH, &wrong);
	struct dent *f = e ? dict_find(e->val, c->argv[2].p, c->argv[2].len) : NULL;

	if (wrong)
		return;
	if (f)
		out_bulk(c->out, ((struct kstr *)f->val)->buf, ((struct kstr *)f->val)->len);
	else
		out_nil(c->out);
}

HANDLER(cmd_hdel)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_HASH, &wrong);
	long long removed = 0;

	if (wrong)
		return;
	for (int i = 2; e && i < c->argc; i++) {
		struct dent *f = dict_unlink(e->val, c->argv[i].p, c->argv[i].len);

		if (f) {
			kstr_free(f->val);
			kv_free(f);
			removed++;
		}
	}
	if (e) {
		dict_shrink(e->val);
		delete_if_empty(c, e);
	}
	out_int(c->out, removed);
}

HANDLER(cmd_hgetall)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_HASH, &wrong);

	if (wrong)
		return;
	if (e)
		reply_dict(c, e->val, true);
	else
		out_array(c->out, 0);
}

HANDLER(cmd_hlen)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_HASH, &wrong);

	if (!wrong)
		out_int(c->out, e ? (long long)((struct dict *)e->val)->count : 0);
}
