/* SPDX-License-Identifier: MIT */
/*
 * A shard's keyspace: the key dict, the dict of keys with a TTL, lazy expiry
 * on every look-up and the active sweep that samples keys with a TTL (as
 * redis's activeExpireCycle does), all on weft's monotonic clock.
 */
#include "kv.h"

#include <errno.h>
#include <weft.h>

void db_free_value(enum kv_type type, void *val)
{
	switch (type) {
	case KV_STR:
		kstr_free(val);
		break;
	case KV_LIST:
		list_free(val);
		break;
	case KV_SET:
	case KV_HASH:
		hdict_free(val);
		break;
	case KV_ZSET:
		zset_free(val);
		break;
	}
}

bool db_delete(struct db *db, const char *key, size_t klen)
{
	struct dent *e = dict_unlink(&db->keys, key, klen);

	if (!e)
		return false;
	if (e->u.expire >= 0)
		kv_free(dict_unlink(&db->expires, key, klen));
	db_free_value(e->type, e->val);
	kv_free(e);
	dict_shrink(&db->keys);
	return true;
}

struct dent *db_lookup(struct db *db, const char *key, size_t klen)
{
	struct dent *e = dict_find(&db->keys, key, klen);

	if (e && e->u.expire >= 0 && e->u.expire <= weft_now()) {
		db_delete(db, key, klen);
		db->expired++;
		return NULL;
	}
	return e;
}

struct dent *db_create(struct db *db, const char *key, size_t klen, enum kv_type type, void *val)
{
	bool created;
	struct dent *e = dict_add(&db->keys, key, klen, &created);

	if (!e)
		return NULL;
	e->type = type;
	e->val = val;
	return e;
}

int db_set_expire(struct db *db, struct dent *e, int64_t when)
{
	if (when < 0) {
		if (e->u.expire >= 0)
			kv_free(dict_unlink(&db->expires, e->key, e->klen));
		e->u.expire = -1;
		return 0;
	}
	bool created;
	struct dent *x = dict_add(&db->expires, e->key, e->klen, &created);

	if (!x)
		return -ENOMEM;
	x->u.expire = when;
	e->u.expire = when;
	return 0;
}

static void free_entry_value(struct dent *e)
{
	db_free_value(e->type, e->val);
}

void db_flush(struct db *db)
{
	dict_clear(&db->keys, free_entry_value);
	dict_clear(&db->expires, NULL);
}

/*
 * Sample 20 keys with a TTL, delete the dead ones, and go on while more
 * than a quarter of a sample was dead and the time budget lasts: the
 * memory held by expired keys nobody reads stays about a quarter of the
 * keys with a TTL, at a bounded cost per cycle.
 */
size_t db_expire_cycle(struct db *db, int64_t now, int64_t budget_ns)
{
	size_t total = 0;
	int64_t stop = now + budget_ns;

	for (;;) {
		size_t dead = 0;
		size_t sample = db->expires.count < 20 ? db->expires.count : 20;

		for (size_t i = 0; i < sample; i++) {
			struct dent *x = dict_random(&db->expires);

			if (x && x->u.expire <= now) {
				db_delete(db, x->key, x->klen);
				dead++;
			}
		}
		total += dead;
		db->expired += dead;
		if (dead * 4 <= sample || weft_now() >= stop)
			break;
	}
	dict_shrink(&db->expires);
	return total;
}
