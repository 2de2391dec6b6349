/*
 * The retained store as a topic tree of names: every node is one level, its
 * children sit in an open-addressing hash table keyed by level name, and a
 * node holds the retained message of the topic ending there, if any. Since
 * topics are names there are no wildcard nodes; the wildcards are in the
 * filter given to retain_match(), which walks only the branches the filter
 * can reach: a literal level is one probe, '+' visits each child, '#' the
 * whole subtree including the level above it.
 *
 * Walks use parent pointers and the filter string to climb back, so neither
 * recursion nor a heap stack is needed however deep a topic goes. Nodes left
 * without a message or children are pruned.
 */
#include "broker/retain.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/rwlock.h"
#include "broker/msg.h"

#define TABLE_MIN 4

struct rnode {
	struct rnode *parent;
	struct rnode **kid; /* linear probing by name; NULL = empty slot */
	uint32_t nkid;
	uint32_t kcap; /* 0 or a power of two */
	struct msg *msg;
	uint32_t hashv; /* hash of name, kept so the table can be rebuilt */
	size_t len;
	char name[];
};

struct retain {
	pthread_rwlock_t lock;
	struct rnode *root;
	size_t count;
	uint64_t bytes;
	uint64_t seq; /* writes so far: orders them for the durable store */
};

/* State of one retain_match() walk. */
struct walk {
	const char *filter;
	size_t len;
	const struct rnode *root;
	void (*cb)(void *ctx, struct msg *m);
	void *ctx;
};

/* FNV-1a: cheap, and good enough to spread short level names. */
static uint32_t level_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

/* End (index of '/' or len) of the level starting at p <= len. */
static size_t level_end(const char *s, size_t len, size_t p)
{
	const char *slash = memchr(s + p, '/', len - p);

	return slash ? (size_t)(slash - s) : len;
}

/* Start of the level before the one at p (p > 0; len + 1 = past the end). */
static size_t level_start_before(const char *s, size_t p)
{
	size_t i = p - 1;

	while (i > 0 && s[i - 1] != '/')
		i--;
	return i;
}

/* Whether the level at p of s (p <= len) is exactly the one character c. */
static bool level_is(const char *s, size_t len, size_t p, char c)
{
	return p < len && s[p] == c && (p + 1 == len || s[p + 1] == '/');
}

/* ---- children ---- */

static struct rnode *kid_find(const struct rnode *n, const char *name,
                              size_t len, uint32_t h)
{
	uint32_t mask = n->kcap - 1;
	struct rnode *c;

	if (!n->kcap)
		return NULL;
	for (uint32_t i = h & mask; (c = n->kid[i]); i = (i + 1) & mask)
		if (c->hashv == h && c->len == len &&
		    !memcmp(c->name, name, len))
			return c;
	return NULL;
}

/* Slot of child c in n's table (it must be there). */
static uint32_t kid_slot(const struct rnode *n, const struct rnode *c)
{
	uint32_t i = c->hashv & (n->kcap - 1);

	while (n->kid[i] != c)
		i = (i + 1) & (n->kcap - 1);
	return i;
}

/*
 * First child of n at slot `from` or later; at the top level of a wildcard
 * (skip_dollar) '$' names are passed over (MQTT 4.7.2).
 */
static struct rnode *kid_next(const struct rnode *n, uint32_t from,
                              bool skip_dollar)
{
	const struct rnode *c;

	for (uint32_t i = from; i < n->kcap; i++) {
		c = n->kid[i];
		if (c && !(skip_dollar && c->len && c->name[0] == '$'))
			return n->kid[i];
	}
	return NULL;
}

static void kid_place(struct rnode **tab, uint32_t cap, struct rnode *c)
{
	uint32_t i = c->hashv & (cap - 1);

	while (tab[i])
		i = (i + 1) & (cap - 1);
	tab[i] = c;
}

static int kid_resize(struct rnode *n, uint32_t cap)
{
	struct rnode **tab = calloc(cap, sizeof(*tab));

	if (!tab)
		return TERN_ENOMEM;
	for (uint32_t i = 0; i < n->kcap; i++)
		if (n->kid[i])
			kid_place(tab, cap, n->kid[i]);
	free(n->kid);
	n->kid = tab;
	n->kcap = cap;
	return 0;
}

static int kid_insert(struct rnode *n, struct rnode *c)
{
	/* Keep the load at or under 3/4 so probes stay short. */
	if ((uint64_t)(n->nkid + 1) * 4 > (uint64_t)n->kcap * 3) {
		uint32_t cap = n->kcap ? n->kcap * 2 : TABLE_MIN;
		if (kid_resize(n, cap) < 0)
			return TERN_ENOMEM;
	}
	kid_place(n->kid, n->kcap, c);
	n->nkid++;
	return 0;
}

/* Removes c with a backward shift, so lookups never meet a tombstone. */
static void kid_remove(struct rnode *n, const struct rnode *c)
{
	uint32_t mask = n->kcap - 1, hole = kid_slot(n, c), home, j;

	n->kid[hole] = NULL;
	for (j = (hole + 1) & mask; n->kid[j]; j = (j + 1) & mask) {
		home = n->kid[j]->hashv & mask;
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			n->kid[hole] = n->kid[j];
			n->kid[j] = NULL;
			hole = j;
		}
	}
	n->nkid--;
	/* Shrinking is an optimisation; a failed allocation keeps the table. */
	if (n->kcap > TABLE_MIN && n->nkid * 8 < n->kcap)
		kid_resize(n, n->kcap / 2);
}

/* ---- nodes ---- */

static struct rnode *node_new(struct rnode *parent, const char *name,
                              size_t len, uint32_t h)
{
	struct rnode *n = calloc(1, sizeof(*n) + len);

	if (!n)
		return NULL;
	n->parent = parent;
	n->hashv = h;
	n->len = len;
	memcpy(n->name, name, len);
	return n;
}

/*
 * Finds or creates the node of topic t. On failure *out is the deepest node
 * reached so the caller can prune what was created.
 */
static int path_get(struct rnode *root, const char *t, size_t len,
                    struct rnode **out)
{
	struct rnode *n = root, *c;
	size_t p = 0, e;
	uint32_t h;
	int rc = 0;

	while (p <= len) {
		e = level_end(t, len, p);
		h = level_hash(t + p, e - p);
		c = kid_find(n, t + p, e - p, h);
		if (!c) {
			rc = TERN_ENOMEM;
			c = node_new(n, t + p, e - p, h);
			if (!c)
				break;
			if (kid_insert(n, c) < 0) {
				free(c);
				break;
			}
			rc = 0;
		}
		n = c;
		p = e + 1;
	}
	*out = n;
	return rc;
}

static struct rnode *path_find(struct rnode *root, const char *t, size_t len)
{
	struct rnode *n = root;
	size_t p = 0, e;

	while (n && p <= len) {
		e = level_end(t, len, p);
		n = kid_find(n, t + p, e - p, level_hash(t + p, e - p));
		p = e + 1;
	}
	return n;
}

/* Frees nodes from n upwards that hold neither a message nor children. */
static void prune(struct retain *r, struct rnode *n)
{
	struct rnode *up;

	while (n != r->root && !n->msg && !n->nkid) {
		up = n->parent;
		kid_remove(up, n);
		free(n->kid);
		free(n);
		n = up;
	}
}

/* ---- public API ---- */

struct retain *retain_new(void)
{
	struct retain *r = calloc(1, sizeof(*r));

	if (!r)
		goto fail;
	r->root = node_new(NULL, "", 0, 0);
	if (!r->root)
		goto fail;
	if (rwlock_init_writer_first(&r->lock) != 0)
		goto fail;
	return r;
fail:
	if (r)
		free(r->root);
	free(r);
	return NULL;
}

/*
 * Detaches and returns one child of n, or NULL. The table is emptied from
 * its end, using kcap as a cursor, so freeing is linear and stackless.
 */
static struct rnode *take_child(struct rnode *n)
{
	struct rnode *c;

	while (n->kcap && !n->kid[n->kcap - 1])
		n->kcap--;
	if (!n->kcap)
		return NULL;
	c = n->kid[--n->kcap];
	n->kid[n->kcap] = NULL;
	return c;
}

void retain_free(struct retain *r)
{
	struct rnode *n, *c, *up;

	if (!r)
		return;
	n = r->root;
	while (n) {
		c = take_child(n);
		if (c) {
			n = c;
			continue;
		}
		up = n->parent;
		msg_unref(n->msg);
		free(n->kid);
		free(n);
		n = up;
	}
	pthread_rwlock_destroy(&r->lock);
	free(r);
}

/* Deletes the retained message of topic t; returns the dropped message. */
static struct msg *retain_delete(struct retain *r, const char *t, size_t len)
{
	struct rnode *n = path_find(r->root, t, len);
	struct msg *old;

	if (!n || !n->msg)
		return NULL;
	old = n->msg;
	n->msg = NULL;
	r->count--;
	r->bytes -= old->payload_len;
	prune(r, n);
	return old;
}

int retain_set(struct retain *r, struct msg *m)
{
	return retain_put(r, m, NULL);
}

int retain_put(struct retain *r, struct msg *m, uint64_t *seq)
{
	struct rnode *n = NULL;
	struct msg *old = NULL;
	int rc = 0;

	pthread_rwlock_wrlock(&r->lock);
	/* Taken under the write lock, so the store applies writes to one
	 * topic in the order they happened here. */
	if (seq)
		*seq = ++r->seq;
	if (!m->payload_len) {
		old = retain_delete(r, m->topic, m->topic_len);
		goto out;
	}
	rc = path_get(r->root, m->topic, m->topic_len, &n);
	if (rc < 0)
		goto fail;
	old = n->msg;
	if (old) {
		r->bytes -= old->payload_len;
		r->count--;
	}
	n->msg = msg_ref(m);
	r->bytes += m->payload_len;
	r->count++;
out:
	pthread_rwlock_unlock(&r->lock);
	/* The old message may be the last reference: free it unlocked. */
	msg_unref(old);
	return rc;
fail:
	prune(r, n);
	pthread_rwlock_unlock(&r->lock);
	return rc;
}

static void emit(const struct walk *w, const struct rnode *n)
{
	if (n->msg)
		w->cb(w->ctx, n->msg);
}

/*
 * '#' reached at node top: reports top (the parent level, MQTT 4.7.1.2) and
 * every node below it in preorder, climbing back through parent pointers.
 */
static void emit_subtree(const struct walk *w, const struct rnode *top)
{
	bool skip = top == w->root;
	const struct rnode *n = top, *c;

	emit(w, top);
	c = kid_next(top, 0, skip);
	while (c) {
		n = c;
		emit(w, n);
		c = kid_next(n, 0, false);
		while (!c && n != top) {
			c = kid_next(n->parent, kid_slot(n->parent, n) + 1,
			             skip && n->parent == top);
			n = n->parent;
		}
	}
}

/*
 * Arriving at n with filter level p (p > len: filter consumed): reports what
 * matches here and returns the first child to descend into, advancing p.
 */
static const struct rnode *descend(const struct walk *w, const struct rnode *n,
                                   size_t *p)
{
	const struct rnode *c;
	size_t e;

	if (*p > w->len) {
		emit(w, n);
		return NULL;
	}
	if (level_is(w->filter, w->len, *p, '#')) {
		emit_subtree(w, n);
		return NULL;
	}
	e = level_end(w->filter, w->len, *p);
	if (level_is(w->filter, w->len, *p, '+'))
		c = kid_next(n, 0, n == w->root);
	else
		c = kid_find(n, w->filter + *p, e - *p,
		             level_hash(w->filter + *p, e - *p));
	if (c)
		*p = e + 1;
	return c;
}

/*
 * After the subtree of n is done: climbs until a parent whose filter level is
 * '+' has another child (a sibling consumes the same level, so p stays), or
 * returns NULL at the root.
 */
static const struct rnode *next_branch(const struct walk *w,
                                       const struct rnode *n, size_t *p)
{
	const struct rnode *up, *c;
	size_t pp;

	while (n != w->root) {
		up = n->parent;
		pp = level_start_before(w->filter, *p);
		if (level_is(w->filter, w->len, pp, '+')) {
			c = kid_next(up, kid_slot(up, n) + 1, up == w->root);
			if (c)
				return c;
		}
		*p = pp;
		n = up;
	}
	return NULL;
}

void retain_match(struct retain *r, const char *filter, size_t len,
                  void (*cb)(void *ctx, struct msg *m), void *ctx)
{
	struct walk w = {filter, len, NULL, cb, ctx};
	const struct rnode *n, *c;
	size_t p = 0;

	pthread_rwlock_rdlock(&r->lock);
	n = r->root;
	w.root = n;
	while (n) {
		c = descend(&w, n, &p);
		n = c ? c : next_branch(&w, n, &p);
	}
	pthread_rwlock_unlock(&r->lock);
}

size_t retain_count(struct retain *r)
{
	size_t n;

	pthread_rwlock_rdlock(&r->lock);
	n = r->count;
	pthread_rwlock_unlock(&r->lock);
	return n;
}

uint64_t retain_bytes(struct retain *r)
{
	uint64_t n;

	pthread_rwlock_rdlock(&r->lock);
	n = r->bytes;
	pthread_rwlock_unlock(&r->lock);
	return n;
}

void retain_seq_floor(struct retain *r, uint64_t seq)
{
	pthread_rwlock_wrlock(&r->lock);
	if (r->seq < seq)
		r->seq = seq;
	pthread_rwlock_unlock(&r->lock);
}
