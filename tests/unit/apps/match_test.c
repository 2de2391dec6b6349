/*
 * Tests for apps/tern/match.c, the topic filter matching of `tern sub -T`:
 * exact levels, '+' and '#' (including "a/#" matching "a"), empty levels,
 * and '$' topics that wildcards at the first level do not match.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include "match.h"

static const struct {
	const char *filter;
	const char *topic;
	bool match;
} cases[] = {
        {"a/b", "a/b", true},       {"a/b", "a/c", false},
        {"a/b", "a/b/c", false},    {"a/b/c", "a/b", false},
        {"a/+", "a/b", true},       {"a/+", "a/b/c", false},
        {"a/+", "a/", true},        {"+/+", "/", true},
        {"+", "a", true},           {"+", "", true},
        {"a/+/c", "a/x/c", true},   {"a/+/c", "a/x/d", false},
        {"#", "a/b/c", true},       {"a/#", "a", true},
        {"a/#", "a/b/c", true},     {"a/#", "ab", false},
        {"a/b/#", "a/c", false},    {"#", "$SYS/x", false},
        {"+/x", "$SYS/x", false},   {"$SYS/#", "$SYS/x", true},
        {"$SYS/+", "$SYS/x", true}, {"a/b", "a/bc", false},
        {"ab", "a", false},         {"/a", "/a", true},
};

static void test_cases(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (match_topic(cases[i].filter, cases[i].topic,
		                strlen(cases[i].topic)) != cases[i].match)
			fail_msg("filter '%s' topic '%s': got %d, want %d",
			         cases[i].filter, cases[i].topic,
			         !cases[i].match, cases[i].match);
}

/* The topic is a length, not a C string: bytes past it do not count. */
static void test_length_bounded(void **state)
{
	assert_true(match_topic("a/b", "a/bXYZ", 3));
	assert_false(match_topic("a/b/c", "a/b/c", 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cases),
	        cmocka_unit_test(test_length_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
