/*
 * Tests of the ACL module (src/broker/acl.c): anonymous and user sections,
 * %c / %u patterns, deny precedence, access words, wildcards in rules,
 * subscription coverage, $share filters, the '$' rule, client ids and
 * usernames holding wildcards (which must never widen a pattern), empty
 * files, and the exact file:line messages for malformed lines.
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
#include <unistd.h>

#include "base/error.h"
#include "broker/acl.h"
#include "broker/subs.h"

static struct acl *parse(const char *text)
{
	struct acl *a = NULL;
	char err[256] = "";
	int rc = acl_parse(text, "t.acl", &a, err, sizeof(err));

	if (rc)
		print_error("acl_parse: %d %s\n", rc, err);
	assert_int_equal(rc, 0);
	assert_non_null(a);
	return a;
}

/* Checks one access; id and user may be NULL. */
static bool may(const struct acl *a, const char *id, const char *user,
                const char *topic, int access)
{
	return acl_check(a, id, user, topic, strlen(topic), access);
}

static bool rd(const struct acl *a, const char *user, const char *t)
{
	return may(a, "cid", user, t, ACL_READ);
}

static bool wr(const struct acl *a, const char *user, const char *t)
{
	return may(a, "cid", user, t, ACL_WRITE);
}

static bool sub(const struct acl *a, const char *user, const char *t)
{
	return may(a, "cid", user, t, ACL_SUBSCRIBE);
}

/* Parses text expecting failure with exactly `msg`. */
static void parse_fails(const char *text, const char *msg)
{
	struct acl *a = NULL;
	char err[256] = "";

	assert_int_equal(acl_parse(text, "t.acl", &a, err, sizeof(err)),
	                 TERN_ECONFIG);
	assert_null(a);
	assert_string_equal(err, msg);
}

static void test_anonymous_and_users(void **state)
{
	struct acl *a = parse("# anonymous first\n"
	                      "topic read public/#\n"
	                      "\n"
	                      "user alice\n"
	                      "topic alice/#\n"
	                      "user bob\n"
	                      "topic read bob/x\n"
	                      "user alice\n"
	                      "topic write shared/in\n");

	assert_true(rd(a, NULL, "public/news"));
	assert_false(wr(a, NULL, "public/news"));
	assert_false(rd(a, NULL, "alice/a"));
	/* Anonymous rules are not inherited by named users. */
	assert_false(rd(a, "alice", "public/news"));
	assert_true(rd(a, "alice", "alice/a"));
	assert_true(wr(a, "alice", "alice/a/b"));
	assert_true(wr(a, "alice", "shared/in")); /* second section adds up */
	assert_false(rd(a, "alice", "shared/in"));
	assert_false(rd(a, "alice", "bob/x"));
	assert_true(rd(a, "bob", "bob/x"));
	assert_false(wr(a, "bob", "bob/x"));
	assert_false(rd(a, "carol", "alice/a"));
	/* A user is the username, never the client id. */
	assert_false(may(a, "alice", NULL, "alice/a", ACL_READ));
	assert_false(rd(a, "", "public/news"));
	acl_free(a);
}

static void test_access_words(void **state)
{
	struct acl *a = parse("user u\n"
	                      "topic read r\n"
	                      "topic write w\n"
	                      "topic readwrite rw\n"
	                      "topic both\n"
	                      "topic readwrite with space\n");

	assert_true(rd(a, "u", "r"));
	assert_false(wr(a, "u", "r"));
	assert_false(rd(a, "u", "w"));
	assert_true(wr(a, "u", "w"));
	assert_false(sub(a, "u", "w")); /* write alone grants no subscribe */
	assert_true(rd(a, "u", "rw") && wr(a, "u", "rw"));
	assert_true(rd(a, "u", "both") && wr(a, "u", "both"));
	assert_true(rd(a, "u", "with space"));
	/* Only single access values are answered. */
	assert_false(may(a, "c", "u", "rw", ACL_READ | ACL_WRITE));
	assert_false(may(a, "c", "u", "rw", 0));
	assert_false(acl_check(a, "c", "u", "", 0, ACL_READ));
	assert_false(acl_check(NULL, "c", "u", "rw", 2, ACL_READ));
	acl_free(a);
}

static void test_wildcard_rules(void **state)
{
	struct acl *a = parse("user u\n"
	                      "topic read s/+/temp\n"
	                      "topic read logs/#\n"
	                      "topic write +\n");

	assert_true(rd(a, "u", "s/kitchen/temp"));
	assert_true(rd(a, "u", "s//temp"));
	assert_false(rd(a, "u", "s/a/b/temp"));
	assert_false(rd(a, "u", "s/kitchen"));
	assert_true(rd(a, "u", "logs"));
	assert_true(rd(a, "u", "logs/a/b/c"));
	assert_false(rd(a, "u", "logsx"));
	assert_true(wr(a, "u", "top"));
	assert_false(wr(a, "u", "top/level"));
	acl_free(a);
}

static void test_deny_wins(void **state)
{
	struct acl *a = parse("user u\n"
	                      "topic readwrite #\n"
	                      "topic deny secret/#\n"
	                      "pattern deny %u/private\n"
	                      "topic read secret/open\n");

	assert_true(rd(a, "u", "a/b"));
	assert_false(rd(a, "u", "secret"));
	assert_false(
	        rd(a, "u", "secret/open")); /* deny first, whatever order */
	assert_false(wr(a, "u", "secret/x"));
	assert_false(wr(a, "u", "u/private"));
	assert_true(wr(a, "u", "v/private"));
	/* A filter covered by a deny rule is refused ... */
	assert_false(sub(a, "u", "secret/#"));
	assert_false(sub(a, "u", "secret/+"));
	/* ... one that only overlaps it is accepted: deliveries are checked. */
	assert_true(sub(a, "u", "#"));
	assert_true(sub(a, "u", "+/open"));
	acl_free(a);
}

static void test_patterns(void **state)
{
	struct acl *a = parse("pattern read devices/%c/#\n"
	                      "pattern write users/%u/out\n"
	                      "pattern readwrite mixed/%u/%c\n"
	                      "user alice\n"
	                      "topic read other\n");

	assert_true(may(a, "d1", NULL, "devices/d1/temp", ACL_READ));
	assert_true(may(a, "d1", "alice", "devices/d1", ACL_READ));
	assert_false(may(a, "d1", NULL, "devices/d2/temp", ACL_READ));
	assert_false(may(a, "d1", NULL, "devices/d1/temp", ACL_WRITE));
	assert_true(may(a, "x", "alice", "users/alice/out", ACL_WRITE));
	assert_false(may(a, "x", "alice", "users/bob/out", ACL_WRITE));
	assert_true(may(a, "c7", "bob", "mixed/bob/c7", ACL_WRITE));
	assert_false(may(a, "c7", "bob", "mixed/c7/bob", ACL_WRITE));
	/* Patterns apply inside a user section too, next to its rules. */
	assert_true(may(a, "x", "alice", "other", ACL_READ));
	/* %u never matches anonymous clients, %c never an empty id. */
	assert_false(may(a, "x", NULL, "users//out", ACL_WRITE));
	assert_false(may(a, "x", NULL, "users/%u/out", ACL_WRITE));
	assert_false(may(a, "", NULL, "devices//t", ACL_READ));
	assert_false(may(a, NULL, NULL, "devices/%c/t", ACL_READ));
	assert_false(may(a, "x", "", "users//out", ACL_WRITE));
	/* In a topic line, %c is plain text. */
	acl_free(a);
	a = parse("topic read lit/%c\n");
	assert_true(may(a, "x", NULL, "lit/%c", ACL_READ));
	assert_false(may(a, "x", NULL, "lit/x", ACL_READ));
	acl_free(a);
}

static void test_wildcard_ids_do_not_expand(void **state)
{
	struct acl *a = parse("pattern readwrite %u/#\n"
	                      "pattern readwrite dev/%c\n"
	                      "pattern read in/%c/cmd\n");

	/* Username "#": "%u/#" must not become "#/#" or "#". */
	assert_false(may(a, "x", "#", "any/topic", ACL_READ));
	assert_false(may(a, "x", "#", "#", ACL_READ));
	assert_false(may(a, "x", "#", "#/x", ACL_WRITE));
	assert_false(may(a, "x", "#", "#", ACL_SUBSCRIBE));
	assert_false(may(a, "x", "#", "a/#", ACL_SUBSCRIBE));
	assert_false(may(a, "x", "+", "a/b", ACL_READ));
	assert_false(may(a, "x", "+", "+/#", ACL_SUBSCRIBE));
	assert_false(may(a, "x", "+", "+/x", ACL_WRITE));
	/* Client id "+" or "#": "dev/%c" stays one literal level. */
	assert_false(may(a, "+", NULL, "dev/other", ACL_WRITE));
	assert_false(may(a, "+", NULL, "dev/+", ACL_SUBSCRIBE));
	assert_false(may(a, "#", NULL, "dev/#", ACL_SUBSCRIBE));
	assert_false(may(a, "#", NULL, "dev/a/b", ACL_READ));
	assert_false(may(a, "#", NULL, "in/#", ACL_SUBSCRIBE));
	/* A '/' in the value would span levels: no match either. */
	assert_false(may(a, "a/b", NULL, "dev/a/b", ACL_WRITE));
	assert_false(may(a, "x", "a/b", "a/b/c", ACL_READ));
	/* Nor may a value reach into '$' topics from the first level. */
	assert_false(may(a, "x", "$SYS", "$SYS/broker/uptime", ACL_READ));
	/* Ordinary names still work. */
	assert_true(may(a, "x", "alice", "alice/a/b", ACL_WRITE));
	assert_true(may(a, "x", "alice", "alice/#", ACL_SUBSCRIBE));
	assert_true(may(a, "d-1", NULL, "dev/d-1", ACL_WRITE));
	assert_true(may(a, "d$1", NULL, "dev/d$1", ACL_WRITE));
	acl_free(a);
}

static void test_subscribe_coverage(void **state)
{
	struct acl *a = parse("user u\n"
	                      "topic read a/#\n"
	                      "topic read b/+\n"
	                      "topic read c/d\n"
	                      "topic write w/#\n"
	                      "topic read e/+/f\n");

	assert_true(sub(a, "u", "a/#"));
	assert_true(sub(a, "u", "a/+"));
	assert_true(sub(a, "u", "a/b/c"));
	assert_true(sub(a, "u", "a"));
	assert_true(sub(a, "u", "a/+/#"));
	assert_true(sub(a, "u", "b/+"));
	assert_true(sub(a, "u", "b/x"));
	assert_false(sub(a, "u", "b/#")); /* would match b and b/x/y */
	assert_false(sub(a, "u", "b/+/c"));
	assert_true(sub(a, "u", "c/d"));
	assert_false(sub(a, "u", "c/+"));
	assert_false(sub(a, "u", "c/#"));
	assert_false(sub(a, "u", "#"));
	assert_false(sub(a, "u", "+/d"));
	assert_false(sub(a, "u", "w/#"));
	assert_true(sub(a, "u", "e/+/f"));
	assert_true(sub(a, "u", "e/x/f"));
	assert_false(sub(a, "u", "e/#"));
	assert_false(sub(a, "u", "e/+/+"));
	acl_free(a);
	a = parse("user u\ntopic read a/+\ntopic read a/b\n");
	assert_true(sub(a, "u", "a/+"));
	assert_false(sub(a, "u", "a/#")); /* misses "a" itself */
	acl_free(a);
}

static void test_shared_subscriptions(void **state)
{
	struct acl *a = parse("user u\n"
	                      "topic read jobs/#\n");

	assert_true(sub(a, "u", "$share/g/jobs/#"));
	assert_true(sub(a, "u", "$share/workers/jobs/+"));
	assert_false(sub(a, "u", "$share/g/other"));
	assert_false(sub(a, "u", "$share/g/#"));
	assert_false(sub(a, "u", "$share/g"));
	assert_false(sub(a, "u", "$share/g/"));
	assert_false(sub(a, "u", "$share//jobs/x"));
	assert_false(sub(a, "u", "$share/+/jobs/x"));
	/* READ and WRITE take topic names: no $share stripping there. */
	assert_false(rd(a, "u", "$share/g/jobs/x"));
	acl_free(a);
}

static void test_dollar_topics(void **state)
{
	struct acl *a = parse("user u\n"
	                      "topic readwrite #\n"
	                      "topic read +/broker/#\n"
	                      "user admin\n"
	                      "topic read $SYS/#\n"
	                      "user v\n"
	                      "topic read $SYS/broker/+\n");

	assert_true(rd(a, "u", "any/thing"));
	assert_false(rd(a, "u", "$SYS/broker/uptime"));
	assert_false(wr(a, "u", "$SYS/broker/uptime"));
	assert_false(rd(a, "u", "$other"));
	assert_false(sub(a, "u", "$SYS/#"));
	assert_true(sub(a, "u", "#")); /* "#" itself matches no '$' topics */
	assert_true(sub(a, "u", "+/broker/x"));
	assert_true(rd(a, "admin", "$SYS/broker/uptime"));
	assert_true(sub(a, "admin", "$SYS/#"));
	assert_true(sub(a, "admin", "$SYS/broker/+"));
	assert_false(rd(a, "admin", "other"));
	assert_false(sub(a, "admin", "#"));
	assert_false(sub(a, "admin", "+/broker/uptime"));
	assert_true(sub(a, "v", "$SYS/broker/+"));
	assert_false(sub(a, "v", "$SYS/broker/#"));
	acl_free(a);
}

static void test_empty_denies_all(void **state)
{
	const char *texts[] = {"", "\n\n", "# only comments\n   # indented\n",
	                       "\r\n \t \r\n"};

	for (size_t i = 0; i < sizeof(texts) / sizeof(*texts); i++) {
		struct acl *a = parse(texts[i]);

		assert_false(rd(a, NULL, "a"));
		assert_false(wr(a, "u", "a"));
		assert_false(sub(a, "u", "#"));
		assert_false(rd(a, "u", "$SYS/broker/uptime"));
		acl_free(a);
	}
	acl_free(NULL);
}

static void test_crlf_and_blanks(void **state)
{
	struct acl *a = parse("user  alice \r\n"
	                      "\ttopic   read   a/b  \r\n"
	                      "topic read a b c\r\n");

	assert_true(rd(a, "alice", "a/b"));
	assert_true(rd(a, "alice", "a b c"));
	acl_free(a);
}

static void test_malformed(void **state)
{
	parse_fails("topic a\nfoo bar\n", "t.acl:2: unknown keyword 'foo'");
	parse_fails("\n\ntopic reed a/b\n", "t.acl:3: unknown access 'reed'");
	parse_fails("topic\n", "t.acl:1: missing topic");
	parse_fails("user u\npattern   \n", "t.acl:2: missing topic");
	parse_fails("topic deny\n", "t.acl:1: missing topic after 'deny'");
	parse_fails("user\n", "t.acl:1: user needs a name");
	parse_fails("topic read a/#/b\n",
	            "t.acl:1: invalid topic filter 'a/#/b'");
	parse_fails("topic read a/b+\n",
	            "t.acl:1: invalid topic filter 'a/b+'");
	parse_fails("# x\ntopic read a/x#\n",
	            "t.acl:2: invalid topic filter 'a/x#'");
	parse_fails("pattern read a/x%c\n", "t.acl:1: invalid pattern 'a/x%c'");
	parse_fails("pattern read %u-%c/a\n",
	            "t.acl:1: invalid pattern '%u-%c/a'");
	parse_fails("Topic a\n", "t.acl:1: unknown keyword 'Topic'");
	parse_fails("topic a\r\ntopic READ a\r\n",
	            "t.acl:2: unknown access 'READ'");
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/tern_acl_XXXXXX";
	char err[512] = "";
	struct acl *a = NULL;
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("user u\ntopic read x\nbogus\n", f);
	fclose(f);
	assert_int_equal(acl_load(path, &a, err, sizeof(err)), TERN_ECONFIG);
	assert_null(a);
	{
		char want[600];

		snprintf(want, sizeof(want), "%s:3: unknown keyword 'bogus'",
		         path);
		assert_string_equal(err, want);
	}
	f = fopen(path, "w");
	fputs("user u\ntopic read x\n", f);
	fclose(f);
	assert_int_equal(acl_load(path, &a, err, sizeof(err)), 0);
	assert_true(rd(a, "u", "x"));
	acl_free(a);
	a = NULL;
	f = fopen(path, "w");
	fwrite("topic a\0b\n", 1, 10, f);
	fclose(f);
	assert_int_equal(acl_load(path, &a, err, sizeof(err)), TERN_ECONFIG);
	assert_null(a);
	unlink(path);
	assert_int_equal(acl_load(path, &a, err, sizeof(err)), TERN_ECONFIG);
	assert_null(a);
	assert_non_null(strstr(err, "No such file"));
}

static void test_many_users(void **state)
{
	size_t cap = 2000 * 40, len = 0;
	char *text = malloc(cap);
	struct acl *a;
	char user[32], topic[40];

	assert_non_null(text);
	for (int i = 0; i < 2000; i++)
		len += snprintf(text + len, cap - len,
		                "user u%d\ntopic read t/%d\n", i, i);
	a = parse(text);
	free(text);
	for (int i = 0; i < 2000; i += 37) {
		snprintf(user, sizeof(user), "u%d", i);
		snprintf(topic, sizeof(topic), "t/%d", i);
		assert_true(rd(a, user, topic));
		snprintf(topic, sizeof(topic), "t/%d", i + 1);
		assert_false(rd(a, user, topic));
	}
	assert_false(rd(a, "u2000", "t/2000"));
	acl_free(a);
}

/* Filters and topics for the exhaustive comparison below. */
#define MAX_ITEMS 400

static size_t enumerate(const char *const *lv, size_t nlv, size_t depth,
                        bool filters, char (*out)[32])
{
	size_t n = 0, start = 0, end;

	for (size_t d = 1; d <= depth; d++) {
		end = n;
		for (size_t i = d == 1 ? 0 : start; i < (d == 1 ? 1 : end); i++)
			for (size_t j = 0; j < nlv; j++) {
				const char *prefix = d == 1 ? "" : out[i];

				if (filters && d > 1 && strstr(prefix, "#"))
					continue;
				if (filters && d > 1 && lv[j][0] == '$')
					continue;
				snprintf(out[n++], 32, "%s%s%s", prefix,
				         d == 1 ? "" : "/", lv[j]);
			}
		start = end;
	}
	return n;
}

/*
 * Compares acl_check() with a brute-force answer built on the index's own
 * matcher: READ of a topic must equal subs_topic_matches(rule, topic), and
 * SUBSCRIBE of a filter must hold exactly when every topic the filter
 * matches is matched by the rule (over all topics of up to four levels,
 * enough for filters of three).
 */
static void test_matches_brute_force(void **state)
{
	static const char *const flv[] = {"a", "b", "+", "#", "$x"};
	static const char *const tlv[] = {"a", "b", "c", "$x"};
	static char filters[MAX_ITEMS][32], topics[MAX_ITEMS][32];
	size_t nf = enumerate(flv, 5, 3, true, filters);
	size_t nt = enumerate(tlv, 4, 4, false, topics);
	char text[64];

	assert_int_equal(nf, 69);
	assert_int_equal(nt, 340);
	for (size_t i = 0; i < nf; i++) {
		const char *r = filters[i];
		struct acl *a;

		snprintf(text, sizeof(text), "topic read %s\n", r);
		a = parse(text);
		for (size_t k = 0; k < nt; k++)
			assert_int_equal(rd(a, NULL, topics[k]),
			                 subs_topic_matches(r, strlen(r),
			                                    topics[k],
			                                    strlen(topics[k])));
		for (size_t j = 0; j < nf; j++) {
			const char *f = filters[j];
			bool want = true;

			for (size_t k = 0; k < nt && want; k++)
				if (subs_topic_matches(f, strlen(f), topics[k],
				                       strlen(topics[k])) &&
				    !subs_topic_matches(r, strlen(r), topics[k],
				                        strlen(topics[k])))
					want = false;
			if (sub(a, NULL, f) != want)
				print_error("rule %s filter %s\n", r, f);
			assert_int_equal(sub(a, NULL, f), want);
		}
		acl_free(a);
	}
}

/* Replaces every level "a" of r by "%c". */
static void to_pattern(const char *r, char *out, size_t cap)
{
	size_t n = 0;

	for (const char *p = r; *p && n + 3 < cap; p++) {
		bool whole = *p == 'a' && (p == r || p[-1] == '/') &&
		             (p[1] == '/' || p[1] == '\0');

		n += snprintf(out + n, cap - n, whole ? "%%c" : "%c", *p);
	}
	out[n] = '\0';
}

/* A pattern whose %c levels stand for client id "a" must answer exactly
 * as the plain rule with "a" written out. */
static void test_patterns_brute_force(void **state)
{
	static const char *const flv[] = {"a", "b", "+", "#", "$x"};
	static char filters[MAX_ITEMS][32];
	size_t nf = enumerate(flv, 5, 3, true, filters);
	char text[128], pat[32];

	for (size_t i = 0; i < nf; i++) {
		struct acl *plain, *pattern;

		snprintf(text, sizeof(text), "topic read %.31s\n", filters[i]);
		to_pattern(filters[i], pat, sizeof(pat));
		plain = parse(text);
		snprintf(text, sizeof(text), "pattern read %s\n", pat);
		pattern = parse(text);
		for (size_t j = 0; j < nf; j++) {
			const char *f = filters[j];

			assert_int_equal(
			        may(plain, "a", NULL, f, ACL_SUBSCRIBE),
			        may(pattern, "a", NULL, f, ACL_SUBSCRIBE));
			if (!strpbrk(f, "+#"))
				assert_int_equal(
				        may(plain, "a", NULL, f, ACL_READ),
				        may(pattern, "a", NULL, f, ACL_READ));
		}
		acl_free(plain);
		acl_free(pattern);
	}
}

/* acl_new / acl_add_pattern (the JWT topics claim): the same rules and
 * refusals as `pattern` lines. */
static void test_built_in_code(void **state)
{
	struct acl *a = NULL;

	(void)state;
	assert_int_equal(acl_new(&a), 0);
	assert_false(may(a, "c", "u", "x", ACL_READ));
	assert_int_equal(acl_add_pattern(a, "r/%u/#", 6, ACL_READ), 0);
	assert_int_equal(acl_add_pattern(a, "w/%c", 4, ACL_WRITE), 0);
	assert_int_equal(acl_add_pattern(a, "rw", 2, ACL_READ | ACL_WRITE), 0);
	assert_true(may(a, "c", "u", "r/u/x", ACL_READ));
	assert_true(may(a, "c", "u", "r/u/#", ACL_SUBSCRIBE));
	assert_false(may(a, "c", "u", "r/u/x", ACL_WRITE));
	assert_false(may(a, "c", "#", "r/#", ACL_SUBSCRIBE));
	assert_true(may(a, "c", "u", "w/c", ACL_WRITE));
	assert_false(may(a, "+", "u", "w/+", ACL_WRITE));
	assert_true(may(a, "c", NULL, "rw", ACL_WRITE));
	assert_true(may(a, "c", NULL, "rw", ACL_READ));
	assert_int_equal(acl_add_pattern(a, "a/#/b", 5, ACL_READ), TERN_EINVAL);
	assert_int_equal(acl_add_pattern(a, "x%c", 3, ACL_READ), TERN_EINVAL);
	assert_int_equal(acl_add_pattern(a, "", 0, ACL_READ), TERN_EINVAL);
	assert_int_equal(acl_add_pattern(a, "a\0b", 3, ACL_READ), TERN_EINVAL);
	assert_int_equal(acl_add_pattern(a, "a", 1, 0), TERN_EINVAL);
	assert_int_equal(acl_add_pattern(a, "a", 1, ACL_SUBSCRIBE),
	                 TERN_EINVAL);
	assert_false(may(a, "c", "u", "a", ACL_READ));
	acl_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_anonymous_and_users),
	        cmocka_unit_test(test_access_words),
	        cmocka_unit_test(test_wildcard_rules),
	        cmocka_unit_test(test_deny_wins),
	        cmocka_unit_test(test_patterns),
	        cmocka_unit_test(test_wildcard_ids_do_not_expand),
	        cmocka_unit_test(test_subscribe_coverage),
	        cmocka_unit_test(test_shared_subscriptions),
	        cmocka_unit_test(test_dollar_topics),
	        cmocka_unit_test(test_empty_denies_all),
	        cmocka_unit_test(test_crlf_and_blanks),
	        cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_load_file),
	        cmocka_unit_test(test_many_users),
	        cmocka_unit_test(test_matches_brute_force),
	        cmocka_unit_test(test_patterns_brute_force),
	        cmocka_unit_test(test_built_in_code),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
