/*
 * The operator's HTTP endpoints on a websockets listener (CONVENTIONS.md,
 * docs/http.md): GET /metrics and the JSON admin API under /api/v1/.
 * conn_ws.c parses the request (and reads a bounded body); this module
 * decides who may ask, answers, and hands back a response to send.
 *
 * Who may ask:
 *  - The API is off (404) unless admin_token, or admin_user with
 *    admin_password_file, is configured, and every API request needs
 *    credentials: "Authorization: Bearer TOKEN", or HTTP Basic for
 *    admin_user — Basic only over TLS (wss listener) or from a loopback
 *    address, since it sends the password in clear.
 *  - /metrics is open from loopback (or to everyone with metrics_public
 *    true); from elsewhere it needs the same credentials as the API.
 *
 * Kicking a client posts a KICK to the worker that owns its connection;
 * no other worker's connection is ever touched from here.
 */
#ifndef TERN_BROKER_HTTP_API_H
#define TERN_BROKER_HTTP_API_H

#include <stdbool.h>
#include <stddef.h>

struct http_request;
struct worker;

/* Largest request body read (POST /api/v1/publish). */
#define HTTP_API_MAX_BODY (256u * 1024u)

struct http_api_req {
	struct worker *w; /* the worker answering */
	const struct http_request *req;
	const char *body; /* Content-Length bytes, NULL when none */
	size_t blen;
	const char *host; /* client address, after trusted proxies */
	bool tls;         /* the request came over TLS */
};

struct http_api_reply {
	int status;
	const char *reason;
	const char *type;
	char extra[128]; /* further header lines, each ending in CRLF */
	char *body;      /* malloc'd; the caller frees it */
	size_t len;
};

/*
 * Whether the request's path is one of this module's (/metrics, /api/...);
 * false means the caller answers it. When true, *out holds the response
 * (status, headers, body) and the caller sends it and frees out->body.
 */
bool http_api_handle(const struct http_api_req *r, struct http_api_reply *out);

/* Whether a request for this path may carry a body (the caller then
 * reads up to HTTP_API_MAX_BODY bytes of it before calling). */
bool http_api_wants_body(const struct http_request *req);

/* Whether host (a numeric address) is a loopback address. */
bool http_api_is_loopback(const char *host);

#endif
