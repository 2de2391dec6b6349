/*
 * Tests of the subscription index (src/broker/subs.c): exact and wildcard
 * matching, the '$' rule, shared groups, pruning, very wide and very deep
 * trees, and matching while another thread writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "broker/subs.h"

#define MAX_HITS 64

/* Distinct owner pointers; the index only compares them. */
static char owners[16];
#define OWNER(i) ((void *)&owners[(i)])

struct hit {
	void *owner;
	struct subs_opts opts;
	bool shared;
};

struct hits {
	struct hit v[MAX_HITS];
	size_t n;
	void *accept; /* accept_shared takes only this owner; NULL = none */
};

static void on_match(void *ctx, void *owner, const struct subs_opts *opts,
                     bool shared)
{
	struct hits *h = ctx;

	if (h->n < MAX_HITS) {
		h->v[h->n].owner = owner;
		h->v[h->n].opts = *opts;
		h->v[h->n].shared = shared;
	}
	h->n++;
}

static bool accept_one(void *ctx, void *owner)
{
	struct hits *h = ctx;

	return owner == h->accept;
}

static const struct subs_visitor visitor = {on_match, NULL};
static const struct subs_visitor accepting = {on_match, accept_one};

static int add(struct subs *s, const char *f, void *owner, uint32_t sub_id)
{
	struct subs_opts o = {.qos = 1, .sub_id = sub_id};

	return subs_add(s, f, strlen(f), owner, &o);
}

static int del(struct subs *s, const char *f, void *owner)
{
	return subs_remove(s, f, strlen(f), owner);
}

static size_t match(struct subs *s, const char *topic, struct hits *h)
{
	h->n = 0;
	subs_match(s, topic, strlen(topic), &visitor, h);
	return h->n;
}

/* How many hits went to owner. */
static size_t hits_of(const struct hits *h, void *owner)
{
	size_t k = 0;

	for (size_t i = 0; i < h->n && i < MAX_HITS; i++)
		k += h->v[i].owner == owner;
	return k;
}

static void test_exact(void **state)
{
	struct subs *s = subs_new();
	struct hits h;

	assert_non_null(s);
	assert_int_equal(add(s, "a/b", OWNER(0), 7), 1);
	assert_int_equal(match(s, "a/b", &h), 1);
	assert_ptr_equal(h.v[0].owner, OWNER(0));
	assert_int_equal(h.v[0].opts.sub_id, 7);
	assert_int_equal(h.v[0].opts.qos, 1);
	assert_false(h.v[0].shared);
	assert_int_equal(match(s, "a", &h), 0);
	assert_int_equal(match(s, "a/b/c", &h), 0);
	assert_int_equal(match(s, "a/c", &h), 0);
	assert_int_equal(match(s, "ab", &h), 0);
	subs_free(s);
}

static void test_plus(void **state)
{
	struct subs *s = subs_new();
	struct hits h;

	add(s, "a/+/c", OWNER(0), 0);
	add(s, "+", OWNER(1), 0);
	add(s, "+/+", OWNER(2), 0);
	assert_int_equal(match(s, "a/b/c", &h), 1);
	assert_int_equal(hits_of(&h, OWNER(0)), 1);
	assert_int_equal(match(s, "a//c", &h), 1);
	assert_int_equal(match(s, "a/b/c/d", &h), 0);
	assert_int_equal(match(s, "a", &h), 1);
	assert_int_equal(hits_of(&h, OWNER(1)), 1);
	assert_int_equal(match(s, "a/b", &h), 1);
	assert_int_equal(hits_of(&h, OWNER(2)), 1);
	assert_int_equal(match(s, "/", &h), 1);
	assert_int_equal(hits_of(&h, OWNER(2)), 1);
	subs_free(s);
}

static void test_hash(void **state)
{
	struct subs *s = subs_new();
	struct hits h;

	add(s, "a/#", OWNER(0), 0);
	/* The parent level matches too (MQTT 4.7.1.2). */
	assert_int_equal(match(s, "a", &h), 1);
	assert_int_equal(match(s, "a/b", &h), 1);
	assert_int_equal(match(s, "a/b/c", &h), 1);
	assert_int_equal(match(s, "a/", &h), 1);
	assert_int_equal(match(s, "b", &h), 0);
	assert_int_equal(match(s, "ab", &h), 0);
	add(s, "#", OWNER(1), 0);
	add(s, "+/#", OWNER(2), 0);
	assert_int_equal(match(s, "x", &h), 2);
	assert_int_equal(hits_of(&h, OWNER(1)), 1);
	assert_int_equal(hits_of(&h, OWNER(2)), 1);
	assert_int_equal(match(s, "a/b", &h), 3);
	subs_free(s);
}

static void test_dollar(void **state)
{
	struct subs *s = subs_new();
	struct hits h;

	add(s, "#", OWNER(0), 0);
	add(s, "+/x", OWNER(1), 0);
	add(s, "+/#", OWNER(2), 0);
	add(s, "$SYS/#", OWNER(3), 0);
	add(s, "$SYS/+", OWNER(4), 0);
	add(s, "$share/g/#", OWNER(5), 0);
	assert_int_equal(match(s, "$SYS/x", &h), 2);
	assert_int_equal(hits_of(&h, OWNER(3)), 1);
	assert_int_equal(hits_of(&h, OWNER(4)), 1);
	assert_int_equal(match(s, "$SYS", &h), 1);
	assert_int_equal(hits_of(&h, OWNER(3)), 1);
	/* The rule is only about the first level. */
	assert_int_equal(match(s, "a/$x", &h), 3);
	assert_int_equal(hits_of(&h, OWNER(5)), 1);
	subs_free(s);
}

static void test_empty_levels(void **state)
{
	struct subs *s = subs_new();
	struct hits h;

	add(s, "a//b", OWNER(0), 0);
	add(s, "/a", OWNER(1), 0);
	add(s, "+/a", OWNER(2), 0);
	add(s, "/+", OWNER(3), 0);
	add(s, "a", OWNER(4), 0);
	assert_int_equal(match(s, "a//b", &h), 1);
	assert_int_equal(hits_of(&h, OWNER(0)), 1);
	assert_int_equal(match(s, "a/b", &h), 0);
	assert_int_equal(match(s, "/a", &h), 3);
	assert_int_equal(hits_of(&h, OWNER(4)), 0);
	assert_int_equal(match(s, "a", &h), 1);
	assert_int_equal(hits_of(&h, OWNER(4)), 1);
	subs_free(s);
}

static void test_overlap(void **state)
{
	struct subs *s = subs_new();
	struct hits h;
	uint32_t ids = 0;

	add(s, "a/+", OWNER(0), 1);
	add(s, "a/#", OWNER(0), 2);
	add(s, "a/b", OWNER(0), 4);
	add(s, "+/b", OWNER(0), 8);
	assert_int_equal(subs_count(s), 4);
	assert_int_equal(match(s, "a/b", &h), 4);
	for (size_t i = 0; i < h.n; i++) {
		assert_ptr_equal(h.v[i].owner, OWNER(0));
		ids |= h.v[i].opts.sub_id;
	}
	assert_int_equal(ids, 15);
	subs_free(s);
}

static void test_replace(void **state)
{
	struct subs *s = subs_new();
	struct subs_opts o = {.qos = 2, .no_local = true, .sub_id = 9};
	struct hits h;

	assert_int_equal(add(s, "a/b", OWNER(0), 1), 1);
	assert_int_equal(subs_add(s, "a/b", 3, OWNER(0), &o), 0);
	assert_int_equal(subs_count(s), 1);
	assert_int_equal(match(s, "a/b", &h), 1);
	assert_int_equal(h.v[0].opts.qos, 2);
	assert_true(h.v[0].opts.no_local);
	assert_int_equal(h.v[0].opts.sub_id, 9);
	assert_int_equal(add(s, "$share/g/a/b", OWNER(0), 1), 1);
	assert_int_equal(subs_add(s, "$share/g/a/b", 12, OWNER(0), &o), 0);
	assert_int_equal(subs_count(s), 2);
	assert_int_equal(match(s, "a/b", &h), 2);
	assert_int_equal(h.v[1].opts.sub_id, 9);
	subs_free(s);
}

static void test_remove_prune(void **state)
{
	static const char *filters[] = {
	        "a/b/c", "a/+/c", "a/#",          "#",
	        "+",     "a//b",  "$share/g/a/b", "$share/h/#"};
	const size_t nf = sizeof(filters) / sizeof(filters[0]);
	struct subs *s = subs_new();
	struct hits h;

	for (size_t i = 0; i < nf; i++) {
		assert_int_equal(add(s, filters[i], OWNER(0), 0), 1);
		assert_int_equal(add(s, filters[i], OWNER(1), 0), 1);
	}
	assert_int_equal(subs_count(s), 2 * nf);
	assert_int_equal(del(s, "a/b/c", OWNER(2)), TERN_ENOENT);
	assert_int_equal(del(s, "x/y", OWNER(0)), TERN_ENOENT);
	assert_int_equal(del(s, "$share/zz/a/b", OWNER(0)), TERN_ENOENT);
	assert_int_equal(del(s, "a/b", OWNER(0)), TERN_ENOENT);
	for (size_t i = 0; i < nf; i++) {
		assert_int_equal(del(s, filters[i], OWNER(0)), 0);
		assert_int_equal(del(s, filters[i], OWNER(0)), TERN_ENOENT);
	}
	assert_int_equal(subs_count(s), nf);
	/* a/b/c, a/+/c, a/#, # and the group on #. */
	assert_int_equal(match(s, "a/b/c", &h), 5);
	assert_int_equal(hits_of(&h, OWNER(1)), 5);
	for (size_t i = 0; i < nf; i++)
		assert_int_equal(del(s, filters[i], OWNER(1)), 0);
	assert_int_equal(subs_count(s), 0);
	assert_int_equal(match(s, "a/b/c", &h), 0);
	assert_int_equal(match(s, "a/b", &h), 0);
	/* The pruned tree must be usable again. */
	assert_int_equal(add(s, "a/b/c", OWNER(0), 0), 1);
	assert_int_equal(match(s, "a/b/c", &h), 1);
	subs_free(s);
}

static void test_shared_round_robin(void **state)
{
	struct subs *s = subs_new();
	struct hits h;
	size_t per[3] = {0};

	for (int i = 0; i < 3; i++)
		assert_int_equal(add(s, "$share/g/a/b", OWNER(i), 0), 1);
	assert_int_equal(subs_count(s), 3);
	for (int k = 0; k < 9; k++) {
		assert_int_equal(match(s, "a/b", &h), 1);
		assert_true(h.v[0].shared);
		for (int i = 0; i < 3; i++)
			per[i] += h.v[0].owner == OWNER(i);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(per[i], 3);
	subs_free(s);
}

static void test_shared_accept(void **state)
{
	struct subs *s = subs_new();
	struct hits h = {.accept = OWNER(1)};
	size_t per[3] = {0};

	for (int i = 0; i < 3; i++)
		add(s, "$share/g/a/+", OWNER(i), 0);
	for (int k = 0; k < 9; k++) {
		h.n = 0;
		subs_match(s, "a/b", 3, &accepting, &h);
		assert_int_equal(h.n, 1);
		assert_ptr_equal(h.v[0].owner, OWNER(1));
	}
	/* Nobody accepts: the round-robin member still gets it. */
	h.accept = NULL;
	for (int k = 0; k < 9; k++) {
		h.n = 0;
		subs_match(s, "a/b", 3, &accepting, &h);
		assert_int_equal(h.n, 1);
		for (int i = 0; i < 3; i++)
			per[i] += h.v[0].owner == OWNER(i);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(per[i], 3);
	subs_free(s);
}

static void test_two_groups(void **state)
{
	struct subs *s = subs_new();
	struct hits h;

	add(s, "$share/g1/a", OWNER(0), 0);
	add(s, "$share/g1/a", OWNER(1), 0);
	add(s, "$share/g2/a", OWNER(2), 0);
	add(s, "$share/g2/a", OWNER(3), 0);
	add(s, "a", OWNER(4), 0);
	for (int k = 0; k < 4; k++) {
		assert_int_equal(match(s, "a", &h), 3);
		assert_int_equal(hits_of(&h, OWNER(0)) + hits_of(&h, OWNER(1)),
		                 1);
		assert_int_equal(hits_of(&h, OWNER(2)) + hits_of(&h, OWNER(3)),
		                 1);
		assert_int_equal(hits_of(&h, OWNER(4)), 1);
		for (size_t i = 0; i < h.n; i++)
			assert_int_equal(h.v[i].shared,
			                 h.v[i].owner != OWNER(4));
	}
	subs_free(s);
}

#define SIBLINGS 10000

static void test_siblings(void **state)
{
	char *own = calloc(SIBLINGS, 1);
	struct subs *s = subs_new();
	char f[64];
	struct hits h;

	assert_non_null(own);
	for (int i = 0; i < SIBLINGS; i++) {
		snprintf(f, sizeof(f), "device/%d/x", i);
		assert_int_equal(add(s, f, own + i, 0), 1);
	}
	assert_int_equal(subs_count(s), SIBLINGS);
	for (int i = 0; i < SIBLINGS; i += 997) {
		snprintf(f, sizeof(f), "device/%d/x", i);
		assert_int_equal(match(s, f, &h), 1);
		assert_ptr_equal(h.v[0].owner, own + i);
	}
	assert_int_equal(match(s, "device/10000/x", &h), 0);
	/* Remove in an order unrelated to insertion to exercise shifting. */
	for (int i = 0; i < SIBLINGS; i++) {
		int k = (int)(((long)i * 7919) % SIBLINGS);
		snprintf(f, sizeof(f), "device/%d/x", k);
		assert_int_equal(del(s, f, own + k), 0);
		if (i % 1000 == 998) {
			snprintf(f, sizeof(f), "device/%d/x",
			         (int)(((long)(i + 1) * 7919) % SIBLINGS));
			assert_int_equal(match(s, f, &h), 1);
		}
	}
	assert_int_equal(subs_count(s), 0);
	assert_int_equal(match(s, "device/5/x", &h), 0);
	subs_free(s);
	free(own);
}

static void test_many_owners(void **state)
{
	char *own = calloc(SIBLINGS, 1);
	struct subs *s = subs_new();
	struct hits h;

	for (int i = 0; i < SIBLINGS; i++)
		assert_int_equal(add(s, "a/#", own + i, 0), 1);
	assert_int_equal(match(s, "a/b", &h), SIBLINGS);
	for (int i = 0; i < SIBLINGS; i += 2)
		assert_int_equal(del(s, "a/#", own + i), 0);
	assert_int_equal(match(s, "a/b", &h), SIBLINGS / 2);
	assert_int_equal(subs_count(s), SIBLINGS / 2);
	subs_free(s);
	free(own);
}

#define DEEP 65535

static void test_deep_topic(void **state)
{
	char *t = malloc(DEEP + 1);
	struct subs *s = subs_new();
	struct hits h;

	memset(t, '/', DEEP);
	t[DEEP] = '\0';
	add(s, "#", OWNER(0), 0);
	add(s, "+/+", OWNER(1), 0);
	add(s, "+/#", OWNER(2), 0);
	/* A filter of 65,536 empty levels: the deepest tree possible. */
	assert_int_equal(
	        subs_add(s, t, DEEP, OWNER(3), &(struct subs_opts){.qos = 0}),
	        1);
	assert_int_equal(match(s, t, &h), 3);
	assert_int_equal(hits_of(&h, OWNER(0)), 1);
	assert_int_equal(hits_of(&h, OWNER(2)), 1);
	assert_int_equal(hits_of(&h, OWNER(3)), 1);
	assert_int_equal(match(s, "/", &h), 3);
	assert_int_equal(hits_of(&h, OWNER(1)), 1);
	assert_true(subs_topic_matches("#", 1, t, DEEP));
	assert_false(subs_topic_matches("+/+", 3, t, DEEP));
	assert_true(subs_topic_matches(t, DEEP, t, DEEP));
	/* Freed without recursion. */
	subs_free(s);
	s = subs_new();
	add(s, "#", OWNER(0), 0);
	assert_int_equal(
	        subs_add(s, t, DEEP, OWNER(3), &(struct subs_opts){.qos = 0}),
	        1);
	assert_int_equal(subs_remove(s, t, DEEP, OWNER(3)), 0);
	assert_int_equal(subs_count(s), 1);
	assert_int_equal(match(s, t, &h), 1);
	subs_free(s);
	free(t);
}

static const char *const filters[] = {
        "#",    "+",     "+/+",    "+/#",    "a",    "a/b",   "a/+",
        "a/#",  "a/b/c", "a/+/c",  "+/b/#",  "/a",   "/+",    "+/a",
        "a//b", "a/+/+", "$SYS/#", "$SYS/+", "$SYS", "a/b/#", "b/#",
};
static const char *const topics[] = {
        "a",    "a/b",     "a/b/c", "a/c",   "a//b", "/a",
        "/",    "b",       "b/b",   "x/b/y", "$SYS", "$SYS/x",
        "a/$b", "a/b/c/d", "a/b/",  "//",    "b/a",
};

/* The index and the pure matcher must agree on every pair. */
static void test_agrees_with_topic_matches(void **state)
{
	const size_t nf = sizeof(filters) / sizeof(filters[0]);
	const size_t nt = sizeof(topics) / sizeof(topics[0]);
	struct subs *s = subs_new();
	struct hits h;
	bool want;

	for (size_t i = 0; i < nf; i++)
		add(s, filters[i], OWNER(0), (uint32_t)i);
	for (size_t j = 0; j < nt; j++) {
		match(s, topics[j], &h);
		for (size_t i = 0; i < nf; i++) {
			size_t got = 0;
			for (size_t k = 0; k < h.n; k++)
				got += h.v[k].opts.sub_id == i;
			want = subs_topic_matches(filters[i],
			                          strlen(filters[i]), topics[j],
			                          strlen(topics[j]));
			if (got != (size_t)want)
				fail_msg("filter %s topic %s: index %zu, "
				         "matcher %d",
				         filters[i], topics[j], got, want);
		}
	}
	subs_free(s);
}

static void test_topic_matches(void **state)
{
	static const struct {
		const char *f, *t;
		bool want;
	} cases[] = {
	        {"a/b", "a/b", true},     {"a/b", "a", false},
	        {"a", "a/b", false},      {"a/+", "a/b", true},
	        {"a/+", "a", false},      {"a/+", "a/", true},
	        {"a/#", "a", true},       {"a/#", "a/b/c", true},
	        {"#", "a", true},         {"#", "$SYS/a", false},
	        {"+/a", "$SYS/a", false}, {"$SYS/#", "$SYS/a", true},
	        {"$SYS/#", "$SYS", true}, {"+/+", "/", true},
	        {"/+", "/a", true},       {"+", "/a", false},
	        {"a//b", "a//b", true},   {"a//b", "a/b", false},
	        {"ab", "a", false},       {"a", "ab", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = subs_topic_matches(cases[i].f, strlen(cases[i].f),
		                              cases[i].t, strlen(cases[i].t));
		if (got != cases[i].want)
			fail_msg("filter %s topic %s: got %d want %d",
			         cases[i].f, cases[i].t, got, cases[i].want);
	}
}

/* ---- concurrency ---- */

struct race {
	struct subs *s;
	atomic_bool stop;
	atomic_int errors;
	atomic_long matches;
};

/* What one match in the race saw: hits of OWNER(0) and OWNER(1). */
struct race_hits {
	size_t perm[2];
};

static void race_match(void *ctx, void *owner, const struct subs_opts *o,
                       bool shared)
{
	struct race_hits *h = ctx;

	if (owner == OWNER(0) || owner == OWNER(1))
		h->perm[owner == OWNER(1)]++;
}

/* Matchers check the two permanent subscriptions are always seen once. */
static void *matcher(void *arg)
{
	struct race *r = arg;
	const struct subs_visitor v = {race_match, NULL};
	struct race_hits h;

	while (!atomic_load(&r->stop)) {
		memset(&h, 0, sizeof(h));
		subs_match(r->s, "dev/7/x", 7, &v, &h);
		if (h.perm[0] != 1 || h.perm[1] != 1)
			atomic_fetch_add(&r->errors, 1);
		atomic_fetch_add(&r->matches, 1);
	}
	return NULL;
}

static void writer(struct race *r)
{
	char f[64];
	uint64_t end = clock_ms() + 1000;
	int round = 0;

	while (clock_ms() < end) {
		for (int i = 0; i < 50; i++) {
			snprintf(f, sizeof(f), "%sdev/%d/%s",
			         i % 5 ? "" : "$share/g/", i % 10,
			         i % 3 ? "x" : "+");
			if (add(r->s, f, OWNER(2 + i % 8), 0) < 0)
				atomic_fetch_add(&r->errors, 1);
		}
		for (int i = 0; i < 50; i++) {
			snprintf(f, sizeof(f), "%sdev/%d/%s",
			         i % 5 ? "" : "$share/g/", i % 10,
			         i % 3 ? "x" : "+");
			/* Duplicates were replaced, so the second is gone. */
			del(r->s, f, OWNER(2 + i % 8));
		}
		round++;
	}
	assert_true(round > 0);
}

static void test_concurrent(void **state)
{
	struct race r = {.s = subs_new()};
	pthread_t th[4];
	struct hits h;

	atomic_init(&r.stop, false);
	atomic_init(&r.errors, 0);
	atomic_init(&r.matches, 0);
	add(r.s, "dev/+/x", OWNER(0), 0);
	add(r.s, "dev/#", OWNER(1), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, matcher, &r), 0);
	writer(&r);
	atomic_store(&r.stop, true);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&r.errors), 0);
	assert_true(atomic_load(&r.matches) > 0);
	assert_int_equal(subs_count(r.s), 2);
	assert_int_equal(match(r.s, "dev/7/x", &h), 2);
	subs_free(r.s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_exact),
	        cmocka_unit_test(test_plus),
	        cmocka_unit_test(test_hash),
	        cmocka_unit_test(test_dollar),
	        cmocka_unit_test(test_empty_levels),
	        cmocka_unit_test(test_overlap),
	        cmocka_unit_test(test_replace),
	        cmocka_unit_test(test_remove_prune),
	        cmocka_unit_test(test_shared_round_robin),
	        cmocka_unit_test(test_shared_accept),
	        cmocka_unit_test(test_two_groups),
	        cmocka_unit_test(test_siblings),
	        cmocka_unit_test(test_many_owners),
	        cmocka_unit_test(test_deep_topic),
	        cmocka_unit_test(test_agrees_with_topic_matches),
	        cmocka_unit_test(test_topic_matches),
	        cmocka_unit_test(test_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
