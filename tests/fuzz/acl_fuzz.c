/*
 * libFuzzer target for ACL files (src/broker/acl.c: acl_parse, acl_check).
 * Each input is a whole ACL file; its words double as topics, so rules and
 * queries meet. For every parsed file it checks:
 * - an error names the file and a line, and leaves no ACL behind;
 * - a subscription to a filter without wildcards is granted exactly when
 *   reading that topic is (the filter matches that one topic only);
 * - a client id that is empty or holds '/', '+' or '#' never matches %c,
 *   so it gets what a client without an id gets (acl.h);
 * - a username holding '/', '+' or '#' with no `user` section of its own
 *   gets what any other unlisted username gets: wildcards never expand.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "broker/acl.h"
#include "fuzz.h"
#include "mqtt/packet.h"

#define MAX_WORDS 16
/* An unlisted user whose name no input can hold as a topic level. */
#define PLAIN_USER "nobody\x01"

static const char *fixed_topics[] = {
        "a",      "a/b",     "a/b/c",  "$SYS/broker/uptime",
        "$SYS/#", "$x/y",    "#",      "+",
        "a/+",    "a/#",     "+/b",    "alice/x",
        "c1/x",   "x/alice", "x/c1/y", "$share/g/a/#",
        "%c/x",   "%u",      "/",      "a//b",
};
static const char *odd_ids[] = {"", "#", "+", "a/b", "c#", "+x", "/"};
static const char *wild_users[] = {"#", "+", "a/#", "+/+", "/"};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Whether the text has a `user NAME` line for exactly `name` (acl.c trims
 * blanks around lines and words the same way). */
static bool has_section(const char *text, const char *name)
{
	size_t nlen = strlen(name);

	for (const char *p = text; p && *p;) {
		const char *eol = strchr(p, '\n');
		const char *end = eol ? eol : p + strlen(p);

		while (p < end && is_blank(*p))
			p++;
		while (end > p && is_blank(end[-1]))
			end--;
		if (end - p > 4 && memcmp(p, "user", 4) == 0 &&
		    is_blank(p[4])) {
			p += 4;
			while (p < end && is_blank(*p))
				p++;
			if ((size_t)(end - p) == nlen &&
			    memcmp(p, name, nlen) == 0)
				return true;
		}
		p = eol ? eol + 1 : NULL;
	}
	return false;
}

/* Splits a copy of text into blank- or line-separated words. */
static size_t split_words(char *copy, char **words)
{
	size_t n = 0;

	for (char *tok = strtok(copy, " \t\r\n"); tok && n < MAX_WORDS;
	     tok = strtok(NULL, " \t\r\n"))
		words[n++] = tok;
	return n;
}

static bool check(const struct acl *a, const char *id, const char *user,
                  const char *t, int access)
{
	return acl_check(a, id, user, t, strlen(t), access);
}

static void query(const struct acl *a, const char *t, const bool *user_ok)
{
	size_t len = strlen(t);
	bool name = mqtt_topic_name_check((const uint8_t *)t, len) == 0;
	bool filter = mqtt_topic_filter_check((const uint8_t *)t, len) == 0;
	static const int kinds[] = {ACL_READ, ACL_WRITE, ACL_SUBSCRIBE};

	if (name && filter && strncmp(t, "$share/", 7) != 0)
		for (size_t u = 0; u < 3; u++) {
			const char *user = u == 0   ? NULL
			                   : u == 1 ? "alice"
			                            : "c1";

			CHECK(check(a, "c1", user, t, ACL_SUBSCRIBE) ==
			      check(a, "c1", user, t, ACL_READ));
		}
	for (size_t k = 0; k < 3; k++) {
		int acc = kinds[k];
		bool want;

		if (acc == ACL_SUBSCRIBE ? !filter : !name)
			continue;
		want = check(a, NULL, "alice", t, acc);
		for (size_t i = 0; i < sizeof(odd_ids) / sizeof(*odd_ids); i++)
			CHECK(check(a, odd_ids[i], "alice", t, acc) == want);
		if (strstr(t, PLAIN_USER))
			continue;
		want = check(a, "c1", PLAIN_USER, t, acc);
		for (size_t i = 0; i < sizeof(wild_users) / sizeof(*wild_users);
		     i++)
			if (user_ok[i])
				CHECK(check(a, "c1", wild_users[i], t, acc) ==
				      want);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct acl *a = NULL;
	char err[256], *text, *copy = NULL, *words[MAX_WORDS];
	bool user_ok[sizeof(wild_users) / sizeof(*wild_users)];
	size_t nwords, i;
	int rc;

	if (!(text = malloc(size + 1)))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (strlen(text) != size)
		goto out; /* acl_load refuses NUL bytes before parsing */

	rc = acl_parse(text, "fuzz", &a, err, sizeof(err));
	if (rc != 0) {
		CHECK(a == NULL);
		CHECK(rc == TERN_ECONFIG);
		CHECK(strncmp(err, "fuzz:", 5) == 0);
		goto out;
	}
	if (has_section(text, PLAIN_USER))
		goto out;
	for (i = 0; i < sizeof(wild_users) / sizeof(*wild_users); i++)
		user_ok[i] = !has_section(text, wild_users[i]);
	for (i = 0; i < sizeof(fixed_topics) / sizeof(*fixed_topics); i++)
		query(a, fixed_topics[i], user_ok);
	if (!(copy = strdup(text)))
		goto out;
	nwords = split_words(copy, words);
	for (i = 0; i < nwords; i++)
		query(a, words[i], user_ok);
out:
	free(copy);
	acl_free(a);
	free(text);
	return 0;
}
