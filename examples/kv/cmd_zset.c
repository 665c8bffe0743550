/* SPDX-License-Identifier: MIT */
/*
 * Sorted-set commands: ZADD (NX XX CH), ZPOPMIN, ZRANGE by rank (WITHSCORES),
 * ZCARD, ZSCORE.
 */
#include "cmd.h"

#define KV_ERR_FLOAT "ERR value is not a valid float"

/* A new, empty sorted set at argv[1] (absent). NULL: out of memory, replied. */
static struct dent *zset_create(struct cmdctx *c)
{
	struct dent *e = NULL;
	struct zset *z = zset_new();

	if (z)
		e = db_create(c->db, c->argv[1].p, c->argv[1].len, KV_ZSET, z);
	if (!e) {
		zset_free(z);
		out_error(c->out, KV_ERR_NOMEM);
	}
	return e;
}

struct zaddopts {
	bool nx, xx, ch;
	int first; /* the first score argument */
};

static int zadd_options(struct cmdctx *c, struct zaddopts *o)
{
	*o = (struct zaddopts){ .first = 2 };
	for (; o->first < c->argc; o->first++) {
		if (arg_is(c, o->first, "nx"))
			o->nx = true;
		else if (arg_is(c, o->first, "xx"))
			o->xx = true;
		else if (arg_is(c, o->first, "ch"))
			o->ch = true;
		else
			break;
	}
	if (o->nx && o->xx) {
		out_error(c->out, "ERR XX and NX options at the same time are not compatible");
		return -1;
	}
	if (o->first >= c->argc || (c->argc - o->first) % 2 != 0) {
		out_error(c->out, KV_ERR_SYNTAX);
		return -1;
	}
	for (int i = o->first; i < c->argc; i += 2) {
		double d;

		if (kv_parse_double(c->argv[i].p, c->argv[i].len, &d) < 0) {
			out_error(c->out, KV_ERR_FLOAT);
			return -1;
		}
	}
	return 0;
}

HANDLER(cmd_zadd)
{
	struct zaddopts o;

	if (zadd_options(c, &o) < 0)
		return;
	bool wrong;
	struct dent *e = lookup_typed(c, KV_ZSET, &wrong);

	if (wrong)
		return;
	if (!e && o.xx) {
		out_int(c->out, 0);
		return;
	}
	if (!e && !(e = zset_create(c)))
		return;
	long long added = 0, changed = 0;

	for (int i = o.first; i < c->argc; i += 2) {
		const struct arg *m = &c->argv[i + 1];
		double score, old = 0;
		bool exists = zset_score(e->val, m->p, m->len, &old) == 0;

		kv_parse_double(c->argv[i].p, c->argv[i].len, &score);
		if ((o.nx && exists) || (o.xx && !exists))
			continue;
		int rc = zset_add(e->val, m->p, m->len, score);

		if (rc < 0) {
			if (zset_len(e->val) == 0)
				db_delete(c->db, c->argv[1].p, c->argv[1].len);
			out_error(c->out, KV_ERR_NOMEM);
			return;
		}
		added += rc;
		changed += rc || old != score;
	}
	if (zset_len(e->val) == 0)
		db_delete(c->db, c->argv[1].p, c->argv[1].len);
	out_int(c->out, o.ch ? changed : added);
}

HANDLER(cmd_zpopmin)
{
	long long count = 1;
	bool wrong;

	if (c->argc > 3) {
		out_error(c->out, KV_ERR_SYNTAX);
		return;
	}
	if (c->argc == 3 && arg_ll(c, 2, &count) < 0)
		return;
	struct dent *e = lookup_typed(c, KV_ZSET, &wrong);

	if (wrong)
		return;
	size_t len = e ? zset_len(e->val) : 0;
	size_t n = count < 0 ? 0 : ((unsigned long long)count < len ? (size_t)count : len);

	out_array(c->out, (long long)n * 2);
	for (size_t i = 0; i < n; i++) {
		struct kstr *m;
		double score;

		if (zset_pop_min(e->val, &m, &score) < 0) {
			out_nil(
			    c->out); /* out of memory copying the member: keep the reply's shape */
			out_nil(c->out);
			continue;
		}
		out_bulk(c->out, m->buf, m->len);
		out_double(c->out, score);
		kstr_free(m);
	}
	if (e && zset_len(e->val) == 0)
		db_delete(c->db, c->argv[1].p, c->argv[1].len);
}

HANDLER(cmd_zrange)
{
	long long start, stop;
	bool wrong, scores = false;

	if (c->argc > 5 || (c->argc == 5 && !(scores = arg_is(c, 4, "withscores")))) {
		out_error(c->out, KV_ERR_SYNTAX);
		return;
	}
	if (arg_ll(c, 2, &start) < 0 || arg_ll(c, 3, &stop) < 0)
		return;
	struct dent *e = lookup_typed(c, KV_ZSET, &wrong);

	if (wrong)
		return;
	long long len = e ? (long long)zset_len(e->val) : 0;

	if (start < 0)
		start += len;
	if (stop < 0)
		stop += len;
	if (start < 0)
		start = 0;
	if (stop >= len)
		stop = len - 1;
	if (!e || start > stop || start >= len) {
		out_array(c->out, 0);
		return;
	}
	out_array(c->out, (stop - start + 1) * (scores ? 2 : 1));
	for (long long i = start; i <= stop; i++) {
		const char *m;
		size_t mlen;
		double score;

		zset_at(e->val, (size_t)i, &m, &mlen, &score);
		out_bulk(c->out, m, mlen);
		if (scores)
			out_double(c->out, score);
	}
}

HANDLER(cmd_zcard)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_ZSET, &wrong);

	if (!wrong)
		out_int(c->out, e ? (long long)zset_len(e->val) : 0);
}

HANDLER(cmd_zscore)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_ZSET, &wrong);
	double score;

	if (wrong)
		return;
	if (e && zset_score(e->val, c->argv[2].p, c->argv[2].len, &score) == 0)
		out_double(c->out, score);
	else
		out_nil(c->out);
}
