/*
 * HTTP/1.1 request heads (RFC 9112 §2-§5) and the WebSocket opening
 * handshake (RFC 6455 §4.2). The parser is stateless: it is called again
 * with the whole head so far until it sees the empty line, and it works a
 * line at a time, so an unfinished line is "need more" and a finished one
 * is judged at once (a flood of headers is refused before the head ends).
 * The caller bounds the head's size, which keeps the re-parsing cheap.
 *
 * It is strict where leniency has caused request smuggling (obsolete line
 * folding, whitespace before the colon, bare CR, NUL and other controls)
 * and lenient where RFC 9112 allows it: a bare LF ends a line (§2.2), and
 * empty lines before the request line are skipped (§2.2).
 */
#include "http/http.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "base/error.h"
#include "base/sha1.h"

#define WS_GUID    "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN 24 /* base64 of 16 bytes */

/* RFC 9110 §5.6.2 tchar: the characters of a token. */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* field-vchar, SP or HTAB (RFC 9110 §5.5); obs-text is let through. */
static bool is_field_char(unsigned char c)
{
	return is_ows(c) || (c >= 0x21 && c != 0x7F);
}

static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* ASCII case-insensitive equality; no locale involved. */
static bool ieq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return false;
	return true;
}

static struct http_str trim(const char *p, size_t n)
{
	while (n > 0 && is_ows((unsigned char)p[0])) {
		p++;
		n--;
	}
	while (n > 0 && is_ows((unsigned char)p[n - 1]))
		n--;
	return (struct http_str){p, n};
}

/*
 * Finds the line starting at buf[pos]: sets *n to its length without the
 * line ending (LF or CRLF) and *next to where the following line starts.
 * Returns 0, or TERN_EAGAIN when no LF has arrived yet. Any other CR stays
 * in the line, where the character checks refuse it: a bare CR is a line
 * break to some parsers and not to others, a classic smuggling vector.
 */
static int next_line(const char *buf, size_t len, size_t pos, size_t *n,
                     size_t *next)
{
	const char *lf = pos < len ? memchr(buf + pos, '\n', len - pos) : NULL;

	if (lf == NULL)
		return TERN_EAGAIN;
	*n = (size_t)(lf - (buf + pos));
	*next = *n + pos + 1;
	if (*n > 0 && buf[pos + *n - 1] == '\r')
		(*n)--;
	return 0;
}

/* "HTTP/1.1" and friends; sets req->minor. */
static int parse_version(const char *p, size_t n, struct http_request *req)
{
	if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '0' ||
	    p[5] > '9' || p[7] < '0' || p[7] > '9')
		return TERN_EMALFORMED;
	if (p[5] != '1' || p[7] > '1')
		return TERN_EVERSION;
	req->minor = p[7] - '0';
	return 0;
}

/* Splits the request-target into path and query at the first '?'. */
static void split_target(struct http_request *req)
{
	const char *t = req->target.p, *q = memchr(t, '?', req->target.len);
	size_t plen = q ? (size_t)(q - t) : req->target.len;

	req->path = (struct http_str){t, plen};
	if (q)
		req->query =
		        (struct http_str){q + 1, req->target.len - plen - 1};
	else
		req->query = (struct http_str){t + plen, 0};
}

/* request-line = method SP request-target SP HTTP-version (one SP each). */
static int parse_request_line(const char *p, size_t n, struct http_request *req)
{
	size_t i = 0, start;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i == n || p[i] != ' ')
		return TERN_EMALFORMED;
	req->method = (struct http_str){p, i};
	start = ++i;
	while (i < n && (unsigned char)p[i] > 0x20 &&
	       (unsigned char)p[i] < 0x7F)
		i++;
	if (i == start || i == n || p[i] != ' ')
		return TERN_EMALFORMED;
	req->target = (struct http_str){p + start, i - start};
	split_target(req);
	return parse_version(p + i + 1, n - i - 1, req);
}

/* field-line = field-name ":" OWS field-value OWS */
static int parse_header(const char *p, size_t n, struct http_header *h)
{
	size_t i = 0;

	/* A leading SP/HTAB is obsolete line folding (or, on the first
	 * line, whitespace RFC 9112 §2.2 says to reject). */
	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i == n || p[i] != ':')
		return TERN_EMALFORMED;
	h->name = (struct http_str){p, i};
	for (size_t j = i + 1; j < n; j++)
		if (!is_field_char((unsigned char)p[j]))
			return TERN_EMALFORMED;
	h->value = trim(p + i + 1, n - i - 1);
	return 0;
}

/* Skips empty lines before the request line; TERN_EAGAIN if all empty. */
static int skip_empty(const char *buf, size_t len, size_t *pos)
{
	size_t n, next;
	int rc;

	for (;;) {
		rc = next_line(buf, len, *pos, &n, &next);
		if (rc < 0)
			return rc;
		if (n > 0)
			return 0;
		*pos = next;
	}
}

static int parse_headers(const char *buf, size_t len, size_t pos,
                         struct http_request *req, size_t max_headers)
{
	size_t n, next;
	int rc;

	for (;;) {
		rc = next_line(buf, len, pos, &n, &next);
		if (rc < 0)
			return rc;
		if (n == 0)
			return next > INT_MAX ? TERN_ETOOBIG : (int)next;
		if (req->nheaders == max_headers)
			return TERN_ETOOBIG;
		rc = parse_header(buf + pos, n, &req->headers[req->nheaders]);
		if (rc < 0)
			return rc;
		req->nheaders++;
		pos = next;
	}
}

int http_parse_request(const char *buf, size_t len, struct http_request *req,
                       struct http_header *headers, size_t max_headers)
{
	size_t pos = 0, n, next;
	int rc;

	memset(req, 0, sizeof(*req));
	req->headers = headers;
	rc = skip_empty(buf, len, &pos);
	if (rc < 0)
		return rc;
	rc = next_line(buf, len, pos, &n, &next);
	if (rc < 0)
		return rc;
	rc = parse_request_line(buf + pos, n, req);
	if (rc < 0)
		return rc;
	return parse_headers(buf, len, next, req, max_headers);
}

const struct http_header *http_find(const struct http_request *req,
                                    const char *name)
{
	size_t nlen = strlen(name);

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_str *h = &req->headers[i].name;

		if (ieq(h->p, h->len, name, nlen))
			return &req->headers[i];
	}
	return NULL;
}

size_t http_count(const struct http_request *req, const char *name)
{
	size_t nlen = strlen(name), count = 0;

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_str *h = &req->headers[i].name;

		count += ieq(h->p, h->len, name, nlen);
	}
	return count;
}

/*
 * Iterates over the elements of a comma-separated list of *left bytes at
 * *p: sets *elem to the next one, trimmed (possibly empty, as in "a,,b").
 * Returns false when the list is exhausted (*p becomes NULL after the last
 * element; a NULL list has none).
 */
static bool list_next(const char **p, size_t *left, struct http_str *elem)
{
	const char *start = *p, *comma;
	size_t n;

	if (start == NULL)
		return false;
	comma = *left ? memchr(start, ',', *left) : NULL;
	n = comma ? (size_t)(comma - start) : *left;
	*elem = trim(start, n);
	*p = comma ? comma + 1 : NULL;
	*left -= comma ? n + 1 : n;
	return true;
}

bool http_list_has(struct http_str value, const char *token)
{
	const char *p = value.p;
	size_t left = value.len, tlen = strlen(token);
	struct http_str e;

	while (list_next(&p, &left, &e))
		if (ieq(e.p, e.len, token, tlen))
			return true;
	return false;
}

/* Whether any header named `name` has `token` in its list. */
static bool any_list_has(const struct http_request *req, const char *name,
                         const char *token)
{
	size_t nlen = strlen(name);

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (ieq(h->name.p, h->name.len, name, nlen) &&
		    http_list_has(h->value, token))
			return true;
	}
	return false;
}

/* Subprotocol names are compared case-sensitively (RFC 7936). */
static bool supports(const char *supported, struct http_str name)
{
	const char *p = supported;
	size_t left = p ? strlen(p) : 0;
	struct http_str e;

	while (list_next(&p, &left, &e))
		if (e.len == name.len && e.len > 0 &&
		    memcmp(e.p, name.p, e.len) == 0)
			return true;
	return false;
}

static bool is_base64(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/*
 * A key is base64 of 16 bytes (RFC 6455 §4.2.1 item 5): 22 characters and
 * "==". The 4 unused bits of the last character are not checked; the RFC
 * asks only that the key decode to 16 bytes.
 */
static bool key_valid(struct http_str key)
{
	if (key.len != WS_KEY_LEN || key.p[22] != '=' || key.p[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++)
		if (!is_base64((unsigned char)key.p[i]))
			return false;
	return true;
}

/* accept = base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2 item 5.4). SHA-1
 * is base/sha1.c's: libcrypto's costs five times as much per handshake. */
static bool compute_accept(struct http_str key, char accept[29])
{
	unsigned char in[WS_KEY_LEN + sizeof(WS_GUID) - 1];
	uint8_t md[SHA1_LEN];

	memcpy(in, key.p, WS_KEY_LEN);
	memcpy(in + WS_KEY_LEN, WS_GUID, sizeof(WS_GUID) - 1);
	sha1(in, sizeof(in), md);
	return EVP_EncodeBlock((unsigned char *)accept, md, SHA1_LEN) == 28;
}

/*
 * Picks the first subprotocol the client offers (headers in order, lists
 * left to right) that is supported. Returns false when some were offered
 * and none is supported; an empty offer counts as none.
 */
static bool choose_subprotocol(const struct http_request *req,
                               const char *supported, struct http_str *chosen)
{
	static const char name[] = "Sec-WebSocket-Protocol";
	bool offered = false;

	*chosen = (struct http_str){NULL, 0};
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		const char *p = h->value.p;
		size_t left = h->value.len;
		struct http_str e;

		if (!ieq(h->name.p, h->name.len, name, sizeof(name) - 1))
			continue;
		while (list_next(&p, &left, &e)) {
			offered |= e.len > 0;
			if (supports(supported, e)) {
				*chosen = e;
				return true;
			}
		}
	}
	return !offered;
}

/* Records why and returns the status, so each check below is one line. */
static int outcome(struct ws_upgrade *out, int status, const char *why)
{
	out->why = why;
	return status;
}

/* Checks in RFC 6455 §4.2.1 order, the version before the key so that a
 * client of an older draft (no Sec-WebSocket-Key) is told 426. */
static int check_upgrade(const struct http_request *req, const char *supported,
                         struct ws_upgrade *out)
{
	const struct http_header *v, *key;

	if (req->method.len != 3 || memcmp(req->method.p, "GET", 3) != 0)
		return outcome(out, 405, "WebSocket upgrade must be a GET");
	if (req->minor < 1)
		return outcome(out, 400, "WebSocket upgrade needs HTTP/1.1");
	if (!any_list_has(req, "Upgrade", "websocket"))
		return outcome(out, 400, "no Upgrade: websocket");
	if (!any_list_has(req, "Connection", "upgrade"))
		return outcome(out, 400, "no Connection: upgrade");
	v = http_find(req, "Sec-WebSocket-Version");
	if (v == NULL || http_count(req, "Sec-WebSocket-Version") != 1 ||
	    v->value.len != 2 || memcmp(v->value.p, "13", 2) != 0)
		return outcome(out, 426, "Sec-WebSocket-Version is not 13");
	key = http_find(req, "Sec-WebSocket-Key");
	if (key == NULL || http_count(req, "Sec-WebSocket-Key") != 1 ||
	    !key_valid(key->value))
		return outcome(out, 400,
		               "missing or invalid Sec-WebSocket-Key");
	if (!choose_subprotocol(req, supported, &out->subprotocol))
		return outcome(out, 400, "no offered subprotocol is supported");
	/* Only a broken libcrypto fails here. */
	if (!compute_accept(key->value, out->accept))
		return outcome(out, 500, "SHA-1 unavailable");
	return outcome(out, 101, "WebSocket upgrade accepted");
}

void http_ws_upgrade(const struct http_request *req, const char *supported,
                     struct ws_upgrade *out)
{
	memset(out, 0, sizeof(*out));
	out->status = check_upgrade(req, supported, out);
}

/*
 * permessage-deflate offers. Sec-WebSocket-Extensions (RFC 6455 §9.1) is
 * a list of `name *(";" param ["=" (token / quoted-string)])`; a quoted
 * value may hold commas and semicolons, so the value is walked with a
 * cursor rather than split.
 */
struct ext_cur {
	const char *p, *end;
};

enum {
	PMD_SERVER_NCT = 1 << 0,
	PMD_CLIENT_NCT = 1 << 1,
	PMD_SERVER_BITS = 1 << 2,
	PMD_CLIENT_BITS = 1 << 3,
};

/* What one permessage-deflate offer asked for. */
struct pmd_offer {
	unsigned seen; /* PMD_* parameters present */
	int server_bits, client_bits;
	bool bad; /* an unknown, duplicate or invalid parameter */
};

static void ext_skip_ows(struct ext_cur *c)
{
	while (c->p < c->end && is_ows((unsigned char)*c->p))
		c->p++;
}

static bool ext_token(struct ext_cur *c, struct http_str *t)
{
	const char *s = c->p;

	while (c->p < c->end && is_tchar((unsigned char)*c->p))
		c->p++;
	*t = (struct http_str){s, (size_t)(c->p - s)};
	return t->len > 0;
}

/* A token or a quoted-string (its content, escapes left as sent). */
static bool ext_value(struct ext_cur *c, struct http_str *v)
{
	const char *s;

	if (c->p == c->end || *c->p != '"')
		return ext_token(c, v);
	s = ++c->p;
	while (c->p < c->end && *c->p != '"') {
		if (*c->p == '\\' && c->p + 1 < c->end)
			c->p++;
		c->p++;
	}
	if (c->p == c->end)
		return false;
	*v = (struct http_str){s, (size_t)(c->p - s)};
	c->p++;
	return true;
}

/* After a syntax error: past the next comma outside quotes, or the end. */
static void ext_skip_element(struct ext_cur *c)
{
	bool quoted = false;

	while (c->p < c->end) {
		char ch = *c->p++;

		if (quoted && ch == '\\' && c->p < c->end)
			c->p++;
		else if (ch == '"')
			quoted = !quoted;
		else if (ch == ',' && !quoted)
			return;
	}
}

/* A window size as RFC 7692 §7.1.2 writes it ("8".."15"), or -1. */
static int window_bits(struct http_str v)
{
	if (v.len == 1 && (v.p[0] == '8' || v.p[0] == '9'))
		return v.p[0] - '0';
	if (v.len == 2 && v.p[0] == '1' && v.p[1] >= '0' && v.p[1] <= '5')
		return 10 + (v.p[1] - '0');
	return -1;
}

static void pmd_param(struct pmd_offer *o, struct http_str name, bool has_v,
                      struct http_str v)
{
	static const char *const names[] = {
	        "server_no_context_takeover", "client_no_context_takeover",
	        "server_max_window_bits", "client_max_window_bits"};
	unsigned i, bit;

	for (i = 0; i < 4; i++)
		if (ieq(name.p, name.len, names[i], strlen(names[i])))
			break;
	bit = 1u << i;
	if (i == 4 || (o->seen & bit)) {
		o->bad = true;
		return;
	}
	o->seen |= bit;
	if (bit == PMD_SERVER_BITS) {
		/* zlib's raw deflate has no 8-bit window. */
		o->server_bits = has_v ? window_bits(v) : -1;
		o->bad |= o->server_bits < 9;
	} else if (bit == PMD_CLIENT_BITS) {
		o->client_bits = has_v ? window_bits(v) : 15;
		o->bad |= o->client_bits < 0;
	} else {
		o->bad |= has_v;
	}
}

/*
 * Parses one list element up to the next comma (left unread) into its
 * name and, through pmd_param, its parameters. Returns false on a syntax
 * error.
 */
static bool ext_element(struct ext_cur *c, struct http_str *name,
                        struct pmd_offer *o)
{
	if (!ext_token(c, name))
		return false;
	for (;;) {
		struct http_str pn, pv = {NULL, 0};
		bool has_v = false;

		ext_skip_ows(c);
		if (c->p == c->end || *c->p == ',')
			return true;
		if (*c->p != ';')
			return false;
		c->p++;
		ext_skip_ows(c);
		if (!ext_token(c, &pn))
			return false;
		ext_skip_ows(c);
		if (c->p < c->end && *c->p == '=') {
			c->p++;
			ext_skip_ows(c);
			if (!ext_value(c, &pv))
				return false;
			has_v = true;
		}
		pmd_param(o, pn, has_v, pv);
	}
}

static void pmd_accept(const struct pmd_offer *o, int max_bits,
                       struct ws_deflate *out)
{
	size_t cap = sizeof(out->response);
	int n;

	out->on = true;
	out->server_bits = max_bits;
	if ((o->seen & PMD_SERVER_BITS) && o->server_bits < max_bits)
		out->server_bits = o->server_bits;
	out->client_bits = 15;
	if (o->seen & PMD_CLIENT_BITS)
		out->client_bits =
		        o->client_bits < max_bits ? o->client_bits : max_bits;
	n = snprintf(out->response, cap,
	             "permessage-deflate; server_no_context_takeover; "
	             "client_no_context_takeover");
	/* §7.1.2: a window parameter is answered only when offered. */
	if (o->seen & PMD_SERVER_BITS)
		n += snprintf(out->response + n, cap - (size_t)n,
		              "; server_max_window_bits=%d", out->server_bits);
	if (o->seen & PMD_CLIENT_BITS)
		snprintf(out->response + n, cap - (size_t)n,
		         "; client_max_window_bits=%d", out->client_bits);
}

void http_ws_deflate_offer(const struct http_request *req, int max_bits,
                           struct ws_deflate *out)
{
	static const char hname[] = "Sec-WebSocket-Extensions";
	static const char pmd[] = "permessage-deflate";

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		struct ext_cur c = {h->value.p, h->value.p + h->value.len};

		if (!ieq(h->name.p, h->name.len, hname, sizeof(hname) - 1))
			continue;
		while (c.p < c.end) {
			struct pmd_offer o = {0};
			struct http_str name;

			ext_skip_ows(&c);
			if (c.p < c.end && *c.p == ',') {
				c.p++;
				continue;
			}
			if (c.p == c.end)
				break;
			if (!ext_element(&c, &name, &o)) {
				ext_skip_element(&c);
				continue;
			}
			if (ieq(name.p, name.len, pmd, sizeof(pmd) - 1) &&
			    !o.bad) {
				pmd_accept(&o, max_bits, out);
				return;
			}
		}
	}
}

/* The client side of the opening handshake (RFC 6455 §4.1). */

int http_ws_client_key(char key[25])
{
	unsigned char raw[16];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return TERN_EIO;
	return EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw)) ==
	                       WS_KEY_LEN
	               ? 0
	               : TERN_EIO;
}

/* Whether s may go into a request line or header value verbatim. */
static bool plain(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7F)
			return false;
	return true;
}

int http_ws_client_request(char *out, size_t cap, const char *host, int port,
                           const char *path, const char *key,
                           const char *protocol)
{
	char hostport[300];
	bool v6 = strchr(host, ':') != NULL;
	int n;

	if (path == NULL || path[0] == '\0')
		path = "/";
	if (!plain(host) || !plain(path) || !plain(key) ||
	    (protocol && !plain(protocol)) || path[0] != '/')
		return TERN_EINVAL;
	if (port)
		n = snprintf(hostport, sizeof(hostport), "%s%s%s:%d",
		             v6 ? "[" : "", host, v6 ? "]" : "", port);
	else
		n = snprintf(hostport, sizeof(hostport), "%s%s%s",
		             v6 ? "[" : "", host, v6 ? "]" : "");
	if (n < 0 || (size_t)n >= sizeof(hostport))
		return TERN_ETOOBIG;
	n = snprintf(out, cap,
	             "GET %s HTTP/1.1\r\n"
	             "Host: %s\r\n"
	             "Upgrade: websocket\r\n"
	             "Connection: Upgrade\r\n"
	             "Sec-WebSocket-Key: %s\r\n"
	             "Sec-WebSocket-Version: 13\r\n"
	             "%s%s%s"
	             "\r\n",
	             path, hostport, key,
	             protocol ? "Sec-WebSocket-Protocol: " : "",
	             protocol ? protocol : "", protocol ? "\r\n" : "");
	if (n < 0 || (size_t)n >= cap)
		return TERN_ETOOBIG;
	return n;
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ] */
static int parse_status_line(const char *p, size_t n, struct http_response *r)
{
	struct http_request v;
	int rc;

	/* A missing reason's SP is tolerated, as most clients do. */
	if (n < 12 || p[8] != ' ' || (n > 12 && p[12] != ' '))
		return TERN_EMALFORMED;
	rc = parse_version(p, 8, &v);
	if (rc < 0)
		return rc;
	r->minor = v.minor;
	r->status = 0;
	for (int i = 9; i < 12; i++) {
		if (p[i] < '0' || p[i] > '9')
			return TERN_EMALFORMED;
		r->status = r->status * 10 + (p[i] - '0');
	}
	if (r->status < 100)
		return TERN_EMALFORMED;
	for (size_t i = 13; i < n; i++)
		if (!is_field_char((unsigned char)p[i]))
			return TERN_EMALFORMED;
	r->reason = n > 13 ? (struct http_str){p + 13, n - 13}
	                   : (struct http_str){p + n, 0};
	return 0;
}

int http_parse_response(const char *buf, size_t len, struct http_response *r,
                        struct http_header *headers, size_t max_headers)
{
	struct http_request hr;
	size_t n, next;
	int rc;

	memset(r, 0, sizeof(*r));
	r->headers = headers;
	rc = next_line(buf, len, 0, &n, &next);
	if (rc < 0)
		return rc;
	rc = parse_status_line(buf, n, r);
	if (rc < 0)
		return rc;
	/* The header fields follow the same grammar as a request's. */
	memset(&hr, 0, sizeof(hr));
	hr.headers = headers;
	rc = parse_headers(buf, len, next, &hr, max_headers);
	r->nheaders = hr.nheaders;
	return rc;
}

/* A response viewed as a request, for the header helpers above. */
static struct http_request as_request(const struct http_response *r)
{
	struct http_request q;

	memset(&q, 0, sizeof(q));
	q.headers = r->headers;
	q.nheaders = r->nheaders;
	return q;
}

const struct http_header *http_response_find(const struct http_response *r,
                                             const char *name)
{
	struct http_request q = as_request(r);

	return http_find(&q, name);
}

static int client_fail(const char **why, const char *s)
{
	*why = s;
	return TERN_EPROTO;
}

int http_ws_client_check(const struct http_response *r, const char *key,
                         const char *protocol, const char **why)
{
	struct http_request q = as_request(r);
	const struct http_header *acc, *proto;
	char want[29];

	*why = NULL;
	if (r->status != 101)
		return client_fail(why, "server refused the WebSocket upgrade");
	if (!any_list_has(&q, "Upgrade", "websocket"))
		return client_fail(why, "no Upgrade: websocket in the answer");
	if (!any_list_has(&q, "Connection", "upgrade"))
		return client_fail(why, "no Connection: upgrade in the answer");
	if (strlen(key) != WS_KEY_LEN ||
	    !compute_accept((struct http_str){key, WS_KEY_LEN}, want))
		return client_fail(why, "invalid Sec-WebSocket-Key");
	acc = http_find(&q, "Sec-WebSocket-Accept");
	if (acc == NULL || http_count(&q, "Sec-WebSocket-Accept") != 1 ||
	    acc->value.len != 28 || memcmp(acc->value.p, want, 28) != 0)
		return client_fail(why,
		                   "wrong or missing Sec-WebSocket-Accept");
	if (http_find(&q, "Sec-WebSocket-Extensions"))
		return client_fail(why,
		                   "server chose an extension not offered");
	proto = http_find(&q, "Sec-WebSocket-Protocol");
	if (protocol == NULL)
		return proto ? client_fail(why, "server chose a subprotocol "
		                                "not offered")
		             : 0;
	if (proto == NULL)
		return client_fail(why, "server selected no subprotocol");
	if (http_count(&q, "Sec-WebSocket-Protocol") != 1 ||
	    proto->value.len != strlen(protocol) ||
	    memcmp(proto->value.p, protocol, proto->value.len) != 0)
		return client_fail(why,
		                   "server chose a subprotocol not offered");
	return 0;
}

/* ---- percent escapes and Basic credentials ---- */

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int http_pct_decode(const char *p, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)p[i];

		if (c == '%') {
			int hi = i + 2 < n ? hex_digit(p[i + 1]) : -1;
			int lo = hi >= 0 ? hex_digit(p[i + 2]) : -1;

			if (lo < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		}
		if (c == 0 || o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	if (o == 0)
		return -1;
	out[o] = '\0';
	return (int)o;
}

/*
 * Whether p[0..n) is base64 as RFC 4648 §4 writes it: the alphabet, with
 * '=' only as the last one or two characters of a multiple of four. (The
 * OpenSSL decoder also skips surrounding whitespace; credentials have
 * none.)
 */
static bool base64_strict(const char *p, size_t n)
{
	size_t pad = 0;

	if (n == 0 || n % 4)
		return false;
	while (pad < 2 && p[n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++)
		if (!is_base64((unsigned char)p[i]))
			return false;
	return true;
}

int http_basic_decode(const char *p, size_t n, struct http_basic *c)
{
	unsigned char *dec = (unsigned char *)c->buf;
	char *colon;
	int len;

	memset(c, 0, sizeof(*c));
	/* 4 * 127 characters decode to 381 bytes, which leaves room for the
	 * NUL in buf. */
	if (n > 4 * 127 || !base64_strict(p, n))
		return -1;
	len = EVP_DecodeBlock(dec, (const unsigned char *)p, (int)n);
	if (len < 0)
		return -1;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	len -= (p[n - 1] == '=') + (p[n - 2] == '=');
	colon = memchr(c->buf, ':', (size_t)len);
	if (colon == NULL)
		return -1;
	for (char *u = c->buf; u < colon; u++)
		if ((unsigned char)*u < 0x20 || *u == 0x7F)
			return -1;
	*colon = '\0';
	c->user = c->buf;
	c->pass = colon + 1;
	c->plen = (size_t)len - (size_t)(colon + 1 - c->buf);
	c->buf[len] = '\0';
	return 0;
}
