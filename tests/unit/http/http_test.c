/*
 * Tests for src/http/http.c: request heads as real clients send them
 * (Chromium, Firefox, MQTT.js), every prefix of a head being "need more",
 * the malformed heads that lead to request smuggling, header limits and
 * lists, and the WebSocket upgrade decision with its status codes, the
 * RFC 6455 §1.3 accept value and the subprotocol choice, and the
 * permessage-deflate offers (RFC 7692 §7) we accept or decline.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "http/http.h"

#define MAX_HEADERS 32

/* The RFC 6455 §1.3 example. */
#define KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static const char chromium[] =
        "GET /mqtt HTTP/1.1\r\n"
        "Host: localhost:8080\r\n"
        "Connection: Upgrade\r\n"
        "Pragma: no-cache\r\n"
        "Cache-Control: no-cache\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n"
        "Upgrade: websocket\r\n"
        "Origin: http://localhost:8080\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Accept-Encoding: gzip, deflate, br\r\n"
        "Accept-Language: en-US,en;q=0.9\r\n"
        "Sec-WebSocket-Key: " KEY "\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; "
        "client_max_window_bits\r\n"
        "Sec-WebSocket-Protocol: mqtt\r\n"
        "\r\n";

/* MQTT.js in Node.js (through the ws package). */
static const char mqttjs[] = "GET /mqtt HTTP/1.1\r\n"
                             "Sec-WebSocket-Version: 13\r\n"
                             "Sec-WebSocket-Key: " KEY "\r\n"
                             "Connection: Upgrade\r\n"
                             "Upgrade: websocket\r\n"
                             "Sec-WebSocket-Extensions: permessage-deflate; "
                             "client_max_window_bits\r\n"
                             "Sec-WebSocket-Protocol: mqtt\r\n"
                             "Host: 127.0.0.1:9001\r\n"
                             "\r\n";

static const char firefox[] =
        "GET /mqtt?client=web HTTP/1.1\r\n"
        "Host: broker.example\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) "
        "Gecko/20100101 Firefox/121.0\r\n"
        "Accept: */*\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Origin: https://broker.example\r\n"
        "Sec-WebSocket-Protocol: mqtt\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        "Sec-WebSocket-Key: " KEY "\r\n"
        "Connection: keep-alive, Upgrade\r\n"
        "Upgrade: websocket\r\n"
        "\r\n";

static struct http_request req;
static struct http_header hdrs[MAX_HEADERS];

static int parse(const char *s)
{
	return http_parse_request(s, strlen(s), &req, hdrs, MAX_HEADERS);
}

static void str_eq(struct http_str s, const char *want)
{
	assert_int_equal(s.len, strlen(want));
	assert_memory_equal(s.p, want, s.len);
}

static struct ws_upgrade upgrade(const char *s, const char *supported)
{
	struct ws_upgrade u;

	assert_int_equal(parse(s), (int)strlen(s));
	http_ws_upgrade(&req, supported, &u);
	assert_non_null(u.why);
	return u;
}

/* A minimal valid upgrade with `extra` header lines inserted. */
static const char *with(const char *extra)
{
	static char b[2048];

	snprintf(b, sizeof(b),
	         "GET /mqtt HTTP/1.1\r\nHost: h\r\n%s"
	         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	         "Sec-WebSocket-Version: 13\r\n"
	         "Sec-WebSocket-Key: " KEY "\r\n\r\n",
	         extra);
	return b;
}

/* ------------------------------------------------------------------ */
/* Parsing */

static void test_chromium(void **state)
{
	struct ws_upgrade u;

	assert_int_equal(parse(chromium), (int)strlen(chromium));
	str_eq(req.method, "GET");
	str_eq(req.target, "/mqtt");
	str_eq(req.path, "/mqtt");
	str_eq(req.query, "");
	assert_int_equal(req.minor, 1);
	assert_int_equal(req.nheaders, 13);
	assert_ptr_equal(req.headers, hdrs);
	str_eq(req.headers[0].name, "Host");
	str_eq(req.headers[0].value, "localhost:8080");
	str_eq(http_find(&req, "user-agent")->value,
	       "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
	       "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36");
	u = upgrade(chromium, "mqtt,mqttv3.1");
	assert_int_equal(u.status, 101);
	assert_string_equal(u.accept, ACCEPT);
	str_eq(u.subprotocol, "mqtt");
}

static void test_mqttjs(void **state)
{
	struct ws_upgrade u = upgrade(mqttjs, "mqtt,mqttv3.1");

	assert_int_equal(u.status, 101);
	assert_string_equal(u.accept, ACCEPT);
	str_eq(u.subprotocol, "mqtt");
}

static void test_firefox(void **state)
{
	struct ws_upgrade u = upgrade(firefox, "mqtt");

	assert_int_equal(u.status, 101);
	assert_string_equal(u.accept, ACCEPT);
	str_eq(req.target, "/mqtt?client=web");
	str_eq(req.path, "/mqtt");
	str_eq(req.query, "client=web");
}

/* Every proper prefix of a valid head needs more bytes. */
static void test_every_prefix_is_partial(void **state)
{
	const char *heads[] = {chromium, mqttjs, firefox,
	                       "\r\nGET / HTTP/1.0\n\n"};

	for (size_t h = 0; h < 4; h++) {
		size_t len = strlen(heads[h]);

		for (size_t n = 0; n < len; n++)
			assert_int_equal(http_parse_request(heads[h], n, &req,
			                                    hdrs, MAX_HEADERS),
			                 TERN_EAGAIN);
		assert_int_equal(http_parse_request(heads[h], len, &req, hdrs,
		                                    MAX_HEADERS),
		                 (int)len);
	}
}

/* The head's length excludes what follows it (a body, or MQTT bytes). */
static void test_trailing_bytes(void **state)
{
	const char s[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\x10\x0c";

	assert_int_equal(
	        http_parse_request(s, sizeof(s) - 1, &req, hdrs, MAX_HEADERS),
	        (int)sizeof(s) - 3);
}

static void test_lf_and_leading_empty_lines(void **state)
{
	const char *s = "GET /a?b HTTP/1.1\nHost: x\nX-Y:  z \n\n";

	assert_int_equal(parse(s), (int)strlen(s));
	assert_int_equal(req.nheaders, 2);
	str_eq(req.headers[1].value, "z");
	s = "\r\n\nGET / HTTP/1.1\r\n\r\n";
	assert_int_equal(parse(s), (int)strlen(s));
	str_eq(req.method, "GET");
	assert_int_equal(req.nheaders, 0);
}

static void test_values(void **state)
{
	const char *s = "GET * HTTP/1.1\r\n"
	                "Empty:\r\n"
	                "Spaces: \t  \r\n"
	                "Inner:  a  b\t\r\n"
	                "Obs-Text: caf\xc3\xa9\r\n"
	                "\r\n";

	assert_int_equal(parse(s), (int)strlen(s));
	str_eq(req.target, "*");
	str_eq(req.path, "*");
	str_eq(req.headers[0].value, "");
	str_eq(req.headers[1].value, "");
	str_eq(req.headers[2].value, "a  b");
	str_eq(req.headers[3].value, "caf\xc3\xa9");
}

static void test_malformed(void **state)
{
	static const char *bad[] = {
	        "GET /mqtt HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
	        "GET /mqtt HTTP/1.1\r\n\tHost: x\r\n\r\n",
	        "GET /mqtt HTTP/1.1\r\n Host: x\r\n\r\n",
	        "GET /mqtt HTTP/1.1\r\nHost : x\r\n\r\n",
	        "GET /mqtt HTTP/1.1\r\nHost\t: x\r\n\r\n",
	        "GET /mqtt HTTP/1.1\r\nHost x\r\n\r\n",
	        "GET /mqtt HTTP/1.1\r\n: x\r\n\r\n",
	        "GET /mqtt HTTP/1.1\r\nHo(st: x\r\n\r\n",
	        "GET /mqtt HTTP/1.1\r\nHost: a\rb\r\n\r\n",
	        "GET /mqtt HTTP/1.1\r\nHost: a\r\r\n\r\n",
	        "GET /mqtt HTTP/1.1\rHost: a\r\n\r\n",
	        "GET /mqtt HTTP/1.1\r\nHost: a\x01\r\n\r\n",
	        "GET /mqtt HTTP/1.1\r\nHost: a\x7f\r\n\r\n",
	        "GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\r\n",
	        "GET  /mqtt HTTP/1.1\r\n\r\n",
	        "GET /mqtt  HTTP/1.1\r\n\r\n",
	        "GET\t/mqtt HTTP/1.1\r\n\r\n",
	        " GET /mqtt HTTP/1.1\r\n\r\n",
	        "GET /mqtt HTTP/1.1 \r\n\r\n",
	        "GET /mqtt\r\n\r\n",
	        "GET HTTP/1.1\r\n\r\n",
	        "/mqtt HTTP/1.1\r\n\r\n",
	        "GET /mqtt http/1.1\r\n\r\n",
	        "GET /mqtt HTTP/1.10\r\n\r\n",
	        "GET /mqtt HTTP/1\r\n\r\n",
	        "GET /mqtt HTTP/a.b\r\n\r\n",
	        "GET /\x80 HTTP/1.1\r\n\r\n",
	        "G\"T / HTTP/1.1\r\n\r\n",
	        "\rGET / HTTP/1.1\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("case %zu\n", i);
		assert_int_equal(parse(bad[i]), TERN_EMALFORMED);
	}
}

/* NUL cannot go through parse(), which uses strlen. */
static void test_nul(void **state)
{
	const char a[] = "GET /mqtt HTTP/1.1\r\nHost: a\0b\r\n\r\n";
	const char b[] = "GET /mq\0tt HTTP/1.1\r\n\r\n";
	const char c[] = "GET /mqtt HTTP/1.1\r\nHo\0st: a\r\n\r\n";

	assert_int_equal(
	        http_parse_request(a, sizeof(a) - 1, &req, hdrs, MAX_HEADERS),
	        TERN_EMALFORMED);
	assert_int_equal(
	        http_parse_request(b, sizeof(b) - 1, &req, hdrs, MAX_HEADERS),
	        TERN_EMALFORMED);
	assert_int_equal(
	        http_parse_request(c, sizeof(c) - 1, &req, hdrs, MAX_HEADERS),
	        TERN_EMALFORMED);
}

static void test_versions(void **state)
{
	assert_true(parse("GET / HTTP/1.0\r\n\r\n") > 0);
	assert_int_equal(req.minor, 0);
	assert_true(parse("GET / HTTP/1.1\r\n\r\n") > 0);
	assert_int_equal(req.minor, 1);
	assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n"), TERN_EVERSION);
	assert_int_equal(parse("GET / HTTP/1.2\r\n\r\n"), TERN_EVERSION);
	assert_int_equal(parse("GET / HTTP/0.9\r\n\r\n"), TERN_EVERSION);
	assert_int_equal(parse("GET / HTTP/3.0\r\n\r\n"), TERN_EVERSION);
}

static void test_too_many_headers(void **state)
{
	const char *four = "GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n"
	                   "\r\n";
	const char *five = "GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n"
	                   "e: 5\r\n";

	assert_int_equal(http_parse_request(four, strlen(four), &req, hdrs, 4),
	                 (int)strlen(four));
	assert_int_equal(req.nheaders, 4);
	/* Refused as soon as the fifth line is complete. */
	assert_int_equal(http_parse_request(five, strlen(five), &req, hdrs, 4),
	                 TERN_ETOOBIG);
	assert_int_equal(http_parse_request(four, strlen(four), &req, NULL, 0),
	                 TERN_ETOOBIG);
}

static void test_find_and_count(void **state)
{
	const char *s = "GET / HTTP/1.1\r\n"
	                "X-A: 1\r\n"
	                "x-a: 2\r\n"
	                "X-AB: 3\r\n"
	                "\r\n";

	assert_true(parse(s) > 0);
	str_eq(http_find(&req, "x-A")->value, "1");
	assert_int_equal(http_count(&req, "X-a"), 2);
	assert_int_equal(http_count(&req, "X-AB"), 1);
	assert_int_equal(http_count(&req, "X"), 0);
	assert_null(http_find(&req, "X-ABC"));
	assert_null(http_find(&req, ""));
}

static struct http_str S(const char *s) {
	return (struct http_str){s, strlen(s)};
}

static void
test_list_has(void **state)
{
	assert_true(http_list_has(S("keep-alive, Upgrade"), "upgrade"));
	assert_true(http_list_has(S("Upgrade"), "upgrade"));
	assert_true(http_list_has(S(" \tUPGRADE\t "), "upgrade"));
	assert_true(http_list_has(S(",,upgrade,"), "upgrade"));
	assert_true(http_list_has(S("a,b , c"), "c"));
	assert_false(http_list_has(S("Upgrade2"), "upgrade"));
	assert_false(http_list_has(S("up grade"), "upgrade"));
	assert_false(http_list_has(S(""), "upgrade"));
	assert_false(http_list_has(S("keep-alive"), "upgrade"));
	assert_false(http_list_has((struct http_str){NULL, 0}, "x"));
}

/* ------------------------------------------------------------------ */
/* WebSocket upgrade */

static void test_upgrade_status(void **state)
{
	struct ws_upgrade u;

	u = upgrade(with(""), "mqtt");
	assert_int_equal(u.status, 101);
	assert_string_equal(u.accept, ACCEPT);
	assert_int_equal(u.subprotocol.len, 0);

	u = upgrade("POST /mqtt HTTP/1.1\r\nUpgrade: websocket\r\n"
	            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
	            "Sec-WebSocket-Key: " KEY "\r\n\r\n",
	            "mqtt");
	assert_int_equal(u.status, 405);
	u = upgrade("get /mqtt HTTP/1.1\r\n\r\n", "mqtt");
	assert_int_equal(u.status, 405);
	u = upgrade("GET /mqtt HTTP/1.0\r\nUpgrade: websocket\r\n"
	            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
	            "Sec-WebSocket-Key: " KEY "\r\n\r\n",
	            "mqtt");
	assert_int_equal(u.status, 400);
	u = upgrade("GET /mqtt HTTP/1.1\r\nConnection: Upgrade\r\n"
	            "Sec-WebSocket-Version: 13\r\n"
	            "Sec-WebSocket-Key: " KEY "\r\n\r\n",
	            "mqtt");
	assert_int_equal(u.status, 400);
	u = upgrade("GET /mqtt HTTP/1.1\r\nUpgrade: h2c\r\n"
	            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
	            "Sec-WebSocket-Key: " KEY "\r\n\r\n",
	            "mqtt");
	assert_int_equal(u.status, 400);
	u = upgrade("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\n"
	            "Connection: keep-alive\r\nSec-WebSocket-Version: 13\r\n"
	            "Sec-WebSocket-Key: " KEY "\r\n\r\n",
	            "mqtt");
	assert_int_equal(u.status, 400);
	/* Upgrade and Connection may be split over several lines. */
	u = upgrade(
	        "GET /mqtt HTTP/1.1\r\nUpgrade: h2c\r\nUpgrade: WebSocket\r\n"
	        "Connection: keep-alive\r\nConnection: upgrade\r\n"
	        "Sec-WebSocket-Version: 13\r\n"
	        "Sec-WebSocket-Key: " KEY "\r\n\r\n",
	        "mqtt");
	assert_int_equal(u.status, 101);
}

static void test_upgrade_version(void **state)
{
	static const char *bad[] = {"8", "12", "14", "13, 8", "", "013"};
	char b[1024];
	struct ws_upgrade u;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(b, sizeof(b),
		         "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\n"
		         "Connection: Upgrade\r\nSec-WebSocket-Version: %s\r\n"
		         "Sec-WebSocket-Key: " KEY "\r\n\r\n",
		         bad[i]);
		u = upgrade(b, "mqtt");
		assert_int_equal(u.status, 426);
	}
	/* Missing, or sent twice. */
	u = upgrade("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\n"
	            "Connection: Upgrade\r\n"
	            "Sec-WebSocket-Key: " KEY "\r\n\r\n",
	            "mqtt");
	assert_int_equal(u.status, 426);
	u = upgrade(with("Sec-WebSocket-Version: 13\r\n"), "mqtt");
	assert_int_equal(u.status, 426);
	/* An old draft client without a key learns the version first. */
	u = upgrade("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\n"
	            "Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n\r\n",
	            "mqtt");
	assert_int_equal(u.status, 426);
}

static void test_upgrade_key(void **state)
{
	static const char *bad[] = {
	        "",
	        "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 chars */
	        "dGhlIHNhbXBsZSBub25jZQ===", /* 25 chars */
	        "dGhlIHNhbXBsZSBub25jZQAA",  /* 18 bytes, no padding */
	        "dGhlIHNhbXBsZSBub25jZ===",  /* 15 bytes */
	        "dGhlIHNhbXBsZSBub25j*Q==",  /* not base64 */
	        "dGhlIHNhbXBsZSBub25jZ-==",  /* base64url */
	};
	char b[1024];
	struct ws_upgrade u;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(b, sizeof(b),
		         "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\n"
		         "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
		         "Sec-WebSocket-Key: %s\r\n\r\n",
		         bad[i]);
		u = upgrade(b, "mqtt");
		assert_int_equal(u.status, 400);
	}
	u = upgrade("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\n"
	            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
	            "mqtt");
	assert_int_equal(u.status, 400);
	u = upgrade(with("Sec-WebSocket-Key: " KEY "\r\n"), "mqtt");
	assert_int_equal(u.status, 400);
	/* Another valid key gives another accept value. */
	u = upgrade("GET / HTTP/1.1\r\nUpgrade: websocket\r\n"
	            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
	            "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n",
	            "mqtt");
	assert_int_equal(u.status, 101);
	assert_int_equal(strlen(u.accept), 28);
	assert_string_not_equal(u.accept, ACCEPT);
}

static void test_subprotocols(void **state)
{
	struct ws_upgrade u;

	/* The client's order wins over the server's. */
	u = upgrade(with("Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n"),
	            "mqtt,mqttv3.1");
	assert_int_equal(u.status, 101);
	str_eq(u.subprotocol, "mqttv3.1");
	u = upgrade(with("Sec-WebSocket-Protocol: mqtt, mqttv3.1\r\n"),
	            "mqttv3.1, mqtt");
	str_eq(u.subprotocol, "mqtt");
	/* Offers across several header lines, unknown ones skipped. */
	u = upgrade(with("Sec-WebSocket-Protocol: wamp, ,\r\n"
	                 "sec-websocket-protocol: stomp,mqttv3.1\r\n"),
	            "mqtt,mqttv3.1");
	assert_int_equal(u.status, 101);
	str_eq(u.subprotocol, "mqttv3.1");
	/* Offered, none supported: 400. Names are case-sensitive. */
	u = upgrade(with("Sec-WebSocket-Protocol: wamp, stomp\r\n"), "mqtt");
	assert_int_equal(u.status, 400);
	u = upgrade(with("Sec-WebSocket-Protocol: MQTT\r\n"), "mqtt");
	assert_int_equal(u.status, 400);
	u = upgrade(with("Sec-WebSocket-Protocol: mqtt\r\n"), "");
	assert_int_equal(u.status, 400);
	u = upgrade(with("Sec-WebSocket-Protocol: mqtt\r\n"), NULL);
	assert_int_equal(u.status, 400);
	u = upgrade(with("Sec-WebSocket-Protocol: mq\r\n"), "mqtt");
	assert_int_equal(u.status, 400);
	/* Nothing offered (or an empty offer): 101 without one. */
	u = upgrade(with(""), "mqtt");
	assert_int_equal(u.status, 101);
	assert_int_equal(u.subprotocol.len, 0);
	u = upgrade(with("Sec-WebSocket-Protocol:\r\n"), "mqtt");
	assert_int_equal(u.status, 101);
	assert_int_equal(u.subprotocol.len, 0);
}

/* ------------------------------------------------------------------ */
/* permessage-deflate offers (RFC 7692 §7) */

#define PMD                                                                    \
	"permessage-deflate; server_no_context_takeover; "                     \
	"client_no_context_takeover"

/* Negotiates the head `s` with a 10-bit cap. */
static struct ws_deflate deflate_offer(const char *s)
{
	struct ws_deflate d;

	assert_int_equal(parse(s), (int)strlen(s));
	http_ws_deflate_offer(&req, 10, &d);
	return d;
}

static struct ws_deflate ext(const char *offers)
{
	static char line[1024];

	snprintf(line, sizeof(line), "Sec-WebSocket-Extensions: %s\r\n",
	         offers);
	return deflate_offer(with(line));
}

static void expect_declined(const char *offers)
{
	struct ws_deflate d = ext(offers);

	if (d.on)
		fail_msg("offer \"%s\" accepted as \"%s\"", offers, d.response);
}

static void test_deflate_browsers(void **state)
{
	struct ws_deflate d;

	/* Chromium and the ws package: client_max_window_bits without a
	 * value, so we may (and do) cap the client's window. */
	d = deflate_offer(chromium);
	assert_true(d.on);
	assert_string_equal(d.response, PMD "; client_max_window_bits=10");
	assert_int_equal(d.client_bits, 10);
	assert_int_equal(d.server_bits, 10);
	d = deflate_offer(mqttjs);
	assert_string_equal(d.response, PMD "; client_max_window_bits=10");
	/* Firefox offers no window parameter: the client may use 15 bits
	 * and the answer must not name client_max_window_bits. */
	d = deflate_offer(firefox);
	assert_true(d.on);
	assert_string_equal(d.response, PMD);
	assert_int_equal(d.client_bits, 15);
	assert_int_equal(d.server_bits, 10);
}

static void test_deflate_none(void **state)
{
	struct ws_deflate d = deflate_offer(with(""));

	assert_false(d.on);
	assert_string_equal(d.response, "");
	expect_declined("");
	expect_declined("x-webkit-deflate-frame");
	expect_declined("permessage-deflate-x");
	expect_declined(" , ,");
}

static void test_deflate_window_bits(void **state)
{
	struct ws_deflate d;

	d = ext("permessage-deflate; client_max_window_bits=9");
	assert_string_equal(d.response, PMD "; client_max_window_bits=9");
	assert_int_equal(d.client_bits, 9);
	d = ext("permessage-deflate; client_max_window_bits=8");
	assert_int_equal(d.client_bits, 8);
	d = ext("permessage-deflate; client_max_window_bits=15");
	assert_int_equal(d.client_bits, 10);
	/* Quoted values are the same values (RFC 7692 §7.1). */
	d = ext("permessage-deflate; client_max_window_bits=\"12\"");
	assert_string_equal(d.response, PMD "; client_max_window_bits=10");
	/* server_max_window_bits must be answered, at most as offered. */
	d = ext("permessage-deflate; server_max_window_bits=12");
	assert_string_equal(d.response, PMD "; server_max_window_bits=10");
	assert_int_equal(d.server_bits, 10);
	assert_int_equal(d.client_bits, 15);
	d = ext("permessage-deflate;server_max_window_bits=9;"
	        "client_max_window_bits");
	assert_string_equal(d.response, PMD "; server_max_window_bits=9"
	                                    "; client_max_window_bits=10");
	assert_int_equal(d.server_bits, 9);
	/* Both no_context_takeover flags offered: accepted as always. */
	d = ext("permessage-deflate; server_no_context_takeover; "
	        "client_no_context_takeover");
	assert_string_equal(d.response, PMD);
	/* Parameter names are matched without regard to case. */
	d = ext("permessage-deflate; Client_Max_Window_Bits");
	assert_true(d.on);
}

static void test_deflate_declined(void **state)
{
	/* zlib's raw deflate cannot use an 8-bit window. */
	expect_declined("permessage-deflate; server_max_window_bits=8");
	/* Values outside 8..15 or not in their plain form. */
	expect_declined("permessage-deflate; server_max_window_bits=16");
	expect_declined("permessage-deflate; server_max_window_bits=7");
	expect_declined("permessage-deflate; client_max_window_bits=08");
	expect_declined("permessage-deflate; client_max_window_bits=");
	expect_declined("permessage-deflate; client_max_window_bits=1x");
	/* server_max_window_bits needs a value; the flags take none. */
	expect_declined("permessage-deflate; server_max_window_bits");
	expect_declined("permessage-deflate; server_no_context_takeover=1");
	expect_declined("permessage-deflate; client_no_context_takeover=\"\"");
	/* Unknown and duplicate parameters. */
	expect_declined("permessage-deflate; x");
	expect_declined("permessage-deflate; client_max_window_bits; "
	                "client_max_window_bits=9");
	expect_declined("permessage-deflate; server_no_context_takeover; "
	                "server_no_context_takeover");
	/* Syntax errors. */
	expect_declined("permessage-deflate;");
	expect_declined("permessage-deflate; =9");
	expect_declined("permessage-deflate client_max_window_bits");
	expect_declined("permessage-deflate; client_max_window_bits=\"9");
}

static void test_deflate_first_acceptable(void **state)
{
	struct ws_deflate d;

	/* A declined offer gives way to the next one, in the same header
	 * or a later one. */
	d = ext("permessage-deflate; server_max_window_bits=8, "
	        "permessage-deflate; server_max_window_bits=9, "
	        "permessage-deflate");
	assert_string_equal(d.response, PMD "; server_max_window_bits=9");
	d = deflate_offer(with("Sec-WebSocket-Extensions: foo; a=\"x,y;z\", "
	                       "permessage-deflate; bogus\r\n"
	                       "Sec-WebSocket-Extensions: permessage-deflate; "
	                       "client_max_window_bits=11\r\n"));
	assert_string_equal(d.response, PMD "; client_max_window_bits=10");
	/* A syntax error skips one element only. */
	d = ext("bad;;, permessage-deflate");
	assert_string_equal(d.response, PMD);
	/* A quoted comma does not start a new element. */
	expect_declined("foo; a=\", permessage-deflate\"");
	d = ext("foo; a=\"\\\", permessage-deflate\", permessage-deflate");
	assert_true(d.on);
}

/* ------------------------------------------------------------------ */
/* The client side of the handshake */

/* Our request is one the server side accepts, with our key. */
static void test_client_request_accepted(void **state)
{
	char key[25], out[512];
	struct ws_upgrade u;
	int n;

	(void)state;
	assert_int_equal(http_ws_client_key(key), 0);
	assert_int_equal(strlen(key), 24);
	n = http_ws_client_request(out, sizeof(out), "broker.example", 8083,
	                           "/mqtt", key, "mqtt");
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(out));
	u = upgrade(out, "mqtt");
	assert_int_equal(u.status, 101);
	str_eq(u.subprotocol, "mqtt");
	str_eq(req.path, "/mqtt");
	str_eq(http_find(&req, "Host")->value, "broker.example:8083");
	str_eq(http_find(&req, "Sec-WebSocket-Key")->value, key);
}

static void test_client_request_host_forms(void **state)
{
	char out[512];

	(void)state;
	assert_true(http_ws_client_request(out, sizeof(out), "::1", 8084, "",
	                                   KEY, NULL) > 0);
	assert_int_equal(parse(out), (int)strlen(out));
	str_eq(http_find(&req, "Host")->value, "[::1]:8084");
	str_eq(req.target, "/");
	assert_null(http_find(&req, "Sec-WebSocket-Protocol"));
	assert_true(http_ws_client_request(out, sizeof(out), "h", 0, "/a?b=c",
	                                   KEY, "mqtt") > 0);
	assert_int_equal(parse(out), (int)strlen(out));
	str_eq(http_find(&req, "Host")->value, "h");
	str_eq(req.target, "/a?b=c");
	/* Bytes that would split the request are refused. */
	assert_int_equal(http_ws_client_request(out, sizeof(out), "h", 0,
	                                        "/a b", KEY, "mqtt"),
	                 TERN_EINVAL);
	assert_int_equal(http_ws_client_request(out, sizeof(out), "h\r\nX: y",
	                                        0, "/", KEY, "mqtt"),
	                 TERN_EINVAL);
	assert_int_equal(http_ws_client_request(out, sizeof(out), "h", 0,
	                                        "mqtt", KEY, "mqtt"),
	                 TERN_EINVAL);
	assert_int_equal(
	        http_ws_client_request(out, 40, "h", 0, "/", KEY, "mqtt"),
	        TERN_ETOOBIG);
}

static struct http_response resp;

static int check(const char *head, const char **why)
{
	int n = http_parse_response(head, strlen(head), &resp, hdrs,
	                            MAX_HEADERS);

	assert_int_equal(n, (int)strlen(head));
	return http_ws_client_check(&resp, KEY, "mqtt", why);
}

#define GOOD_101                                                               \
	"HTTP/1.1 101 Switching Protocols\r\n"                                 \
	"Upgrade: websocket\r\nConnection: Upgrade\r\n"                        \
	"Sec-WebSocket-Accept: " ACCEPT "\r\n"

static void test_client_response_ok(void **state)
{
	const char *why = "x";

	(void)state;
	assert_int_equal(
	        check(GOOD_101 "Sec-WebSocket-Protocol: mqtt\r\n\r\n", &why),
	        0);
	assert_null(why);
	assert_int_equal(resp.status, 101);
	assert_int_equal(resp.minor, 1);
	str_eq(resp.reason, "Switching Protocols");
	str_eq(http_response_find(&resp, "upgrade")->value, "websocket");
}

static void test_client_response_refused(void **state)
{
	static const char *bad[] = {
	        /* not 101 */
	        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
	        /* wrong accept */
	        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
	        "Connection: Upgrade\r\nSec-WebSocket-Protocol: mqtt\r\n"
	        "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
	        /* missing accept */
	        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
	        "Connection: Upgrade\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
	        /* no subprotocol selected */
	        GOOD_101 "\r\n",
	        /* another subprotocol */
	        GOOD_101 "Sec-WebSocket-Protocol: mqttv3.1\r\n\r\n",
	        /* an extension we never offered */
	        GOOD_101 "Sec-WebSocket-Protocol: mqtt\r\n"
	                 "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
	        /* no Upgrade */
	        "HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n"
	        "Sec-WebSocket-Accept: " ACCEPT "\r\n"
	        "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
	        /* no Connection */
	        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
	        "Sec-WebSocket-Accept: " ACCEPT "\r\n"
	        "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;
		int rc = check(bad[i], &why);

		if (rc != TERN_EPROTO || why == NULL)
			fail_msg("case %zu: rc %d", i, rc);
	}
	assert_int_equal(resp.status, 101);
}

static void test_client_response_parse(void **state)
{
	static const char ok[] = GOOD_101 "\r\n";
	struct http_response r;

	(void)state;
	/* Every proper prefix needs more. */
	for (size_t i = 0; i < sizeof(ok) - 1; i++)
		assert_int_equal(
		        http_parse_response(ok, i, &r, hdrs, MAX_HEADERS),
		        TERN_EAGAIN);
	assert_int_equal(http_parse_response("HTTP/1.1 101\r\n\r\n", 16, &r,
	                                     hdrs, MAX_HEADERS),
	                 16);
	assert_int_equal(r.reason.len, 0);
	assert_int_equal(http_parse_response("HTTP/2.0 101 x\r\n\r\n", 18, &r,
	                                     hdrs, MAX_HEADERS),
	                 TERN_EVERSION);
	assert_int_equal(http_parse_response("HTTP/1.1 1x1 x\r\n\r\n", 18, &r,
	                                     hdrs, MAX_HEADERS),
	                 TERN_EMALFORMED);
	assert_int_equal(http_parse_response("HTTP/1.1  101 x\r\n\r\n", 19, &r,
	                                     hdrs, MAX_HEADERS),
	                 TERN_EMALFORMED);
	assert_int_equal(http_parse_response("HTTP/1.1 101 x\r\n x: y\r\n\r\n",
	                                     25, &r, hdrs, MAX_HEADERS),
	                 TERN_EMALFORMED);
	assert_int_equal(http_parse_response("HTTP/1.1 101 x\r\nA: 1\r\n"
	                                     "B: 2\r\n\r\n",
	                                     30, &r, hdrs, 1),
	                 TERN_ETOOBIG);
}

/* Admin API client ids in paths: "%2F" is a slash, and what cannot be an
 * id (empty, NUL, a broken escape, too long) is refused. */
static void test_pct_decode(void **state)
{
	char out[8];

	(void)state;

	assert_int_equal(http_pct_decode("a%2Fb%2b", 8, out, sizeof(out)), 4);
	assert_string_equal(out, "a/b+");
	assert_int_equal(http_pct_decode("%41%c3%A9", 9, out, sizeof(out)), 3);
	assert_string_equal(out, "A\xc3\xa9");
	assert_int_equal(http_pct_decode("", 0, out, sizeof(out)), -1);
	assert_int_equal(http_pct_decode("a%00", 4, out, sizeof(out)), -1);
	assert_int_equal(http_pct_decode("a%4", 3, out, sizeof(out)), -1);
	assert_int_equal(http_pct_decode("a%g1", 4, out, sizeof(out)), -1);
	assert_int_equal(http_pct_decode("abcdefg", 7, out, sizeof(out)), 7);
	assert_int_equal(http_pct_decode("abcdefgh", 8, out, sizeof(out)), -1);
}

static void test_basic_decode(void **state)
{
	struct http_basic c;

	(void)state;

	/* RFC 7617 §2's example. */
	assert_int_equal(
	        http_basic_decode("QWxhZGRpbjpvcGVuIHNlc2FtZQ==", 28, &c), 0);
	assert_string_equal(c.user, "Aladdin");
	assert_int_equal(c.plen, 11);
	assert_memory_equal(c.pass, "open sesame", 11);
	/* "u:a:b" splits at the first colon; "u:" has an empty password. */
	assert_int_equal(http_basic_decode("dTphOmI=", 8, &c), 0);
	assert_string_equal(c.user, "u");
	assert_int_equal(c.plen, 3);
	assert_int_equal(http_basic_decode("dTo=", 4, &c), 0);
	assert_int_equal(c.plen, 0);
	/* A NUL in the password is kept ("u:\0x"). */
	assert_int_equal(http_basic_decode("dToAeA==", 8, &c), 0);
	assert_int_equal(c.plen, 2);
	assert_memory_equal(c.pass, "\0x", 2);
	/* No colon ("abc"); "admin\0x:pw", which a C-string comparison would
	 * read as "admin"; a tab in the user id. */
	assert_int_equal(http_basic_decode("YWJj", 4, &c), -1);
	assert_int_equal(http_basic_decode("YWRtaW4AeDpwdw==", 16, &c), -1);
	assert_int_equal(http_basic_decode("YQliOmM=", 8, &c), -1);
	/* Not base64 as written: whitespace, misplaced or too much padding,
	 * a length that is no multiple of four, too long. */
	assert_int_equal(http_basic_decode(" dTphOmI", 8, &c), -1);
	assert_int_equal(http_basic_decode("dT=hOmI=", 8, &c), -1);
	assert_int_equal(http_basic_decode("d===", 4, &c), -1);
	assert_int_equal(http_basic_decode("dTphOmI", 7, &c), -1);
	assert_int_equal(http_basic_decode("", 0, &c), -1);
	{
		char longer[513];

		memset(longer, 'Q', sizeof(longer) - 1);
		longer[512] = '\0';
		assert_int_equal(http_basic_decode(longer, 512, &c), -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_chromium),
	        cmocka_unit_test(test_mqttjs),
	        cmocka_unit_test(test_firefox),
	        cmocka_unit_test(test_every_prefix_is_partial),
	        cmocka_unit_test(test_trailing_bytes),
	        cmocka_unit_test(test_lf_and_leading_empty_lines),
	        cmocka_unit_test(test_values),
	        cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_nul),
	        cmocka_unit_test(test_versions),
	        cmocka_unit_test(test_too_many_headers),
	        cmocka_unit_test(test_find_and_count),
	        cmocka_unit_test(test_list_has),
	        cmocka_unit_test(test_upgrade_status),
	        cmocka_unit_test(test_upgrade_version),
	        cmocka_unit_test(test_upgrade_key),
	        cmocka_unit_test(test_subprotocols),
	        cmocka_unit_test(test_deflate_browsers),
	        cmocka_unit_test(test_deflate_none),
	        cmocka_unit_test(test_deflate_window_bits),
	        cmocka_unit_test(test_deflate_declined),
	        cmocka_unit_test(test_deflate_first_acceptable),
	        cmocka_unit_test(test_client_request_accepted),
	        cmocka_unit_test(test_client_request_host_forms),
	        cmocka_unit_test(test_client_response_ok),
	        cmocka_unit_test(test_client_response_refused),
	        cmocka_unit_test(test_client_response_parse),
	        cmocka_unit_test(test_pct_decode),
	        cmocka_unit_test(test_basic_decode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
