/*
 * Tests for src/base/utf8.c: well-formed UTF-8 of every sequence length is
 * accepted; overlongs, surrogates, code points above U+10FFFF, truncated
 * and stray bytes are refused; U+0000 is refused only by the MQTT check.
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
#include "base/utf8.h"

#define CHECK(expect, ...)                                                     \
	do {                                                                   \
		const uint8_t b_[] = {__VA_ARGS__};                            \
		assert_int_equal(utf8_check_mqtt(b_, sizeof(b_)), (expect));   \
	} while (0)

static void test_valid(void **state)
{
	const char *s = "a/b \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";

	assert_int_equal(utf8_check_mqtt((const uint8_t *)s, strlen(s)), 0);
	assert_int_equal(utf8_check_mqtt(NULL, 0), 0);
	CHECK(0, 0x7F);
	CHECK(0, 0xC2, 0x80);             /* U+0080, smallest 2-byte */
	CHECK(0, 0xDF, 0xBF);             /* U+07FF */
	CHECK(0, 0xE0, 0xA0, 0x80);       /* U+0800, smallest 3-byte */
	CHECK(0, 0xED, 0x9F, 0xBF);       /* U+D7FF, just below surrogates */
	CHECK(0, 0xEE, 0x80, 0x80);       /* U+E000, just above */
	CHECK(0, 0xEF, 0xBF, 0xBF);       /* U+FFFF, a non-character: ok */
	CHECK(0, 0xF0, 0x90, 0x80, 0x80); /* U+10000 */
	CHECK(0, 0xF4, 0x8F, 0xBF, 0xBF); /* U+10FFFF, the last */
}

static void test_nul(void **state)
{
	const uint8_t b[] = {'a', 0, 'b'};

	assert_int_equal(utf8_check_mqtt(b, sizeof(b)), TERN_EUTF8);
	assert_int_equal(utf8_check(b, sizeof(b)), 0);
	/* An overlong NUL is refused by both. */
	CHECK(TERN_EUTF8, 0xC0, 0x80);
	assert_int_equal(utf8_check((const uint8_t *)"\xC0\x80", 2),
	                 TERN_EUTF8);
}

static void test_overlong(void **state)
{
	CHECK(TERN_EUTF8, 0xC1, 0xBF);
	CHECK(TERN_EUTF8, 0xE0, 0x9F, 0xBF);
	CHECK(TERN_EUTF8, 0xF0, 0x8F, 0xBF, 0xBF);
	CHECK(TERN_EUTF8, 0xE0, 0x80, 0xAF); /* overlong '/' */
}

static void test_surrogates_and_range(void **state)
{
	CHECK(TERN_EUTF8, 0xED, 0xA0, 0x80);       /* U+D800 */
	CHECK(TERN_EUTF8, 0xED, 0xBF, 0xBF);       /* U+DFFF */
	CHECK(TERN_EUTF8, 0xF4, 0x90, 0x80, 0x80); /* U+110000 */
	CHECK(TERN_EUTF8, 0xF5, 0x80, 0x80, 0x80);
	CHECK(TERN_EUTF8, 0xFF);
	CHECK(TERN_EUTF8, 0xFE);
}

static void test_truncated_and_stray(void **state)
{
	CHECK(TERN_EUTF8, 0x80); /* stray continuation */
	CHECK(TERN_EUTF8, 'a', 0xBF);
	CHECK(TERN_EUTF8, 0xC3); /* cut short */
	CHECK(TERN_EUTF8, 0xE2, 0x82);
	CHECK(TERN_EUTF8, 0xF0, 0x9F, 0x98);
	CHECK(TERN_EUTF8, 0xC3, 'a'); /* bad continuation */
	CHECK(TERN_EUTF8, 0xE2, 0x82, 'a');
	CHECK(TERN_EUTF8, 0xF0, 0x9F, 0x98, 0xC0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_valid),
	        cmocka_unit_test(test_nul),
	        cmocka_unit_test(test_overlong),
	        cmocka_unit_test(test_surrogates_and_range),
	        cmocka_unit_test(test_truncated_and_stray),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
