/*
 * Tests of trusted proxy lists (src/net/cidr.c): parsing lists with every
 * separator and the items that must be refused, prefix matching at /0, /32,
 * /128 and bit boundaries inside a byte, IPv4-mapped IPv6 on both sides, and
 * picking the client out of X-Forwarded-For chains: spoofed left-most
 * entries, all-trusted chains, garbage, whitespace, ports and NUL bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "base/error.h"
#include "net/cidr.h"
#include "net/sock.h"

/* Parses text, which must succeed. */
static struct cidr_list list_of(const char *text)
{
	struct cidr_list l;
	char err[64];
	int rc = cidr_list_parse(text, &l, err, sizeof(err));

	if (rc != 0)
		fail_msg("\"%s\": %d at \"%s\"", text, rc, err);
	return l;
}

/* Asserts host matches (want 1) or not (want 0) the list parsed from text. */
static void check_match(const char *text, const char *host, bool want)
{
	struct cidr_list l = list_of(text);
	bool got = cidr_list_match(&l, host);

	cidr_list_free(&l);
	if (got != want)
		fail_msg("\"%s\" in [%s]: %d, want %d", host, text, got, want);
}

/* Runs cidr_xff_client with trusted list text on the C string value. */
static bool xff(const char *trusted, const char *value, char *out)
{
	struct cidr_list l = list_of(trusted);
	bool ok;

	strcpy(out, "untouched");
	ok = cidr_xff_client(&l, value, strlen(value), out, SOCK_ADDRSTRLEN);
	cidr_list_free(&l);
	return ok;
}

static void check_xff(const char *trusted, const char *value, const char *want)
{
	char out[SOCK_ADDRSTRLEN];
	bool ok = xff(trusted, value, out);

	if (!want && ok)
		fail_msg("[%s] \"%s\": got %s, want none", trusted, value, out);
	if (!want) {
		assert_string_equal(out, "untouched");
		return;
	}
	if (!ok)
		fail_msg("[%s] \"%s\": none, want %s", trusted, value, want);
	assert_string_equal(out, want);
}

/* ---- parsing ---- */

static void test_parse_list(void **state)
{
	struct cidr_list l = list_of("127.0.0.1, 10.0.0.0/8 ::1 fd00::/8");

	assert_int_equal(l.n, 4);
	assert_int_equal(l.v[0].family, AF_INET);
	assert_int_equal(l.v[0].bits, 32);
	assert_memory_equal(l.v[0].addr, "\x7f\0\0\x01", 4);
	assert_int_equal(l.v[1].family, AF_INET);
	assert_int_equal(l.v[1].bits, 8);
	assert_int_equal(l.v[1].addr[0], 10);
	assert_int_equal(l.v[2].family, AF_INET6);
	assert_int_equal(l.v[2].bits, 128);
	assert_int_equal(l.v[2].addr[15], 1);
	assert_int_equal(l.v[3].family, AF_INET6);
	assert_int_equal(l.v[3].bits, 8);
	assert_int_equal(l.v[3].addr[0], 0xfd);
	cidr_list_free(&l);
	assert_null(l.v);
	assert_int_equal(l.n, 0);
	cidr_list_free(&l);
	cidr_list_free(NULL);
}

static void test_parse_separators_and_empty(void **state)
{
	struct cidr_list l = list_of(" ,\t1.2.3.4,,5.6.7.8\n,\r\n ::/0 ,");

	assert_int_equal(l.n, 3);
	assert_int_equal(l.v[2].bits, 0);
	cidr_list_free(&l);
	l = list_of("");
	assert_int_equal(l.n, 0);
	assert_null(l.v);
	l = list_of("  , \t,");
	assert_int_equal(l.n, 0);
	assert_int_equal(cidr_list_parse(NULL, &l, NULL, 0), 0);
	assert_int_equal(l.n, 0);
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *text, *item;
	} bad[] = {
	        {"1.2.3.4, bogus", "bogus"},
	        {"10.0.0.0/33", "10.0.0.0/33"},
	        {"::1 ::/129", "::/129"},
	        {"1.2.3.4/", "1.2.3.4/"},
	        {"1.2.3.4/-1", "1.2.3.4/-1"},
	        {"1.2.3.4/+8", "1.2.3.4/+8"},
	        {"1.2.3.4/a", "1.2.3.4/a"},
	        {"1.2.3.4/8/8", "1.2.3.4/8/8"},
	        {"1.2.3.4/0008", "1.2.3.4/0008"},
	        {"/8", "/8"},
	        {"300.1.1.1", "300.1.1.1"},
	        {"1.2.3", "1.2.3"},
	        {"localhost", "localhost"},
	        {"[::1]", "[::1]"},
	        {"1.2.3.4:80", "1.2.3.4:80"},
	        {"fe80::1%lo", "fe80::1%lo"},
	        {"10.0.0.0/8;", "10.0.0.0/8;"},
	        {"1.2.3.4/ 8", "1.2.3.4/"},
	};
	struct cidr_list l;
	char err[64];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		l.v = (struct cidr *)&l;
		l.n = 99;
		assert_int_equal(
		        cidr_list_parse(bad[i].text, &l, err, sizeof(err)),
		        TERN_EINVAL);
		assert_string_equal(err, bad[i].item);
		assert_null(l.v);
		assert_int_equal(l.n, 0);
	}
}

static void test_parse_error_truncated(void **state)
{
	char long_item[300], err[8];
	struct cidr_list l;

	memset(long_item, '1', sizeof(long_item) - 1);
	long_item[sizeof(long_item) - 1] = '\0';
	assert_int_equal(cidr_list_parse(long_item, &l, err, sizeof(err)),
	                 TERN_EINVAL);
	assert_string_equal(err, "1111111");
	assert_int_equal(cidr_list_parse("nope", &l, NULL, 0), TERN_EINVAL);
	assert_int_equal(cidr_list_parse("nope", &l, err, 1), TERN_EINVAL);
	assert_string_equal(err, "");
	/* A good parse clears a stale message. */
	assert_int_equal(cidr_list_parse("1.2.3.4", &l, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	cidr_list_free(&l);
}

/* ---- matching ---- */

static void test_match_hosts(void **state)
{
	check_match("192.0.2.1", "192.0.2.1", true);
	check_match("192.0.2.1", "192.0.2.2", false);
	check_match("192.0.2.1/32", "192.0.2.1", true);
	check_match("192.0.2.1/32", "192.0.2.0", false);
	check_match("2001:db8::1", "2001:db8::1", true);
	check_match("2001:db8::1/128", "2001:DB8:0::1", true);
	check_match("2001:db8::1/128", "2001:db8::2", false);
	check_match("::1", "127.0.0.1", false);
	check_match("127.0.0.1", "::1", false);
}

static void test_match_zero_prefix(void **state)
{
	check_match("0.0.0.0/0", "203.0.113.9", true);
	check_match("0.0.0.0/0", "255.255.255.255", true);
	check_match("0.0.0.0/0", "2001:db8::1", false);
	check_match("::/0", "2001:db8::1", true);
	check_match("::/0", "203.0.113.9", false);
	check_match("::/0", "::ffff:203.0.113.9", false);
	check_match("0.0.0.0/0 ::/0", "::ffff:203.0.113.9", true);
}

static void test_match_prefixes(void **state)
{
	check_match("10.0.0.0/8", "10.255.1.2", true);
	check_match("10.0.0.0/8", "11.0.0.0", false);
	check_match("10.0.0.0/8", "9.255.255.255", false);
	check_match("192.168.1.128/25", "192.168.1.200", true);
	check_match("192.168.1.128/25", "192.168.1.100", false);
	check_match("172.16.0.0/12", "172.31.255.255", true);
	check_match("172.16.0.0/12", "172.32.0.0", false);
	check_match("fd00::/8", "fdff::1", true);
	check_match("fd00::/8", "fe00::1", false);
	check_match("2001:db8::/33", "2001:db8:7fff::1", true);
	check_match("2001:db8::/33", "2001:db8:8000::1", false);
	/* Address bits beyond the prefix are ignored. */
	check_match("10.1.2.3/8", "10.9.9.9", true);
	check_match("fd12:3456::1/16", "fd12::9", true);
	/* Any entry of several may match. */
	check_match("1.1.1.1, 10.0.0.0/8 ::1", "::1", true);
	check_match("1.1.1.1, 10.0.0.0/8 ::1", "10.3.3.3", true);
	check_match("1.1.1.1, 10.0.0.0/8 ::1", "1.1.1.2", false);
}

static void test_match_v4_mapped(void **state)
{
	check_match("10.0.0.0/8", "::ffff:10.1.2.3", true);
	check_match("10.0.0.0/8", "::FFFF:a01:203", true);
	check_match("10.0.0.0/8", "::ffff:11.1.2.3", false);
	check_match("1.2.3.4", "::ffff:1.2.3.4", true);
	check_match("::ffff:1.2.3.4", "1.2.3.4", true);
	check_match("::ffff:10.0.0.0/104", "10.1.2.3", true);
	check_match("::ffff:10.0.0.0/104", "::ffff:10.2.2.2", true);
	check_match("::ffff:10.0.0.0/104", "11.0.0.1", false);
	check_match("::ffff:0.0.0.0/96", "198.51.100.1", true);
	/* Not mapped: IPv4-compatible and NAT64 addresses stay IPv6. */
	check_match("1.2.3.4", "::1.2.3.4", false);
	check_match("1.2.3.4", "64:ff9b::1.2.3.4", false);
}

static void test_match_bad_hosts(void **state)
{
	static const char *const bad[] = {
	        "",         "garbage",  "[::1]",      "1.2.3.4:80", "1.2.3.4 ",
	        " 1.2.3.4", "01.2.3.4", "1.2.3.4/32", "fe80::1%lo",
	};
	struct cidr_list l = list_of("0.0.0.0/0 ::/0");
	struct cidr_list empty = {NULL, 0};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cidr_list_match(&l, bad[i]))
			fail_msg("\"%s\" matched", bad[i]);
	assert_false(cidr_list_match(&l, NULL));
	assert_false(cidr_list_match(&empty, "1.2.3.4"));
	assert_false(cidr_list_match(NULL, "1.2.3.4"));
	cidr_list_free(&l);
}

/* ---- X-Forwarded-For ---- */

static void test_xff_spoofed_left(void **state)
{
	/* The client sent "1.1.1.1"; the trusted proxy appended 2.2.2.2. */
	check_xff("10.0.0.1", "1.1.1.1, 2.2.2.2", "2.2.2.2");
	check_xff("10.0.0.1", "1.1.1.1, 2.2.2.2, 10.0.0.1", "2.2.2.2");
	check_xff("10.0.0.0/8", "spoof, 3.3.3.3, 10.0.0.2, 10.0.0.3",
	          "3.3.3.3");
	check_xff("10.0.0.0/8", "10.9.9.9, 3.3.3.3, 10.0.0.2", "3.3.3.3");
	check_xff("10.0.0.1", "garbage, 1.1.1.1", "1.1.1.1");
	check_xff("10.0.0.1", "unknown, 1.1.1.1", "1.1.1.1");
	check_xff("10.0.0.1", ", 1.1.1.1", "1.1.1.1");
	check_xff("10.0.0.1", "1.1.1.1:80, [::1], 1.1.1.1", "1.1.1.1");
}

static void test_xff_single_and_untrusted_list(void **state)
{
	char out[SOCK_ADDRSTRLEN];

	check_xff("10.0.0.1", "203.0.113.7", "203.0.113.7");
	check_xff("", "1.1.1.1, 2.2.2.2", "2.2.2.2");
	assert_true(cidr_xff_client(NULL, "1.1.1.1, 2.2.2.2", 16, out,
	                            sizeof(out)));
	assert_string_equal(out, "2.2.2.2");
}

static void test_xff_all_trusted(void **state)
{
	check_xff("10.0.0.0/8", "10.0.0.5, 10.0.0.6", "10.0.0.5");
	check_xff("10.0.0.0/8", "10.0.0.5", "10.0.0.5");
	check_xff("0.0.0.0/0 ::/0", "1.1.1.1, ::1, 2.2.2.2", "1.1.1.1");
	/* Garbage reached by the walk still spoils the result. */
	check_xff("10.0.0.0/8", "garbage, 10.0.0.5, 10.0.0.6", NULL);
}

static void test_xff_garbage(void **state)
{
	static const char *const bad[] = {
	        "",
	        "   ",
	        ",",
	        "1.1.1.1,",
	        "1.1.1.1, ",
	        "1.1.1.1, garbage",
	        "1.1.1.1, unknown",
	        "1.1.1.1:4711",
	        "[2001:db8::1]",
	        "[2001:db8::1]:4711",
	        "1.1.1.1 2.2.2.2",
	        "1.1.1.1;2.2.2.2",
	        "01.1.1.1",
	        "1.1.1.1/32",
	        "_hidden",
	        "2001:db8::1%eth0",
	        "1111:2222:3333:4444:5555:6666:7777:8888:9999",
	        "1.1.1.1, 2.2.2.2\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_xff("10.0.0.1", bad[i], NULL);
}

static void test_xff_whitespace(void **state)
{
	check_xff("10.0.0.1", " \t2.2.2.2\t , 10.0.0.1 ", "2.2.2.2");
	check_xff("10.0.0.1", "1.1.1.1,2.2.2.2", "2.2.2.2");
	check_xff("10.0.0.1", "  1.1.1.1  ", "1.1.1.1");
}

static void test_xff_ipv6_forms(void **state)
{
	check_xff("10.0.0.1", "2001:DB8:0:0::1", "2001:db8::1");
	check_xff("10.0.0.1", "::ffff:192.0.2.9", "192.0.2.9");
	check_xff("::ffff:10.0.0.0/104", "1.1.1.1, ::ffff:10.0.0.4", "1.1.1.1");
	check_xff("fd00::/8", "2001:db8::7, fd00::1, fd00::2", "2001:db8::7");
}

static void test_xff_length_and_nul(void **state)
{
	struct cidr_list l = list_of("10.0.0.1");
	char out[SOCK_ADDRSTRLEN], small[8];

	/* Only value[0..len) counts. */
	assert_true(
	        cidr_xff_client(&l, "1.1.1.1, 2.2.2.2", 7, out, sizeof(out)));
	assert_string_equal(out, "1.1.1.1");
	assert_false(cidr_xff_client(&l, "1.1.1.1\0x", 9, out, sizeof(out)));
	assert_false(cidr_xff_client(&l, "1.1.1.1", 0, out, sizeof(out)));
	assert_false(cidr_xff_client(&l, NULL, 0, out, sizeof(out)));
	/* Too small for the answer: false, out untouched. */
	strcpy(small, "keep");
	assert_false(
	        cidr_xff_client(&l, "203.0.113.7", 11, small, sizeof(small)));
	assert_string_equal(small, "keep");
	assert_true(cidr_xff_client(&l, "1.2.3.4", 7, small, sizeof(small)));
	assert_string_equal(small, "1.2.3.4");
	cidr_list_free(&l);
}

static void test_xff_long_chain(void **state)
{
	static char value[20000];
	struct cidr_list l = list_of("10.0.0.0/8");
	char out[SOCK_ADDRSTRLEN];
	size_t n = 0;
	int i;

	n += (size_t)snprintf(value + n, sizeof(value) - n, "198.51.100.4");
	for (i = 0; i < 1000; i++)
		n += (size_t)snprintf(value + n, sizeof(value) - n,
		                      ", 10.0.%d.%d", i / 256, i % 256);
	assert_true(n < sizeof(value) - 1);
	assert_true(cidr_xff_client(&l, value, n, out, sizeof(out)));
	assert_string_equal(out, "198.51.100.4");
	/* One huge entry is refused without being copied. */
	memset(value, '1', sizeof(value));
	assert_false(
	        cidr_xff_client(&l, value, sizeof(value), out, sizeof(out)));
	cidr_list_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_list),
	        cmocka_unit_test(test_parse_separators_and_empty),
	        cmocka_unit_test(test_parse_errors),
	        cmocka_unit_test(test_parse_error_truncated),
	        cmocka_unit_test(test_match_hosts),
	        cmocka_unit_test(test_match_zero_prefix),
	        cmocka_unit_test(test_match_prefixes),
	        cmocka_unit_test(test_match_v4_mapped),
	        cmocka_unit_test(test_match_bad_hosts),
	        cmocka_unit_test(test_xff_spoofed_left),
	        cmocka_unit_test(test_xff_single_and_untrusted_list),
	        cmocka_unit_test(test_xff_all_trusted),
	        cmocka_unit_test(test_xff_garbage),
	        cmocka_unit_test(test_xff_whitespace),
	        cmocka_unit_test(test_xff_ipv6_forms),
	        cmocka_unit_test(test_xff_length_and_nul),
	        cmocka_unit_test(test_xff_long_chain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
