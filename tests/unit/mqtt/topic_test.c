/*
 * Tests for src/mqtt/topic.c: topic name and topic filter rules, shared
 * subscription splitting, and bounded work on very long topics.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdlib.h>
#include <string.h>

#include "mqtt/packet.h"

static int name(const char *s)
{
	return mqtt_topic_name_check((const uint8_t *)s, strlen(s));
}

static int filter(const char *s)
{
	return mqtt_topic_filter_check((const uint8_t *)s, strlen(s));
}

static void test_names(void **state)
{
	assert_int_equal(name("a"), 0);
	assert_int_equal(name("a/b/c"), 0);
	assert_int_equal(name("/"), 0);
	assert_int_equal(name("$SYS/broker"), 0);
	assert_int_equal(name("$other"), 0);
	assert_int_equal(name("a b/\xC3\xA9"), 0);
	assert_int_equal(name(""), TERN_EPROTO);
	assert_int_equal(name("a/+"), TERN_EPROTO);
	assert_int_equal(name("a/#"), TERN_EPROTO);
	assert_int_equal(name("a+b"), TERN_EPROTO);
	assert_int_equal(name("\xED\xA0\x80"), TERN_EUTF8);
	assert_int_equal(mqtt_topic_name_check((const uint8_t *)"a\0b", 3),
	                 TERN_EUTF8);
}

static void test_filters(void **state)
{
	const char *good[] = {"#",          "+",
	                      "a/#",        "a/+/b",
	                      "+/+",        "/#",
	                      "a//b",       "+/#",
	                      "$SYS/#",     "a/b/",
	                      "$share",     "$sharex/a",
	                      "$share/g/#", "$share/g/a/+/c",
	                      "$share/g//"};
	const char *bad[] = {"",
	                     "a/#/b",
	                     "a#",
	                     "a+/b",
	                     "a/b+",
	                     "##",
	                     "#/",
	                     "a/+b",
	                     "$share/x",
	                     "$share/a+b/t",
	                     "$share//t",
	                     "$share/g/",
	                     "$share/a#/t",
	                     "$share/g/a#",
	                     "$share/"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		print_message("good filter %s\n", good[i]);
		assert_int_equal(filter(good[i]), 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("bad filter %s\n", bad[i]);
		assert_int_equal(filter(bad[i]), TERN_EPROTO);
	}
	assert_int_equal(filter("a/\xC0\xAF"), TERN_EUTF8);
	assert_int_equal(mqtt_topic_filter_check((const uint8_t *)"a\0", 2),
	                 TERN_EUTF8);
}

static void test_share_split(void **state)
{
	struct mqtt_str g, f;
	const char *s = "$share/grp/a/b/#";

	assert_int_equal(
	        mqtt_share_split((const uint8_t *)s, strlen(s), &g, &f), 1);
	assert_int_equal(g.len, 3);
	assert_memory_equal(g.p, "grp", 3);
	assert_int_equal(f.len, 5);
	assert_memory_equal(f.p, "a/b/#", 5);
	assert_int_equal(mqtt_share_split((const uint8_t *)"a/b", 3, &g, &f),
	                 0);
	assert_int_equal(mqtt_share_split((const uint8_t *)"$share", 6, &g, &f),
	                 0);
	assert_int_equal(
	        mqtt_share_split((const uint8_t *)"$share/x", 8, &g, &f),
	        TERN_EPROTO);
	assert_int_equal(
	        mqtt_share_split((const uint8_t *)"$share//t", 9, &g, &f),
	        TERN_EPROTO);
}

/* 65,535 '/' is a valid name and filter (66,536 empty levels). */
static void test_long_topics(void **state)
{
	size_t n = 65535;
	uint8_t *s = malloc(n);

	assert_non_null(s);
	memset(s, '/', n);
	assert_int_equal(mqtt_topic_name_check(s, n), 0);
	assert_int_equal(mqtt_topic_filter_check(s, n), 0);
	s[n - 1] = '#';
	assert_int_equal(mqtt_topic_filter_check(s, n), 0);
	s[0] = '#';
	assert_int_equal(mqtt_topic_filter_check(s, n), TERN_EPROTO);
	memset(s, '+', n);
	assert_int_equal(mqtt_topic_filter_check(s, n), TERN_EPROTO);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_names),
	        cmocka_unit_test(test_filters),
	        cmocka_unit_test(test_share_split),
	        cmocka_unit_test(test_long_topics),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
