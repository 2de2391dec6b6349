/*
 * Tests of base/pwhash.c: hashes written by Debian's mosquitto_passwd parse
 * and verify, new hashes round-trip through the text form, and malformed
 * hash text is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <string.h>

#include "base/error.h"
#include "base/pwhash.h"

/* Made by mosquitto_passwd 2.0.11 for secret. */
#define PBKDF2_HASH                                                            \
	"$7$101$YOlesXlFnIEg6V35$i9yrucQOvXJSZK28mUJqY4mDJe1HH7l4ZUGfxuv6jD+/" \
	"dsQw4/HgGWb73OURclsOT5wCx0xfrVcQG+qSAY6f1w=="
/* Made by mosquitto_passwd -H sha512 for pw2. */
#define SHA512_HASH                                                            \
	"$6$EA9GsKYs5Xsoph0q$iY6g/lyiH9vKSL2jlOyqK9+7XRHXukjcMi5FxdU5QX0rR91m" \
	"j63zE0ksV1+7oJQxIHLFUMuOT+CpyqmpPaDk1w=="

static bool verifies(const struct pwhash *h, const char *pw)
{
	uint8_t got[PWHASH_DIGEST_LEN];

	assert_true(pwhash_compute(h, (const uint8_t *)pw, strlen(pw), got));
	return memcmp(got, h->digest, sizeof(got)) == 0;
}

static void test_mosquitto_hashes(void **state)
{
	struct pwhash h;
	char text[PWHASH_TEXT_MAX];

	assert_true(pwhash_parse(PBKDF2_HASH, strlen(PBKDF2_HASH), &h));
	assert_int_equal(h.type, PWHASH_PBKDF2);
	assert_int_equal(h.iterations, 101);
	assert_int_equal(h.saltlen, 12);
	assert_true(verifies(&h, "secret"));
	assert_false(verifies(&h, "secreT"));
	assert_int_equal(pwhash_format(&h, text, sizeof(text)),
	                 strlen(PBKDF2_HASH));
	assert_string_equal(text, PBKDF2_HASH);

	assert_true(pwhash_parse(SHA512_HASH, strlen(SHA512_HASH), &h));
	assert_int_equal(h.type, PWHASH_SHA512);
	assert_true(verifies(&h, "pw2"));
	assert_false(verifies(&h, "pw"));
	assert_int_equal(pwhash_format(&h, text, sizeof(text)),
	                 strlen(SHA512_HASH));
	assert_string_equal(text, SHA512_HASH);
}

static void test_make_round_trip(void **state)
{
	struct pwhash h, back, other;
	char text[PWHASH_TEXT_MAX];
	int n;

	assert_int_equal(pwhash_make(PWHASH_PBKDF2, 0, "hunter2", &h), 0);
	assert_int_equal(h.iterations, PWHASH_ITERATIONS);
	n = pwhash_format(&h, text, sizeof(text));
	assert_true(n > 0);
	assert_int_equal(strncmp(text, "$7$101$", 7), 0);
	assert_true(pwhash_parse(text, (size_t)n, &back));
	assert_true(verifies(&back, "hunter2"));
	assert_false(verifies(&back, "hunter3"));

	/* A fresh salt each time. */
	assert_int_equal(pwhash_make(PWHASH_PBKDF2, 7, "hunter2", &other), 0);
	assert_int_equal(other.iterations, 7);
	assert_memory_not_equal(other.salt, h.salt, PWHASH_SALT_LEN);

	assert_int_equal(pwhash_make(PWHASH_SHA512, 0, "x", &h), 0);
	n = pwhash_format(&h, text, sizeof(text));
	assert_int_equal(strncmp(text, "$6$", 3), 0);
	assert_true(pwhash_parse(text, (size_t)n, &back));
	assert_true(verifies(&back, "x"));

	assert_int_equal(pwhash_format(&h, text, 10), TERN_ETOOBIG);
	assert_string_equal(text, "");
	assert_int_equal(pwhash_make((enum pwhash_type)5, 0, "x", &h),
	                 TERN_EINVAL);
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {
	        "",
	        "secret",
	        "$7$",
	        "$7$101$",
	        "$7$0$YOlesXlFnIEg6V35$AAAA",
	        "$7$x$YOlesXlFnIEg6V35$AAAA",
	        "$7$101$YOlesXlFnIEg6V35$AAAA", /* short digest */
	        "$7$101$YOles XlFnIEg6V3$AAAA", /* blank in base64 */
	        "$6$EA9GsKYs5Xsoph0q",          /* no digest */
	        "$5$EA9GsKYs5Xsoph0q$AAAA",     /* unknown type */
	        PBKDF2_HASH "$",                /* trailing bytes */
	};
	struct pwhash h;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (pwhash_parse(bad[i], strlen(bad[i]), &h))
			fail_msg("accepted '%s'", bad[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_mosquitto_hashes),
	        cmocka_unit_test(test_make_round_trip),
	        cmocka_unit_test(test_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
