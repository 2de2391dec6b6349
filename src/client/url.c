/*
 * URL parsing for libtern (see url.h). The grammar is the part of RFC 3986
 * a broker address needs: scheme "://" [userinfo "@"] host [":" port]
 * [path-and-query]. Percent escapes are decoded in the user info only; the
 * path goes on the wire as written.
 */
#include "client/url.h"

#include <string.h>
#include <strings.h>

#include "base/error.h"

static const struct {
	const char *name;
	enum url_scheme scheme;
	int port;
} schemes[] = {
        {"mqtt", URL_MQTT, 1883},
        {"mqtts", URL_MQTTS, 8883},
        {"ws", URL_WS, 80},
        {"wss", URL_WSS, 443},
};

int url_default_port(enum url_scheme s)
{
	return schemes[s].port;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Copies p[0..n) into out (cap bytes) decoding %XX; NUL-terminates. */
static int decode(const char *p, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return TERN_EINVAL;
			hi = hexval(p[i + 1]);
			lo = hexval(p[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return TERN_EINVAL;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (o + 1 >= cap)
			return TERN_ETOOBIG;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

static int copy(const char *p, size_t n, char *out, size_t cap)
{
	if (n >= cap)
		return TERN_ETOOBIG;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static int parse_scheme(const char **s, struct url *u)
{
	const char *sep = strstr(*s, "://");

	if (sep == NULL)
		return TERN_EINVAL;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strlen(schemes[i].name) == (size_t)(sep - *s) &&
		    strncasecmp(*s, schemes[i].name, (size_t)(sep - *s)) == 0) {
			u->scheme = schemes[i].scheme;
			u->port = schemes[i].port;
			u->tls = u->scheme == URL_MQTTS || u->scheme == URL_WSS;
			u->ws = u->scheme == URL_WS || u->scheme == URL_WSS;
			*s = sep + 3;
			return 0;
		}
	}
	return TERN_EINVAL;
}

static int parse_userinfo(const char *p, size_t n, struct url *u)
{
	const char *colon = memchr(p, ':', n);
	size_t ulen = colon ? (size_t)(colon - p) : n;
	int rc;

	u->has_user = true;
	rc = decode(p, ulen, u->user, sizeof(u->user));
	if (rc < 0 || colon == NULL)
		return rc;
	u->has_pass = true;
	return decode(colon + 1, n - ulen - 1, u->pass, sizeof(u->pass));
}

static int parse_port(const char *p, size_t n, struct url *u)
{
	int port = 0;

	if (n == 0 || n > 5)
		return TERN_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return TERN_EINVAL;
		port = port * 10 + (p[i] - '0');
	}
	if (port < 1 || port > 65535)
		return TERN_EINVAL;
	u->port = port;
	return 0;
}

/* host [":" port], the host possibly "[v6]". */
static int parse_hostport(const char *p, size_t n, struct url *u)
{
	const char *end = p + n, *colon;
	int rc;

	if (n > 0 && p[0] == '[') {
		const char *rb = memchr(p, ']', n);

		if (rb == NULL || rb == p + 1)
			return TERN_EINVAL;
		rc = copy(p + 1, (size_t)(rb - p - 1), u->host,
		          sizeof(u->host));
		if (rc < 0)
			return rc;
		if (rb + 1 == end)
			return 0;
		if (rb[1] != ':')
			return TERN_EINVAL;
		return parse_port(rb + 2, (size_t)(end - rb - 2), u);
	}
	colon = memchr(p, ':', n);
	if (colon == p || n == 0)
		return TERN_EINVAL;
	rc = copy(p, colon ? (size_t)(colon - p) : n, u->host, sizeof(u->host));
	if (rc < 0 || colon == NULL)
		return rc;
	return parse_port(colon + 1, (size_t)(end - colon - 1), u);
}

int url_parse(const char *s, struct url *u)
{
	const char *auth, *slash, *at;
	size_t alen;
	int rc;

	memset(u, 0, sizeof(*u));
	for (const char *q = s; *q; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7F)
			return TERN_EINVAL;
	rc = parse_scheme(&s, u);
	if (rc < 0)
		return rc;
	auth = s;
	slash = strpbrk(auth, "/?");
	alen = slash ? (size_t)(slash - auth) : strlen(auth);
	/* The last '@' ends the user info: a password may hold '@'
	 * unescaped in practice. */
	at = NULL;
	for (size_t i = 0; i < alen; i++)
		if (auth[i] == '@')
			at = auth + i;
	if (at) {
		rc = parse_userinfo(auth, (size_t)(at - auth), u);
		if (rc < 0)
			return rc;
		alen -= (size_t)(at + 1 - auth);
		auth = at + 1;
	}
	rc = parse_hostport(auth, alen, u);
	if (rc < 0)
		return rc;
	if (!u->ws) {
		if (slash && strcmp(slash, "/") != 0)
			return TERN_EINVAL;
		return 0;
	}
	/* No path: MQTT's customary /mqtt (a bare query goes after it). */
	if (slash == NULL)
		return copy("/mqtt", 5, u->path, sizeof(u->path));
	if (slash[0] == '?') {
		rc = copy("/mqtt", 5, u->path, sizeof(u->path));
		if (rc == 0 && strlen(slash) >= sizeof(u->path) - 5)
			rc = TERN_ETOOBIG;
		if (rc == 0)
			strcat(u->path, slash);
		return rc;
	}
	return copy(slash, strlen(slash), u->path, sizeof(u->path));
}
