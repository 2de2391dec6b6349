/*
 * libFuzzer target for topic rules and matching, checked against a small
 * reference written here from MQTT 5.0 §4.7 and §4.8.2, level by level on
 * split strings, sharing no code with tern's checks:
 * - mqtt_topic_name_check() and mqtt_topic_filter_check() (src/mqtt/topic.c)
 *   accept exactly what the reference accepts;
 * - subs_topic_matches() (src/broker/subs.c) agrees with the reference on
 *   every valid filter and name;
 * - the subscription index (subs_add/subs_match/subs_remove) reports
 *   exactly the matching subscriptions, one member per matching shared
 *   group, before and after half of them are removed.
 * Input: the first line is the topic, each further line a filter (at most
 * MAX_FILTERS). A '\0' byte also ends a line.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "broker/subs.h"
#include "fuzz.h"
#include "mqtt/packet.h"

#define MAX_FILTERS 32

struct span {
	const char *p;
	size_t len;
};

/* Level `i` of s (levels are separated by '/'); false past the last. */
static bool level(struct span s, size_t i, struct span *out)
{
	size_t start = 0;

	for (size_t k = 0; k < i; k++) {
		const char *slash = memchr(s.p + start, '/', s.len - start);

		if (!slash)
			return false;
		start = (size_t)(slash - s.p) + 1;
	}
	const char *slash = memchr(s.p + start, '/', s.len - start);

	out->p = s.p + start;
	out->len = slash ? (size_t)(slash - out->p) : s.len - start;
	return true;
}

static bool span_is(struct span s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static bool has_byte(struct span s, char c)
{
	return memchr(s.p, c, s.len) != NULL;
}

static bool ref_name_ok(struct span t)
{
	return t.len > 0 && t.len <= 65535 && !has_byte(t, '+') &&
	       !has_byte(t, '#') &&
	       utf8_check_mqtt((const uint8_t *)t.p, t.len) == 0;
}

/* §4.7.1: '+' is a whole level, '#' the whole last level. */
static bool ref_plain_filter_ok(struct span f)
{
	struct span l, next;

	if (f.len == 0)
		return false;
	for (size_t i = 0; level(f, i, &l); i++) {
		bool last = !level(f, i + 1, &next);

		if (!has_byte(l, '+') && !has_byte(l, '#'))
			continue;
		if (span_is(l, "+") || (span_is(l, "#") && last))
			continue;
		return false;
	}
	return true;
}

/* Splits "$share/GROUP/FILTER": 1 shared (inner filter in *inner), 0 not
 * shared, -1 malformed. */
static int ref_share(struct span f, struct span *inner)
{
	struct span group;

	if (f.len < 7 || memcmp(f.p, "$share/", 7) != 0)
		return 0;
	group.p = f.p + 7;
	const char *slash = memchr(group.p, '/', f.len - 7);

	if (!slash)
		return -1;
	group.len = (size_t)(slash - group.p);
	if (group.len == 0 || has_byte(group, '+') || has_byte(group, '#'))
		return -1;
	inner->p = slash + 1;
	inner->len = f.len - 7 - group.len - 1;
	return inner->len ? 1 : -1;
}

static bool ref_filter_ok(struct span f)
{
	struct span inner;
	int sh;

	if (f.len == 0 || f.len > 65535 ||
	    utf8_check_mqtt((const uint8_t *)f.p, f.len) != 0)
		return false;
	sh = ref_share(f, &inner);
	if (sh < 0)
		return false;
	return ref_plain_filter_ok(sh ? inner : f);
}

/* §4.7: level by level; '#' also matches the parent level; §4.7.2: a
 * leading wildcard never matches a topic starting with '$'. */
static bool ref_match(struct span f, struct span t)
{
	struct span fl, tl;
	size_t i;

	if (t.p[0] == '$' && (f.p[0] == '+' || f.p[0] == '#'))
		return false;
	for (i = 0; level(f, i, &fl); i++) {
		if (span_is(fl, "#"))
			return true;
		if (!level(t, i, &tl))
			return false;
		if (!span_is(fl, "+") &&
		    (fl.len != tl.len || memcmp(fl.p, tl.p, fl.len) != 0))
			return false;
	}
	return !level(t, i, &tl);
}

struct sub {
	struct span f;     /* as subscribed */
	struct span inner; /* without $share/GROUP/ */
	bool shared, live;
};

struct seen {
	struct sub *subs;
	size_t n;
	unsigned hits[MAX_FILTERS];
};

static void on_match(void *ctx, void *owner, const struct subs_opts *o,
                     bool shared)
{
	struct seen *s = ctx;
	uintptr_t i = (uintptr_t)owner - 1;

	(void)o;
	CHECK(i < s->n);
	CHECK(s->subs[i].live);
	CHECK(s->subs[i].shared == shared);
	s->hits[i]++;
}

static bool same_filter(const struct sub *a, const struct sub *b)
{
	return a->f.len == b->f.len && memcmp(a->f.p, b->f.p, a->f.len) == 0;
}

/* Matches t in the index and compares with the reference. */
static void check_index(struct subs *idx, struct sub *subs, size_t n,
                        struct span t)
{
	struct seen s = {.subs = subs, .n = n};
	const struct subs_visitor v = {.on_match = on_match};

	subs_match(idx, t.p, t.len, &v, &s);
	for (size_t i = 0; i < n; i++) {
		bool want = subs[i].live && ref_match(subs[i].inner, t);

		if (!subs[i].shared) {
			CHECK(s.hits[i] == (want ? 1u : 0u));
			continue;
		}
		/* One live member of each matching group, reported once. */
		unsigned group_hits = 0;
		bool group_want = false;
		size_t first = i;

		for (size_t j = 0; j < n; j++)
			if (subs[j].shared && same_filter(&subs[i], &subs[j])) {
				group_hits += s.hits[j];
				group_want |= subs[j].live &&
				              ref_match(subs[j].inner, t);
				if (j < first)
					first = j;
			}
		if (first == i)
			CHECK(group_hits == (group_want ? 1u : 0u));
		if (!want)
			CHECK(s.hits[i] == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span lines[MAX_FILTERS + 1], t;
	struct sub subs[MAX_FILTERS];
	const struct subs_opts opts = {.qos = 1};
	struct subs *idx;
	size_t nlines = 0, n = 0, start = 0;

	for (size_t i = 0; i <= size && nlines <= MAX_FILTERS; i++)
		if (i == size || data[i] == '\n' || data[i] == '\0') {
			lines[nlines].p = (const char *)data + start;
			lines[nlines++].len = i - start;
			start = i + 1;
		}
	for (size_t i = 0; i < nlines; i++) {
		bool want = ref_filter_ok(lines[i]);

		CHECK((mqtt_topic_filter_check((const uint8_t *)lines[i].p,
		                               lines[i].len) == 0) == want);
		CHECK((mqtt_topic_name_check((const uint8_t *)lines[i].p,
		                             lines[i].len) == 0) ==
		      ref_name_ok(lines[i]));
	}
	t = lines[0];
	if (!ref_name_ok(t) || !(idx = subs_new()))
		return 0;
	for (size_t i = 1; i < nlines; i++) {
		struct sub *s = &subs[n];
		int sh;

		if (!ref_filter_ok(lines[i]))
			continue;
		s->f = lines[i];
		sh = ref_share(lines[i], &s->inner);
		s->shared = sh == 1;
		if (!s->shared) {
			s->inner = lines[i];
			CHECK(subs_topic_matches(s->f.p, s->f.len, t.p,
			                         t.len) == ref_match(s->f, t));
		}
		CHECK(subs_add(idx, s->f.p, s->f.len,
		               (void *)(uintptr_t)(n + 1), &opts) == 1);
		s->live = true;
		n++;
	}
	check_index(idx, subs, n, t);
	for (size_t i = 0; i < n; i += 2) {
		CHECK(subs_remove(idx, subs[i].f.p, subs[i].f.len,
		                  (void *)(uintptr_t)(i + 1)) == 0);
		subs[i].live = false;
	}
	check_index(idx, subs, n, t);
	CHECK(subs_count(idx) == n / 2);
	subs_free(idx);
	return 0;
}
