/*
 * HTTP/1.1 request heads (RFC 9112), parsed in place and pure: the parser
 * fills a struct whose strings point into the caller's buffer. Used by
 * WebSocket listeners for the upgrade to MQTT and for plain GETs (the web
 * client, /healthz, /metrics).
 */
#ifndef TERN_HTTP_HTTP_H
#define TERN_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_str {
	const char *p; /* into the request buffer, not NUL-terminated */
	size_t len;
};

struct http_header {
	struct http_str name;
	struct http_str value; /* surrounding whitespace trimmed */
};

struct http_request {
	struct http_str method;
	struct http_str target;      /* request-target as sent ("/mqtt?x=1") */
	struct http_str path;        /* target without the query */
	struct http_str query;       /* after '?', may be empty */
	int minor;                   /* HTTP/1.<minor> */
	struct http_header *headers; /* caller's array */
	size_t nheaders;
};

/*
 * Parses the request head at buf[0..len). `headers` (capacity max_headers)
 * receives the header fields. Returns the head's length (through the empty
 * line) when complete, TERN_EAGAIN when the empty line has not arrived,
 * TERN_EMALFORMED for a malformed head (-> 400), TERN_ETOOBIG for more
 * than max_headers fields (-> 431), TERN_EVERSION for an HTTP version other
 * than 1.0/1.1 (-> 505). Obsolete line folding is malformed. NUL and bare
 * CR are malformed. Does not limit the head's size: the caller does (431).
 */
int http_parse_request(const char *buf, size_t len, struct http_request *req,
                       struct http_header *headers, size_t max_headers);

/* The first header named `name` (case-insensitive), or NULL. */
const struct http_header *http_find(const struct http_request *req,
                                    const char *name);

/* How many headers are named `name` (duplicates matter for some). */
size_t http_count(const struct http_request *req, const char *name);

/*
 * Whether the comma-separated list `value` (e.g. "keep-alive, Upgrade")
 * contains `token`, compared case-insensitively, ignoring whitespace.
 */
bool http_list_has(struct http_str value, const char *token);

/*
 * Percent-decodes p[0..n) (RFC 3986 §2.1) into out (cap bytes,
 * NUL-terminated), as a path segment such as a client id in an admin API
 * URL. Returns the decoded length, or -1 if an escape is malformed or the
 * result is empty, holds a zero byte or does not fit.
 */
int http_pct_decode(const char *p, size_t n, char *out, size_t cap);

/* Decoded "Authorization: Basic" credentials (RFC 7617). */
struct http_basic {
	char buf[384];    /* user id, NUL, password; 508 base64 chars at most */
	const char *user; /* NUL-terminated, no control characters */
	const char *pass; /* plen bytes, may hold any byte */
	size_t plen;
};

/*
 * Decodes the base64 credentials p[0..n) (what follows "Basic ") into *c,
 * splitting them at the first ':'. Returns 0, or -1 if they are not base64
 * of at most 381 bytes, hold no ':', or the user id holds a control
 * character (RFC 7617 §2 forbids them; a NUL would let "admin\0x" pass as
 * "admin" wherever the id is compared as a C string).
 */
int http_basic_decode(const char *p, size_t n, struct http_basic *c);

/*
 * The outcome of checking a WebSocket upgrade request (RFC 6455 §4.2.1).
 * status 101: accept holds the Sec-WebSocket-Accept value (28 chars + NUL)
 * and `subprotocol` the chosen one from the client's comma-separated offer
 * (first of the client's list that is in `supported`, a comma-separated
 * list such as "mqtt,mqttv3.1"), or len 0 when none was offered.
 * Otherwise status is 400 (missing/invalid Upgrade, Connection, key), 405
 * (not GET), 426 (Sec-WebSocket-Version not 13: answer with
 * "Sec-WebSocket-Version: 13"), or 400 when subprotocols were offered but
 * none is supported; `why` is a static sentence for the log.
 */
struct ws_upgrade {
	int status;
	char accept[29];
	struct http_str subprotocol;
	const char *why;
};

void http_ws_upgrade(const struct http_request *req, const char *supported,
                     struct ws_upgrade *out);

/*
 * permessage-deflate (RFC 7692 §7) for a server that keeps no compression
 * context between messages and bounds both LZ77 windows to 2^max_bits
 * bytes (max_bits 9..15), so each connection's zlib memory is fixed.
 *
 * The offers are the elements of every Sec-WebSocket-Extensions header, in
 * order; the first permessage-deflate offer that can be accepted wins. An
 * offer is declined (and the next one tried) when it has an unknown or
 * duplicate parameter, a value where none belongs, a bad window size, or
 * server_max_window_bits=8 (zlib's raw deflate cannot use a 256-byte
 * window). A syntax error skips to the next element.
 *
 * out->on tells whether an offer was accepted; then client_bits is the
 * window the client compresses with (what our inflater needs: the offered
 * client_max_window_bits capped at max_bits, else 15), server_bits the
 * window we compress with (server_max_window_bits capped at max_bits, else
 * max_bits), and response the Sec-WebSocket-Extensions value to answer
 * with (NUL-terminated). Pure: no allocation.
 */
struct ws_deflate {
	bool on;
	int client_bits;
	int server_bits;
	char response[128];
};

void http_ws_deflate_offer(const struct http_request *req, int max_bits,
                           struct ws_deflate *out);

/*
 * The client side of the WebSocket opening handshake (RFC 6455 §4.1), for
 * libtern and the load generator. Pure except for the key's randomness.
 */

/* Writes a fresh Sec-WebSocket-Key (base64 of 16 random bytes, 24
 * characters and a NUL) into key. Returns 0 or TERN_EIO. */
int http_ws_client_key(char key[25]);

/*
 * Writes the upgrade request into out (capacity cap): GET `path` (e.g.
 * "/mqtt", "/" if NULL or empty), Host `host` (an IPv6 literal is put in
 * brackets; ":port" is added unless port is 0), the upgrade headers, key
 * and Sec-WebSocket-Protocol `protocol` (e.g. "mqtt"; none if NULL).
 * Returns its length (no NUL counted), TERN_ETOOBIG when cap is too small,
 * or TERN_EINVAL when path, host or protocol hold a control character or
 * space (they would break the request).
 */
int http_ws_client_request(char *out, size_t cap, const char *host, int port,
                           const char *path, const char *key,
                           const char *protocol);

struct http_response {
	int minor;                   /* HTTP/1.<minor> */
	int status;                  /* 100..999 */
	struct http_str reason;      /* may be empty */
	struct http_header *headers; /* caller's array */
	size_t nheaders;
};

/*
 * Parses a response head at buf[0..len) (status line and header fields), in
 * place, with the same rules and returns as http_parse_request(): the
 * head's length when complete, TERN_EAGAIN, TERN_EMALFORMED, TERN_ETOOBIG,
 * TERN_EVERSION.
 */
int http_parse_response(const char *buf, size_t len, struct http_response *r,
                        struct http_header *headers, size_t max_headers);

/* The first header of a response named `name` (case-insensitive), or NULL. */
const struct http_header *http_response_find(const struct http_response *r,
                                             const char *name);

/*
 * Checks the server's answer to our upgrade (RFC 6455 §4.1, client steps
 * 1-6): status 101, Upgrade: websocket, Connection: upgrade,
 * Sec-WebSocket-Accept matching `key`, no extension (we offered none), and
 * Sec-WebSocket-Protocol equal to `protocol` (MQTT §6 requires the server
 * to select the subprotocol, so its absence is an error too; with protocol
 * NULL none may be present). Returns 0, or TERN_EPROTO with *why set to a
 * static sentence (for a status other than 101 the caller may add r->status
 * to its message).
 */
int http_ws_client_check(const struct http_response *r, const char *key,
                         const char *protocol, const char **why);

#endif
