/*
 * Tests for src/client/url.c: the four schemes with their default ports
 * and paths, user info with percent escapes, IPv6 literals, queries, and
 * the URLs that must be refused.
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
#include "client/url.h"

static void test_schemes_and_defaults(void **state)
{
	struct url u;

	(void)state;
	assert_int_equal(url_parse("mqtt://broker", &u), 0);
	assert_int_equal(u.scheme, URL_MQTT);
	assert_false(u.tls);
	assert_false(u.ws);
	assert_string_equal(u.host, "broker");
	assert_int_equal(u.port, 1883);
	assert_int_equal(url_parse("MQTTS://broker", &u), 0);
	assert_true(u.tls);
	assert_int_equal(u.port, 8883);
	assert_int_equal(url_parse("ws://broker", &u), 0);
	assert_true(u.ws);
	assert_false(u.tls);
	assert_int_equal(u.port, 80);
	assert_string_equal(u.path, "/mqtt");
	assert_int_equal(url_parse("wss://broker:8084/x/y?a=b", &u), 0);
	assert_true(u.ws && u.tls);
	assert_int_equal(u.port, 8084);
	assert_string_equal(u.path, "/x/y?a=b");
	assert_int_equal(url_parse("ws://b?q=1", &u), 0);
	assert_string_equal(u.path, "/mqtt?q=1");
	assert_int_equal(url_parse("ws://b/", &u), 0);
	assert_string_equal(u.path, "/");
	assert_int_equal(url_parse("mqtt://b:1/", &u), 0);
	assert_int_equal(u.port, 1);
}

static void test_userinfo(void **state)
{
	struct url u;

	(void)state;
	assert_int_equal(url_parse("mqtt://alice:s%40cret@h:1884", &u), 0);
	assert_true(u.has_user && u.has_pass);
	assert_string_equal(u.user, "alice");
	assert_string_equal(u.pass, "s@cret");
	assert_string_equal(u.host, "h");
	assert_int_equal(u.port, 1884);
	assert_int_equal(url_parse("ws://bob@h/mqtt", &u), 0);
	assert_true(u.has_user);
	assert_false(u.has_pass);
	assert_string_equal(u.user, "bob");
	/* The last '@' ends the user info. */
	assert_int_equal(url_parse("mqtt://u:p@ss@h", &u), 0);
	assert_string_equal(u.pass, "p@ss");
	assert_string_equal(u.host, "h");
	assert_int_equal(url_parse("mqtt://u:%zz@h", &u), TERN_EINVAL);
	assert_int_equal(url_parse("mqtt://u:%4@h", &u), TERN_EINVAL);
	assert_int_equal(url_parse("mqtt://u:%00@h", &u), TERN_EINVAL);
}

static void test_ipv6(void **state)
{
	struct url u;

	(void)state;
	assert_int_equal(url_parse("wss://[::1]:8084/mqtt", &u), 0);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 8084);
	assert_int_equal(url_parse("mqtt://[fe80::1]", &u), 0);
	assert_string_equal(u.host, "fe80::1");
	assert_int_equal(u.port, 1883);
	assert_int_equal(url_parse("mqtt://[::1", &u), TERN_EINVAL);
	assert_int_equal(url_parse("mqtt://[]:1", &u), TERN_EINVAL);
	assert_int_equal(url_parse("mqtt://[::1]x", &u), TERN_EINVAL);
}

static void test_refused(void **state)
{
	static const char *bad[] = {
	        "http://h",       "mqtt:/h",      "mqtt://",
	        "mqtt://:1883",   "mqtt://h:",    "mqtt://h:0",
	        "mqtt://h:65536", "mqtt://h:12a", "mqtt://h:123456",
	        "mqtt://h/path",  "mqtts://h/x",  "ws://h /mqtt",
	        "ws://h/mq\ttt",  "broker:1883",  "",
	};
	struct url u;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = url_parse(bad[i], &u);

		if (rc != TERN_EINVAL)
			fail_msg("'%s': rc %d, want %d", bad[i], rc,
			         TERN_EINVAL);
	}
}

static void test_too_long(void **state)
{
	char s[1200];
	struct url u;

	(void)state;
	memset(s, 'a', sizeof(s));
	memcpy(s, "mqtt://", 7);
	s[300] = '\0';
	assert_int_equal(url_parse(s, &u), TERN_ETOOBIG);
	memcpy(s, "ws://h/", 7);
	s[300] = 'a';
	s[sizeof(s) - 1] = '\0';
	assert_int_equal(url_parse(s, &u), TERN_ETOOBIG);
	assert_int_equal(url_default_port(URL_WSS), 443);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_schemes_and_defaults),
	        cmocka_unit_test(test_userinfo),
	        cmocka_unit_test(test_ipv6),
	        cmocka_unit_test(test_refused),
	        cmocka_unit_test(test_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
