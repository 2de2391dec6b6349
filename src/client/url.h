/*
 * Broker URLs for libtern: mqtt://, mqtts://, ws://, wss:// with optional
 * user info, host (IPv6 literals in brackets), port and, for WebSocket, a
 * path with query. Pure: no I/O, no allocation; the parts are copied into
 * fixed buffers of struct url.
 */
#ifndef TERN_CLIENT_URL_H
#define TERN_CLIENT_URL_H

#include <stdbool.h>

enum url_scheme { URL_MQTT, URL_MQTTS, URL_WS, URL_WSS };

struct url {
	enum url_scheme scheme;
	bool tls;        /* mqtts, wss */
	bool ws;         /* ws, wss */
	char host[256];  /* without brackets */
	int port;        /* the scheme's default when absent */
	char path[1024]; /* WebSocket request target; "/mqtt" when absent */
	bool has_user, has_pass;
	char user[256]; /* percent-decoded */
	char pass[256];
};

/*
 * Parses s into *u. Returns 0, TERN_EINVAL (unknown scheme, empty host,
 * bad port, bad percent escape, a path on mqtt:// or mqtts://, spaces or
 * controls anywhere) or TERN_ETOOBIG (a part longer than its buffer).
 */
int url_parse(const char *s, struct url *u);

/* The scheme's default port: 1883, 8883, 80, 443. */
int url_default_port(enum url_scheme s);

#endif
