/* SPDX-License-Identifier: MIT */
/*
 * String and key commands: GET, SET (NX XX EX PX KEEPTTL GET), INCR and
 * friends, APPEND, STRLEN, the TTL family and the per-key steps of MGET,
 * MSET, DEL and EXISTS. Expiry times are on weft_now's monotonic clock.
 */
#include "cmd.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

HANDLER(cmd_get)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_STR, &wrong);
	struct kstr *s = e ? e->val : NULL;

	if (wrong)
		return;
	if (!s)
		out_nil(c->out);
	else
		out_bulk(c->out, s->buf, s->len);
}

HANDLER(cmd_mget_one)
{
	struct dent *e = db_lookup(c->db, c->argv[1].p, c->argv[1].len);
	struct kstr *s = e && e->type == KV_STR ? e->val : NULL;

	if (!s)
		out_nil(c->out);
	else
		out_bulk(c->out, s->buf, s->len);
}

/* Store @val (owned) at key argv[1], replacing any value; keep or clear the TTL. */
static struct dent *store(struct cmdctx *c, struct kstr *val, bool keepttl)
{
	struct dent *e = db_lookup(c->db, c->argv[1].p, c->argv[1].len);

	if (e) {
		db_free_value(e->type, e->val);
		e->type = KV_STR;
		e->val = val;
		if (!keepttl)
			db_set_expire(c->db, e, -1);
		return e;
	}
	e = db_create(c->db, c->argv[1].p, c->argv[1].len, KV_STR, val);
	if (!e)
		kstr_free(val);
	return e;
}

HANDLER(cmd_set_one)
{
	struct kstr *v = kstr_new(c->argv[2].p, c->argv[2].len);

	if (!v || !store(c, v, false))
		c->acc++;
}

struct setopts {
	bool nx, xx, keepttl, get;
	int64_t ttl_ns; /* -1: none */
};

/* Parse SET's options from argument 3 on. Return: 0, or -1 with the error replied. */
static int set_options(struct cmdctx *c, struct setopts *o)
{
	*o = (struct setopts){ .ttl_ns = -1 };
	for (int i = 3; i < c->argc; i++) {
		bool ex = arg_is(c, i, "ex"), px = arg_is(c, i, "px");
		long long n;

		if (arg_is(c, i, "nx") && !o->xx) {
			o->nx = true;
		} else if (arg_is(c, i, "xx") && !o->nx) {
			o->xx = true;
		} else if (arg_is(c, i, "get")) {
			o->get = true;
		} else if (arg_is(c, i, "keepttl") && o->ttl_ns < 0) {
			o->keepttl = true;
		} else if ((ex || px) && o->ttl_ns < 0 && !o->keepttl && i + 1 < c->argc) {
			if (arg_ll(c, ++i, &n) < 0)
				return -1;
			if (n <= 0 || n > (ex ? INT64_MAX / WEFT_SEC : INT64_MAX / WEFT_MSEC) / 2) {
				out_error(c->out, "ERR invalid expire time in 'set' command");
				return -1;
			}
			o->ttl_ns = n * (ex ? WEFT_SEC : WEFT_MSEC);
		} else {
			out_error(c->out, KV_ERR_SYNTAX);
			return -1;
		}
	}
	return 0;
}

HANDLER(cmd_set)
{
	struct setopts o;
	bool wrong = false;

	if (set_options(c, &o) < 0)
		return;
	struct dent *e = db_lookup(c->db, c->argv[1].p, c->argv[1].len);

	if (o.get && e && e->type != KV_STR) {
		out_error(c->out, KV_ERR_WRONGTYPE);
		return;
	}
	if (o.get) { /* the old value is the reply, whether the set happens or not */
		if (e)
			out_bulk(c->out, ((struct kstr *)e->val)->buf,
				 ((struct kstr *)e->val)->len);
		else
			out_nil(c->out);
	}
	if ((o.nx && e) || (o.xx && !e)) {
		if (!o.get)
			out_nil(c->out);
		return;
	}
	struct kstr *v = kstr_new(c->argv[2].p, c->argv[2].len);

	if (v && (e = store(c, v, o.keepttl)) != NULL && o.ttl_ns > 0)
		wrong = db_set_expire(c->db, e, weft_now() + o.ttl_ns) < 0;
	if (o.get)
		return;
	if (!v || !e || wrong)
		out_error(c->out, KV_ERR_NOMEM);
	else
		out_status(c->out, "OK");
}

static void incr_by(struct cmdctx *c, long long by)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_STR, &wrong);
	long long v = 0;

	if (wrong)
		return;
	if (e) {
		struct kstr *s = e->val;

		if (kv_parse_ll(s->buf, s->len, &v) < 0) {
			out_error(c->out, KV_ERR_NOTINT);
			return;
		}
	}
	if ((by > 0 && v > LLONG_MAX - by) || (by < 0 && v < LLONG_MIN - by)) {
		out_error(c->out, "ERR increment or decrement would overflow");
		return;
	}
	struct kstr *n = kstr_from_ll(v + by);

	if (!n || !store(c, n, true)) {
		out_error(c->out, KV_ERR_NOMEM);
		return;
	}
	out_int(c->out, v + by);
}

HANDLER(cmd_incr)
{
	incr_by(c, 1);
}

HANDLER(cmd_decr)
{
	incr_by(c, -1);
}

HANDLER(cmd_incrby)
{
	long long by;

	if (arg_ll(c, 2, &by) == 0)
		incr_by(c, by);
}

HANDLER(cmd_decrby)
{
	long long by;

	if (arg_ll(c, 2, &by) < 0)
		return;
	if (by == LLONG_MIN)
		out_error(c->out, "ERR decrement would overflow");
	else
		incr_by(c, -by);
}

HANDLER(cmd_append)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_STR, &wrong);
	struct kstr *old = e ? e->val : NULL;

	if (wrong)
		return;
	size_t len = (old ? old->len : 0) + c->argv[2].len;

	if ((long long)len > kv_cfg.max_bulk) {
		out_error(c->out, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
		return;
	}
	struct kstr *s = kv_realloc(old, sizeof(*s) + len + 1);

	if (!s) {
		out_error(c->out, KV_ERR_NOMEM);
		return;
	}
	if (!old)
		s->len = 0;
	memcpy(s->buf + s->len, c->argv[2].p, c->argv[2].len);
	s->len = len;
	s->buf[len] = 0;
	if (e)
		e->val = s;
	else if (!db_create(c->db, c->argv[1].p, c->argv[1].len, KV_STR, s)) {
		kstr_free(s);
		out_error(c->out, KV_ERR_NOMEM);
		return;
	}
	out_int(c->out, (long long)len);
}

HANDLER(cmd_strlen)
{
	bool wrong;
	struct dent *e = lookup_typed(c, KV_STR, &wrong);

	if (!wrong)
		out_int(c->out, e ? (long long)((struct kstr *)e->val)->len : 0);
}

/* EXPIRE and PEXPIRE: @unit ns per unit. A time in the past deletes the key, as redis. */
static void expire_in(struct cmdctx *c, int64_t unit, const char *name)
{
	long long n;

	if (arg_ll(c, 2, &n) < 0)
		return;
	if (c->argc > 3) { /* NX XX GT LT: not supported */
		out_errorf(c->out, "ERR Unsupported option %.*s", (int)c->argv[3].len,
			   c->argv[3].p);
		return;
	}
	if (n > INT64_MAX / unit / 2 || n < -(INT64_MAX / unit / 2)) {
		out_errorf(c->out, "ERR invalid expire time in '%s' command", name);
		return;
	}
	struct dent *e = db_lookup(c->db, c->argv[1].p, c->argv[1].len);

	if (!e) {
		out_int(c->out, 0);
		return;
	}
	if (n <= 0) {
		db_delete(c->db, c->argv[1].p, c->argv[1].len);
		out_int(c->out, 1);
		return;
	}
	if (db_set_expire(c->db, e, weft_now() + n * unit) < 0)
		out_error(c->out, KV_ERR_NOMEM);
	else
		out_int(c->out, 1);
}

HANDLER(cmd_expire)
{
	expire_in(c, WEFT_SEC, "expire");
}

HANDLER(cmd_pexpire)
{
	expire_in(c, WEFT_MSEC, "pexpire");
}

/* TTL and PTTL: -2 no key, -1 no TTL, else the time left, rounded as redis does. */
static void ttl_in(struct cmdctx *c, bool ms)
{
	struct dent *e = db_lookup(c->db, c->argv[1].p, c->argv[1].len);

	if (!e) {
		out_int(c->out, -2);
		return;
	}
	if (e->u.expire < 0) {
		out_int(c->out, -1);
		return;
	}
	int64_t left_ms = (e->u.expire - weft_now()) / WEFT_MSEC;

	if (left_ms < 0)
		left_ms = 0;
	out_int(c->out, ms ? left_ms : (left_ms + 500) / 1000);
}

HANDLER(cmd_ttl)
{
	ttl_in(c, false);
}

HANDLER(cmd_pttl)
{
	ttl_in(c, true);
}

HANDLER(cmd_persist)
{
	struct dent *e = db_lookup(c->db, c->argv[1].p, c->argv[1].len);

	if (!e || e->u.expire < 0) {
		out_int(c->out, 0);
		return;
	}
	db_set_expire(c->db, e, -1);
	out_int(c->out, 1);
}

HANDLER(cmd_type)
{
	static const char *const names[] = { "string", "list", "set", "hash", "zset" };
	struct dent *e = db_lookup(c->db, c->argv[1].p, c->argv[1].len);

	out_status(c->out, e ? names[e->type] : "none");
}

HANDLER(cmd_del_one)
{
	if (db_lookup(c->db, c->argv[1].p, c->argv[1].len))
		c->acc += db_delete(c->db, c->argv[1].p, c->argv[1].len);
}

HANDLER(cmd_exists_one)
{
	c->acc += db_lookup(c->db, c->argv[1].p, c->argv[1].len) != NULL;
}
