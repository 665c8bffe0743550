/* SPDX-License-Identifier: MIT */
/*
 * Sorted sets: a skiplist ordered by (score, member), with the span of each
 * link so that a rank is found in O(log n) (as redis's t_zset.c), beside a
 * dict from member to node for O(1) score look-ups. The member's bytes live
 * in the dict entry; the node points at them.
 */
#include "kv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ZMAXLEVEL 32

struct znode {
	double score;
	struct dent *ent; /* the dict entry: member bytes */
	struct znode *back;
	int level;
	struct zlink {
		struct znode *fwd;
		size_t span;
	} lv[];
};

struct zset {
	struct dict dict;
	struct znode *head;
	struct znode *tail;
	size_t len;
	int level;
};

static struct znode *znode_new(int level, double score, struct dent *ent)
{
	struct znode *n = kv_alloc(sizeof(*n) + (size_t)level * sizeof(n->lv[0]));

	if (!n)
		return NULL;
	memset(n, 0, sizeof(*n) + (size_t)level * sizeof(n->lv[0]));
	n->score = score;
	n->ent = ent;
	n->level = level;
	return n;
}

struct zset *zset_new(void)
{
	struct zset *z = kv_alloc(sizeof(*z));

	if (!z)
		return NULL;
	*z = (struct zset){ .level = 1 };
	z->head = znode_new(ZMAXLEVEL, 0, NULL);
	if (!z->head) {
		kv_free(z);
		return NULL;
	}
	return z;
}

void zset_free(struct zset *z)
{
	if (!z)
		return;
	for (struct znode *n = z->head; n;) {
		struct znode *next = n->lv[0].fwd;

		kv_free(n);
		n = next;
	}
	dict_clear(&z->dict, NULL);
	kv_free(z);
}

size_t zset_len(const struct zset *z)
{
	return z->len;
}

/* Whether (score, m) sorts before node @n. */
static bool before(const struct znode *n, double score, const char *m, size_t mlen)
{
	if (n->score != score)
		return n->score < score;
	size_t k = n->ent->klen < mlen ? n->ent->klen : mlen;
	int c = memcmp(n->ent->key, m, k);

	return c < 0 || (c == 0 && n->ent->klen < mlen);
}

static int random_level(void)
{
	int level = 1;

	while (level < ZMAXLEVEL && (random() & 3) == 0)
		level++;
	return level;
}

/* Link a node for (score, ent) into the skiplist. */
static int sl_insert(struct zset *z, double score, struct dent *ent)
{
	struct znode *update[ZMAXLEVEL];
	size_t rank[ZMAXLEVEL];
	struct znode *x = z->head;

	for (int i = z->level - 1; i >= 0; i--) {
		rank[i] = i == z->level - 1 ? 0 : rank[i + 1];
		while (x->lv[i].fwd && before(x->lv[i].fwd, score, ent->key, ent->klen)) {
			rank[i] += x->lv[i].span;
			x = x->lv[i].fwd;
		}
		update[i] = x;
	}
	int level = random_level();
	struct znode *n = znode_new(level, score, ent);

	if (!n)
		return -ENOMEM;
	for (int i = z->level; i < level; i++) {
		rank[i] = 0;
		update[i] = z->head;
		update[i]->lv[i].span = z->len;
	}
	if (level > z->level)
		z->level = level;
	for (int i = 0; i < level; i++) {
		n->lv[i].fwd = update[i]->lv[i].fwd;
		update[i]->lv[i].fwd = n;
		n->lv[i].span = update[i]->lv[i].span - (rank[0] - rank[i]);
		update[i]->lv[i].span = (rank[0] - rank[i]) + 1;
	}
	for (int i = level; i < z->level; i++)
		update[i]->lv[i].span++;
	n->back = update[0] == z->head ? NULL : update[0];
	if (n->lv[0].fwd)
		n->lv[0].fwd->back = n;
	else
		z->tail = n;
	z->len++;
	ent->val = n;
	return 0;
}

/* Unlink and free the node for (score, ent). */
static void sl_delete(struct zset *z, double score, struct dent *ent)
{
	struct znode *update[ZMAXLEVEL];
	struct znode *x = z->head;

	for (int i = z->level - 1; i >= 0; i--) {
		while (x->lv[i].fwd && before(x->lv[i].fwd, score, ent->key, ent->klen))
			x = x->lv[i].fwd;
		update[i] = x;
	}
	x = x->lv[0].fwd; /* the node: (score, member) is unique */
	for (int i = 0; i < z->level; i++) {
		if (update[i]->lv[i].fwd == x) {
			update[i]->lv[i].span += x->lv[i].span - 1;
			update[i]->lv[i].fwd = x->lv[i].fwd;
		} else {
			update[i]->lv[i].span--;
		}
	}
	if (x->lv[0].fwd)
		x->lv[0].fwd->back = x->back;
	else
		z->tail = x->back;
	while (z->level > 1 && !z->head->lv[z->level - 1].fwd)
		z->level--;
	z->len--;
	kv_free(x);
}

int zset_add(struct zset *z, const char *m, size_t mlen, double score)
{
	bool created;
	struct dent *e = dict_add(&z->dict, m, mlen, &created);

	if (!e)
		return -ENOMEM;
	if (!created) {
		if (e->u.score == score)
			return 0;
		sl_delete(z, e->u.score, e);
	}
	e->u.score = score;
	if (sl_insert(z, score, e) < 0) {
		kv_free(dict_unlink(&z->dict, m, mlen)); /* it is gone: the caller says OOM */
		return -ENOMEM;
	}
	return created ? 1 : 0;
}

int zset_score(struct zset *z, const char *m, size_t mlen, double *out)
{
	struct dent *e = dict_find(&z->dict, m, mlen);

	if (!e)
		return -ENOENT;
	*out = e->u.score;
	return 0;
}

int zset_at(struct zset *z, size_t i, const char **m, size_t *mlen, double *score)
{
	struct znode *x = z->head;
	size_t traversed = 0;

	if (i >= z->len)
		return -ENOENT;
	for (int l = z->level - 1; l >= 0; l--) {
		while (x->lv[l].fwd && traversed + x->lv[l].span <= i + 1) {
			traversed += x->lv[l].span;
			x = x->lv[l].fwd;
		}
		if (traversed == i + 1)
			break;
	}
	*m = x->ent->key;
	*mlen = x->ent->klen;
	*score = x->score;
	return 0;
}

int zset_pop_min(struct zset *z, struct kstr **m, double *score)
{
	struct znode *x = z->head->lv[0].fwd;

	if (!x)
		return -ENOENT;
	struct dent *e = x->ent;

	*m = kstr_new(e->key, e->klen);
	if (!*m)
		return -ENOMEM;
	*score = x->score;
	sl_delete(z, x->score, e);
	kv_free(dict_unlink(&z->dict, e->key, e->klen));
	return 0;
}
