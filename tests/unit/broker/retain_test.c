/*
 * Tests of the retained store (src/broker/retain.c): set, replace and delete,
 * wildcard matching (checked against subs_topic_matches), the '$' rule,
 * reference counts, and very wide and very deep topic trees. Run under ASan
 * to catch a missing or extra msg_unref.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/msg.h"
#include "broker/retain.h"
#include "broker/subs.h"

#define MAX_FOUND 64

struct found {
	const char *topic[MAX_FOUND];
	size_t n;
};

static void collect(void *ctx, struct msg *m)
{
	struct found *f = ctx;

	if (f->n < MAX_FOUND)
		f->topic[f->n] = m->topic;
	f->n++;
}

static size_t match(struct retain *r, const char *filter, struct found *f)
{
	f->n = 0;
	retain_match(r, filter, strlen(filter), collect, f);
	return f->n;
}

static bool found(const struct found *f, const char *topic)
{
	for (size_t i = 0; i < f->n && i < MAX_FOUND; i++)
		if (!strcmp(f->topic[i], topic))
			return true;
	return false;
}

static unsigned refs(struct msg *m)
{
	return atomic_load(&m->refs);
}

/* Stores a retained message with payload p for topic t. */
static int put(struct retain *r, const char *t, const char *p)
{
	struct msg *m = msg_new_simple(t, p, strlen(p), 0, true, 0);
	int rc;

	assert_non_null(m);
	rc = retain_set(r, m);
	msg_unref(m);
	return rc;
}

static void test_set_replace_delete(void **state)
{
	struct retain *r = retain_new();
	struct msg *m1 = msg_new_simple("a/b", "one", 3, 1, true, 0);
	struct msg *m2 = msg_new_simple("a/b", "second", 6, 1, true, 0);
	struct msg *del = msg_new_simple("a/b", "", 0, 0, true, 0);
	struct found f;

	assert_non_null(r);
	assert_int_equal(retain_set(r, m1), 0);
	assert_int_equal(refs(m1), 2);
	assert_int_equal(retain_count(r), 1);
	assert_int_equal(retain_bytes(r), 3);
	assert_int_equal(retain_set(r, m2), 0);
	assert_int_equal(refs(m1), 1);
	assert_int_equal(refs(m2), 2);
	assert_int_equal(retain_count(r), 1);
	assert_int_equal(retain_bytes(r), 6);
	assert_int_equal(match(r, "a/b", &f), 1);
	assert_int_equal(retain_set(r, del), 0);
	assert_int_equal(refs(del), 1);
	assert_int_equal(refs(m2), 1);
	assert_int_equal(retain_count(r), 0);
	assert_int_equal(retain_bytes(r), 0);
	assert_int_equal(match(r, "a/b", &f), 0);
	assert_int_equal(match(r, "#", &f), 0);
	/* Deleting what is not there is fine. */
	assert_int_equal(retain_set(r, del), 0);
	/* The store's reference goes away with the store. */
	assert_int_equal(retain_set(r, m1), 0);
	assert_int_equal(refs(m1), 2);
	retain_free(r);
	assert_int_equal(refs(m1), 1);
	msg_unref(m1);
	msg_unref(m2);
	msg_unref(del);
}

static void test_parent_kept(void **state)
{
	struct retain *r = retain_new();
	struct found f;

	put(r, "a", "1");
	put(r, "a/b/c", "2");
	put(r, "a/b/c", "");
	assert_int_equal(retain_count(r), 1);
	assert_int_equal(match(r, "a", &f), 1);
	assert_int_equal(match(r, "#", &f), 1);
	put(r, "a/b/c", "3");
	put(r, "a", "");
	assert_int_equal(match(r, "a/b/c", &f), 1);
	assert_int_equal(match(r, "a/#", &f), 1);
	assert_true(found(&f, "a/b/c"));
	retain_free(r);
}

static void test_wildcards(void **state)
{
	struct retain *r = retain_new();
	struct found f;

	put(r, "a", "x");
	put(r, "a/b", "x");
	put(r, "a/b/c", "x");
	put(r, "a/c", "x");
	put(r, "a//c", "x");
	put(r, "b", "x");
	put(r, "/x", "x");
	assert_int_equal(retain_count(r), 7);
	assert_int_equal(retain_bytes(r), 7);
	assert_int_equal(match(r, "a/b/c", &f), 1);
	assert_int_equal(match(r, "a/+", &f), 2);
	assert_true(found(&f, "a/b") && found(&f, "a/c"));
	assert_int_equal(match(r, "a/#", &f), 5);
	assert_false(found(&f, "b"));
	assert_int_equal(match(r, "+", &f), 2);
	assert_true(found(&f, "a") && found(&f, "b"));
	assert_int_equal(match(r, "+/+", &f), 3);
	assert_true(found(&f, "/x"));
	assert_int_equal(match(r, "a/+/c", &f), 2);
	assert_true(found(&f, "a//c") && found(&f, "a/b/c"));
	assert_int_equal(match(r, "#", &f), 7);
	assert_int_equal(match(r, "+/#", &f), 7);
	assert_int_equal(match(r, "a/b/#", &f), 2);
	assert_int_equal(match(r, "c/#", &f), 0);
	assert_int_equal(match(r, "a/b/c/d", &f), 0);
	retain_free(r);
}

static void test_dollar(void **state)
{
	struct retain *r = retain_new();
	struct found f;

	put(r, "$SYS/x", "1");
	put(r, "$SYS", "1");
	put(r, "x", "1");
	put(r, "a/$b", "1");
	assert_int_equal(match(r, "#", &f), 2);
	assert_true(found(&f, "x") && found(&f, "a/$b"));
	assert_int_equal(match(r, "+/x", &f), 0);
	assert_int_equal(match(r, "+", &f), 1);
	assert_int_equal(match(r, "$SYS/#", &f), 2);
	assert_int_equal(match(r, "$SYS/+", &f), 1);
	assert_int_equal(match(r, "a/+", &f), 1);
	retain_free(r);
}

static const char *const topics[] = {
        "a",    "a/b", "a/b/c", "a/c",  "a//b",   "/a",   "/",
        "b",    "b/b", "x/b/y", "$SYS", "$SYS/x", "a/$b", "a/b/c/d",
        "a/b/", "//",  "b/a",   "$",    "$/a",
};
static const char *const filters[] = {
        "#",     "+",     "+/+",    "+/#",    "a",    "a/b",   "a/+",
        "a/#",   "a/b/c", "a/+/c",  "+/b/#",  "/a",   "/+",    "+/a",
        "a//b",  "a/+/+", "$SYS/#", "$SYS/+", "$SYS", "a/b/#", "b/#",
        "+/+/+", "/#",    "$/#",    "//",
};

/* The store must find exactly the topics the pure matcher accepts. */
static void test_agrees_with_topic_matches(void **state)
{
	const size_t nt = sizeof(topics) / sizeof(topics[0]);
	const size_t nf = sizeof(filters) / sizeof(filters[0]);
	struct retain *r = retain_new();
	struct found f;
	size_t want;

	for (size_t i = 0; i < nt; i++)
		assert_int_equal(put(r, topics[i], "p"), 0);
	assert_int_equal(retain_count(r), nt);
	for (size_t j = 0; j < nf; j++) {
		want = 0;
		for (size_t i = 0; i < nt; i++)
			want += subs_topic_matches(
			        filters[j], strlen(filters[j]), topics[i],
			        strlen(topics[i]));
		match(r, filters[j], &f);
		if (f.n != want)
			fail_msg("filter %s: store found %zu, matcher %zu",
			         filters[j], f.n, want);
		for (size_t i = 0; i < f.n; i++)
			assert_true(subs_topic_matches(
			        filters[j], strlen(filters[j]), f.topic[i],
			        strlen(f.topic[i])));
	}
	for (size_t i = 0; i < nt; i++)
		assert_int_equal(put(r, topics[i], ""), 0);
	assert_int_equal(retain_count(r), 0);
	assert_int_equal(match(r, "#", &f), 0);
	retain_free(r);
}

#define SIBLINGS 10000

static void test_siblings(void **state)
{
	struct retain *r = retain_new();
	char t[64];
	struct found f;

	for (int i = 0; i < SIBLINGS; i++) {
		snprintf(t, sizeof(t), "device/%d/x", i);
		assert_int_equal(put(r, t, "v"), 0);
	}
	assert_int_equal(retain_count(r), SIBLINGS);
	assert_int_equal(match(r, "device/+/x", &f), SIBLINGS);
	assert_int_equal(match(r, "device/#", &f), SIBLINGS);
	assert_int_equal(match(r, "device/4321/x", &f), 1);
	assert_int_equal(match(r, "device/+/y", &f), 0);
	for (int i = 0; i < SIBLINGS; i++) {
		int k = (int)(((long)i * 7919) % SIBLINGS);
		snprintf(t, sizeof(t), "device/%d/x", k);
		assert_int_equal(put(r, t, ""), 0);
	}
	assert_int_equal(retain_count(r), 0);
	assert_int_equal(match(r, "device/+/x", &f), 0);
	retain_free(r);
}

#define DEEP 65535

static void test_deep_topic(void **state)
{
	char *t = malloc(DEEP + 1);
	struct retain *r = retain_new();
	struct found f;
	struct msg *m;

	memset(t, '/', DEEP);
	t[DEEP] = '\0';
	m = msg_new_simple(t, "p", 1, 0, true, 0);
	assert_non_null(m);
	assert_int_equal(retain_set(r, m), 0);
	put(r, "/", "q");
	assert_int_equal(match(r, "#", &f), 2);
	assert_int_equal(match(r, "+/+", &f), 1);
	assert_int_equal(match(r, "+/#", &f), 2);
	assert_int_equal(match(r, t, &f), 1);
	assert_ptr_equal(f.topic[0], m->topic);
	/* Freed without recursion, dropping the store's reference. */
	retain_free(r);
	assert_int_equal(refs(m), 1);
	msg_unref(m);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_set_replace_delete),
	        cmocka_unit_test(test_parent_kept),
	        cmocka_unit_test(test_wildcards),
	        cmocka_unit_test(test_dollar),
	        cmocka_unit_test(test_agrees_with_topic_matches),
	        cmocka_unit_test(test_siblings),
	        cmocka_unit_test(test_deep_topic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
