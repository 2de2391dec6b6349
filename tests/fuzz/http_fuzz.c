/*
 * libFuzzer target for the HTTP request parser and the WebSocket upgrade
 * check (src/http/http.c). Every string the parser returns must lie inside
 * the head it reports, a complete head must parse the same with more bytes
 * after it and be "need more" when cut short, and the upgrade check must
 * give one of its documented statuses, with a 28-character accept value
 * and a subprotocol from the request on 101. The same bytes are parsed as
 * a response head (the client side of the upgrade) with the same
 * properties, and the client's check of a 101 must not accept a response
 * that lacks the accept value for its key. What the admin API decodes
 * (a percent-encoded path segment, Basic credentials) is decoded from the
 * raw bytes and from the request's path and Authorization header: a
 * decoded segment has no NUL and decodes again from its %XX form, and
 * decoded credentials hold a user id without control characters and come
 * back the same from their canonical base64.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "base/error.h"
#include "fuzz.h"
#include "http/http.h"

#define MAX_HEADERS 16

static void inside(struct http_str s, const char *buf, size_t len)
{
	CHECK(s.p != NULL);
	CHECK(s.p >= buf && s.len <= len && s.p - buf <= (long)(len - s.len));
}

static void check_request(const struct http_request *req, const char *buf,
                          size_t len)
{
	CHECK(req->nheaders <= MAX_HEADERS);
	CHECK(req->minor == 0 || req->minor == 1);
	inside(req->method, buf, len);
	inside(req->target, buf, len);
	inside(req->path, buf, len);
	inside(req->query, buf, len);
	CHECK(req->method.len > 0 && req->target.len > 0);
	CHECK(req->path.len <= req->target.len);
	for (size_t i = 0; i < req->nheaders; i++) {
		inside(req->headers[i].name, buf, len);
		inside(req->headers[i].value, buf, len);
		CHECK(req->headers[i].name.len > 0);
	}
	CHECK(req->nheaders == 0 || http_count(req, "Host") <= req->nheaders);
}

static void check_upgrade(const struct http_request *req, const char *buf,
                          size_t len)
{
	struct ws_upgrade u;

	http_ws_upgrade(req, "mqtt,mqttv3.1", &u);
	CHECK(u.why != NULL);
	CHECK(u.status == 101 || u.status == 400 || u.status == 405 ||
	      u.status == 426);
	if (u.status != 101)
		return;
	CHECK(strlen(u.accept) == 28);
	if (u.subprotocol.len == 0)
		return;
	inside(u.subprotocol, buf, len);
	CHECK((u.subprotocol.len == 4 &&
	       memcmp(u.subprotocol.p, "mqtt", 4) == 0) ||
	      (u.subprotocol.len == 8 &&
	       memcmp(u.subprotocol.p, "mqttv3.1", 8) == 0));
}

/* permessage-deflate: an accepted offer is within our bounds. */
static void check_deflate(const struct http_request *req)
{
	static const char base[] = "permessage-deflate; "
	                           "server_no_context_takeover; "
	                           "client_no_context_takeover";
	struct ws_deflate d;

	http_ws_deflate_offer(req, 10, &d);
	CHECK(memchr(d.response, '\0', sizeof(d.response)) != NULL);
	if (!d.on) {
		CHECK(d.response[0] == '\0');
		return;
	}
	CHECK(d.server_bits >= 9 && d.server_bits <= 10);
	CHECK((d.client_bits >= 8 && d.client_bits <= 10) ||
	      d.client_bits == 15);
	CHECK(strncmp(d.response, base, sizeof(base) - 1) == 0);
}

static void check_pct(const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char out[256], again[256], enc[3 * 255];
	int len = http_pct_decode(p, n, out, sizeof(out));

	if (len < 0)
		return;
	CHECK(len > 0 && (size_t)len <= n && strlen(out) == (size_t)len);
	for (int i = 0; i < len; i++) {
		enc[3 * i] = '%';
		enc[3 * i + 1] = hex[(unsigned char)out[i] >> 4];
		enc[3 * i + 2] = hex[(unsigned char)out[i] & 15];
	}
	CHECK(http_pct_decode(enc, 3 * (size_t)len, again, sizeof(again)) ==
	      len);
	CHECK(memcmp(out, again, (size_t)len) == 0);
}

static void check_basic(const char *p, size_t n)
{
	struct http_basic c, c2;
	unsigned char raw[384], b64[4 * 128 + 1];
	size_t ulen;
	int m;

	if (http_basic_decode(p, n, &c) != 0)
		return;
	CHECK(c.user == c.buf && c.pass > c.user);
	ulen = strlen(c.user);
	CHECK(c.pass == c.user + ulen + 1 && ulen + 1 + c.plen <= 381);
	for (size_t i = 0; i < ulen; i++)
		CHECK((unsigned char)c.user[i] >= 0x20 && c.user[i] != 0x7F);
	memcpy(raw, c.user, ulen);
	raw[ulen] = ':';
	memcpy(raw + ulen + 1, c.pass, c.plen);
	m = EVP_EncodeBlock(b64, raw, (int)(ulen + 1 + c.plen));
	CHECK(m > 0 && http_basic_decode((char *)b64, (size_t)m, &c2) == 0);
	CHECK(strcmp(c.user, c2.user) == 0 && c.plen == c2.plen &&
	      memcmp(c.pass, c2.pass, c.plen) == 0);
}

/* The admin API's decoders on a request: its path, Basic credentials. */
static void check_api_decoders(const struct http_request *req)
{
	const struct http_header *h = http_find(req, "Authorization");

	check_pct(req->path.p, req->path.len);
	if (h && h->value.len > 6 && strncasecmp(h->value.p, "Basic ", 6) == 0)
		check_basic(h->value.p + 6, h->value.len - 6);
}

/* The bytes as the server's answer to our upgrade. */
static void check_response(const char *buf, size_t size)
{
	static struct http_header hdrs[MAX_HEADERS], again[MAX_HEADERS];
	struct http_response r, r2;
	const char *why = NULL;
	int rc = http_parse_response(buf, size, &r, hdrs, MAX_HEADERS);

	CHECK(rc == TERN_EAGAIN || rc == TERN_EMALFORMED ||
	      rc == TERN_ETOOBIG || rc == TERN_EVERSION || rc > 0);
	if (rc <= 0)
		return;
	CHECK((size_t)rc <= size);
	CHECK(r.status >= 100 && r.status <= 999);
	CHECK(r.nheaders <= MAX_HEADERS);
	for (size_t i = 0; i < r.nheaders; i++) {
		inside(r.headers[i].name, buf, (size_t)rc);
		inside(r.headers[i].value, buf, (size_t)rc);
	}
	if (http_ws_client_check(&r, "dGhlIHNhbXBsZSBub25jZQ==", "mqtt",
	                         &why) == 0) {
		const struct http_header *a =
		        http_response_find(&r, "Sec-WebSocket-Accept");

		CHECK(r.status == 101 && why == NULL && a != NULL);
		CHECK(a->value.len == 28 &&
		      memcmp(a->value.p, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28) ==
		              0);
	} else {
		CHECK(why != NULL);
	}
	CHECK(http_parse_response(buf, (size_t)rc - 1, &r2, again,
	                          MAX_HEADERS) == TERN_EAGAIN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_header hdrs[MAX_HEADERS], again[MAX_HEADERS];
	const char *buf = (const char *)data;
	struct http_request req, req2;
	int rc;

	check_response(buf, size);
	check_pct(buf, size);
	check_basic(buf, size);
	rc = http_parse_request(buf, size, &req, hdrs, MAX_HEADERS);
	CHECK(rc == TERN_EAGAIN || rc == TERN_EMALFORMED ||
	      rc == TERN_ETOOBIG || rc == TERN_EVERSION || rc > 0);
	if (rc <= 0)
		return 0;
	CHECK((size_t)rc <= size);
	check_request(&req, buf, (size_t)rc);
	check_upgrade(&req, buf, (size_t)rc);
	check_deflate(&req);
	check_api_decoders(&req);
	/* The head alone parses the same; any shorter prefix needs more. */
	CHECK(http_parse_request(buf, (size_t)rc, &req2, again, MAX_HEADERS) ==
	      rc);
	CHECK(req2.nheaders == req.nheaders);
	CHECK(http_parse_request(buf, (size_t)rc - 1, &req2, again,
	                         MAX_HEADERS) == TERN_EAGAIN);
	CHECK(http_parse_request(buf, (size_t)rc / 2, &req2, again,
	                         MAX_HEADERS) == TERN_EAGAIN);
	return 0;
}
