/*
 * Tests of the PROXY protocol parser (src/net/proxy.c): v1 TCP4, TCP6 and
 * UNKNOWN lines and the ways a line can break the grammar (ports, addresses,
 * spacing, CR/LF, the 107-byte limit); v2 PROXY and LOCAL commands over
 * INET, INET6, UNIX and UNSPEC, with and without TLVs, wrong version,
 * command, family and length fields; every strict prefix of a valid header
 * asking for more bytes; and proxy_maybe telling PROXY from plain MQTT.
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
#include "net/proxy.h"

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Parses a C string; asserts that a failure leaves out untouched. */
static int parse_str(const char *s, struct proxy_info *out)
{
	struct proxy_info before;
	int rc;

	memset(out, 0x5a, sizeof(*out));
	before = *out;
	rc = proxy_parse((const uint8_t *)s, strlen(s), out);
	if (rc <= 0)
		assert_memory_equal(out, &before, sizeof(before));
	return rc;
}

/* Asserts every strict prefix of buf[0..n) asks for more bytes. */
static void assert_prefixes_eagain(const uint8_t *buf, size_t n)
{
	struct proxy_info pi;
	size_t k;

	for (k = 0; k < n; k++) {
		int rc = proxy_parse(buf, k, &pi);
		if (rc != TERN_EAGAIN)
			fail_msg("prefix of %zu/%zu bytes: %d", k, n, rc);
		assert_int_equal(proxy_maybe(buf, k), 1);
	}
}

/* ---- version 1 ---- */

static void test_v1_tcp4(void **state)
{
	const char *s = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
	char wire[128];
	struct proxy_info pi;

	/* The MQTT bytes that follow are left for the caller. */
	snprintf(wire, sizeof(wire), "%s%s", s, "\x10\x0c\x00\x04MQTT");
	assert_int_equal(parse_str(wire, &pi), (int)strlen(s));
	assert_false(pi.local);
	assert_int_equal(pi.family, AF_INET);
	assert_string_equal(pi.src_host, "192.168.0.1");
	assert_int_equal(pi.src_port, 56324);
	assert_string_equal(pi.dst_host, "192.168.0.11");
	assert_int_equal(pi.dst_port, 443);
	assert_prefixes_eagain((const uint8_t *)s, strlen(s));
}

static void test_v1_tcp6(void **state)
{
	const char *s = "PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 0 65535\r\n";
	struct proxy_info pi;

	assert_int_equal(parse_str(s, &pi), (int)strlen(s));
	assert_false(pi.local);
	assert_int_equal(pi.family, AF_INET6);
	/* Canonical inet_ntop form, as sock_format writes it. */
	assert_string_equal(pi.src_host, "2001:db8::1");
	assert_int_equal(pi.src_port, 0);
	assert_string_equal(pi.dst_host, "::1");
	assert_int_equal(pi.dst_port, 65535);
	assert_prefixes_eagain((const uint8_t *)s, strlen(s));
}

static void test_v1_tcp6_mapped(void **state)
{
	const char *s = "PROXY TCP6 ::ffff:10.1.2.3 ::ffff:10.0.0.1 5 6\r\n";
	struct proxy_info pi;

	assert_int_equal(parse_str(s, &pi), (int)strlen(s));
	assert_int_equal(pi.family, AF_INET6);
	assert_string_equal(pi.src_host, "10.1.2.3");
	assert_string_equal(pi.dst_host, "10.0.0.1");
}

static void test_v1_unknown(void **state)
{
	static const char *const ok[] = {
	        "PROXY UNKNOWN\r\n",
	        "PROXY UNKNOWN ffff:f::f:ffff ffff:f::f:ffff 65535 65535\r\n",
	        "PROXY UNKNOWN anything at all, ignored\r\n",
	};
	struct proxy_info pi;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(parse_str(ok[i], &pi), (int)strlen(ok[i]));
		assert_true(pi.local);
		assert_int_equal(pi.family, AF_UNSPEC);
		assert_string_equal(pi.src_host, "");
		assert_int_equal(pi.src_port, 0);
	}
	assert_int_equal(parse_str("PROXY UNKNOWNX\r\n", &pi), TERN_EMALFORMED);
	assert_int_equal(parse_str("PROXY UNKNOW\r\n", &pi), TERN_EMALFORMED);
}

/* A v1 line of exactly n bytes: "PROXY UNKNOWN " padded, then CRLF. */
static void v1_of_len(char *buf, size_t n)
{
	memset(buf, 'x', n);
	memcpy(buf, "PROXY UNKNOWN ", 14);
	buf[n - 2] = '\r';
	buf[n - 1] = '\n';
	buf[n] = '\0';
}

static void test_v1_length_limit(void **state)
{
	char buf[256];
	struct proxy_info pi;

	v1_of_len(buf, PROXY_V1_MAX);
	assert_int_equal(parse_str(buf, &pi), PROXY_V1_MAX);
	v1_of_len(buf, PROXY_V1_MAX + 1);
	assert_int_equal(parse_str(buf, &pi), TERN_EMALFORMED);
	/* CR as byte 107 cannot be followed by LF within the limit. */
	buf[PROXY_V1_MAX] = '\0';
	assert_int_equal(parse_str(buf, &pi), TERN_EMALFORMED);
	/* No CRLF yet: wait up to 106 bytes, give up at 107. */
	memset(buf + 14, 'x', 200);
	buf[PROXY_V1_MAX - 1] = '\0';
	assert_int_equal(parse_str(buf, &pi), TERN_EAGAIN);
	buf[PROXY_V1_MAX - 1] = 'x';
	buf[PROXY_V1_MAX] = '\0';
	assert_int_equal(parse_str(buf, &pi), TERN_EMALFORMED);
	buf[PROXY_V1_MAX + 50] = '\0';
	assert_int_equal(parse_str(buf, &pi), TERN_EMALFORMED);
}

static void test_v1_ports(void **state)
{
	struct proxy_info pi;

	assert_true(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n", &pi) >
	            0);
	assert_int_equal(pi.src_port, 0);
	assert_int_equal(pi.dst_port, 65535);
	assert_true(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 10 1883\r\n", &pi) >
	            0);
	assert_int_equal(pi.src_port, 10);
	assert_int_equal(pi.dst_port, 1883);
}

static void test_v1_malformed(void **state)
{
	static const char *const bad[] = {
	        /* ports */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n",
	        "PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n",
	        "PROXY TCP4 1.2.3.4 5.6.7.8 00 80\r\n",
	        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 80\r\n",
	        "PROXY TCP4 1.2.3.4 5.6.7.8 +1 80\r\n",
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1a 80\r\n",
	        "PROXY TCP4 1.2.3.4 5.6.7.8 123456 80\r\n",
	        "PROXY TCP4 1.2.3.4 5.6.7.8 99999999999999999999 80\r\n",
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1 0x50\r\n",
	        /* spacing and field count */
	        "PROXY TCP4 1.2.3.4 5.6.7.8  1 80\r\n",
	        "PROXY  TCP4 1.2.3.4 5.6.7.8 1 80\r\n",
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1 80 \r\n",
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
	        "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
	        "PROXY TCP4\r\n",
	        "PROXY\r\n",
	        "PROXY \r\n",
	        "PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
	        /* protocol and addresses */
	        "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
	        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
	        "PROXY TCP4 ::1 ::1 1 2\r\n",
	        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
	        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
	        "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
	        "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
	        "PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n",
	        "PROXY TCP4 1.2.3.4 5.6.7.008 1 2\r\n",
	        "PROXY TCP4 host 5.6.7.8 1 2\r\n",
	        "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
	        "PROXY TCP6 [::1] ::1 1 2\r\n",
	        "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
	        /* line endings */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
	        "PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n",
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x7f\r\n",
	        /* not PROXY at all */
	        "GET / HTTP/1.1\r\n",
	        "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00",
	        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
	};
	struct proxy_info pi;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse_str(bad[i], &pi);
		if (rc != TERN_EMALFORMED)
			fail_msg("\"%s\": %d, want %d", bad[i], rc,
			         TERN_EMALFORMED);
	}
}

static void test_v1_high_bytes(void **state)
{
	const uint8_t s[] = "PROXY TCP4 1.2.3.4 \xc3\xa9 1 2\r\n";
	struct proxy_info pi;

	assert_int_equal(proxy_parse(s, sizeof(s) - 1, &pi), TERN_EMALFORMED);
}

/* ---- version 2 ---- */

/* Writes a v2 header (signature, ver_cmd, fam, length, block) into b. */
static size_t v2(uint8_t *b, uint8_t ver_cmd, uint8_t fam, const void *block,
                 size_t n)
{
	memcpy(b, sig, 12);
	b[12] = ver_cmd;
	b[13] = fam;
	b[14] = (uint8_t)(n >> 8);
	b[15] = (uint8_t)n;
	if (n)
		memcpy(b + 16, block, n);
	return 16 + n;
}

static const uint8_t inet_block[12] = {192, 168, 0,    1,    10,   0,
                                       0,   7,   0xdc, 0x04, 0x07, 0x5b};

static const uint8_t inet6_block[36] = {
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0,    0,    0,
        0,    0,    0,    1,    0, 0, 0, 0, 0, 0,    0,    0,
        0,    0,    0xff, 0xff, 1, 2, 3, 4, 0, 0x50, 0xff, 0xff};

static void test_v2_inet(void **state)
{
	uint8_t b[64];
	size_t n = v2(b, 0x21, 0x11, inet_block, sizeof(inet_block));
	struct proxy_info pi;

	memcpy(b + n, "\x10\x0c", 2);
	assert_int_equal(proxy_parse(b, n + 2, &pi), (int)n);
	assert_false(pi.local);
	assert_int_equal(pi.family, AF_INET);
	assert_string_equal(pi.src_host, "192.168.0.1");
	assert_int_equal(pi.src_port, 56324);
	assert_string_equal(pi.dst_host, "10.0.0.7");
	assert_int_equal(pi.dst_port, 1883);
	assert_prefixes_eagain(b, n);
}

static void test_v2_inet6(void **state)
{
	uint8_t b[64];
	size_t n = v2(b, 0x21, 0x21, inet6_block, sizeof(inet6_block));
	struct proxy_info pi;

	assert_int_equal(proxy_parse(b, n, &pi), (int)n);
	assert_false(pi.local);
	assert_int_equal(pi.family, AF_INET6);
	assert_string_equal(pi.src_host, "2001:db8::1");
	assert_int_equal(pi.src_port, 80);
	/* IPv4-mapped destination shown as IPv4. */
	assert_string_equal(pi.dst_host, "1.2.3.4");
	assert_int_equal(pi.dst_port, 65535);
	assert_prefixes_eagain(b, n);
}

static void test_v2_local(void **state)
{
	uint8_t b[64];
	struct proxy_info pi;
	size_t n;

	n = v2(b, 0x20, 0x00, NULL, 0);
	assert_int_equal(proxy_parse(b, n, &pi), 16);
	assert_true(pi.local);
	assert_int_equal(pi.family, AF_UNSPEC);
	assert_string_equal(pi.src_host, "");
	/* LOCAL skips any address block, whatever the family byte says. */
	n = v2(b, 0x20, 0x11, inet_block, sizeof(inet_block));
	assert_int_equal(proxy_parse(b, n, &pi), (int)n);
	assert_true(pi.local);
	n = v2(b, 0x20, 0xff, inet_block, 5);
	assert_int_equal(proxy_parse(b, n, &pi), (int)n);
	assert_true(pi.local);
	assert_prefixes_eagain(b, n);
}

static void test_v2_unix_is_local(void **state)
{
	uint8_t block[216 + 4] = {0}, b[256];
	struct proxy_info pi;
	size_t n;

	memcpy(block, "/run/lb.sock", 12);
	n = v2(b, 0x21, 0x31, block, 216);
	assert_int_equal(proxy_parse(b, n, &pi), (int)n);
	assert_true(pi.local);
	assert_int_equal(pi.family, AF_UNSPEC);
	n = v2(b, 0x21, 0x32, block, 216);
	assert_int_equal(proxy_parse(b, n, &pi), (int)n);
	assert_true(pi.local);
	/* Followed by a TLV (type 4, length 1). */
	block[216] = 0x04;
	block[218] = 1;
	n = v2(b, 0x21, 0x31, block, 220);
	assert_int_equal(proxy_parse(b, n, &pi), (int)n);
	/* A block shorter than two UNIX addresses. */
	n = v2(b, 0x21, 0x31, block, 215);
	assert_int_equal(proxy_parse(b, n, &pi), TERN_EMALFORMED);
}

static void test_v2_unspec_and_dgram(void **state)
{
	uint8_t b[64];
	struct proxy_info pi;
	size_t n;

	n = v2(b, 0x21, 0x00, NULL, 0);
	assert_int_equal(proxy_parse(b, n, &pi), 16);
	assert_true(pi.local);
	/* UNSPEC address information is ignored whole, layout unknown. */
	n = v2(b, 0x21, 0x00, inet_block, 7);
	assert_int_equal(proxy_parse(b, n, &pi), (int)n);
	assert_true(pi.local);
	n = v2(b, 0x21, 0x10, inet_block, 7);
	assert_int_equal(proxy_parse(b, n, &pi), (int)n);
	assert_true(pi.local);
	/* UDP sources are not TCP clients: keep the socket address. */
	n = v2(b, 0x21, 0x12, inet_block, sizeof(inet_block));
	assert_int_equal(proxy_parse(b, n, &pi), (int)n);
	assert_true(pi.local);
	assert_int_equal(pi.family, AF_UNSPEC);
}

static void test_v2_tlvs(void **state)
{
	uint8_t block[128], b[160];
	static const uint8_t tlvs[] = {
	        0x01, 0x00, 0x04, 'm',  'q',  't', 't',    /* ALPN */
	        0x04, 0x00, 0x00,                          /* NOOP, empty */
	        0x20, 0x00, 0x05, 0x01, 0,    0,   0,   0, /* SSL */
	        0xE0, 0x00, 0x02, 0xAB, 0xCD,              /* custom */
	};
	struct proxy_info pi;
	size_t n, k = sizeof(inet_block);

	memcpy(block, inet_block, k);
	memcpy(block + k, tlvs, sizeof(tlvs));
	k += sizeof(tlvs);
	n = v2(b, 0x21, 0x11, block, k);
	assert_int_equal(proxy_parse(b, n, &pi), (int)n);
	assert_false(pi.local);
	assert_string_equal(pi.src_host, "192.168.0.1");
	assert_int_equal(pi.dst_port, 1883);
	assert_prefixes_eagain(b, n);
	/* The last TLV's value overruns the header. */
	n = v2(b, 0x21, 0x11, block, k - 1);
	assert_int_equal(proxy_parse(b, n, &pi), TERN_EMALFORMED);
	/* Trailing bytes too short to be a TLV. */
	n = v2(b, 0x21, 0x11, block, sizeof(inet_block) + 2);
	assert_int_equal(proxy_parse(b, n, &pi), TERN_EMALFORMED);
	/* An IPv6 block with a TLV. */
	memcpy(block, inet6_block, 36);
	memcpy(block + 36, tlvs, 7);
	n = v2(b, 0x21, 0x21, block, 43);
	assert_int_equal(proxy_parse(b, n, &pi), (int)n);
	assert_string_equal(pi.src_host, "2001:db8::1");
}

static void test_v2_bad_fixed_fields(void **state)
{
	static const uint8_t bad[][2] = {
	        {0x11, 0x11}, /* version 1 */
	        {0x31, 0x11}, /* version 3 */
	        {0x01, 0x11}, /* version 0 */
	        {0xF1, 0x11}, /* version 15 */
	        {0x22, 0x11}, /* command 2 */
	        {0x2F, 0x11}, /* command 15 */
	        {0x21, 0x41}, /* family 4 */
	        {0x21, 0xF1}, /* family 15 */
	        {0x21, 0x13}, /* transport 3 */
	        {0x21, 0x1F}, /* transport 15 */
	};
	uint8_t b[64];
	struct proxy_info pi;
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = v2(b, bad[i][0], bad[i][1], inet_block, 12);
		assert_int_equal(proxy_parse(b, n, &pi), TERN_EMALFORMED);
		/* Rejected as soon as the byte arrives. */
		n = bad[i][0] == 0x21 ? 14 : 13;
		assert_int_equal(proxy_parse(b, n, &pi), TERN_EMALFORMED);
	}
	/* A signature that goes wrong midway. */
	memcpy(b, sig, 12);
	b[7] = 'q';
	assert_int_equal(proxy_parse(b, 7, &pi), TERN_EAGAIN);
	assert_int_equal(proxy_parse(b, 8, &pi), TERN_EMALFORMED);
	assert_int_equal(proxy_parse(b, 16, &pi), TERN_EMALFORMED);
}

static void test_v2_short_address_block(void **state)
{
	uint8_t b[64];
	struct proxy_info pi;
	size_t n;

	n = v2(b, 0x21, 0x11, inet_block, 11);
	assert_int_equal(proxy_parse(b, n, &pi), TERN_EMALFORMED);
	n = v2(b, 0x21, 0x11, NULL, 0);
	assert_int_equal(proxy_parse(b, n, &pi), TERN_EMALFORMED);
	n = v2(b, 0x21, 0x21, inet6_block, 35);
	assert_int_equal(proxy_parse(b, n, &pi), TERN_EMALFORMED);
	n = v2(b, 0x21, 0x21, inet_block, 12);
	assert_int_equal(proxy_parse(b, n, &pi), TERN_EMALFORMED);
}

static void test_v2_length_cap(void **state)
{
	static uint8_t b[PROXY_V2_MAX + 64];
	struct proxy_info pi;
	size_t body = PROXY_V2_MAX - 16, tlv = body - 12 - 3;

	/* The largest header allowed: an address block and one NOOP TLV. */
	memset(b, 0, sizeof(b));
	v2(b, 0x21, 0x11, inet_block, 12);
	b[14] = (uint8_t)(body >> 8);
	b[15] = (uint8_t)body;
	b[28] = 0x04;
	b[29] = (uint8_t)(tlv >> 8);
	b[30] = (uint8_t)tlv;
	assert_int_equal(proxy_parse(b, 16, &pi), TERN_EAGAIN);
	assert_int_equal(proxy_parse(b, PROXY_V2_MAX - 1, &pi), TERN_EAGAIN);
	assert_int_equal(proxy_parse(b, PROXY_V2_MAX, &pi), PROXY_V2_MAX);
	assert_string_equal(pi.src_host, "192.168.0.1");
	/* One byte more is refused before any of it is awaited. */
	b[15] = (uint8_t)(body + 1);
	assert_int_equal(proxy_parse(b, 16, &pi), TERN_ETOOBIG);
	assert_int_equal(proxy_parse(b, sizeof(b), &pi), TERN_ETOOBIG);
	b[14] = 0xff;
	b[15] = 0xff;
	assert_int_equal(proxy_parse(b, 16, &pi), TERN_ETOOBIG);
	/* LOCAL is capped as well. */
	b[12] = 0x20;
	assert_int_equal(proxy_parse(b, 16, &pi), TERN_ETOOBIG);
}

static void test_v2_error_leaves_out(void **state)
{
	uint8_t b[64];
	struct proxy_info pi, before;
	size_t n = v2(b, 0x21, 0x11, inet_block, 11);

	memset(&pi, 0x5a, sizeof(pi));
	before = pi;
	assert_int_equal(proxy_parse(b, n, &pi), TERN_EMALFORMED);
	assert_memory_equal(&pi, &before, sizeof(pi));
	assert_int_equal(proxy_parse(b, 10, &pi), TERN_EAGAIN);
	assert_memory_equal(&pi, &before, sizeof(pi));
}

/* ---- proxy_maybe ---- */

static void test_maybe(void **state)
{
	static const struct {
		const char *s;
		size_t n;
		int want;
	} cases[] = {
	        {"", 0, 1},
	        {"P", 1, 1},
	        {"PROXY", 5, 1},
	        {"PROXY ", 6, 1},
	        {"PROXY TCP4 1.2", 14, 1},
	        {"PROXY garbage", 13, 1},
	        {"\r", 1, 1},
	        {"\r\n\r\n\0", 5, 1},
	        {"\r\n\r\n\0\r\nQUIT\n", 12, 1},
	        {"\r\n\r\n\0\r\nQUIT\n\x21\x11", 14, 1},
	        {"\x10", 1, 0},
	        {"\x10\x0c\x00\x04MQTT", 8, 0},
	        {"PROXZ", 5, 0},
	        {"PROXY\r", 6, 0},
	        {"p", 1, 0},
	        {"\r\n\r\nX", 5, 0},
	        {"\r\n\r\n\0\r\nQUIX", 11, 0},
	        {"GET / HTTP/1.1", 14, 0},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = proxy_maybe((const uint8_t *)cases[i].s, cases[i].n);
		if (got != cases[i].want)
			fail_msg("case %zu: %d, want %d", i, got,
			         cases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_v1_tcp4),
	        cmocka_unit_test(test_v1_tcp6),
	        cmocka_unit_test(test_v1_tcp6_mapped),
	        cmocka_unit_test(test_v1_unknown),
	        cmocka_unit_test(test_v1_length_limit),
	        cmocka_unit_test(test_v1_ports),
	        cmocka_unit_test(test_v1_malformed),
	        cmocka_unit_test(test_v1_high_bytes),
	        cmocka_unit_test(test_v2_inet),
	        cmocka_unit_test(test_v2_inet6),
	        cmocka_unit_test(test_v2_local),
	        cmocka_unit_test(test_v2_unix_is_local),
	        cmocka_unit_test(test_v2_unspec_and_dgram),
	        cmocka_unit_test(test_v2_tlvs),
	        cmocka_unit_test(test_v2_bad_fixed_fields),
	        cmocka_unit_test(test_v2_short_address_block),
	        cmocka_unit_test(test_v2_length_cap),
	        cmocka_unit_test(test_v2_error_leaves_out),
	        cmocka_unit_test(test_maybe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
