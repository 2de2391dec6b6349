/*
 * Tests for src/base/json.c: the writer escapes and places commas; the
 * reader picks top-level members, decodes escapes (surrogate pairs
 * included), reads bounded integers, and refuses malformed or too deep
 * text.
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

#include "base/error.h"
#include "base/json.h"

static void test_writer(void **state)
{
	struct json_w w;

	json_w_init(&w);
	json_obj_begin(&w, NULL);
	json_str(&w, "a", "x\"y\\\n\x01");
	json_arr_begin(&w, "l");
	json_u64(&w, NULL, 1);
	json_i64(&w, NULL, -2);
	json_bool(&w, NULL, true);
	json_null(&w, NULL);
	json_arr_end(&w);
	json_obj_begin(&w, "o");
	json_obj_end(&w);
	json_str(&w, "n", NULL);
	json_obj_end(&w);
	assert_int_equal(json_w_finish(&w), 0);
	assert_string_equal(w.buf, "{\"a\":\"x\\\"y\\\\\\n\\u0001\","
	                           "\"l\":[1,-2,true,null],\"o\":{},"
	                           "\"n\":null}");
	json_w_free(&w);
}

static void test_reader(void **state)
{
	static const char *const names[] = {"topic", "payload", "qos", "x"};
	const char *t = " {\"topic\": \"a/\\u00e9\\ud83d\\ude00\", \"skip\": "
	                "{\"q\": [1, 2.5e-3, {}]}, \"payload\": \"\", "
	                "\"qos\": 2} ";
	struct json_val v[4];
	char out[64];
	int64_t q;
	int n;

	assert_int_equal(json_object_get(t, strlen(t), names, v, 4), 0);
	assert_int_equal(v[0].type, JSON_STRING);
	n = json_string(&v[0], out, sizeof(out));
	assert_int_equal(n, 2 + 2 + 4);
	assert_memory_equal(out, "a/\xc3\xa9\xf0\x9f\x98\x80", 8);
	assert_int_equal(v[1].type, JSON_STRING);
	assert_int_equal(v[1].len, 0);
	assert_int_equal(json_int(&v[2], 0, 2, &q), 0);
	assert_int_equal(q, 2);
	assert_int_equal(json_int(&v[2], 0, 1, &q), TERN_EINVAL);
	assert_int_equal(v[3].type, JSON_ABSENT);
}

static void test_array_next(void **state)
{
	static const char *const names[] = {"a", "e", "s"};
	const char *t = "{\"a\": [ \"x\" , [1, {\"k\": []}],-3 ,\"\"],"
	                "\"e\": [ ], \"s\": \"[1]\"}";
	struct json_val v[3], el;
	size_t pos = 0;

	assert_int_equal(json_object_get(t, strlen(t), names, v, 3), 0);
	assert_int_equal(json_array_next(&v[0], &pos, &el), 1);
	assert_int_equal(el.type, JSON_STRING);
	assert_memory_equal(el.p, "x", 1);
	assert_int_equal(json_array_next(&v[0], &pos, &el), 1);
	assert_int_equal(el.type, JSON_ARRAY);
	assert_int_equal(el.len, strlen("[1, {\"k\": []}]"));
	assert_int_equal(json_array_next(&v[0], &pos, &el), 1);
	assert_int_equal(el.type, JSON_NUMBER);
	assert_int_equal(el.len, 2);
	assert_int_equal(json_array_next(&v[0], &pos, &el), 1);
	assert_int_equal(el.type, JSON_STRING);
	assert_int_equal(el.len, 0);
	assert_int_equal(json_array_next(&v[0], &pos, &el), 0);
	assert_int_equal(json_array_next(&v[0], &pos, &el), 0);
	pos = 0;
	assert_int_equal(json_array_next(&v[1], &pos, &el), 0);
	pos = 0;
	assert_int_equal(json_array_next(&v[2], &pos, &el), TERN_EMALFORMED);
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {
	        "",
	        "[]",
	        "{",
	        "{\"a\"}",
	        "{\"a\":}",
	        "{\"a\":1,}",
	        "{a:1}",
	        "{\"a\":01}",
	        "{\"a\":1.}",
	        "{\"a\":\"\\x\"}",
	        "{\"a\":tru}",
	        "{} x",
	        "{\"a\":\"\x01\"}",
	        "{\"a\":\"\xff\"}",
	        "{\"a\":\"\\u12\"}",
	};
	const char *names[] = {"a"};
	struct json_val v[1];
	char deep[200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		        json_object_get(bad[i], strlen(bad[i]), names, v, 1),
		        TERN_EMALFORMED);
	memset(deep, '[', sizeof(deep));
	memcpy(deep, "{\"a\":", 5);
	assert_int_equal(json_object_get(deep, sizeof(deep), names, v, 1),
	                 TERN_ETOOBIG);
}

static void test_lone_surrogate(void **state)
{
	const char *t = "{\"a\":\"\\udc00\"}";
	const char *names[] = {"a"};
	struct json_val v[1];
	char out[16];

	assert_int_equal(json_object_get(t, strlen(t), names, v, 1), 0);
	assert_int_equal(json_string(&v[0], out, sizeof(out)), TERN_EMALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_writer),
	        cmocka_unit_test(test_reader),
	        cmocka_unit_test(test_array_next),
	        cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_lone_surrogate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
