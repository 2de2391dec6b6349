/*
 * The subscription index as a topic tree. Each node is one filter level. Its
 * literal children sit in a small open-addressing hash table, so a level with
 * tens of thousands of siblings (device/<id>/x) is still one probe to step
 * through; the '+' and '#' children have their own pointers so matching never
 * searches for them. A node holds the plain subscriptions of the filter that
 * ends there (a hash table keyed by owner) and that filter's shared groups.
 *
 * Matching walks the tree depth first with neither recursion nor a stack: a
 * node's parent pointer and the topic string are enough to find the way back
 * up, so a topic of 65,536 levels costs no stack and no allocation. Writers
 * hold the rwlock exclusively and prune nodes that become empty.
 */
#include "broker/subs.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/rwlock.h"

#define SHARE_PREFIX     "$share/"
#define SHARE_PREFIX_LEN 7
#define TABLE_MIN        4

/* One subscription; in a sub_table a NULL owner marks an empty slot. */
struct sub {
	void *owner;
	struct subs_opts opts;
};

/* Plain subscriptions of one filter: linear probing keyed by owner. */
struct sub_table {
	struct sub *slot;
	uint32_t n;
	uint32_t cap; /* 0 or a power of two */
};

/* A shared group: members in a dense array for round robin by index. */
struct group {
	atomic_uint next; /* round-robin position, advanced by matchers */
	struct sub *member;
	uint32_t n;
	uint32_t cap;
	size_t name_len;
	char name[];
};

struct node {
	struct node *parent;
	struct node *plus;
	struct node *hash;
	struct node **kid; /* literal children, linear probing by name */
	uint32_t nkid;
	uint32_t kcap; /* 0 or a power of two */
	struct sub_table subs;
	struct group **group;
	uint32_t ngroup;
	uint32_t hashv; /* hash of name, kept so tables can be rebuilt */
	size_t len;
	char name[];
};

struct subs {
	pthread_rwlock_t lock;
	struct node *root;
	size_t count;
};

/* State of one subs_match() walk. */
struct match {
	const char *topic;
	size_t len;
	bool dollar; /* '$'-topic: no wildcard at the first level */
	const struct node *root;
	const struct subs_visitor *v;
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

static uint32_t ptr_hash(const void *p)
{
	return (uint32_t)(((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull) >>
	                  32);
}

/* End (index of '/' or len) of the level starting at p <= len. */
static size_t level_end(const char *s, size_t len, size_t p)
{
	const char *slash = memchr(s + p, '/', len - p);

	return slash ? (size_t)(slash - s) : len;
}

/*
 * Start of the level before the one starting at p (p > 0; p == len + 1 means
 * "past the last level"). Used to climb back up without a stack.
 */
static size_t level_start_before(const char *s, size_t p)
{
	size_t i = p - 1;

	while (i > 0 && s[i - 1] != '/')
		i--;
	return i;
}

/*
 * Whether an entry whose home slot is `home` may move into the hole at
 * `hole` when it currently sits at `at` (linear-probing backward shift).
 */
static bool may_shift(uint32_t home, uint32_t hole, uint32_t at, uint32_t mask)
{
	return ((at - home) & mask) >= ((at - hole) & mask);
}

/* ---- literal children ---- */

static struct node *kid_find(const struct node *n, const char *name, size_t len,
                             uint32_t h)
{
	uint32_t mask = n->kcap - 1;
	struct node *c;

	if (!n->kcap)
		return NULL;
	for (uint32_t i = h & mask; (c = n->kid[i]); i = (i + 1) & mask)
		if (c->hashv == h && c->len == len &&
		    !memcmp(c->name, name, len))
			return c;
	return NULL;
}

static void kid_place(struct node **tab, uint32_t cap, struct node *c)
{
	uint32_t i = c->hashv & (cap - 1);

	while (tab[i])
		i = (i + 1) & (cap - 1);
	tab[i] = c;
}

static int kid_resize(struct node *n, uint32_t cap)
{
	struct node **tab = calloc(cap, sizeof(*tab));

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

static int kid_insert(struct node *n, struct node *c)
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

static void kid_remove(struct node *n, const struct node *c)
{
	uint32_t mask = n->kcap - 1, hole = c->hashv & mask, j;

	while (n->kid[hole] != c)
		hole = (hole + 1) & mask;
	n->kid[hole] = NULL;
	for (j = (hole + 1) & mask; n->kid[j]; j = (j + 1) & mask) {
		if (may_shift(n->kid[j]->hashv & mask, hole, j, mask)) {
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

/* ---- plain subscriptions ---- */

static struct sub *subtab_find(const struct sub_table *t, const void *owner)
{
	uint32_t mask = t->cap - 1;

	if (!t->cap)
		return NULL;
	for (uint32_t i = ptr_hash(owner) & mask; t->slot[i].owner;
	     i = (i + 1) & mask)
		if (t->slot[i].owner == owner)
			return &t->slot[i];
	return NULL;
}

static void subtab_place(struct sub *tab, uint32_t cap, const struct sub *e)
{
	uint32_t i = ptr_hash(e->owner) & (cap - 1);

	while (tab[i].owner)
		i = (i + 1) & (cap - 1);
	tab[i] = *e;
}

static int subtab_resize(struct sub_table *t, uint32_t cap)
{
	struct sub *tab = NULL;

	if (cap) {
		tab = calloc(cap, sizeof(*tab));
		if (!tab)
			return TERN_ENOMEM;
	}
	for (uint32_t i = 0; i < t->cap; i++)
		if (t->slot[i].owner)
			subtab_place(tab, cap, &t->slot[i]);
	free(t->slot);
	t->slot = tab;
	t->cap = cap;
	return 0;
}

/* Returns 1 when added, 0 when the options were replaced, TERN_ENOMEM. */
static int subtab_upsert(struct sub_table *t, void *owner,
                         const struct subs_opts *opts)
{
	struct sub *e = subtab_find(t, owner);
	struct sub add = {owner, *opts};

	if (e) {
		e->opts = *opts;
		return 0;
	}
	if ((uint64_t)(t->n + 1) * 4 > (uint64_t)t->cap * 3) {
		if (subtab_resize(t, t->cap ? t->cap * 2 : TABLE_MIN) < 0)
			return TERN_ENOMEM;
	}
	subtab_place(t->slot, t->cap, &add);
	t->n++;
	return 1;
}

static int subtab_remove(struct sub_table *t, const void *owner)
{
	struct sub *e = subtab_find(t, owner);
	uint32_t mask = t->cap - 1, hole, j;

	if (!e)
		return TERN_ENOENT;
	hole = (uint32_t)(e - t->slot);
	t->slot[hole].owner = NULL;
	for (j = (hole + 1) & mask; t->slot[j].owner; j = (j + 1) & mask) {
		if (may_shift(ptr_hash(t->slot[j].owner) & mask, hole, j,
		              mask)) {
			t->slot[hole] = t->slot[j];
			t->slot[j].owner = NULL;
			hole = j;
		}
	}
	t->n--;
	/* Matching scans every slot, so keep the table from staying sparse. */
	if (!t->n)
		subtab_resize(t, 0);
	else if (t->cap > TABLE_MIN && t->n * 8 < t->cap)
		subtab_resize(t, t->cap / 2);
	return 0;
}

/* ---- shared groups ---- */

static int group_find(const struct node *n, const char *name, size_t len)
{
	for (uint32_t i = 0; i < n->ngroup; i++)
		if (n->group[i]->name_len == len &&
		    !memcmp(n->group[i]->name, name, len))
			return (int)i;
	return -1;
}

static struct group *group_add(struct node *n, const char *name, size_t len)
{
	struct group **arr = NULL, *g = NULL;

	g = calloc(1, sizeof(*g) + len);
	if (!g)
		goto fail;
	arr = realloc(n->group, (n->ngroup + 1) * sizeof(*arr));
	if (!arr)
		goto fail;
	atomic_init(&g->next, 0);
	memcpy(g->name, name, len);
	g->name_len = len;
	n->group = arr;
	n->group[n->ngroup++] = g;
	return g;
fail:
	free(g);
	return NULL;
}

static void group_remove(struct node *n, uint32_t i)
{
	free(n->group[i]->member);
	free(n->group[i]);
	n->group[i] = n->group[--n->ngroup];
	if (!n->ngroup) {
		free(n->group);
		n->group = NULL;
	}
}

static int member_find(const struct group *g, const void *owner)
{
	for (uint32_t i = 0; i < g->n; i++)
		if (g->member[i].owner == owner)
			return (int)i;
	return -1;
}

static int member_upsert(struct group *g, void *owner,
                         const struct subs_opts *opts)
{
	int i = member_find(g, owner);
	struct sub *arr;

	if (i >= 0) {
		g->member[i].opts = *opts;
		return 0;
	}
	if (g->n == g->cap) {
		uint32_t cap = g->cap ? g->cap * 2 : TABLE_MIN;
		arr = realloc(g->member, cap * sizeof(*arr));
		if (!arr)
			return TERN_ENOMEM;
		g->member = arr;
		g->cap = cap;
	}
	g->member[g->n].owner = owner;
	g->member[g->n].opts = *opts;
	g->n++;
	return 1;
}

/* Adds owner to group `name` of n, creating the group if needed. */
static int shared_add(struct node *n, const char *name, size_t len, void *owner,
                      const struct subs_opts *opts)
{
	int i = group_find(n, name, len);
	struct group *g = i >= 0 ? n->group[i] : group_add(n, name, len);
	int rc;

	if (!g)
		return TERN_ENOMEM;
	rc = member_upsert(g, owner, opts);
	if (rc < 0 && !g->n)
		group_remove(n, n->ngroup - 1);
	return rc;
}

static int shared_remove(struct node *n, const char *name, size_t len,
                         const void *owner)
{
	int i = group_find(n, name, len), m;
	struct group *g;

	if (i < 0)
		return TERN_ENOENT;
	g = n->group[i];
	m = member_find(g, owner);
	if (m < 0)
		return TERN_ENOENT;
	/* Order does not matter to round robin, so swap in the last. */
	g->member[m] = g->member[--g->n];
	if (!g->n)
		group_remove(n, (uint32_t)i);
	return 0;
}

/* ---- nodes ---- */

static struct node *node_new(struct node *parent, const char *name, size_t len,
                             uint32_t h)
{
	struct node *n = calloc(1, sizeof(*n) + len);

	if (!n)
		return NULL;
	n->parent = parent;
	n->hashv = h;
	n->len = len;
	memcpy(n->name, name, len);
	return n;
}

static void node_free(struct node *n)
{
	free(n->kid);
	free(n->subs.slot);
	for (uint32_t i = 0; i < n->ngroup; i++) {
		free(n->group[i]->member);
		free(n->group[i]);
	}
	free(n->group);
	free(n);
}

static bool node_empty(const struct node *n)
{
	return !n->nkid && !n->plus && !n->hash && !n->subs.n && !n->ngroup;
}

/* Where a wildcard child lives, or NULL for a literal level. */
static struct node **wild_slot(struct node *n, const char *lv, size_t len)
{
	if (len == 1 && lv[0] == '+')
		return &n->plus;
	if (len == 1 && lv[0] == '#')
		return &n->hash;
	return NULL;
}

static struct node *child_find(struct node *n, const char *lv, size_t len)
{
	struct node **w = wild_slot(n, lv, len);

	return w ? *w : kid_find(n, lv, len, level_hash(lv, len));
}

/* Finds or creates n's child for level lv; *out is unchanged on failure. */
static int child_get(struct node *n, const char *lv, size_t len,
                     struct node **out)
{
	struct node **w = wild_slot(n, lv, len);
	uint32_t h = level_hash(lv, len);
	struct node *c = w ? *w : kid_find(n, lv, len, h);

	if (!c) {
		c = node_new(n, lv, len, h);
		if (!c)
			return TERN_ENOMEM;
		if (w) {
			*w = c;
		} else if (kid_insert(n, c) < 0) {
			free(c);
			return TERN_ENOMEM;
		}
	}
	*out = c;
	return 0;
}

/*
 * Finds or creates the node of filter f. On failure *out is the deepest node
 * reached so the caller can prune what was created.
 */
static int path_get(struct node *root, const char *f, size_t len,
                    struct node **out)
{
	struct node *n = root;
	size_t p = 0, e;
	int rc = 0;

	while (p <= len) {
		e = level_end(f, len, p);
		rc = child_get(n, f + p, e - p, &n);
		if (rc < 0)
			break;
		p = e + 1;
	}
	*out = n;
	return rc;
}

static struct node *path_find(struct node *root, const char *f, size_t len)
{
	struct node *n = root;
	size_t p = 0, e;

	while (n && p <= len) {
		e = level_end(f, len, p);
		n = child_find(n, f + p, e - p);
		p = e + 1;
	}
	return n;
}

/* Frees empty nodes from n upwards; the root stays. */
static void prune(struct subs *s, struct node *n)
{
	struct node *up;

	while (n != s->root && node_empty(n)) {
		up = n->parent;
		if (up->plus == n)
			up->plus = NULL;
		else if (up->hash == n)
			up->hash = NULL;
		else
			kid_remove(up, n);
		node_free(n);
		n = up;
	}
}

/* Splits "$share/group/filter"; false (f untouched) for a plain filter. */
static bool share_split(const char **f, size_t *len, const char **group,
                        size_t *glen)
{
	const char *g, *slash;

	if (*len < SHARE_PREFIX_LEN ||
	    memcmp(*f, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
		return false;
	g = *f + SHARE_PREFIX_LEN;
	slash = memchr(g, '/', *len - SHARE_PREFIX_LEN);
	if (!slash)
		return false;
	*group = g;
	*glen = (size_t)(slash - g);
	*len -= SHARE_PREFIX_LEN + *glen + 1;
	*f = slash + 1;
	return true;
}

/* ---- public API ---- */

struct subs *subs_new(void)
{
	struct subs *s = calloc(1, sizeof(*s));

	if (!s)
		goto fail;
	s->root = node_new(NULL, "", 0, 0);
	if (!s->root)
		goto fail;
	if (rwlock_init_writer_first(&s->lock) != 0)
		goto fail;
	return s;
fail:
	if (s)
		free(s->root);
	free(s);
	return NULL;
}

/*
 * Detaches and returns one child of n, or NULL. The literal table is emptied
 * from its end, using kcap as a cursor, so freeing is linear and needs no
 * stack even for very deep trees.
 */
static struct node *take_child(struct node *n)
{
	struct node *c;

	while (n->kcap && !n->kid[n->kcap - 1])
		n->kcap--;
	if (n->kcap) {
		c = n->kid[--n->kcap];
		n->kid[n->kcap] = NULL;
		return c;
	}
	c = n->plus ? n->plus : n->hash;
	if (c == n->plus)
		n->plus = NULL;
	else
		n->hash = NULL;
	return c;
}

void subs_free(struct subs *s)
{
	struct node *n, *c, *up;

	if (!s)
		return;
	n = s->root;
	while (n) {
		c = take_child(n);
		if (c) {
			n = c;
			continue;
		}
		up = n->parent;
		node_free(n);
		n = up;
	}
	pthread_rwlock_destroy(&s->lock);
	free(s);
}

int subs_add(struct subs *s, const char *filter, size_t len, void *owner,
             const struct subs_opts *opts)
{
	const char *group = NULL;
	size_t glen = 0;
	struct node *n;
	int rc;

	pthread_rwlock_wrlock(&s->lock);
	share_split(&filter, &len, &group, &glen);
	rc = path_get(s->root, filter, len, &n);
	if (rc < 0)
		goto fail;
	if (group)
		rc = shared_add(n, group, glen, owner, opts);
	else
		rc = subtab_upsert(&n->subs, owner, opts);
	if (rc < 0)
		goto fail;
	s->count += (size_t)rc;
	pthread_rwlock_unlock(&s->lock);
	return rc;
fail:
	prune(s, n);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int subs_remove(struct subs *s, const char *filter, size_t len, void *owner)
{
	const char *group = NULL;
	size_t glen = 0;
	struct node *n;
	int rc = TERN_ENOENT;

	pthread_rwlock_wrlock(&s->lock);
	share_split(&filter, &len, &group, &glen);
	n = path_find(s->root, filter, len);
	if (n && group)
		rc = shared_remove(n, group, glen, owner);
	else if (n)
		rc = subtab_remove(&n->subs, owner);
	if (rc == 0) {
		s->count--;
		prune(s, n);
	}
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

/* Picks a group's member round robin, preferring those accept_shared takes. */
static const struct sub *group_pick(struct group *g, const struct match *m)
{
	uint32_t start =
	        atomic_fetch_add_explicit(&g->next, 1, memory_order_relaxed) %
	        g->n;

	if (m->v->accept_shared) {
		for (uint32_t i = 0; i < g->n; i++) {
			const struct sub *e = &g->member[(start + i) % g->n];
			if (m->v->accept_shared(m->ctx, e->owner))
				return e;
		}
	}
	return &g->member[start];
}

/* Reports every subscription held at n (the filter ending there). */
static void report(const struct match *m, const struct node *n)
{
	const struct sub *e;

	for (uint32_t i = 0; i < n->subs.cap; i++) {
		e = &n->subs.slot[i];
		if (e->owner)
			m->v->on_match(m->ctx, e->owner, &e->opts, false);
	}
	for (uint32_t i = 0; i < n->ngroup; i++) {
		e = group_pick(n->group[i], m);
		m->v->on_match(m->ctx, e->owner, &e->opts, true);
	}
}

/* Wildcards may follow n unless n is the root and the topic starts '$'. */
static bool wild_ok(const struct match *m, const struct node *n)
{
	return !(m->dollar && n == m->root);
}

/*
 * Arriving at n with topic level p (p > len: all levels consumed): its '#'
 * child matches the rest of the topic, or the parent level when nothing is
 * left (MQTT 4.7.1.2); n itself matches only when nothing is left.
 */
static void visit(const struct match *m, const struct node *n, size_t p)
{
	if (n->hash && wild_ok(m, n))
		report(m, n->hash);
	if (p > m->len)
		report(m, n);
}

/* First child of n to descend into for level p (literal before '+'). */
static struct node *descend(const struct match *m, const struct node *n,
                            size_t *p)
{
	struct node *c;
	size_t e;

	if (*p > m->len)
		return NULL;
	e = level_end(m->topic, m->len, *p);
	c = child_find((struct node *)n, m->topic + *p, e - *p);
	if (!c && wild_ok(m, n))
		c = n->plus;
	if (c)
		*p = e + 1;
	return c;
}

/*
 * After the subtree of n is done: climbs until a parent still has its '+'
 * branch to try (the sibling consumes the same level, so p stays), or
 * returns NULL at the root.
 */
static struct node *next_branch(const struct match *m, const struct node *n,
                                size_t *p)
{
	struct node *up;

	while (n != m->root) {
		up = n->parent;
		if (up->plus && n != up->plus && wild_ok(m, up))
			return up->plus;
		*p = level_start_before(m->topic, *p);
		n = up;
	}
	return NULL;
}

void subs_match(struct subs *s, const char *topic, size_t len,
                const struct subs_visitor *v, void *ctx)
{
	struct match m = {topic, len, len > 0 && topic[0] == '$', NULL, v, ctx};
	struct node *n, *c;
	size_t p = 0;

	pthread_rwlock_rdlock(&s->lock);
	n = s->root;
	m.root = n;
	while (n) {
		visit(&m, n, p);
		c = descend(&m, n, &p);
		n = c ? c : next_branch(&m, n, &p);
	}
	pthread_rwlock_unlock(&s->lock);
}

int subs_pick_shared(struct subs *s, const char *share_filter, size_t len,
                     const struct subs_visitor *v, void *ctx)
{
	struct match m = {.v = v, .ctx = ctx};
	const char *f = share_filter, *group;
	size_t flen = len, glen;
	const struct sub *e;
	struct node *n;
	int gi, found = 0;

	if (!share_split(&f, &flen, &group, &glen))
		return 0;
	pthread_rwlock_rdlock(&s->lock);
	n = path_find(s->root, f, flen);
	gi = n ? group_find(n, group, glen) : -1;
	if (gi >= 0 && n->group[gi]->n > 0) {
		e = group_pick(n->group[gi], &m);
		v->on_match(ctx, e->owner, &e->opts, true);
		found = 1;
	}
	pthread_rwlock_unlock(&s->lock);
	return found;
}

size_t subs_count(struct subs *s)
{
	size_t n;

	pthread_rwlock_rdlock(&s->lock);
	n = s->count;
	pthread_rwlock_unlock(&s->lock);
	return n;
}

bool subs_topic_matches(const char *filter, size_t flen, const char *topic,
                        size_t tlen)
{
	size_t fp = 0, tp = 0, fe, te;

	if (tlen && topic[0] == '$' && flen &&
	    (filter[0] == '+' || filter[0] == '#'))
		return false;
	for (;;) {
		if (fp > flen)
			return tp > tlen;
		fe = level_end(filter, flen, fp);
		if (fe - fp == 1 && filter[fp] == '#')
			return true;
		if (tp > tlen)
			return false;
		te = level_end(topic, tlen, tp);
		if (!(fe - fp == 1 && filter[fp] == '+') &&
		    (fe - fp != te - tp ||
		     memcmp(filter + fp, topic + tp, te - tp) != 0))
			return false;
		fp = fe + 1;
		tp = te + 1;
	}
}
