/*
 * libFuzzer target for broker URLs (src/client/url.c), which libtern and
 * the tern CLI read from users, scripts and environment variables. Every
 * accepted URL must hold parts that make sense (a host, a port in range, a
 * WebSocket path starting with '/', none on mqtt:// or mqtts://), and the
 * URL written back from those parts, in canonical form, must parse into
 * the same parts: the parser and its documented grammar agree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "client/url.h"
#include "fuzz.h"

static const char *const names[] = {"mqtt", "mqtts", "ws", "wss"};

/* Appends s with every byte but letters and digits as %XX. */
static size_t put_escaped(char *out, size_t o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= '0' && c <= '9') ||
		    ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) {
			out[o++] = (char)c;
			continue;
		}
		out[o++] = '%';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 15];
	}
	return o;
}

/* The canonical text of u: lower-case scheme, escaped user info, the host
 * in brackets when it could be read as a port or a bracketed host, an
 * explicit port and the path as parsed. */
static void write_url(const struct url *u, char *out)
{
	size_t o = (size_t)sprintf(out, "%s://", names[u->scheme]);

	if (u->has_user) {
		o = put_escaped(out, o, u->user);
		if (u->has_pass) {
			out[o++] = ':';
			o = put_escaped(out, o, u->pass);
		}
		out[o++] = '@';
	}
	if (strchr(u->host, ':') || u->host[0] == '[')
		o += (size_t)sprintf(out + o, "[%s]", u->host);
	else
		o += (size_t)sprintf(out + o, "%s", u->host);
	sprintf(out + o, ":%d%s", u->port, u->path);
}

static void check_parts(const struct url *u)
{
	CHECK(u->scheme >= URL_MQTT && u->scheme <= URL_WSS);
	CHECK(u->tls == (u->scheme == URL_MQTTS || u->scheme == URL_WSS));
	CHECK(u->ws == (u->scheme == URL_WS || u->scheme == URL_WSS));
	CHECK(u->host[0] != '\0' && memchr(u->host, '\0', sizeof(u->host)));
	CHECK(!strpbrk(u->host, "@/?"));
	CHECK(u->port >= 1 && u->port <= 65535);
	CHECK(u->ws ? u->path[0] == '/' : u->path[0] == '\0');
	CHECK(u->has_user || (!u->has_pass && u->user[0] == '\0'));
	CHECK(u->has_pass || u->pass[0] == '\0');
	CHECK(memchr(u->user, '\0', sizeof(u->user)) &&
	      memchr(u->pass, '\0', sizeof(u->pass)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Escaping at most triples user and password. */
	static char again[16 + 3 * 256 * 2 + 256 + 2 + 8 + 1024];
	struct url u, v;
	char *text;
	int rc;

	if (size > 4096 || !(text = malloc(size + 1)))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	rc = url_parse(text, &u);
	free(text);
	CHECK(rc == 0 || rc == TERN_EINVAL || rc == TERN_ETOOBIG);
	if (rc != 0)
		return 0;
	check_parts(&u);
	write_url(&u, again);
	CHECK(url_parse(again, &v) == 0);
	CHECK(u.scheme == v.scheme && u.port == v.port);
	CHECK(strcmp(u.host, v.host) == 0 && strcmp(u.path, v.path) == 0);
	CHECK(u.has_user == v.has_user && u.has_pass == v.has_pass);
	CHECK(strcmp(u.user, v.user) == 0 && strcmp(u.pass, v.pass) == 0);
	return 0;
}
