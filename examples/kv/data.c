/* SPDX-License-Identifier: MIT */
/*
 * kv_server's building blocks: memory counted per thread, byte strings,
 * the chained hash table every keyed structure uses, and the list deque.
 * Nothing here is shared between threads but the memory counters, which
 * only their own thread writes.
 */
#include "kv.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- memory ---- */

static _Thread_local _Atomic size_t *mem_slot;

void kv_mem_bind(_Atomic size_t *slot)
{
	mem_slot = slot;
}

static void mem_count(void *p, bool add)
{
	if (!p || !mem_slot)
		return;
	size_t n = malloc_usable_size(p);
	size_t v = atomic_load_explicit(mem_slot, memory_order_relaxed);

	/* Only this thread writes its slot; others read it (relaxed) for the sum. */
	atomic_store_explicit(mem_slot, add ? v + n : (v >= n ? v - n : 0), memory_order_relaxed);
}

void *kv_alloc(size_t n)
{
	void *p = malloc(n);

	mem_count(p, true);
	return p;
}

void *kv_realloc(void *p, size_t n)
{
	size_t old = p ? malloc_usable_size(p) : 0;
	void *q = realloc(p, n);

	if (!q)
		return NULL;
	if (mem_slot) {
		size_t v = atomic_load_explicit(mem_slot, memory_order_relaxed);

		v = v >= old ? v - old : 0;
		atomic_store_explicit(mem_slot, v + malloc_usable_size(q), memory_order_relaxed);
	}
	return q;
}

void kv_free(void *p)
{
	mem_count(p, false);
	free(p);
}

/* ---- strings and numbers ---- */

struct kstr *kstr_new(const char *p, size_t len)
{
	struct kstr *s = kv_alloc(sizeof(*s) + len + 1);

	if (!s)
		return NULL;
	s->len = len;
	if (len)
		memcpy(s->buf, p, len);
	s->buf[len] = 0;
	return s;
}

struct kstr *kstr_from_ll(long long v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%lld", v);

	return kstr_new(buf, (size_t)n);
}

void kstr_free(struct kstr *s)
{
	kv_free(s);
}

/* As redis's string2ll: no spaces, no leading '+' or zeros, no overflow. */
int kv_parse_ll(const char *p, size_t len, long long *out)
{
	unsigned long long v = 0;
	size_t i = 0;
	bool neg = false;

	if (len == 0 || len > 20)
		return -1;
	if (p[0] == '-') {
		neg = true;
		if (++i == len)
			return -1;
	}
	if (p[i] == '0' && len > i + 1)
		return -1;
	for (; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		if (v > (ULLONG_MAX - (unsigned)(p[i] - '0')) / 10)
			return -1;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (neg ? v > (unsigned long long)LLONG_MAX + 1 : v > (unsigned long long)LLONG_MAX)
		return -1;
	*out = neg ? (long long)(0 - v) : (long long)v;
	return 0;
}

int kv_parse_double(const char *p, size_t len, double *out)
{
	char buf[64];
	char *end;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, p, len);
	buf[len] = 0;
	if (buf[0] == ' ' || buf[0] == '\t')
		return -1;
	double v = strtod(buf, &end);

	if (*end || isnan(v))
		return -1;
	*out = v;
	return 0;
}

/* As redis: integers print without a fraction, inf as "inf", others with %.17g. */
int kv_fmt_double(char *buf, size_t cap, double v)
{
	if (isinf(v))
		return snprintf(buf, cap, "%s", v > 0 ? "inf" : "-inf");
	if (v == (double)(long long)v && fabs(v) < 1e17)
		return snprintf(buf, cap, "%lld", (long long)v);
	return snprintf(buf, cap, "%.17g", v);
}

/* ---- hash table ---- */

static uint64_t hash_seed = 0x9e3779b97f4a7c15ull;

void kv_hash_seed(uint64_t seed)
{
	hash_seed ^= seed;
}

/*
 * FNV-1a over 64 bits from a per-process seed, finished with a mix. Not
 * flood-proof: a keyed hash (SipHash, as redis uses) would be.
 */
uint64_t kv_hash(const char *p, size_t len)
{
	uint64_t h = 1469598103934665603ull ^ hash_seed;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

/* Move every entry into a table of @size buckets: O(n) at once (not incremental). */
static int dict_resize(struct dict *d, size_t size)
{
	struct dent **tab = kv_alloc(size * sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	memset(tab, 0, size * sizeof(*tab));
	for (size_t i = 0; d->tab && i <= d->mask; i++) {
		struct dent *e = d->tab[i];

		while (e) {
			struct dent *next = e->next;
			size_t b = e->hash & (size - 1);

			e->next = tab[b];
			tab[b] = e;
			e = next;
		}
	}
	kv_free(d->tab);
	d->tab = tab;
	d->mask = size - 1;
	return 0;
}

struct dent *dict_find(struct dict *d, const char *key, size_t klen)
{
	if (!d->tab)
		return NULL;
	uint64_t h = kv_hash(key, klen);

	for (struct dent *e = d->tab[h & d->mask]; e; e = e->next)
		if (e->hash == h && e->klen == klen && !memcmp(e->key, key, klen))
			return e;
	return NULL;
}

struct dent *dict_add(struct dict *d, const char *key, size_t klen, bool *created)
{
	struct dent *e = dict_find(d, key, klen);

	*created = false;
	if (e)
		return e;
	if (klen > UINT32_MAX)
		return NULL;
	if ((!d->tab || d->count > d->mask) && dict_resize(d, d->tab ? (d->mask + 1) * 2 : 4) < 0)
		if (!d->tab)
			return NULL; /* a full table still takes entries, only slower */
	e = kv_alloc(sizeof(*e) + klen);
	if (!e)
		return NULL;
	memset(e, 0, sizeof(*e));
	e->hash = kv_hash(key, klen);
	e->klen = (uint32_t)klen;
	e->u.expire = -1;
	memcpy(e->key, key, klen);
	e->next = d->tab[e->hash & d->mask];
	d->tab[e->hash & d->mask] = e;
	d->count++;
	*created = true;
	return e;
}

struct dent *dict_unlink(struct dict *d, const char *key, size_t klen)
{
	if (!d->tab)
		return NULL;
	uint64_t h = kv_hash(key, klen);

	for (struct dent **pp = &d->tab[h & d->mask]; *pp; pp = &(*pp)->next) {
		struct dent *e = *pp;

		if (e->hash == h && e->klen == klen && !memcmp(e->key, key, klen)) {
			*pp = e->next;
			d->count--;
			return e;
		}
	}
	return NULL;
}

void dict_shrink(struct dict *d)
{
	size_t size = d->mask + 1;

	if (d->tab && size > 64 && d->count * 8 < size)
		dict_resize(d, size / 4); /* on failure the table stays as it is */
}

/* A random bucket until one is not empty, then a random entry of its chain. */
struct dent *dict_random(struct dict *d)
{
	if (!d->count)
		return NULL;
	for (;;) {
		struct dent *e = d->tab[(size_t)random() & d->mask];
		size_t n = 0;

		for (struct dent *x = e; x; x = x->next)
			n++;
		if (!n)
			continue;
		for (long k = random() % (long)n; k > 0; k--)
			e = e->next;
		return e;
	}
}

void dict_clear(struct dict *d, void (*fn)(struct dent *e))
{
	for (size_t i = 0; d->tab && i <= d->mask; i++) {
		struct dent *e = d->tab[i];

		while (e) {
			struct dent *next = e->next;

			if (fn)
				fn(e);
			kv_free(e);
			e = next;
		}
	}
	kv_free(d->tab);
	*d = (struct dict){ 0 };
}

/* ---- hashes and sets ---- */

struct dict *hdict_new(void)
{
	struct dict *d = kv_alloc(sizeof(*d));

	if (d)
		*d = (struct dict){ 0 };
	return d;
}

static void hdict_free_value(struct dent *e)
{
	kstr_free(e->val);
}

void hdict_free(struct dict *d)
{
	if (!d)
		return;
	dict_clear(d, hdict_free_value);
	kv_free(d);
}

/* ---- list: a ring buffer of string pointers ---- */

struct list *list_new(void)
{
	struct list *l = kv_alloc(sizeof(*l));

	if (l)
		*l = (struct list){ 0 };
	return l;
}

void list_free(struct list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->len; i++)
		kstr_free(list_at(l, i));
	kv_free(l->a);
	kv_free(l);
}

struct kstr *list_at(const struct list *l, size_t i)
{
	return l->a[(l->head + i) & (l->cap - 1)];
}

static int list_grow(struct list *l)
{
	size_t cap = l->cap ? l->cap * 2 : 8;
	struct kstr **a = kv_alloc(cap * sizeof(*a));

	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < l->len; i++)
		a[i] = list_at(l, i);
	kv_free(l->a);
	l->a = a;
	l->cap = cap;
	l->head = 0;
	return 0;
}

int list_push(struct list *l, struct kstr *s, bool left)
{
	if (l->len == l->cap && list_grow(l) < 0)
		return -ENOMEM;
	if (left) {
		l->head = (l->head - 1) & (l->cap - 1);
		l->a[l->head] = s;
	} else {
		l->a[(l->head + l->len) & (l->cap - 1)] = s;
	}
	l->len++;
	return 0;
}

struct kstr *list_pop(struct list *l, bool left)
{
	if (!l->len)
		return NULL;
	struct kstr *s;

	if (left) {
		s = l->a[l->head];
		l->head = (l->head + 1) & (l->cap - 1);
	} else {
		s = list_at(l, l->len - 1);
	}
	l->len--;
	return s;
}
