/*
 * Tests for apps/tern/format.c, the `tern sub -F` formatter, as the pure
 * function it is: every % conversion with and without a property present,
 * Mosquitto's flags, width and maximum width, @ time fields and \ escapes
 * (TZ=UTC), bad format strings, JSON output (escaping, properties, payloads
 * that are JSON, text or binary) and the JSON validator behind %J.
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
#include <time.h>

#include "base/error.h"
#include "format.h"

/* 2023-11-14T22:13:20.123456789Z */
static const struct timespec WHEN = {1700000000, 123456789};

static struct fmt_msg plain(const char *topic, const char *payload)
{
	return (struct fmt_msg){.topic = topic,
	                        .topic_len = strlen(topic),
	                        .payload = (const uint8_t *)payload,
	                        .payload_len = strlen(payload),
	                        .when = WHEN};
}

/* Renders fmt for m and compares with want (want_len bytes). */
static void expect_n(const char *fmt, const struct fmt_msg *m, const char *want,
                     size_t want_len)
{
	struct fmt_buf b = {0};
	char err[128] = "";

	assert_int_equal(fmt_render(fmt, m, &b, err, sizeof(err)), 0);
	if (b.len != want_len || memcmp(b.data, want, want_len) != 0)
		fail_msg("format '%s': got '%.*s', want '%s'", fmt, (int)b.len,
		         b.data ? b.data : "", want);
	fmt_buf_free(&b);
}

/* For wanted output with NUL bytes in it: the literal's own length. */
#define EXPECT_BYTES(fmt, m, lit) expect_n((fmt), (m), (lit), sizeof(lit) - 1)

static void expect(const char *fmt, const struct fmt_msg *m, const char *want)
{
	expect_n(fmt, m, want, strlen(want));
}

static void expect_error(const char *fmt, const char *msg)
{
	char err[128] = "";

	assert_int_equal(fmt_check(fmt, err, sizeof(err)), TERN_EINVAL);
	if (!strstr(err, msg))
		fail_msg("format '%s': error '%s', want '%s'", fmt, err, msg);
}

static int utc(void **state)
{
	setenv("TZ", "UTC", 1);
	tzset();
	return 0;
}

static void test_message_fields(void **state)
{
	struct fmt_msg m = plain("a/b", "hi\xff");

	m.qos = 2;
	m.retain = true;
	m.mid = 42;
	expect("%t|%p|%l|%q|%r|%m", &m, "a/b|hi\xff|3|2|1|42");
	expect("%x %X", &m, "6869ff 6869FF");
	expect("%U", &m, "1700000000.123456789");
	expect("%I", &m, "2023-11-14T22:13:20+0000");
	expect("100%%", &m, "100%");
	m.retain = false;
	m.qos = 0;
	expect("%r%q", &m, "00");
}

static void test_v5_properties(void **state)
{
	static const struct fmt_kv kv[] = {{"k", 1, "v", 1},
	                                   {"k", 1, "w 2", 3}};
	static const uint32_t ids[] = {7, 300};
	struct fmt_msg m = plain("t", "p");

	/* Absent properties print nothing. */
	expect("[%C][%D][%E][%F][%A][%R][%S][%P]", &m, "[][][][][][][][]");
	m.content_type = "text/plain";
	m.content_type_len = 10;
	m.correlation = (const uint8_t *)"c\0d";
	m.correlation_len = 3;
	m.has_expiry = true;
	m.expiry = 60;
	m.has_pfi = true;
	m.pfi = 1;
	m.has_alias = true;
	m.alias = 5;
	m.response_topic = "r/t";
	m.response_topic_len = 3;
	m.sub_ids = ids;
	m.n_sub_ids = 2;
	m.user_props = kv;
	m.n_user_props = 2;
	EXPECT_BYTES("%C|%D|%E|%F|%A|%R|%S|%P", &m,
	             "text/plain|c\0d|60|1|5|r/t|7,300|k:v k:w 2");
}

static void test_width_and_flags(void **state)
{
	struct fmt_msg m = plain("topic", "ab");

	m.mid = 7;
	expect("[%8t]", &m, "[   topic]");
	expect("[%-8t]", &m, "[topic   ]");
	expect("[%.3t]", &m, "[top]");
	expect("[%6.2t]", &m, "[    to]");
	expect("[%3t]", &m, "[topic]");
	expect("[%05l]", &m, "[00002]");
	expect("[%-05l]", &m, "[2    ]"); /* '-' wins over '0' */
	expect("[%03m]", &m, "[007]");
	expect("[%08x]", &m, "[00006162]");
	expect("[%05p]", &m, "[   ab]"); /* no zero padding for %p */
	expect("[%.1p]", &m, "[ab]");    /* no maximum width for %p */
	expect("[%5q]", &m, "[0]");      /* no width for %q */
}

static void test_time_and_escapes(void **state)
{
	struct fmt_msg m = plain("t", "");

	expect("@Y-@m-@d @H:@M:@S @N @@", &m,
	       "2023-11-14 22:13:20 123456789 @");
	EXPECT_BYTES("a\\tb\\nc\\\\d\\0e\\e\\a\\r\\v", &m,
	             "a\tb\nc\\d\0e\033\a\r\v");
}

static void test_bad_formats(void **state)
{
	expect_error("%z", "unknown format field '%z'");
	expect_error("abc%", "unfinished '%'");
	expect_error("%-08", "unfinished '%'");
	expect_error("x@", "unfinished '@'");
	expect_error("\\q", "unknown escape '\\q'");
	expect_error("\\", "unfinished '\\'");
	assert_int_equal(fmt_check("%t %p @Y \\n %10.5t %%", NULL, 0), 0);
}

static void test_json_basic(void **state)
{
	struct fmt_msg m = plain("a/\"b\"", "say \"hi\"\n\x01");

	m.qos = 1;
	m.mid = 9;
	expect("%j", &m,
	       "{\"tst\":\"2023-11-14T22:13:20.123456+00:00\","
	       "\"topic\":\"a/\\\"b\\\"\",\"qos\":1,\"retain\":0,"
	       "\"payloadlen\":10,\"mid\":9,"
	       "\"payload\":\"say \\\"hi\\\"\\n\\u0001\"}");
	m.qos = 0;
	m.payload = (const uint8_t *)"";
	m.payload_len = 0;
	expect("%j", &m,
	       "{\"tst\":\"2023-11-14T22:13:20.123456+00:00\","
	       "\"topic\":\"a/\\\"b\\\"\",\"qos\":0,\"retain\":0,"
	       "\"payloadlen\":0,\"payload\":\"\"}");
}

static void test_json_payloads(void **state)
{
	static const struct fmt_kv kv[] = {{"k", 1, "v", 1}};
	struct fmt_msg m = plain("t", " {\"x\": [1, 2.5e-3, true, null]} ");
	struct fmt_buf b = {0};

	m.content_type = "application/json";
	m.content_type_len = 16;
	m.user_props = kv;
	m.n_user_props = 1;
	m.correlation = (const uint8_t *)"\xff\x01";
	m.correlation_len = 2;
	assert_int_equal(fmt_json(&m, true, &b), 0);
	assert_string_equal(
	        b.data,
	        "{\"tst\":\"2023-11-14T22:13:20.123456+00:00\",\"topic\":\"t\","
	        "\"qos\":0,\"retain\":0,\"payloadlen\":32,\"properties\":{"
	        "\"content-type\":\"application/json\",\"user-properties\":{"
	        "\"k\":\"v\"},\"correlation-data-hex\":\"ff01\"},"
	        "\"payload\": {\"x\": [1, 2.5e-3, true, null]} }");
	fmt_buf_free(&b);
	/* %J falls back to a string for text, and to hex for bytes. */
	m = plain("t", "not json");
	expect("%J", &m,
	       "{\"tst\":\"2023-11-14T22:13:20.123456+00:00\",\"topic\":\"t\","
	       "\"qos\":0,\"retain\":0,\"payloadlen\":8,"
	       "\"payload\":\"not json\"}");
	m = plain("t", "\x80\x81");
	expect("%J", &m,
	       "{\"tst\":\"2023-11-14T22:13:20.123456+00:00\",\"topic\":\"t\","
	       "\"qos\":0,\"retain\":0,\"payloadlen\":2,"
	       "\"payload_hex\":\"8081\"}");
}

static bool valid(const char *s)
{
	return fmt_json_valid((const uint8_t *)s, strlen(s));
}

static void test_json_validator(void **state)
{
	static const char *const good[] = {
	        "0",    "-0.5e+10", "\"\\u00e9\\n\"",
	        "[]",   "{}",       " [1,{\"a\":[]}] ",
	        "null", "true",     "{\"a\":{\"b\":\"\xc3\xa9\"}}",
	};
	static const char *const bad[] = {
	        "",
	        "01",
	        "1.",
	        "-",
	        "[1,]",
	        "{\"a\"}",
	        "{a:1}",
	        "\"\\x\"",
	        "\"a",
	        "[1] 2",
	        "tru",
	        "\"\x01\"",
	        "\"\\u12g4\"",
	        "nul",
	        "{\"a\":1,}",
	        "\xff",
	        "[\"\xc0\xaf\"]",
	};
	char deep[2000];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!valid(good[i]))
			fail_msg("refused valid JSON '%s'", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (valid(bad[i]))
			fail_msg("accepted invalid JSON '%s'", bad[i]);
	/* Nesting is bounded: 999 levels are refused, not a stack crash;
	 * 200 are fine. */
	memset(deep, '[', 999);
	memset(deep + 999, ']', 999);
	deep[1998] = '\0';
	assert_false(valid(deep));
	memset(deep, '[', 200);
	memset(deep + 200, ']', 200);
	deep[400] = '\0';
	assert_true(valid(deep));
	assert_false(fmt_json_valid((const uint8_t *)"1\0", 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_message_fields),
	        cmocka_unit_test(test_v5_properties),
	        cmocka_unit_test(test_width_and_flags),
	        cmocka_unit_test(test_time_and_escapes),
	        cmocka_unit_test(test_bad_formats),
	        cmocka_unit_test(test_json_basic),
	        cmocka_unit_test(test_json_payloads),
	        cmocka_unit_test(test_json_validator),
	};

	return cmocka_run_group_tests(tests, utc, NULL);
}
